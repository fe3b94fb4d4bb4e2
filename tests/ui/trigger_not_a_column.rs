use mercure_track::prelude::*;
use mercure_track_tests::domain::Order;

struct Limits;
impl Limits {
    const MAX: u32 = 5;
}

#[derive(MercureEvent)]
#[mercure(type = "order_update", topic = "orders/{order_id}")]
#[trigger(Limits::MAX)]
struct OrderUpdate {
    #[context(Order::id)]
    order_id: String,
}

fn main() {}
