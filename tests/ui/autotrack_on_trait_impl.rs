use mercure_track::prelude::*;
use mercure_track_tests::domain::OrderUpdate;

#[mercure_autotrack(OrderUpdate)]
struct OrderService {
    session: mercure_track_sqlx::TrackedSession<sqlx::Sqlite>,
}

#[mercure_autotrack]
impl Default for OrderService {
    fn default() -> Self {
        unimplemented!()
    }
}

// Two `crate` keys.
#[mercure_autotrack(OrderUpdate, crate = ::mercure_track, crate = ::mercure_track)]
struct Twice {
    session: mercure_track_sqlx::TrackedSession<sqlx::Sqlite>,
}

#[mercure_autotrack]
impl Twice {}

fn main() {}
