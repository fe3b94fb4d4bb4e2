//! The tracked session of mercure-track over sqlx, for SQLite and PostgreSQL.
//!
//! A [`TrackedSession`] wraps sqlx transactions. Writes through the setters that
//! `#[derive(Tracked)]` generates (`order.set_status(&mut session, ...)`), `insert` and
//! `delete` are recorded when they change something; after each commit the events they
//! trigger are published, each with the context of its own row, once.
//!
//! ```no_run
//! # use mercure_track::prelude::*;
//! # #[derive(Debug, Clone, sqlx::FromRow, Tracked)]
//! # #[tracked(table = "orders")]
//! # pub struct Order { #[tracked(primary_key)] pub id: String, pub status: String }
//! # #[derive(Debug, Clone, MercureEvent)]
//! # #[mercure(type = "order_update", topic = "orders/{order_id}")]
//! # #[trigger(Order::status)]
//! # pub struct OrderUpdate { #[context(Order::id)] pub order_id: String }
//! use mercure_track::HubPublisher;
//! use mercure_track_sqlx::TrackedSession;
//!
//! # async fn run(pool: sqlx::SqlitePool) -> Result<(), Box<dyn std::error::Error>> {
//! let mut session = TrackedSession::new(pool, HubPublisher::from_env()?);
//! session.track_changes::<OrderUpdate>();
//! let mut order = Order::find(&mut session, "abc").await?;
//! order.set_status(&mut session, "READY_FOR_REVIEW").await?;
//! session.commit().await?; // publishes {"type":"order_update","order_id":"abc"} to orders/abc
//! # Ok(()) }
//! ```
//!
//! # How a commit works
//!
//! 1. Each setter runs `UPDATE t SET c = $1 WHERE key = $2 AND c IS DISTINCT FROM $1`; one
//!    affected row means a change, recorded with the row's key when it triggers a tracked event.
//!    `insert` records once its `INSERT` wrote the row; `delete` resolves the contexts of its
//!    events while the row is still there and records them once its `DELETE` removed the row.
//!    A statement that fails, or writes no row, records nothing.
//! 2. At commit, before the transaction commits, the contexts are resolved per changed row:
//!    one query per event and changed model for all its rows (`key = ANY($1)` on PostgreSQL,
//!    `key IN (...)` on SQLite), joining along the `belongs_to` path the compiler inferred.
//!    A context that is the changed row's own key needs no query. An event whose context
//!    cannot be resolved is logged and skipped, or fails the commit
//!    ([`UnresolvedContext`]).
//! 3. The transaction commits; then each distinct event is published to its topics, followed
//!    by the batch events built from them. With a [`Background`] the commit returns as soon as
//!    the transaction is committed and its publishes have room in the background limit. The
//!    [`CommitSummary`] says how many updates
//!    were published, failed, or are still queued.
//!
//! A rollback, a rolled-back nested transaction, or a session dropped without commit
//! forgets its changes: nothing is published for them.
//!
//! # Context predicates
//!
//! [`TrackedSession::add_tracking_context`] (`Order::id.eq("abc")`) states what a transaction
//! works on. A predicate is an **assertion, never a value**: an event always carries the
//! context the database holds for its own changed row. At commit, each context value read
//! from a predicate's column (and the changed row's key, for a predicate on its model's key)
//! is compared with the predicates on that column; a value equal to none of them is logged
//! as a warning naming the event, the row, the column, the asserted and the found values,
//! and the event goes out as the database says. Predicates save no query. They last until
//! the end of the transaction they were added in: a commit or a rollback clears them, a
//! rolled-back nested transaction clears those added inside it.
//!
//! # Errors
//!
//! [`Error`] exposes `sqlx::Error` as is: the session is a thin layer over sqlx, which is the
//! application's own dependency (its `Pool` is what the session is built from). Every other
//! cause is a type of this crate or of `mercure_track`.

pub mod capture;
mod dialect;
mod dispatch;
mod error;
pub mod outbox;
mod resolve;
mod session;
mod set_based;
mod sql;
mod tracked;
mod write;

pub use dialect::{Dialect, Executed, KeyValue, SqlQuery, TrackedKey};
pub use dispatch::{Background, DEFAULT_BACKGROUND_LIMIT, drain};
pub use error::Error;
pub use resolve::ContextRow;
pub use session::{CommitSummary, DEFAULT_PUBLISH_CONCURRENCY, TrackedSession, UnresolvedContext};
pub use set_based::BoundValue;
pub use tokio_util::task::TaskTracker;
#[doc(hidden)]
pub use write::Binder;
