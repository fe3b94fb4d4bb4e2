//! The errors of the tracked session.

use mercure_track::ContextError;

/// An error of a [`TrackedSession`](crate::TrackedSession) operation.
///
/// Publishing never produces one: a failed publish is logged, and the commit stands.
///
/// The database's errors are `sqlx::Error`s, exposed as they are: sqlx is the application's
/// own dependency, and its errors (constraint violations, `RowNotFound` from plain queries)
/// are what the application already matches on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    /// A setter, `find` or `delete` named a row that does not exist.
    #[error("no row in `{table}` with key {key}")]
    RowNotFound {
        /// The table.
        table: &'static str,
        /// The key, as `Debug` prints it.
        key: String,
    },
    /// An `insert` wrote no row and no error: a trigger of the database dropped it
    /// (`RAISE(IGNORE)` on SQLite, a `BEFORE` trigger returning `NULL` on PostgreSQL). Nothing
    /// is recorded for it.
    #[error("no row was inserted into `{table}` for key {key}")]
    NotInserted {
        /// The table.
        table: &'static str,
        /// The key, as `Debug` prints it.
        key: String,
    },
    /// `commit_nested` or `rollback_nested` without `begin_nested`.
    #[error("no nested transaction is open")]
    NoNestedTransaction,
    /// An event's context could not be resolved (a dangling foreign key, a row deleted in the
    /// same transaction, a captured change whose key the capture's shadow table no longer
    /// holds), and the session is configured to fail then.
    #[error("the context of `{event}` for `{table}` row {key} could not be resolved")]
    UnresolvedContext {
        /// The event type.
        event: &'static str,
        /// The changed row's table.
        table: &'static str,
        /// The changed row's key; for a captured change whose key is unknown, its log row,
        /// as `(log row N)`.
        key: String,
    },
    /// A resolved context value could not be turned into the event field.
    #[error("the context of `{event}` could not be read: {source}")]
    Context {
        /// The event type.
        event: &'static str,
        /// Why.
        #[source]
        source: ContextError,
    },
}
