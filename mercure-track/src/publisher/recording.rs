//! A publisher that records, for tests: "this call published `ImageUpdate` to `orders/abc`".

use std::sync::{Arc, Mutex, PoisonError};

use super::error::PublishError;
use super::{BoxFuture, PublishOutcome, Publisher};
use crate::event::MercureEvent;
use crate::wire::Update;

/// One update a [`RecordingPublisher`] received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedUpdate {
    /// The update as published.
    pub update: Update,
    /// The `type` field of its JSON data, when it has one.
    pub event_type: Option<String>,
}

impl RecordedUpdate {
    /// The data parsed as JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.update.data).ok()
    }

    /// Whether this is `event` published to exactly the event's topics.
    pub fn is<E: MercureEvent>(&self, event: &E) -> bool {
        event.to_json().is_ok_and(|json| json == self.update.data)
            && event.topics() == self.update.topics
    }
}

/// Records every update instead of sending it. Clones share the record.
#[derive(Debug, Clone, Default)]
pub struct RecordingPublisher {
    updates: Arc<Mutex<Vec<RecordedUpdate>>>,
}

impl RecordingPublisher {
    /// An empty recording.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every update so far, in publish order.
    pub fn updates(&self) -> Vec<RecordedUpdate> {
        self.updates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Takes the updates so far, leaving the record empty.
    pub fn take(&self) -> Vec<RecordedUpdate> {
        std::mem::take(&mut *self.updates.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// The updates whose JSON `type` is `E::TYPE`.
    pub fn of_type<E: MercureEvent>(&self) -> Vec<RecordedUpdate> {
        self.updates()
            .into_iter()
            .filter(|u| u.event_type.as_deref() == Some(E::TYPE))
            .collect()
    }

    /// Whether `event` was published to its topics.
    pub fn published<E: MercureEvent>(&self, event: &E) -> bool {
        self.updates().iter().any(|u| u.is(event))
    }

    /// How many updates were published.
    pub fn len(&self) -> usize {
        self.updates
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether nothing was published.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Publisher for RecordingPublisher {
    fn publish_update(
        &self,
        update: Update,
    ) -> BoxFuture<'_, Result<PublishOutcome, PublishError>> {
        let event_type = serde_json::from_str::<serde_json::Value>(&update.data)
            .ok()
            .and_then(|v| v.get("type").and_then(|t| t.as_str().map(str::to_owned)));
        let mut updates = self.updates.lock().unwrap_or_else(PoisonError::into_inner);
        let id = format!("urn:recorded:{}", updates.len() + 1);
        updates.push(RecordedUpdate { update, event_type });
        Box::pin(std::future::ready(Ok(PublishOutcome::Published {
            ids: vec![id],
        })))
    }
}
