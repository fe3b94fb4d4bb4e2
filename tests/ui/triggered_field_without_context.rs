use mercure_track::prelude::*;
use mercure_track_tests::domain::Order;

#[derive(MercureEvent)]
#[mercure(type = "order_update", topic = "orders/{order_id}")]
#[trigger(Order::status)]
struct OrderUpdate {
    order_id: String,
}

fn main() {}
