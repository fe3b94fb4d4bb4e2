//! The application's configuration, from the environment, with embedded defaults: SQLite and
//! the development hub, so that it runs with no server to install.

use std::net::SocketAddr;
use std::time::Duration;

use mercure_track::ProtocolVersion;
use mercure_track::publisher::HubConfig;
use mercure_track::subscriber::DiscoveryConfig;
use mercure_track::wire::HUB_PATH;

/// The development key of the embedded hub. Set `MERCURE_PUBLISHER_JWT_KEY` and
/// `MERCURE_SUBSCRIBER_JWT_KEY` for anything but a local demonstration.
pub const DEVELOPMENT_KEY: &str = "!ChangeThisMercureHubJWTSecretKey!";

/// The publisher's hub URL until the embedded hub's address is known (see
/// [`AppConfig::publisher`]).
const EMBEDDED_HUB: &str = "http://127.0.0.1/.well-known/mercure";

/// How the application runs. Its `Debug` shows the URLs with their passwords replaced by
/// `***` (see [`redact_url`]).
#[derive(Clone)]
pub struct AppConfig {
    /// Where to listen (`APP_ADDR`, default `127.0.0.1:3000`; port 0 picks one).
    pub addr: SocketAddr,
    /// `DATABASE_URL`: `sqlite:...` or `postgres://...`. Default: a new SQLite file in the
    /// temporary directory.
    pub database_url: Option<String>,
    /// `MERCURE_URL`: an external hub. Default: the development hub embedded at
    /// `/.well-known/mercure`.
    pub mercure_url: Option<String>,
    /// The publisher, read by the library (`HubConfig::from_env`): `MERCURE_URL`,
    /// `MERCURE_PUBLISHER_JWT_KEY` (default here: [`DEVELOPMENT_KEY`]),
    /// `MERCURE_PUBLISHER_JWT_ALG`, `MERCURE_PROTOCOL`, `MERCURE_TIMEOUT_MS`,
    /// `MERCURE_PUBLISHER_JWT_TTL_SECS`, `MERCURE_PUBLISHER_JWT_ISSUER`,
    /// `MERCURE_PUBLISHER_JWT_AUDIENCE`. With the embedded hub its URL is the application's own,
    /// set once the socket is bound.
    pub publisher: HubConfig,
    /// The pages' subscriptions, read by the library (`DiscoveryConfig::from_env`):
    /// `MERCURE_PUBLIC_URL` (default: `MERCURE_URL`, or the embedded hub's path),
    /// `MERCURE_SUBSCRIBER_JWT_KEY` (default here: [`DEVELOPMENT_KEY`]),
    /// `MERCURE_SUBSCRIBER_JWT_ALG`, `MERCURE_PROTOCOL`, ...
    pub discovery: DiscoveryConfig,
    /// `DEMO_STEP_MS`: the simulated duration of each processing step (default 700 ms).
    pub step: Duration,
    /// `DELIVERY=outbox`: commits write their events to the transactional outbox and a relay
    /// in the application publishes them; otherwise (`direct`, the default) commits publish.
    pub outbox: bool,
    /// `CAPTURE=1`: the orders and the image tables are captured at the database (triggers
    /// installed at start), so that a write made with plain SQL — `sqlite3`, `psql`, the
    /// `plain-sql` binary of this crate — publishes like a setter's; a capture loop in the
    /// application delivers those events, directly or through the outbox as `DELIVERY` says.
    /// `0` or unset: only the session's writes publish.
    pub capture: bool,
}

/// A configuration value that is not understood.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A variable of the application.
    #[error("{variable} is invalid: expected {expected}")]
    Invalid {
        /// The variable.
        variable: &'static str,
        /// What it may hold.
        expected: &'static str,
    },
    /// A Mercure variable, as the library reads it.
    #[error(transparent)]
    Mercure(#[from] mercure_track::publisher::ConfigError),
}

/// The publisher's and the pages' Mercure configuration from the variables `var` returns,
/// with this demonstration's defaults: the development keys, and the embedded hub when
/// `MERCURE_URL` is unset.
fn mercure_config(
    var: &dyn Fn(&str) -> Option<String>,
) -> Result<(HubConfig, DiscoveryConfig), ConfigError> {
    let with_defaults = |embedded_url: &'static str| {
        move |name: &str| {
            var(name).or_else(|| match name {
                "MERCURE_URL" => Some(embedded_url.to_owned()),
                "MERCURE_PUBLISHER_JWT_KEY" | "MERCURE_SUBSCRIBER_JWT_KEY" => {
                    Some(DEVELOPMENT_KEY.to_owned())
                }
                _ => None,
            })
        }
    };
    Ok((
        HubConfig::from_lookup(with_defaults(EMBEDDED_HUB))?,
        DiscoveryConfig::from_lookup(with_defaults(HUB_PATH))?,
    ))
}

impl AppConfig {
    /// The configuration from the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let addr = match var("APP_ADDR") {
            Some(addr) => addr.parse().map_err(|_| ConfigError::Invalid {
                variable: "APP_ADDR",
                expected: "a socket address such as 127.0.0.1:3000",
            })?,
            None => SocketAddr::from(([127, 0, 0, 1], 3000)),
        };
        let step = match var("DEMO_STEP_MS") {
            Some(ms) => Duration::from_millis(ms.parse().map_err(|_| ConfigError::Invalid {
                variable: "DEMO_STEP_MS",
                expected: "milliseconds",
            })?),
            None => Duration::from_millis(700),
        };
        let (publisher, discovery) = mercure_config(&var)?;
        Ok(Self {
            addr,
            database_url: var("DATABASE_URL"),
            mercure_url: var("MERCURE_URL"),
            publisher,
            discovery,
            step,
            outbox: match var("DELIVERY").as_deref() {
                None | Some("direct") => false,
                Some("outbox") => true,
                Some(_) => {
                    return Err(ConfigError::Invalid {
                        variable: "DELIVERY",
                        expected: "direct or outbox",
                    });
                }
            },
            capture: match var("CAPTURE").as_deref() {
                None | Some("0") => false,
                Some("1") => true,
                Some(_) => {
                    return Err(ConfigError::Invalid {
                        variable: "CAPTURE",
                        expected: "0 or 1",
                    });
                }
            },
        })
    }

    /// The embedded defaults on a free port, with short steps: for tests.
    pub fn embedded_on_free_port(step: Duration) -> Self {
        // The defaults are constants that the library accepts.
        let (publisher, discovery) =
            mercure_config(&|_| None).expect("the embedded Mercure defaults are valid");
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: None,
            mercure_url: None,
            publisher,
            discovery,
            step,
            outbox: false,
            capture: false,
        }
    }
}

impl AppConfig {
    /// Sets the protocol generation of the publisher and of the pages (`MERCURE_PROTOCOL`
    /// sets both).
    pub fn set_protocol(&mut self, protocol: ProtocolVersion) {
        self.publisher.protocol = protocol;
        self.discovery.protocol = protocol;
    }
}

impl std::fmt::Debug for AppConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |url: &Option<String>| url.as_deref().map(redact_url);
        f.debug_struct("AppConfig")
            .field("addr", &self.addr)
            .field("database_url", &redacted(&self.database_url))
            .field("mercure_url", &redacted(&self.mercure_url))
            .field("publisher", &self.publisher)
            .field("discovery", &self.discovery)
            .field("step", &self.step)
            .field("outbox", &self.outbox)
            .field("capture", &self.capture)
            .finish()
    }
}

impl AppConfig {
    /// `text` (an error message, say) with every password of the configured URLs replaced by
    /// `***`, for text this application did not write itself.
    pub fn redact(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for url in [
            &self.database_url,
            &self.mercure_url,
            &Some(self.discovery.hub_url.clone()),
        ]
        .into_iter()
        .flatten()
        {
            text = redact_secrets_of(url, &text);
        }
        text
    }
}

/// `text` (an error message, say) with the secrets of `url` — the password of its user
/// information and its `password` query parameters, as written and percent-decoded —
/// replaced by `***`.
pub fn redact_secrets_of(url: &str, text: &str) -> String {
    let mut text = text.to_owned();
    for secret in url_secrets(url) {
        text = text.replace(&secret, "***");
    }
    text
}

/// What a URL must not show: the password of its user information and the values of its
/// `password` query parameters, as written and percent-decoded.
fn url_secrets(url: &str) -> Vec<String> {
    let Ok(parsed) = url::Url::parse(url) else {
        return Vec::new();
    };
    let mut secrets: Vec<String> = parsed.password().map(str::to_owned).into_iter().collect();
    for (key, value) in parsed.query_pairs() {
        if key.eq_ignore_ascii_case("password") && !value.is_empty() {
            secrets.push(value.into_owned());
        }
    }
    let decoded: Vec<String> = secrets
        .iter()
        .filter_map(|s| {
            url::form_urlencoded::parse(format!("x={s}").as_bytes())
                .map(|(_, value)| value.into_owned())
                .next()
        })
        .collect();
    secrets.extend(decoded);
    // The longest first, so that a secret containing another is replaced whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.retain(|s| !s.is_empty());
    secrets
}

/// `url` as it may be printed or logged: its password (user information or `password` query
/// parameter) replaced by `***`. A string that is not a URL is not shown at all.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return "(not a URL: not shown)".to_owned();
    };
    if parsed.password().is_some() {
        let _ = parsed.set_password(Some("***"));
    }
    if parsed
        .query_pairs()
        .any(|(key, _)| key.eq_ignore_ascii_case("password"))
    {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(key, value)| {
                let value = if key.eq_ignore_ascii_case("password") {
                    "***".to_owned()
                } else {
                    value.into_owned()
                };
                (key.into_owned(), value)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
    }
    parsed.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted_from_urls_and_texts() {
        assert_eq!(
            redact_url("postgres://app:s3cr%40t@db:5432/shop?password=other&sslmode=disable"),
            "postgres://app:***@db:5432/shop?password=***&sslmode=disable"
        );
        assert_eq!(redact_url("sqlite:///tmp/a.db"), "sqlite:///tmp/a.db");
        assert_eq!(redact_url("not a url with pw"), "(not a URL: not shown)");
        let mut config = AppConfig::embedded_on_free_port(Duration::from_millis(1));
        config.database_url = Some("postgres://app:s3cr%40t@db/shop".to_owned());
        config.mercure_url = Some("http://u:hubpw@hub/.well-known/mercure".to_owned());
        let text = "failed: postgres://app:s3cr%40t@db/shop (s3cr@t), hub http://u:hubpw@hub";
        let redacted = config.redact(text);
        assert!(
            !redacted.contains("s3cr") && !redacted.contains("hubpw"),
            "{redacted}"
        );
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("s3cr") && !debug.contains("hubpw"),
            "{debug}"
        );
    }
}
