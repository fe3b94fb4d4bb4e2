use mercure_track::prelude::*;

#[derive(Tracked)]
struct Order {
    #[tracked(primary_key)]
    id: String,
}

#[derive(Tracked)]
#[tracked(table = "orders; drop table orders")]
struct Evil {
    #[tracked(primary_key)]
    id: String,
}

fn main() {}
