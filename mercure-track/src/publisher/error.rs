//! The errors of configuring and publishing.
//!
//! Their sources are opaque ([`BoxError`]): the HTTP and JWT crates underneath are not part of
//! the public API.

use crate::protocol::ProtocolError;

/// An opaque underlying error (from the HTTP client, the JWT library or serde).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A publisher could not be configured.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The hub URL does not parse or is not http(s).
    #[error("invalid hub URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given, its password (if any) redacted.
        url: String,
        /// Why it is invalid.
        reason: String,
    },
    /// The URL is https but the crate was built without TLS.
    #[error("hub URL {url:?} is https: enable the `rustls` feature of mercure-track")]
    TlsDisabled {
        /// The URL as given.
        url: String,
    },
    /// The URL carries a user name or password (`https://user:pass@hub/...`). The HTTP client
    /// would send them as a second `Authorization` header next to the JWT, and hubs refuse
    /// such requests: put the credentials elsewhere (a proxy, the JWT).
    #[error(
        "hub URL {url:?} carries credentials (user:password@): the publisher authenticates with its JWT only"
    )]
    CredentialsInUrl {
        /// The URL, its password redacted.
        url: String,
    },
    /// A required environment variable (`MERCURE_URL`, say) is not set.
    #[error("{variable} is not set")]
    MissingEnv {
        /// The variable.
        variable: &'static str,
    },
    /// An environment variable has a value that is not understood.
    #[error("{variable} has an invalid value: expected {expected}")]
    InvalidEnv {
        /// The variable.
        variable: &'static str,
        /// What it may hold.
        expected: &'static str,
    },
    /// The JWT key could not be used (an RS256 key that is not PEM, say).
    #[error("the JWT key cannot be used: {0}")]
    InvalidKey(#[source] BoxError),
    /// The tokens cannot be made in the configured protocol generation (a 1.0 token without
    /// issuer, a matcher the generation lacks, a lifetime beyond the representable).
    #[error("the JWT cannot be made: {0}")]
    Token(#[from] ProtocolError),
    /// The HTTP client could not be built.
    #[error("the HTTP client could not be built: {0}")]
    Client(#[source] BoxError),
    /// The subscriber cookie cannot be written as configured.
    #[error("invalid subscriber cookie: {0}")]
    InvalidCookie(&'static str),
}

impl ConfigError {
    /// An unusable key, from the JWT library's error.
    pub(crate) fn invalid_key(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::InvalidKey(Box::new(error))
    }
}

/// A token could not be made.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// The protocol generation cannot express the request (see [`ProtocolError`]).
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The JWT library could not sign it.
    #[error("the JWT could not be signed: {0}")]
    Sign(#[source] BoxError),
}

impl From<TokenError> for ConfigError {
    /// A token that cannot be made at configuration time is a configuration error.
    fn from(error: TokenError) -> Self {
        match error {
            TokenError::Protocol(error) => Self::Token(error),
            TokenError::Sign(error) => Self::InvalidKey(error),
        }
    }
}

/// A publish failed. A tracked session logs these and never fails a commit for them.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PublishError {
    /// The hub answered 401 or 403: the JWT is wrong or does not cover the topics.
    #[error("the hub refused the publisher's JWT (HTTP {status})")]
    Unauthorized {
        /// 401 or 403.
        status: u16,
    },
    /// The hub answered another non-2xx status.
    #[error("the hub answered HTTP {status}: {body}")]
    Status {
        /// The status code.
        status: u16,
        /// The start of the answer's body.
        body: String,
    },
    /// The hub could not be reached (connection refused, DNS, reset).
    #[error("the hub could not be reached: {0}")]
    Connect(#[source] BoxError),
    /// The hub did not answer within the timeout.
    #[error("the hub did not answer within the timeout")]
    Timeout(#[source] BoxError),
    /// Another transport failure.
    #[error("the request to the hub failed: {0}")]
    Transport(#[source] BoxError),
    /// The event could not be serialized.
    #[error("the event could not be serialized: {0}")]
    Serialize(#[source] BoxError),
    /// The JWT could not be signed.
    #[error("the JWT could not be signed: {0}")]
    Jwt(#[source] BoxError),
    /// The update has no topic; a hub would refuse it.
    #[error("the update has no topic")]
    NoTopic,
}

impl PublishError {
    /// Whether trying again later may succeed (the hub was down, overloaded or slow).
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Connect(_) | Self::Timeout(_) | Self::Transport(_) => true,
            Self::Status { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            Self::Unauthorized { .. } | Self::Serialize(_) | Self::Jwt(_) | Self::NoTopic => false,
        }
    }

    /// The HTTP status the hub answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Unauthorized { status } | Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}
