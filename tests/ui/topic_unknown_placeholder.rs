use mercure_track::prelude::*;
use mercure_track_tests::domain::Order;

#[derive(MercureEvent)]
#[mercure(type = "order_update", topic = "orders/{ordr_id}")]
#[trigger(Order::status)]
struct OrderUpdate {
    #[context(Order::id)]
    order_id: String,
}

fn main() {}
