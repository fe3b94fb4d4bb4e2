use mercure_track::prelude::*;
use mercure_track_tests::domain::Order;

// `Order::note` is `#[tracked(skip)]`: not a column.
#[derive(MercureEvent)]
#[mercure(type = "order_noted", topic = "orders/{order_id}")]
#[trigger(Order::note)]
struct OrderNoted {
    #[context(Order::id)]
    order_id: String,
}

fn main() {}
