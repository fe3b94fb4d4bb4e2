//! The transactional outbox: delivery that loses nothing.
//!
//! A session in outbox mode ([`TrackedSession::outbox`](crate::TrackedSession::outbox)) does
//! not publish after its commit: it writes its events — individual and batch, each with a new
//! UUIDv7 — into the `mercure_outbox` table **in the same transaction**. A rollback leaves
//! nothing; a commit leaves every event, even if the process dies the next instant. A
//! [`Relay`] then publishes them, with the event id as the Mercure update id, and marks them
//! delivered.
//!
//! # No transaction across the network
//!
//! A relay works in three steps, none of which holds a transaction or a lock while the hub is
//! called: it **claims** work in one short transaction (each claimed row gets the relay's owner
//! id and a lease expiry, [`RelayConfig::lease`]), **publishes** with nothing open, then
//! **records** the outcomes in one short transaction (the answers gathered since the last one,
//! together with the next claim). A relay that dies leaves leases that expire; any relay then
//! takes the rows over. Application writes never wait on the hub.
//!
//! # Order: lanes
//!
//! The events of one topic set (for most events, one topic) form a *lane*. Lanes are published
//! concurrently, up to [`RelayConfig::concurrency`] lanes (so updates) in flight; within a lane
//! one update is in flight at a time and the next leaves only after the hub answered the
//! previous one, in outbox order. A lane whose first event waits for a retry holds the lane's
//! later events back; other lanes go on.
//!
//! A claim takes a *run* per lane: the lane's first pending row (its head) and the rows that
//! follow it, up to [`RelayConfig::run_length`] updates (batch events merged, below). The
//! lane's task sends them one after another; at the first failure it stops, and the rest of
//! the run goes back in line untouched (no attempt counted, the lease cleared) when the
//! failure is recorded. A run also stops once half of its lease has passed, so that a lease
//! never expires under a run still sending. A busy lane thus costs one claim per run, not one
//! per update. The claim finds the lanes by a loose scan of the pending index on
//! `(lane, seq)`: one index probe per lane that has pending rows, however long the backlog.
//!
//! Outbox order is the order of the rows' sequence numbers. On SQLite (one writer at a time)
//! that is commit order. On PostgreSQL the sequence is drawn when the row is written, so two
//! concurrent transactions may commit in the other order: transactions that wrote the same rows
//! (an update of the same order) are serialized by the database and keep their commit order;
//! for transactions that touched different rows the order of their updates in a shared lane
//! (the `orders` list) is the order they wrote the outbox, and a row that becomes visible after
//! a later one was already published goes out after it. Batch events say "refetch these ids",
//! so that order does not change what a subscriber ends up showing.
//!
//! # Merging batch events
//!
//! Batch events of the same type waiting in the same lane are merged before they leave, by
//! their batch rule: the union of their id lists, sorted, unique (see `merge`). A hot topic
//! (every commit sends a `list_update` to `orders`) thus sends one update per hub round trip
//! whatever the commit rate, and its lag stays near one round trip. The merged update carries
//! the id of the first merged event; the others' ids are not sent. Only consecutive batch events
//! merge (an individual event in the same lane is a boundary), at most
//! [`RelayConfig::max_merge`] of them, and the group is fixed when first claimed: a retry or a
//! takeover after a crash sends the same ids under the same update id. Individual events are
//! never merged.
//!
//! What a subscriber can rely on: every committed event, or a merged update containing its
//! ids, arrives at least once; an update id seen twice is the same update (drop it); within a
//! topic, updates arrive in outbox order.
//!
//! # Answers of the hub
//!
//! | answer | what the relay does |
//! |---|---|
//! | 2xx | delivered |
//! | connection error, timeout, 5xx, 404, 408, 429, any other 4xx not below | retried with capped exponential backoff and jitter ([`RelayConfig::backoff_base`], [`RelayConfig::backoff_max`]); never dead-lettered by attempt count; dead-lettered only once older than [`RelayConfig::max_age`] (default 24 h) |
//! | 401, 403, JWT cannot be signed, no key configured | the relay **pauses**: it logs an error, claims nothing, and tries one update every [`RelayConfig::pause_probe`] (logging the error again each time); it resumes on its own when the hub accepts. Nothing is dead-lettered. |
//! | 400, 413, no topic, body not serializable | dead-lettered at once: the hub will never accept it |
//!
//! Dead letters stay in the table, visible ([`dead_letters`]) and re-drivable ([`redrive`]).
//! [`stats`] shows what waits, what is in flight and whether a relay of this process is paused.
//!
//! # Several relays
//!
//! On PostgreSQL any number of relays, in any number of processes, share the work: the claim
//! locks lane heads with `FOR UPDATE SKIP LOCKED` and leases them with their runs, so relays
//! work concurrently on different lanes, and a lane claimed by one is skipped by the others
//! until its lease is released (a lane is only ever claimed through its head). In normal
//! operation no event is published twice; after a crash (or a publish slower than the lease)
//! an event may be sent again, with the same update id: the answers of a run are recorded when
//! the run ends, so the relay that takes over a killed relay's leases re-sends what the hub had
//! accepted of the runs in flight. On SQLite the same rules hold (the claim transaction takes
//! the write lock when it begins); one relay is usually enough.
//!
//! # Wake-ups
//!
//! A commit in outbox mode wakes the relays of its database in the same process at once; on
//! PostgreSQL it also sends `NOTIFY mercure_outbox` in its transaction, which relays in other
//! processes `LISTEN` to. [`RelayConfig::poll_interval`] is only the fallback.

mod merge;
mod relay;
mod store;
mod wake;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mercure_track::Update;
use sqlx::Pool;

pub use relay::{Relay, RelayConfig, RelayRound};

use crate::dialect::{Dialect, SqlQuery};
use crate::dispatch::Outgoing;
use crate::error::Error;

/// The outbox statements that differ between databases.
#[derive(Debug)]
pub struct OutboxSql {
    /// The table and its index (idempotent): the first migration.
    pub create_table: &'static str,
    /// The second migration: lanes, merge groups and leases.
    pub add_leases: &'static str,
    /// A query answering how many `lane` columns the outbox table has (0 before the second
    /// migration).
    pub has_leases: &'static str,
    /// Appended to the claim's choice of rows.
    pub skip_locked: &'static str,
    /// Run in a committing transaction that wrote the outbox, to wake other processes.
    pub notify: Option<&'static str>,
    /// A query naming the part of the database the pool's outbox lives in (PostgreSQL: the
    /// schema), to tell apart relays of one server in `stats`.
    pub scope: Option<&'static str>,
}

/// SQLite: the claim is one atomic statement; the relays of the process are woken directly.
pub const SQLITE_OUTBOX: OutboxSql = OutboxSql {
    create_table: include_str!("../../migrations/sqlite/0001_mercure_outbox.sql"),
    add_leases: include_str!("../../migrations/sqlite/0002_mercure_outbox_leases.sql"),
    has_leases: "SELECT COUNT(*) FROM pragma_table_info('mercure_outbox') WHERE name = 'lane'",
    skip_locked: "",
    notify: None,
    scope: None,
};

/// PostgreSQL: rows claimed by another relay's statement are skipped, not waited for; commits
/// notify the relays of other processes.
pub const POSTGRES_OUTBOX: OutboxSql = OutboxSql {
    create_table: include_str!("../../migrations/postgres/0001_mercure_outbox.sql"),
    add_leases: include_str!("../../migrations/postgres/0002_mercure_outbox_leases.sql"),
    has_leases: "SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = current_schema() \
        AND table_name = 'mercure_outbox' AND column_name = 'lane'",
    skip_locked: " FOR UPDATE OF o SKIP LOCKED",
    notify: Some("SELECT pg_notify('mercure_outbox', current_schema()::text)"),
    scope: Some("SELECT current_schema()::text"),
};

/// Creates the outbox table if it does not exist, or brings it up to date (the same SQL as the
/// shipped migrations).
pub async fn create_table<DB: Dialect>(pool: &Pool<DB>) -> Result<(), Error> {
    let mut conn = pool.acquire().await?;
    run_script::<DB>(&mut conn, DB::OUTBOX.create_table).await?;
    let has_leases = match DB::fetch_optional(&mut conn, sqlx::query(DB::OUTBOX.has_leases)).await?
    {
        Some(row) => DB::decode_i64(&row, 0)? > 0,
        None => false,
    };
    if !has_leases {
        run_script::<DB>(&mut conn, DB::OUTBOX.add_leases).await?;
    }
    Ok(())
}

async fn run_script<DB: Dialect>(conn: &mut DB::Connection, script: &str) -> Result<(), Error> {
    for statement in script.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        if statement
            .lines()
            .all(|line| line.trim_start().starts_with("--"))
        {
            continue;
        }
        DB::execute(conn, sqlx::query(statement)).await?;
    }
    Ok(())
}

/// The scope of the outbox of `conn` (see [`OutboxSql::scope`]).
pub(crate) async fn scope<DB: Dialect>(conn: &mut DB::Connection) -> Result<Option<String>, Error> {
    let Some(sql) = DB::OUTBOX.scope else {
        return Ok(None);
    };
    Ok(match DB::fetch_optional(conn, sqlx::query(sql)).await? {
        Some(row) => Some(DB::decode_text(&row, 0)?),
        None => None,
    })
}

/// Wakes the relays of `pool`'s database in this process: called by the session after an
/// outbox commit.
pub(crate) fn committed<DB: Dialect>(pool: &Pool<DB>) {
    wake::committed(pool);
}

/// Milliseconds since the epoch: the outbox's and the change log's clock.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, duration_ms)
}

/// A duration in the clock's milliseconds (saturating).
pub(crate) fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// Writes a commit's updates into the outbox, inside its transaction. Each row's lane is its
/// topic set; batch events are marked so that the relay may merge them.
pub(crate) async fn write<DB: Dialect>(
    conn: &mut DB::Connection,
    updates: Vec<Outgoing>,
) -> Result<(), Error> {
    if updates.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    for outgoing in updates {
        let id = uuid::Uuid::now_v7().to_string();
        let topics =
            serde_json::to_string(&outgoing.update.topics).unwrap_or_else(|_| "[]".to_owned());
        let batch = mercure_track::registry::event_by_type_name(outgoing.event_type)
            .is_some_and(|descriptor| descriptor.is_batch());
        let mut query: SqlQuery<'_, DB> = sqlx::query(store::statements::insert());
        query = DB::bind_text(query, &id);
        query = DB::bind_text(query, outgoing.event_type);
        query = DB::bind_text(query, &topics);
        query = DB::bind_text(query, &outgoing.update.data);
        query = DB::bind_bool(query, outgoing.update.private);
        query = DB::bind_i64(query, now);
        query = DB::bind_bool(query, batch);
        DB::execute(conn, query).await?;
    }
    if let Some(notify) = DB::OUTBOX.notify {
        DB::fetch_optional(conn, sqlx::query(notify)).await?;
    }
    Ok(())
}

/// One row of the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRecord {
    /// Position in the outbox.
    pub seq: i64,
    /// The event id (UUIDv7), sent as the Mercure update id.
    pub id: String,
    /// The event's JSON `type`.
    pub event_type: String,
    /// The update.
    pub update: Update,
    /// Publish attempts so far.
    pub attempts: i64,
    /// The last failure, if any.
    pub last_error: Option<String>,
}

fn record<DB: Dialect>(row: &DB::Row) -> Result<(OutboxRecord, i64), Error> {
    let id = DB::decode_text(row, 1)?;
    let topics: Vec<String> =
        serde_json::from_str(&DB::decode_text(row, 3)?).unwrap_or_else(|error| {
            tracing::warn!(%id, %error, "outbox row with unreadable topics: read as no topic");
            Vec::new()
        });
    let update = Update::new(topics, DB::decode_text(row, 4)?)
        .private(DB::decode_bool(row, 5)?)
        .id(id.clone());
    let record = OutboxRecord {
        seq: DB::decode_i64(row, 0)?,
        id,
        event_type: DB::decode_text(row, 2)?,
        update,
        attempts: DB::decode_i64(row, 6)?,
        last_error: DB::decode_optional_text(row, 8)?,
    };
    Ok((record, DB::decode_i64(row, 7)?))
}

/// The dead-lettered events, oldest first.
pub async fn dead_letters<DB: Dialect>(pool: &Pool<DB>) -> Result<Vec<OutboxRecord>, Error> {
    let sql = store::statements::dead_letters();
    let mut conn = pool.acquire().await?;
    let rows = DB::fetch_all(&mut conn, sqlx::query(&sql)).await?;
    rows.iter()
        .map(|row| record::<DB>(row).map(|(record, _)| record))
        .collect()
}

/// How many events wait for delivery (dead letters excluded).
pub async fn pending<DB: Dialect>(pool: &Pool<DB>) -> Result<i64, Error> {
    let mut conn = pool.acquire().await?;
    let sql = store::statements::pending();
    let row = DB::fetch_optional(&mut conn, sqlx::query(&sql)).await?;
    Ok(match row {
        Some(row) => DB::decode_i64(&row, 0)?,
        None => 0,
    })
}

/// Puts dead letters back in line (all of them, or those with the given ids): their attempts
/// and their age (for [`RelayConfig::max_age`]) start again from zero, and they may be merged
/// anew. Returns how many.
pub async fn redrive<DB: Dialect>(pool: &Pool<DB>, ids: Option<&[String]>) -> Result<u64, Error> {
    let mut conn = pool.acquire().await?;
    match ids {
        None => {
            let sql = store::statements::redrive(false);
            Ok(DB::execute(&mut conn, DB::bind_i64(sqlx::query(&sql), now_ms())).await?)
        }
        Some(ids) => {
            let sql = store::statements::redrive(true);
            let mut total = 0;
            for id in ids {
                let query = DB::bind_text(DB::bind_i64(sqlx::query(&sql), now_ms()), id);
                total += DB::execute(&mut conn, query).await?;
            }
            Ok(total)
        }
    }
}

/// What the outbox holds and what its relays do, at one moment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutboxStats {
    /// Events waiting for delivery (dead letters excluded), in flight included.
    pub pending: i64,
    /// How long the oldest waiting event has waited.
    pub oldest_pending_age: Option<Duration>,
    /// Events claimed by a relay under a live lease (being published now).
    pub in_flight: i64,
    /// Dead-lettered events.
    pub dead_letters: i64,
    /// Whether a relay of this process on this database is paused, and why (the hub refused
    /// the publisher's credentials, no key is configured).
    pub paused: Option<String>,
    /// Relays of this process running on this database.
    pub relays: usize,
}

/// The outbox's state: counts from the table, and the pause state of this process's relays.
pub async fn stats<DB: Dialect>(pool: &Pool<DB>) -> Result<OutboxStats, Error> {
    let now = now_ms();
    let mut conn = pool.acquire().await?;
    let (pending, oldest, in_flight, dead) = store::counts::<DB>(&mut conn, now).await?;
    let scope = scope::<DB>(&mut conn).await?;
    let relays: Vec<_> = wake::relays(&wake::database_key(pool))
        .into_iter()
        .filter(|relay| relay.scope() == scope)
        .collect();
    Ok(OutboxStats {
        pending,
        oldest_pending_age: oldest
            .map(|created| Duration::from_millis(u64::try_from(now - created).unwrap_or(0))),
        in_flight,
        dead_letters: dead,
        paused: relays.iter().find_map(|relay| relay.paused()),
        relays: relays.len(),
    })
}
