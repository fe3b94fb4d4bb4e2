//! JWT verification of the development hub.

use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, COOKIE};
use jsonwebtoken::{DecodingKey, Validation};

use crate::protocol::v0::{COOKIE as AUTHORIZATION_COOKIE, Claims};
use crate::publisher::{Algorithm, ConfigError, JwtKey};

/// Verifies tokens signed with one key.
pub(crate) struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

impl Verifier {
    /// A verifier for `key`: the shared secret (HS256) or the PEM public key (RS256).
    pub(crate) fn new(key: &JwtKey, algorithm: Algorithm) -> Result<Self, ConfigError> {
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
        let mut validation = Validation::new(alg);
        // Mercure tokens often carry no expiry; when they do, it is checked.
        validation.required_spec_claims.clear();
        validation.validate_aud = false;
        Ok(Self { key, validation })
    }

    /// The claims of a valid token.
    pub(crate) fn verify(&self, token: &str) -> Option<Claims> {
        jsonwebtoken::decode::<Claims>(token, &self.key, &self.validation)
            .ok()
            .map(|data| data.claims)
    }
}

/// The token of a request: the `Authorization: Bearer` header, else the
/// `mercureAuthorization` cookie. `Err` when a header is present but malformed.
pub(crate) fn token(headers: &HeaderMap) -> Result<Option<String>, ()> {
    if let Some(value) = headers.get(AUTHORIZATION) {
        let value = value.to_str().map_err(|_| ())?;
        let token = value.strip_prefix("Bearer ").ok_or(())?;
        return Ok(Some(token.trim().to_owned()));
    }
    for header in headers.get_all(COOKIE) {
        let Ok(cookies) = header.to_str() else {
            continue;
        };
        for cookie in cookies.split(';') {
            if let Some((name, value)) = cookie.trim().split_once('=')
                && name == AUTHORIZATION_COOKIE
            {
                return Ok(Some(value.to_owned()));
            }
        }
    }
    Ok(None)
}
