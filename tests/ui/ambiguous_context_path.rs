use mercure_track::prelude::*;

#[derive(Tracked)]
#[tracked(table = "orders")]
struct Order {
    #[tracked(primary_key)]
    id: String,
}

#[derive(Tracked)]
#[tracked(table = "line_items")]
struct LineItem {
    #[tracked(primary_key)]
    id: i64,
    #[tracked(belongs_to = Order)]
    order_id: String,
}

// Two chains lead from a picture to its order: directly, and through its line item.
#[derive(Tracked)]
#[tracked(table = "pictures")]
struct Picture {
    #[tracked(primary_key)]
    id: i64,
    #[tracked(belongs_to = LineItem)]
    line_item_id: i64,
    #[tracked(belongs_to = Order)]
    order_id: String,
    status: String,
}

#[derive(MercureEvent)]
#[mercure(type = "picture_update", topic = "orders/{order_id}")]
#[trigger(Picture::status)]
struct PictureUpdate {
    #[context(Order::id)]
    order_id: String,
}

fn main() {}
