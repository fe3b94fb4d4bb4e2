//! The application's configuration, from the environment, with embedded defaults: SQLite and
//! the development hub, so that it runs with no server to install.

use std::net::SocketAddr;
use std::time::Duration;

use mercure_track::publisher::JwtKey;

/// The development key of the embedded hub. Set `MERCURE_PUBLISHER_JWT_KEY` and
/// `MERCURE_SUBSCRIBER_JWT_KEY` for anything but a local demonstration.
pub const DEVELOPMENT_KEY: &str = "!ChangeThisMercureHubJWTSecretKey!";

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
    /// `MERCURE_PUBLIC_URL`: the hub URL browsers use, when it differs from `MERCURE_URL`.
    pub mercure_public_url: Option<String>,
    /// `MERCURE_PUBLISHER_JWT_KEY` (HS256).
    pub publisher_key: JwtKey,
    /// `MERCURE_SUBSCRIBER_JWT_KEY` (HS256): signs the pages' subscription cookies.
    pub subscriber_key: JwtKey,
    /// `DEMO_STEP_MS`: the simulated duration of each processing step (default 700 ms).
    pub step: Duration,
    /// `DELIVERY=outbox`: commits write their events to the transactional outbox and a relay
    /// in the application publishes them; otherwise (`direct`, the default) commits publish.
    pub outbox: bool,
}

/// A configuration value that is not understood.
#[derive(Debug, thiserror::Error)]
#[error("{variable} is invalid: expected {expected}")]
pub struct ConfigError {
    variable: &'static str,
    expected: &'static str,
}

impl AppConfig {
    /// The configuration from the environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let addr = match var("APP_ADDR") {
            Some(addr) => addr.parse().map_err(|_| ConfigError {
                variable: "APP_ADDR",
                expected: "a socket address such as 127.0.0.1:3000",
            })?,
            None => SocketAddr::from(([127, 0, 0, 1], 3000)),
        };
        let step = match var("DEMO_STEP_MS") {
            Some(ms) => Duration::from_millis(ms.parse().map_err(|_| ConfigError {
                variable: "DEMO_STEP_MS",
                expected: "milliseconds",
            })?),
            None => Duration::from_millis(700),
        };
        Ok(Self {
            addr,
            database_url: var("DATABASE_URL"),
            mercure_url: var("MERCURE_URL"),
            mercure_public_url: var("MERCURE_PUBLIC_URL"),
            publisher_key: JwtKey::new(
                var("MERCURE_PUBLISHER_JWT_KEY").unwrap_or_else(|| DEVELOPMENT_KEY.to_owned()),
            ),
            subscriber_key: JwtKey::new(
                var("MERCURE_SUBSCRIBER_JWT_KEY").unwrap_or_else(|| DEVELOPMENT_KEY.to_owned()),
            ),
            step,
            outbox: match var("DELIVERY").as_deref() {
                None | Some("direct") => false,
                Some("outbox") => true,
                Some(_) => {
                    return Err(ConfigError {
                        variable: "DELIVERY",
                        expected: "direct or outbox",
                    });
                }
            },
        })
    }

    /// The embedded defaults on a free port, with short steps: for tests.
    pub fn embedded_on_free_port(step: Duration) -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            database_url: None,
            mercure_url: None,
            mercure_public_url: None,
            publisher_key: JwtKey::new(DEVELOPMENT_KEY),
            subscriber_key: JwtKey::new(DEVELOPMENT_KEY),
            step,
            outbox: false,
        }
    }
}

impl std::fmt::Debug for AppConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |url: &Option<String>| url.as_deref().map(redact_url);
        f.debug_struct("AppConfig")
            .field("addr", &self.addr)
            .field("database_url", &redacted(&self.database_url))
            .field("mercure_url", &redacted(&self.mercure_url))
            .field("mercure_public_url", &redacted(&self.mercure_public_url))
            .field("publisher_key", &self.publisher_key)
            .field("subscriber_key", &self.subscriber_key)
            .field("step", &self.step)
            .field("outbox", &self.outbox)
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
            &self.mercure_public_url,
        ]
        .into_iter()
        .flatten()
        {
            for secret in url_secrets(url) {
                text = text.replace(&secret, "***");
            }
        }
        text
    }
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

/// `url` without user information, for a URL handed to browsers (the hub URL in the pages). A
/// string that is not an absolute URL (a path such as `/.well-known/mercure`) is kept as is.
pub fn without_credentials(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_password(None);
            let _ = parsed.set_username("");
            parsed.to_string()
        }
        Err(_) => url.to_owned(),
    }
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
        assert_eq!(
            without_credentials("https://u:hubpw@hub.example/.well-known/mercure"),
            "https://hub.example/.well-known/mercure"
        );
        assert_eq!(
            without_credentials("/.well-known/mercure"),
            "/.well-known/mercure"
        );
        let debug = format!("{config:?}");
        assert!(
            !debug.contains("s3cr") && !debug.contains("hubpw"),
            "{debug}"
        );
    }
}
