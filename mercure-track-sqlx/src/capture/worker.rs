//! The capture loop: claim committed log rows, resolve, deliver, forget.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use mercure_track::Publisher;
use sqlx::{Pool, Postgres};
use tracing::Instrument as _;

use super::{Capture, LOG_COLUMNS, LogRow, commits, forget, resolve_rows};
use crate::dialect::{Dialect, SqlQuery};
use crate::dispatch;
use crate::error::Error;
use crate::outbox::{duration_ms, now_ms};
use crate::resolve::ResolveScope;

/// Where a capture loop delivers the events of captured changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CaptureDelivery {
    /// Published by the loop, after its claim committed (at least once: a loop that dies
    /// between publishing and forgetting the rows leaves them to be published again).
    #[default]
    Direct,
    /// Written to the outbox in the transaction that forgets the rows (exactly once into the
    /// outbox); a [`Relay`](crate::outbox::Relay) publishes them.
    Outbox,
}

/// How a capture loop works.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CaptureConfig {
    /// Most log rows per round (their events are built together, so batch events collect
    /// them).
    pub batch: usize,
    /// How long a claim lasts: a loop that dies leaves its rows to others after this.
    pub lease: Duration,
    /// Fallback wake-up (SQLite's only one; on PostgreSQL commits notify).
    pub poll_interval: Duration,
    /// Direct or through the outbox.
    pub delivery: CaptureDelivery,
    /// How many publishes of one round run at once (direct delivery).
    pub publish_concurrency: usize,
}

impl Default for CaptureConfig {
    fn default() -> Self {
        Self {
            batch: 500,
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_secs(1),
            delivery: CaptureDelivery::Direct,
            publish_concurrency: crate::DEFAULT_PUBLISH_CONCURRENCY,
        }
    }
}

impl CaptureConfig {
    /// Sets [`CaptureConfig::delivery`].
    #[must_use]
    pub fn delivery(mut self, delivery: CaptureDelivery) -> Self {
        self.delivery = delivery;
        self
    }

    /// Sets [`CaptureConfig::poll_interval`].
    #[must_use]
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Sets [`CaptureConfig::lease`].
    #[must_use]
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease;
        self
    }

    /// Sets [`CaptureConfig::batch`].
    #[must_use]
    pub fn batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }
}

/// What one round of a capture loop did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CaptureRound {
    /// Log rows claimed.
    pub claimed: usize,
    /// Individual and batch updates built.
    pub updates: usize,
    /// Updates the hub accepted (direct delivery).
    pub published: usize,
    /// Updates that could not be published (each logged); their rows are forgotten all the
    /// same, as a session's commit does.
    pub failed: usize,
    /// Updates written to the outbox.
    pub queued: usize,
    /// Events skipped because their context could not be resolved, or because the shadow
    /// table no longer held their captured change's key (each logged).
    pub unresolved: usize,
    /// Rows forgotten (delivered).
    pub forgotten: u64,
}

/// Turns captured changes into events, outside any session. See [`crate::capture`].
pub struct CaptureLoop<DB: Dialect> {
    pool: Pool<DB>,
    capture: Arc<Capture<DB>>,
    publisher: Arc<dyn Publisher>,
    config: CaptureConfig,
    owner: String,
}

impl<DB: Dialect> std::fmt::Debug for CaptureLoop<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureLoop")
            .field("owner", &self.owner)
            .field("capture", &self.capture)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// A `LISTEN`ing connection (PostgreSQL), and the schema whose commits it waits for.
pub(crate) struct Listener {
    listener: sqlx::postgres::PgListener,
    schema: String,
}

impl Listener {
    /// Waits for a commit that wrote the log of this loop's schema (the triggers of other
    /// schemas of the database notify the same channel). `Err` when the connection is lost.
    async fn commit(&mut self) -> Result<(), sqlx::Error> {
        loop {
            if self.listener.recv().await?.payload() == self.schema {
                return Ok(());
            }
        }
    }
}

pub(crate) fn listen_postgres(
    pool: &Pool<Postgres>,
) -> BoxFuture<'_, Result<Listener, sqlx::Error>> {
    Box::pin(async move {
        // The schema the pool's connections write to, as the trigger names it.
        let (schema,): (String,) = sqlx::query_as("SELECT current_schema()::text")
            .fetch_one(pool)
            .await?;
        let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
        listener.listen("mercure_capture").await?;
        Ok(Listener { listener, schema })
    })
}

impl<DB: Dialect> CaptureLoop<DB> {
    /// A loop on `pool` for the models and events of `capture`.
    pub fn new(
        pool: Pool<DB>,
        capture: Arc<Capture<DB>>,
        publisher: Arc<dyn Publisher>,
        config: CaptureConfig,
    ) -> Self {
        Self {
            pool,
            capture,
            publisher,
            config,
            owner: uuid::Uuid::now_v7().to_string(),
        }
    }

    /// This loop's id, written into the rows it claims.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// One round: claims up to [`CaptureConfig::batch`] rows, resolves, delivers, forgets.
    pub async fn run_once(&self) -> Result<CaptureRound, Error> {
        let span = tracing::info_span!(
            "mercure_track.capture",
            owner = %self.owner,
            claimed = tracing::field::Empty,
            updates = tracing::field::Empty,
        );
        async move {
            let mut round = CaptureRound::default();
            let rows = self.claim().await?;
            round.claimed = rows.len();
            if rows.is_empty() {
                return Ok(round);
            }
            let mut conn = self.pool.acquire().await?;
            let scope = ResolveScope {
                tracked: &self.capture.tracked,
                predicates: &[],
            };
            let (resolved, unknown) = resolve_rows(&mut *conn, &self.capture, &rows, &scope).await?;
            drop(conn);
            let (events, unresolved) = resolved.settle();
            round.unresolved = unresolved;
            let prepared = dispatch::prepare(events);
            let mut updates = prepared.individual;
            updates.extend(prepared.batch);
            round.updates = updates.len();
            let known: Vec<LogRow> = rows
                .into_iter()
                .filter(|r| !unknown.contains(&r.seq))
                .collect();
            match self.config.delivery {
                CaptureDelivery::Direct => {
                    // Nothing is open while the hub is called.
                    let delivered = dispatch::publish(
                        &self.publisher,
                        None,
                        self.config.publish_concurrency,
                        updates,
                    )
                    .await;
                    round.published = delivered.published;
                    round.failed = delivered.failed;
                    let mut tx = self.pool.begin_with(DB::BEGIN).await?;
                    round.forgotten = forget::<DB>(&mut tx, &known, Some(&self.owner)).await?;
                    tx.commit().await?;
                }
                CaptureDelivery::Outbox => {
                    let mut tx = self.pool.begin_with(DB::BEGIN).await?;
                    round.queued = updates.len();
                    round.forgotten = forget::<DB>(&mut tx, &known, Some(&self.owner)).await?;
                    if round.forgotten != known.len() as u64 {
                        // Another loop took some rows over (our lease ran out): it delivers them.
                        tx.rollback().await?;
                        tracing::warn!(
                            claimed = known.len(),
                            "capture lease lost before delivery: rows left to the loop that holds them"
                        );
                        round.queued = 0;
                        round.forgotten = 0;
                        return Ok(round);
                    }
                    crate::outbox::write::<DB>(&mut tx, updates).await?;
                    tx.commit().await?;
                    // The relays of this process start at once, as after a session's commit.
                    crate::outbox::committed(&self.pool);
                }
            }
            let span = tracing::Span::current();
            span.record("claimed", round.claimed);
            span.record("updates", round.updates);
            Ok(round)
        }
        .instrument(span)
        .await
    }

    /// Claims the first unclaimed (or expired) rows of the log, in log order, in one statement.
    async fn claim(&self) -> Result<Vec<LogRow>, Error> {
        let now = now_ms();
        let until = now.saturating_add(duration_ms(self.config.lease));
        let mut conn = self.pool.acquire().await?;
        if let Some(peek) = DB::CAPTURE.peek {
            let query = DB::bind_i64(sqlx::query(peek), now);
            if DB::fetch_optional(&mut conn, query).await?.is_none() {
                return Ok(Vec::new());
            }
        }
        let sql = format!(
            "UPDATE mercure_capture_log SET claimed_by = $1, claimed_until = $2 WHERE seq IN (\
             SELECT seq FROM mercure_capture_log \
             WHERE claimed_until IS NULL OR claimed_until < $3 \
             ORDER BY seq LIMIT $4{}) RETURNING {LOG_COLUMNS}",
            DB::CAPTURE.skip_locked
        );
        let mut query: SqlQuery<'_, DB> = sqlx::query(&sql);
        query = DB::bind_text(query, &self.owner);
        query = DB::bind_i64(query, until);
        query = DB::bind_i64(query, now);
        query = DB::bind_i64(query, i64::try_from(self.config.batch).unwrap_or(i64::MAX));
        let rows = DB::fetch_all(&mut conn, query).await?;
        let mut rows: Vec<LogRow> = rows
            .iter()
            .map(LogRow::read::<DB>)
            .collect::<Result<_, _>>()?;
        rows.sort_by_key(|r| r.seq);
        Ok(rows)
    }

    /// Runs rounds until `shutdown` completes: at once while rows keep coming, otherwise on a
    /// commit's notification (PostgreSQL), a tracked session's commit in this process (SQLite),
    /// or every [`CaptureConfig::poll_interval`]. Errors are logged and the loop goes on after
    /// the poll interval.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut listener = None;
        let mut commits = commits();
        loop {
            if listener.is_none()
                && let Some(listen) = DB::CAPTURE.listen
            {
                match listen(&self.pool).await {
                    Ok(l) => listener = Some(l),
                    Err(error) => tracing::warn!(%error, "capture loop cannot LISTEN: polling"),
                }
            }
            // Commits from now on wake the next wait; the round below sees the earlier ones.
            commits.mark_unchanged();
            let full = match self.run_once().await {
                Ok(round) => round.claimed >= self.config.batch,
                Err(error) => {
                    tracing::warn!(%error, "capture round failed");
                    false
                }
            };
            if full {
                continue;
            }
            let wait = async {
                let notified = async {
                    match listener.as_mut() {
                        Some(listener) => match listener.commit().await {
                            Ok(()) => false,
                            Err(error) => {
                                tracing::warn!(%error, "capture LISTEN connection lost");
                                true
                            }
                        },
                        None => std::future::pending().await,
                    }
                };
                let committed = async {
                    if DB::CAPTURE.listen.is_none() && commits.changed().await.is_ok() {
                        return;
                    }
                    std::future::pending::<()>().await;
                };
                tokio::select! {
                    lost = notified => lost,
                    () = committed => false,
                    () = tokio::time::sleep(self.config.poll_interval) => false,
                }
            };
            tokio::select! {
                () = &mut shutdown => return,
                lost = wait => if lost { listener = None; },
            }
        }
    }
}
