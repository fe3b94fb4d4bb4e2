use mercure_track::prelude::*;
use mercure_track_tests::domain::{ColoringVersion, Image, Order};

// `via` must be a `belongs_to` column of a trigger's model.
#[derive(MercureEvent)]
#[mercure(type = "image_update", topic = "orders/{order_id}")]
#[trigger(ColoringVersion::status)]
struct NotAForeignKey {
    #[context(Order::id, via(ColoringVersion::status))]
    order_id: String,
}

#[derive(MercureEvent)]
#[mercure(type = "image_update_2", topic = "orders/{order_id}")]
#[trigger(ColoringVersion::status)]
struct NotATriggerModel {
    #[context(Order::id, via(Image::line_item_id))]
    order_id: String,
}

#[derive(MercureEvent)]
#[mercure(type = "image_update_3", topic = "orders/{order_id}")]
#[trigger(ColoringVersion::status)]
struct NotVia {
    #[context(Order::id, through(Image::line_item_id))]
    order_id: String,
}

fn main() {}
