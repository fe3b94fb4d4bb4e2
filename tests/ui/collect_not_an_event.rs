use mercure_track::prelude::*;
use mercure_track_tests::domain::Order;

#[derive(MercureEvent)]
#[mercure(type = "list_update", topic = "orders", collect(Order))]
struct ListUpdate {
    order_ids: Vec<String>,
}

fn main() {}
