//! The two generations of the Mercure protocol, and what differs between them on the wire.
//!
//! | | 0.x ([`v0`], the default) | 1.0 ([`v1`]) |
//! |---|---|---|
//! | token | JWT with a `mercure` claim of selector strings | RFC 9068 access token (`typ: at+jwt`, `iss`, `aud`, `exp`, `sub`, `client_id`, `iat`, `jti`) with RFC 9396 `authorization_details` |
//! | matchers | selectors: `*`, exact topics, URI templates | `{match, match_type}`: `exact` (`*` for all) or `urlpattern` |
//! | subscribe query | `topic=` | `match=` / `match_urlpattern=` |
//! | resumption query | `lastEventID=` | `last_event_id=` |
//! | cookie | `mercureAuthorization` | `__Secure-mercure_access_token` (`mercure_access_token` over plain HTTP) |
//!
//! What does not differ stays in [`crate::wire`]: an update's form body (`topic` repeated, the
//! first one canonical, then `data`, `private`, `id`, `type`, `retry`).
//!
//! Code outside this module never asks which generation it runs: it takes the
//! [`Generation`] of a [`ProtocolVersion`] and calls it. Both the publisher (encoding tokens) and
//! the development hub (decoding them) use the claim types of [`v0`] and [`v1`].

pub mod v0;
pub mod v1;

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Which generation of the Mercure protocol a publisher, a subscriber helper or a hub speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ProtocolVersion {
    /// Protocol 0.x, as the reference hub's stable line (v0.24) implements it.
    #[default]
    V0,
    /// Protocol 1.0, as the reference hub's next line (v1.0.0-alpha) implements it.
    V1,
}

impl ProtocolVersion {
    /// The version named `name`: `0`, `0.x` (the stable line) or `1`, `1.0`.
    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim() {
            "0" | "0.x" | "v0" => Some(Self::V0),
            "1" | "1.0" | "v1" => Some(Self::V1),
            _ => None,
        }
    }

    /// What this generation puts on the wire.
    pub fn generation(self) -> &'static dyn Generation {
        match self {
            Self::V0 => &v0::V0,
            Self::V1 => &v1::V1,
        }
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V0 => "0.x",
            Self::V1 => "1.0",
        })
    }
}

/// A topic matcher: which topics a token grants, or a subscription selects.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Matcher {
    /// Every topic (`*`).
    Any,
    /// One topic, compared byte for byte.
    Exact(String),
    /// A URI template (RFC 6570), `orders/{id}`: protocol 0.x only.
    Template(String),
    /// A WHATWG URL Pattern, `https://example.com/orders/:id`: protocol 1.0 only.
    UrlPattern(String),
}

impl Matcher {
    /// An exact topic.
    pub fn exact(topic: impl Into<String>) -> Self {
        Self::Exact(topic.into())
    }

    /// A 0.x selector string as the reference hub reads it: `*` is every topic, a string with a
    /// `{` a URI template, anything else an exact topic.
    pub fn selector(selector: &str) -> Self {
        if selector == "*" {
            Self::Any
        } else if selector.contains('{') {
            Self::Template(selector.to_owned())
        } else {
            Self::Exact(selector.to_owned())
        }
    }

    /// The pattern text (`*` for [`Matcher::Any`]).
    pub fn pattern(&self) -> &str {
        match self {
            Self::Any => "*",
            Self::Exact(p) | Self::Template(p) | Self::UrlPattern(p) => p,
        }
    }
}

impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Any => f.write_str("*"),
            Self::Exact(p) => write!(f, "exact `{p}`"),
            Self::Template(p) => write!(f, "URI template `{p}`"),
            Self::UrlPattern(p) => write!(f, "URL pattern `{p}`"),
        }
    }
}

/// What a token allows: the same for both generations, encoded differently by each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    /// Topics the bearer may publish to.
    pub publish: Vec<Matcher>,
    /// Topics whose private updates the bearer may receive.
    pub subscribe: Vec<Matcher>,
    /// Data about the subscriber that the hub shows in subscription events.
    pub payload: Option<serde_json::Value>,
}

impl Grants {
    /// A publisher's grants.
    pub fn publish(matchers: impl IntoIterator<Item = Matcher>) -> Self {
        Self {
            publish: matchers.into_iter().collect(),
            ..Self::default()
        }
    }

    /// A subscriber's grants.
    pub fn subscribe(matchers: impl IntoIterator<Item = Matcher>) -> Self {
        Self {
            subscribe: matchers.into_iter().collect(),
            ..Self::default()
        }
    }
}

/// Who issues a token and for which hub: the registered claims of a 1.0 access token (0.x
/// tokens carry none of them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenIdentity {
    /// `iss`: one of the hub's trusted issuers (required by 1.0).
    pub issuer: Option<String>,
    /// `aud`: the hub's resource identifier, usually its public URL (required by 1.0).
    pub audience: Option<String>,
    /// `sub`: the principal (default: the client id for publishers, a random `urn:uuid` for
    /// subscribers).
    pub subject: Option<String>,
    /// `client_id` (default: the issuer).
    pub client_id: Option<String>,
}

/// Everything one token is made from.
#[derive(Debug, Clone)]
pub struct TokenRequest<'a> {
    /// What the token allows.
    pub grants: &'a Grants,
    /// Issuer, audience, subject.
    pub identity: &'a TokenIdentity,
    /// When it is signed (`iat`).
    pub issued_at: SystemTime,
    /// Its lifetime (`exp` = `issued_at` + `ttl`); `None`: no expiry where the generation allows.
    pub ttl: Option<Duration>,
    /// Its unique id (`jti`).
    pub id: String,
}

impl TokenRequest<'_> {
    /// The expiry, or an error when `issued_at + ttl` cannot be represented.
    pub fn expires_at(&self) -> Result<Option<NumericDate>, ProtocolError> {
        self.ttl
            .map(|ttl| {
                self.issued_at
                    .checked_add(ttl)
                    .and_then(NumericDate::from_system_time)
                    .ok_or(ProtocolError::LifetimeTooLong { ttl })
            })
            .transpose()
    }
}

/// The claims of a token of either generation, ready to be signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Claims {
    /// A 0.x token.
    V0(v0::Claims),
    /// A 1.0 access token.
    V1(v1::Claims),
}

/// A JWT `NumericDate`: seconds since the Unix epoch, possibly fractional when decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NumericDate {
    secs: i64,
    nanos: u32,
}

impl NumericDate {
    /// The latest date accepted: year 9999, far beyond any token and safe in every JWT library.
    pub const MAX_SECS: i64 = 253_402_300_799;

    /// Whole seconds since the epoch.
    pub fn from_secs(secs: i64) -> Self {
        Self { secs, nanos: 0 }
    }

    /// `time` rounded down to the second; `None` before the epoch or after [`Self::MAX_SECS`].
    pub fn from_system_time(time: SystemTime) -> Option<Self> {
        let secs = i64::try_from(time.duration_since(UNIX_EPOCH).ok()?.as_secs()).ok()?;
        (secs <= Self::MAX_SECS).then_some(Self::from_secs(secs))
    }

    /// Whole seconds since the epoch (rounded down).
    pub fn secs(self) -> i64 {
        self.secs
    }

    /// The date as a system time (`None` when it does not fit).
    pub fn to_system_time(self) -> Option<SystemTime> {
        let whole = u64::try_from(self.secs).ok()?;
        UNIX_EPOCH.checked_add(Duration::new(whole, self.nanos))
    }

    /// Whether `now` is at or past this date plus `leeway` (an expiry that has passed).
    pub fn has_passed(self, now: SystemTime, leeway: Duration) -> bool {
        match self.to_system_time().and_then(|t| t.checked_add(leeway)) {
            Some(limit) => now >= limit,
            // Before the epoch: long past. Beyond what a system time holds: never.
            None => self.secs < 0,
        }
    }
}

impl Serialize for NumericDate {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if self.nanos == 0 {
            serializer.serialize_i64(self.secs)
        } else {
            #[allow(clippy::cast_precision_loss)]
            let value = self.secs as f64 + f64::from(self.nanos) / 1e9;
            serializer.serialize_f64(value)
        }
    }
}

impl<'de> Deserialize<'de> for NumericDate {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Any JSON number, fractional ones included (RFC 7519 allows them; so does the
        // reference hub).
        let value = serde_json::Number::deserialize(deserializer)?;
        if let Some(secs) = value.as_i64() {
            return Ok(Self::from_secs(secs));
        }
        let float = value
            .as_f64()
            .filter(|f| f.is_finite() && f.abs() < 1e17)
            .ok_or_else(|| serde::de::Error::custom("a NumericDate out of range"))?;
        let secs = float.floor();
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        Ok(Self {
            secs: secs as i64,
            nanos: (((float - secs) * 1e9) as u32).min(999_999_999),
        })
    }
}

/// A request that a generation cannot express.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A matcher type that this generation does not have (a URI template in 1.0, a URL
    /// pattern in 0.x).
    #[error("protocol {protocol} has no {matcher}")]
    UnsupportedMatcher {
        /// The matcher.
        matcher: Matcher,
        /// The generation.
        protocol: ProtocolVersion,
    },
    /// A 1.0 token needs an issuer (`iss`), one of the hub's trusted issuers.
    #[error("protocol 1.0 tokens need an issuer (`iss`): set MERCURE_PUBLISHER_JWT_ISSUER")]
    MissingIssuer,
    /// A 1.0 token needs an audience (`aud`), the hub's resource identifier.
    #[error("protocol 1.0 tokens need an audience (`aud`), the hub's resource identifier")]
    MissingAudience,
    /// A 1.0 token needs an expiry.
    #[error("protocol 1.0 tokens need an expiry: set a JWT lifetime")]
    MissingExpiry,
    /// The lifetime puts the expiry beyond any date a JWT can carry.
    #[error("a JWT lifetime of {ttl:?} puts its expiry beyond the year 9999")]
    LifetimeTooLong {
        /// The lifetime.
        ttl: Duration,
    },
    /// A subscribe query parameter under the reserved `match` prefix that is none of the
    /// known ones (1.0: a typo fails loudly).
    #[error("unknown subscribe parameter `{0}`")]
    UnknownParameter(String),
    /// An empty matcher in a token or query.
    #[error("empty topic matcher")]
    EmptyMatcher,
    /// A Mercure authorization detail without actions or without topics.
    #[error("a Mercure authorization detail needs at least one action and one topic")]
    InvalidAuthorizationDetail,
}

/// What one protocol generation puts on the wire. Implemented by [`v0::V0`] and [`v1::V1`]
/// only; get one from [`ProtocolVersion::generation`].
pub trait Generation: sealed::Sealed + fmt::Debug + Send + Sync {
    /// Which generation this is.
    fn version(&self) -> ProtocolVersion;

    /// The `typ` header of its tokens (`None`: the default `JWT`).
    fn token_type(&self) -> Option<&'static str>;

    /// The token lifetime used when none is configured (`None`: tokens without expiry).
    fn default_ttl(&self) -> Option<Duration>;

    /// The claims of a token.
    fn claims(&self, request: &TokenRequest<'_>) -> Result<Claims, ProtocolError>;

    /// The cookie that carries a subscriber's token to a hub reached over HTTPS (`secure`) or
    /// plain HTTP.
    fn cookie_name(&self, secure: bool) -> &'static str;

    /// The query parameters that subscribe to `matchers`, in order.
    fn subscribe_params(
        &self,
        matchers: &[Matcher],
    ) -> Result<Vec<(&'static str, String)>, ProtocolError>;

    /// The matcher a subscribe query parameter carries: `None` when the parameter is not a
    /// matcher parameter of this generation, an error when it is malformed.
    fn parse_subscribe_param(
        &self,
        name: &str,
        value: &str,
    ) -> Option<Result<Matcher, ProtocolError>>;

    /// The query parameter that carries the id to resume after (the `last-event-id` of the
    /// discovery `Link` header).
    fn last_event_id_param(&self) -> &'static str;
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::v0::V0 {}
    impl Sealed for super::v1::V1 {}
}

/// The error for a matcher that `protocol` has no type for.
pub(crate) fn unsupported(matcher: &Matcher, protocol: ProtocolVersion) -> ProtocolError {
    ProtocolError::UnsupportedMatcher {
        matcher: matcher.clone(),
        protocol,
    }
}

/// Decoding a token's parts without checking its signature: for tests of what is signed.
#[cfg(test)]
pub(crate) mod inspect {
    /// The JSON of a token's header and claims.
    pub(crate) fn parts(token: &str) -> (serde_json::Value, serde_json::Value) {
        let mut parts = token.split('.');
        let mut next = || {
            let bytes = decode(parts.next().unwrap_or_default());
            serde_json::from_slice(&bytes).unwrap_or_default()
        };
        let header = next();
        (header, next())
    }

    // A small decoder: JWT parts are unpadded base64url.
    fn decode(input: &str) -> Vec<u8> {
        let value = |c: u8| match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' => 62,
            _ => 63,
        };
        let mut out = Vec::new();
        let mut buffer = 0_u32;
        let mut bits = 0;
        for c in input.bytes() {
            buffer = (buffer << 6) | u32::from(value(c));
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                out.push((buffer >> bits) as u8);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_dates_decode_integers_and_fractions_and_encode_integers() {
        let whole: NumericDate = serde_json::from_str("1700000000").expect("integer");
        assert_eq!(whole, NumericDate::from_secs(1_700_000_000));
        assert_eq!(
            serde_json::to_string(&whole).ok().as_deref(),
            Some("1700000000")
        );
        let fraction: NumericDate = serde_json::from_str("1700000000.5").expect("fraction");
        assert_eq!(fraction.secs(), 1_700_000_000);
        assert!(fraction > whole);
        assert!(serde_json::from_str::<NumericDate>("\"soon\"").is_err());
        assert!(serde_json::from_str::<NumericDate>("1e300").is_err());
    }

    #[test]
    fn expiry_is_checked_against_now_and_leeway() {
        let now = SystemTime::now();
        let date = NumericDate::from_system_time(now).expect("now");
        assert!(date.has_passed(now + Duration::from_secs(1), Duration::ZERO));
        assert!(!date.has_passed(now + Duration::from_secs(1), Duration::from_secs(60)));
        assert!(NumericDate::from_secs(-5).has_passed(now, Duration::ZERO));
    }

    #[test]
    fn an_expiry_beyond_the_representable_is_an_error_not_a_panic() {
        let grants = Grants::default();
        let identity = TokenIdentity::default();
        let request = TokenRequest {
            grants: &grants,
            identity: &identity,
            issued_at: SystemTime::now(),
            ttl: Some(Duration::MAX),
            id: "x".into(),
        };
        assert!(matches!(
            request.expires_at(),
            Err(ProtocolError::LifetimeTooLong { .. })
        ));
        let years = TokenRequest {
            ttl: Some(Duration::from_secs(20_000 * 365 * 86_400)),
            ..request
        };
        assert!(years.expires_at().is_err());
    }

    #[test]
    fn selectors_read_as_the_reference_hub_reads_them() {
        assert_eq!(Matcher::selector("*"), Matcher::Any);
        assert_eq!(
            Matcher::selector("orders/{id}"),
            Matcher::Template("orders/{id}".into())
        );
        assert_eq!(Matcher::selector("orders"), Matcher::exact("orders"));
        assert_eq!(ProtocolVersion::from_name("1.0"), Some(ProtocolVersion::V1));
        assert_eq!(ProtocolVersion::from_name("0"), Some(ProtocolVersion::V0));
        assert_eq!(ProtocolVersion::from_name("2"), None);
    }
}
