use mercure_track::prelude::*;
use mercure_track_tests::domain::{Order, OrderUpdate};

// No type, no topic.
#[derive(MercureEvent)]
struct Nothing {
    id: String,
}

// An empty type, broken topic templates, `from` outside a batch.
#[derive(MercureEvent)]
#[mercure(type = "", topic = "orders/{order_id", topic = "orders/}")]
struct Broken {
    #[mercure(from = "x")]
    order_id: String,
}

// An empty trigger list, a context that is not `Model::column`, two contexts on one field.
#[derive(MercureEvent)]
#[mercure(type = "t", topic = "t")]
#[trigger()]
struct Triggers {
    #[context(id)]
    a: String,
    #[context(Order::id)]
    #[context(Order::id)]
    b: String,
}

// `from_collected` without `collect`; an empty `collect`; a `from` that is not a field name.
#[derive(MercureEvent)]
#[mercure(type = "s", topic = "s", from_collected = build)]
struct NotABatch {
    count: usize,
}

#[derive(MercureEvent)]
#[mercure(type = "b", topic = "b", collect())]
struct EmptyCollect {
    #[mercure(from = "not a field")]
    ids: Vec<String>,
}

// A batch with nothing to gather.
#[derive(MercureEvent)]
#[mercure(type = "e", topic = "e", collect(OrderUpdate))]
struct NoFields {}

// Generic events cannot be registered.
#[derive(MercureEvent)]
#[mercure(type = "g", topic = "g")]
struct Generic<T> {
    value: T,
}

fn main() {}
