//! What a session can do with rows: the bounds to write code generic over the database.
//!
//! The setters `#[derive(Tracked)]` generates and the row methods of [`Model`] (`find`,
//! `insert`, `delete`) are generic over the session, so that this crate needs no database
//! driver. `mercure_track_sqlx::TrackedSession<DB>` implements these four traits for SQLite and
//! PostgreSQL. To write a service once for both, bound on the operations it performs, with the
//! session's error:
//!
//! ```
//! use mercure_track::prelude::*;
//! use mercure_track::{FindRow, WriteColumn};
//!
//! #[derive(Debug, Clone, Tracked)]
//! #[tracked(table = "orders")]
//! pub struct Order {
//!     #[tracked(primary_key)]
//!     pub id: String,
//!     pub status: String,
//! }
//!
//! /// Works with `TrackedSession<Sqlite>` and `TrackedSession<Postgres>` alike.
//! pub async fn mark_ready<S, E>(session: &mut S, order_id: &str) -> Result<bool, E>
//! where
//!     S: FindRow<Order, Error = E> + WriteColumn<Order, String, Error = E>,
//! {
//!     let mut order = Order::find(session, order_id).await?;
//!     order.set_status(session, "READY").await
//! }
//! ```
//!
//! `WriteColumn<M, T>` is per column type: a setter of a `String` column needs
//! `WriteColumn<Order, String>`. Several bounds are easier to read gathered in a trait of your
//! own with a blanket implementation (the example application's `AppSession` does this).

use std::future::Future;

use crate::model::{Column, Model};

/// A session that can write column `T` of model `M`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot write a column of type `{T}` of `{M}`",
    label = "expected a tracked session, such as `TrackedSession<DB>`, whose database encodes `{T}` and the key of `{M}`",
    note = "setters write through a tracked session: `order.set_status(&mut session, value)`"
)]
pub trait WriteColumn<M: Model, T>: Send {
    /// The session's error.
    type Error;

    /// Sets `column` of the row with primary key `key` to `value`. Returns whether the value
    /// changed; a change is recorded for the commit only then.
    fn write_column<'a>(
        &'a mut self,
        column: Column<M, T>,
        key: &'a M::Key,
        value: &'a T,
    ) -> impl Future<Output = Result<bool, Self::Error>> + Send + 'a;
}

/// A session that can load rows of `M`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot load rows of `{M}`",
    label = "expected a tracked session, such as `TrackedSession<DB>`, that can decode `{M}` (`sqlx::FromRow`)"
)]
pub trait FindRow<M: Model>: Send {
    /// The session's error.
    type Error;

    /// The row with primary key `key`; an error when there is none.
    fn find_row<'a>(
        &'a mut self,
        key: &'a M::Key,
    ) -> impl Future<Output = Result<M, Self::Error>> + Send + 'a;
}

/// A session that can insert rows of `M`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot insert rows of `{M}`",
    label = "expected a tracked session, such as `TrackedSession<DB>`, whose database encodes every column of `{M}`"
)]
pub trait InsertRow<M: Model>: Send {
    /// The session's error.
    type Error;

    /// Inserts `row` (every column) and records `M::INSERT`.
    fn insert_row<'a>(
        &'a mut self,
        row: &'a M,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'a;
}

/// A session that can delete rows of `M`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot delete rows of `{M}`",
    label = "expected a tracked session, such as `TrackedSession<DB>`, whose database encodes the key of `{M}`"
)]
pub trait DeleteRow<M: Model>: Send {
    /// The session's error.
    type Error;

    /// Deletes the row with primary key `key`, resolving the contexts of `M::DELETE` events
    /// first; an error when there is no such row.
    fn delete_row<'a>(
        &'a mut self,
        key: &'a M::Key,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'a;
}

/// Binds every column value of a row, in [`Model::COLUMNS`] order. Implemented by
/// `#[derive(Tracked)]` for every binder that accepts each column's type. Not public API: the
/// interface between the derive and a session's `insert`.
#[doc(hidden)]
pub trait BindColumns<B> {
    /// Binds the values.
    fn bind_columns(&self, binder: &mut B);
}

/// Accepts values of type `T` for a statement being built. Not public API.
#[doc(hidden)]
pub trait BindValue<T> {
    /// Binds one value.
    fn bind_value(&mut self, value: &T);
}
