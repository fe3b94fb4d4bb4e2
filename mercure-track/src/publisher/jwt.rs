//! The publisher's JWT: signed once, reused, signed again before it expires.

use std::sync::RwLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header};

use super::config::{Algorithm, JwtKey};
use super::error::ConfigError;
use crate::wire::{Claims, MercureClaim};

/// Signs Mercure JWTs with a fixed key and claim, caching the token.
pub struct JwtSigner {
    key: EncodingKey,
    header: Header,
    publish: Option<Vec<String>>,
    subscribe: Option<Vec<String>>,
    ttl: Option<Duration>,
    cached: RwLock<Option<Cached>>,
}

#[derive(Clone)]
struct Cached {
    token: String,
    /// When to sign again: `None` for a token without expiry.
    refresh_at: Option<SystemTime>,
}

impl std::fmt::Debug for JwtSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSigner")
            .field("algorithm", &self.header.alg)
            .field("publish", &self.publish)
            .field("subscribe", &self.subscribe)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl JwtSigner {
    /// A signer of tokens allowed to publish to `publish` selectors.
    pub fn publisher(
        key: &JwtKey,
        algorithm: Algorithm,
        publish: Vec<String>,
        ttl: Option<Duration>,
    ) -> Result<Self, ConfigError> {
        Self::new(key, algorithm, Some(publish), None, ttl)
    }

    /// A signer of tokens allowed to receive private updates of `subscribe` selectors.
    pub fn subscriber(
        key: &JwtKey,
        algorithm: Algorithm,
        subscribe: Vec<String>,
        ttl: Option<Duration>,
    ) -> Result<Self, ConfigError> {
        Self::new(key, algorithm, None, Some(subscribe), ttl)
    }

    fn new(
        key: &JwtKey,
        algorithm: Algorithm,
        publish: Option<Vec<String>>,
        subscribe: Option<Vec<String>>,
        ttl: Option<Duration>,
    ) -> Result<Self, ConfigError> {
        let (key, alg) = match algorithm {
            Algorithm::Hs256 => (
                EncodingKey::from_secret(key.expose()),
                jsonwebtoken::Algorithm::HS256,
            ),
            Algorithm::Rs256 => (
                EncodingKey::from_rsa_pem(key.expose()).map_err(ConfigError::InvalidKey)?,
                jsonwebtoken::Algorithm::RS256,
            ),
        };
        let signer = Self {
            key,
            header: Header::new(alg),
            publish,
            subscribe,
            ttl,
            cached: RwLock::new(None),
        };
        // Sign once now: a bad key is a configuration error, not a failure at first publish.
        signer.token().map_err(ConfigError::InvalidKey)?;
        Ok(signer)
    }

    /// The current token, signed again when it is close to expiring.
    pub fn token(&self) -> Result<String, jsonwebtoken::errors::Error> {
        let now = SystemTime::now();
        if let Ok(cached) = self.cached.read()
            && let Some(cached) = cached
                .as_ref()
                .filter(|c| c.refresh_at.is_none_or(|at| now < at))
        {
            return Ok(cached.token.clone());
        }
        let exp = self.ttl.map(|ttl| now + ttl);
        let claims = Claims {
            mercure: MercureClaim {
                publish: self.publish.clone(),
                subscribe: self.subscribe.clone(),
            },
            exp: exp.map(|exp| exp.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())),
        };
        let token = jsonwebtoken::encode(&self.header, &claims, &self.key)?;
        // Sign again when a tenth of the lifetime (at most a minute) is left.
        let refresh_at = self
            .ttl
            .map(|ttl| now + ttl - (ttl / 10).min(Duration::from_secs(60)));
        if let Ok(mut cached) = self.cached.write() {
            *cached = Some(Cached {
                token: token.clone(),
                refresh_at,
            });
        }
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims_of(token: &str) -> serde_json::Value {
        let payload = token.split('.').nth(1).unwrap_or_default();
        let bytes = base64_url_decode(payload);
        serde_json::from_slice(&bytes).unwrap_or_default()
    }

    // A small decoder: the JWT payload is unpadded base64url.
    fn base64_url_decode(input: &str) -> Vec<u8> {
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

    #[test]
    fn a_token_without_lifetime_is_signed_once_and_reused() {
        let signer =
            JwtSigner::publisher(&JwtKey::new("k"), Algorithm::Hs256, vec!["*".into()], None)
                .expect("signer");
        let first = signer.token().expect("token");
        assert_eq!(signer.token().expect("token"), first);
        let claims = claims_of(&first);
        assert_eq!(claims["mercure"]["publish"], serde_json::json!(["*"]));
        assert!(claims.get("exp").is_none());
    }

    #[test]
    fn a_token_with_lifetime_carries_its_expiry_and_is_signed_again_when_due() {
        let ttl = Duration::from_secs(3600);
        let signer = JwtSigner::publisher(
            &JwtKey::new("k"),
            Algorithm::Hs256,
            vec!["*".into()],
            Some(ttl),
        )
        .expect("signer");
        let token = signer.token().expect("token");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let exp = claims_of(&token)["exp"].as_u64().unwrap_or_default();
        assert!(
            exp >= now + 3500 && exp <= now + 3601,
            "exp {exp}, now {now}"
        );
        // Reused while fresh.
        assert_eq!(signer.token().expect("token"), token);
        // Once due, a new one is signed (with a lifetime of zero, every call is due).
        let due = JwtSigner::publisher(
            &JwtKey::new("k"),
            Algorithm::Hs256,
            vec!["*".into()],
            Some(Duration::ZERO),
        )
        .expect("signer");
        let cached_refresh = due
            .cached
            .read()
            .ok()
            .and_then(|c| c.as_ref().and_then(|c| c.refresh_at));
        assert!(cached_refresh.is_some_and(|at| at <= SystemTime::now()));
    }
}
