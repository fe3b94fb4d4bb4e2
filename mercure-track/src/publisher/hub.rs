//! Publishing to a Mercure hub over HTTP.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};

use super::config::{HubConfig, check_url};
use super::error::{ConfigError, PublishError};
use super::jwt::{JwtSigner, TokenMinter};
use super::{BoxFuture, PublishOutcome, Publisher};
use crate::protocol::{Grants, ProtocolVersion};
use crate::wire::Update;

/// Publishes updates to a Mercure hub, in the protocol generation of its configuration.
///
/// One pooled HTTP client (keep-alive) and one signed JWT serve every publish: cloning the
/// publisher shares both. An update with several topics is one request, its canonical topic
/// first. `Debug` shows neither key nor token.
#[derive(Clone, Debug)]
pub struct HubPublisher {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: reqwest::Client,
    /// Checked by [`check_url`]: no credentials, so `Debug` has nothing to hide.
    url: url::Url,
    protocol: ProtocolVersion,
    signer: Option<JwtSigner>,
    warned_unconfigured: AtomicBool,
    /// The id of the latest update the hub accepted from this publisher.
    last_event_id: RwLock<Option<String>>,
}

/// How much of an error answer's body is kept in [`PublishError::Status`].
const BODY_EXCERPT: usize = 512;

impl HubPublisher {
    /// A publisher for `config`. An invalid key is an error here, not at the first publish.
    /// A URL with credentials is refused (they would travel as a second `Authorization`
    /// header, which hubs refuse), as are a 1.0 configuration with a key but no issuer and a
    /// JWT lifetime beyond the representable.
    pub fn new(config: HubConfig) -> Result<Self, ConfigError> {
        // The fields are public: check the URL again.
        check_url(&config.url)?;
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|error| ConfigError::Client(Box::new(error)))?;
        let signer = config
            .key
            .as_ref()
            .map(|key| {
                let minter = TokenMinter::new(
                    key,
                    config.algorithm,
                    config.protocol,
                    config.resolved_identity(),
                    config.resolved_ttl(),
                )?;
                JwtSigner::new(minter, Grants::publish(config.publish.iter().cloned()))
            })
            .transpose()?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                url: config.url,
                protocol: config.protocol,
                signer,
                warned_unconfigured: AtomicBool::new(false),
                last_event_id: RwLock::new(None),
            }),
        })
    }

    /// A publisher configured from the environment (see [`HubConfig::from_env`]).
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::new(HubConfig::from_env()?)
    }

    /// The hub URL.
    pub fn url(&self) -> &url::Url {
        &self.inner.url
    }

    /// The protocol generation.
    pub fn protocol(&self) -> ProtocolVersion {
        self.inner.protocol
    }

    async fn send(&self, token: &str, body: String) -> Result<String, PublishError> {
        // A JWT is base64url and dots: always a valid header value; a token that is not one
        // is not a JWT.
        let authorization = HeaderValue::try_from(format!("Bearer {token}"))
            .map_err(|error| PublishError::Jwt(Box::new(error)))?;
        let response = self
            .inner
            .client
            .post(self.inner.url.clone())
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(AUTHORIZATION, authorization)
            .body(body)
            .send()
            .await
            .map_err(classify)?;
        let status = response.status();
        let text = response.text().await.map_err(classify)?;
        if status.is_success() {
            Ok(text)
        } else if status == reqwest::StatusCode::UNAUTHORIZED
            || status == reqwest::StatusCode::FORBIDDEN
        {
            Err(PublishError::Unauthorized {
                status: status.as_u16(),
            })
        } else {
            let mut body = text;
            if body.len() > BODY_EXCERPT {
                let mut cut = BODY_EXCERPT;
                while !body.is_char_boundary(cut) {
                    cut -= 1;
                }
                body.truncate(cut);
            }
            Err(PublishError::Status {
                status: status.as_u16(),
                body,
            })
        }
    }

    async fn publish(&self, update: Update) -> Result<PublishOutcome, PublishError> {
        if update.topics.is_empty() {
            return Err(PublishError::NoTopic);
        }
        let Some(signer) = &self.inner.signer else {
            if !self.inner.warned_unconfigured.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    hub = %self.inner.url,
                    "MERCURE_PUBLISHER_JWT_KEY is not set: updates are not published"
                );
            }
            return Ok(PublishOutcome::Skipped);
        };
        let token = signer
            .token()
            .map_err(|error| PublishError::Jwt(Box::new(error)))?;
        let id = self.send(&token, update.form_body()).await?;
        tracing::debug!(topics = ?update.topics, id, "published");
        *self
            .inner
            .last_event_id
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(id.clone());
        Ok(PublishOutcome::Published { ids: vec![id] })
    }
}

fn classify(error: reqwest::Error) -> PublishError {
    if error.is_timeout() {
        PublishError::Timeout(Box::new(error))
    } else if error.is_connect() {
        PublishError::Connect(Box::new(error))
    } else {
        PublishError::Transport(Box::new(error))
    }
}

impl Publisher for HubPublisher {
    fn publish_update(
        &self,
        update: Update,
    ) -> BoxFuture<'_, Result<PublishOutcome, PublishError>> {
        Box::pin(self.publish(update))
    }

    fn last_event_id(&self) -> Option<String> {
        self.inner
            .last_event_id
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
