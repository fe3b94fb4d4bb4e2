use mercure_track::prelude::*;

// No events listed on the struct.
#[mercure_autotrack]
struct NoEvents {
    session: String,
}

// A tuple struct has no `session` field.
#[mercure_autotrack(mercure_track_tests::domain::OrderUpdate)]
struct Tuple(String);

// Not a list of event types.
#[mercure_autotrack("ImageUpdate")]
struct Quoted {
    session: String,
}

fn main() {}
