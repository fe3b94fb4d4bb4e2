//! The benchmark's models: the coloring-version chain of the original design.

use mercure_track::prelude::*;

/// An order.
#[derive(Debug, Clone, sqlx::FromRow, Tracked)]
#[tracked(table = "orders")]
pub struct Order {
    /// Key.
    #[tracked(primary_key)]
    pub id: String,
    /// Status.
    pub status: String,
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

/// An image.
#[derive(Debug, Clone, sqlx::FromRow, Tracked)]
#[tracked(table = "images")]
pub struct Image {
    /// Key.
    #[tracked(primary_key)]
    pub id: i64,
    /// The line item.
    #[tracked(belongs_to = LineItem)]
    pub line_item_id: i64,
}

/// A coloring version.
#[derive(Debug, Clone, sqlx::FromRow, Tracked)]
#[tracked(table = "coloring_versions")]
pub struct ColoringVersion {
    /// Key.
    #[tracked(primary_key)]
    pub id: i64,
    /// The image.
    #[tracked(belongs_to = Image)]
    pub image_id: i64,
    /// Status.
    pub status: String,
}

/// The event under measure.
#[derive(Debug, Clone, MercureEvent)]
#[mercure(type = "image_update", topic = "orders/{order_id}")]
#[trigger(ColoringVersion::status)]
pub struct ImageUpdate {
    /// The order, three joins away.
    #[context(Order::id)]
    pub order_id: String,
    /// The image, one join away.
    #[context(Image::id)]
    pub image_id: i64,
}

/// The schema, for SQLite and PostgreSQL alike.
pub const SCHEMA: &str = "
CREATE TABLE orders (id TEXT PRIMARY KEY, status TEXT NOT NULL);
CREATE TABLE line_items (id BIGINT PRIMARY KEY, order_id TEXT NOT NULL REFERENCES orders (id));
CREATE TABLE images (id BIGINT PRIMARY KEY, line_item_id BIGINT NOT NULL REFERENCES line_items (id));
CREATE TABLE coloring_versions (id BIGINT PRIMARY KEY, image_id BIGINT NOT NULL REFERENCES images (id), status TEXT NOT NULL);
";

/// Rows `0..count` of every table: order `o{n}` owns line item, image and coloring version `n`.
pub fn seed(count: usize) -> String {
    let mut sql = String::with_capacity(count * 200);
    for table in ["orders", "line_items", "images", "coloring_versions"] {
        sql.push_str(&format!("INSERT INTO {table} VALUES "));
        for n in 0..count {
            if n > 0 {
                sql.push(',');
            }
            sql.push_str(&match table {
                "orders" => format!("('o{n}', 'NEW')"),
                "line_items" => format!("({n}, 'o{n}')"),
                "images" => format!("({n}, {n})"),
                _ => format!("({n}, {n}, 'A')"),
            });
        }
        sql.push_str(";\n");
    }
    sql
}
