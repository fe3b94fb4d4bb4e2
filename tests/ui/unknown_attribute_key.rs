use mercure_track::prelude::*;

#[derive(MercureEvent)]
#[mercure(typ = "order_update", topic = "orders")]
struct OrderUpdate {
    order_id: String,
}

#[derive(Tracked)]
#[tracked(table = "orders")]
struct Order {
    #[tracked(primary_key, index)]
    id: String,
}

fn main() {}
