//! Capture: writes made outside the setters — plain SQL through [`TrackedSession::conn`],
//! migrations, `psql`, jobs in other languages — turned into the same typed events.
//!
//! Capture is opt-in, per model. [`install`] (or the SQL of [`ddl`], to copy into a
//! migration) adds triggers to the model's table that append each **real** change (`IS
//! DISTINCT FROM` on PostgreSQL, `IS NOT` on SQLite, on the columns that trigger events) to a
//! change log, `mercure_capture_log`, with the changed trigger columns; the row's key goes to a
//! shadow table `mercure_capture__<table>`, and for a delete the whole deleted row, so that
//! its event carries the context the row had. What is captured is what the events of the
//! program trigger on the model: its trigger columns, `Model::INSERT`, `Model::DELETE`.
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
//! use std::sync::Arc;
//! use mercure_track_sqlx::capture::{self, Capture, CaptureConfig, CaptureLoop};
//!
//! # async fn run(pool: sqlx::SqlitePool, publisher: Arc<dyn mercure_track::Publisher>)
//! # -> Result<(), mercure_track_sqlx::Error> {
//! capture::install::<_, Order>(&pool).await?;        // or copy capture::ddl::<Sqlite, Order>()
//! let capture = Arc::new(Capture::new().model::<Order>().track::<OrderUpdate>());
//! let worker = CaptureLoop::new(pool.clone(), capture.clone(), publisher, CaptureConfig::default());
//! tokio::spawn(worker.run(std::future::pending()));
//! // Sessions that write captured tables take the capture too: see below.
//! # Ok(()) }
//! ```
//!
//! # Outside any session: the capture loop
//!
//! A [`CaptureLoop`] (in the web process, or a process of its own) claims committed log rows
//! in log order, resolves their contexts exactly as a session's commit does (per row, one
//! query per event and model for the whole batch; a deleted row's context from the values the
//! trigger saved), and publishes the events directly or writes them to the outbox
//! ([`CaptureDelivery`]), where a relay publishes them. It never holds a transaction across a
//! call to the hub: it **claims** rows in one statement (owner and lease), **resolves** and
//! **publishes** with nothing open, then **deletes** the delivered rows, in one short
//! transaction (with the outbox write, in outbox mode). The log is the loop's position: a loop
//! that dies leaves claimed rows whose lease expires, and any loop takes them again — nothing
//! is lost (a loop whose lease ran out while it published deletes none of the rows taken
//! over, nor what the triggers saved of them); with direct delivery an event may then be
//! published twice (at least once); with the outbox, the outbox write and the deletion commit
//! together (exactly once into the outbox). Several loops on PostgreSQL claim with `FOR UPDATE
//! SKIP LOCKED` and never take the same row while its lease runs (a claim in flight is
//! skipped, not waited for).
//!
//! Wake-up. On PostgreSQL the trigger sends `pg_notify('mercure_capture', schema)`, delivered
//! at commit; the loop `LISTEN`s and wakes at once for its own schema (the schema current when
//! the capture was installed: the function names it, so a writer with another `search_path`
//! writing `schema.table` logs to the same place). SQLite has no notification between
//! connections: a [`TrackedSession`](crate::TrackedSession)'s commit wakes the loops of its
//! process; a write of another process, or a plain statement on the pool outside any session,
//! waits for [`CaptureConfig::poll_interval`], the fallback everywhere. A SQLite loop looks for
//! claimable rows with a read before it claims, so a wake-up or a poll that finds nothing does
//! not take the write lock.
//!
//! Order: rows are claimed in log order (`seq`) and a round is delivered before the next one
//! claims. On SQLite (one writer) log order is commit order. On PostgreSQL `seq` is drawn when
//! the row is written: two transactions changing the same row keep their commit order (the
//! second waits for the first's row lock); rows of unrelated concurrent transactions go out in
//! the order they were written among those committed when the loop claims. Within a round the
//! changes are delivered as one commit's are: events built per model, equal events once, batch
//! events after the events they collect.
//!
//! # Inside a tracked session
//!
//! A session given the capture ([`TrackedSession::capture`]) takes, at its commit and inside
//! its transaction, the log rows its own transaction wrote (PostgreSQL: the transaction id;
//! SQLite: the rows after the last one when its `BEGIN IMMEDIATE` took the write lock),
//! resolves them with its own changes, deletes them, and commits: a plain-SQL write through
//! [`TrackedSession::conn`] publishes at that commit like a setter's write. A setter's write
//! is seen twice (recorded by the setter, logged by the trigger); the two events are equal and
//! go out once. A rollback, or a rolled-back savepoint, removes the log rows with the rest.
//! A session **without** the capture that writes a captured table leaves its log rows to the
//! capture loop: its events then go out twice (once by the session, once by the loop).
//!
//! # What is not captured
//!
//! - `TRUNCATE` (no row triggers fire). On SQLite `DELETE FROM t` without `WHERE` fires them
//!   (the truncate optimization is off for tables with triggers).
//! - Writes with triggers off: on PostgreSQL `session_replication_role = replica` (logical
//!   replication's apply workers, `pg_restore --disable-triggers`) and `ALTER TABLE ...
//!   DISABLE TRIGGER`; on SQLite a database file replaced or restored as a whole (a copy,
//!   `.restore`, `VACUUM INTO` and back).
//! - Columns no event of the program triggers on, and writes that change nothing (an `UPDATE`
//!   to the same value, `NULL` to `NULL`).
//! - Triggers of events added after the installation: the generated SQL follows the events
//!   linked into the program that generated it; install again (or regenerate the migration)
//!   when they change.
//! - Changes still in the log when [`uninstall`] runs (it reports how many).
//! - Tables whose model is not in the loop's [`Capture`]: their rows stay in the log (logged
//!   as a warning) for a loop that knows them.
//!
//! # Costs
//!
//! Each captured change is paid by the writer, in its transaction: the trigger (on PostgreSQL a
//! PL/pgSQL call, after a `WHEN` that skips rows whose trigger columns did not change) inserts
//! one log row and one shadow row, each with its index, and on PostgreSQL calls `pg_notify`
//! (collapsed by the server to one notification per transaction). Measured on a shared 2-core
//! machine (`BENCHMARKS.md`, "Capture"): a 10 000-row `UPDATE` costs about 25 µs more per row
//! on PostgreSQL (4–5× the bare statement) and about 2.5 µs more per row on SQLite (the bare
//! statement being far cheaper there, the ratio is large and noisy). Outside writes reach the
//! hub in about 10 ms on PostgreSQL (the notification) and in the poll interval on SQLite; a
//! session's commit in the same SQLite process in about 1 ms. On a captured table a setter's
//! write pays the trigger too (its log row is taken back by the session's commit: one read
//! and one delete per commit that wrote captured tables).
//!
//! [`TrackedSession::conn`]: crate::TrackedSession::conn
//! [`TrackedSession::capture`]: crate::TrackedSession::capture

mod ddl;
mod worker;

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;
use mercure_track::{FromContext, MercureEvent, Model, RowChange, RowTrigger, Trigger, TriggerKey};
use sqlx::{Pool, Postgres, Sqlite, Transaction};

pub use worker::{CaptureConfig, CaptureDelivery, CaptureLoop, CaptureRound};

use crate::dialect::{Dialect, SqlQuery, TrackedKey, quote};
use crate::error::Error;
use crate::resolve::{
    Change, ContextRow, ErasedKey, ResolveScope, Resolved, Unresolved, resolve_model_from,
};
use crate::tracked::TrackedEvents;

pub(crate) const SQLITE_LOG: &str =
    include_str!("../../migrations/sqlite/0100_mercure_capture_log.sql");
pub(crate) const POSTGRES_LOG: &str =
    include_str!("../../migrations/postgres/0100_mercure_capture_log.sql");

/// The capture statements that differ between databases.
pub struct CaptureSql<DB: sqlx::Database> {
    install: fn(&ddl::Watched) -> Vec<String>,
    uninstall: fn(&mercure_track::ModelInfo) -> Vec<String>,
    /// Appended to the claim's choice of rows.
    skip_locked: &'static str,
    /// The rows of the open transaction, after `$1`.
    own_rows: &'static str,
    /// The mark taken when a session's transaction opens (the rows after it are its own).
    own_mark: Option<&'static str>,
    /// Starts listening for commits that wrote the log.
    listen: Option<Listen<DB>>,
    /// Looks for claimable rows with a read before claiming (where a claim that finds
    /// nothing still takes the database's write lock).
    peek: Option<&'static str>,
}

/// Starts listening for commits that wrote the log.
type Listen<DB> = fn(&Pool<DB>) -> BoxFuture<'_, Result<worker::Listener, sqlx::Error>>;

impl<DB: sqlx::Database> std::fmt::Debug for CaptureSql<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureSql").finish_non_exhaustive()
    }
}

const LOG_COLUMNS: &str = "seq, table_name, op, columns";

/// SQLite: one writer at a time, so the rows after the mark taken under the write lock are the
/// transaction's own.
pub const SQLITE_CAPTURE: CaptureSql<Sqlite> = CaptureSql {
    install: ddl::sqlite_install,
    uninstall: ddl::sqlite_uninstall,
    skip_locked: "",
    own_rows: "SELECT seq, table_name, op, columns FROM mercure_capture_log WHERE seq > $1 ORDER BY seq",
    own_mark: Some("SELECT COALESCE(MAX(seq), 0) FROM mercure_capture_log"),
    listen: None,
    peek: Some(
        "SELECT 1 FROM mercure_capture_log WHERE claimed_until IS NULL OR claimed_until < $1 LIMIT 1",
    ),
};

/// PostgreSQL: the transaction id tells a transaction's rows; claims skip locked rows;
/// commits notify.
pub const POSTGRES_CAPTURE: CaptureSql<Postgres> = CaptureSql {
    install: ddl::postgres_install,
    uninstall: ddl::postgres_uninstall,
    skip_locked: " FOR UPDATE SKIP LOCKED",
    own_rows: "SELECT seq, table_name, op, columns FROM mercure_capture_log \
        WHERE txid = pg_current_xact_id_if_assigned() AND seq > $1 ORDER BY seq",
    own_mark: None,
    listen: Some(worker::listen_postgres),
    peek: None,
};

/// Commits of tracked sessions in this process, counted: capture loops without a
/// notification from the database (SQLite) wait on it as well as on their poll interval.
static COMMITS: std::sync::LazyLock<tokio::sync::watch::Sender<u64>> =
    std::sync::LazyLock::new(|| tokio::sync::watch::Sender::new(0));

/// Called by a tracked session after each commit: wakes the capture loops of this process
/// where the database does not notify them (SQLite). A loop woken for another database, or
/// for a commit that wrote nothing captured, looks at the log with one read and waits again.
pub(crate) fn committed<DB: Dialect>() {
    // No loop of this process waits (none subscribed): nothing to wake, and the counter's
    // lock, shared by the commits of every thread, is not taken. A loop that subscribes later
    // reads the log in its first round.
    if DB::CAPTURE.listen.is_none() && COMMITS.receiver_count() > 0 {
        COMMITS.send_modify(|n| *n = n.wrapping_add(1));
    }
}

/// The commits of this process's tracked sessions, for a loop to wait on.
fn commits() -> tokio::sync::watch::Receiver<u64> {
    COMMITS.subscribe()
}

/// The statements that install the capture of `M` on `DB`, as one script to copy into a
/// migration (statements separated by a blank line and `;`). The script is idempotent. It
/// depends on the events this program links: regenerate it when triggers change.
///
/// The change log table is created by the first statement (the same SQL as
/// `migrations/<db>/0100_mercure_capture_log.sql`).
pub fn ddl<DB: Dialect, M: Model>() -> String {
    script((DB::CAPTURE.install)(&ddl::Watched::of(M::info())))
}

/// The statements that remove the capture of `M` (triggers, function, shadow table), as one
/// script. The change log table stays (other models may use it).
pub fn uninstall_ddl<DB: Dialect, M: Model>() -> String {
    script((DB::CAPTURE.uninstall)(&M::info()))
}

fn script(statements: Vec<String>) -> String {
    let mut text = statements.join(";\n\n");
    text.push_str(";\n");
    text
}

/// Installs the capture of `M` (see [`ddl`]) in one transaction. Returns whether anything is
/// captured (no event of the program triggers on `M`: nothing is installed).
pub async fn install<DB: Dialect, M: Model>(pool: &Pool<DB>) -> Result<bool, Error> {
    let watched = ddl::Watched::of(M::info());
    if watched.is_empty() {
        tracing::warn!(
            table = M::TABLE,
            "capture not installed: no event triggers on this model"
        );
        return Ok(false);
    }
    run_all(pool, (DB::CAPTURE.install)(&watched)).await?;
    Ok(true)
}

/// Removes the capture of `M` in one transaction. The changes of `M` still in the log are
/// removed with it and never published: returns how many (logged when not zero). Stop writing,
/// or let the capture loop catch up, before.
pub async fn uninstall<DB: Dialect, M: Model>(pool: &Pool<DB>) -> Result<u64, Error> {
    const PENDING: &str = "DELETE FROM mercure_capture_log WHERE table_name = $1";
    let mut tx = pool.begin().await?;
    let pending = match DB::execute(&mut tx, DB::bind_text(sqlx::query(PENDING), M::TABLE)).await {
        Ok(pending) => pending,
        // No log table: nothing was ever installed. (A failed statement aborts a PostgreSQL
        // transaction: start another.)
        Err(sqlx::Error::Database(_)) => {
            tx.rollback().await?;
            tx = pool.begin().await?;
            0
        }
        Err(error) => return Err(error.into()),
    };
    if pending > 0 {
        tracing::warn!(
            table = M::TABLE,
            pending,
            "capture removed with changes not yet published"
        );
    }
    for statement in (DB::CAPTURE.uninstall)(&M::info()) {
        DB::execute(&mut tx, sqlx::query(&statement)).await?;
    }
    tx.commit().await?;
    Ok(pending)
}

async fn run_all<DB: Dialect>(pool: &Pool<DB>, statements: Vec<String>) -> Result<(), Error> {
    let mut tx = pool.begin().await?;
    for statement in statements {
        DB::execute(&mut tx, sqlx::query(&statement)).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// One row of the change log.
#[derive(Debug, Clone)]
pub(crate) struct LogRow {
    pub(crate) seq: i64,
    pub(crate) table: String,
    pub(crate) op: String,
    pub(crate) columns: String,
}

impl LogRow {
    fn read<DB: Dialect>(row: &DB::Row) -> Result<Self, Error> {
        Ok(Self {
            seq: DB::decode_i64(row, 0)?,
            table: DB::decode_text(row, 1)?,
            op: DB::decode_text(row, 2)?,
            columns: DB::decode_text(row, 3)?,
        })
    }
}

/// Resolves the log rows of one model.
type CaptureResolver<DB> = for<'a> fn(
    &'a mut <DB as sqlx::Database>::Connection,
    &'a [LogRow],
    &'a ResolveScope<'a, DB>,
) -> BoxFuture<'a, Result<Resolved, Error>>;

/// The captured models, and the events a capture loop publishes for their changes.
pub struct Capture<DB: Dialect> {
    models: HashMap<&'static str, CaptureResolver<DB>>,
    tracked: TrackedEvents<DB>,
}

impl<DB: Dialect> std::fmt::Debug for Capture<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("tables", &self.models.keys().collect::<Vec<_>>())
            .field(
                "tracked",
                &self
                    .tracked
                    .descriptors()
                    .map(|d| d.type_name)
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl<DB: Dialect> Default for Capture<DB> {
    fn default() -> Self {
        Self::new()
    }
}

impl<DB: Dialect> Capture<DB> {
    /// No model, no event.
    pub fn new() -> Self {
        Self {
            models: HashMap::new(),
            tracked: TrackedEvents::default(),
        }
    }

    /// Reads the captured changes of `M` (install its triggers with [`install`] or [`ddl`]).
    #[must_use]
    pub fn model<M>(mut self) -> Self
    where
        M: Model,
        M::Key: TrackedKey<DB>,
    {
        self.models.insert(M::TABLE, resolve_captured::<DB, M>);
        self
    }

    /// Publishes `E` for the captured changes that trigger it (in a capture loop; a session
    /// publishes the events it tracks).
    #[must_use]
    pub fn track<E>(mut self) -> Self
    where
        E: MercureEvent + FromContext<ContextRow<DB>>,
    {
        self.tracked.track::<E>();
        self
    }
}

/// The trigger of one log row's change of `M`.
fn triggers_of<M: Model>(row: &LogRow) -> Vec<TriggerKey> {
    match row.op.as_str() {
        "I" => vec![RowTrigger::<M>::__new(RowChange::Insert).trigger_key()],
        "D" => vec![RowTrigger::<M>::__new(RowChange::Delete).trigger_key()],
        _ => row
            .columns
            .split(',')
            .filter(|c| !c.is_empty())
            .filter_map(|name| {
                M::COLUMNS.iter().find(|c| c.name == name).map(|c| {
                    TriggerKey::Column(mercure_track::ColumnKey {
                        table: M::TABLE,
                        column: c.name,
                    })
                })
            })
            .collect(),
    }
}

fn seq_list(rows: &[&LogRow]) -> String {
    rows.iter()
        .map(|r| r.seq.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

fn resolve_captured<'a, DB, M>(
    conn: &'a mut DB::Connection,
    rows: &'a [LogRow],
    scope: &'a ResolveScope<'a, DB>,
) -> BoxFuture<'a, Result<Resolved, Error>>
where
    DB: Dialect,
    M: Model,
    M::Key: TrackedKey<DB>,
{
    Box::pin(async move {
        let mut resolved = Resolved::default();
        if rows.is_empty() {
            return Ok(resolved);
        }
        let shadow = quote(&ddl::shadow_table(M::TABLE));
        let key = quote(M::info().primary_key_column().name);
        let all: Vec<&LogRow> = rows.iter().collect();
        // The keys, in their own type, from the shadow table (seq values come from the
        // database: integers, written in the statement).
        let sql = format!(
            "SELECT mercure_seq, {key} FROM {shadow} WHERE mercure_seq IN ({})",
            seq_list(&all)
        );
        let mut keys: HashMap<i64, ErasedKey> = HashMap::new();
        for row in DB::fetch_all(conn, sqlx::query(&sql)).await? {
            let key: M::Key = DB::decode(&row, 1)?;
            keys.insert(DB::decode_i64(&row, 0)?, Arc::new(key));
        }
        let (mut live, mut deleted) = (Vec::new(), Vec::new());
        for row in rows {
            let Some(key) = keys.get(&row.seq) else {
                // Neither key nor context can be read: each event the change fires (once,
                // however many of its columns changed) is unresolved, counted in the round and
                // logged by `settle`, not silently lost.
                let mut fired: Vec<&'static str> = Vec::new();
                for trigger in triggers_of::<M>(row) {
                    for event in scope.tracked.triggered_by(trigger) {
                        let name = event.descriptor.type_name;
                        if !fired.contains(&name) {
                            fired.push(name);
                            resolved.unresolved.push(Unresolved::no_saved_row(
                                name,
                                M::TABLE,
                                row.seq,
                            ));
                        }
                    }
                }
                if fired.is_empty() {
                    // No event lost, but a state that should not arise: say so.
                    tracing::warn!(
                        table = M::TABLE,
                        seq = row.seq,
                        "captured change without its key in the shadow table"
                    );
                }
                continue;
            };
            for trigger in triggers_of::<M>(row) {
                let change = Change {
                    key: key.clone(),
                    trigger,
                };
                if row.op == "D" {
                    deleted.push((row, change));
                } else {
                    live.push(change);
                }
            }
        }
        if !live.is_empty() {
            resolved.extend(resolve_model_from::<DB, M>(conn, &live, scope, None).await?);
        }
        // A key deleted more than once in the round (deleted, inserted again, deleted again)
        // has a saved row per deletion, each with its own context: the deletions go in
        // generations (a key's first deletion in the first, its second in the second...), so
        // that each relation the resolver reads holds one row per key.
        for generation in generations::<DB, M>(deleted) {
            let rows: Vec<&LogRow> = generation.iter().map(|(row, _)| *row).collect();
            let from = format!(
                "(SELECT * FROM {shadow} WHERE mercure_seq IN ({}))",
                seq_list(&rows)
            );
            let changes: Vec<Change> = generation.into_iter().map(|(_, c)| c).collect();
            resolved.extend(resolve_model_from::<DB, M>(conn, &changes, scope, Some(from)).await?);
        }
        Ok(resolved)
    })
}

/// Splits the deletions of a round so that no key is deleted twice in one part: a key's
/// `n`-th deletion goes to part `n`, in log order within each part. Most rounds make one part.
fn generations<'r, DB, M>(deleted: Vec<(&'r LogRow, Change)>) -> Vec<Vec<(&'r LogRow, Change)>>
where
    DB: Dialect,
    M: Model,
    M::Key: TrackedKey<DB>,
{
    let mut seen: HashMap<&M::Key, usize> = HashMap::new();
    let placed: Vec<usize> = deleted
        .iter()
        .map(|(_, change)| match change.key.downcast_ref::<M::Key>() {
            Some(key) => {
                let count = seen.entry(key).or_insert(0);
                *count += 1;
                *count - 1
            }
            // Not a key of `M` (cannot happen): the resolver logs it.
            None => 0,
        })
        .collect();
    drop(seen);
    let mut parts: Vec<Vec<(&'r LogRow, Change)>> = Vec::new();
    for (deletion, part) in deleted.into_iter().zip(placed) {
        if parts.len() <= part {
            parts.resize_with(part + 1, Vec::new);
        }
        parts[part].push(deletion);
    }
    parts
}

/// Resolves `rows` (sorted by `seq`) table by table, in the order each table first appears.
/// Rows of tables this capture does not know are returned apart.
pub(crate) async fn resolve_rows<DB: Dialect>(
    conn: &mut DB::Connection,
    capture: &Capture<DB>,
    rows: &[LogRow],
    scope: &ResolveScope<'_, DB>,
) -> Result<(Resolved, Vec<i64>), Error> {
    let mut groups: Vec<(&str, Vec<LogRow>)> = Vec::new();
    for row in rows {
        match groups.iter_mut().find(|(t, _)| *t == row.table) {
            Some((_, group)) => group.push(row.clone()),
            None => groups.push((&row.table, vec![row.clone()])),
        }
    }
    let mut resolved = Resolved::default();
    let mut unknown = Vec::new();
    for (table, group) in groups {
        match capture.models.get(table) {
            Some(resolver) => resolved.extend(resolver(&mut *conn, &group, scope).await?),
            None => {
                tracing::warn!(
                    table,
                    rows = group.len(),
                    "captured changes of a table this capture does not know: left in the log"
                );
                unknown.extend(group.iter().map(|r| r.seq));
            }
        }
    }
    Ok((resolved, unknown))
}

/// Deletes delivered log rows and their shadow rows, in `conn`'s transaction. `owner`: only
/// rows this loop still holds. Returns how many log rows were deleted.
pub(crate) async fn forget<DB: Dialect>(
    conn: &mut DB::Connection,
    rows: &[LogRow],
    owner: Option<&str>,
) -> Result<u64, Error> {
    if rows.is_empty() {
        return Ok(0);
    }
    let all: Vec<&LogRow> = rows.iter().collect();
    let mut sql = format!(
        "DELETE FROM mercure_capture_log WHERE seq IN ({})",
        seq_list(&all)
    );
    let deleted = match owner {
        Some(owner) => {
            sql.push_str(" AND claimed_by = $1");
            DB::execute(conn, DB::bind_text(sqlx::query(&sql), owner)).await?
        }
        None => DB::execute(conn, sqlx::query(&sql)).await?,
    };
    let mut tables: Vec<&str> = rows.iter().map(|r| r.table.as_str()).collect();
    tables.sort_unstable();
    tables.dedup();
    // Only the saved rows of the log rows deleted: a row another loop holds now (this loop's
    // lease ran out) keeps what its events are built from.
    for table in tables {
        let of_table: Vec<&LogRow> = rows.iter().filter(|r| r.table == table).collect();
        let seqs = seq_list(&of_table);
        let sql = format!(
            "DELETE FROM {} WHERE mercure_seq IN ({seqs}) \
             AND mercure_seq NOT IN (SELECT seq FROM mercure_capture_log WHERE seq IN ({seqs}))",
            quote(&ddl::shadow_table(table)),
        );
        DB::execute(conn, sqlx::query(&sql)).await?;
    }
    Ok(deleted)
}

/// For a session: the mark taken when its transaction opens (0 where the database tells a
/// transaction's rows apart itself).
pub(crate) async fn session_mark<DB: Dialect>(conn: &mut DB::Connection) -> Result<i64, Error> {
    let Some(sql) = DB::CAPTURE.own_mark else {
        return Ok(0);
    };
    match DB::fetch_optional(conn, sqlx::query(sql)).await {
        Ok(Some(row)) => Ok(DB::decode_i64(&row, 0)?),
        Ok(None) => Ok(0),
        Err(error) => Err(error.into()),
    }
}

/// For a session's commit, inside its transaction: the events of the log rows its own
/// transaction wrote, which are deleted so that no capture loop publishes them again. Returns
/// the events and how many rows there were.
pub(crate) async fn take_own<DB: Dialect>(
    tx: &mut Transaction<'static, DB>,
    capture: &Capture<DB>,
    mark: i64,
    scope: &ResolveScope<'_, DB>,
) -> Result<(Resolved, usize), Error> {
    let query: SqlQuery<'_, DB> = DB::bind_i64(sqlx::query(DB::CAPTURE.own_rows), mark);
    let rows = DB::fetch_all(&mut **tx, query).await?;
    let rows: Vec<LogRow> = rows
        .iter()
        .map(LogRow::read::<DB>)
        .collect::<Result<_, _>>()?;
    if rows.is_empty() {
        return Ok((Resolved::default(), 0));
    }
    let (resolved, unknown) = resolve_rows(&mut **tx, capture, &rows, scope).await?;
    let known: Vec<LogRow> = rows
        .iter()
        .filter(|r| !unknown.contains(&r.seq))
        .cloned()
        .collect();
    forget::<DB>(&mut **tx, &known, None).await?;
    Ok((resolved, known.len()))
}
