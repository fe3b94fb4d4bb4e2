//! The services of the original design. The storage upload and the GPU call are simulated
//! with short sleeps (`step`): this is a demonstration, not an image pipeline.

use std::time::Duration;

use mercure_track::{Model, mercure_autotrack};
use mercure_track_sqlx::Error;

use crate::domain::{
    ColoringVersion, ImageUpdate, Order, OrderUpdate, coloring_status, order_status,
};
use crate::session::AppSession;

/// Takes a coloring version through its statuses. Auto-tracked: its session tracks
/// `ImageUpdate` without any `track_changes` call here.
#[mercure_autotrack(ImageUpdate)]
pub struct ColoringGenerationService<S: AppSession> {
    session: S,
    step: Duration,
}

#[mercure_autotrack]
impl<S: AppSession> ColoringGenerationService<S> {
    /// A service working through `session`, pausing `step` where the real one would wait on
    /// storage or the GPU.
    pub fn new(session: S, step: Duration) -> Self {
        Self { session, step }
    }

    /// Creates a queued coloring version for `image_id`; returns its id. An image that does
    /// not exist is [`Error::RowNotFound`].
    pub async fn start(&mut self, image_id: i64) -> Result<i64, Error> {
        crate::domain::Image::find(&mut self.session, image_id).await?;
        let id = self.session.new_coloring_id().await?;
        ColoringVersion {
            id,
            image_id,
            status: coloring_status::QUEUED.to_owned(),
            progress: 0,
        }
        .insert(&mut self.session)
        .await?;
        self.session.commit().await?;
        Ok(id)
    }

    /// Runs the generation of `version_id`: upload, generate (with progress), complete, and
    /// select the result on its image. Each step is its own commit, so the page follows it.
    pub async fn process(&mut self, version_id: i64) -> Result<(), Error> {
        tokio::time::sleep(self.step).await; // simulated wait for a free worker
        let mut version = ColoringVersion::find(&mut self.session, version_id).await?;
        version
            .set_status(&mut self.session, coloring_status::UPLOADING)
            .await?;
        version.set_progress(&mut self.session, 10).await?;
        self.session.commit().await?;
        tokio::time::sleep(self.step).await; // simulated storage upload

        version
            .set_status(&mut self.session, coloring_status::GENERATING)
            .await?;
        self.session.commit().await?;
        for progress in [40, 70] {
            tokio::time::sleep(self.step).await; // simulated GPU work
            version.set_progress(&mut self.session, progress).await?;
            self.session.commit().await?;
        }
        tokio::time::sleep(self.step).await;

        version
            .set_status(&mut self.session, coloring_status::COMPLETED)
            .await?;
        version.set_progress(&mut self.session, 100).await?;
        let mut image = crate::domain::Image::find(&mut self.session, version.image_id).await?;
        image
            .set_selected_coloring_id(&mut self.session, Some(version.id))
            .await?;
        self.session.commit().await?;
        Ok(())
    }
}

/// Order ingestion written as in the original design's first form: the caller tracks
/// `OrderUpdate` and adds the order as tracking context by hand.
pub async fn ingest_order_by_hand<S: AppSession>(
    session: &mut S,
    order_id: &str,
    step: Duration,
) -> Result<(), Error> {
    session.track_event::<OrderUpdate>();
    session.add_tracking_context(Order::id.eq(order_id));
    let mut order = Order::find(session, order_id).await?;
    order.set_status(session, order_status::PROCESSING).await?;
    session.commit().await?;
    tokio::time::sleep(step).await; // simulated ingestion work
    order
        .set_status(session, order_status::READY_FOR_REVIEW)
        .await?;
    session.commit().await?;
    Ok(())
}

/// Order ingestion as an auto-tracked service: the original design's second form.
#[mercure_autotrack(OrderUpdate)]
pub struct OrderIngestionService<S: AppSession> {
    session: S,
    step: Duration,
}

#[mercure_autotrack]
impl<S: AppSession> OrderIngestionService<S> {
    /// A service working through `session`.
    pub fn new(session: S, step: Duration) -> Self {
        Self { session, step }
    }

    /// Moves the order through PROCESSING to READY_FOR_REVIEW, one commit each.
    pub async fn ingest(&mut self, order_id: &str) -> Result<(), Error> {
        let mut order = Order::find(&mut self.session, order_id).await?;
        order
            .set_status(&mut self.session, order_status::PROCESSING)
            .await?;
        self.session.commit().await?;
        tokio::time::sleep(self.step).await; // simulated ingestion work
        order
            .set_status(&mut self.session, order_status::READY_FOR_REVIEW)
            .await?;
        self.session.commit().await?;
        Ok(())
    }
}
