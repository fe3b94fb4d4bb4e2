//! The relay: claims outbox work, publishes it with no transaction open, records the outcome.

use std::hash::{BuildHasher as _, Hasher as _};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use futures_util::stream::FuturesUnordered;
use mercure_track::{PublishError, PublishOutcome, Publisher};
use sqlx::Pool;
use tracing::Instrument as _;

use super::store::{self, ClaimLimits, Claimed, Lease, Record, Run};
use super::wake::{self, RelayState};
use super::{duration_ms, now_ms};
use crate::dialect::Dialect;
use crate::error::Error;

/// How a relay works. Every field has a default ([`RelayConfig::default`]).
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// Updates in flight at once, across lanes (default 64). Within a lane, one at a time.
    pub concurrency: usize,
    /// Lanes claimed by one [`Relay::run_once`] (default 100).
    pub batch_size: i64,
    /// Updates of one lane claimed together as a *run* (default 32): the lane's task sends
    /// them one after another, each after the previous one's answer, and stops at the first
    /// failure (the rest go back in line with no attempt counted). Longer runs mean fewer
    /// claims per update on a busy lane; a run ends early once half the lease has passed.
    pub run_length: usize,
    /// Fallback pause between looks at the outbox when no wake-up comes (default 1 s). Commits
    /// wake the relay directly; see the module documentation.
    pub poll_interval: Duration,
    /// How long a claim holds before another relay may take it over (default 60 s). Must
    /// exceed the publisher's request timeout, or a slow publish may be sent twice.
    pub lease: Duration,
    /// How long an event is retried after transient failures before it is dead-lettered
    /// (default 24 hours). No attempt count dead-letters an event younger than this.
    pub max_age: Duration,
    /// First retry delay; it doubles with each attempt (default 200 ms).
    pub backoff_base: Duration,
    /// Longest retry delay (default 30 s).
    pub backoff_max: Duration,
    /// While paused (the hub refuses the credentials), how often one update is tried, and the
    /// error logged again (default 10 s).
    pub pause_probe: Duration,
    /// Most batch events merged into one update (default 256).
    pub max_merge: usize,
    /// The oldest pending event's age beyond which the relay logs that it falls behind
    /// (default 30 s).
    pub behind_after: Duration,
    /// Delivered rows older than this are deleted; `None` keeps them (default 7 days).
    pub retention: Option<Duration>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            concurrency: 64,
            batch_size: 100,
            run_length: 32,
            poll_interval: Duration::from_secs(1),
            lease: Duration::from_secs(60),
            max_age: Duration::from_secs(24 * 3600),
            backoff_base: Duration::from_millis(200),
            backoff_max: Duration::from_secs(30),
            pause_probe: Duration::from_secs(10),
            max_merge: 256,
            behind_after: Duration::from_secs(30),
            retention: Some(Duration::from_secs(7 * 24 * 3600)),
        }
    }
}

/// What one round did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RelayRound {
    /// Events (outbox rows) published and marked delivered; merged events count each.
    pub delivered: usize,
    /// Updates sent to the hub (a merged group is one).
    pub sent: usize,
    /// Events dead-lettered.
    pub dead_lettered: usize,
    /// Events that failed and will be retried.
    pub retried: usize,
    /// Why the relay paused, if the hub refused the credentials in this round.
    pub paused: Option<String>,
    /// When the first waiting event is due (milliseconds since the epoch), if one waits.
    pub next_due_ms: Option<i64>,
    /// Whether the round claimed a full batch (more may be waiting).
    pub full: bool,
}

/// What the hub's answer means for the outbox (see the table in the module documentation).
#[derive(Debug)]
enum Verdict {
    Delivered,
    Retry(String),
    Pause(String),
    Dead(String),
    /// Not sent: an earlier update of its run failed, or the run's lease was half spent.
    Released,
}

fn verdict(result: Result<PublishOutcome, PublishError>) -> Verdict {
    match result {
        Ok(PublishOutcome::Skipped) => {
            Verdict::Pause("publishing is not configured (no JWT key)".to_owned())
        }
        Ok(_) => Verdict::Delivered,
        Err(error) => {
            let message = error.to_string();
            match (error.status(), &error) {
                (Some(400 | 413), _)
                | (None, PublishError::NoTopic | PublishError::Serialize(_)) => {
                    Verdict::Dead(message)
                }
                (Some(401 | 403), _) | (None, PublishError::Jwt(_)) => Verdict::Pause(message),
                _ => Verdict::Retry(message),
            }
        }
    }
}

/// Publishes the outbox of one database through a publisher.
pub struct Relay<DB: Dialect> {
    pool: Pool<DB>,
    publisher: Arc<dyn Publisher>,
    config: RelayConfig,
    owner: String,
    state: Arc<RelayState>,
}

impl<DB: Dialect> std::fmt::Debug for Relay<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("owner", &self.owner)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// The pause state of a running relay.
#[derive(Debug)]
struct Pause {
    reason: String,
    next_probe: tokio::time::Instant,
}

impl<DB: Dialect> Relay<DB> {
    /// A relay of the outbox in `pool`.
    pub fn new(pool: Pool<DB>, publisher: Arc<dyn Publisher>, config: RelayConfig) -> Self {
        Self {
            pool,
            publisher,
            config,
            owner: uuid::Uuid::now_v7().to_string(),
            state: Arc::new(RelayState::default()),
        }
    }

    /// The id this relay writes into the rows it claims.
    pub fn owner(&self) -> &str {
        &self.owner
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

    /// Records the outcomes of `done` and claims up to `limit` more lanes' runs, in one short
    /// transaction (one write lock on SQLite), with nothing of the network inside. The
    /// outcomes are tallied into `round` once committed.
    async fn record_and_claim(
        &self,
        done: &[(Claimed, Verdict)],
        limit: usize,
        round: &mut RelayRound,
    ) -> Result<Vec<Run>, Error> {
        if done.is_empty() && limit == 0 {
            return Ok(Vec::new());
        }
        let now = now_ms();
        let outcomes = self.outcomes(done, now);
        let lease = Lease {
            owner: &self.owner,
            until: now + duration_ms(self.config.lease),
        };
        // The same begin as a session's: on SQLite the write lock is taken (waiting up to the
        // busy timeout) before the first statement, never upgraded from a read.
        let mut tx = self.pool.begin_with(DB::BEGIN).await?;
        let changed = if outcomes.is_empty() {
            Vec::new()
        } else {
            store::record_outcomes::<DB>(&mut tx, &self.owner, now, &outcomes).await?
        };
        let claimed = if limit > 0 {
            let limits = ClaimLimits {
                lanes: limit,
                run: self.config.run_length.max(1),
                merge: self.config.max_merge.max(1),
            };
            store::claim::<DB>(&mut tx, lease, now, limits).await?
        } else {
            Vec::new()
        };
        tx.commit().await?;
        self.tally(done, &outcomes, &changed, now, round);
        Ok(claimed)
    }

    /// Publishes one claimed group; nothing of the database is held meanwhile.
    async fn publish(&self, claimed: Claimed) -> (Claimed, Verdict) {
        let result = self
            .publisher
            .publish_update(claimed.head.update.clone())
            .await;
        tracing::debug!(id = %claimed.head.id, topics = ?claimed.head.update.topics,
            merged = claimed.rows, ok = result.is_ok(), "outbox update sent");
        (claimed, verdict(result))
    }

    /// Publishes the groups of a run in order, each after the previous one's answer; stops at
    /// the first failure, or once half the lease has passed (so that the lease never expires
    /// under a run still sending), and gives back what it did not send.
    async fn publish_run(&self, run: Run) -> Vec<(Claimed, Verdict)> {
        let margin = duration_ms(self.config.lease) / 2;
        let mut done = Vec::with_capacity(run.groups.len());
        let mut stopped = false;
        for claimed in run.groups {
            if stopped || (!done.is_empty() && now_ms() > run.until - margin) {
                stopped = true;
                done.push((claimed, Verdict::Released));
                continue;
            }
            let answer = self.publish(claimed).await;
            stopped = !matches!(answer.1, Verdict::Delivered);
            done.push(answer);
        }
        done
    }

    /// What to write for each answer (see the table in the module documentation).
    fn outcomes(&self, done: &[(Claimed, Verdict)], now: i64) -> Vec<(i64, Record)> {
        let max_age = duration_ms(self.config.max_age);
        let mut outcomes = Vec::with_capacity(done.len());
        for (claimed, verdict) in done {
            let head = &claimed.head;
            let attempts = head.attempts + 1;
            let record = match verdict {
                Verdict::Delivered => Record::Delivered,
                Verdict::Dead(error) => {
                    tracing::warn!(id = %head.id, event_type = %head.event_type, topics = ?head.update.topics,
                        attempts, %error, "outbox event dead-lettered: the hub can never accept it");
                    Record::Dead {
                        error: error.clone(),
                    }
                }
                Verdict::Retry(error) if now - claimed.created_at > max_age => {
                    tracing::warn!(id = %head.id, event_type = %head.event_type, topics = ?head.update.topics,
                        attempts, %error, "outbox event dead-lettered: older than max_age");
                    Record::Dead {
                        error: format!("{error} (given up after max_age)"),
                    }
                }
                Verdict::Retry(error) => {
                    let due = now + duration_ms(self.backoff(attempts));
                    tracing::debug!(id = %head.id, attempts, %error, retry_in_ms = due - now,
                        "outbox publish failed, will retry");
                    Record::Retry {
                        due,
                        error: error.clone(),
                    }
                }
                // Paused: the group goes back in line as it is, due at once; the relay decides
                // when to try again.
                Verdict::Pause(error) => Record::Retry {
                    due: now,
                    error: error.clone(),
                },
                Verdict::Released => Record::Release,
            };
            outcomes.push((head.seq, record));
        }
        outcomes
    }

    /// Counts recorded outcomes into `round`.
    fn tally(
        &self,
        done: &[(Claimed, Verdict)],
        outcomes: &[(i64, Record)],
        changed: &[u64],
        now: i64,
        round: &mut RelayRound,
    ) {
        for (((claimed, verdict), (_, record)), rows) in done.iter().zip(outcomes).zip(changed) {
            if let Verdict::Pause(reason) = verdict {
                round.paused = Some(reason.clone());
            }
            if matches!(record, Record::Release) {
                continue;
            }
            if *rows == 0 {
                tracing::warn!(id = %claimed.head.id,
                    "outbox relay: the lease was taken over before the outcome was recorded");
                continue;
            }
            let rows = usize::try_from(*rows).unwrap_or(usize::MAX);
            match record {
                Record::Delivered => {
                    round.delivered += rows;
                    round.sent += 1;
                }
                Record::Dead { .. } => round.dead_lettered += rows,
                Record::Release => {}
                Record::Retry { due, .. } => {
                    round.retried += rows;
                    if *due > now {
                        round.next_due_ms = Some(round.next_due_ms.map_or(*due, |d| d.min(*due)));
                    }
                }
            }
        }
    }

    /// One round: claims the runs of up to [`RelayConfig::batch_size`] lanes (each up to
    /// [`RelayConfig::run_length`] updates, batch events merged), publishes them (up to
    /// [`RelayConfig::concurrency`] lanes at once, each lane's updates one after another), and
    /// records the outcomes.
    pub async fn run_once(&self) -> Result<RelayRound, Error> {
        let span = tracing::info_span!(
            "mercure_track.relay_round",
            claimed = tracing::field::Empty,
            delivered = tracing::field::Empty,
        );
        async move {
            let mut round = RelayRound::default();
            let limit = usize::try_from(self.config.batch_size.max(1)).unwrap_or(1);
            let claimed = self.record_and_claim(&[], limit, &mut round).await?;
            round.full = claimed.len() == limit;
            tracing::Span::current().record("claimed", claimed.len());
            let done: Vec<(Claimed, Verdict)> = futures_util::stream::iter(claimed)
                .map(|run| self.publish_run(run))
                .buffer_unordered(self.config.concurrency.max(1))
                .collect::<Vec<_>>()
                .await
                .into_iter()
                .flatten()
                .collect();
            self.record_and_claim(&done, 0, &mut round).await?;
            if round.next_due_ms.is_none() && !round.full {
                let mut conn = self.pool.acquire().await?;
                round.next_due_ms = store::next_due::<DB>(&mut conn, &self.owner, now_ms()).await?;
            }
            self.prune().await?;
            tracing::Span::current().record("delivered", round.delivered);
            Ok(round)
        }
        .instrument(span)
        .await
    }

    async fn prune(&self) -> Result<(), Error> {
        if let Some(retention) = self.config.retention {
            let mut conn = self.pool.acquire().await?;
            store::prune::<DB>(&mut conn, now_ms() - duration_ms(retention)).await?;
        }
        Ok(())
    }

    /// Runs until `shutdown` completes: keeps up to [`RelayConfig::concurrency`] lanes' runs
    /// in flight (one update each), records each run's answers as the run ends, claims again
    /// when nothing is in flight or a quarter of the slots is free, and
    /// sleeps until a commit wakes it (or the next retry is due, or the poll interval passes).
    /// On shutdown it claims nothing more and records what is in flight. A failing database
    /// is logged and tried again after the poll interval.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        let relay = Arc::new(self);
        match relay.pool.acquire().await {
            Ok(mut conn) => match super::scope::<DB>(&mut conn).await {
                Ok(scope) => relay.state.set_scope(scope),
                Err(error) => tracing::warn!(%error, "outbox relay: reading the schema failed"),
            },
            Err(error) => tracing::warn!(%error, "outbox relay: no database connection"),
        }
        wake::register(wake::database_key(&relay.pool), &relay.state);
        let listener = wake::listen(&relay.pool, relay.state.clone(), relay.config.poll_interval);
        tokio::pin!(shutdown);
        let mut in_flight = FuturesUnordered::new();
        // Answers not yet recorded (kept across a failed recording, so none is lost).
        let mut answered: Vec<(Claimed, Verdict)> = Vec::new();
        let mut stopping = false;
        let mut pause: Option<Pause> = None;
        let mut last_check = tokio::time::Instant::now();
        let mut last_prune: Option<tokio::time::Instant> = None;
        let mut behind = false;
        loop {
            let now = tokio::time::Instant::now();
            let refused = answered
                .iter()
                .any(|(_, verdict)| matches!(verdict, Verdict::Pause(_)));
            let capacity = match &pause {
                _ if stopping || refused => 0,
                Some(pause) if pause.next_probe <= now && in_flight.is_empty() => 1,
                Some(_) => 0,
                None => {
                    let limit = relay.config.concurrency.max(1);
                    let free = limit.saturating_sub(in_flight.len());
                    // With lanes in flight, claim once a quarter of the slots is free: fewer,
                    // larger claims (each one looks at every lane's head).
                    if in_flight.is_empty() || free >= (limit / 4).max(1) {
                        free
                    } else {
                        0
                    }
                }
            };
            let mut wait = relay.config.poll_interval;
            if let Some(pause) = &pause {
                wait = wait.min(pause.next_probe.saturating_duration_since(now));
            }
            if capacity > 0 || !answered.is_empty() {
                let span = tracing::info_span!(
                    "mercure_track.relay_round",
                    answered = answered.len(),
                    claimed = tracing::field::Empty,
                    delivered = tracing::field::Empty,
                );
                let mut round = RelayRound::default();
                match relay
                    .record_and_claim(&answered, capacity, &mut round)
                    .instrument(span.clone())
                    .await
                {
                    Ok(claimed) => {
                        answered.clear();
                        span.record("claimed", claimed.len());
                        span.record("delivered", round.delivered);
                        relay.update_pause(&mut pause, &round);
                        if let (Some(pause), true) = (&mut pause, capacity > 0) {
                            pause.next_probe = now + relay.config.pause_probe;
                        }
                        let idle = claimed.is_empty() && in_flight.is_empty();
                        for run in claimed {
                            let relay = relay.clone();
                            in_flight.push(async move { relay.publish_run(run).await });
                        }
                        if idle {
                            match relay.next_due().await {
                                Ok(Some(due)) => {
                                    let ms = u64::try_from(due - now_ms()).unwrap_or(0);
                                    wait = wait.min(Duration::from_millis(ms));
                                }
                                Ok(None) => {}
                                Err(error) => {
                                    tracing::warn!(%error, "outbox relay: reading the outbox failed")
                                }
                            }
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "outbox relay: recording and claiming failed; trying again");
                        wait = wait.min(Duration::from_millis(50));
                    }
                }
            }
            if stopping && in_flight.is_empty() && answered.is_empty() {
                break;
            }
            tokio::select! {
                biased;
                () = &mut shutdown, if !stopping => stopping = true,
                Some(first) = in_flight.next(), if !in_flight.is_empty() => {
                    answered.extend(first);
                    while let Some(Some(more)) = futures_util::FutureExt::now_or_never(in_flight.next()) {
                        answered.extend(more);
                    }
                }
                () = relay.state.wake.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
            if last_check.elapsed() >= Duration::from_secs(1) {
                last_check = tokio::time::Instant::now();
                behind = relay.check_behind(behind).await;
            }
            if last_prune.is_none_or(|at| at.elapsed() >= Duration::from_secs(60)) {
                last_prune = Some(tokio::time::Instant::now());
                if let Err(error) = relay.prune().await {
                    tracing::warn!(%error, "outbox relay: deleting old delivered rows failed");
                }
            }
        }
        if let Some(listener) = listener {
            listener.abort();
        }
        relay.state.set_paused(None);
    }

    async fn next_due(&self) -> Result<Option<i64>, Error> {
        let mut conn = self.pool.acquire().await?;
        store::next_due::<DB>(&mut conn, &self.owner, now_ms()).await
    }

    /// Pauses on refused credentials, resumes on the first delivery; logs both loudly.
    fn update_pause(&self, pause: &mut Option<Pause>, round: &RelayRound) {
        match (pause.as_mut(), &round.paused, round.delivered > 0) {
            (None, Some(reason), _) => {
                tracing::error!(%reason, probe_every = ?self.config.pause_probe,
                    "outbox relay PAUSED: the hub refuses to publish; nothing is dead-lettered, \
                     one update is tried periodically and the relay resumes on its own");
                self.state.set_paused(Some(reason.clone()));
                *pause = Some(Pause {
                    reason: reason.clone(),
                    next_probe: tokio::time::Instant::now() + self.config.pause_probe,
                });
            }
            (Some(current), Some(reason), false) => {
                tracing::error!(%reason, "outbox relay still PAUSED: the hub refuses to publish");
                current.reason.clone_from(reason);
                current.next_probe = tokio::time::Instant::now() + self.config.pause_probe;
                self.state.set_paused(Some(reason.clone()));
            }
            (Some(current), _, true) => {
                tracing::info!(reason = %current.reason, "outbox relay resumed: the hub accepts again");
                self.state.set_paused(None);
                *pause = None;
            }
            _ => {}
        }
    }

    /// Logs when the oldest waiting event gets older than [`RelayConfig::behind_after`], and
    /// when the relay has caught up. Returns whether it is behind.
    async fn check_behind(&self, behind: bool) -> bool {
        let now = now_ms();
        let Ok(mut conn) = self.pool.acquire().await else {
            return behind;
        };
        let Ok((pending, oldest, _, _)) = store::counts::<DB>(&mut conn, now).await else {
            return behind;
        };
        let age = oldest.map_or(0, |created| now - created);
        let limit = duration_ms(self.config.behind_after);
        if !behind && age > limit {
            tracing::warn!(
                pending,
                oldest_age_ms = age,
                "outbox relay is falling behind"
            );
            true
        } else if behind && age <= limit / 2 {
            tracing::info!(pending, oldest_age_ms = age, "outbox relay has caught up");
            false
        } else {
            behind
        }
    }
}
