use mercure_track::prelude::*;
use mercure_track_tests::domain::Order;

// `Order::note` is `#[tracked(skip)]`: no query can read it.
#[derive(MercureEvent)]
#[mercure(type = "order_note", topic = "orders")]
#[trigger(Order::status)]
struct OrderNote {
    #[context(Order::note)]
    note: Option<String>,
}

fn main() {}
