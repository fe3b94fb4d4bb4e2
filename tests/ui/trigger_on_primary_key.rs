use mercure_track::prelude::*;
use mercure_track_tests::domain::Order;

// No setter writes a key: this event could never fire.
#[derive(MercureEvent)]
#[mercure(type = "order_renamed", topic = "orders/{order_id}")]
#[trigger(Order::status, Order::id)]
struct OrderRenamed {
    #[context(Order::id)]
    order_id: String,
}

fn main() {}
