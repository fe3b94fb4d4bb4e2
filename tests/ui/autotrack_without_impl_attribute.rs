use mercure_track::prelude::*;
use mercure_track_tests::domain::OrderUpdate;

// The struct's attribute alone would track nothing.
#[mercure_autotrack(OrderUpdate)]
struct OrderService {
    session: mercure_track_sqlx::TrackedSession<sqlx::Sqlite>,
}

impl OrderService {
    fn rename(&mut self) {}
}

fn main() {}
