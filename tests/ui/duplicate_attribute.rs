use mercure_track::prelude::*;

#[derive(MercureEvent)]
#[mercure(type = "order_update", topic = "orders")]
#[mercure(type = "order_changed")]
struct OrderUpdate {
    order_id: String,
}

#[derive(Tracked)]
#[tracked(table = "orders")]
struct Order {
    #[tracked(primary_key)]
    #[tracked(primary_key)]
    id: String,
}

fn main() {}
