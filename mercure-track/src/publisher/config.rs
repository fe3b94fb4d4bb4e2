//! The one configuration type of the hub publisher.

use std::fmt;
use std::time::Duration;

use url::Url;

use super::env::Env;
use super::error::ConfigError;
use crate::protocol::{Matcher, ProtocolVersion, TokenIdentity};

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

/// Everything a [`HubPublisher`](super::HubPublisher) needs. `Debug` shows neither the key
/// nor a password.
#[derive(Clone)]
pub struct HubConfig {
    /// The hub URL (`https://example.com/.well-known/mercure`), without credentials.
    pub url: Url,
    /// The publisher JWT key; `None` disables publishing (a warning is logged once).
    pub key: Option<JwtKey>,
    /// The JWT algorithm.
    pub algorithm: Algorithm,
    /// The protocol generation: its tokens, and nothing else changes for a publisher.
    pub protocol: ProtocolVersion,
    /// Timeout of one HTTP request to the hub (connection included).
    pub timeout: Duration,
    /// Lifetime of the signed JWT; `None` takes the generation's default (0.x: one token
    /// without expiry; 1.0: one hour). With a lifetime the token is signed again before it
    /// expires.
    pub jwt_ttl: Option<Duration>,
    /// The topics the JWT may publish to (default: every topic).
    pub publish: Vec<Matcher>,
    /// Issuer, audience, subject and client of 1.0 tokens. The audience defaults to the hub
    /// URL, the hub's resource identifier when none is configured on the hub.
    pub identity: TokenIdentity,
}

impl fmt::Debug for HubConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HubConfig")
            .field("url", &redacted(&self.url))
            .field("key", &self.key)
            .field("algorithm", &self.algorithm)
            .field("protocol", &self.protocol)
            .field("timeout", &self.timeout)
            .field("jwt_ttl", &self.jwt_ttl)
            .field("publish", &self.publish)
            .field("identity", &self.identity)
            .finish()
    }
}

/// The default request timeout: 5 seconds.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// `url` with its password, if any, replaced by `***`.
pub(crate) fn redacted(url: &Url) -> String {
    if url.password().is_none() {
        return url.to_string();
    }
    let mut shown = url.clone();
    // Setting a password fails only for URLs that cannot have one, and this one has one.
    let _ = shown.set_password(Some("***"));
    shown.to_string()
}

/// A URL string as given, its user information (if any) replaced by `***`: for errors about
/// strings that may not parse.
fn redacted_str(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

/// Checks what a publisher can send requests to: http(s), TLS compiled in for https, no
/// credentials (reqwest would send them as a second `Authorization` header).
pub(crate) fn check_url(url: &Url) -> Result<(), ConfigError> {
    check_hub_url(url, cfg!(feature = "rustls"))
}

/// Checks a hub URL: http, or https when `tls` is available; no credentials.
pub(crate) fn check_hub_url(url: &Url, tls: bool) -> Result<(), ConfigError> {
    match url.scheme() {
        "http" => {}
        "https" if tls => {}
        "https" => {
            return Err(ConfigError::TlsDisabled { url: redacted(url) });
        }
        other => {
            return Err(ConfigError::InvalidUrl {
                url: redacted(url),
                reason: format!("scheme `{other}` is not http or https"),
            });
        }
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ConfigError::CredentialsInUrl { url: redacted(url) });
    }
    Ok(())
}

impl HubConfig {
    /// A configuration for the hub at `url`, with defaults: no key, HS256, protocol 0.x, a 5 s
    /// timeout, a JWT allowed to publish to every topic. A URL with `user:password@` is
    /// refused.
    pub fn new(url: &str) -> Result<Self, ConfigError> {
        let parsed = Url::parse(url).map_err(|e| ConfigError::InvalidUrl {
            url: redacted_str(url),
            reason: e.to_string(),
        })?;
        check_url(&parsed)?;
        Ok(Self {
            url: parsed,
            key: None,
            algorithm: Algorithm::default(),
            protocol: ProtocolVersion::default(),
            timeout: DEFAULT_TIMEOUT,
            jwt_ttl: None,
            publish: vec![Matcher::Any],
            identity: TokenIdentity::default(),
        })
    }

    /// The configuration from the environment:
    ///
    /// | variable | meaning |
    /// |---|---|
    /// | `MERCURE_URL` | the hub URL (required; no `user:password@`) |
    /// | `MERCURE_PUBLISHER_JWT_KEY` | the key (absent or empty: publishing is skipped with a warning) |
    /// | `MERCURE_PUBLISHER_JWT_ALG` | `HS256` (default) or `RS256` |
    /// | `MERCURE_PROTOCOL` | `0` (default; also `0.x`) or `1` (also `1.0`) |
    /// | `MERCURE_TIMEOUT_MS` | request timeout in milliseconds (default 5000) |
    /// | `MERCURE_PUBLISHER_JWT_TTL_SECS` | JWT lifetime in seconds (default: 0.x none, 1.0 3600) |
    /// | `MERCURE_PUBLISHER_JWT_ISSUER` | `iss` of 1.0 tokens (required with a key under 1.0) |
    /// | `MERCURE_PUBLISHER_JWT_AUDIENCE` | `aud` of 1.0 tokens (default: `MERCURE_URL`) |
    ///
    /// An empty variable counts as absent, except `MERCURE_URL`.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`HubConfig::from_env`], reading variables through `lookup` (for tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(lookup);
        let mut config = Self::new(&env.required("MERCURE_URL")?)?;
        config.key = env.var("MERCURE_PUBLISHER_JWT_KEY").map(JwtKey::new);
        if let Some(algorithm) = env.algorithm("MERCURE_PUBLISHER_JWT_ALG")? {
            config.algorithm = algorithm;
        }
        if let Some(protocol) = env.protocol()? {
            config.protocol = protocol;
        }
        if let Some(timeout) = env.millis("MERCURE_TIMEOUT_MS")? {
            config.timeout = timeout;
        }
        config.jwt_ttl = env.secs("MERCURE_PUBLISHER_JWT_TTL_SECS")?;
        config.identity.issuer = env.var("MERCURE_PUBLISHER_JWT_ISSUER");
        config.identity.audience = env.var("MERCURE_PUBLISHER_JWT_AUDIENCE");
        Ok(config)
    }

    /// The same configuration for the hub at `url`, checked as [`HubConfig::new`] checks it.
    pub fn with_url(mut self, url: &str) -> Result<Self, ConfigError> {
        self.url = Self::new(url)?.url;
        Ok(self)
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

    /// Sets the protocol generation.
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

    /// Sets the topics the JWT may publish to, as 0.x selector strings (`*`, exact topics,
    /// URI templates; see [`Matcher::selector`]).
    #[must_use]
    pub fn publish_selectors(
        mut self,
        selectors: impl IntoIterator<Item = impl AsRef<str>>,
    ) -> Self {
        self.publish = selectors
            .into_iter()
            .map(|s| Matcher::selector(s.as_ref()))
            .collect();
        self
    }

    /// Sets the topics the JWT may publish to.
    #[must_use]
    pub fn publish_matchers(mut self, matchers: impl IntoIterator<Item = Matcher>) -> Self {
        self.publish = matchers.into_iter().collect();
        self
    }

    /// Sets the issuer (`iss`) of 1.0 tokens.
    #[must_use]
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.identity.issuer = Some(issuer.into());
        self
    }

    /// Sets the audience (`aud`) of 1.0 tokens, when the hub's resource identifier is not
    /// its URL.
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.identity.audience = Some(audience.into());
        self
    }

    /// The token identity with its defaults filled in: the audience is the hub URL.
    pub(crate) fn resolved_identity(&self) -> TokenIdentity {
        let mut identity = self.identity.clone();
        if identity.audience.is_none() {
            identity.audience = Some(self.url.to_string());
        }
        identity
    }

    /// The token lifetime: the configured one, or the generation's default.
    pub(crate) fn resolved_ttl(&self) -> Option<Duration> {
        self.jwt_ttl
            .or_else(|| self.protocol.generation().default_ttl())
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
    fn credentials_in_the_url_are_refused_and_never_shown() {
        let error = HubConfig::new("http://user:hunter2@127.0.0.1:1/.well-known/mercure")
            .expect_err("credentials are refused");
        assert!(
            matches!(error, ConfigError::CredentialsInUrl { .. }),
            "{error:?}"
        );
        assert!(!error.to_string().contains("hunter2"), "{error}");
        assert!(!format!("{error:?}").contains("hunter2"));
        let user_only = HubConfig::new("http://user@127.0.0.1:1/");
        assert!(matches!(
            user_only,
            Err(ConfigError::CredentialsInUrl { .. })
        ));
        // A URL that does not parse is not echoed with its password either.
        let error = HubConfig::new("http://user:hunter2@[bad/x").expect_err("invalid");
        assert!(!error.to_string().contains("hunter2"), "{error}");
        // Set behind the constructor's back, the password stays out of Debug.
        let mut config = HubConfig::new("http://127.0.0.1:1/").expect("valid");
        let _ = config.url.set_username("user");
        let _ = config.url.set_password(Some("hunter2"));
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("hunter2") && debug.contains("***"),
            "{debug}"
        );
        assert!(matches!(
            check_url(&config.url),
            Err(ConfigError::CredentialsInUrl { .. })
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
            "MERCURE_PUBLISHER_JWT_TTL_SECS" => Some("600".to_owned()),
            "MERCURE_PUBLISHER_JWT_ISSUER" => Some("https://app.example".to_owned()),
            "MERCURE_PUBLISHER_JWT_AUDIENCE" => Some(String::new()),
            _ => None,
        };
        let config = HubConfig::from_lookup(env).expect("valid");
        assert_eq!(config.jwt_ttl, Some(Duration::from_secs(600)));
        assert_eq!(
            config.identity.issuer.as_deref(),
            Some("https://app.example")
        );
        // Empty is absent: the audience defaults to the hub URL.
        assert_eq!(
            config.resolved_identity().audience.as_deref(),
            Some("http://localhost:3000/.well-known/mercure")
        );
        assert_eq!(config.algorithm, Algorithm::Rs256);
        assert_eq!(config.protocol, ProtocolVersion::V1);
        assert_eq!(config.timeout, Duration::from_millis(250));
        assert!(config.key.is_some());
        assert!(matches!(
            HubConfig::from_lookup(|_| None),
            Err(ConfigError::MissingEnv {
                variable: "MERCURE_URL"
            })
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
