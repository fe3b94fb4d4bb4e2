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

    async fn send(&self, authorization: HeaderValue, body: String) -> Result<String, PublishError> {
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
        } else {
            Err(refused(status, text))
        }
    }

    async fn publish(&self, update: Update) -> Result<PublishOutcome, PublishError> {
        if update.topics.is_empty() {
            return Err(PublishError::NoTopic);
        }
        let Some(signer) = &self.inner.signer else {
            self.skip_unconfigured();
            return Ok(PublishOutcome::Skipped);
        };
        let authorization = signer
            .authorization()
            .map_err(|error| PublishError::Jwt(Box::new(error)))?;
        let id = self.send(authorization, update.form_body()).await?;
        log_published(&update.topics, &id);
        *self
            .inner
            .last_event_id
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Some(id.clone());
        Ok(PublishOutcome::Published { ids: vec![id] })
    }

    /// Warns, once per publisher, that it publishes nothing for want of a key.
    #[cold]
    #[inline(never)]
    fn skip_unconfigured(&self) {
        if !self.inner.warned_unconfigured.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                hub = %self.inner.url,
                "MERCURE_PUBLISHER_JWT_KEY is not set: updates are not published"
            );
        }
    }
}

/// Logs an accepted publish. Out of line, as the error paths below: the publish's own code
/// stays compact.
#[inline(never)]
fn log_published(topics: &[String], id: &str) {
    tracing::debug!(?topics, id, "published");
}

/// The error of a hub's answer that is not a success: refused authorization, or another
/// status with an excerpt of its body.
#[cold]
#[inline(never)]
fn refused(status: reqwest::StatusCode, text: String) -> PublishError {
    if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
        return PublishError::Unauthorized {
            status: status.as_u16(),
        };
    }
    let mut body = text;
    if body.len() > BODY_EXCERPT {
        let mut cut = BODY_EXCERPT;
        while !body.is_char_boundary(cut) {
            cut -= 1;
        }
        body.truncate(cut);
    }
    PublishError::Status {
        status: status.as_u16(),
        body,
    }
}

#[cold]
#[inline(never)]
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::protocol::inspect::parts;
    use crate::publisher::JwtKey;

    /// A one-request HTTP server: returns what it received, answers `200 urn:uuid:answered`.
    async fn one_request() -> (String, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!(
            "http://{}/.well-known/mercure",
            listener.local_addr().expect("addr")
        );
        let handle = tokio::spawn(async move {
            let Ok(Ok((mut socket, _))) =
                tokio::time::timeout(Duration::from_secs(10), listener.accept()).await
            else {
                return String::new();
            };
            let mut received = Vec::new();
            let mut buffer = [0_u8; 4096];
            // Read the head, then the body up to its Content-Length.
            loop {
                let Ok(Ok(n)) =
                    tokio::time::timeout(Duration::from_secs(10), socket.read(&mut buffer)).await
                else {
                    break;
                };
                if n == 0 {
                    break;
                }
                received.extend_from_slice(&buffer[..n]);
                let text = String::from_utf8_lossy(&received).to_string();
                if let Some((head, body)) = text.split_once("\r\n\r\n") {
                    let length = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    if body.len() >= length {
                        break;
                    }
                }
            }
            let body = "urn:uuid:answered";
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = socket.write_all(answer.as_bytes()).await;
            String::from_utf8_lossy(&received).to_string()
        });
        (url, handle)
    }

    #[tokio::test]
    async fn a_1_0_publish_is_one_request_with_one_access_token_and_the_canonical_topic_first() {
        let (url, server) = one_request().await;
        let publisher = HubPublisher::new(
            HubConfig::new(&url)
                .expect("url")
                .key(JwtKey::new("k"))
                .protocol(ProtocolVersion::V1)
                .issuer("https://app.example"),
        )
        .expect("publisher");
        assert_eq!(publisher.last_event_id(), None);
        let outcome = publisher
            .publish_update(Update::new(["orders/a", "users/1/orders/a"], "{}").private(true))
            .await
            .expect("published");
        assert_eq!(outcome.ids(), ["urn:uuid:answered"]);
        assert_eq!(
            publisher.last_event_id().as_deref(),
            Some("urn:uuid:answered")
        );
        let request = server.await.expect("server");
        let (head, body) = request.split_once("\r\n\r\n").expect("request");
        assert_eq!(
            body,
            "topic=orders%2Fa&topic=users%2F1%2Forders%2Fa&data=%7B%7D&private=on"
        );
        let authorizations: Vec<&str> = head
            .lines()
            .filter(|l| l.to_ascii_lowercase().starts_with("authorization:"))
            .collect();
        assert_eq!(authorizations.len(), 1, "{head}");
        let token = authorizations[0]
            .split_once("Bearer ")
            .map(|(_, t)| t.trim())
            .unwrap_or_default();
        let (header, claims) = parts(token);
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(claims["aud"], url);
        assert_eq!(claims["iss"], "https://app.example");
        assert!(claims["exp"].as_i64() > claims["iat"].as_i64());
    }

    #[test]
    fn a_url_with_credentials_set_behind_the_constructor_is_refused_and_never_shown() {
        let mut config = HubConfig::new("http://127.0.0.1:1/.well-known/mercure")
            .expect("url")
            .key(JwtKey::new("secret-key"));
        let _ = config.url.set_username("user");
        let _ = config.url.set_password(Some("hunter2"));
        let error = HubPublisher::new(config).expect_err("refused");
        assert!(
            matches!(error, ConfigError::CredentialsInUrl { .. }),
            "{error:?}"
        );
        assert!(!format!("{error} {error:?}").contains("hunter2"));
        let publisher = HubPublisher::new(
            HubConfig::new("http://127.0.0.1:1/.well-known/mercure")
                .expect("url")
                .key(JwtKey::new("secret-key")),
        )
        .expect("publisher");
        let debug = format!("{publisher:?}");
        assert!(!debug.contains("secret-key"), "{debug}");
    }

    #[test]
    fn a_huge_jwt_lifetime_is_a_configuration_error() {
        let config = HubConfig::new("http://127.0.0.1:1/")
            .expect("url")
            .key(JwtKey::new("k"))
            .jwt_ttl(Duration::MAX);
        assert!(matches!(
            HubPublisher::new(config),
            Err(ConfigError::Token(_))
        ));
    }
}
