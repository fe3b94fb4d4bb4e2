//! After the commit: deduplicate, build batch events, publish (awaited or in the background).

use std::collections::HashSet;
use std::sync::Arc;

use futures_util::StreamExt as _;
use mercure_track::{AnyEvent, Collected, Publisher, Update, registry};
use tokio_util::task::TaskTracker;

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
pub(crate) fn prepare(events: Vec<Box<dyn AnyEvent>>) -> Prepared {
    let mut seen = HashSet::new();
    let mut unique = Vec::with_capacity(events.len());
    let mut individual = Vec::with_capacity(events.len());
    for event in events {
        let descriptor = event.event_descriptor();
        let Some(update) = to_update(event.as_ref()) else {
            continue;
        };
        if seen.insert(((descriptor.type_id)(), update.data.clone())) {
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
                continue;
            };
            if let Some(batch_event) = (rule.build)(&collected)
                && let Some(update) = to_update(batch_event.as_ref())
            {
                batch.push(Outgoing {
                    event_type: descriptor.type_name,
                    update,
                });
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
    /// Handed to a background task.
    pub(crate) queued: usize,
}

/// Publishes `updates`, at most `concurrency` at a time: as a task of `tracker` when there is
/// one (the call returns at once), otherwise before returning. Failures are logged, never
/// returned; the counts say where the updates stand.
pub(crate) async fn publish(
    publisher: &Arc<dyn Publisher>,
    tracker: Option<&TaskTracker>,
    concurrency: usize,
    updates: Vec<Outgoing>,
) -> Delivered {
    if updates.is_empty() {
        return Delivered::default();
    }
    let count = updates.len();
    let publisher = publisher.clone();
    let all = async move {
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
    };
    match tracker {
        Some(tracker) => {
            tracker.spawn(all);
            Delivered {
                queued: count,
                ..Delivered::default()
            }
        }
        None => all.await,
    }
}

/// Publishes one update; whether the hub accepted it.
async fn publish_one(publisher: Arc<dyn Publisher>, outgoing: Outgoing) -> bool {
    let Outgoing { event_type, update } = outgoing;
    let topics = update.topics.clone();
    match publisher.publish_update(update).await {
        Ok(outcome) => {
            tracing::debug!(event_type, ?topics, ids = ?outcome.ids(), "event published");
            true
        }
        Err(error) => {
            tracing::warn!(
                event_type,
                ?topics,
                status = ?error.status(),
                %error,
                "event not published"
            );
            false
        }
    }
}

/// Stops a background tracker and waits for its publishes, at most `deadline`. Returns how
/// many tasks did not finish in time (0 when everything was drained).
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
