//! The tracked session: a thin wrapper over sqlx transactions that records changes and
//! publishes their events after each commit.

use std::any::TypeId;
use std::sync::Arc;

use mercure_track::{
    AnyEvent, EventDescriptor, FromContext, MercureEvent, Model, Predicate, Publisher,
    TrackingSession, TriggerKey,
};
use sqlx::{Pool, Transaction};
use tracing::Instrument as _;

use crate::dialect::{Dialect, TrackedKey};
use crate::dispatch::{self, Background};
use crate::error::Error;
use crate::resolve::{
    Change, ContextRow, ErasedKey, ResolveScope, Resolved, Resolver, append_events, resolve_all,
    resolver,
};
use crate::sql::session as sql;
use crate::tracked::TrackedEvents;

/// One entry of the change log of the open transaction.
enum Entry<DB: Dialect> {
    /// A row changed; its events are resolved at commit, with the other rows of its model.
    Changed {
        model: TypeId,
        change: Change,
        resolver: Resolver<DB>,
    },
    /// Events already resolved (a deleted row's, before it disappeared), and how many of its
    /// events were skipped (logged) because their context could not be resolved.
    Resolved {
        events: Vec<Box<dyn AnyEvent>>,
        unresolved: usize,
    },
}

/// Where the open transaction stood when a nested transaction began.
#[derive(Debug, Clone, Copy)]
struct Savepoint {
    /// The change-log length.
    log: usize,
    /// How many context predicates there were.
    predicates: usize,
}

/// What to do with an event whose context cannot be resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnresolvedContext {
    /// Log a warning naming the event and the row, and skip the event (the default).
    #[default]
    Skip,
    /// Fail the commit (the transaction is rolled back).
    Fail,
}

/// What a commit did, as far as is known when [`TrackedSession::commit`] returns.
///
/// `events + batch_events` updates were prepared. Where they stand depends on the delivery:
///
/// | delivery | `published` | `failed` | `queued` |
/// |---|---|---|---|
/// | awaited (the default) | accepted by the hub | refused or unreachable (each logged) | 0 |
/// | background ([`TrackedSession::background`]) | 0 | 0 | handed to background tasks, not yet published |
/// | outbox ([`TrackedSession::outbox`]) | 0 | 0 | written to the outbox, for a relay to publish |
///
/// So `published + failed + queued == events + batch_events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CommitSummary {
    /// Changes recorded in the transaction.
    pub changes: usize,
    /// Individual events prepared (after deduplication).
    pub events: usize,
    /// Batch events prepared.
    pub batch_events: usize,
    /// Events skipped because their context could not be resolved (each logged with the
    /// event, the table and the row's key, or a captured change's log row when its key is
    /// unknown); see [`UnresolvedContext`].
    pub unresolved: usize,
    /// Queries run to resolve contexts.
    pub context_queries: usize,
    /// Updates the hub accepted before the commit returned.
    pub published: usize,
    /// Updates that could not be published (each logged with its topics and the status).
    pub failed: usize,
    /// Updates not yet published when the commit returned: running as background tasks, or
    /// written to the outbox.
    pub queued: usize,
}

/// A session whose writes are tracked: changes made through the generated setters, `insert`
/// and `delete` are recorded, and after each commit the events they trigger are published.
///
/// The session opens a transaction when first used and after each commit; [`conn`](Self::conn)
/// gives that transaction's connection to plain sqlx. Dropping the session without committing
/// rolls back and publishes nothing.
///
/// # Concurrent writers on SQLite
///
/// On SQLite the transaction opens with `BEGIN IMMEDIATE` ([`Dialect::BEGIN`]): it takes the
/// database's write lock at once, waiting for it up to the connection's busy timeout (sqlx's
/// default is 5 s; `SqliteConnectOptions::busy_timeout` changes it). So a session that reads
/// (`find`) and then writes never fails because another connection committed in between; a
/// deferred `BEGIN` would fail at the first write with "database is locked" (extended code
/// 517), without waiting.
///
/// The cost: SQLite serializes writers, so sessions on one database run one after the other,
/// from their first statement to their commit; keep them short. A session that only reads
/// takes the write lock too: there is no read-only session. Read outside a session instead,
/// with plain sqlx on the pool (no transaction, or `pool.begin()`): in WAL mode readers never
/// wait for the writer. On PostgreSQL the transaction opens with `BEGIN`; writers wait only
/// for the rows they share.
pub struct TrackedSession<DB: Dialect> {
    pool: Pool<DB>,
    tx: Option<Transaction<'static, DB>>,
    /// Where the transaction stood when each open nested transaction began.
    nested: Vec<Savepoint>,
    log: Vec<Entry<DB>>,
    tracked: TrackedEvents<DB>,
    /// The context predicates of the open transaction (see `add_tracking_context`).
    predicates: Vec<Predicate>,
    publisher: Arc<dyn Publisher>,
    background: Option<Background>,
    unresolved: UnresolvedContext,
    publish_concurrency: usize,
    delivery: Delivery,
    /// The capture whose log rows this session's transactions take at commit, and the mark
    /// taken when the open transaction began (see `crate::capture`).
    capture: Option<(Arc<crate::capture::Capture<DB>>, i64)>,
}

/// How a session delivers the events of its commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Delivery {
    /// Published after the commit.
    #[default]
    Direct,
    /// Written to the outbox in the commit's transaction, published by a relay.
    Outbox,
}

/// How many publishes of one commit run at once, by default.
pub const DEFAULT_PUBLISH_CONCURRENCY: usize = 64;

impl<DB: Dialect> std::fmt::Debug for TrackedSession<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackedSession")
            .field("in_transaction", &self.tx.is_some())
            .field("nested", &self.nested.len())
            .field("changes", &self.log.len())
            .field(
                "tracked",
                &self
                    .tracked
                    .descriptors()
                    .map(|d| d.type_name)
                    .collect::<Vec<_>>(),
            )
            .field("predicates", &self.predicates)
            .field("background", &self.background)
            .finish_non_exhaustive()
    }
}

impl<DB: Dialect> TrackedSession<DB> {
    /// A session on `pool` publishing through `publisher`; commits await their publishes.
    pub fn new(pool: Pool<DB>, publisher: impl Publisher) -> Self {
        Self::with_publisher(pool, Arc::new(publisher))
    }

    /// As [`TrackedSession::new`], with a shared publisher.
    pub fn with_publisher(pool: Pool<DB>, publisher: Arc<dyn Publisher>) -> Self {
        Self {
            pool,
            tx: None,
            nested: Vec::new(),
            log: Vec::new(),
            tracked: TrackedEvents::default(),
            predicates: Vec::new(),
            publisher,
            background: None,
            unresolved: UnresolvedContext::default(),
            publish_concurrency: DEFAULT_PUBLISH_CONCURRENCY,
            delivery: Delivery::Direct,
            capture: None,
        }
    }

    /// Publishes in the background: commits return once the transaction is committed and
    /// their publishes have room in `background`'s limit, and the publishes run as tasks of its
    /// tracker ([`drain`](crate::drain) it at shutdown). Give every session a clone of one
    /// [`Background`]: the limit holds across all their commits.
    #[must_use]
    pub fn background(mut self, background: Background) -> Self {
        self.background = Some(background);
        self
    }

    /// How many publishes of one awaited commit may run at once (default
    /// [`DEFAULT_PUBLISH_CONCURRENCY`]): a commit of 10 000 changes does not open 10 000
    /// connections to the hub. In the background, the [`Background`]'s limit applies instead.
    #[must_use]
    pub fn publish_concurrency(mut self, limit: usize) -> Self {
        self.publish_concurrency = limit.max(1);
        self
    }

    /// Delivers through the transactional outbox: each commit writes its events into the
    /// `mercure_outbox` table in the same transaction, and a [`Relay`](crate::outbox::Relay)
    /// publishes them. Nothing is lost if the hub is down or the process dies after the
    /// commit. See [`crate::outbox`].
    #[must_use]
    pub fn outbox(mut self) -> Self {
        self.delivery = Delivery::Outbox;
        self
    }

    /// Takes, at each commit, the captured changes its own transaction made (plain SQL through
    /// [`conn`](Self::conn) on tables whose capture is installed) and publishes their events
    /// with the others, once; nothing after a rollback. Give it to every session that writes
    /// captured tables, or the capture loop publishes their changes a second time. See
    /// [`crate::capture`].
    #[must_use]
    pub fn capture(mut self, capture: Arc<crate::capture::Capture<DB>>) -> Self {
        self.capture = Some((capture, 0));
        self
    }

    /// Chooses what an unresolvable context does.
    #[must_use]
    pub fn on_unresolved_context(mut self, policy: UnresolvedContext) -> Self {
        self.unresolved = policy;
        self
    }

    /// Tracks the changes that trigger `E`; chainable and idempotent.
    pub fn track_changes<E>(&mut self) -> &mut Self
    where
        E: MercureEvent + FromContext<ContextRow<DB>>,
    {
        self.tracked.track::<E>();
        self
    }

    /// Asserts what the open transaction works on (`Order::id.eq("abc")`); chainable.
    ///
    /// A predicate is **checked, never used as a value**: every event carries the context the
    /// database holds for its own changed row, whatever the predicates say, and no query is
    /// saved by them. At commit each event's context values read from the predicate's column,
    /// and the changed row's key when the predicate is on the changed model's key, are compared
    /// with the predicates on that column; a value equal to none of them is logged as a
    /// warning (event, table, key, column, asserted and found values) and published as the
    /// database says. Several predicates on one column mean "one of these". A predicate on a
    /// column that no event of the commit reads checks nothing.
    ///
    /// A predicate lasts until the end of the transaction it was added in (the next one if
    /// none is open): [`commit`](Self::commit) and [`rollback`](Self::rollback) clear it, and
    /// [`rollback_nested`](Self::rollback_nested) clears those added since the matching
    /// [`begin_nested`](Self::begin_nested).
    pub fn add_tracking_context(&mut self, predicate: Predicate) -> &mut Self {
        self.predicates.push(predicate);
        self
    }

    /// The events this session tracks.
    pub fn tracked_events(&self) -> Vec<&'static EventDescriptor> {
        self.tracked.descriptors().collect()
    }

    /// The connection of the open transaction (opened if needed, with [`Dialect::BEGIN`]), for
    /// plain sqlx.
    pub async fn conn(&mut self) -> Result<&mut DB::Connection, Error> {
        let tx = match self.tx.take() {
            Some(tx) => tx,
            None => {
                let mut tx = self.pool.begin_with(DB::BEGIN).await?;
                if let Some((_, mark)) = &mut self.capture {
                    // Boxed: sessions without a capture do not carry its code inline.
                    *mark = Box::pin(crate::capture::session_mark::<DB>(&mut tx)).await?;
                }
                tx
            }
        };
        Ok(&mut **self.tx.insert(tx))
    }

    /// Commits the transaction, then publishes the events of its changes: each individual
    /// event once, to its own topics, then the batch events built from them. A failed publish
    /// is logged and does not fail the commit. Committing with nothing open does nothing.
    ///
    /// A transaction that cannot commit publishes nothing: on PostgreSQL, once a statement
    /// failed the transaction can only roll back, and a commit with changes recorded returns
    /// the database's error (a commit without any still returns `Ok`, as sqlx does).
    ///
    /// # Panics
    ///
    /// A panic while the updates are built (an event's `Serialize` or topic formatting, a
    /// batch rule: code of the program) propagates, and nothing is published. With direct
    /// delivery, awaited or in the background, the updates are built while the `COMMIT` runs:
    /// the panic waits for its answer, so when it reaches the caller the transaction has
    /// committed (or failed) and its changes are visible, without events. With
    /// [`outbox`](Self::outbox) delivery they are built before the `COMMIT`, and the
    /// transaction rolls back.
    pub async fn commit(&mut self) -> Result<CommitSummary, Error> {
        // The predicates belong to this transaction, whatever becomes of it.
        let predicates = std::mem::take(&mut self.predicates);
        let Some(mut tx) = self.tx.take() else {
            return Ok(CommitSummary::default());
        };
        self.nested.clear();
        let log = std::mem::take(&mut self.log);
        let span = tracing::info_span!(
            "mercure_track.commit",
            changes = log.len(),
            events = tracing::field::Empty,
            batch_events = tracing::field::Empty,
            unresolved = tracing::field::Empty,
            context_queries = tracing::field::Empty,
            published = tracing::field::Empty,
            failed = tracing::field::Empty,
            queued = tracing::field::Empty,
        );
        // Kept only when a subscriber listens: the summary is recorded into it at the end.
        let recorded = (!span.is_disabled()).then(|| span.clone());
        let work = async move {
            let mut changes = log.len();
            let scope = ResolveScope {
                tracked: &self.tracked,
                predicates: &predicates,
            };
            let fail = self.unresolved == UnresolvedContext::Fail;
            let captured = self.capture.clone();
            let resolved = match resolve_log(&mut tx, log, &scope, fail, captured).await {
                Ok(resolved) => resolved,
                Err(error) => {
                    // The commit fails as a whole: nothing is kept, nothing is published.
                    if let Err(rollback) = tx.rollback().await {
                        tracing::warn!(%rollback, "rollback after a failed resolution failed");
                    }
                    return Err(error);
                }
            };
            changes += resolved.captured;
            let mut summary = CommitSummary {
                changes,
                unresolved: resolved.unresolved,
                context_queries: resolved.queries,
                ..CommitSummary::default()
            };
            match self.delivery {
                Delivery::Direct => {
                    if resolved.queries == 0 && changes > 0 {
                        // No statement ran at commit time: make sure the transaction can still
                        // commit. PostgreSQL answers COMMIT with a silent rollback after a
                        // failed statement, and the events of the changes it undid must not
                        // go out.
                        DB::execute(&mut tx, sqlx::query(sql::STILL_OPEN)).await?;
                    }
                    // The COMMIT follows the last statement at once, and the updates are
                    // built while it runs: `join` polls it first, so it is sent before they
                    // are built (unless its connection still waits for the end of the last
                    // statement's answer); they go out only once it succeeded. Built after
                    // it, they added their time to every commit's where the database runs
                    // the COMMIT meanwhile (the step from the COMMIT to the publish answered:
                    // 1.0 µs shorter on SQLite, about 2 µs on PostgreSQL, on the AMD host of
                    // BENCHMARKS.md; no difference measured on the Intel host nor on the
                    // fifth session's host, where the work is not overlapped). Building runs the events' serializers and
                    // batch rules: a panic there waits for the COMMIT's answer, so that the
                    // transaction's fate is known, then unwinds on.
                    let (committed, prepared) = futures_util::future::join(tx.commit(), async {
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            prepare(&mut summary, resolved.events)
                        }))
                    })
                    .await;
                    let updates = prepared.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                    committed?;
                    let delivered = dispatch::publish(
                        &self.publisher,
                        self.background.as_ref(),
                        self.publish_concurrency,
                        updates,
                    )
                    .await;
                    summary.published = delivered.published;
                    summary.failed = delivered.failed;
                    summary.queued = delivered.queued;
                }
                Delivery::Outbox => {
                    // Boxed: direct delivery does not carry the outbox's code inline.
                    Box::pin(commit_to_outbox(
                        tx,
                        &self.pool,
                        &mut summary,
                        resolved.events,
                    ))
                    .await?;
                }
            }
            // Plain SQL on captured tables left for the capture loops of this process.
            crate::capture::committed::<DB>();
            if let Some(span) = &recorded {
                record_summary(span, &summary);
            }
            Ok(summary)
        };
        // Without a subscriber for it, the span is not entered at every poll of the commit.
        if span.is_disabled() {
            work.await
        } else {
            work.instrument(span).await
        }
    }

    /// Rolls the transaction back: its changes are forgotten and nothing is published.
    pub async fn rollback(&mut self) -> Result<(), Error> {
        self.log.clear();
        self.predicates.clear();
        self.nested.clear();
        if let Some(tx) = self.tx.take() {
            tx.rollback().await?;
        }
        Ok(())
    }

    /// Begins a nested transaction (a savepoint).
    pub async fn begin_nested(&mut self) -> Result<(), Error> {
        let depth = self.nested.len();
        let sql = sql::savepoint(depth);
        DB::execute(self.conn().await?, sqlx::query(&sql)).await?;
        self.nested.push(Savepoint {
            log: self.log.len(),
            predicates: self.predicates.len(),
        });
        Ok(())
    }

    /// Ends the innermost nested transaction, keeping its changes for the commit.
    pub async fn commit_nested(&mut self) -> Result<(), Error> {
        let depth = self
            .nested
            .len()
            .checked_sub(1)
            .ok_or(Error::NoNestedTransaction)?;
        let sql = sql::release(depth);
        DB::execute(self.conn().await?, sqlx::query(&sql)).await?;
        self.nested.pop();
        Ok(())
    }

    /// Rolls back the innermost nested transaction: its changes are forgotten and publish
    /// nothing.
    pub async fn rollback_nested(&mut self) -> Result<(), Error> {
        let depth = self
            .nested
            .len()
            .checked_sub(1)
            .ok_or(Error::NoNestedTransaction)?;
        let rollback = sql::rollback_to(depth);
        let release = sql::release(depth);
        let conn = self.conn().await?;
        DB::execute(conn, sqlx::query(&rollback)).await?;
        DB::execute(conn, sqlx::query(&release)).await?;
        if let Some(mark) = self.nested.pop() {
            self.log.truncate(mark.log);
            self.predicates.truncate(mark.predicates);
        }
        Ok(())
    }

    /// Records a change of a row of `M` when it fires a tracked event.
    pub(crate) fn record<M>(&mut self, trigger: TriggerKey, key: &M::Key)
    where
        M: Model,
        M::Key: TrackedKey<DB>,
    {
        if self.tracked.fires(trigger) {
            self.log.push(Entry::Changed {
                model: TypeId::of::<M>(),
                change: Change {
                    key: Arc::new(key.clone()) as ErasedKey,
                    trigger,
                },
                resolver: resolver::<DB, M>(),
            });
        }
    }

    /// Resolves, now, the events a change of `key` fires: for a row about to be deleted.
    /// Nothing is recorded: see [`TrackedSession::record_resolved`].
    pub(crate) async fn resolve_now<M>(
        &mut self,
        trigger: TriggerKey,
        key: &M::Key,
    ) -> Result<Resolved, Error>
    where
        M: Model,
        M::Key: TrackedKey<DB>,
    {
        self.resolve_now_keys::<M>(trigger, std::slice::from_ref(key))
            .await
    }

    /// As [`TrackedSession::resolve_now`], for several rows of `M` at once (one query per
    /// event, as at commit).
    pub(crate) async fn resolve_now_keys<M>(
        &mut self,
        trigger: TriggerKey,
        keys: &[M::Key],
    ) -> Result<Resolved, Error>
    where
        M: Model,
        M::Key: TrackedKey<DB>,
    {
        if keys.is_empty() || !self.tracked.fires(trigger) {
            return Ok(Resolved::default());
        }
        self.conn().await?;
        let Self {
            tx: Some(tx),
            tracked,
            predicates,
            ..
        } = self
        else {
            // `conn` has just opened the transaction.
            tracing::error!(
                table = M::TABLE,
                rows = keys.len(),
                "no open transaction to resolve in (a bug)"
            );
            return Ok(Resolved::default());
        };
        let changes: Vec<Change> = keys
            .iter()
            .map(|key| Change {
                key: Arc::new(key.clone()) as ErasedKey,
                trigger,
            })
            .collect();
        let scope = ResolveScope {
            tracked,
            predicates,
        };
        resolver::<DB, M>()(&mut **tx, &changes, &scope).await
    }

    /// Whether an unresolvable context fails (rather than skips) under this session's policy.
    pub(crate) fn fails_unresolved(&self) -> bool {
        self.unresolved == UnresolvedContext::Fail
    }

    /// Records events resolved by [`TrackedSession::resolve_now`], once the write they are
    /// about has succeeded; logs what could not be resolved or contradicted a predicate.
    pub(crate) fn record_resolved(&mut self, resolved: Resolved) {
        let (events, unresolved) = resolved.settle();
        if !events.is_empty() || unresolved > 0 {
            self.log.push(Entry::Resolved { events, unresolved });
        }
    }
}

/// Deduplicates `events` and builds their batch events (see [`dispatch::prepare`]); counts
/// both in `summary`. Returns the updates, individual events first.
fn prepare(summary: &mut CommitSummary, events: Vec<Box<dyn AnyEvent>>) -> Vec<dispatch::Outgoing> {
    let prepared = dispatch::prepare(events);
    summary.events = prepared.individual.len();
    summary.batch_events = prepared.batch.len();
    let mut updates = prepared.individual;
    updates.extend(prepared.batch);
    updates
}

/// Outbox delivery of a commit: writes its updates into the outbox in its transaction, then
/// commits and wakes this process's relays.
async fn commit_to_outbox<DB: Dialect>(
    mut tx: Transaction<'static, DB>,
    pool: &Pool<DB>,
    summary: &mut CommitSummary,
    events: Vec<Box<dyn AnyEvent>>,
) -> Result<(), Error> {
    let updates = prepare(summary, events);
    summary.queued = updates.len();
    crate::outbox::write::<DB>(&mut tx, updates).await?;
    tx.commit().await?;
    crate::outbox::committed(pool);
    Ok(())
}

/// Records a commit's summary into its span. Out of line: the commit's code stays compact.
#[inline(never)]
fn record_summary(span: &tracing::Span, summary: &CommitSummary) {
    span.record("events", summary.events);
    span.record("batch_events", summary.batch_events);
    span.record("unresolved", summary.unresolved);
    span.record("context_queries", summary.context_queries);
    span.record("published", summary.published);
    span.record("failed", summary.failed);
    span.record("queued", summary.queued);
}

/// The events of a commit's change log, resolved.
struct ResolvedLog {
    events: Vec<Box<dyn AnyEvent>>,
    /// Captured changes of the transaction (see `crate::capture`).
    captured: usize,
    unresolved: usize,
    queries: usize,
}

/// Resolves every change of the log: one resolver call per changed model. With `fail`, the
/// first event that cannot be resolved is the error; otherwise each is logged and skipped.
///
/// A free function over the parts of the session it reads, so that the commit future does not
/// hold a shared reference to the session (whose connection need not be `Sync`).
async fn resolve_log<DB: Dialect>(
    tx: &mut Transaction<'static, DB>,
    log: Vec<Entry<DB>>,
    scope: &ResolveScope<'_, DB>,
    fail: bool,
    capture: Option<(Arc<crate::capture::Capture<DB>>, i64)>,
) -> Result<ResolvedLog, Error> {
    let mut events = Vec::new();
    let mut unresolved = 0;
    let mut by_model: Vec<(TypeId, Resolver<DB>, Vec<Change>)> = Vec::new();
    for entry in log {
        match entry {
            Entry::Resolved {
                events: resolved,
                unresolved: skipped,
            } => {
                events.extend(resolved);
                unresolved += skipped;
            }
            Entry::Changed {
                model,
                change,
                resolver,
            } => match by_model.iter_mut().find(|(m, ..)| *m == model) {
                Some((_, _, changes)) => changes.push(change),
                None => by_model.push((model, resolver, vec![change])),
            },
        }
    }
    let mut resolved = resolve_all(&mut **tx, &by_model, scope).await?;
    let mut captured = 0;
    if let Some((capture, mark)) = capture {
        // The same change seen by a setter and by the capture builds equal events: one goes out.
        // Boxed: sessions without a capture do not carry its code inline.
        let (own, rows) = Box::pin(crate::capture::take_own(tx, &capture, mark, scope)).await?;
        resolved.extend(own);
        captured = rows;
    }
    if fail && let Some(error) = resolved.failure() {
        return Err(error);
    }
    let queries = resolved.queries;
    let (more, skipped) = resolved.settle();
    append_events(&mut events, more);
    Ok(ResolvedLog {
        events,
        captured,
        unresolved: unresolved + skipped,
        queries,
    })
}

impl<DB: Dialect> TrackingSession for TrackedSession<DB> {
    type ContextSource = ContextRow<DB>;

    fn track_event<E>(&mut self)
    where
        E: MercureEvent + FromContext<ContextRow<DB>>,
    {
        self.tracked.track::<E>();
    }
}
