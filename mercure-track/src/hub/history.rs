//! The hub's bounded in-memory history and live fan-out.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::broadcast;

/// An update as the hub stores and delivers it.
#[derive(Debug)]
pub(crate) struct StoredUpdate {
    /// Position in the hub's sequence, from 1.
    pub(crate) seq: u64,
    pub(crate) id: String,
    pub(crate) topics: Vec<String>,
    pub(crate) data: String,
    pub(crate) private: bool,
    pub(crate) event_type: Option<String>,
    pub(crate) retry: Option<u64>,
}

pub(crate) struct History {
    inner: Mutex<Inner>,
    live: broadcast::Sender<Arc<StoredUpdate>>,
    capacity: usize,
}

struct Inner {
    next_seq: u64,
    entries: VecDeque<Arc<StoredUpdate>>,
}

impl History {
    pub(crate) fn new(capacity: usize) -> Self {
        let (live, _) = broadcast::channel(capacity.clamp(16, 65_536));
        Self {
            inner: Mutex::new(Inner {
                next_seq: 1,
                entries: VecDeque::with_capacity(capacity.min(4096)),
            }),
            live,
            capacity,
        }
    }

    /// Stores and fans out an update; returns it with its sequence number.
    pub(crate) fn push(&self, make: impl FnOnce(u64) -> StoredUpdate) -> Arc<StoredUpdate> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let update = Arc::new(make(inner.next_seq));
        inner.next_seq += 1;
        if self.capacity > 0 {
            if inner.entries.len() == self.capacity {
                inner.entries.pop_front();
            }
            inner.entries.push_back(update.clone());
        }
        // Sent under the lock, so that the live order is the sequence order. No receiver is
        // not an error.
        let _ = self.live.send(update.clone());
        update
    }

    /// A live receiver, and the sequence number of the last update stored before it.
    pub(crate) fn subscribe(&self) -> (broadcast::Receiver<Arc<StoredUpdate>>, u64) {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        (self.live.subscribe(), inner.next_seq - 1)
    }

    /// The stored updates after the one with id `last_event_id` (all of them for `earliest`,
    /// as the reference hub understands it), up to sequence `until`;
    /// `None` when that id is no longer (or never was) in the history.
    pub(crate) fn after_id(
        &self,
        last_event_id: &str,
        until: u64,
    ) -> Option<Vec<Arc<StoredUpdate>>> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if last_event_id == "earliest" {
            return Some(
                inner
                    .entries
                    .iter()
                    .filter(|u| u.seq <= until)
                    .cloned()
                    .collect(),
            );
        }
        let position = inner.entries.iter().position(|u| u.id == last_event_id)?;
        Some(
            inner
                .entries
                .iter()
                .skip(position + 1)
                .filter(|u| u.seq <= until)
                .cloned()
                .collect(),
        )
    }

    /// The stored updates with a sequence number above `seq` (to catch up after lagging).
    pub(crate) fn after_seq(&self, seq: u64) -> Vec<Arc<StoredUpdate>> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner
            .entries
            .iter()
            .filter(|u| u.seq > seq)
            .cloned()
            .collect()
    }

    /// The id of the newest update, if any.
    pub(crate) fn last_id(&self) -> Option<String> {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner.entries.back().map(|u| u.id.clone())
    }
}
