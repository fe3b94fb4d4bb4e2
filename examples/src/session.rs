//! What the application needs of a tracked session, for SQLite and PostgreSQL alike, and the
//! `task_db_session` helper of the original design.

use std::future::Future;
use std::sync::Arc;

use mercure_track::{
    ContextSource, FindRow, InsertRow, Predicate, Publisher, SetValue, TrackingSession, UpdateRows,
    WriteColumn,
};
use mercure_track_sqlx::capture::Capture;
use mercure_track_sqlx::{
    Background, BoundValue, CommitSummary, ContextRow, Dialect, Error, TrackedSession,
};
use serde::Serialize;
use sqlx::{Encode, FromRow, Pool, Type};

use crate::domain::{ColoringVersion, Image, Order, SvgVersion};

/// A session for a background task (the original design's `task_db_session`): publishes in
/// the background when a tracker is given, else awaits its publishes at each commit; with
/// `outbox`, writes its events to the outbox for the relay instead. With `capture` (the
/// application runs with `CAPTURE=1`), the session takes the changes its own transaction wrote
/// to the captured tables — plain SQL through `conn()` included — and publishes them at its
/// commit, once, leaving nothing of its own to the capture loop.
pub fn task_db_session<DB: Dialect>(
    pool: &Pool<DB>,
    publisher: Arc<dyn Publisher>,
    bg_tasks: Option<&Background>,
    outbox: bool,
    capture: Option<&Arc<Capture<DB>>>,
) -> TrackedSession<DB> {
    let session = TrackedSession::with_publisher(pool.clone(), publisher);
    let session = match bg_tasks {
        Some(tracker) => session.background(tracker.clone()),
        None => session,
    };
    let session = match capture {
        Some(capture) => session.capture(capture.clone()),
        None => session,
    };
    if outbox { session.outbox() } else { session }
}

/// An image of an order page, with its versions.
#[derive(Debug, Clone, Serialize)]
pub struct ImageView {
    /// The image.
    #[serde(flatten)]
    pub image: Image,
    /// The line item's title.
    pub title: String,
    /// Its colorings, oldest first.
    pub colorings: Vec<ColoringVersion>,
    /// Its svgs, oldest first.
    pub svgs: Vec<SvgVersion>,
}

#[derive(FromRow)]
struct ImageRow {
    id: i64,
    line_item_id: i64,
    selected_coloring_id: Option<i64>,
    selected_svg_id: Option<i64>,
    title: String,
}

/// Everything the application does with a session. Implemented by `TrackedSession<DB>` for
/// SQLite and PostgreSQL; the services and routes are written once, over this trait.
pub trait AppSession:
    Send
    + 'static
    + TrackingSession<ContextSource: ContextSource<String> + ContextSource<i64>>
    + WriteColumn<Order, String, Error = Error>
    + WriteColumn<ColoringVersion, String, Error = Error>
    + WriteColumn<ColoringVersion, i64, Error = Error>
    + WriteColumn<Image, Option<i64>, Error = Error>
    + FindRow<Order, Error = Error>
    + FindRow<ColoringVersion, Error = Error>
    + FindRow<Image, Error = Error>
    + FindRow<SvgVersion, Error = Error>
    + InsertRow<ColoringVersion, Error = Error>
    + UpdateRows<Order, Error = Error, Value: SetValue<String>>
{
    /// See [`TrackedSession::commit`].
    fn commit(&mut self) -> impl Future<Output = Result<CommitSummary, Error>> + Send;

    /// See [`TrackedSession::add_tracking_context`].
    fn add_tracking_context(&mut self, predicate: Predicate) -> &mut Self;

    /// Every order, by id.
    fn list_orders(&mut self) -> impl Future<Output = Result<Vec<Order>, Error>> + Send;

    /// The images of an order with their versions.
    fn order_images(
        &mut self,
        order_id: &str,
    ) -> impl Future<Output = Result<Vec<ImageView>, Error>> + Send;

    /// A new coloring version key, made by the database (a sequence on PostgreSQL, a counter
    /// row on SQLite): concurrent requests never get the same one.
    fn new_coloring_id(&mut self) -> impl Future<Output = Result<i64, Error>> + Send;

    /// The order `id`, locked until the transaction ends, so that a decision taken on its
    /// status (advance to the next one) cannot be overtaken by a concurrent request. On
    /// PostgreSQL `SELECT ... FOR UPDATE`; on SQLite the session already holds the database's
    /// write lock.
    fn find_order_for_update(
        &mut self,
        id: &str,
    ) -> impl Future<Output = Result<Order, Error>> + Send;
}

/// Whether `DB` is PostgreSQL (the statements that differ are chosen with it).
fn is_postgres<DB: sqlx::Database>() -> bool {
    DB::NAME == <sqlx::Postgres as sqlx::Database>::NAME
}

impl<DB> AppSession for TrackedSession<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    ContextRow<DB>: ContextSource<String> + ContextSource<i64>,
    TrackedSession<DB>: WriteColumn<Order, String, Error = Error>
        + WriteColumn<ColoringVersion, String, Error = Error>
        + WriteColumn<ColoringVersion, i64, Error = Error>
        + WriteColumn<Image, Option<i64>, Error = Error>
        + FindRow<Order, Error = Error>
        + FindRow<ColoringVersion, Error = Error>
        + FindRow<Image, Error = Error>
        + FindRow<SvgVersion, Error = Error>
        + InsertRow<ColoringVersion, Error = Error>
        + UpdateRows<Order, Error = Error, Value = BoundValue<DB>>,
    BoundValue<DB>: SetValue<String>,
    Order: for<'r> FromRow<'r, DB::Row>,
    ColoringVersion: for<'r> FromRow<'r, DB::Row>,
    SvgVersion: for<'r> FromRow<'r, DB::Row>,
    ImageRow: for<'r> FromRow<'r, DB::Row>,
    (i64,): for<'r> FromRow<'r, DB::Row>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
{
    fn commit(&mut self) -> impl Future<Output = Result<CommitSummary, Error>> + Send {
        TrackedSession::commit(self)
    }

    fn add_tracking_context(&mut self, predicate: Predicate) -> &mut Self {
        TrackedSession::add_tracking_context(self, predicate)
    }

    async fn list_orders(&mut self) -> Result<Vec<Order>, Error> {
        let conn = self.conn().await?;
        let orders =
            sqlx::query_as::<DB, Order>("SELECT id, customer, status FROM orders ORDER BY id")
                .fetch_all(&mut *conn)
                .await?;
        Ok(orders)
    }

    fn order_images(
        &mut self,
        order_id: &str,
    ) -> impl Future<Output = Result<Vec<ImageView>, Error>> + Send {
        let order_id = order_id.to_owned();
        async move {
            let conn = self.conn().await?;
            let images = sqlx::query_as::<DB, ImageRow>(
                "SELECT i.id, i.line_item_id, i.selected_coloring_id, i.selected_svg_id, li.title \
                 FROM images i JOIN line_items li ON li.id = i.line_item_id \
                 WHERE li.order_id = $1 ORDER BY i.id",
            )
            .bind(order_id.as_str())
            .fetch_all(&mut *conn)
            .await?;
            let colorings = sqlx::query_as::<DB, ColoringVersion>(
                "SELECT cv.id, cv.image_id, cv.status, cv.progress FROM coloring_versions cv \
                 JOIN images i ON i.id = cv.image_id JOIN line_items li ON li.id = i.line_item_id \
                 WHERE li.order_id = $1 ORDER BY cv.id",
            )
            .bind(order_id.as_str())
            .fetch_all(&mut *conn)
            .await?;
            let svgs = sqlx::query_as::<DB, SvgVersion>(
                "SELECT sv.id, sv.image_id, sv.status FROM svg_versions sv \
                 JOIN images i ON i.id = sv.image_id JOIN line_items li ON li.id = i.line_item_id \
                 WHERE li.order_id = $1 ORDER BY sv.id",
            )
            .bind(order_id.as_str())
            .fetch_all(&mut *conn)
            .await?;
            Ok(images
                .into_iter()
                .map(|row| ImageView {
                    colorings: colorings
                        .iter()
                        .filter(|c| c.image_id == row.id)
                        .cloned()
                        .collect(),
                    svgs: svgs
                        .iter()
                        .filter(|s| s.image_id == row.id)
                        .cloned()
                        .collect(),
                    image: Image {
                        id: row.id,
                        line_item_id: row.line_item_id,
                        selected_coloring_id: row.selected_coloring_id,
                        selected_svg_id: row.selected_svg_id,
                    },
                    title: row.title,
                })
                .collect())
        }
    }

    async fn new_coloring_id(&mut self) -> Result<i64, Error> {
        let sql = if is_postgres::<DB>() {
            "SELECT nextval('coloring_version_ids')"
        } else {
            "UPDATE coloring_version_ids SET last = last + 1 RETURNING last"
        };
        let conn = self.conn().await?;
        let (id,) = sqlx::query_as::<DB, (i64,)>(sql)
            .fetch_one(&mut *conn)
            .await?;
        Ok(id)
    }

    fn find_order_for_update(
        &mut self,
        id: &str,
    ) -> impl Future<Output = Result<Order, Error>> + Send {
        let id = id.to_owned();
        async move {
            let sql = if is_postgres::<DB>() {
                "SELECT id, customer, status FROM orders WHERE id = $1 FOR UPDATE"
            } else {
                "SELECT id, customer, status FROM orders WHERE id = $1"
            };
            let conn = self.conn().await?;
            sqlx::query_as::<DB, Order>(sql)
                .bind(id.as_str())
                .fetch_optional(&mut *conn)
                .await?
                .ok_or(Error::RowNotFound {
                    table: "orders",
                    key: format!("{id:?}"),
                })
        }
    }
}
