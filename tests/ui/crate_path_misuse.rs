use mercure_track::prelude::*;

#[derive(Tracked)]
#[tracked(table = "orders", crate = "mercure_track")]
struct Order {
    #[tracked(primary_key, crate = mercure_track)]
    id: String,
}

#[derive(MercureEvent)]
#[mercure(type = "ping", topic = "pings", crate = ::mercure_track, crate = ::mercure_track)]
struct Ping {}

fn main() {}
