//! Token presentation and verification of the development hub, following the reference hub:
//! v0.24.2 for 0.x (`authorization.go`, `jwtkeyfunc.go`, golang-jwt v5 defaults), the 1.0 line
//! for access tokens (RFC 9068). The claims are decoded with the types of
//! [`crate::protocol::v0`] and [`crate::protocol::v1`].

use std::time::{Duration, SystemTime};

use axum::http::header::{AUTHORIZATION, COOKIE, ORIGIN, REFERER};
use axum::http::{HeaderMap, Method};
use jsonwebtoken::{DecodingKey, Validation};
use serde::Deserialize;

use super::form::Form;
use crate::protocol::{Grants, NumericDate, ProtocolVersion, v0, v1};
use crate::publisher::{Algorithm, ConfigError, JwtKey};

/// Most selectors a `mercure.publish` or `mercure.subscribe` claim may hold
/// (`maxClaimMatchers` in the reference's `publish.go`).
pub(crate) const MAX_CLAIM_SELECTORS: usize = 1000;

/// Why a request's token was refused (all answered 401 in protocol 0.x; 1.0's answers are in
/// [`super::rules::Rules::refuse_auth`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthError {
    /// Several `Authorization` headers, or one that is not `Bearer` and long enough.
    MalformedHeader,
    /// Several `authorization` query parameters, or one too short.
    MalformedQuery,
    /// A cookie on a POST without `Origin` or `Referer`.
    NoOrigin,
    /// A cookie on a POST from an origin not allowed to publish.
    OriginNotAllowed,
    /// Bad signature, algorithm, claims, expiry or not-before.
    InvalidToken,
}

/// What the hub reads from a verified token.
#[derive(Debug, Clone)]
pub(crate) struct Verified {
    /// What the token allows.
    pub(crate) grants: Grants,
    /// Whether it has a publish claim at all (0.x refuses a token without `mercure.publish`
    /// with 401 before reading the form).
    pub(crate) publish_claimed: bool,
    /// Expiry, when the token has one.
    pub(crate) expires_at: Option<SystemTime>,
}

/// The registered claims golang-jwt's `RegisteredClaims` decodes besides the dates: one of the
/// wrong JSON type makes the token invalid. Only their types are checked in 0.x.
#[derive(Deserialize)]
#[allow(dead_code)]
struct RegisteredTypes {
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    aud: Option<v1::Audience>,
    #[serde(default)]
    jti: Option<String>,
}

/// Verifies tokens signed with one key.
pub(crate) struct Verifier {
    key: DecodingKey,
    validation: Validation,
    leeway: Duration,
    version: ProtocolVersion,
    /// The trusted issuer of 1.0 tokens (`None`: any issuer, but one is required).
    issuer: Option<String>,
}

impl Verifier {
    /// A verifier for `key`: the shared secret (HS256) or the PEM public key (RS256);
    /// `leeway` is the clock skew tolerated on `exp` and `nbf` (zero in the reference).
    pub(crate) fn new(
        key: &JwtKey,
        algorithm: Algorithm,
        leeway: Duration,
        version: ProtocolVersion,
        issuer: Option<String>,
    ) -> Result<Self, ConfigError> {
        let (key, alg) = match algorithm {
            Algorithm::Hs256 => (
                DecodingKey::from_secret(key.expose()),
                jsonwebtoken::Algorithm::HS256,
            ),
            Algorithm::Rs256 => (
                DecodingKey::from_rsa_pem(key.expose()).map_err(ConfigError::invalid_key)?,
                jsonwebtoken::Algorithm::RS256,
            ),
        };
        // Only the signature and the algorithm are checked by the library; the time claims
        // are checked below with golang-jwt's rules (fractional dates, zero leeway).
        let mut validation = Validation::new(alg);
        validation.required_spec_claims.clear();
        validation.validate_aud = false;
        validation.validate_exp = false;
        validation.validate_nbf = false;
        Ok(Self {
            key,
            validation,
            leeway,
            version,
            issuer,
        })
    }

    /// The grants of a valid token of the hub's generation; `resource` is the audience 1.0
    /// tokens must name.
    pub(crate) fn verify(&self, token: &str, resource: &str) -> Result<Verified, AuthError> {
        match self.version {
            ProtocolVersion::V1 => self.verify_v1(token, resource),
            _ => self.verify_v0(token),
        }
    }

    /// Expiry and not-before with golang-jwt's rules: dates read to the second (fractions
    /// dropped); valid while now < exp + leeway, and from nbf - leeway on. Returns the expiry.
    fn check_dates(
        &self,
        exp: Option<NumericDate>,
        nbf: Option<NumericDate>,
    ) -> Result<Option<SystemTime>, AuthError> {
        let now = SystemTime::now();
        let exp = exp.map(|exp| NumericDate::from_secs(exp.secs()));
        if exp.is_some_and(|exp| exp.has_passed(now, self.leeway)) {
            return Err(AuthError::InvalidToken);
        }
        if let Some(nbf) = nbf {
            let not_before = NumericDate::from_secs(nbf.secs());
            let early = match now.checked_add(self.leeway) {
                Some(later) => !not_before.has_passed(later, Duration::ZERO),
                None => false,
            };
            if early {
                return Err(AuthError::InvalidToken);
            }
        }
        // Beyond what a system time holds: never.
        Ok(exp.and_then(NumericDate::to_system_time))
    }

    /// A 1.0 access token (RFC 9068): `typ: at+jwt`, a trusted `iss`, the hub's resource in
    /// `aud`, a required `exp`, and well-formed Mercure authorization details (RFC 9396).
    fn verify_v1(&self, token: &str, resource: &str) -> Result<Verified, AuthError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::InvalidToken)?;
        if !v1::is_access_token_type(header.typ.as_deref()) {
            return Err(AuthError::InvalidToken);
        }
        let mut validation = self.validation.clone();
        validation.validate_aud = false;
        let claims = jsonwebtoken::decode::<v1::Claims>(token, &self.key, &validation)
            .map_err(|_| AuthError::InvalidToken)?
            .claims;
        let issuer_ok = match (&claims.iss, &self.issuer) {
            (Some(iss), Some(trusted)) => iss == trusted,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if !issuer_ok
            || claims.exp.is_none()
            || !claims
                .aud
                .as_ref()
                .is_some_and(|aud| aud.contains(resource))
        {
            return Err(AuthError::InvalidToken);
        }
        let expires_at = self.check_dates(claims.exp, claims.nbf)?;
        let grants = claims.grants().map_err(|_| AuthError::InvalidToken)?;
        if grants.publish.len() > MAX_CLAIM_SELECTORS
            || grants.subscribe.len() > MAX_CLAIM_SELECTORS
        {
            return Err(AuthError::InvalidToken);
        }
        Ok(Verified {
            publish_claimed: true,
            grants,
            expires_at,
        })
    }

    /// A 0.x token: any `typ`, the `mercure` claim (or the namespaced one, which wins).
    fn verify_v0(&self, token: &str) -> Result<Verified, AuthError> {
        let claims = jsonwebtoken::decode::<serde_json::Value>(token, &self.key, &self.validation)
            .map_err(|_| AuthError::InvalidToken)?
            .claims;
        RegisteredTypes::deserialize(&claims).map_err(|_| AuthError::InvalidToken)?;
        let claims = v0::Claims::deserialize(&claims).map_err(|_| AuthError::InvalidToken)?;
        let expires_at = self.check_dates(claims.exp, claims.nbf)?;
        let too_many = |selectors: &Option<Vec<String>>| {
            selectors
                .as_ref()
                .is_some_and(|s| s.len() > MAX_CLAIM_SELECTORS)
        };
        if too_many(&claims.mercure.publish) || too_many(&claims.mercure.subscribe) {
            return Err(AuthError::InvalidToken);
        }
        Ok(Verified {
            grants: claims.grants(),
            publish_claimed: claims.mercure.publish.is_some(),
            expires_at,
        })
    }
}

/// Origins allowed to publish with the cookie.
#[derive(Debug, Clone, Default)]
pub(crate) struct PublishOrigins(Vec<String>);

impl PublishOrigins {
    pub(crate) fn new(origins: &[String]) -> Self {
        Self(origins.to_vec())
    }

    /// `*` allows every origin; an entry with one `*` is a prefix/suffix wildcard.
    fn allows(&self, origin: &str) -> bool {
        self.0.iter().any(|allowed| {
            if allowed == "*" || allowed == origin {
                return true;
            }
            match allowed.split_once('*') {
                Some((prefix, suffix)) => {
                    origin.len() >= prefix.len() + suffix.len()
                        && origin.starts_with(prefix)
                        && origin.ends_with(suffix)
                }
                None => false,
            }
        })
    }
}

/// The token a request presents, in the reference's order: the `Authorization` header (one,
/// `Bearer ` and at least 48 bytes), else the `authorization` query parameter (0.x only: one,
/// at least 41 bytes), else the cookie (on POST only from an allowed `Origin`, or `Referer`
/// when there is no `Origin`). `Ok(None)`: anonymous.
pub(crate) fn presented_token(
    method: &Method,
    headers: &HeaderMap,
    query: Option<&Form>,
    cookie_name: &str,
    origins: &PublishOrigins,
) -> Result<Option<String>, AuthError> {
    let mut authorization = headers.get_all(AUTHORIZATION).iter();
    if let Some(first) = authorization.next() {
        let value = first.as_bytes();
        if authorization.next().is_some() || value.len() < 48 || !value.starts_with(b"Bearer ") {
            return Err(AuthError::MalformedHeader);
        }
        return Ok(Some(String::from_utf8_lossy(&value[7..]).into_owned()));
    }
    if let Some(query) = query.filter(|q| q.has("authorization")) {
        let values = query.all("authorization");
        if values.len() != 1 || values[0].len() < 41 {
            return Err(AuthError::MalformedQuery);
        }
        return Ok(values.into_iter().next());
    }
    let Some(cookie) = cookie(headers, cookie_name) else {
        return Ok(None);
    };
    // Safe methods cannot be forged by another site.
    if method != Method::POST {
        return Ok(Some(cookie));
    }
    let origin = match headers.get(ORIGIN).and_then(|v| v.to_str().ok()) {
        Some(origin) if !origin.is_empty() => origin.to_owned(),
        _ => {
            let referer = headers
                .get(REFERER)
                .and_then(|v| v.to_str().ok())
                .filter(|r| !r.is_empty())
                .ok_or(AuthError::NoOrigin)?;
            let url = url::Url::parse(referer).map_err(|_| AuthError::OriginNotAllowed)?;
            let host = url.host_str().unwrap_or_default();
            match url.port() {
                Some(port) => format!("{}://{host}:{port}", url.scheme()),
                None => format!("{}://{host}", url.scheme()),
            }
        }
    };
    if origins.allows(&origin) {
        Ok(Some(cookie))
    } else {
        Err(AuthError::OriginNotAllowed)
    }
}

/// The first cookie named `name`.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|header| header.to_str().ok())
        .flat_map(|cookies| cookies.split(';'))
        .filter_map(|cookie| cookie.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"').to_owned())
}
