use mercure_track::prelude::*;

struct OrderService {
    session: mercure_track_sqlx::TrackedSession<sqlx::Sqlite>,
}

// The events are listed on the struct; here, without them, nothing would be tracked.
#[mercure_autotrack]
impl OrderService {
    fn rename(&mut self) {
        let _ = &self.session;
    }

    fn archive(&mut self) {}
}

fn main() {}
