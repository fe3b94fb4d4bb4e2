use mercure_track::prelude::*;

// A frontend could not tell these two apart.
#[derive(MercureEvent)]
#[mercure(type = "order_update", topic = "orders")]
struct OrderUpdate {
    order_id: String,
}

#[derive(MercureEvent)]
#[mercure(type = "order_update", topic = "orders/{order_id}")]
struct OrderChanged {
    order_id: String,
}

// Type strings that are not identifiers are compared too.
#[derive(MercureEvent)]
#[mercure(type = "order-update.v2", topic = "orders")]
struct OrderUpdateV2 {
    order_id: String,
}

#[derive(MercureEvent)]
#[mercure(type = "order-update.v2", topic = "orders")]
struct OrderChangedV2 {
    order_id: String,
}

fn main() {}
