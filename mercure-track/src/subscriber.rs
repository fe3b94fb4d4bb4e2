//! What a web backend tells browsers about the hub: subscriber tokens, the cookie that carries
//! them, the discovery `Link` header with the `last-event-id` a page was rendered at, and the
//! subscribe URL — in either protocol generation.
//!
//! ```
//! use mercure_track::protocol::Matcher;
//! use mercure_track::publisher::JwtKey;
//! use mercure_track::subscriber::{Discovery, DiscoveryConfig};
//!
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let discovery = Discovery::new(DiscoveryConfig::new(
//!     "https://hub.example.com/.well-known/mercure",
//!     JwtKey::new("subscriber secret"),
//! ))?;
//! // In the handler of the page of order abc:
//! // 1. the id of the latest update, read BEFORE the state the page shows;
//! let last_event_id = Some("urn:uuid:5e94c686-2c0b-4f9b-958c-92ccc3bbb4eb"); // publisher.last_event_id()
//! // 2. the page's own topics only;
//! let topics = [Matcher::exact("orders/abc")];
//! let set_cookie = discovery.cookie(&topics)?;
//! let link = discovery.link_header(last_event_id);
//! assert!(set_cookie.starts_with("mercureAuthorization="));
//! assert!(set_cookie.contains("; Secure; HttpOnly; SameSite=Strict"));
//! assert_eq!(
//!     link,
//!     r#"<https://hub.example.com/.well-known/mercure>; rel="mercure"; last-event-id="urn:uuid:5e94c686-2c0b-4f9b-958c-92ccc3bbb4eb""#
//! );
//! // 3. the browser subscribes, resuming after that id: a change committed between the
//! //    page's render and its subscription is replayed, not lost.
//! let url = discovery.subscribe_url(&topics, last_event_id)?;
//! assert_eq!(
//!     url,
//!     "https://hub.example.com/.well-known/mercure?topic=orders%2Fabc&lastEventID=urn%3Auuid%3A5e94c686-2c0b-4f9b-958c-92ccc3bbb4eb"
//! );
//! # Ok(()) }
//! # run().unwrap();
//! ```

use std::fmt;
use std::time::Duration;

use crate::protocol::{Generation, Grants, Matcher, ProtocolError, ProtocolVersion, TokenIdentity};
use crate::publisher::{Algorithm, ConfigError, Env, JwtKey, TokenError, TokenMinter};

/// The `SameSite` attribute of the cookie. `None` is not offered: a hub on another site cannot
/// use cookies (browsers block third-party cookies); use an `Authorization` header there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SameSite {
    /// Sent only on same-site requests (the hub on the same registrable domain).
    #[default]
    Strict,
    /// Also sent on top-level navigations from other sites.
    Lax,
}

/// The lifetime of subscriber tokens and their cookie when none is configured: one hour.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// Everything a [`Discovery`] needs.
#[derive(Clone)]
pub struct DiscoveryConfig {
    /// The hub URL browsers use: absolute (`https://hub.example.com/.well-known/mercure`) or a
    /// path on the application's own origin (`/.well-known/mercure`).
    pub hub_url: String,
    /// The key subscriber tokens are signed with.
    pub key: JwtKey,
    /// Its algorithm.
    pub algorithm: Algorithm,
    /// The protocol generation.
    pub protocol: ProtocolVersion,
    /// Token and cookie lifetime.
    pub ttl: Duration,
    /// Issuer, audience (default: an absolute hub URL), subject, client of 1.0 tokens.
    pub identity: TokenIdentity,
    /// Whether the hub is reached over HTTPS: the cookie is then `Secure` (and, under 1.0,
    /// `__Secure-` prefixed). Default: whether `hub_url` starts with `https://`.
    pub secure: Option<bool>,
    /// The cookie name, when the hub reads another one than the generation's.
    pub cookie_name: Option<String>,
    /// The cookie's `Domain` (when the hub is on another subdomain of the same site).
    pub cookie_domain: Option<String>,
    /// The cookie's `SameSite`.
    pub same_site: SameSite,
}

impl fmt::Debug for DiscoveryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DiscoveryConfig")
            .field("hub_url", &shown_url(&self.hub_url))
            .field("key", &self.key)
            .field("algorithm", &self.algorithm)
            .field("protocol", &self.protocol)
            .field("ttl", &self.ttl)
            .field("identity", &self.identity)
            .field("secure", &self.secure)
            .field("cookie_name", &self.cookie_name)
            .field("cookie_domain", &self.cookie_domain)
            .field("same_site", &self.same_site)
            .finish()
    }
}

/// A hub URL for `Debug`: without its password, if it has one.
fn shown_url(url: &str) -> String {
    url::Url::parse(url).map_or_else(|_| url.to_owned(), |u| crate::publisher::redacted(&u))
}

impl DiscoveryConfig {
    /// A configuration with defaults: HS256, protocol 0.x, one-hour tokens, `SameSite=Strict`.
    pub fn new(hub_url: impl Into<String>, key: JwtKey) -> Self {
        Self {
            hub_url: hub_url.into(),
            key,
            algorithm: Algorithm::default(),
            protocol: ProtocolVersion::default(),
            ttl: DEFAULT_TTL,
            identity: TokenIdentity::default(),
            secure: None,
            cookie_name: None,
            cookie_domain: None,
            same_site: SameSite::default(),
        }
    }

    /// The configuration from the environment:
    ///
    /// | variable | meaning |
    /// |---|---|
    /// | `MERCURE_PUBLIC_URL` | the hub URL browsers use (default: `MERCURE_URL`, one of them required) |
    /// | `MERCURE_SUBSCRIBER_JWT_KEY` | the key subscriber tokens are signed with (required) |
    /// | `MERCURE_SUBSCRIBER_JWT_ALG` | `HS256` (default) or `RS256` |
    /// | `MERCURE_PROTOCOL` | `0` (default; also `0.x`) or `1` (also `1.0`) |
    /// | `MERCURE_SUBSCRIBER_JWT_TTL_SECS` | token and cookie lifetime in seconds (default 3600) |
    /// | `MERCURE_SUBSCRIBER_JWT_ISSUER` | `iss` of 1.0 tokens (default: `MERCURE_PUBLISHER_JWT_ISSUER`) |
    /// | `MERCURE_SUBSCRIBER_JWT_AUDIENCE` | `aud` of 1.0 tokens (default: the hub URL, when absolute) |
    /// | `MERCURE_COOKIE_NAME` | the cookie the hub reads (default: the generation's) |
    /// | `MERCURE_COOKIE_DOMAIN` | the cookie's `Domain` |
    ///
    /// An empty variable counts as absent.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// As [`DiscoveryConfig::from_env`], reading variables through `lookup`.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(lookup);
        let hub_url = match env.var("MERCURE_PUBLIC_URL") {
            Some(url) => url.trim().to_owned(),
            None => env.required("MERCURE_URL")?,
        };
        let key = JwtKey::new(env.required("MERCURE_SUBSCRIBER_JWT_KEY")?);
        let mut config = Self::new(hub_url, key);
        if let Some(algorithm) = env.algorithm("MERCURE_SUBSCRIBER_JWT_ALG")? {
            config.algorithm = algorithm;
        }
        if let Some(protocol) = env.protocol()? {
            config.protocol = protocol;
        }
        if let Some(ttl) = env.secs("MERCURE_SUBSCRIBER_JWT_TTL_SECS")? {
            config.ttl = ttl;
        }
        config.identity.issuer = env
            .var("MERCURE_SUBSCRIBER_JWT_ISSUER")
            .or_else(|| env.var("MERCURE_PUBLISHER_JWT_ISSUER"));
        config.identity.audience = env.var("MERCURE_SUBSCRIBER_JWT_AUDIENCE");
        config.cookie_name = env.var("MERCURE_COOKIE_NAME");
        config.cookie_domain = env.var("MERCURE_COOKIE_DOMAIN");
        Ok(config)
    }

    /// Sets the protocol generation.
    #[must_use]
    pub fn protocol(mut self, protocol: ProtocolVersion) -> Self {
        self.protocol = protocol;
        self
    }

    /// Sets the algorithm.
    #[must_use]
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Sets the token and cookie lifetime.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets the issuer (`iss`) of 1.0 tokens.
    #[must_use]
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.identity.issuer = Some(issuer.into());
        self
    }

    /// Sets the audience (`aud`) of 1.0 tokens: the hub's resource identifier.
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.identity.audience = Some(audience.into());
        self
    }

    /// Says whether the hub is reached over HTTPS (for a hub URL given as a path).
    #[must_use]
    pub fn secure(mut self, secure: bool) -> Self {
        self.secure = Some(secure);
        self
    }

    /// Sets the cookie name the hub reads.
    #[must_use]
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie_name = Some(name.into());
        self
    }

    /// Sets the cookie's `Domain`.
    #[must_use]
    pub fn cookie_domain(mut self, domain: impl Into<String>) -> Self {
        self.cookie_domain = Some(domain.into());
        self
    }

    /// Sets the cookie's `SameSite`.
    #[must_use]
    pub fn same_site(mut self, same_site: SameSite) -> Self {
        self.same_site = same_site;
        self
    }
}

/// Tokens, cookie, discovery header and subscribe URL for the browsers of one hub.
pub struct Discovery {
    hub_url: String,
    generation: &'static dyn Generation,
    minter: TokenMinter,
    secure: bool,
    cookie_name: String,
    cookie_path: String,
    cookie_domain: Option<String>,
    same_site: SameSite,
    ttl: Duration,
}

impl fmt::Debug for Discovery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Discovery")
            .field("hub_url", &shown_url(&self.hub_url))
            .field("minter", &self.minter)
            .field("cookie_name", &self.cookie_name)
            .finish_non_exhaustive()
    }
}

/// Characters a cookie attribute value or a `Link` target cannot hold.
fn is_header_safe(value: &str) -> bool {
    value
        .chars()
        .all(|c| ('!'..='~').contains(&c) && !matches!(c, ';' | '<' | '>' | '"'))
}

impl Discovery {
    /// Checks the configuration and signs one token, so that a bad key, a hub URL with
    /// credentials, or a 1.0 configuration without issuer or audience fails here.
    pub fn new(config: DiscoveryConfig) -> Result<Self, ConfigError> {
        let absolute = url::Url::parse(&config.hub_url).ok();
        let invalid = |reason: &str| ConfigError::InvalidUrl {
            url: shown_url(&config.hub_url),
            reason: reason.to_owned(),
        };
        let path = match &absolute {
            Some(url) => {
                // Browsers, not this process, connect to it: TLS here is not needed.
                crate::publisher::check_hub_url(url, true)?;
                url.path().to_owned()
            }
            None if config.hub_url.starts_with('/') && !config.hub_url.starts_with("//") => config
                .hub_url
                .split(['?', '#'])
                .next()
                .unwrap_or_default()
                .to_owned(),
            None => return Err(invalid("neither an absolute URL nor a path")),
        };
        if !is_header_safe(&config.hub_url) {
            return Err(invalid("characters a header cannot carry"));
        }
        let secure = config
            .secure
            .unwrap_or_else(|| absolute.as_ref().is_some_and(|u| u.scheme() == "https"));
        let generation = config.protocol.generation();
        let cookie_name = config
            .cookie_name
            .clone()
            .unwrap_or_else(|| generation.cookie_name(secure).to_owned());
        let is_token = |name: &str| {
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        };
        if !is_token(&cookie_name) {
            return Err(ConfigError::InvalidCookie(
                "the cookie name must be an RFC 6265 token",
            ));
        }
        if cookie_name.starts_with("__Secure-") && !secure {
            return Err(ConfigError::InvalidCookie(
                "browsers refuse a __Secure- cookie for a hub reached over plain HTTP",
            ));
        }
        if config
            .cookie_domain
            .as_deref()
            .is_some_and(|d| !is_header_safe(d))
        {
            return Err(ConfigError::InvalidCookie(
                "the cookie domain holds characters a header cannot carry",
            ));
        }
        let mut identity = config.identity.clone();
        if identity.audience.is_none() {
            identity.audience = absolute.as_ref().map(ToString::to_string);
        }
        let minter = TokenMinter::new(
            &config.key,
            config.algorithm,
            config.protocol,
            identity,
            Some(config.ttl),
        )?;
        // Sign once: configuration errors surface now, not on the first page.
        minter.mint(&Grants::subscribe([Matcher::exact("check")]))?;
        Ok(Self {
            hub_url: config.hub_url,
            generation,
            minter,
            secure,
            cookie_name,
            cookie_path: path,
            cookie_domain: config.cookie_domain,
            same_site: config.same_site,
            ttl: config.ttl,
        })
    }

    /// The hub URL browsers use.
    pub fn hub_url(&self) -> &str {
        &self.hub_url
    }

    /// The protocol generation.
    pub fn protocol(&self) -> ProtocolVersion {
        self.generation.version()
    }

    /// The name of the subscriber cookie.
    pub fn cookie_name(&self) -> &str {
        &self.cookie_name
    }

    /// The query parameter a page passes the `last-event-id` of the `Link` header in.
    pub fn last_event_id_param(&self) -> &'static str {
        self.generation.last_event_id_param()
    }

    /// A subscriber token that may receive the private updates of `matchers`. Give a page only
    /// its own topics.
    pub fn token(&self, matchers: &[Matcher]) -> Result<String, TokenError> {
        self.minter
            .mint(&Grants::subscribe(matchers.iter().cloned()))
    }

    /// The `Set-Cookie` value carrying a token for `matchers`: `HttpOnly`, `SameSite`, `Path`
    /// of the hub, `Max-Age` of the token, `Secure` when the hub is HTTPS, `Domain` if set.
    pub fn cookie(&self, matchers: &[Matcher]) -> Result<String, TokenError> {
        let token = self.token(matchers)?;
        let mut cookie = format!(
            "{}={token}; Path={}; Max-Age={}",
            self.cookie_name,
            self.cookie_path,
            self.ttl.as_secs()
        );
        if let Some(domain) = &self.cookie_domain {
            cookie.push_str("; Domain=");
            cookie.push_str(domain);
        }
        if self.secure {
            cookie.push_str("; Secure");
        }
        cookie.push_str("; HttpOnly; SameSite=");
        cookie.push_str(match self.same_site {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
        });
        Ok(cookie)
    }

    /// The discovery `Link` header: `<hub>; rel="mercure"`, with
    /// `last-event-id="<id>"` — the id of the latest update published *before* the state the
    /// response carries was read (see [`crate::Publisher::last_event_id`]). With no id known
    /// (nothing published yet by this process), `last-event-id="earliest"`: the hub then
    /// replays what it holds for the subscribed topics, which costs a refetch per replayed
    /// update but loses nothing.
    pub fn link_header(&self, last_event_id: Option<&str>) -> String {
        let id = last_event_id.unwrap_or(EARLIEST);
        let mut quoted = String::with_capacity(id.len());
        for c in id.chars() {
            if matches!(c, '"' | '\\') {
                quoted.push('\\');
            }
            quoted.push(c);
        }
        format!(
            r#"<{}>; rel="mercure"; last-event-id="{quoted}""#,
            self.hub_url
        )
    }

    /// The URL a subscriber opens: the hub URL with the generation's matcher parameters and,
    /// when given, the id to resume after. A hub URL given as a path stays a path.
    pub fn subscribe_url(
        &self,
        matchers: &[Matcher],
        last_event_id: Option<&str>,
    ) -> Result<String, ProtocolError> {
        let params = self.generation.subscribe_params(matchers)?;
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for (name, value) in &params {
            query.append_pair(name, value);
        }
        if let Some(id) = last_event_id {
            query.append_pair(self.generation.last_event_id_param(), id);
        }
        let separator = if self.hub_url.contains('?') { '&' } else { '?' };
        Ok(format!("{}{separator}{}", self.hub_url, query.finish()))
    }
}

/// The `last-event-id` that asks the hub for everything it holds.
pub const EARLIEST: &str = "earliest";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::inspect::parts;

    fn discovery(config: DiscoveryConfig) -> Discovery {
        Discovery::new(config).expect("discovery")
    }

    #[test]
    fn the_0_x_cookie_carries_a_token_for_the_page_topics_only() {
        let d = discovery(DiscoveryConfig::new(
            "/.well-known/mercure",
            JwtKey::new("k"),
        ));
        let cookie = d.cookie(&[Matcher::exact("orders/a")]).expect("cookie");
        let (name, rest) = cookie.split_once('=').expect("name");
        assert_eq!(name, "mercureAuthorization");
        let (token, attributes) = rest.split_once(';').expect("attributes");
        assert_eq!(
            attributes,
            " Path=/.well-known/mercure; Max-Age=3600; HttpOnly; SameSite=Strict"
        );
        let claims = parts(token).1;
        assert_eq!(
            claims["mercure"],
            serde_json::json!({"subscribe": ["orders/a"]})
        );
        assert!(claims["exp"].as_i64().is_some());
    }

    #[test]
    fn an_https_hub_gets_a_secure_cookie_and_1_0_its_prefixed_name_and_access_token() {
        let d = discovery(
            DiscoveryConfig::new("https://hub.example/.well-known/mercure", JwtKey::new("k"))
                .protocol(ProtocolVersion::V1)
                .issuer("https://app.example")
                .cookie_domain("example")
                .same_site(SameSite::Lax)
                .ttl(Duration::from_secs(600)),
        );
        let cookie = d
            .cookie(&[Matcher::UrlPattern("https://app.example/orders/:id".into())])
            .expect("cookie");
        let (name, rest) = cookie.split_once('=').expect("name");
        assert_eq!(name, "__Secure-mercure_access_token");
        let (token, attributes) = rest.split_once(';').expect("attributes");
        assert_eq!(
            attributes,
            " Path=/.well-known/mercure; Max-Age=600; Domain=example; Secure; HttpOnly; SameSite=Lax"
        );
        let (header, claims) = parts(token);
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(claims["aud"], "https://hub.example/.well-known/mercure");
        assert_eq!(claims["iss"], "https://app.example");
        assert_eq!(
            claims["authorization_details"][0]["topics"],
            serde_json::json!([{"match": "https://app.example/orders/:id", "match_type": "urlpattern"}])
        );
        assert_eq!(
            claims["authorization_details"][0]["actions"],
            serde_json::json!(["subscribe"])
        );
        // Over plain HTTP, the prefix-less name and no Secure.
        let plain = discovery(
            DiscoveryConfig::new("http://hub.example/.well-known/mercure", JwtKey::new("k"))
                .protocol(ProtocolVersion::V1)
                .issuer("https://app.example"),
        );
        let cookie = plain.cookie(&[Matcher::exact("orders/a")]).expect("cookie");
        assert!(cookie.starts_with("mercure_access_token="));
        assert!(!cookie.contains("Secure"));
    }

    #[test]
    fn misconfigurations_fail_at_construction() {
        // 1.0 with a hub path: no audience can be derived.
        let relative = DiscoveryConfig::new("/.well-known/mercure", JwtKey::new("k"))
            .protocol(ProtocolVersion::V1)
            .issuer("https://app.example");
        assert!(matches!(
            Discovery::new(relative),
            Err(ConfigError::Token(ProtocolError::MissingAudience))
        ));
        let credentials = DiscoveryConfig::new(
            "https://u:hunter2@hub.example/.well-known/mercure",
            JwtKey::new("k"),
        );
        let error = Discovery::new(credentials.clone()).expect_err("credentials");
        assert!(!error.to_string().contains("hunter2"));
        assert!(!format!("{credentials:?}").contains("hunter2"));
        let cookie =
            |c: DiscoveryConfig| matches!(Discovery::new(c), Err(ConfigError::InvalidCookie(_)));
        let base = DiscoveryConfig::new("/.well-known/mercure", JwtKey::new("k"));
        assert!(cookie(base.clone().cookie_name("a;b")));
        assert!(cookie(base.clone().cookie_name("__Secure-x")));
        assert!(cookie(base.clone().cookie_domain("x; Path=/")));
        assert!(Discovery::new(base.secure(true).cookie_name("__Secure-x")).is_ok());
        for bad in ["hub.example/x", "/a b", "/a>b"] {
            assert!(
                Discovery::new(DiscoveryConfig::new(bad, JwtKey::new("k"))).is_err(),
                "{bad}"
            );
        }
        let huge =
            DiscoveryConfig::new("/.well-known/mercure", JwtKey::new("k")).ttl(Duration::MAX);
        assert!(matches!(
            Discovery::new(huge),
            Err(ConfigError::Token(ProtocolError::LifetimeTooLong { .. }))
        ));
    }

    #[test]
    fn the_environment_is_read() {
        let env = |name: &str| {
            match name {
                "MERCURE_URL" => Some("http://mercure:80/.well-known/mercure"),
                "MERCURE_PUBLIC_URL" => Some("https://hub.example/.well-known/mercure"),
                "MERCURE_SUBSCRIBER_JWT_KEY" => Some("k"),
                "MERCURE_SUBSCRIBER_JWT_ALG" => Some("hs256"),
                "MERCURE_PROTOCOL" => Some("1.0"),
                "MERCURE_SUBSCRIBER_JWT_TTL_SECS" => Some("60"),
                "MERCURE_PUBLISHER_JWT_ISSUER" => Some("https://app.example"),
                "MERCURE_COOKIE_NAME" => Some("hub_token"),
                _ => None,
            }
            .map(str::to_owned)
        };
        let config = DiscoveryConfig::from_lookup(env).expect("config");
        assert_eq!(config.hub_url, "https://hub.example/.well-known/mercure");
        assert_eq!(config.protocol, ProtocolVersion::V1);
        assert_eq!(config.ttl, Duration::from_secs(60));
        assert_eq!(
            config.identity.issuer.as_deref(),
            Some("https://app.example")
        );
        let d = discovery(config);
        assert!(
            d.cookie(&[Matcher::exact("a")])
                .is_ok_and(|c| c.starts_with("hub_token="))
        );
        let no_key = |name: &str| (name == "MERCURE_URL").then(|| "http://h/".to_owned());
        assert!(matches!(
            DiscoveryConfig::from_lookup(no_key),
            Err(ConfigError::MissingEnv {
                variable: "MERCURE_SUBSCRIBER_JWT_KEY"
            })
        ));
    }

    #[test]
    fn the_link_header_carries_the_last_event_id_or_earliest() {
        let d = discovery(DiscoveryConfig::new(
            "/.well-known/mercure",
            JwtKey::new("k"),
        ));
        assert_eq!(
            d.link_header(Some("urn:uuid:1")),
            r#"</.well-known/mercure>; rel="mercure"; last-event-id="urn:uuid:1""#
        );
        assert_eq!(
            d.link_header(None),
            r#"</.well-known/mercure>; rel="mercure"; last-event-id="earliest""#
        );
        assert_eq!(
            d.link_header(Some(r#"a"b\c"#)),
            r#"</.well-known/mercure>; rel="mercure"; last-event-id="a\"b\\c""#
        );
    }

    #[test]
    fn subscribe_urls_follow_the_generation() {
        let v0 = discovery(DiscoveryConfig::new(
            "/.well-known/mercure",
            JwtKey::new("k"),
        ));
        assert_eq!(
            v0.subscribe_url(&[Matcher::exact("orders/a")], Some("x")),
            Ok("/.well-known/mercure?topic=orders%2Fa&lastEventID=x".to_owned())
        );
        let v1 = discovery(
            DiscoveryConfig::new(
                "https://hub.example/.well-known/mercure?x=1",
                JwtKey::new("k"),
            )
            .protocol(ProtocolVersion::V1)
            .issuer("https://app.example"),
        );
        assert_eq!(
            v1.subscribe_url(&[Matcher::exact("orders/a")], Some("x")),
            Ok(
                "https://hub.example/.well-known/mercure?x=1&match=orders%2Fa&last_event_id=x"
                    .to_owned()
            )
        );
        assert_eq!(v1.last_event_id_param(), "last_event_id");
        assert!(
            v1.subscribe_url(&[Matcher::selector("orders/{id}")], None)
                .is_err()
        );
    }
}
