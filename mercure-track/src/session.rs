//! The contract between the code `#[derive(Tracked)]` generates (setters, `find`, `insert`,
//! `delete`) and a session that executes it, such as `mercure_track_sqlx::TrackedSession`.
//!
//! The generated methods are generic over the session, so that this crate needs no database
//! driver; the bounds on each trait say which column types a session can write.

use std::future::Future;

use crate::model::{Column, Model};

/// A session that can write column `T` of model `M`.
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
/// `#[derive(Tracked)]` for every binder that accepts each column's type.
pub trait BindColumns<B> {
    /// Binds the values.
    fn bind_columns(&self, binder: &mut B);
}

/// Accepts values of type `T` for a statement being built.
pub trait BindValue<T> {
    /// Binds one value.
    fn bind_value(&mut self, value: &T);
}
