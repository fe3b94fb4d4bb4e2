//! Publishing to a Mercure hub over HTTP.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};

use super::config::HubConfig;
use super::error::{ConfigError, PublishError};
use super::jwt::JwtSigner;
use super::{BoxFuture, PublishOutcome, Publisher};
use crate::wire::{ProtocolVersion, Update};

/// Publishes updates to a Mercure hub.
///
/// One pooled HTTP client (keep-alive) and one signed JWT serve every publish: cloning the
/// publisher shares both.
#[derive(Clone, Debug)]
pub struct HubPublisher {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: reqwest::Client,
    url: url::Url,
    protocol: ProtocolVersion,
    signer: Option<JwtSigner>,
    warned_unconfigured: AtomicBool,
}

/// How much of an error answer's body is kept in [`PublishError::Status`].
const BODY_EXCERPT: usize = 512;

impl HubPublisher {
    /// A publisher for `config`. An invalid key is an error here, not at the first publish.
    pub fn new(config: HubConfig) -> Result<Self, ConfigError> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .pool_max_idle_per_host(64)
            .build()
            .map_err(ConfigError::Client)?;
        let signer = config
            .key
            .as_ref()
            .map(|key| {
                JwtSigner::publisher(
                    key,
                    config.algorithm,
                    config.publish_selectors.clone(),
                    config.jwt_ttl,
                )
            })
            .transpose()?;
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                url: config.url,
                protocol: config.protocol,
                signer,
                warned_unconfigured: AtomicBool::new(false),
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

    async fn send(&self, token: &str, body: String) -> Result<String, PublishError> {
        // A JWT is base64url and dots: always a valid header value; a token that is not one
        // is not a JWT.
        let authorization = HeaderValue::try_from(format!("Bearer {token}"))
            .map_err(|_| PublishError::Jwt(jsonwebtoken::errors::ErrorKind::InvalidToken.into()))?;
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
        let token = signer.token().map_err(PublishError::Jwt)?;
        let ids = match self.inner.protocol {
            ProtocolVersion::V0 => vec![self.send(&token, update.form_body()).await?],
            ProtocolVersion::V1Draft => {
                let mut ids = Vec::with_capacity(update.topics.len());
                for topic in &update.topics {
                    let body = update.form_body_for(std::slice::from_ref(topic));
                    ids.push(self.send(&token, body).await?);
                }
                ids
            }
        };
        tracing::debug!(topics = ?update.topics, ids = ?ids, "published");
        Ok(PublishOutcome::Published { ids })
    }
}

fn classify(error: reqwest::Error) -> PublishError {
    if error.is_timeout() {
        PublishError::Timeout(error)
    } else if error.is_connect() {
        PublishError::Connect(error)
    } else {
        PublishError::Transport(error)
    }
}

impl Publisher for HubPublisher {
    fn publish_update(
        &self,
        update: Update,
    ) -> BoxFuture<'_, Result<PublishOutcome, PublishError>> {
        Box::pin(self.publish(update))
    }
}
