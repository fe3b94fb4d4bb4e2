use mercure_track::prelude::*;
use mercure_track_tests::domain::{Image, Order};

// An order does not belong to an image: the image id cannot be resolved from an order.
#[derive(MercureEvent)]
#[mercure(type = "image_update", topic = "images/{image_id}")]
#[trigger(Order::status)]
struct ImageUpdate {
    #[context(Image::id)]
    image_id: i64,
}

fn main() {}
