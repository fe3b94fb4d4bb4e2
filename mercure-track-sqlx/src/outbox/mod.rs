//! The transactional outbox: delivery that loses nothing.
//!
//! A session in outbox mode ([`TrackedSession::outbox`](crate::TrackedSession::outbox)) does
//! not publish after its commit: it writes its events — individual and batch, each with a new
//! UUIDv7 — into the `mercure_outbox` table **in the same transaction**. A rollback leaves
//! nothing; a commit leaves every event, even if the process dies the next instant. A
//! [`Relay`] then publishes them in order, with the event id as the Mercure update id, and marks
//! them delivered. Delivery is at least once (a relay that dies between publishing and marking
//! publishes again), so subscribers drop an id they have seen: exactly-once effect.
//!
//! Failures: answers that cannot succeed later (400, 401, 403) dead-letter the event at once;
//! other failures (hub down, 5xx, timeouts) are retried with exponential backoff and jitter, up
//! to [`RelayConfig::max_attempts`], then dead-lettered. Dead letters stay in the table,
//! visible ([`dead_letters`]) and re-drivable ([`redrive`]); nothing is retried forever.
//!
//! Order: a relay publishes strictly in outbox order and stops at the first event that must
//! wait for a retry, so the updates of each topic keep the order of their commits (events of
//! concurrent transactions are ordered by the sequence their rows were given).
//!
//! Several relays: on PostgreSQL each round takes a transaction-scoped advisory lock, so only
//! one relay publishes at a time and two never publish the same event concurrently; the
//! others wait for the next round. On SQLite run a single relay.

mod relay;

use std::time::{SystemTime, UNIX_EPOCH};

use mercure_track::Update;
use sqlx::Pool;

pub use relay::{Relay, RelayConfig, RelayRound};

use crate::dialect::{Dialect, SqlQuery};
use crate::dispatch::Outgoing;
use crate::error::Error;

/// The outbox statements that differ between databases.
#[derive(Debug)]
pub struct OutboxSql {
    /// The table and its index (idempotent).
    pub create_table: &'static str,
    /// A query answering one boolean: whether this relay may publish now.
    pub lock: Option<&'static str>,
    /// Appended to the query of pending rows.
    pub for_update: &'static str,
}

/// SQLite: one relay, no lock.
pub const SQLITE_OUTBOX: OutboxSql = OutboxSql {
    create_table: include_str!("../../migrations/sqlite/0001_mercure_outbox.sql"),
    lock: None,
    for_update: "",
};

/// PostgreSQL: an advisory lock per round, held until the round's transaction ends. Its key
/// is the outbox table's OID, so that outboxes in other schemas of the same database (other
/// applications, other tenants) never wait for each other.
pub const POSTGRES_OUTBOX: OutboxSql = OutboxSql {
    create_table: include_str!("../../migrations/postgres/0001_mercure_outbox.sql"),
    lock: Some("SELECT pg_try_advisory_xact_lock('mercure_outbox'::regclass::oid::bigint)"),
    for_update: " FOR UPDATE",
};

/// Creates the outbox table if it does not exist (the same SQL as the shipped migrations).
pub async fn create_table<DB: Dialect>(pool: &Pool<DB>) -> Result<(), Error> {
    let mut conn = pool.acquire().await?;
    for statement in DB::OUTBOX
        .create_table
        .split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        if statement
            .lines()
            .all(|line| line.trim_start().starts_with("--"))
        {
            continue;
        }
        DB::execute(&mut conn, sqlx::query(statement)).await?;
    }
    Ok(())
}

pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Writes a commit's updates into the outbox, inside its transaction.
pub(crate) async fn write<DB: Dialect>(
    conn: &mut DB::Connection,
    updates: Vec<Outgoing>,
) -> Result<(), Error> {
    const INSERT: &str = "INSERT INTO mercure_outbox \
        (id, event_type, topics, data, private, created_at, next_attempt_at) \
        VALUES ($1, $2, $3, $4, $5, $6, $6)";
    let now = now_ms();
    for outgoing in updates {
        let id = uuid::Uuid::now_v7().to_string();
        let topics =
            serde_json::to_string(&outgoing.update.topics).unwrap_or_else(|_| "[]".to_owned());
        let mut query: SqlQuery<'_, DB> = sqlx::query(INSERT);
        query = DB::bind_text(query, &id);
        query = DB::bind_text(query, outgoing.event_type);
        query = DB::bind_text(query, &topics);
        query = DB::bind_text(query, &outgoing.update.data);
        query = DB::bind_bool(query, outgoing.update.private);
        query = DB::bind_i64(query, now);
        DB::execute(conn, query).await?;
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

const RECORD_COLUMNS: &str =
    "seq, id, event_type, topics, data, private, attempts, next_attempt_at, last_error";

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
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM mercure_outbox WHERE dead_at IS NOT NULL ORDER BY seq"
    );
    let mut conn = pool.acquire().await?;
    let rows = DB::fetch_all(&mut conn, sqlx::query(&sql)).await?;
    rows.iter()
        .map(|row| record::<DB>(row).map(|(record, _)| record))
        .collect()
}

/// How many events wait for delivery (dead letters excluded).
pub async fn pending<DB: Dialect>(pool: &Pool<DB>) -> Result<i64, Error> {
    let mut conn = pool.acquire().await?;
    let row = DB::fetch_optional(
        &mut conn,
        sqlx::query(
            "SELECT COUNT(*) FROM mercure_outbox WHERE delivered_at IS NULL AND dead_at IS NULL",
        ),
    )
    .await?;
    Ok(match row {
        Some(row) => DB::decode_i64(&row, 0)?,
        None => 0,
    })
}

/// Puts dead letters back in line (all of them, or those with the given ids): their attempts
/// start again from zero. Returns how many.
pub async fn redrive<DB: Dialect>(pool: &Pool<DB>, ids: Option<&[String]>) -> Result<u64, Error> {
    let mut conn = pool.acquire().await?;
    const REDRIVE: &str = "UPDATE mercure_outbox SET dead_at = NULL, attempts = 0, next_attempt_at = $1, last_error = NULL WHERE dead_at IS NOT NULL";
    match ids {
        None => Ok(DB::execute(&mut conn, DB::bind_i64(sqlx::query(REDRIVE), now_ms())).await?),
        Some(ids) => {
            let sql = format!("{REDRIVE} AND id = $2");
            let mut total = 0;
            for id in ids {
                let query = DB::bind_text(DB::bind_i64(sqlx::query(&sql), now_ms()), id);
                total += DB::execute(&mut conn, query).await?;
            }
            Ok(total)
        }
    }
}
