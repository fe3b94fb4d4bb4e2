//! The one configuration type of the hub publisher.

use std::fmt;
use std::time::Duration;

use url::Url;

use super::error::ConfigError;
use crate::wire::ProtocolVersion;

/// The JWT signing algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// HMAC with SHA-256 and a shared secret (the reference hub's default).
    #[default]
    Hs256,
    /// RSA with SHA-256; the key is a PEM private key.
    Rs256,
}

/// A JWT signing key. Its bytes never appear in `Debug` output or logs.
#[derive(Clone)]
pub struct JwtKey(Vec<u8>);

impl JwtKey {
    /// A key from its bytes: the shared secret for HS256, the PEM private key for RS256.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Self(bytes.into())
    }

    pub(crate) fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for JwtKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JwtKey(<redacted>)")
    }
}

/// Everything a [`HubPublisher`](super::HubPublisher) needs.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// The hub URL (`https://example.com/.well-known/mercure`).
    pub url: Url,
    /// The publisher JWT key; `None` disables publishing (a warning is logged once).
    pub key: Option<JwtKey>,
    /// The JWT algorithm.
    pub algorithm: Algorithm,
    /// How updates with several topics are sent.
    pub protocol: ProtocolVersion,
    /// Timeout of one HTTP request to the hub (connection included).
    pub timeout: Duration,
    /// Lifetime of the signed JWT; `None` signs one token without expiry, once. With a
    /// lifetime the token is signed again before it expires.
    pub jwt_ttl: Option<Duration>,
    /// The `mercure.publish` selectors of the JWT (default `["*"]`).
    pub publish_selectors: Vec<String>,
}

/// The default request timeout: 5 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

impl HubConfig {
    /// A configuration for the hub at `url`, with defaults: no key, HS256, protocol 0.x, a 5 s
    /// timeout, a JWT without expiry allowed to publish to every topic.
    pub fn new(url: &str) -> Result<Self, ConfigError> {
        let parsed = Url::parse(url).map_err(|e| ConfigError::InvalidUrl {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        match parsed.scheme() {
            "http" => {}
            "https" if cfg!(feature = "rustls") => {}
            "https" => {
                return Err(ConfigError::TlsDisabled {
                    url: url.to_owned(),
                });
            }
            other => {
                return Err(ConfigError::InvalidUrl {
                    url: url.to_owned(),
                    reason: format!("scheme `{other}` is not http or https"),
                });
            }
        }
        Ok(Self {
            url: parsed,
            key: None,
            algorithm: Algorithm::default(),
            protocol: ProtocolVersion::default(),
            timeout: DEFAULT_TIMEOUT,
            jwt_ttl: None,
            publish_selectors: vec!["*".to_owned()],
        })
    }

    /// The configuration from the environment:
    ///
    /// | variable | meaning |
    /// |---|---|
    /// | `MERCURE_URL` | the hub URL (required) |
    /// | `MERCURE_PUBLISHER_JWT_KEY` | the key (absent: publishing is skipped with a warning) |
    /// | `MERCURE_PUBLISHER_JWT_ALG` | `HS256` (default) or `RS256` |
    /// | `MERCURE_PROTOCOL` | `0` (default: topics repeated in one update) or `1` (one topic per update) |
    /// | `MERCURE_TIMEOUT_MS` | request timeout in milliseconds (default 5000) |
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`HubConfig::from_env`], reading variables through `lookup` (for tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let url = lookup("MERCURE_URL").ok_or(ConfigError::MissingUrl)?;
        let mut config = Self::new(&url)?;
        config.key = lookup("MERCURE_PUBLISHER_JWT_KEY")
            .filter(|key| !key.is_empty())
            .map(JwtKey::new);
        if let Some(alg) = lookup("MERCURE_PUBLISHER_JWT_ALG") {
            config.algorithm = match alg.to_ascii_uppercase().as_str() {
                "HS256" => Algorithm::Hs256,
                "RS256" => Algorithm::Rs256,
                _ => {
                    return Err(ConfigError::InvalidEnv {
                        variable: "MERCURE_PUBLISHER_JWT_ALG",
                        expected: "HS256 or RS256",
                    });
                }
            };
        }
        if let Some(protocol) = lookup("MERCURE_PROTOCOL") {
            config.protocol = match protocol.as_str() {
                "0" => ProtocolVersion::V0,
                "1" => ProtocolVersion::V1Draft,
                _ => {
                    return Err(ConfigError::InvalidEnv {
                        variable: "MERCURE_PROTOCOL",
                        expected: "0 or 1",
                    });
                }
            };
        }
        if let Some(timeout) = lookup("MERCURE_TIMEOUT_MS") {
            let millis = timeout
                .parse::<u64>()
                .map_err(|_| ConfigError::InvalidEnv {
                    variable: "MERCURE_TIMEOUT_MS",
                    expected: "a whole number of milliseconds",
                })?;
            config.timeout = Duration::from_millis(millis);
        }
        Ok(config)
    }

    /// Sets the key.
    #[must_use]
    pub fn key(mut self, key: JwtKey) -> Self {
        self.key = Some(key);
        self
    }

    /// Sets the algorithm.
    #[must_use]
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Sets the protocol rule for several topics.
    #[must_use]
    pub fn protocol(mut self, protocol: ProtocolVersion) -> Self {
        self.protocol = protocol;
        self
    }

    /// Sets the request timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the JWT lifetime; the token is signed again before it expires.
    #[must_use]
    pub fn jwt_ttl(mut self, ttl: Duration) -> Self {
        self.jwt_ttl = Some(ttl);
        self
    }

    /// Sets the `mercure.publish` selectors of the JWT.
    #[must_use]
    pub fn publish_selectors(
        mut self,
        selectors: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.publish_selectors = selectors.into_iter().map(Into::into).collect();
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_is_redacted_in_debug() {
        let config = HubConfig::new("http://127.0.0.1:1/.well-known/mercure")
            .map(|c| c.key(JwtKey::new("super-secret-key")));
        let debug = format!("{config:?}");
        assert!(!debug.contains("super-secret"), "{debug}");
        assert!(debug.contains("redacted"));
    }

    #[test]
    fn invalid_urls_are_errors() {
        assert!(matches!(
            HubConfig::new("not a url"),
            Err(ConfigError::InvalidUrl { .. })
        ));
        assert!(matches!(
            HubConfig::new("ftp://hub/"),
            Err(ConfigError::InvalidUrl { .. })
        ));
    }

    #[test]
    fn environment_is_read() {
        let env = |name: &str| match name {
            "MERCURE_URL" => Some("http://localhost:3000/.well-known/mercure".to_owned()),
            "MERCURE_PUBLISHER_JWT_KEY" => Some("k".to_owned()),
            "MERCURE_PUBLISHER_JWT_ALG" => Some("rs256".to_owned()),
            "MERCURE_PROTOCOL" => Some("1".to_owned()),
            "MERCURE_TIMEOUT_MS" => Some("250".to_owned()),
            _ => None,
        };
        let config = HubConfig::from_lookup(env).expect("valid");
        assert_eq!(config.algorithm, Algorithm::Rs256);
        assert_eq!(config.protocol, ProtocolVersion::V1Draft);
        assert_eq!(config.timeout, Duration::from_millis(250));
        assert!(config.key.is_some());
        assert!(matches!(
            HubConfig::from_lookup(|_| None),
            Err(ConfigError::MissingUrl)
        ));
        let bad = |name: &str| match name {
            "MERCURE_URL" => Some("http://h/".to_owned()),
            "MERCURE_TIMEOUT_MS" => Some("soon".to_owned()),
            _ => None,
        };
        assert!(matches!(
            HubConfig::from_lookup(bad),
            Err(ConfigError::InvalidEnv { .. })
        ));
    }
}
