//! Protocol 0.x as the reference hub's stable line (v0.24) speaks it.
//!
//! - tokens: any JWT (`typ` unchecked) whose `mercure` claim lists selector strings under
//!   `publish` and `subscribe` (the reference also reads the claim under the namespaced key
//!   `https://mercure.rocks/`, which then wins); `exp` optional;
//! - selectors: `*`, an exact topic, or a URI template (RFC 6570) that also matches itself
//!   exactly;
//! - subscribe: `topic=<selector>` repeated, `lastEventID=<id>` to resume;
//! - cookie: `mercureAuthorization`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{
    Claims as AnyClaims, Generation, Grants, Matcher, NumericDate, ProtocolError, ProtocolVersion,
    TokenRequest, unsupported,
};

/// The cookie a subscriber's token travels in.
pub const COOKIE: &str = "mercureAuthorization";

/// The subscribe query parameter of a selector.
pub const TOPIC_PARAM: &str = "topic";

/// The subscribe query parameter of the id to resume after.
pub const LAST_EVENT_ID_PARAM: &str = "lastEventID";

/// The namespaced key the reference hub also reads the claim under.
pub const NAMESPACED_CLAIM: &str = "https://mercure.rocks/";

/// Protocol 0.x.
#[derive(Debug, Clone, Copy, Default)]
pub struct V0;

/// The `mercure` claim of a 0.x JWT.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MercureClaim {
    /// Selectors the bearer may publish to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<Vec<String>>,
    /// Selectors the bearer may receive private updates of.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribe: Option<Vec<String>>,
    /// Data about the subscriber, shown in subscription events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Value>,
}

/// The claims of a 0.x JWT. Decoding reads the namespaced claim too, as the reference does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "RawClaims")]
pub struct Claims {
    /// The Mercure authorization.
    pub mercure: MercureClaim,
    /// Expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<NumericDate>,
    /// Not before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<NumericDate>,
    /// Issued at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<NumericDate>,
}

#[derive(Deserialize)]
struct RawClaims {
    #[serde(default)]
    mercure: Option<MercureClaim>,
    #[serde(default, rename = "https://mercure.rocks/")]
    namespaced: Option<MercureClaim>,
    #[serde(default)]
    exp: Option<NumericDate>,
    #[serde(default)]
    nbf: Option<NumericDate>,
    #[serde(default)]
    iat: Option<NumericDate>,
}

impl From<RawClaims> for Claims {
    fn from(raw: RawClaims) -> Self {
        Self {
            mercure: raw.namespaced.or(raw.mercure).unwrap_or_default(),
            exp: raw.exp,
            nbf: raw.nbf,
            iat: raw.iat,
        }
    }
}

impl Claims {
    /// What the token allows, its selectors read as matchers.
    pub fn grants(&self) -> Grants {
        let read = |selectors: &Option<Vec<String>>| {
            selectors
                .iter()
                .flatten()
                .map(|s| Matcher::selector(s))
                .collect()
        };
        Grants {
            publish: read(&self.mercure.publish),
            subscribe: read(&self.mercure.subscribe),
            payload: self.mercure.payload.clone(),
        }
    }
}

/// The selector string of a matcher.
fn selector(matcher: &Matcher) -> Result<String, ProtocolError> {
    match matcher {
        Matcher::Any => Ok("*".to_owned()),
        Matcher::Exact(p) | Matcher::Template(p) if p.is_empty() => {
            Err(ProtocolError::EmptyMatcher)
        }
        Matcher::Exact(p) | Matcher::Template(p) => Ok(p.clone()),
        Matcher::UrlPattern(_) => Err(unsupported(matcher, ProtocolVersion::V0)),
    }
}

fn selectors(matchers: &[Matcher]) -> Result<Option<Vec<String>>, ProtocolError> {
    if matchers.is_empty() {
        return Ok(None);
    }
    matchers
        .iter()
        .map(selector)
        .collect::<Result<_, _>>()
        .map(Some)
}

impl Generation for V0 {
    fn version(&self) -> ProtocolVersion {
        ProtocolVersion::V0
    }

    fn token_type(&self) -> Option<&'static str> {
        None
    }

    fn default_ttl(&self) -> Option<Duration> {
        None
    }

    fn claims(&self, request: &TokenRequest<'_>) -> Result<AnyClaims, ProtocolError> {
        Ok(AnyClaims::V0(Claims {
            mercure: MercureClaim {
                publish: selectors(&request.grants.publish)?,
                subscribe: selectors(&request.grants.subscribe)?,
                payload: request.grants.payload.clone(),
            },
            exp: request.expires_at()?,
            nbf: None,
            iat: None,
        }))
    }

    fn cookie_name(&self, _secure: bool) -> &'static str {
        COOKIE
    }

    fn subscribe_params(
        &self,
        matchers: &[Matcher],
    ) -> Result<Vec<(&'static str, String)>, ProtocolError> {
        matchers
            .iter()
            .map(|m| selector(m).map(|s| (TOPIC_PARAM, s)))
            .collect()
    }

    fn parse_subscribe_param(
        &self,
        name: &str,
        value: &str,
    ) -> Option<Result<Matcher, ProtocolError>> {
        (name == TOPIC_PARAM).then(|| {
            if value.is_empty() {
                Err(ProtocolError::EmptyMatcher)
            } else {
                Ok(Matcher::selector(value))
            }
        })
    }

    fn last_event_id_param(&self) -> &'static str {
        LAST_EVENT_ID_PARAM
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;
    use crate::protocol::TokenIdentity;

    fn encode(grants: &Grants, ttl: Option<Duration>) -> serde_json::Value {
        let identity = TokenIdentity::default();
        let request = TokenRequest {
            grants,
            identity: &identity,
            issued_at: SystemTime::now(),
            ttl,
            id: "unused".into(),
        };
        V0.claims(&request)
            .ok()
            .and_then(|claims| serde_json::to_value(claims).ok())
            .unwrap_or_default()
    }

    #[test]
    fn claims_are_the_mercure_claim_with_only_what_is_set() {
        assert_eq!(
            encode(&Grants::publish([Matcher::Any]), None),
            serde_json::json!({"mercure": {"publish": ["*"]}})
        );
        let subscriber = encode(
            &Grants::subscribe([Matcher::exact("orders/a"), Matcher::selector("orders/{id}")]),
            Some(Duration::from_secs(60)),
        );
        assert_eq!(
            subscriber["mercure"],
            serde_json::json!({"subscribe": ["orders/a", "orders/{id}"]})
        );
        assert!(subscriber["exp"].as_i64().is_some());
        let identity = TokenIdentity::default();
        let grants = Grants::subscribe([Matcher::UrlPattern("/o/:id".into())]);
        let request = TokenRequest {
            grants: &grants,
            identity: &identity,
            issued_at: SystemTime::now(),
            ttl: None,
            id: String::new(),
        };
        assert!(matches!(
            V0.claims(&request),
            Err(ProtocolError::UnsupportedMatcher { .. })
        ));
    }

    #[test]
    fn decoding_reads_the_namespaced_claim_and_fractional_dates() {
        let claims: Claims = serde_json::from_str(
            r#"{"mercure":{"publish":["a"]},"https://mercure.rocks/":{"publish":["b"]},"exp":1.5}"#,
        )
        .expect("claims");
        assert_eq!(claims.mercure.publish, Some(vec!["b".to_owned()]));
        assert_eq!(claims.exp.map(NumericDate::secs), Some(1));
        let grants = claims.grants();
        assert_eq!(grants.publish, [Matcher::exact("b")]);
        let none: Claims = serde_json::from_str("{}").expect("empty");
        assert_eq!(none.grants(), Grants::default());
    }

    #[test]
    fn subscribe_query_uses_topic() {
        assert_eq!(
            V0.subscribe_params(&[Matcher::exact("orders/a"), Matcher::Any]),
            Ok(vec![
                ("topic", "orders/a".to_owned()),
                ("topic", "*".to_owned())
            ])
        );
        assert_eq!(
            V0.parse_subscribe_param("topic", "orders/{id}"),
            Some(Ok(Matcher::Template("orders/{id}".into())))
        );
        assert_eq!(V0.parse_subscribe_param("match", "x"), None);
        assert_eq!(V0.last_event_id_param(), "lastEventID");
        assert_eq!(V0.cookie_name(true), "mercureAuthorization");
    }
}
