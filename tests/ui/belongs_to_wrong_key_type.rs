use mercure_track::prelude::*;
use mercure_track_tests::domain::Order;

#[derive(Tracked)]
#[tracked(table = "line_items")]
struct LineItem {
    #[tracked(primary_key)]
    id: i64,
    #[tracked(belongs_to = Order)]
    order_id: i64,
}

fn main() {}
