use mercure_track::prelude::*;
use mercure_track_tests::domain::{Order, OrderUpdate};

#[derive(MercureEvent)]
#[mercure(type = "list_update", topic = "orders", collect(OrderUpdate))]
#[trigger(Order::status)]
struct ListUpdate {
    #[context(Order::id)]
    order_ids: Vec<String>,
}

#[derive(MercureEvent)]
#[mercure(type = "summary", topic = "orders", from_collected = build)]
struct Summary {
    count: usize,
}

fn main() {}
