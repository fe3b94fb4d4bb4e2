//! Publishing updates: the [`Publisher`] trait, the HTTP [`HubPublisher`] and the
//! [`RecordingPublisher`] for tests.
//!
//! Publishing by hand — from a webhook or an API route, outside any tracked session:
//!
//! ```no_run
//! use mercure_track::publisher::{HubConfig, JwtKey};
//! use mercure_track::{HubPublisher, Publisher, PublisherExt, Update};
//! # #[derive(mercure_track::MercureEvent)]
//! # #[mercure(type = "order_update", topic = "orders/{order_id}")]
//! # struct OrderUpdate { order_id: String }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // From MERCURE_URL and MERCURE_PUBLISHER_JWT_KEY, or in code:
//! let publisher = HubPublisher::new(
//!     HubConfig::new("http://localhost:3000/.well-known/mercure")?.key(JwtKey::new("secret")),
//! )?;
//! // An event: its topics and its JSON.
//! publisher.publish(&OrderUpdate { order_id: "abc".into() }).await?;
//! // Or any update.
//! let outcome = publisher
//!     .publish_update(Update::new(["orders"], r#"{"type":"list_update"}"#).private(true))
//!     .await?;
//! println!("update ids: {:?}", outcome.ids());
//! # Ok(()) }
//! ```

mod config;
mod env;
mod error;
mod hub;
mod jwt;
mod recording;

use std::future::Future;
use std::pin::Pin;

pub use config::{Algorithm, DEFAULT_TIMEOUT, HubConfig, JwtKey};
pub(crate) use config::{check_hub_url, redacted};
pub(crate) use env::Env;
pub use error::{BoxError, ConfigError, PublishError, TokenError};
pub use hub::HubPublisher;
pub use jwt::{JwtSigner, TokenMinter};
pub use recording::{RecordedUpdate, RecordingPublisher};

use crate::event::MercureEvent;
use crate::wire::Update;

/// A boxed future, so that [`Publisher`] stays object safe (`Arc<dyn Publisher>`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What became of a publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishOutcome {
    /// The hub accepted the update (all its topics in one request).
    Published {
        /// The update id the hub answered.
        ids: Vec<String>,
    },
    /// Publishing is not configured (no JWT key): nothing was sent. A warning was logged once.
    Skipped,
}

impl PublishOutcome {
    /// The update ids, empty when skipped.
    pub fn ids(&self) -> &[String] {
        match self {
            Self::Published { ids } => ids,
            Self::Skipped => &[],
        }
    }
}

/// Where updates go: a hub over HTTP, a recording for tests, an outbox.
///
/// Object safe: sessions hold an `Arc<dyn Publisher>`.
pub trait Publisher: Send + Sync + 'static {
    /// Publishes one update.
    fn publish_update(&self, update: Update)
    -> BoxFuture<'_, Result<PublishOutcome, PublishError>>;

    /// The id of the latest update the hub accepted from this publisher, if it knows one.
    ///
    /// Read it *before* reading the state a page shows, and hand it to the page as the
    /// discovery `Link` header's `last-event-id` ([`crate::subscriber::Discovery::link_header`]): every
    /// change committed after that read is published after it, so the hub replays it to a
    /// subscription that resumes from this id, however late the page subscribes.
    fn last_event_id(&self) -> Option<String> {
        None
    }
}

/// `publish(&event)` for every publisher.
pub trait PublisherExt: Publisher {
    /// Publishes an event to its topics, with its JSON as data.
    fn publish<'a, E: MercureEvent>(
        &'a self,
        event: &E,
    ) -> BoxFuture<'a, Result<PublishOutcome, PublishError>> {
        match event.to_update() {
            Ok(update) => self.publish_update(update),
            Err(error) => Box::pin(std::future::ready(Err(PublishError::Serialize(Box::new(
                error,
            ))))),
        }
    }
}

impl<P: Publisher + ?Sized> PublisherExt for P {}

impl<P: Publisher + ?Sized> Publisher for std::sync::Arc<P> {
    fn publish_update(
        &self,
        update: Update,
    ) -> BoxFuture<'_, Result<PublishOutcome, PublishError>> {
        (**self).publish_update(update)
    }

    fn last_event_id(&self) -> Option<String> {
        (**self).last_event_id()
    }
}
