//! The application's configuration, from the environment, with embedded defaults: SQLite and
//! the development hub, so that it runs with no server to install.

use std::net::SocketAddr;
use std::time::Duration;

use mercure_track::publisher::JwtKey;

/// The development key of the embedded hub. Set `MERCURE_PUBLISHER_JWT_KEY` and
/// `MERCURE_SUBSCRIBER_JWT_KEY` for anything but a local demonstration.
pub const DEVELOPMENT_KEY: &str = "!ChangeThisMercureHubJWTSecretKey!";

/// How the application runs.
#[derive(Debug, Clone)]
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
