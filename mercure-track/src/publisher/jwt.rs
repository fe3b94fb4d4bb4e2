//! Signing tokens of either protocol generation: [`TokenMinter`] signs a token for given
//! grants; [`JwtSigner`] keeps one token for fixed grants, signed again before it expires.

use std::sync::RwLock;
use std::time::{Duration, SystemTime};

use jsonwebtoken::{EncodingKey, Header};
use reqwest::header::HeaderValue;

use super::config::{Algorithm, JwtKey};
use super::error::{ConfigError, TokenError};
use crate::protocol::{Generation, Grants, Matcher, ProtocolVersion, TokenIdentity, TokenRequest};

/// Signs tokens with one key, in one protocol generation, for one issuer and audience.
pub struct TokenMinter {
    key: EncodingKey,
    header: Header,
    generation: &'static dyn Generation,
    identity: TokenIdentity,
    ttl: Option<Duration>,
}

impl std::fmt::Debug for TokenMinter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenMinter")
            .field("algorithm", &self.header.alg)
            .field("protocol", &self.generation.version())
            .field("identity", &self.identity)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl TokenMinter {
    /// A minter. `ttl` is the tokens' lifetime (`None`: the generation's default).
    pub fn new(
        key: &JwtKey,
        algorithm: Algorithm,
        protocol: ProtocolVersion,
        identity: TokenIdentity,
        ttl: Option<Duration>,
    ) -> Result<Self, ConfigError> {
        let (key, alg) = match algorithm {
            Algorithm::Hs256 => (
                EncodingKey::from_secret(key.expose()),
                jsonwebtoken::Algorithm::HS256,
            ),
            Algorithm::Rs256 => (
                EncodingKey::from_rsa_pem(key.expose()).map_err(ConfigError::invalid_key)?,
                jsonwebtoken::Algorithm::RS256,
            ),
        };
        let generation = protocol.generation();
        let mut header = Header::new(alg);
        if let Some(typ) = generation.token_type() {
            header.typ = Some(typ.to_owned());
        }
        Ok(Self {
            key,
            header,
            generation,
            identity,
            ttl: ttl.or_else(|| generation.default_ttl()),
        })
    }

    /// The protocol generation of the tokens.
    pub fn protocol(&self) -> ProtocolVersion {
        self.generation.version()
    }

    /// The tokens' lifetime.
    pub fn ttl(&self) -> Option<Duration> {
        self.ttl
    }

    /// A token for `grants`, issued now (with a fresh `jti` under 1.0).
    pub fn mint(&self, grants: &Grants) -> Result<String, TokenError> {
        self.mint_at(grants, SystemTime::now())
    }

    fn mint_at(&self, grants: &Grants, now: SystemTime) -> Result<String, TokenError> {
        let request = TokenRequest {
            grants,
            identity: &self.identity,
            issued_at: now,
            ttl: self.ttl,
            id: format!("urn:uuid:{}", uuid::Uuid::new_v4()),
        };
        let claims = self.generation.claims(&request)?;
        jsonwebtoken::encode(&self.header, &claims, &self.key)
            .map_err(|error| TokenError::Sign(Box::new(error)))
    }
}

/// One token for fixed grants (a publisher's), reused, and signed again when a tenth of its
/// lifetime (at most a minute) is left.
pub struct JwtSigner {
    minter: TokenMinter,
    grants: Grants,
    cached: RwLock<Option<Cached>>,
}

struct Cached {
    token: String,
    /// `Bearer <token>`, built once per token: each clone shares its bytes.
    authorization: HeaderValue,
    /// When to sign again: `None` for a token without expiry.
    refresh_at: Option<SystemTime>,
}

impl std::fmt::Debug for JwtSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSigner")
            .field("minter", &self.minter)
            .field("grants", &self.grants)
            .finish_non_exhaustive()
    }
}

impl JwtSigner {
    /// A signer of `grants` with `minter`. Signs once now: a bad key, a missing 1.0 issuer or a
    /// lifetime beyond the representable is a configuration error, not a failure at the first
    /// publish.
    pub fn new(minter: TokenMinter, grants: Grants) -> Result<Self, ConfigError> {
        let signer = Self {
            minter,
            grants,
            cached: RwLock::new(None),
        };
        signer.token()?;
        Ok(signer)
    }

    /// A 0.x signer of tokens allowed to publish to `publish` selectors.
    pub fn publisher(
        key: &JwtKey,
        algorithm: Algorithm,
        publish: Vec<String>,
        ttl: Option<Duration>,
    ) -> Result<Self, ConfigError> {
        let grants = Grants::publish(publish.iter().map(|s| Matcher::selector(s)));
        Self::v0(key, algorithm, grants, ttl)
    }

    /// A 0.x signer of tokens allowed to receive private updates of `subscribe` selectors.
    pub fn subscriber(
        key: &JwtKey,
        algorithm: Algorithm,
        subscribe: Vec<String>,
        ttl: Option<Duration>,
    ) -> Result<Self, ConfigError> {
        let grants = Grants::subscribe(subscribe.iter().map(|s| Matcher::selector(s)));
        Self::v0(key, algorithm, grants, ttl)
    }

    fn v0(
        key: &JwtKey,
        algorithm: Algorithm,
        grants: Grants,
        ttl: Option<Duration>,
    ) -> Result<Self, ConfigError> {
        let identity = TokenIdentity::default();
        let minter = TokenMinter::new(key, algorithm, ProtocolVersion::V0, identity, ttl)?;
        Self::new(minter, grants)
    }

    /// The current token, signed again when it is close to expiring.
    pub fn token(&self) -> Result<String, TokenError> {
        self.current(|cached| cached.token.clone())
    }

    /// The current token as an `Authorization` header value (`Bearer <token>`), signed again
    /// when it is close to expiring. Built once per token: no copy per request.
    pub(crate) fn authorization(&self) -> Result<HeaderValue, TokenError> {
        self.current(|cached| cached.authorization.clone())
    }

    /// `read` of the current token, signed again first when it is close to expiring.
    fn current<T>(&self, read: impl Fn(&Cached) -> T) -> Result<T, TokenError> {
        let now = SystemTime::now();
        if let Ok(cached) = self.cached.read()
            && let Some(cached) = cached
                .as_ref()
                .filter(|c| c.refresh_at.is_none_or(|at| now < at))
        {
            return Ok(read(cached));
        }
        let token = self.minter.mint_at(&self.grants, now)?;
        // A JWT is base64url and dots: always a valid header value; a token that is not one
        // is not a JWT.
        let mut authorization = HeaderValue::try_from(format!("Bearer {token}"))
            .map_err(|error| TokenError::Sign(Box::new(error)))?;
        // A secret: shown as `Sensitive` in any `Debug` of the request's headers.
        authorization.set_sensitive(true);
        let refresh_at = self.minter.ttl.map(|ttl| {
            let margin = (ttl / 10).min(Duration::from_secs(60));
            // The token was signed, so `now + ttl` is representable.
            now.checked_add(ttl - margin).unwrap_or(now)
        });
        let fresh = Cached {
            token,
            authorization,
            refresh_at,
        };
        let value = read(&fresh);
        if let Ok(mut cached) = self.cached.write() {
            *cached = Some(fresh);
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use jsonwebtoken::{DecodingKey, Validation};

    use super::*;
    use crate::protocol::inspect::parts;
    use crate::protocol::{ProtocolError, v1};

    fn now_secs() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or_default())
    }

    fn v1_minter(ttl: Option<Duration>) -> Result<TokenMinter, ConfigError> {
        TokenMinter::new(
            &JwtKey::new("k"),
            Algorithm::Hs256,
            ProtocolVersion::V1,
            TokenIdentity {
                issuer: Some("https://app.example".into()),
                audience: Some("https://hub.example/.well-known/mercure".into()),
                ..TokenIdentity::default()
            },
            ttl,
        )
    }

    #[test]
    fn a_0_x_token_without_lifetime_is_signed_once_and_reused() {
        let signer =
            JwtSigner::publisher(&JwtKey::new("k"), Algorithm::Hs256, vec!["*".into()], None)
                .expect("signer");
        let first = signer.token().expect("token");
        assert_eq!(signer.token().expect("token"), first);
        let (header, claims) = parts(&first);
        assert_eq!(header["typ"], "JWT");
        assert_eq!(claims, serde_json::json!({"mercure": {"publish": ["*"]}}));
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
        let now = now_secs();
        let exp = parts(&token).1["exp"].as_i64().unwrap_or_default();
        assert!(
            exp >= now + 3599 && exp <= now + 3601,
            "exp {exp}, now {now}"
        );
        // Reused while fresh.
        assert_eq!(signer.token().expect("token"), token);
        // A minute before expiry, it is due.
        let refresh = signer
            .cached
            .read()
            .ok()
            .and_then(|c| c.as_ref().and_then(|c| c.refresh_at))
            .and_then(|at| at.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or_default());
        assert!(
            (exp - 61..=exp - 59).contains(&refresh),
            "refresh {refresh}, exp {exp}"
        );
    }

    #[test]
    fn the_authorization_header_is_the_current_token_hidden_from_debug() {
        let signer = JwtSigner::publisher(
            &JwtKey::new("k"),
            Algorithm::Hs256,
            vec!["*".into()],
            Some(Duration::from_secs(3600)),
        )
        .expect("signer");
        let header = signer.authorization().expect("header");
        let token = signer.token().expect("token");
        assert_eq!(
            header.to_str().ok(),
            Some(format!("Bearer {token}").as_str())
        );
        assert!(header.is_sensitive());
        assert!(!format!("{header:?}").contains(&token));
        // A stale entry, due for signing again: the header follows the new token.
        if let Ok(mut cached) = signer.cached.write() {
            *cached = Some(Cached {
                token: "stale".to_owned(),
                authorization: HeaderValue::from_static("Bearer stale"),
                refresh_at: Some(UNIX_EPOCH),
            });
        }
        let header = signer.authorization().expect("header");
        let token = signer.token().expect("token");
        assert_ne!(token, "stale");
        assert_eq!(
            header.to_str().ok(),
            Some(format!("Bearer {token}").as_str())
        );
    }

    #[test]
    fn a_1_0_publisher_token_is_an_access_token_a_1_0_hub_accepts() {
        let signer = JwtSigner::new(
            v1_minter(Some(Duration::from_secs(120))).expect("minter"),
            Grants::publish([Matcher::Any]),
        )
        .expect("signer");
        let token = signer.token().expect("token");
        let (header, claims) = parts(&token);
        assert_eq!(header["typ"], "at+jwt");
        assert_eq!(header["alg"], "HS256");
        assert!(v1::is_access_token_type(header["typ"].as_str()));
        let now = now_secs();
        assert_eq!(claims["iss"], "https://app.example");
        assert_eq!(claims["aud"], "https://hub.example/.well-known/mercure");
        assert_eq!(claims["client_id"], "https://app.example");
        assert_eq!(claims["sub"], "https://app.example");
        let iat = claims["iat"].as_i64().unwrap_or_default();
        assert!((now - 1..=now).contains(&iat), "iat {iat}, now {now}");
        assert_eq!(claims["exp"].as_i64(), Some(iat + 120));
        assert!(
            claims["jti"]
                .as_str()
                .is_some_and(|jti| jti.starts_with("urn:uuid:") && jti.len() == 45),
            "{claims}"
        );
        assert_eq!(
            claims["authorization_details"],
            serde_json::json!([{
                "type": "https://mercure.rocks/authorization-detail",
                "actions": ["publish"],
                "topics": [{"match": "*", "match_type": "exact"}],
            }])
        );
        assert!(claims.get("mercure").is_none());

        // Verified as a hub would: signature, audience, required expiry, issuer.
        let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "aud", "iss"]);
        validation.set_audience(&["https://hub.example/.well-known/mercure"]);
        validation.set_issuer(&["https://app.example"]);
        let decoded = jsonwebtoken::decode::<v1::Claims>(
            &token,
            &DecodingKey::from_secret(b"k"),
            &validation,
        )
        .expect("a 1.0 hub's checks pass");
        assert_eq!(decoded.header.typ.as_deref(), Some("at+jwt"));
        let grants = decoded.claims.grants().expect("valid details");
        assert_eq!(grants.publish, [Matcher::Any]);
        // Another audience is refused.
        validation.set_audience(&["https://other.example/.well-known/mercure"]);
        assert!(
            jsonwebtoken::decode::<v1::Claims>(
                &token,
                &DecodingKey::from_secret(b"k"),
                &validation
            )
            .is_err()
        );
    }

    #[test]
    fn a_1_0_token_is_renewed_before_it_expires_with_a_new_id() {
        // One hour by default; a new token (new jti) once due.
        let minter = v1_minter(None).expect("minter");
        assert_eq!(minter.ttl(), Some(v1::DEFAULT_TTL));
        let signer = JwtSigner::new(minter, Grants::publish([Matcher::Any])).expect("signer");
        let first = signer.token().expect("token");
        assert_eq!(signer.token().expect("token"), first);
        if let Ok(mut cached) = signer.cached.write()
            && let Some(cached) = cached.as_mut()
        {
            cached.refresh_at = Some(SystemTime::now());
        }
        let renewed = signer.token().expect("token");
        assert_ne!(parts(&renewed).1["jti"], parts(&first).1["jti"]);
        assert!(parts(&renewed).1["exp"].as_i64() >= parts(&first).1["exp"].as_i64());
    }

    #[test]
    fn a_huge_lifetime_is_a_configuration_error_not_a_panic() {
        for ttl in [
            Duration::MAX,
            Duration::from_secs(u64::MAX / 2),
            Duration::from_secs(1 << 40),
        ] {
            let v0 = JwtSigner::publisher(
                &JwtKey::new("k"),
                Algorithm::Hs256,
                vec!["*".into()],
                Some(ttl),
            );
            assert!(
                matches!(
                    v0,
                    Err(ConfigError::Token(ProtocolError::LifetimeTooLong { .. }))
                ),
                "{v0:?}"
            );
            let v1 = v1_minter(Some(ttl))
                .and_then(|m| JwtSigner::new(m, Grants::publish([Matcher::Any])));
            assert!(matches!(v1, Err(ConfigError::Token(_))), "{v1:?}");
        }
    }

    #[test]
    fn a_1_0_token_without_issuer_is_a_configuration_error() {
        let minter = TokenMinter::new(
            &JwtKey::new("k"),
            Algorithm::Hs256,
            ProtocolVersion::V1,
            TokenIdentity::default(),
            None,
        )
        .expect("minter");
        assert!(matches!(
            JwtSigner::new(minter, Grants::publish([Matcher::Any])),
            Err(ConfigError::Token(ProtocolError::MissingIssuer))
        ));
    }
}
