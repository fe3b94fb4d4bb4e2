//! The development hub: a small Mercure hub for examples and tests.
//!
//! **For development only.** It keeps its history in memory, runs in one process and is
//! tuned for clarity, not for thousands of subscribers; production uses the reference hub
//! (<https://mercure.rocks>), which speaks the same protocol, so switching is a matter of
//! `MERCURE_URL`.
//!
//! It follows protocol 0.x as the reference hub v0.24.2 implements it, rule by rule:
//!
//! - **publish** (`POST`, form body): the JWT (`Authorization: Bearer`, exactly one header;
//!   else the `authorization` query parameter; else the `mercureAuthorization` cookie, on POST
//!   only from an origin of [`DevHubConfig::publish_origins`]) is checked first (401); then the
//!   form: a content type other than `application/x-www-form-urlencoded` leaves it empty, a
//!   malformed one, a body over 10 MiB, a bad `%` escape or a `;` separator are 400; no topic or
//!   more than 1 000 topics, a `retry` that is not an unsigned integer, an `id` or `type` with a
//!   line break are 400; topics not covered by the `mercure.publish` selectors (`*`, exact
//!   topics, URI templates) are 401; a topic containing `/.well-known/mercure` is 403. A
//!   repeated field counts by its first value; `private` with any value makes the update
//!   private. The answer's body is the update id.
//! - **subscribe** (`GET`, `topic` repeated, at most 1 000): a server-sent event stream of the
//!   updates any of whose topics a selector matches; private updates only for subscribers whose
//!   JWT's `mercure.subscribe` selectors match one of the update's topics; anonymous
//!   subscribers when configured. A token is valid until its `exp` (no leeway unless
//!   configured) and from its `nbf`, and the stream is closed when it expires.
//!   `Last-Event-ID` (the header, else the `lastEventID` query parameter) replays the updates
//!   since that id (all of them for `earliest`) from a history bounded in count and bytes; the
//!   response's `Last-Event-ID` names the requested id when it was found, else the newest
//!   update this subscriber may see, else `earliest`. Heartbeats keep idle connections open.
//!
//! With [`DevHubConfig::protocol`] set to [`ProtocolVersion::V1`] it follows the reference's
//! 1.0 line instead: OAuth 2.0 access tokens (`typ: at+jwt`, an `iss` the hub trusts,
//! an `aud` naming the hub's resource identifier, a required `exp`, Mercure
//! `authorization_details`), RFC 6750 answers (400 `invalid_request`, 401 `invalid_token` or a
//! bare challenge naming the protected resource metadata, 403 `insufficient_scope`), no token
//! in the query, the `mercure_access_token` cookie, `match=` / `match_exact=` /
//! `match_urlpattern=` (WHATWG URL Pattern; `topic=` and other `match…` names are 400; at most
//! 100), `last_event_id=` and the `Mercure-Last-Event-ID` response header, 1 MiB forms (413),
//! and 1.0's update checks (control characters, `*`, the hub's namespace after resolution,
//! ids starting with `#` or `earliest`, the `mercure` type, data not UTF-8: 400). It serves
//! plain HTTP, so it does not require HTTPS for authorized requests as the reference does. It
//! serves its protected resource metadata (RFC 9728) at
//! `/.well-known/oauth-protected-resource/.well-known/mercure`.
//!
//! URI templates and URL patterns are compiled to linear-time regular expressions: matching
//! costs the same for any selector, however many expressions it has.
//!
//! ```no_run
//! use mercure_track::hub::{DevHub, DevHubConfig};
//! use mercure_track::publisher::JwtKey;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let key = JwtKey::new("!ChangeThisMercureHubJWTSecretKey!");
//! let hub = DevHub::new(DevHubConfig::new(key.clone(), key))?;
//! let running = hub.bind("127.0.0.1:3001".parse()?).await?;
//! println!("hub at {}", running.url());
//! running.wait().await?;
//! # Ok(()) }
//! ```

mod auth;
mod form;
mod history;
mod publish;
mod rules;
mod selector;
mod subscribe;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::HeaderValue;
use axum::routing::get;
use tokio::task::JoinHandle;

use crate::protocol::ProtocolVersion;
use crate::publisher::{Algorithm, ConfigError, JwtKey};
use crate::wire::HUB_PATH;

/// Configuration of the development hub.
#[derive(Debug, Clone)]
pub struct DevHubConfig {
    /// Verifies publishers' JWTs: the shared secret (HS256) or the PEM public key (RS256).
    pub publisher_key: JwtKey,
    /// The algorithm of publishers' JWTs.
    pub publisher_algorithm: Algorithm,
    /// Verifies subscribers' JWTs.
    pub subscriber_key: JwtKey,
    /// The algorithm of subscribers' JWTs.
    pub subscriber_algorithm: Algorithm,
    /// Whether subscribers without a JWT may subscribe (to public updates). Default: yes.
    pub anonymous: bool,
    /// How many updates are kept for `Last-Event-ID` replay. Default: 10 000.
    pub history_size: usize,
    /// How many bytes of updates are kept for replay (data, topics, ids). Default: 64 MiB.
    pub history_bytes: usize,
    /// Clock skew tolerated on tokens' `exp` and `nbf`. Default: none, as the reference hub.
    pub jwt_leeway: Duration,
    /// Origins allowed to publish with the cookie (`*` for any, or a pattern with one `*`).
    /// Default: none.
    pub publish_origins: Vec<String>,
    /// The protocol generation the hub speaks. Default: 0.x.
    pub protocol: ProtocolVersion,
    /// 1.0: the issuer (`iss`) tokens must name; `None` accepts any issuer (one is still
    /// required).
    pub issuer: Option<String>,
    /// 1.0: the hub's resource identifier, the audience (`aud`) tokens must name; `None`
    /// derives it from each request, `http://<Host>/.well-known/mercure`.
    pub resource_identifier: Option<String>,
    /// The cookie a token may travel in; `None`: the generation's (`mercureAuthorization` for
    /// 0.x, `mercure_access_token` for 1.0 over plain HTTP).
    pub cookie_name: Option<String>,
    /// Interval of heartbeat comments on idle streams. Default: 15 s.
    pub heartbeat: Duration,
}

impl DevHubConfig {
    /// A configuration with HS256 keys for publishers and subscribers, anonymous subscribers
    /// allowed.
    pub fn new(publisher_key: JwtKey, subscriber_key: JwtKey) -> Self {
        Self {
            publisher_key,
            publisher_algorithm: Algorithm::Hs256,
            subscriber_key,
            subscriber_algorithm: Algorithm::Hs256,
            anonymous: true,
            history_size: 10_000,
            history_bytes: 64 << 20,
            jwt_leeway: Duration::ZERO,
            publish_origins: Vec::new(),
            protocol: ProtocolVersion::V0,
            issuer: None,
            resource_identifier: None,
            cookie_name: None,
            heartbeat: Duration::from_secs(15),
        }
    }

    /// Allows or refuses anonymous subscribers.
    #[must_use]
    pub fn anonymous(mut self, allowed: bool) -> Self {
        self.anonymous = allowed;
        self
    }

    /// Sets the history size.
    #[must_use]
    pub fn history_size(mut self, size: usize) -> Self {
        self.history_size = size;
        self
    }

    /// Sets the byte bound of the history.
    #[must_use]
    pub fn history_bytes(mut self, bytes: usize) -> Self {
        self.history_bytes = bytes;
        self
    }

    /// Sets the clock skew tolerated on `exp` and `nbf`.
    #[must_use]
    pub fn jwt_leeway(mut self, leeway: Duration) -> Self {
        self.jwt_leeway = leeway;
        self
    }

    /// Sets the origins allowed to publish with the cookie.
    #[must_use]
    pub fn publish_origins<S: Into<String>>(
        mut self,
        origins: impl IntoIterator<Item = S>,
    ) -> Self {
        self.publish_origins = origins.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the protocol generation.
    #[must_use]
    pub fn protocol(mut self, protocol: ProtocolVersion) -> Self {
        self.protocol = protocol;
        self
    }

    /// 1.0: sets the trusted issuer.
    #[must_use]
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// 1.0: sets the resource identifier (the audience of tokens).
    #[must_use]
    pub fn resource_identifier(mut self, resource: impl Into<String>) -> Self {
        self.resource_identifier = Some(resource.into());
        self
    }

    /// Sets the cookie name.
    #[must_use]
    pub fn cookie_name(mut self, name: impl Into<String>) -> Self {
        self.cookie_name = Some(name.into());
        self
    }

    /// Sets the heartbeat interval.
    #[must_use]
    pub fn heartbeat(mut self, interval: Duration) -> Self {
        self.heartbeat = interval;
        self
    }
}

pub(crate) struct HubState {
    config: DevHubConfig,
    publisher: auth::Verifier,
    subscriber: auth::Verifier,
    origins: auth::PublishOrigins,
    history: history::History,
    rules: rules::Rules,
    cookie: String,
}

impl HubState {
    /// Who the hub is for a request.
    fn identity(&self, headers: &axum::http::HeaderMap) -> rules::HubIdentity {
        rules::HubIdentity::of(self.config.resource_identifier.as_deref(), headers)
    }

    /// The token a request presents.
    fn token(
        &self,
        method: &axum::http::Method,
        headers: &axum::http::HeaderMap,
        query: &form::Form,
    ) -> Result<Option<String>, auth::AuthError> {
        auth::presented_token(
            method,
            headers,
            self.rules.query_token().then_some(query),
            &self.cookie,
            &self.origins,
        )
    }
}

/// The development hub. See the [module documentation](self).
#[derive(Clone)]
pub struct DevHub {
    state: Arc<HubState>,
}

impl std::fmt::Debug for DevHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevHub")
            .field("config", &self.state.config)
            .finish()
    }
}

impl DevHub {
    /// A hub; a key that cannot be used is an error.
    pub fn new(config: DevHubConfig) -> Result<Self, ConfigError> {
        let publisher = auth::Verifier::new(
            &config.publisher_key,
            config.publisher_algorithm,
            config.jwt_leeway,
            config.protocol,
            config.issuer.clone(),
        )?;
        let subscriber = auth::Verifier::new(
            &config.subscriber_key,
            config.subscriber_algorithm,
            config.jwt_leeway,
            config.protocol,
            config.issuer.clone(),
        )?;
        let rules = rules::Rules::new(config.protocol);
        let cookie = config
            .cookie_name
            .clone()
            .unwrap_or_else(|| rules.default_cookie().to_owned());
        let origins = auth::PublishOrigins::new(&config.publish_origins);
        let history = history::History::new(config.history_size, config.history_bytes);
        Ok(Self {
            state: Arc::new(HubState {
                config,
                publisher,
                subscriber,
                origins,
                history,
                rules,
                cookie,
            }),
        })
    }

    /// The hub's routes, at `/.well-known/mercure`, to mount in an application.
    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        let router = Router::new()
            .route(
                HUB_PATH,
                get(subscribe::subscribe)
                    .post(publish::publish)
                    // The publish handler bounds form bodies itself (10 MiB, as the reference).
                    .layer(axum::extract::DefaultBodyLimit::disable()),
            )
            .layer(axum::middleware::map_response(discovery_link));
        let router = if self.state.rules.is_v1() {
            router.route(rules::RESOURCE_METADATA_PATH, get(rules::resource_metadata))
        } else {
            router
        };
        router.with_state(self.state.clone())
    }

    /// Serves the hub alone on `addr` (port 0 picks a free port).
    pub async fn bind(&self, addr: SocketAddr) -> std::io::Result<RunningHub> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        // Alone, the hub also answers `/` with a short page (the reference hub serves one),
        // which browsers and browser-based suites open to get the hub's origin.
        let router: Router = self.router().route(
            "/",
            get(|| async {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; charset=utf-8",
                    )],
                    "Mercure development hub: not for production.\n",
                )
            }),
        );
        let task = tokio::spawn(async move { axum::serve(listener, router).await });
        Ok(RunningHub { addr, task })
    }
}

async fn discovery_link(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert(
        "link",
        HeaderValue::from_static("</.well-known/mercure>; rel=\"mercure\""),
    );
    response
}

/// A development hub serving on a socket; stopped when dropped.
#[derive(Debug)]
pub struct RunningHub {
    addr: SocketAddr,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningHub {
    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The hub URL (`http://127.0.0.1:PORT/.well-known/mercure`).
    pub fn url(&self) -> String {
        format!("http://{}{HUB_PATH}", self.addr)
    }

    /// Serves until the server fails.
    pub async fn wait(mut self) -> std::io::Result<()> {
        match (&mut self.task).await {
            Ok(result) => result,
            Err(error) => Err(std::io::Error::other(error)),
        }
    }
}

impl Drop for RunningHub {
    fn drop(&mut self) {
        self.task.abort();
    }
}
