//! The order/image domain of the original design, as models and events.

use mercure_track::prelude::*;
use serde::Serialize;

/// Status of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
pub enum OrderStatus {
    /// Being processed.
    Processing,
    /// Ready for an operator.
    ReadyForReview,
}

/// An order.
#[derive(Debug, Clone, sqlx::FromRow, Tracked)]
#[tracked(table = "orders")]
pub struct Order {
    /// Key.
    #[tracked(primary_key)]
    pub id: String,
    /// Status.
    pub status: String,
    /// A note, not a column.
    #[tracked(skip)]
    #[sqlx(skip)]
    pub note: Option<String>,
}

/// A line of an order.
#[derive(Debug, Clone, sqlx::FromRow, Tracked)]
#[tracked(table = "line_items")]
pub struct LineItem {
    /// Key.
    #[tracked(primary_key)]
    pub id: i64,
    /// The order.
    #[tracked(belongs_to = Order)]
    pub order_id: String,
}

/// An image of a line item.
#[derive(Debug, Clone, sqlx::FromRow, Tracked)]
#[tracked(table = "images")]
pub struct Image {
    /// Key.
    #[tracked(primary_key)]
    pub id: i64,
    /// The line item.
    #[tracked(belongs_to = LineItem)]
    pub line_item_id: i64,
    /// The selected coloring: a reference, not an ownership link.
    pub selected_coloring_id: Option<i64>,
    /// The selected svg.
    #[tracked(column = "selected_svg")]
    #[sqlx(rename = "selected_svg")]
    pub selected_svg_id: Option<i64>,
}

/// A coloring of an image.
#[derive(Debug, Clone, sqlx::FromRow, Tracked)]
#[tracked(table = "coloring_versions")]
pub struct ColoringVersion {
    /// Key.
    #[tracked(primary_key)]
    pub id: i64,
    /// The image.
    #[tracked(belongs_to = Image)]
    pub image_id: i64,
    /// Processing status.
    pub status: String,
}

/// An svg of an image.
#[derive(Debug, Clone, sqlx::FromRow, Tracked)]
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

/// A category tree: a model that belongs to itself.
#[derive(Debug, Clone, sqlx::FromRow, Tracked)]
#[tracked(table = "categories")]
pub struct Category {
    /// Key.
    #[tracked(primary_key)]
    pub id: i64,
    /// The parent category.
    #[tracked(belongs_to = Category)]
    pub parent_id: Option<i64>,
    /// Name.
    pub name: String,
}

/// An order changed.
#[derive(Debug, Clone, PartialEq, MercureEvent)]
#[mercure(type = "order_update", topic = "orders/{order_id}")]
#[trigger(Order::status, Order::INSERT)]
pub struct OrderUpdate {
    /// The order.
    #[context(Order::id)]
    pub order_id: String,
}

/// An image of an order changed.
#[derive(Debug, Clone, PartialEq, MercureEvent)]
#[mercure(type = "image_update", topic = "orders/{order_id}")]
#[mercure(private)]
#[trigger(
    ColoringVersion::status,
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

/// Orders of the list changed.
#[derive(Debug, Clone, PartialEq, MercureEvent)]
#[mercure(type = "list_update", topic = "orders", collect(OrderUpdate))]
pub struct ListUpdate {
    /// The changed orders, sorted, unique.
    pub order_ids: Vec<String>,
}

/// A category was renamed: context on the model that belongs to itself.
#[derive(Debug, Clone, PartialEq, MercureEvent)]
#[mercure(
    type = "category_update",
    topic = "categories/{category_id}",
    topic = "categories"
)]
#[trigger(Category::name)]
pub struct CategoryUpdate {
    /// The category.
    #[context(Category::id)]
    pub category_id: i64,
}

/// A batch with a hand-written rule: how many images changed, per commit.
#[derive(Debug, Clone, PartialEq, MercureEvent)]
#[mercure(type = "image_count", topic = "stats", collect(ImageUpdate), from_collected = count_images)]
pub struct ImageCount {
    /// Number of image updates in the commit.
    pub count: usize,
}

fn count_images(collected: &Collected<'_>) -> Option<ImageCount> {
    let count = collected.of::<ImageUpdate>().count();
    (count > 0).then_some(ImageCount { count })
}

/// An event published by hand, with a status field.
#[derive(Debug, Clone, PartialEq, MercureEvent)]
#[mercure(type = "order_status", topic = "orders/{order_id}/status")]
pub struct OrderStatusChanged {
    /// The order.
    #[context(Order::id)]
    pub order_id: String,
    /// The new status.
    pub status: OrderStatus,
}

/// A line item was removed: triggered by a delete, resolved before the row disappears.
#[derive(Debug, Clone, PartialEq, MercureEvent)]
#[mercure(type = "line_item_removed", topic = "orders/{order_id}")]
#[trigger(LineItem::DELETE)]
pub struct LineItemRemoved {
    /// The order.
    #[context(Order::id)]
    pub order_id: String,
    /// The removed line item.
    #[context(LineItem::id)]
    pub line_item_id: i64,
}
