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
