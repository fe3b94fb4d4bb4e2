use mercure_track::prelude::*;

#[derive(Tracked)]
#[tracked(table = "orders")]
struct Order {
    id: String,
    status: String,
}

fn main() {}
