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
    max_bytes: usize,
}

struct Inner {
    next_seq: u64,
    entries: VecDeque<Arc<StoredUpdate>>,
    /// The sum of [`StoredUpdate::size`] over `entries`.
    bytes: usize,
}

/// Where a subscription resumes, and the response's `Last-Event-ID`.
#[derive(Debug)]
pub(crate) struct Replay {
    /// The stored updates to send before live ones (already filtered for the subscriber).
    pub(crate) updates: Vec<Arc<StoredUpdate>>,
    /// The id of the event preceding the first one sent, or `earliest`.
    pub(crate) last_event_id: String,
}

/// The reserved `Last-Event-ID` asking for the whole history.
pub(crate) const EARLIEST: &str = "earliest";

impl StoredUpdate {
    /// What the update costs in the history: its strings plus a fixed overhead.
    pub(crate) fn size(&self) -> usize {
        const OVERHEAD: usize = 128;
        OVERHEAD
            + self.id.len()
            + self.data.len()
            + self.event_type.as_ref().map_or(0, String::len)
            + self.topics.iter().map(|t| t.len() + 24).sum::<usize>()
    }
}

impl History {
    /// A history of at most `capacity` updates and `max_bytes` bytes.
    pub(crate) fn new(capacity: usize, max_bytes: usize) -> Self {
        let (live, _) = broadcast::channel(capacity.clamp(16, 65_536));
        Self {
            inner: Mutex::new(Inner {
                next_seq: 1,
                entries: VecDeque::with_capacity(capacity.min(4096)),
                bytes: 0,
            }),
            live,
            capacity,
            max_bytes,
        }
    }

    /// Stores and fans out an update; returns it with its sequence number. The oldest updates
    /// are dropped beyond the count or byte bound; an update larger than the byte bound alone
    /// is delivered live and not kept.
    pub(crate) fn push(&self, make: impl FnOnce(u64) -> StoredUpdate) -> Arc<StoredUpdate> {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let update = Arc::new(make(inner.next_seq));
        inner.next_seq += 1;
        let size = update.size();
        if self.capacity > 0 && size <= self.max_bytes {
            while !inner.entries.is_empty()
                && (inner.entries.len() >= self.capacity || inner.bytes + size > self.max_bytes)
            {
                if let Some(old) = inner.entries.pop_front() {
                    inner.bytes -= old.size();
                }
            }
            inner.entries.push_back(update.clone());
            inner.bytes += size;
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

    /// The replay of a subscription that sent `requested` as its last event id, among the
    /// updates up to sequence `until` that the subscriber may see (`visible`), as the reference
    /// hub's history transport does (`bolt.go`, `dispatchHistory`):
    ///
    /// - `earliest`: every visible stored update; the header says `earliest`;
    /// - a stored id: the visible updates after it; the header repeats the id;
    /// - an unknown id (never seen, or dropped from the history): nothing; the header names
    ///   the newest update this subscriber may see, or `earliest` — never an update it may
    ///   not see.
    pub(crate) fn replay(
        &self,
        requested: &str,
        until: u64,
        visible: impl Fn(&StoredUpdate) -> bool,
    ) -> Replay {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        let stored = inner.entries.iter().take_while(|u| u.seq <= until);
        if requested == EARLIEST {
            return Replay {
                updates: stored.filter(|u| visible(u)).cloned().collect(),
                last_event_id: EARLIEST.to_owned(),
            };
        }
        let mut newest_visible = None;
        let mut found = None;
        for (index, update) in stored.clone().enumerate() {
            if update.id == requested {
                found = Some(index);
                break;
            }
            if visible(update) {
                newest_visible = Some(&update.id);
            }
        }
        match found {
            Some(index) => Replay {
                updates: stored
                    .skip(index + 1)
                    .filter(|u| visible(u))
                    .cloned()
                    .collect(),
                last_event_id: requested.to_owned(),
            },
            None => Replay {
                updates: Vec::new(),
                last_event_id: newest_visible.map_or_else(|| EARLIEST.to_owned(), Clone::clone),
            },
        }
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

    /// How many updates and bytes the history holds.
    #[cfg(test)]
    pub(crate) fn usage(&self) -> (usize, usize) {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        (inner.entries.len(), inner.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::{History, StoredUpdate};

    fn update(seq: u64, data: &str) -> StoredUpdate {
        StoredUpdate {
            seq,
            id: format!("id-{seq}"),
            topics: vec!["t".into()],
            data: data.to_owned(),
            private: false,
            event_type: None,
            retry: None,
        }
    }

    #[test]
    fn bounded_in_count_and_bytes() {
        let history = History::new(100, 10_000);
        for _ in 0..50 {
            history.push(|seq| update(seq, &"x".repeat(1_000)));
        }
        let (count, bytes) = history.usage();
        assert!(bytes <= 10_000, "{bytes}");
        // About 1.2 kB each: the newest eight fit.
        assert_eq!(count, 8);
        let history = History::new(3, usize::MAX);
        for _ in 0..10 {
            history.push(|seq| update(seq, "x"));
        }
        assert_eq!(history.usage().0, 3);
        // An update larger than the whole bound is not kept.
        let history = History::new(10, 1_000);
        history.push(|seq| update(seq, &"x".repeat(2_000)));
        assert_eq!(history.usage(), (0, 0));
    }
}
