//! The domain of the original design: orders, line items, images, coloring and svg versions,
//! and the events the operator's browser follows.

use mercure_track::prelude::*;
use serde::Serialize;

/// Order statuses, in the order ingestion moves through them.
pub mod order_status {
    /// Just received.
    pub const NEW: &str = "NEW";
    /// Being prepared.
    pub const PROCESSING: &str = "PROCESSING";
    /// Waiting for an operator.
    pub const READY_FOR_REVIEW: &str = "READY_FOR_REVIEW";
    /// Approved by an operator.
    pub const APPROVED: &str = "APPROVED";

    /// The status after `status`, if any.
    pub fn next(status: &str) -> Option<&'static str> {
        match status {
            NEW => Some(PROCESSING),
            PROCESSING => Some(READY_FOR_REVIEW),
            READY_FOR_REVIEW => Some(APPROVED),
            _ => None,
        }
    }
}

/// Statuses of a coloring generation, in order.
pub mod coloring_status {
    /// Created, waiting for a worker.
    pub const QUEUED: &str = "QUEUED";
    /// The source image is being uploaded to storage.
    pub const UPLOADING: &str = "UPLOADING";
    /// The GPU is generating the coloring.
    pub const GENERATING: &str = "GENERATING";
    /// Done.
    pub const COMPLETED: &str = "COMPLETED";
}

/// An order.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, Tracked)]
#[tracked(table = "orders")]
pub struct Order {
    /// Key.
    #[tracked(primary_key)]
    pub id: String,
    /// Who ordered.
    pub customer: String,
    /// See [`order_status`].
    pub status: String,
}

/// A line of an order.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, Tracked)]
#[tracked(table = "line_items")]
pub struct LineItem {
    /// Key.
    #[tracked(primary_key)]
    pub id: i64,
    /// The order.
    #[tracked(belongs_to = Order)]
    pub order_id: String,
    /// What was ordered.
    pub title: String,
}

/// An image of a line item.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, Tracked)]
#[tracked(table = "images")]
pub struct Image {
    /// Key.
    #[tracked(primary_key)]
    pub id: i64,
    /// The line item.
    #[tracked(belongs_to = LineItem)]
    pub line_item_id: i64,
    /// The coloring the operator selected (a reference, not an ownership link).
    pub selected_coloring_id: Option<i64>,
    /// The svg the operator selected.
    pub selected_svg_id: Option<i64>,
}

/// A coloring generated for an image.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, Tracked)]
#[tracked(table = "coloring_versions")]
pub struct ColoringVersion {
    /// Key.
    #[tracked(primary_key)]
    pub id: i64,
    /// The image.
    #[tracked(belongs_to = Image)]
    pub image_id: i64,
    /// See [`coloring_status`].
    pub status: String,
    /// Percent done.
    pub progress: i64,
}

/// An svg traced from an image.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, Tracked)]
#[tracked(table = "svg_versions")]
pub struct SvgVersion {
    /// Key.
    #[tracked(primary_key)]
    pub id: i64,
    /// The image.
    #[tracked(belongs_to = Image)]
    pub image_id: i64,
    /// Processing status.
    pub status: String,
}

/// An order changed: its page refreshes it.
#[derive(Debug, Clone, PartialEq, MercureEvent)]
#[mercure(type = "order_update", topic = "orders/{order_id}")]
#[trigger(Order::status, Order::INSERT)]
pub struct OrderUpdate {
    /// The order.
    #[context(Order::id)]
    pub order_id: String,
}

/// An image of an order changed: the order page refreshes its images. Private: only
/// subscribers allowed to see the order receive it.
#[derive(Debug, Clone, PartialEq, MercureEvent)]
#[mercure(type = "image_update", topic = "orders/{order_id}", private)]
#[trigger(
    ColoringVersion::INSERT,
    ColoringVersion::status,
    ColoringVersion::progress,
    SvgVersion::status,
    Image::selected_coloring_id,
    Image::selected_svg_id
)]
pub struct ImageUpdate {
    /// The order.
    #[context(Order::id)]
    pub order_id: String,
    /// The image.
    #[context(Image::id)]
    pub image_id: i64,
}

/// Orders of the list changed: the list refreshes those rows (all rows when empty).
#[derive(Debug, Clone, PartialEq, MercureEvent)]
#[mercure(type = "list_update", topic = "orders", collect(OrderUpdate))]
pub struct ListUpdate {
    /// The changed orders, sorted, unique.
    pub order_ids: Vec<String>,
}
