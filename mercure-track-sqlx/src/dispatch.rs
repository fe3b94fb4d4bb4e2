//! After the commit: deduplicate, build batch events, publish (awaited or in the background).

use std::any::TypeId;
use std::collections::hash_map::{Entry, RandomState};
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::Arc;

use futures_util::StreamExt as _;
use mercure_track::{
    AnyEvent, Collected, PublishError, PublishOutcome, Publisher, Update, registry,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

/// How many background publishes may be in flight at once, by default, across every commit
/// that shares one [`Background`].
pub const DEFAULT_BACKGROUND_LIMIT: usize = 256;

/// Background publishing: the publishes of commits run as tasks of a [`TaskTracker`], at most
/// [`limit`](Self::limit) at once across every commit of every session that shares this value
/// (clones share the limit).
///
/// When the limit is reached, a commit waits for room before it returns (backpressure): a
/// slow hub slows the commits down instead of piling up tasks, sockets and memory, and
/// nothing is dropped, even when the waiting commit is cancelled. A commit waiting for room
/// counts as a task of the tracker, so [`drain`] waits for it too.
///
/// Create one per application and give a clone to each session
/// ([`TrackedSession::background`](crate::TrackedSession::background)):
///
/// ```no_run
/// # async fn run(pool: sqlx::SqlitePool, hub: mercure_track::HubPublisher) {
/// use mercure_track_sqlx::{Background, TaskTracker, TrackedSession, drain};
///
/// let background = Background::with_limit(TaskTracker::new(), 128);
/// let session = TrackedSession::new(pool, hub).background(background.clone());
/// // ... at shutdown:
/// drain(background.tracker(), std::time::Duration::from_secs(10)).await;
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct Background {
    tracker: TaskTracker,
    permits: Arc<Semaphore>,
    limit: usize,
}

impl Background {
    /// Publishes as tasks of `tracker`, at most [`DEFAULT_BACKGROUND_LIMIT`] at once.
    pub fn new(tracker: TaskTracker) -> Self {
        Self::with_limit(tracker, DEFAULT_BACKGROUND_LIMIT)
    }

    /// Publishes as tasks of `tracker`, at most `limit` (at least 1) at once.
    pub fn with_limit(tracker: TaskTracker, limit: usize) -> Self {
        let limit = limit.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            tracker,
            permits: Arc::new(Semaphore::new(limit)),
            limit,
        }
    }

    /// The tracker the publishes run on: spawn other background work on it too, and give it
    /// to [`drain`] at shutdown.
    pub fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    /// The most publishes in flight at once.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// The publishes in flight now.
    pub fn in_flight(&self) -> usize {
        self.limit - self.permits.available_permits()
    }

    /// Starts one task per update, each once there is room for it; returns when all are
    /// started.
    ///
    /// A feeder task of the tracker starts them, so that a commit whose wait is cancelled (a
    /// request handler dropped when its client goes away) loses nothing: the feeder goes on.
    /// While it waits for room it counts as a task of the tracker, so a drain waits for it.
    async fn spawn_all(&self, publisher: &Arc<dyn Publisher>, updates: Vec<Outgoing>) {
        if updates.is_empty() {
            return;
        }
        let (started, all_started) = tokio::sync::oneshot::channel::<()>();
        let background = self.clone();
        let publisher = publisher.clone();
        self.tracker.spawn(async move {
            for outgoing in updates {
                let permit = background.room().await;
                let publisher = publisher.clone();
                background.tracker.spawn(async move {
                    publish_one(publisher, outgoing).await;
                    drop(permit);
                });
            }
            // The commit may have stopped waiting: then nobody listens.
            let _ = started.send(());
        });
        // Backpressure: the commit returns once every publish of it has room.
        let _ = all_started.await;
    }

    /// A place in the limit, once there is one.
    async fn room(&self) -> Option<OwnedSemaphorePermit> {
        match self.permits.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                tracing::debug!(
                    limit = self.limit,
                    "background publishing is full: the commit waits for room"
                );
                // The semaphore is never closed, so a permit always comes.
                self.permits.clone().acquire_owned().await.ok()
            }
        }
    }
}

/// An event ready to publish.
pub(crate) struct Outgoing {
    pub(crate) event_type: &'static str,
    pub(crate) update: Update,
}

/// The updates of a commit: individual events once each, then its batch events.
pub(crate) struct Prepared {
    pub(crate) individual: Vec<Outgoing>,
    pub(crate) batch: Vec<Outgoing>,
}

/// Deduplicates `events` (same type, same JSON: one publish) and builds the batch events that
/// collect them.
///
/// The bodies are not copied: each is known by a hash of it, and compared in full only with
/// the bodies of the same hash.
pub(crate) fn prepare(events: Vec<Box<dyn AnyEvent>>) -> Prepared {
    prepare_with(events, &RandomState::new())
}

/// [`prepare`], hashing the bodies with `hasher`.
fn prepare_with(events: Vec<Box<dyn AnyEvent>>, hasher: &impl BuildHasher) -> Prepared {
    // (type, hash of the body) -> the first update with them, in `individual`.
    let mut seen: HashMap<(TypeId, u64), usize> = HashMap::new();
    let mut unique: Vec<Box<dyn AnyEvent>> = Vec::with_capacity(events.len());
    let mut individual: Vec<Outgoing> = Vec::with_capacity(events.len());
    let single = events.len() == 1;
    for event in events {
        let descriptor = event.event_descriptor();
        let Some(update) = to_update(event.as_ref()) else {
            continue;
        };
        let type_id = (descriptor.type_id)();
        let duplicate = !single && {
            let same = |index: usize| {
                (unique[index].event_descriptor().type_id)() == type_id
                    && individual[index].update.data == update.data
            };
            match seen.entry((type_id, hasher.hash_one(update.data.as_str()))) {
                Entry::Vacant(vacant) => {
                    vacant.insert(individual.len());
                    false
                }
                // Another body with the same hash (rare): compare with every body kept.
                Entry::Occupied(first) => same(*first.get()) || (0..individual.len()).any(same),
            }
        };
        if !duplicate {
            individual.push(Outgoing {
                event_type: descriptor.type_name,
                update,
            });
            unique.push(event);
        }
    }

    let mut batch = Vec::new();
    let mut built = HashSet::new();
    let collected = Collected::new(&unique);
    for event in &unique {
        for descriptor in registry::batches_collecting((event.event_descriptor().type_id)()) {
            // One batch event of each type per commit.
            if !built.insert((descriptor.type_id)()) {
                continue;
            }
            let Some(rule) = &descriptor.batch else {
                // The registry lists only batch events here: a descriptor without a rule is a
                // hand-written descriptor that says it collects events but cannot build.
                tracing::error!(
                    event_type = descriptor.type_name,
                    "batch event skipped: its descriptor has no batch rule"
                );
                continue;
            };
            match (rule.build)(&collected) {
                Some(batch_event) => {
                    // A body that cannot be serialized is logged by `to_update`.
                    if let Some(update) = to_update(batch_event.as_ref()) {
                        batch.push(Outgoing {
                            event_type: descriptor.type_name,
                            update,
                        });
                    }
                }
                None => tracing::debug!(
                    event_type = descriptor.type_name,
                    "no batch event: its rule found nothing to collect in this commit"
                ),
            }
        }
    }
    Prepared { individual, batch }
}

fn to_update(event: &dyn AnyEvent) -> Option<Update> {
    match event.event_update() {
        Ok(update) => Some(update),
        Err(error) => {
            tracing::warn!(
                event_type = event.event_descriptor().type_name,
                %error,
                "event skipped: it could not be serialized"
            );
            None
        }
    }
}

/// Where the updates of a commit stand when [`publish`] returns.
#[derive(Debug, Default)]
pub(crate) struct Delivered {
    /// Accepted by the hub.
    pub(crate) published: usize,
    /// Refused or unreachable (each logged).
    pub(crate) failed: usize,
    /// Handed to background tasks.
    pub(crate) queued: usize,
}

/// Publishes `updates`: in the background when there is a [`Background`] (the call returns
/// once every update has room in its limit), otherwise before returning, at most
/// `concurrency` at a time. Failures are logged, never returned; the counts say where the
/// updates stand.
pub(crate) async fn publish(
    publisher: &Arc<dyn Publisher>,
    background: Option<&Background>,
    concurrency: usize,
    mut updates: Vec<Outgoing>,
) -> Delivered {
    if updates.is_empty() {
        return Delivered::default();
    }
    // The awaited one-update path is inline; the others are boxed, so that it stays compact.
    match background {
        Some(background) => {
            let queued = updates.len();
            Box::pin(background.spawn_all(publisher, updates)).await;
            Delivered {
                queued,
                ..Delivered::default()
            }
        }
        None if updates.len() == 1 => {
            let published = match updates.pop() {
                Some(outgoing) => publish_one(publisher.clone(), outgoing).await,
                None => false,
            };
            Delivered {
                published: usize::from(published),
                failed: usize::from(!published),
                ..Delivered::default()
            }
        }
        None => Box::pin(publish_many(publisher, concurrency, updates)).await,
    }
}

/// Publishes `updates`, at most `concurrency` at a time.
async fn publish_many(
    publisher: &Arc<dyn Publisher>,
    concurrency: usize,
    updates: Vec<Outgoing>,
) -> Delivered {
    futures_util::stream::iter(updates)
        .map(|outgoing| publish_one(publisher.clone(), outgoing))
        .buffer_unordered(concurrency.max(1))
        .fold(Delivered::default(), |mut delivered, published| {
            if published {
                delivered.published += 1;
            } else {
                delivered.failed += 1;
            }
            std::future::ready(delivered)
        })
        .await
}

/// Publishes one update; whether the hub accepted it.
async fn publish_one(publisher: Arc<dyn Publisher>, outgoing: Outgoing) -> bool {
    let Outgoing { event_type, update } = outgoing;
    let topics = update.topics.clone();
    match publisher.publish_update(update).await {
        Ok(outcome) => {
            log_published(event_type, &topics, &outcome);
            true
        }
        Err(error) => {
            log_not_published(event_type, &topics, &error);
            false
        }
    }
}

/// Logs a publish the hub accepted. Out of line, as [`log_not_published`]: the publish's own
/// code stays compact.
#[inline(never)]
fn log_published(event_type: &'static str, topics: &[String], outcome: &PublishOutcome) {
    tracing::debug!(event_type, ?topics, ids = ?outcome.ids(), "event published");
}

/// Logs a publish that failed.
#[cold]
#[inline(never)]
fn log_not_published(event_type: &'static str, topics: &[String], error: &PublishError) {
    tracing::warn!(
        event_type,
        ?topics,
        status = ?error.status(),
        %error,
        "event not published"
    );
}

/// Stops a background tracker and waits for its publishes (and the commits still waiting for
/// room in a [`Background`]'s limit), at most `deadline`. Returns how many tasks did not finish
/// in time (0 when everything was drained); each background publish is one task.
pub async fn drain(tracker: &TaskTracker, deadline: std::time::Duration) -> usize {
    tracker.close();
    match tokio::time::timeout(deadline, tracker.wait()).await {
        Ok(()) => 0,
        Err(_) => {
            let unfinished = tracker.len();
            tracing::warn!(
                unfinished,
                "shutdown deadline passed with publishes in flight"
            );
            unfinished
        }
    }
}

#[cfg(test)]
mod tests {
    use std::hash::{BuildHasher, Hasher};

    use mercure_track::AnyEvent;
    use mercure_track::prelude::*;

    use super::prepare_with;

    #[derive(Debug, Clone, Tracked)]
    #[tracked(table = "notes")]
    struct Note {
        #[tracked(primary_key)]
        id: i64,
        status: String,
    }

    #[derive(Debug, MercureEvent)]
    #[mercure(type = "note_update", topic = "notes/{id}")]
    #[trigger(Note::status)]
    struct NoteUpdate {
        #[context(Note::id)]
        id: i64,
    }

    /// Every body gets the same hash: each comparison is a collision.
    struct Colliding;

    struct Constant;

    impl Hasher for Constant {
        fn finish(&self) -> u64 {
            7
        }
        fn write(&mut self, _: &[u8]) {}
    }

    impl BuildHasher for Colliding {
        type Hasher = Constant;
        fn build_hasher(&self) -> Constant {
            Constant
        }
    }

    fn events(ids: &[i64]) -> Vec<Box<dyn AnyEvent>> {
        ids.iter()
            .map(|id| Box::new(NoteUpdate { id: *id }) as Box<dyn AnyEvent>)
            .collect()
    }

    fn topics(ids: &[i64], hasher: &impl BuildHasher) -> Vec<String> {
        prepare_with(events(ids), hasher)
            .individual
            .into_iter()
            .map(|outgoing| outgoing.update.topics[0].clone())
            .collect()
    }

    #[test]
    fn equal_bodies_publish_once_and_different_ones_each_even_when_their_hashes_collide() {
        let ids = [1, 2, 1, 3, 2, 1];
        let want = ["notes/1", "notes/2", "notes/3"];
        assert_eq!(topics(&ids, &std::hash::RandomState::new()), want);
        assert_eq!(topics(&ids, &Colliding), want);
        assert_eq!(topics(&[4], &Colliding), ["notes/4"]);
    }
}
