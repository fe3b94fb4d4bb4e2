//! The relay: publishes the outbox in order and marks what it delivered.

use std::hash::{BuildHasher as _, Hasher as _};
use std::sync::Arc;
use std::time::Duration;

use mercure_track::{PublishOutcome, Publisher};
use sqlx::{Connection as _, Pool};

use super::{RECORD_COLUMNS, now_ms, record};
use crate::dialect::Dialect;
use crate::error::Error;

/// How a relay works.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Events read per round (default 100).
    pub batch_size: i64,
    /// Pause between rounds with nothing to do (default 200 ms).
    pub poll_interval: Duration,
    /// Attempts before an event is dead-lettered (default 10).
    pub max_attempts: i64,
    /// First retry delay; it doubles with each attempt (default 200 ms).
    pub backoff_base: Duration,
    /// Longest retry delay (default 30 s).
    pub backoff_max: Duration,
    /// Delivered rows older than this are deleted; `None` keeps them (default 7 days).
    pub retention: Option<Duration>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            batch_size: 100,
            poll_interval: Duration::from_millis(200),
            max_attempts: 10,
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
            retention: Some(Duration::from_secs(7 * 24 * 3600)),
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RelayRound {
    /// Events published and marked delivered.
    pub delivered: usize,
    /// Events dead-lettered.
    pub dead_lettered: usize,
    /// Events that failed and will be retried.
    pub retried: usize,
    /// Whether another relay held the lock (PostgreSQL).
    pub locked_out: bool,
    /// When the first waiting event is due (milliseconds since the epoch), if it waits.
    pub next_due_ms: Option<i64>,
    /// Whether the round read a full batch (more may be waiting).
    pub full: bool,
}

/// Publishes the outbox of one database through a publisher.
pub struct Relay<DB: Dialect> {
    pool: Pool<DB>,
    publisher: Arc<dyn Publisher>,
    config: RelayConfig,
}

impl<DB: Dialect> std::fmt::Debug for Relay<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<DB: Dialect> Relay<DB> {
    /// A relay of the outbox in `pool`.
    pub fn new(pool: Pool<DB>, publisher: Arc<dyn Publisher>, config: RelayConfig) -> Self {
        Self {
            pool,
            publisher,
            config,
        }
    }

    /// The delay before attempt `attempts + 1`: exponential, capped, with jitter (between half
    /// and all of it), so that many failed events do not all come back at once.
    fn backoff(&self, attempts: i64) -> Duration {
        let exponent = u32::try_from(attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
        let full = self
            .config
            .backoff_base
            .saturating_mul(2_u32.saturating_pow(exponent))
            .min(self.config.backoff_max);
        let random = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let fraction = 0.5 + (random % 1_000) as f64 / 2_000.0;
        full.mul_f64(fraction)
    }

    /// Publishes what is due, in order, within one transaction.
    pub async fn run_once(&self) -> Result<RelayRound, Error> {
        let mut round = RelayRound::default();
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        if let Some(lock) = DB::OUTBOX.lock {
            let locked = match DB::fetch_optional(&mut tx, sqlx::query(lock)).await? {
                Some(row) => DB::decode_bool(&row, 0)?,
                None => false,
            };
            if !locked {
                tx.rollback().await?;
                round.locked_out = true;
                return Ok(round);
            }
        }
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM mercure_outbox WHERE delivered_at IS NULL AND dead_at IS NULL \
             ORDER BY seq LIMIT $1{}",
            DB::OUTBOX.for_update
        );
        let rows = DB::fetch_all(
            &mut tx,
            DB::bind_i64(sqlx::query(&sql), self.config.batch_size),
        )
        .await?;
        round.full = rows.len() as i64 == self.config.batch_size;
        for row in &rows {
            let (record, next_attempt_at) = record::<DB>(row)?;
            let now = now_ms();
            if next_attempt_at > now {
                // Later events wait behind this one: the order of each topic is kept.
                round.next_due_ms = Some(next_attempt_at);
                round.full = false;
                break;
            }
            let attempts = record.attempts + 1;
            match self.publisher.publish_update(record.update.clone()).await {
                Ok(PublishOutcome::Published { .. }) => {
                    let query = sqlx::query(
                        "UPDATE mercure_outbox SET delivered_at = $1, attempts = $2 WHERE seq = $3",
                    );
                    DB::execute(
                        &mut tx,
                        DB::bind_i64(DB::bind_i64(DB::bind_i64(query, now), attempts), record.seq),
                    )
                    .await?;
                    round.delivered += 1;
                }
                Ok(PublishOutcome::Skipped) => {
                    // No key configured: nothing was sent, so nothing is marked. Try again later.
                    round.next_due_ms = Some(now + duration_ms(self.config.poll_interval));
                    round.full = false;
                    break;
                }
                Err(error) => {
                    let message = error.to_string();
                    if !error.is_retryable() || attempts >= self.config.max_attempts {
                        tracing::warn!(id = %record.id, event_type = %record.event_type, topics = ?record.update.topics,
                            attempts, %error, "outbox event dead-lettered");
                        let query = sqlx::query(
                            "UPDATE mercure_outbox SET dead_at = $1, attempts = $2, last_error = $3 WHERE seq = $4",
                        );
                        let query = DB::bind_text(
                            DB::bind_i64(DB::bind_i64(query, now), attempts),
                            &message,
                        );
                        DB::execute(&mut tx, DB::bind_i64(query, record.seq)).await?;
                        round.dead_lettered += 1;
                        continue;
                    }
                    let due = now + duration_ms(self.backoff(attempts));
                    tracing::debug!(id = %record.id, attempts, %error, retry_in_ms = due - now, "outbox publish failed, will retry");
                    let query = sqlx::query(
                        "UPDATE mercure_outbox SET next_attempt_at = $1, attempts = $2, last_error = $3 WHERE seq = $4",
                    );
                    let query =
                        DB::bind_text(DB::bind_i64(DB::bind_i64(query, due), attempts), &message);
                    DB::execute(&mut tx, DB::bind_i64(query, record.seq)).await?;
                    round.retried += 1;
                    round.next_due_ms = Some(due);
                    round.full = false;
                    break;
                }
            }
        }
        if let Some(retention) = self.config.retention {
            let cutoff = now_ms() - duration_ms(retention);
            let query = sqlx::query(
                "DELETE FROM mercure_outbox WHERE delivered_at IS NOT NULL AND delivered_at < $1",
            );
            DB::execute(&mut tx, DB::bind_i64(query, cutoff)).await?;
        }
        tx.commit().await?;
        Ok(round)
    }

    /// Runs rounds until `shutdown` completes; a failing round (the database is down) is
    /// logged and tried again after the poll interval.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let pause = match self.run_once().await {
                Ok(round) if round.full => Duration::ZERO,
                Ok(round) => match round.next_due_ms {
                    Some(due) => Duration::from_millis(u64::try_from(due - now_ms()).unwrap_or(0))
                        .min(self.config.poll_interval),
                    None => self.config.poll_interval,
                },
                Err(error) => {
                    tracing::warn!(%error, "outbox relay round failed");
                    self.config.poll_interval
                }
            };
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }
}

fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}
