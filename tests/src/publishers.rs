//! Publishers for tests beyond the recording one: one that fails, one that waits for a gate.

use std::sync::Arc;

use mercure_track::publisher::{BoxFuture, PublishOutcome};
use mercure_track::{PublishError, Publisher, RecordingPublisher, Update};
use tokio::sync::{Notify, Semaphore};

/// Always answers as a hub answering 503 would.
#[derive(Debug, Clone, Default)]
pub struct FailingPublisher;

impl Publisher for FailingPublisher {
    fn publish_update(
        &self,
        _update: Update,
    ) -> BoxFuture<'_, Result<PublishOutcome, PublishError>> {
        Box::pin(async {
            Err(PublishError::Status {
                status: 503,
                body: "hub unavailable".into(),
            })
        })
    }
}

/// Records like [`RecordingPublisher`], but each publish first signals `entered` and then
/// waits for a permit of `gate`.
#[derive(Debug, Clone)]
pub struct GatedPublisher {
    /// The record.
    pub recording: RecordingPublisher,
    /// Permits to publish.
    pub gate: Arc<Semaphore>,
    /// Notified when a publish starts waiting.
    pub entered: Arc<Notify>,
}

impl GatedPublisher {
    /// A closed gate.
    pub fn closed() -> Self {
        Self {
            recording: RecordingPublisher::new(),
            gate: Arc::new(Semaphore::new(0)),
            entered: Arc::new(Notify::new()),
        }
    }
}

impl Publisher for GatedPublisher {
    fn publish_update(
        &self,
        update: Update,
    ) -> BoxFuture<'_, Result<PublishOutcome, PublishError>> {
        Box::pin(async move {
            self.entered.notify_one();
            let permit = self.gate.acquire().await;
            drop(permit);
            self.recording.publish_update(update).await
        })
    }
}

/// Publishes through one of two publishers, switched at run time: a misconfigured key, then
/// the corrected one, without restarting what uses it.
#[derive(Clone)]
pub struct SwitchedPublisher {
    /// Used while `use_second` is false.
    pub first: Arc<dyn Publisher>,
    /// Used once `use_second` is set.
    pub second: Arc<dyn Publisher>,
    /// Which one publishes.
    pub use_second: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for SwitchedPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwitchedPublisher")
            .field("use_second", &self.use_second)
            .finish_non_exhaustive()
    }
}

impl Publisher for SwitchedPublisher {
    fn publish_update(
        &self,
        update: Update,
    ) -> BoxFuture<'_, Result<PublishOutcome, PublishError>> {
        if self.use_second.load(std::sync::atomic::Ordering::SeqCst) {
            self.second.publish_update(update)
        } else {
            self.first.publish_update(update)
        }
    }
}
