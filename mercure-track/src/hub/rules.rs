//! What the hub does differently in each protocol generation: the one place where it asks
//! which generation it speaks. The wire types (claims, subscribe parameters, cookie names)
//! come from [`crate::protocol`]; the answers and limits below come from the reference hub:
//! v0.24.2 for 0.x, the 1.0 line (`publish.go`, `bearererror.go`, `subscribematchers.go`,
//! `matchertype.go`, `reservedtopic.go`, `hub.go` at v1.0.0-alpha) for 1.0.

use axum::http::header::WWW_AUTHENTICATE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use url::Url;

use super::auth::AuthError;
use crate::protocol::{Generation, Matcher, ProtocolError, ProtocolVersion, v0, v1};
use crate::wire::HUB_PATH;

/// The protected resource metadata path of a 1.0 hub (RFC 9728).
pub(crate) const RESOURCE_METADATA_PATH: &str =
    "/.well-known/oauth-protected-resource/.well-known/mercure";

/// The generation-specific rules of the hub.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rules {
    version: ProtocolVersion,
}

/// An RFC 6750 error code.
#[derive(Debug, Clone, Copy)]
enum BearerError {
    /// No token: a bare challenge.
    Challenge,
    InvalidRequest,
    InvalidToken,
    InsufficientScope,
}

impl Rules {
    pub(crate) fn new(version: ProtocolVersion) -> Self {
        Self { version }
    }

    /// The wire of this generation.
    pub(crate) fn generation(self) -> &'static dyn Generation {
        self.version.generation()
    }

    pub(crate) fn is_v1(self) -> bool {
        matches!(self.version, ProtocolVersion::V1)
    }

    /// The cookie a token travels in by default: 0.x `mercureAuthorization`; 1.0 the
    /// prefix-less `mercure_access_token`, since the development hub serves plain HTTP
    /// (browsers refuse `__Secure-` cookies there; the reference's playground does the same).
    pub(crate) fn default_cookie(self) -> &'static str {
        self.generation().cookie_name(false)
    }

    /// Whether a token may travel in the `authorization` query parameter (0.x only; 1.0
    /// forbids tokens in URLs, RFC 9700).
    pub(crate) fn query_token(self) -> bool {
        !self.is_v1()
    }

    /// The largest form body, and the answer beyond it: 0.x Go's 10 MiB form limit (400);
    /// 1.0 `DefaultMaxRequestBodySize`, 1 MiB (413).
    pub(crate) fn body_limit(self) -> (usize, StatusCode) {
        if self.is_v1() {
            (1 << 20, StatusCode::PAYLOAD_TOO_LARGE)
        } else {
            (10 << 20, StatusCode::BAD_REQUEST)
        }
    }

    /// Most matchers of one subscription: 0.x `maxQueryTopics` (1 000); 1.0
    /// `maxMatcherCount` (100).
    pub(crate) fn max_subscribe_matchers(self) -> usize {
        if self.is_v1() { 100 } else { 1000 }
    }

    /// The response header naming where a replay starts: 0.x `Last-Event-ID`; 1.0
    /// `Mercure-Last-Event-ID` (`Last-Event-ID` is a request header).
    pub(crate) fn last_event_id_header(self) -> &'static str {
        if self.is_v1() {
            "mercure-last-event-id"
        } else {
            "last-event-id"
        }
    }

    /// The answer to a request without an acceptable token: 0.x always 401; 1.0 RFC 6750
    /// (`bearererror.go`): no token 401 with a bare challenge, malformed framing or a refused
    /// cookie origin 400 `invalid_request`, any token defect 401 `invalid_token`.
    pub(crate) fn refuse_auth(self, error: Option<AuthError>, identity: &HubIdentity) -> Response {
        if !self.is_v1() {
            return (StatusCode::UNAUTHORIZED, "unauthorized").into_response();
        }
        let code = match error {
            None => BearerError::Challenge,
            Some(
                AuthError::MalformedHeader
                | AuthError::MalformedQuery
                | AuthError::NoOrigin
                | AuthError::OriginNotAllowed,
            ) => BearerError::InvalidRequest,
            Some(AuthError::InvalidToken) => BearerError::InvalidToken,
        };
        bearer_error(code, identity)
    }

    /// The answer to a valid token without the grant: 0.x 401; 1.0 403 `insufficient_scope`.
    pub(crate) fn insufficient_scope(self, identity: &HubIdentity) -> Response {
        if self.is_v1() {
            bearer_error(BearerError::InsufficientScope, identity)
        } else {
            (StatusCode::UNAUTHORIZED, "unauthorized").into_response()
        }
    }

    /// The checks of an update's fields after authorization (`Update.Validate`).
    pub(crate) fn validate(
        self,
        update: &FieldsToValidate<'_>,
    ) -> Result<(), (StatusCode, &'static str)> {
        let bad = |reason: &'static str| Err((StatusCode::BAD_REQUEST, reason));
        if self.is_v1() {
            if update.topics.iter().any(|t| reserved_namespace_v1(t)) {
                return bad(
                    "topic value resolves into the reserved \"/.well-known/mercure\" namespace",
                );
            }
            if update.topics.iter().any(|t| t == "*") {
                return bad("topic value \"*\" is reserved for the wildcard matcher");
            }
            if !update.id_utf8
                || !valid_protocol_string(update.id)
                || update.id.starts_with('#')
                || update.id == super::history::EARLIEST
            {
                return bad("\"id\" field contains a forbidden character or a reserved value");
            }
            if !update.type_utf8 || !valid_protocol_string(update.event_type) {
                return bad("\"type\" field contains a forbidden character");
            }
            if update.event_type == "mercure" {
                return bad("\"type\" field uses the reserved value \"mercure\"");
            }
            if !update.data_utf8 {
                return bad("\"data\" field is not valid UTF-8");
            }
            return Ok(());
        }
        // 0.x (publish.go:59-76): the hub's namespace is 403, line breaks in id and type 400.
        if update.topics.iter().any(|t| t.contains(HUB_PATH)) {
            return Err((
                StatusCode::FORBIDDEN,
                "topic value references the reserved \"/.well-known/mercure\" namespace",
            ));
        }
        if update.id.contains(['\n', '\r', '\0']) {
            return bad("\"id\" field contains a forbidden control character");
        }
        if update.event_type.contains(['\n', '\r', '\0']) {
            return bad("\"type\" field contains a forbidden control character");
        }
        Ok(())
    }

    /// Whether a topic may be matched at all (1.0 checks topics before authorization).
    pub(crate) fn topic_acceptable(self, topic: &str, utf8: bool) -> bool {
        !self.is_v1() || (utf8 && valid_protocol_string(topic))
    }

    /// Whether a subscription's matcher value is acceptable (1.0: UTF-8 without control
    /// characters, at most 4 096 bytes).
    fn matcher_acceptable(self, value: &str) -> bool {
        !self.is_v1() || (value.len() <= 4096 && valid_protocol_string(value))
    }

    /// The matcher a subscribe query parameter carries (`None`: not a matcher parameter), or
    /// why it is refused. The generation's parser decides, except that 0.x reads an empty
    /// `topic=` as the empty topic, as the reference v0.24.2 does (`URL.Query()["topic"]`).
    pub(crate) fn subscribe_matcher(
        self,
        name: &str,
        value: &str,
    ) -> Option<Result<Matcher, ProtocolError>> {
        match self.generation().parse_subscribe_param(name, value) {
            Some(Err(ProtocolError::EmptyMatcher)) if !self.is_v1() => {
                Some(Ok(Matcher::Exact(String::new())))
            }
            Some(Ok(_)) if !self.matcher_acceptable(value) => {
                Some(Err(ProtocolError::EmptyMatcher))
            }
            other => other,
        }
    }

    /// The query parameter naming the id to resume after.
    pub(crate) fn last_event_id_param(self) -> &'static str {
        if self.is_v1() {
            v1::LAST_EVENT_ID_PARAM
        } else {
            v0::LAST_EVENT_ID_PARAM
        }
    }
}

/// `GET /.well-known/oauth-protected-resource/.well-known/mercure` of a 1.0 hub (RFC 9728,
/// the reference's `resourcemetadata.go`): the resource identifier, tokens in the header, the
/// Mercure authorization detail type, the cookie name.
pub(crate) async fn resource_metadata(
    axum::extract::State(hub): axum::extract::State<std::sync::Arc<super::HubState>>,
    headers: HeaderMap,
) -> Response {
    let identity = hub.identity(&headers);
    axum::Json(serde_json::json!({
        "resource": identity.resource,
        "bearer_methods_supported": ["header"],
        "authorization_details_types_supported": [v1::AUTHORIZATION_DETAIL_TYPE],
        "mercure_cookie": hub.cookie,
    }))
    .into_response()
}

/// The fields of an update that [`Rules::validate`] checks.
pub(crate) struct FieldsToValidate<'a> {
    pub(crate) topics: &'a [String],
    pub(crate) id: &'a str,
    pub(crate) id_utf8: bool,
    pub(crate) event_type: &'a str,
    pub(crate) type_utf8: bool,
    pub(crate) data_utf8: bool,
}

/// Who the hub is for a request: its resource identifier (the `aud` of 1.0 tokens) and the
/// URL of its protected resource metadata.
#[derive(Debug, Clone)]
pub(crate) struct HubIdentity {
    pub(crate) resource: String,
    pub(crate) metadata: Option<String>,
    /// The base URL patterns and topics are read against.
    pub(crate) base: Url,
}

impl HubIdentity {
    /// The configured resource identifier, else `http://<Host>/.well-known/mercure`.
    pub(crate) fn of(configured: Option<&str>, headers: &HeaderMap) -> Self {
        let resource = configured.map(str::to_owned).or_else(|| {
            headers
                .get("host")
                .and_then(|h| h.to_str().ok())
                .map(|host| format!("http://{host}{HUB_PATH}"))
        });
        let parsed = resource.as_deref().and_then(|r| Url::parse(r).ok());
        let metadata = parsed.as_ref().and_then(|url| {
            let host = url.host_str()?;
            Some(match url.port() {
                Some(port) => format!("{}://{host}:{port}{RESOURCE_METADATA_PATH}", url.scheme()),
                None => format!("{}://{host}{RESOURCE_METADATA_PATH}", url.scheme()),
            })
        });
        let base = parsed
            .filter(|url| url.path().ends_with(HUB_PATH))
            .unwrap_or_else(fallback_base);
        Self {
            resource: resource.unwrap_or_default(),
            metadata,
            base,
        }
    }
}

/// The reference's `urlPatternFallbackBase`.
#[allow(clippy::expect_used)]
fn fallback_base() -> Url {
    Url::parse("http://mercure.invalid").expect("a valid literal URL")
}

fn bearer_error(code: BearerError, identity: &HubIdentity) -> Response {
    let (status, code) = match code {
        BearerError::Challenge => (StatusCode::UNAUTHORIZED, None),
        BearerError::InvalidRequest => (StatusCode::BAD_REQUEST, Some("invalid_request")),
        BearerError::InvalidToken => (StatusCode::UNAUTHORIZED, Some("invalid_token")),
        BearerError::InsufficientScope => (StatusCode::FORBIDDEN, Some("insufficient_scope")),
    };
    let mut challenge = String::from("Bearer");
    let mut separator = " ";
    if let Some(code) = code {
        challenge.push_str(&format!("{separator}error=\"{code}\""));
        separator = ", ";
    }
    if let Some(metadata) = &identity.metadata {
        challenge.push_str(&format!("{separator}resource_metadata=\"{metadata}\""));
    }
    let mut response = (status, status.canonical_reason().unwrap_or_default()).into_response();
    if let Ok(value) = HeaderValue::try_from(challenge) {
        response.headers_mut().insert(WWW_AUTHENTICATE, value);
    }
    response
}

/// 1.0's `validProtocolString`: no C0, DEL, C1 or format (Cf) characters.
pub(crate) fn valid_protocol_string(s: &str) -> bool {
    !s.chars().any(|c| {
        let c = u32::from(c);
        c <= 0x1F || (0x7F..=0x9F).contains(&c) || is_format_character(c)
    })
}

/// Unicode general category Cf (format characters: bidirectional and zero-width controls).
fn is_format_character(c: u32) -> bool {
    matches!(c,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x890..=0x891 | 0x8E2 | 0x180E
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF
        | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3
        | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F)
}

/// 1.0's `addressesReservedNamespace`: the topic, resolved against
/// `https://mercure.invalid/.well-known/mercure`, has the hub's path or one below it (after
/// decoding percent-encoded unreserved characters).
fn reserved_namespace_v1(topic: &str) -> bool {
    let Ok(base) = Url::parse("https://mercure.invalid/.well-known/mercure") else {
        return false;
    };
    let Ok(resolved) = base.join(topic) else {
        return false;
    };
    let path = decode_unreserved(resolved.path());
    path == HUB_PATH || path.starts_with(&format!("{HUB_PATH}/"))
}

fn decode_unreserved(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            if let Some(c) = hex.filter(|c| c.is_ascii_alphanumeric() || b"-._~".contains(c)) {
                out.push(c);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::{reserved_namespace_v1, valid_protocol_string};

    #[test]
    fn reserved_namespace_is_resolved() {
        assert!(reserved_namespace_v1("/.well-known/mercure"));
        assert!(reserved_namespace_v1(
            "https://example.com/.well-known/mercure/subscriptions"
        ));
        assert!(reserved_namespace_v1("/.well-known/%6Dercure/x"));
        // Relative topics resolve against the hub's own URL.
        assert!(reserved_namespace_v1("mercure/x"));
        assert!(!reserved_namespace_v1("https://example.com/books/1"));
        assert!(!reserved_namespace_v1("/.well-known/mercure-not"));
    }

    #[test]
    fn protocol_strings() {
        assert!(valid_protocol_string("https://example.com/books/1"));
        assert!(!valid_protocol_string("a\u{7}b"));
        assert!(!valid_protocol_string("a\u{202E}b"));
        assert!(!valid_protocol_string("a\u{85}b"));
    }
}
