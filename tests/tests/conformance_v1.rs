//! Conformance of the development hub to protocol 1.0, written from the reference hub's 1.0
//! line (`docs/UPGRADE.md`, `docs/concepts/authorization.md`, `topics-and-matchers.md`,
//! `reconnection-and-history.md`; `publish.go`, `authorization.go`, `bearererror.go`,
//! `subscribematchers.go`, `matchertype.go`, `reservedtopic.go` at v1.0.0-alpha): one row per
//! publish rule, then the subscribe rules. The publisher and the subscriber tokens of the
//! library (`protocol::v1`) are checked against the hub end to end.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header};
use mercure_track::hub::{DevHub, DevHubConfig, RunningHub};
use mercure_track::protocol::{Grants, Matcher, ProtocolVersion, TokenIdentity};
use mercure_track::publisher::{Algorithm, HubConfig, JwtKey, TokenMinter};
use mercure_track::{HubPublisher, Publisher, Update};
use mercure_track_tests::sse::{SseError, SseStream, open};
use serde_json::{Value, json};

const PUBLISHER_KEY: &str = "publisher-conformance-v1-key-0123456789abcdef";
const SUBSCRIBER_KEY: &str = "subscriber-conformance-v1-key-0123456789abcdef";
const ISSUER: &str = "https://issuer.example";
const ALLOWED_ORIGIN: &str = "https://app.example";
const DETAIL: &str = "https://mercure.rocks/authorization-detail";
const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(300);
const FORM: &str = "application/x-www-form-urlencoded";

async fn start_hub() -> RunningHub {
    let config = DevHubConfig::new(JwtKey::new(PUBLISHER_KEY), JwtKey::new(SUBSCRIBER_KEY))
        .protocol(ProtocolVersion::V1)
        .issuer(ISSUER)
        .publish_origins([ALLOWED_ORIGIN]);
    DevHub::new(config)
        .expect("hub config")
        .bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn sign(key: &str, typ: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = typ.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_secret(key.as_bytes())).expect("sign")
}

/// Valid access-token claims for `hub`, with `details` as `authorization_details`.
fn claims(hub: &RunningHub, details: Value) -> Value {
    json!({
        "iss": ISSUER,
        "sub": "publisher",
        "client_id": "publisher",
        "aud": hub.url(),
        "iat": now(),
        "exp": now() + 3600,
        "jti": "test-token",
        "authorization_details": details,
    })
}

fn grant(action: &str, topics: Value) -> Value {
    json!([{"type": DETAIL, "actions": [action], "topics": topics}])
}

fn publish_all(hub: &RunningHub) -> Value {
    claims(hub, grant("publish", json!([{"match": "*"}])))
}

/// `claims` with `key` removed.
fn without(mut claims: Value, key: &str) -> Value {
    if let Some(object) = claims.as_object_mut() {
        object.remove(key);
    }
    claims
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

enum Auth {
    None,
    Bearer(String),
    Headers(Vec<String>),
    Query(String),
    Cookie {
        name: &'static str,
        token: String,
        origin: Option<&'static str>,
    },
}

struct Row {
    rule: &'static str,
    auth: Auth,
    body: String,
    status: u16,
    /// The `error` of the `WWW-Authenticate` challenge (`Some("")`: a bare challenge).
    challenge: Option<&'static str>,
}

fn row(rule: &'static str, token: String, body: impl Into<String>, status: u16) -> Row {
    Row {
        rule,
        auth: Auth::Bearer(token),
        body: body.into(),
        status,
        challenge: None,
    }
}

impl Row {
    fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    fn challenge(mut self, error: &'static str) -> Self {
        self.challenge = Some(error);
        self
    }
}

fn rows(hub: &RunningHub) -> Vec<Row> {
    let good = sign(PUBLISHER_KEY, Some("at+jwt"), &publish_all(hub));
    let token = |claims: Value| sign(PUBLISHER_KEY, Some("at+jwt"), &claims);
    let ok = "topic=https%3A%2F%2Fexample.com%2Fbooks%2F1&data=x";
    vec![
        // --- the token (authorization.go, bearererror.go) ---
        row("valid access token: 200", good.clone(), ok, 200),
        row(
            "no token: 401 with a bare challenge (bearererror.go:23)",
            String::new(),
            ok,
            401,
        )
        .auth(Auth::None)
        .challenge(""),
        row(
            "two Authorization headers: 400 invalid_request (bearererror.go:49)",
            String::new(),
            ok,
            400,
        )
        .auth(Auth::Headers(vec![
            format!("Bearer {good}"),
            format!("Bearer {good}"),
        ]))
        .challenge("invalid_request"),
        row(
            "no typ at+jwt: 401 invalid_token (RFC 9068)",
            sign(PUBLISHER_KEY, None, &publish_all(hub)),
            ok,
            401,
        )
        .challenge("invalid_token"),
        row(
            "wrong key: 401 invalid_token",
            sign(
                "another-key-0123456789abcdefghijklmnop",
                Some("at+jwt"),
                &publish_all(hub),
            ),
            ok,
            401,
        )
        .challenge("invalid_token"),
        row(
            "no iss: 401 invalid_token",
            token(without(publish_all(hub), "iss")),
            ok,
            401,
        ),
        row(
            "untrusted iss: 401 invalid_token",
            token(with(publish_all(hub), "iss", json!("https://evil.example"))),
            ok,
            401,
        ),
        row(
            "no aud: 401 invalid_token",
            token(without(publish_all(hub), "aud")),
            ok,
            401,
        ),
        row(
            "aud of another resource: 401 invalid_token",
            token(with(
                publish_all(hub),
                "aud",
                json!("https://other.example/.well-known/mercure"),
            )),
            ok,
            401,
        ),
        row(
            "aud as an array naming the hub: 200",
            token(with(
                publish_all(hub),
                "aud",
                json!(["https://other.example", hub.url()]),
            )),
            ok,
            200,
        ),
        row(
            "no exp: 401 invalid_token (exp required)",
            token(without(publish_all(hub), "exp")),
            ok,
            401,
        ),
        row(
            "expired: 401 invalid_token",
            token(with(publish_all(hub), "exp", json!(now() - 1))),
            ok,
            401,
        ),
        row(
            "bare-string topics: 401 invalid_token (UPGRADE.md)",
            token(claims(
                hub,
                json!([{"type": DETAIL, "actions": ["publish"], "topics": ["*"]}]),
            )),
            ok,
            401,
        ),
        row(
            "detail without actions: 401 invalid_token",
            token(claims(
                hub,
                json!([{"type": DETAIL, "actions": [], "topics": [{"match": "*"}]}]),
            )),
            ok,
            401,
        ),
        row(
            "detail without topics: 401 invalid_token",
            token(claims(
                hub,
                json!([{"type": DETAIL, "actions": ["publish"], "topics": []}]),
            )),
            ok,
            401,
        ),
        row(
            "match_type is case-sensitive: 401 invalid_token",
            token(claims(
                hub,
                grant("publish", json!([{"match": "*", "match_type": "Exact"}])),
            )),
            ok,
            401,
        ),
        row(
            "the 0.x mercure claim grants nothing: 403 insufficient_scope",
            token(without(
                with(publish_all(hub), "mercure", json!({"publish": ["*"]})),
                "authorization_details",
            )),
            ok,
            403,
        )
        .challenge("insufficient_scope"),
        row(
            "a subscribe grant does not publish: 403 insufficient_scope (publish.go)",
            token(claims(hub, grant("subscribe", json!([{"match": "*"}])))),
            ok,
            403,
        )
        .challenge("insufficient_scope"),
        row(
            "a detail of another type grants nothing: 403",
            token(claims(
                hub,
                json!([{"type": "https://other.example/detail", "actions": ["publish"], "topics": [{"match": "*"}]}]),
            )),
            ok,
            403,
        ),
        row(
            "URL pattern grant covering the topic: 200",
            token(claims(
                hub,
                grant(
                    "publish",
                    json!([{"match": "https://example.com/books/:id", "match_type": "urlpattern"}]),
                ),
            )),
            ok,
            200,
        ),
        row(
            "URL pattern grant not covering a topic: 403",
            token(claims(
                hub,
                grant(
                    "publish",
                    json!([{"match": "https://example.com/books/:id", "match_type": "urlpattern"}]),
                ),
            )),
            format!("{ok}&topic=https%3A%2F%2Fexample.com%2Fusers%2F1"),
            403,
        ),
        row(
            "URL pattern grant that does not compile: 401 invalid_token",
            token(claims(
                hub,
                grant(
                    "publish",
                    json!([{"match": "https://example.com/(", "match_type": "urlpattern"}]),
                ),
            )),
            ok,
            401,
        )
        .challenge("invalid_token"),
        row(
            "exact grant: 200",
            token(claims(
                hub,
                grant("publish", json!([{"match": "https://example.com/books/1"}])),
            )),
            ok,
            200,
        ),
        // --- presentation (UPGRADE.md "Migrate token presentation") ---
        row(
            "no authorization query parameter in 1.0: 401 bare challenge",
            String::new(),
            ok,
            401,
        )
        .auth(Auth::Query(good.clone()))
        .challenge(""),
        row(
            "the 0.x cookie is not read: 401 bare challenge",
            String::new(),
            ok,
            401,
        )
        .auth(Auth::Cookie {
            name: "mercureAuthorization",
            token: good.clone(),
            origin: Some(ALLOWED_ORIGIN),
        }),
        row(
            "the 1.0 cookie from an allowed origin: 200",
            String::new(),
            ok,
            200,
        )
        .auth(Auth::Cookie {
            name: "mercure_access_token",
            token: good.clone(),
            origin: Some(ALLOWED_ORIGIN),
        }),
        row(
            "the 1.0 cookie without Origin: 400 invalid_request",
            String::new(),
            ok,
            400,
        )
        .auth(Auth::Cookie {
            name: "mercure_access_token",
            token: good.clone(),
            origin: None,
        })
        .challenge("invalid_request"),
        // --- the form and the update (publish.go, Update.Validate) ---
        row(
            "body over 1 MiB: 413 (DefaultMaxRequestBodySize)",
            good.clone(),
            format!("{ok}&x={}", "y".repeat(1 << 20)),
            413,
        ),
        row("no topic: 400", good.clone(), "data=x", 400),
        row(
            "topic with a control character: 400 (validProtocolString)",
            good.clone(),
            "topic=a%07b&data=x",
            400,
        ),
        row(
            "topic with a bidirectional control: 400 (validProtocolString)",
            good.clone(),
            "topic=a%E2%80%AEb&data=x",
            400,
        ),
        row(
            "topic not UTF-8: 400 (validProtocolString)",
            good.clone(),
            "topic=a%FFb&data=x",
            400,
        ),
        row(
            "topic *: 400 (ErrReservedWildcard)",
            good.clone(),
            "topic=*&data=x",
            400,
        ),
        row(
            "topic in the hub's namespace: 400 (reservedtopic.go)",
            good.clone(),
            "topic=https%3A%2F%2Fexample.com%2F.well-known%2Fmercure%2Fx&data=x",
            400,
        ),
        row(
            "relative topic resolving into the hub's namespace: 400 (reservedtopic.go)",
            good.clone(),
            "topic=mercure%2Fx&data=x",
            400,
        ),
        row(
            "id starting with #: 400 (ErrInvalidEventID)",
            good.clone(),
            format!("{ok}&id=%23x"),
            400,
        ),
        row(
            "id earliest: 400 (ErrInvalidEventID)",
            good.clone(),
            format!("{ok}&id=earliest"),
            400,
        ),
        row(
            "id with a tab: 400 (ErrInvalidEventID)",
            good.clone(),
            format!("{ok}&id=a%09b"),
            400,
        ),
        row(
            "type mercure: 400 (ErrReservedEventType)",
            good.clone(),
            format!("{ok}&type=mercure"),
            400,
        ),
        row(
            "data not UTF-8: 400 (ErrInvalidData)",
            good.clone(),
            "topic=a&data=%FF",
            400,
        ),
        row(
            "retry not a number: 400",
            good.clone(),
            format!("{ok}&retry=soon"),
            400,
        ),
        row(
            "canonical and alternate topics in one request: 200",
            good.clone(),
            format!("{ok}&topic=https%3A%2F%2Fexample.com%2Fbooks%2F1.jsonld"),
            200,
        ),
    ]
}

fn challenge_error(headers: &reqwest::header::HeaderMap) -> Option<String> {
    let value = headers.get("www-authenticate")?.to_str().ok()?;
    if !value.starts_with("Bearer") {
        return None;
    }
    Some(
        value
            .split("error=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap_or_default()
            .to_owned(),
    )
}

#[tokio::test]
async fn publish_rules() {
    let hub = start_hub().await;
    let client = reqwest::Client::new();
    let mut failures = Vec::new();
    // RFC 9728: every challenge names the protected resource metadata.
    let metadata = format!(
        "resource_metadata=\"http://{}/.well-known/oauth-protected-resource/.well-known/mercure\"",
        hub.addr()
    );
    for row in rows(&hub) {
        let mut request = client.post(hub.url()).header("content-type", FORM);
        request = match &row.auth {
            Auth::None => request,
            Auth::Bearer(token) => request.bearer_auth(token),
            Auth::Headers(values) => values
                .iter()
                .fold(request, |r, v| r.header("authorization", v)),
            Auth::Query(token) => request.query(&[("authorization", token)]),
            Auth::Cookie {
                name,
                token,
                origin,
            } => {
                let request = request.header("cookie", format!("{name}={token}"));
                match origin {
                    Some(origin) => request.header("origin", *origin),
                    None => request,
                }
            }
        };
        let response = tokio::time::timeout(WAIT * 4, request.body(row.body).send())
            .await
            .expect("the hub answers in time")
            .expect("request");
        let status = response.status().as_u16();
        let challenge = challenge_error(response.headers());
        let challenge_raw = response
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if status != row.status {
            let body = response.text().await.unwrap_or_default();
            failures.push(format!("{}: got {status} ({body})", row.rule));
        } else if let Some(expected) = row.challenge
            && challenge.as_deref() != Some(expected)
        {
            failures.push(format!("{}: challenge {challenge:?}", row.rule));
        } else if status == 200 && content_type != "text/plain; charset=utf-8" {
            failures.push(format!("{}: content type {content_type:?}", row.rule));
        }
        if row.challenge.is_some() && !challenge_raw.contains(&metadata) {
            failures.push(format!(
                "{}: challenge without {metadata}: {challenge_raw}",
                row.rule
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The metadata the challenges point to (RFC 9728).
    let metadata = client
        .get(format!(
            "http://{}/.well-known/oauth-protected-resource/.well-known/mercure",
            hub.addr()
        ))
        .send()
        .await
        .expect("metadata")
        .text()
        .await
        .expect("body");
    let metadata: Value = serde_json::from_str(&metadata).expect("JSON");
    assert_eq!(metadata["resource"], json!(hub.url()));
    assert_eq!(
        metadata["authorization_details_types_supported"],
        json!([DETAIL])
    );
    assert_eq!(metadata["mercure_cookie"], json!("mercure_access_token"));
}

fn subscriber_minter(hub: &RunningHub, ttl: Duration) -> TokenMinter {
    TokenMinter::new(
        &JwtKey::new(SUBSCRIBER_KEY),
        Algorithm::Hs256,
        ProtocolVersion::V1,
        TokenIdentity {
            issuer: Some(ISSUER.into()),
            audience: Some(hub.url()),
            ..TokenIdentity::default()
        },
        Some(ttl),
    )
    .expect("minter")
}

fn publisher(hub: &RunningHub) -> HubPublisher {
    HubPublisher::new(
        HubConfig::new(&hub.url())
            .expect("url")
            .key(JwtKey::new(PUBLISHER_KEY))
            .protocol(ProtocolVersion::V1)
            .issuer(ISSUER),
    )
    .expect("publisher")
}

fn get(
    client: &reqwest::Client,
    hub: &RunningHub,
    query: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    client.get(hub.url()).query(query)
}

fn header(stream: &SseStream, name: &str) -> Option<String> {
    stream
        .headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The library's 1.0 publisher is accepted, one request carries the canonical and alternate
/// topics, and `match` / `match_urlpattern` select as URL Patterns do.
#[tokio::test]
async fn library_publisher_and_matchers() {
    let hub = start_hub().await;
    let client = reqwest::Client::new();
    let book = "https://example.com/books/1";
    let mut exact = open(get(&client, &hub, &[("match", book)]))
        .await
        .expect("subscribe");
    let mut explicit = open(get(
        &client,
        &hub,
        &[("match_exact", "https://example.com/books/1.jsonld")],
    ))
    .await
    .expect("subscribe");
    let mut pattern = open(get(
        &client,
        &hub,
        &[("match_urlpattern", "https://example.com/books/:id")],
    ))
    .await
    .expect("subscribe");
    let mut other = open(get(
        &client,
        &hub,
        &[("match_urlpattern", "https://example.com/users/:id")],
    ))
    .await
    .expect("subscribe");
    let outcome = publisher(&hub)
        .publish_update(Update::new(
            [book, "https://example.com/books/1.jsonld"],
            "one",
        ))
        .await
        .expect("the 1.0 publisher is accepted");
    assert_eq!(outcome.ids().len(), 1, "one request, one id");
    for stream in [&mut exact, &mut explicit, &mut pattern] {
        assert_eq!(
            stream.next_within(WAIT).await.map(|e| e.data).as_deref(),
            Some("one")
        );
        assert_eq!(stream.next_within(QUIET).await, None, "delivered once");
    }
    assert_eq!(other.next_within(QUIET).await, None);
}

/// Subscribe parameters (subscribematchers.go): `topic` and unknown `match…` names are 400, at
/// most 100 matchers, invalid patterns and control characters are 400, none is 400.
#[tokio::test]
async fn subscribe_parameters() {
    let hub = start_hub().await;
    let client = reqwest::Client::new();
    let status = |query: Vec<(String, String)>| {
        let request = client.get(hub.url()).query(&query);
        async move {
            match open(request).await {
                Ok(_) => 200,
                Err(SseError::Status(status)) => status,
                Err(SseError::Http(error)) => panic!("{error}"),
            }
        }
    };
    let one = |name: &str, value: &str| vec![(name.to_owned(), value.to_owned())];
    assert_eq!(
        status(one("topic", "https://example.com/books/1")).await,
        400
    );
    assert_eq!(status(one("match_typo", "a")).await, 400);
    assert_eq!(status(one("Match", "a")).await, 400);
    assert_eq!(
        status(one("match_urlpattern", "https://example.com/(")).await,
        400
    );
    assert_eq!(status(one("match", "a\u{7}b")).await, 400);
    assert_eq!(status(one("match", &"a".repeat(4097))).await, 400);
    assert_eq!(status(one("other", "a")).await, 400, "no matcher at all");
    let many = |n: usize| {
        (0..n)
            .map(|i| ("match".to_owned(), format!("t{i}")))
            .collect()
    };
    assert_eq!(status(many(100)).await, 200);
    assert_eq!(status(many(101)).await, 400);
}

/// Resumption (reconnection-and-history.md): `last_event_id` in the query, the
/// `Last-Event-ID` header winning over it, the answer in `Mercure-Last-Event-ID`; the 0.x
/// `lastEventID` parameter is not read.
#[tokio::test]
async fn resumption() {
    let hub = start_hub().await;
    let client = reqwest::Client::new();
    let publisher = publisher(&hub);
    for n in 1..=3 {
        publisher
            .publish_update(
                Update::new(["https://example.com/a"], n.to_string()).id(format!("id-{n}")),
            )
            .await
            .expect("publish");
    }
    let topic = ("match", "https://example.com/a");
    let mut query = open(get(&client, &hub, &[topic, ("last_event_id", "id-1")]))
        .await
        .expect("subscribe");
    assert_eq!(
        header(&query, "mercure-last-event-id").as_deref(),
        Some("id-1")
    );
    let replayed: Vec<_> = query
        .collect(2, WAIT)
        .await
        .into_iter()
        .map(|e| e.data)
        .collect();
    assert_eq!(replayed, ["2", "3"]);

    let mut both = open(
        get(&client, &hub, &[topic, ("last_event_id", "id-1")]).header("last-event-id", "id-2"),
    )
    .await
    .expect("subscribe");
    assert_eq!(
        header(&both, "mercure-last-event-id").as_deref(),
        Some("id-2")
    );
    assert_eq!(
        both.next_within(WAIT).await.map(|e| e.data).as_deref(),
        Some("3")
    );

    let mut earliest = open(get(&client, &hub, &[topic, ("last_event_id", "earliest")]))
        .await
        .expect("subscribe");
    assert_eq!(
        header(&earliest, "mercure-last-event-id").as_deref(),
        Some("earliest")
    );
    assert_eq!(earliest.collect(3, WAIT).await.len(), 3);

    let mut legacy = open(get(&client, &hub, &[topic, ("lastEventID", "id-1")]))
        .await
        .expect("subscribe");
    assert_eq!(header(&legacy, "mercure-last-event-id"), None);
    assert_eq!(header(&legacy, "last-event-id"), None);
    assert_eq!(legacy.next_within(QUIET).await, None);
}

/// Private updates reach subscribers whose access token grants one of the topics; the
/// library's 1.0 subscriber tokens are accepted in the header and in the 1.0 cookie, and the
/// stream ends when the token expires.
#[tokio::test]
async fn private_updates_and_subscriber_tokens() {
    let hub = start_hub().await;
    let client = reqwest::Client::new();
    let grants = Grants::subscribe([Matcher::UrlPattern("https://example.com/orders/:id".into())]);
    let token = subscriber_minter(&hub, Duration::from_secs(3600))
        .mint(&grants)
        .expect("token");
    let topic = ("match_urlpattern", "https://example.com/orders/:id");
    let mut header_auth = open(get(&client, &hub, &[topic]).bearer_auth(&token))
        .await
        .expect("subscribe");
    let mut cookie_auth = open(
        get(&client, &hub, &[topic]).header("cookie", format!("mercure_access_token={token}")),
    )
    .await
    .expect("subscribe");
    let mut anonymous = open(get(&client, &hub, &[topic])).await.expect("subscribe");
    let short = subscriber_minter(&hub, Duration::from_secs(3))
        .mint(&grants)
        .expect("token");
    let mut expiring = open(get(&client, &hub, &[topic]).bearer_auth(&short))
        .await
        .expect("subscribe");

    let publisher = publisher(&hub);
    publisher
        .publish_update(Update::new(["https://example.com/orders/1"], "secret").private(true))
        .await
        .expect("publish");
    publisher
        .publish_update(Update::new(["https://example.com/orders/1"], "public"))
        .await
        .expect("publish");
    for stream in [&mut header_auth, &mut cookie_auth, &mut expiring] {
        let seen: Vec<_> = stream
            .collect(2, WAIT)
            .await
            .into_iter()
            .map(|e| e.data)
            .collect();
        assert_eq!(seen, ["secret", "public"]);
    }
    assert_eq!(
        anonymous.next_within(WAIT).await.map(|e| e.data).as_deref(),
        Some("public")
    );
    assert_eq!(anonymous.next_within(QUIET).await, None);

    assert!(
        expiring.ends_within(WAIT).await,
        "the stream ends at the token's expiry"
    );

    // A 0.x token is refused outright, with the RFC 6750 answer.
    let legacy = jsonwebtoken::encode(
        &Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"mercure": {"subscribe": ["*"]}}),
        &EncodingKey::from_secret(SUBSCRIBER_KEY.as_bytes()),
    )
    .expect("sign");
    let response = get(&client, &hub, &[topic])
        .bearer_auth(legacy)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 401);
    assert_eq!(
        challenge_error(response.headers()).as_deref(),
        Some("invalid_token")
    );
}
