//! Protocol 1.0 as the reference hub's next line (v1.0.0-alpha) speaks it.
//!
//! - tokens: OAuth 2.0 JWT access tokens (RFC 9068): header `typ: at+jwt`; claims `iss` (one of
//!   the hub's trusted issuers), `aud` (the hub's resource identifier, a string or an array),
//!   `exp` (required), and, as RFC 9068 asks of issuers, `sub`, `client_id`, `iat`, `jti`; the
//!   grants are an `authorization_details` array (RFC 9396) of
//!   `{"type": "https://mercure.rocks/authorization-detail", "actions": [...], "topics":
//!   [{"match": ..., "match_type": "exact" | "urlpattern"}]}` entries; entries of other types
//!   are ignored, unknown actions grant nothing, one malformed Mercure entry (a bare-string
//!   topic, no actions, no topics, an empty or unknown matcher) invalidates the token;
//! - matchers: `exact` (the reserved `*` is every topic) and `urlpattern` (WHATWG URL Pattern);
//! - subscribe: `match=` (alias `match_exact=`) and `match_urlpattern=`; any other name under
//!   the `match` prefix, and the old `topic=`, is an error; `last_event_id=` to resume;
//! - cookie: `__Secure-mercure_access_token` (browsers accept it over HTTPS only; over plain
//!   HTTP, for development, the prefix-less `mercure_access_token`, which the hub must be
//!   configured to read).

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{
    Claims as AnyClaims, Generation, Grants, Matcher, NumericDate, ProtocolError, ProtocolVersion,
    TokenRequest, unsupported,
};

/// The `typ` header of an access token.
pub const TOKEN_TYPE: &str = "at+jwt";

/// The RFC 9396 authorization detail type of Mercure.
pub const AUTHORIZATION_DETAIL_TYPE: &str = "https://mercure.rocks/authorization-detail";

/// The cookie a subscriber's token travels in, over HTTPS.
pub const COOKIE: &str = "__Secure-mercure_access_token";

/// The cookie name for hubs reached over plain HTTP (development), where browsers refuse the
/// `__Secure-` prefix.
pub const INSECURE_COOKIE: &str = "mercure_access_token";

/// The subscribe query parameter of an exact matcher.
pub const MATCH_PARAM: &str = "match";

/// The explicit spelling of [`MATCH_PARAM`].
pub const MATCH_EXACT_PARAM: &str = "match_exact";

/// The subscribe query parameter of a URL Pattern matcher.
pub const MATCH_URLPATTERN_PARAM: &str = "match_urlpattern";

/// The subscribe query parameter of the id to resume after.
pub const LAST_EVENT_ID_PARAM: &str = "last_event_id";

/// The token lifetime when none is configured: one hour, as the reference's token command.
pub const DEFAULT_TTL: Duration = Duration::from_secs(3600);

/// Protocol 1.0.
#[derive(Debug, Clone, Copy, Default)]
pub struct V1;

/// Whether a JWT `typ` header names an access token (`at+jwt`, case-insensitive, with or
/// without the `application/` prefix).
pub fn is_access_token_type(typ: Option<&str>) -> bool {
    let Some(typ) = typ else { return false };
    let bare = match typ.get(..12) {
        Some(prefix) if prefix.eq_ignore_ascii_case("application/") => &typ[12..],
        _ => typ,
    };
    bare.eq_ignore_ascii_case(TOKEN_TYPE)
}

/// The `aud` claim: one identifier or several.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    /// One resource identifier.
    One(String),
    /// Several.
    Many(Vec<String>),
}

impl Audience {
    /// Whether `resource` is one of the audiences.
    pub fn contains(&self, resource: &str) -> bool {
        match self {
            Self::One(one) => one == resource,
            Self::Many(many) => many.iter().any(|a| a == resource),
        }
    }
}

/// An action of a Mercure authorization detail.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Action {
    /// `publish`.
    Publish,
    /// `subscribe`.
    Subscribe,
    /// An action of a later specification: grants nothing, invalidates nothing.
    Other(String),
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(match self {
            Self::Publish => "publish",
            Self::Subscribe => "subscribe",
            Self::Other(other) => other,
        })
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match String::deserialize(deserializer)?.as_str() {
            "publish" => Self::Publish,
            "subscribe" => Self::Subscribe,
            other => Self::Other(other.to_owned()),
        })
    }
}

/// The `match_type` of a topic matcher (case-sensitive; default `exact`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum MatchType {
    /// Byte-for-byte comparison; `*` matches every topic.
    #[default]
    #[serde(rename = "exact")]
    Exact,
    /// WHATWG URL Pattern.
    #[serde(rename = "urlpattern")]
    UrlPattern,
}

/// One entry of a Mercure detail's `topics`: always an object with a `match`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicMatcher {
    /// The pattern.
    #[serde(rename = "match")]
    pub pattern: String,
    /// How it matches.
    pub match_type: MatchType,
}

impl<'de> Deserialize<'de> for TopicMatcher {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Only the object form: a bare string (the 0.x claim shape) or an array is refused.
        #[derive(Deserialize)]
        struct Object {
            #[serde(rename = "match")]
            pattern: String,
            #[serde(default)]
            match_type: MatchType,
        }
        let value = serde_json::Map::deserialize(deserializer)?;
        let object: Object = serde_json::from_value(serde_json::Value::Object(value))
            .map_err(serde::de::Error::custom)?;
        Ok(Self {
            pattern: object.pattern,
            match_type: object.match_type,
        })
    }
}

impl TopicMatcher {
    /// The matcher.
    pub fn to_matcher(&self) -> Matcher {
        match (self.match_type, self.pattern.as_str()) {
            (_, "*") => Matcher::Any,
            (MatchType::Exact, p) => Matcher::Exact(p.to_owned()),
            (MatchType::UrlPattern, p) => Matcher::UrlPattern(p.to_owned()),
        }
    }

    fn from_matcher(matcher: &Matcher) -> Result<Self, ProtocolError> {
        let (pattern, match_type) = match matcher {
            Matcher::Any => ("*", MatchType::Exact),
            Matcher::Exact(p) => (p.as_str(), MatchType::Exact),
            Matcher::UrlPattern(p) => (p.as_str(), MatchType::UrlPattern),
            Matcher::Template(_) => return Err(unsupported(matcher, ProtocolVersion::V1)),
        };
        if pattern.is_empty() {
            return Err(ProtocolError::EmptyMatcher);
        }
        Ok(Self {
            pattern: pattern.to_owned(),
            match_type,
        })
    }
}

/// A Mercure authorization detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MercureDetail {
    /// What the detail allows.
    pub actions: Vec<Action>,
    /// On which topics.
    pub topics: Vec<TopicMatcher>,
    /// Data about the subscriber (subscribe details only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<serde_json::Value>,
}

/// An entry of `authorization_details`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizationDetail {
    /// A detail of type [`AUTHORIZATION_DETAIL_TYPE`].
    Mercure(MercureDetail),
    /// A detail of another type, for another resource: kept as is, ignored.
    Other(serde_json::Value),
}

impl Serialize for AuthorizationDetail {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Typed<'a> {
            #[serde(rename = "type")]
            kind: &'static str,
            #[serde(flatten)]
            detail: &'a MercureDetail,
        }
        match self {
            Self::Mercure(detail) => Typed {
                kind: AUTHORIZATION_DETAIL_TYPE,
                detail,
            }
            .serialize(serializer),
            Self::Other(value) => value.serialize(serializer),
        }
    }
}

impl<'de> Deserialize<'de> for AuthorizationDetail {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        if value.get("type").and_then(serde_json::Value::as_str) != Some(AUTHORIZATION_DETAIL_TYPE)
        {
            return Ok(Self::Other(value));
        }
        // Only the Mercure entry's own schema applies to it; other types define theirs.
        #[derive(Deserialize)]
        struct Body {
            actions: Vec<Action>,
            topics: Vec<TopicMatcher>,
            #[serde(default)]
            payload: Option<serde_json::Value>,
        }
        let body: Body = serde_json::from_value(value).map_err(serde::de::Error::custom)?;
        Ok(Self::Mercure(MercureDetail {
            actions: body.actions,
            topics: body.topics,
            payload: body.payload,
        }))
    }
}

/// The claims of a 1.0 access token. Every member is optional when decoding so that a hub can
/// tell what is missing; [`V1`] always encodes all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// Subject.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// Audience: the hub's resource identifier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    /// The OAuth 2.0 client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Issued at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<NumericDate>,
    /// Expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<NumericDate>,
    /// Not before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<NumericDate>,
    /// Token id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// The grants.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorization_details: Vec<AuthorizationDetail>,
}

impl Claims {
    /// What the token allows, after the checks every Mercure detail must pass (at least one
    /// action, at least one topic, no empty pattern). `payload` is the first subscribe
    /// detail's.
    pub fn grants(&self) -> Result<Grants, ProtocolError> {
        let mut grants = Grants::default();
        for detail in &self.authorization_details {
            let AuthorizationDetail::Mercure(detail) = detail else {
                continue;
            };
            if detail.actions.is_empty() || detail.topics.is_empty() {
                return Err(ProtocolError::InvalidAuthorizationDetail);
            }
            if detail.topics.iter().any(|t| t.pattern.is_empty()) {
                return Err(ProtocolError::EmptyMatcher);
            }
            let matchers = detail.topics.iter().map(TopicMatcher::to_matcher);
            if detail.actions.contains(&Action::Publish) {
                grants.publish.extend(matchers.clone());
            }
            if detail.actions.contains(&Action::Subscribe) {
                grants.subscribe.extend(matchers);
                if grants.payload.is_none() {
                    grants.payload.clone_from(&detail.payload);
                }
            }
        }
        Ok(grants)
    }
}

fn detail(
    action: Action,
    matchers: &[Matcher],
    payload: Option<serde_json::Value>,
) -> Result<AuthorizationDetail, ProtocolError> {
    Ok(AuthorizationDetail::Mercure(MercureDetail {
        actions: vec![action],
        topics: matchers
            .iter()
            .map(TopicMatcher::from_matcher)
            .collect::<Result<_, _>>()?,
        payload,
    }))
}

impl Generation for V1 {
    fn version(&self) -> ProtocolVersion {
        ProtocolVersion::V1
    }

    fn token_type(&self) -> Option<&'static str> {
        Some(TOKEN_TYPE)
    }

    fn default_ttl(&self) -> Option<Duration> {
        Some(DEFAULT_TTL)
    }

    fn claims(&self, request: &TokenRequest<'_>) -> Result<AnyClaims, ProtocolError> {
        let identity = request.identity;
        let issuer = identity
            .issuer
            .clone()
            .filter(|i| !i.is_empty())
            .ok_or(ProtocolError::MissingIssuer)?;
        let audience = identity
            .audience
            .clone()
            .filter(|a| !a.is_empty())
            .ok_or(ProtocolError::MissingAudience)?;
        let exp = request.expires_at()?.ok_or(ProtocolError::MissingExpiry)?;
        let client_id = identity.client_id.clone().unwrap_or_else(|| issuer.clone());
        let subject = identity
            .subject
            .clone()
            .unwrap_or_else(|| client_id.clone());
        let grants = request.grants;
        let mut details = Vec::new();
        if !grants.publish.is_empty() {
            details.push(detail(Action::Publish, &grants.publish, None)?);
        }
        if !grants.subscribe.is_empty() {
            details.push(detail(
                Action::Subscribe,
                &grants.subscribe,
                grants.payload.clone(),
            )?);
        }
        Ok(AnyClaims::V1(Claims {
            iss: Some(issuer),
            sub: Some(subject),
            aud: Some(Audience::One(audience)),
            client_id: Some(client_id),
            iat: NumericDate::from_system_time(request.issued_at),
            exp: Some(exp),
            nbf: None,
            jti: Some(request.id.clone()),
            authorization_details: details,
        }))
    }

    fn cookie_name(&self, secure: bool) -> &'static str {
        if secure { COOKIE } else { INSECURE_COOKIE }
    }

    fn subscribe_params(
        &self,
        matchers: &[Matcher],
    ) -> Result<Vec<(&'static str, String)>, ProtocolError> {
        matchers
            .iter()
            .map(|matcher| {
                let topic = TopicMatcher::from_matcher(matcher)?;
                let name = match topic.match_type {
                    MatchType::Exact => MATCH_PARAM,
                    MatchType::UrlPattern => MATCH_URLPATTERN_PARAM,
                };
                Ok((name, topic.pattern))
            })
            .collect()
    }

    fn parse_subscribe_param(
        &self,
        name: &str,
        value: &str,
    ) -> Option<Result<Matcher, ProtocolError>> {
        let match_type = match name {
            MATCH_PARAM | MATCH_EXACT_PARAM => MatchType::Exact,
            MATCH_URLPATTERN_PARAM => MatchType::UrlPattern,
            // The 0.x parameter, and typos under the reserved prefix, fail loudly.
            _ if name == super::v0::TOPIC_PARAM
                || name
                    .get(..MATCH_PARAM.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(MATCH_PARAM)) =>
            {
                return Some(Err(ProtocolError::UnknownParameter(name.to_owned())));
            }
            _ => return None,
        };
        if value.is_empty() {
            return Some(Err(ProtocolError::EmptyMatcher));
        }
        Some(Ok(TopicMatcher {
            pattern: value.to_owned(),
            match_type,
        }
        .to_matcher()))
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

    fn identity() -> TokenIdentity {
        TokenIdentity {
            issuer: Some("https://app.example".into()),
            audience: Some("https://hub.example/.well-known/mercure".into()),
            ..TokenIdentity::default()
        }
    }

    fn claims(
        grants: &Grants,
        identity: &TokenIdentity,
        ttl: Option<Duration>,
    ) -> Result<Claims, ProtocolError> {
        let request = TokenRequest {
            grants,
            identity,
            issued_at: SystemTime::now(),
            ttl,
            id: "urn:uuid:1".into(),
        };
        match V1.claims(&request)? {
            AnyClaims::V1(claims) => Ok(claims),
            AnyClaims::V0(_) => Err(ProtocolError::MissingIssuer),
        }
    }

    #[test]
    fn claims_carry_every_registered_claim_and_the_details() {
        let grants = Grants::subscribe([
            Matcher::exact("orders/a"),
            Matcher::UrlPattern("https://app.example/orders/:id".into()),
        ]);
        let encoded = claims(&grants, &identity(), Some(Duration::from_secs(60))).expect("claims");
        let json = serde_json::to_value(&encoded).expect("json");
        assert_eq!(json["iss"], "https://app.example");
        assert_eq!(json["client_id"], "https://app.example");
        assert_eq!(json["sub"], "https://app.example");
        assert_eq!(json["aud"], "https://hub.example/.well-known/mercure");
        assert_eq!(json["jti"], "urn:uuid:1");
        let iat = json["iat"].as_i64().unwrap_or_default();
        assert_eq!(json["exp"].as_i64(), Some(iat + 60));
        assert_eq!(
            json["authorization_details"],
            serde_json::json!([{
                "type": "https://mercure.rocks/authorization-detail",
                "actions": ["subscribe"],
                "topics": [
                    {"match": "orders/a", "match_type": "exact"},
                    {"match": "https://app.example/orders/:id", "match_type": "urlpattern"},
                ],
            }])
        );
        // And back.
        let decoded: Claims = serde_json::from_value(json).expect("decode");
        assert_eq!(decoded, encoded);
        assert_eq!(decoded.grants(), Ok(grants));
    }

    #[test]
    fn what_a_1_0_token_cannot_lack_is_an_error() {
        let grants = Grants::publish([Matcher::Any]);
        let ttl = Some(Duration::from_secs(60));
        let no_issuer = TokenIdentity {
            issuer: None,
            ..identity()
        };
        assert_eq!(
            claims(&grants, &no_issuer, ttl),
            Err(ProtocolError::MissingIssuer)
        );
        let no_audience = TokenIdentity {
            audience: None,
            ..identity()
        };
        assert_eq!(
            claims(&grants, &no_audience, ttl),
            Err(ProtocolError::MissingAudience)
        );
        assert_eq!(
            claims(&grants, &identity(), None),
            Err(ProtocolError::MissingExpiry)
        );
        let template = Grants::publish([Matcher::selector("orders/{id}")]);
        assert!(matches!(
            claims(&template, &identity(), ttl),
            Err(ProtocolError::UnsupportedMatcher { .. })
        ));
    }

    #[test]
    fn decoding_is_as_strict_as_the_reference() {
        let decode = |details: &str| {
            serde_json::from_str::<Claims>(&format!(r#"{{"authorization_details":{details}}}"#))
                .map_err(|_| ProtocolError::InvalidAuthorizationDetail)
                .and_then(|c| c.grants())
        };
        let mercure = AUTHORIZATION_DETAIL_TYPE;
        // Bare strings, objects without match, unknown match types: the token is invalid.
        assert!(
            decode(&format!(
                r#"[{{"type":"{mercure}","actions":["publish"],"topics":["*"]}}]"#
            ))
            .is_err()
        );
        assert!(
            decode(&format!(
                r#"[{{"type":"{mercure}","actions":["publish"],"topics":[{{}}]}}]"#
            ))
            .is_err()
        );
        assert!(decode(&format!(r#"[{{"type":"{mercure}","actions":["publish"],"topics":[{{"match":"a","match_type":"Exact"}}]}}]"#)).is_err());
        assert!(
            decode(&format!(
                r#"[{{"type":"{mercure}","actions":[],"topics":[{{"match":"a"}}]}}]"#
            ))
            .is_err()
        );
        assert!(
            decode(&format!(
                r#"[{{"type":"{mercure}","actions":["publish"],"topics":[]}}]"#
            ))
            .is_err()
        );
        assert!(
            decode(&format!(
                r#"[{{"type":"{mercure}","actions":["publish"],"topics":[{{"match":""}}]}}]"#
            ))
            .is_err()
        );
        // Other detail types are ignored whatever their shape; unknown actions grant nothing.
        let grants = decode(&format!(
            r#"[{{"type":"other","topics":"x"}},{{"type":"{mercure}","actions":["delete","publish"],"topics":[{{"match":"a"}},{{"match":"*","match_type":"urlpattern"}}]}}]"#
        ))
        .expect("valid");
        assert_eq!(grants.publish, [Matcher::exact("a"), Matcher::Any]);
        assert!(grants.subscribe.is_empty());
        // An array audience.
        let claims: Claims = serde_json::from_str(r#"{"aud":["x","y"]}"#).expect("aud");
        assert!(
            claims
                .aud
                .is_some_and(|a| a.contains("y") && !a.contains("z"))
        );
    }

    #[test]
    fn the_token_type_is_at_jwt() {
        assert_eq!(V1.token_type(), Some("at+jwt"));
        assert!(is_access_token_type(Some("at+jwt")));
        assert!(is_access_token_type(Some("application/AT+JWT")));
        assert!(!is_access_token_type(Some("JWT")));
        assert!(!is_access_token_type(None));
    }

    #[test]
    fn subscribe_query_uses_match_parameters() {
        assert_eq!(
            V1.subscribe_params(&[
                Matcher::exact("orders/a"),
                Matcher::UrlPattern("/orders/:id".into()),
                Matcher::Any,
            ]),
            Ok(vec![
                ("match", "orders/a".to_owned()),
                ("match_urlpattern", "/orders/:id".to_owned()),
                ("match", "*".to_owned()),
            ])
        );
        assert!(
            V1.subscribe_params(&[Matcher::selector("orders/{id}")])
                .is_err()
        );
        assert_eq!(
            V1.parse_subscribe_param("match_exact", "a"),
            Some(Ok(Matcher::exact("a")))
        );
        assert!(matches!(
            V1.parse_subscribe_param("Match", "a"),
            Some(Err(ProtocolError::UnknownParameter(_)))
        ));
        assert!(matches!(
            V1.parse_subscribe_param("topic", "a"),
            Some(Err(ProtocolError::UnknownParameter(_)))
        ));
        assert_eq!(V1.parse_subscribe_param("last_event_id", "a"), None);
        assert_eq!(V1.cookie_name(true), "__Secure-mercure_access_token");
        assert_eq!(V1.cookie_name(false), "mercure_access_token");
    }
}
