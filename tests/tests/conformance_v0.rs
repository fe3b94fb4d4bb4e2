//! Conformance of the development hub to protocol 0.x, written from the Mercure specification
//! (`spec/mercure.md`) and the reference hub v0.24.2 (`publish.go`, `authorization.go`,
//! `subscribe.go`, `bolt.go`, `topicselector.go`): one row per publish rule, then the subscribe
//! rules. References are `file:line` at the reference's `v0.24.2` tag.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{EncodingKey, Header};
use mercure_track::Update;
use mercure_track::hub::{DevHub, DevHubConfig, RunningHub};
use mercure_track::publisher::JwtKey;
use mercure_track_tests::sse::{SseError, SseStream, open, subscribe};
use serde_json::{Value, json};

const PUBLISHER_KEY: &str = "publisher-conformance-key-0123456789abcdef";
const SUBSCRIBER_KEY: &str = "subscriber-conformance-key-0123456789abcdef";
const ALLOWED_ORIGIN: &str = "https://app.example";
const WAIT: Duration = Duration::from_secs(5);
const QUIET: Duration = Duration::from_millis(300);
const FORM: &str = "application/x-www-form-urlencoded";

async fn start_hub() -> RunningHub {
    start_hub_with(|c| c).await
}

async fn start_hub_with(configure: impl FnOnce(DevHubConfig) -> DevHubConfig) -> RunningHub {
    let config = configure(
        DevHubConfig::new(JwtKey::new(PUBLISHER_KEY), JwtKey::new(SUBSCRIBER_KEY))
            .publish_origins([ALLOWED_ORIGIN]),
    );
    DevHub::new(config)
        .expect("hub config")
        .bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind")
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

fn sign(key: &str, algorithm: jsonwebtoken::Algorithm, claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(algorithm),
        claims,
        &EncodingKey::from_secret(key.as_bytes()),
    )
    .expect("sign")
}

fn publisher_token(claims: Value) -> String {
    sign(PUBLISHER_KEY, jsonwebtoken::Algorithm::HS256, &claims)
}

fn subscriber_token(claims: Value) -> String {
    sign(SUBSCRIBER_KEY, jsonwebtoken::Algorithm::HS256, &claims)
}

fn publish_all() -> Value {
    json!({"mercure": {"publish": ["*"]}})
}

/// How a row presents its token.
enum Auth {
    None,
    Bearer(String),
    /// Raw `Authorization` header values, each sent as its own header.
    Headers(Vec<String>),
    Query(String),
    /// The cookie, with optional `Origin` and `Referer`.
    Cookie {
        token: String,
        origin: Option<&'static str>,
        referer: Option<&'static str>,
    },
}

/// One publish request and the reference hub's answer to it.
struct Row {
    rule: &'static str,
    auth: Auth,
    content_type: Option<&'static str>,
    query: &'static str,
    body: String,
    status: u16,
    /// The answer's body, when the rule is about it.
    answer: Option<&'static str>,
}

fn row(rule: &'static str, body: impl Into<String>, status: u16) -> Row {
    Row {
        rule,
        auth: Auth::Bearer(publisher_token(publish_all())),
        content_type: Some(FORM),
        query: "",
        body: body.into(),
        status,
        answer: None,
    }
}

impl Row {
    fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    fn claims(self, claims: Value) -> Self {
        self.auth(Auth::Bearer(publisher_token(claims)))
    }

    fn content_type(mut self, content_type: Option<&'static str>) -> Self {
        self.content_type = content_type;
        self
    }

    fn query(mut self, query: &'static str) -> Self {
        self.query = query;
        self
    }

    fn answer(mut self, answer: &'static str) -> Self {
        self.answer = Some(answer);
        self
    }
}

fn topics(count: usize) -> String {
    (0..count)
        .map(|i| format!("topic=t{i}&"))
        .collect::<String>()
        + "data=x"
}

/// A form body of exactly `size` bytes.
fn body_of_size(size: usize) -> String {
    let head = "topic=big&data=";
    format!("{head}{}", "x".repeat(size - head.len()))
}

fn rows() -> Vec<Row> {
    let hour = now() + 3600.0;
    let good = publisher_token(publish_all());
    vec![
        // --- authorization (authorization.go, publish.go:148) ---
        row("no token: 401 (publish.go:148)", "topic=a&data=x", 401).auth(Auth::None),
        row("valid bearer token: 200, the body is the id (publish.go:244)", "topic=a&data=x&id=first", 200)
            .answer("first"),
        row("two Authorization headers: 401 (authorization.go:81)", "topic=a&data=x", 401)
            .auth(Auth::Headers(vec![format!("Bearer {good}"), format!("Bearer {good}")])),
        row("Authorization not Bearer: 401 (authorization.go:81)", "topic=a&data=x", 401)
            .auth(Auth::Headers(vec![format!("Token  {good}")])),
        row("Authorization shorter than 48 bytes: 401 (authorization.go:81)", "topic=a&data=x", 401)
            .auth(Auth::Headers(vec!["Bearer abc.def.ghi".into()])),
        row("wrong key: 401 (authorization.go:146)", "topic=a&data=x", 401)
            .auth(Auth::Bearer(sign("another-key-0123456789abcdefghijkl", jsonwebtoken::Algorithm::HS256, &publish_all()))),
        row("another algorithm than configured: 401 (jwtkeyfunc.go:47)", "topic=a&data=x", 401)
            .auth(Auth::Bearer(sign(PUBLISHER_KEY, jsonwebtoken::Algorithm::HS384, &publish_all()))),
        row("expired, no leeway: 401 (golang-jwt v5 default)", "topic=a&data=x", 401)
            .claims(json!({"mercure": {"publish": ["*"]}, "exp": now() as u64 - 1})),
        row("fractional exp in the future: 200 (NumericDate is a JSON number)", "topic=a&data=x", 200)
            .claims(json!({"mercure": {"publish": ["*"]}, "exp": hour + 0.5})),
        row("exp as a string: 401 (NumericDate)", "topic=a&data=x", 401)
            .claims(json!({"mercure": {"publish": ["*"]}, "exp": format!("{}", hour as u64)})),
        row("nbf in the future: 401 (golang-jwt v5 default)", "topic=a&data=x", 401)
            .claims(json!({"mercure": {"publish": ["*"]}, "nbf": hour})),
        row("no mercure.publish: 401 (publish.go:148)", "topic=a&data=x", 401)
            .claims(json!({"mercure": {"subscribe": ["*"]}})),
        row("mercure.publish null: 401 (publish.go:148)", "topic=a&data=x", 401)
            .claims(json!({"mercure": {"publish": null}})),
        row("mercure.publish a string: 401 (claims type)", "topic=a&data=x", 401)
            .claims(json!({"mercure": {"publish": "*"}})),
        row("namespaced claim: 200 (authorization.go:156)", "topic=a&data=x", 200)
            .claims(json!({"https://mercure.rocks/": {"publish": ["*"]}})),
        row("namespaced claim wins over mercure: 401 (authorization.go:156)", "topic=a&data=x", 401)
            .claims(json!({"mercure": {"publish": ["*"]}, "https://mercure.rocks/": {"subscribe": ["*"]}})),
        row("1 001 publish selectors: 401 (authorization.go:160)", "topic=a&data=x", 401)
            .claims(json!({"mercure": {"publish": (0..1001).map(|i| format!("s{i}")).chain(["*".to_owned()]).collect::<Vec<_>>()}})),
        row("token in the authorization query parameter: 200 (authorization.go:89)", "topic=a&data=x", 200)
            .auth(Auth::Query(good.clone())),
        row("authorization query parameter under 41 bytes: 401 (authorization.go:89)", "topic=a&data=x", 401)
            .auth(Auth::Query("abc.def.ghi".into())),
        row("cookie without Origin or Referer: 401 (authorization.go:112)", "topic=a&data=x", 401)
            .auth(Auth::Cookie { token: good.clone(), origin: None, referer: None }),
        row("cookie from an origin not allowed: 401 (authorization.go:137)", "topic=a&data=x", 401)
            .auth(Auth::Cookie { token: good.clone(), origin: Some("https://evil.example"), referer: None }),
        row("cookie from an allowed origin: 200 (authorization.go:127)", "topic=a&data=x", 200)
            .auth(Auth::Cookie { token: good.clone(), origin: Some(ALLOWED_ORIGIN), referer: None }),
        row("cookie with the Referer of an allowed origin: 200 (authorization.go:114)", "topic=a&data=x", 200)
            .auth(Auth::Cookie { token: good.clone(), origin: None, referer: Some("https://app.example/page?x=1") }),
        // --- the form (Go's Request.ParseForm, publish.go:159) ---
        row("no content type: the form is empty, no topic: 400 (publish.go:166)", "topic=a&data=x", 400)
            .content_type(None),
        row("JSON content type: the form is empty, no topic: 400 (publish.go:166)", r#"{"topic":"a"}"#, 400)
            .content_type(Some("application/json")),
        row("malformed content type: 400 (publish.go:159)", "topic=a&data=x", 400)
            .content_type(Some("application/x-www-form-urlencoded; charset")),
        row("content type with parameters: 200", "topic=a&data=x", 200)
            .content_type(Some("Application/X-WWW-Form-Urlencoded; charset=UTF-8")),
        row("bad % escape: 400 (publish.go:159)", "topic=a&data=%zz", 400),
        row("; separator: 400 (publish.go:159)", "topic=a;data=x", 400),
        row("bad % escape in the URL query: 400 (publish.go:159)", "topic=a&data=x", 400).query("?x=%zz"),
        row("3 MiB body: 200 (under Go's 10 MiB form limit)", body_of_size(3 << 20), 200),
        row("10 MiB body: 200 (Go's parsePostForm limit)", body_of_size(10 << 20), 200),
        row("10 MiB + 1 byte body: 400 (Go's parsePostForm limit)", body_of_size((10 << 20) + 1), 400),
        // --- fields (publish.go:165-220) ---
        row("no topic: 400 (publish.go:166)", "data=x", 400),
        row("1 000 topics: 200 (publish.go:175)", topics(1000), 200),
        row("1 001 topics: 400 (publish.go:175)", topics(1001), 400),
        row("retry not a number: 400 (publish.go:185)", "topic=a&data=x&retry=soon", 400),
        row("negative retry: 400 (publish.go:185)", "topic=a&data=x&retry=-1", 400),
        row("retry with a sign: 400 (publish.go:185)", "topic=a&data=x&retry=%2B5", 400),
        row("retry over 64 bits: 400 (publish.go:185)", "topic=a&data=x&retry=18446744073709551616", 400),
        row("empty retry: no retry, 200 (publish.go:183)", "topic=a&data=x&retry=", 200),
        row("repeated retry: the first counts, 200 (publish.go:183)", "topic=a&data=x&retry=5&retry=soon", 200),
        row("repeated id: the first counts (publish.go:220)", "topic=a&data=x&id=one&id=two", 200)
            .answer("one"),
        row("id with a line feed: 400 (publish.go:69)", "topic=a&data=x&id=a%0Ab", 400),
        row("id with a carriage return: 400 (publish.go:69)", "topic=a&data=x&id=a%0Db", 400),
        row("id with a NUL: 400 (publish.go:69)", "topic=a&data=x&id=a%00b", 400),
        row("type with a line feed: 400 (publish.go:73)", "topic=a&data=x&type=a%0Ab", 400),
        row("topic in the hub's namespace: 403 (publish.go:64, 229)", "topic=https%3A%2F%2Fex.com%2F.well-known%2Fmercure%2Fsubscriptions&data=x", 403),
        row("hub's namespace not covered by the token: 401 first (publish.go:193)", "topic=x%2F.well-known%2Fmercure&data=x", 401)
            .claims(json!({"mercure": {"publish": ["books/{id}"]}})),
        row("topic covered by a template: 200 (publish.go:193)", "topic=books%2F1&data=x", 200)
            .claims(json!({"mercure": {"publish": ["books/{id}"]}})),
        row("one topic not covered: 401 (publish.go:193)", "topic=books%2F1&topic=users%2F1&data=x", 401)
            .claims(json!({"mercure": {"publish": ["books/{id}"]}})),
        row("private topic not covered: 401 (publish.go:196)", "topic=users%2F1&data=x&private=on", 401)
            .claims(json!({"mercure": {"publish": ["books/{id}"]}})),
        row("empty publish list: 401 (publish.go:193)", "topic=a&data=x", 401)
            .claims(json!({"mercure": {"publish": []}})),
        row("empty topic value with *: 200", "topic=&data=x", 200),
    ]
}

/// Every publish rule of the reference hub, one request each.
#[tokio::test]
async fn publish_rules() {
    let hub = start_hub().await;
    let client = reqwest::Client::new();
    let mut failures = Vec::new();
    for row in rows() {
        let mut request = client.post(format!("{}{}", hub.url(), row.query));
        if let Some(content_type) = row.content_type {
            request = request.header("content-type", content_type);
        }
        request = match &row.auth {
            Auth::None => request,
            Auth::Bearer(token) => request.bearer_auth(token),
            Auth::Headers(values) => values
                .iter()
                .fold(request, |r, v| r.header("authorization", v)),
            Auth::Query(token) => request.query(&[("authorization", token)]),
            Auth::Cookie {
                token,
                origin,
                referer,
            } => {
                let mut request = request.header("cookie", format!("mercureAuthorization={token}"));
                if let Some(origin) = origin {
                    request = request.header("origin", *origin);
                }
                if let Some(referer) = referer {
                    request = request.header("referer", *referer);
                }
                request
            }
        };
        let response = tokio::time::timeout(WAIT * 4, request.body(row.body).send())
            .await
            .expect("the hub answers in time")
            .expect("request");
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        if status != row.status {
            failures.push(format!("{}: got {status} ({body})", row.rule));
        } else if let Some(answer) = row.answer
            && body != answer
        {
            failures.push(format!("{}: answered {body:?}", row.rule));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

async fn post(hub: &RunningHub, body: &str) -> (u16, String) {
    let response = reqwest::Client::new()
        .post(hub.url())
        .bearer_auth(publisher_token(publish_all()))
        .header("content-type", FORM)
        .body(body.to_owned())
        .send()
        .await
        .expect("post");
    let status = response.status().as_u16();
    (status, response.text().await.unwrap_or_default())
}

async fn published_id(hub: &RunningHub, body: &str) -> String {
    let (status, id) = post(hub, body).await;
    assert_eq!(status, 200, "{body}: {id}");
    id
}

/// Repeated fields: the first value counts; `private` with any value is private; a generated
/// id is a `urn:uuid:`; every repeated `topic` counts (publish.go:165, 192, 220).
#[tokio::test]
async fn fields_as_the_subscriber_receives_them() {
    let hub = start_hub().await;
    let client = reqwest::Client::new();
    let mut stream = subscribe(&client, &hub.url(), &["a", "b"], None, None)
        .await
        .expect("subscribe");
    let id = published_id(
        &hub,
        "topic=a&data=first&data=second&type=t1&type=t2&retry=7&retry=9",
    )
    .await;
    assert!(id.starts_with("urn:uuid:"), "{id}");
    let event = stream.next_within(WAIT).await.expect("event");
    assert_eq!(event.data, "first");
    assert_eq!(event.event.as_deref(), Some("t1"));
    assert_eq!(event.retry, Some(7));
    assert_eq!(event.id.as_deref(), Some(id.as_str()));
    // `private=off` is private: an anonymous subscriber does not receive it.
    published_id(&hub, "topic=a&data=hidden&private=off").await;
    published_id(&hub, "topic=x&topic=b&data=second-topic").await;
    let event = stream.next_within(WAIT).await.expect("event");
    assert_eq!(event.data, "second-topic");
    assert_eq!(stream.next_within(QUIET).await, None);
}

/// URI template selectors as the reference's uritemplate library reads them
/// (topicselector.go:95): every expression optional, `,` inside a value, no spaces, all
/// operators; a selector that is not a template matches only itself.
#[tokio::test]
async fn selectors_follow_rfc_6570_as_the_reference() {
    let hub = start_hub().await;
    let client = reqwest::Client::new();
    let cases: &[(&str, &str, bool)] = &[
        ("orders/{id}", "orders/abc", true),
        ("orders/{id}", "orders/", true),
        ("orders/{id}", "orders/a,b", true),
        ("orders/{id}", "orders/a b", false),
        ("orders/{id}", "orders/a/b", false),
        (
            "https://example.com/books{?topic}",
            "https://example.com/books?topic=x",
            true,
        ),
        (
            "https://example.com/{+path}",
            "https://example.com/a/b?c",
            true,
        ),
        ("items{/path*}", "items/a/b/c", true),
        ("orders/{id", "orders/{id", true),
        ("orders/{id", "orders/1", false),
    ];
    for (n, (selector, topic, expected)) in cases.iter().enumerate() {
        let mut stream = subscribe(&client, &hub.url(), &[selector], None, None)
            .await
            .expect("subscribe");
        let body = Update::new([*topic], format!("case {n}")).form_body();
        published_id(&hub, &body).await;
        let received = stream
            .next_within(if *expected { WAIT } else { QUIET })
            .await;
        assert_eq!(
            received.is_some(),
            *expected,
            "{selector} against {topic}: {received:?}"
        );
    }
}

/// Selectors that make a backtracking matcher exponential cost one linear pass: the test
/// asserts the results; the guard deadline only stops a hang.
#[tokio::test]
async fn pathological_selectors_do_not_hang_the_hub() {
    let hub = start_hub().await;
    let client = reqwest::Client::new();
    let selector: String = (0..12).map(|i| format!("{{+v{i}}}")).collect::<String>() + "Z";
    let mut stream = subscribe(&client, &hub.url(), &[&selector], None, None)
        .await
        .expect("subscribe");
    let topic = "a".repeat(5_000);
    let guard = Duration::from_secs(30);
    tokio::time::timeout(guard, async {
        published_id(&hub, &format!("topic={topic}&data=no")).await;
        published_id(&hub, &format!("topic={topic}Z&data=yes")).await;
        let event = stream.next_within(WAIT).await.expect("matching update");
        assert_eq!(event.data, "yes");
        assert_eq!(stream.next_within(QUIET).await, None);
    })
    .await
    .expect("the hub kept answering");
}

/// At most 1 000 selectors per subscription (subscribe.go:241); none is 400 (subscribe.go:235).
#[tokio::test]
async fn selectors_per_subscription_are_bounded() {
    let hub = start_hub().await;
    let client = reqwest::Client::new();
    let many: Vec<String> = (0..1001).map(|i| format!("t{i}")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    assert!(matches!(
        subscribe(&client, &hub.url(), &refs, None, None).await,
        Err(SseError::Status(400))
    ));
    assert!(
        subscribe(&client, &hub.url(), &refs[..1000], None, None)
            .await
            .is_ok()
    );
    assert!(matches!(
        subscribe(&client, &hub.url(), &[], None, None).await,
        Err(SseError::Status(400))
    ));
}

fn request(
    client: &reqwest::Client,
    hub: &RunningHub,
    query: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    client.get(hub.url()).query(query)
}

fn last_event_id(stream: &SseStream) -> Option<String> {
    stream
        .headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// `Last-Event-ID`: the header wins over the query parameter (spec "Reconciliation"; the
/// reference's subscribe.go:330); the response names the requested id when it is in the
/// history; `earliest` replays everything the subscriber may see and answers `earliest`;
/// without a requested id there is no header (subscribe.go:317).
#[tokio::test]
async fn last_event_id_rules() {
    let hub = start_hub().await;
    let client = reqwest::Client::new();
    for n in 1..=3 {
        published_id(&hub, &format!("topic=a&data={n}&id=id-{n}")).await;
    }
    published_id(&hub, "topic=a&data=private&id=id-private&private=on").await;
    published_id(&hub, "topic=other&data=other&id=id-other").await;

    let mut both = open(
        request(&client, &hub, &[("topic", "a"), ("lastEventID", "id-1")])
            .header("last-event-id", "id-2"),
    )
    .await
    .expect("subscribe");
    assert_eq!(last_event_id(&both).as_deref(), Some("id-2"));
    assert_eq!(
        both.next_within(WAIT).await.map(|e| e.data).as_deref(),
        Some("3")
    );
    assert_eq!(
        both.next_within(QUIET).await,
        None,
        "the private update is not replayed"
    );

    let mut query = open(request(
        &client,
        &hub,
        &[("topic", "a"), ("lastEventID", "id-1")],
    ))
    .await
    .expect("subscribe");
    assert_eq!(last_event_id(&query).as_deref(), Some("id-1"));
    let replayed: Vec<_> = query
        .collect(2, WAIT)
        .await
        .into_iter()
        .map(|e| e.data)
        .collect();
    assert_eq!(replayed, ["2", "3"]);

    let mut earliest = open(request(
        &client,
        &hub,
        &[("topic", "a"), ("lastEventID", "earliest")],
    ))
    .await
    .expect("subscribe");
    assert_eq!(last_event_id(&earliest).as_deref(), Some("earliest"));
    let replayed: Vec<_> = earliest
        .collect(3, WAIT)
        .await
        .into_iter()
        .map(|e| e.data)
        .collect();
    assert_eq!(replayed, ["1", "2", "3"]);
    assert_eq!(earliest.next_within(QUIET).await, None);

    let none = open(request(&client, &hub, &[("topic", "a")]))
        .await
        .expect("subscribe");
    assert_eq!(last_event_id(&none), None);
}

/// An id not in the history replays nothing; the response names the newest update this
/// subscriber may see (bolt.go:289), never a private one it may not see nor one of topics it
/// did not subscribe to; `earliest` when there is none.
#[tokio::test]
async fn unknown_last_event_id_discloses_nothing() {
    let hub = start_hub().await;
    let client = reqwest::Client::new();
    let mut empty = open(request(
        &client,
        &hub,
        &[("topic", "a"), ("lastEventID", "nope")],
    ))
    .await
    .expect("subscribe");
    assert_eq!(last_event_id(&empty).as_deref(), Some("earliest"));
    assert_eq!(empty.next_within(QUIET).await, None);

    published_id(&hub, "topic=a&data=public&id=public-a").await;
    published_id(&hub, "topic=a&data=secret&id=secret-a&private=on").await;
    published_id(&hub, "topic=b&data=b&id=public-b").await;
    let mut anonymous = open(request(
        &client,
        &hub,
        &[("topic", "a"), ("lastEventID", "nope")],
    ))
    .await
    .expect("subscribe");
    assert_eq!(last_event_id(&anonymous).as_deref(), Some("public-a"));
    assert_eq!(anonymous.next_within(QUIET).await, None);

    let unrelated = open(request(
        &client,
        &hub,
        &[("topic", "c"), ("lastEventID", "nope")],
    ))
    .await
    .expect("subscribe");
    assert_eq!(last_event_id(&unrelated).as_deref(), Some("earliest"));

    let token = subscriber_token(json!({"mercure": {"subscribe": ["a"]}}));
    let authorized =
        open(request(&client, &hub, &[("topic", "a"), ("lastEventID", "nope")]).bearer_auth(token))
            .await
            .expect("subscribe");
    assert_eq!(last_event_id(&authorized).as_deref(), Some("secret-a"));
}

/// Tokens: no leeway on `exp`, `nbf` honoured (golang-jwt v5 defaults, authorization.go:146);
/// the stream ends when the subscriber's token expires (subscribe.go:90), so no update is
/// delivered under an expired authorization.
#[tokio::test]
async fn subscriber_token_lifetime() {
    let hub = start_hub().await;
    let client = reqwest::Client::new();
    let expired =
        subscriber_token(json!({"mercure": {"subscribe": ["a"]}, "exp": now() as u64 - 1}));
    assert!(matches!(
        subscribe(&client, &hub.url(), &["a"], Some(&expired), None).await,
        Err(SseError::Status(401))
    ));
    let early = subscriber_token(json!({"mercure": {"subscribe": ["a"]}, "nbf": now() + 3600.0}));
    assert!(matches!(
        subscribe(&client, &hub.url(), &["a"], Some(&early), None).await,
        Err(SseError::Status(401))
    ));

    let short = subscriber_token(json!({"mercure": {"subscribe": ["a"]}, "exp": now() + 3.0}));
    let mut stream = subscribe(&client, &hub.url(), &["a"], Some(&short), None)
        .await
        .expect("subscribe");
    published_id(&hub, "topic=a&data=before&private=on").await;
    assert_eq!(
        stream.next_within(WAIT).await.map(|e| e.data).as_deref(),
        Some("before")
    );
    assert!(
        stream.ends_within(WAIT).await,
        "the stream ends at the token's expiry"
    );
    published_id(&hub, "topic=a&data=after&private=on").await;
    assert_eq!(stream.next_within(QUIET).await, None);
}

/// The history is bounded in bytes as well as in count: `earliest` replays only the newest
/// updates that fit.
#[tokio::test]
async fn history_is_bounded_in_bytes() {
    let hub = start_hub_with(|c| c.history_bytes(1 << 20)).await;
    let client = reqwest::Client::new();
    let chunk = "x".repeat(100_000);
    for n in 0..30 {
        published_id(&hub, &format!("topic=a&id=n{n}&data={chunk}")).await;
    }
    let mut earliest = open(request(
        &client,
        &hub,
        &[("topic", "a"), ("lastEventID", "earliest")],
    ))
    .await
    .expect("subscribe");
    let replayed: Vec<_> = earliest
        .collect(30, QUIET)
        .await
        .into_iter()
        .filter_map(|e| e.id)
        .collect();
    let expected: Vec<_> = (30 - replayed.len()..30).map(|n| format!("n{n}")).collect();
    assert_eq!(replayed, expected, "the newest updates, in order");
    assert!(
        (5..=10).contains(&replayed.len()),
        "{} kept",
        replayed.len()
    );
}

/// The cookie on a subscription (a safe method) needs no `Origin` (authorization.go:103); an
/// anonymous subscription is refused when anonymous access is off (subscribe.go:219).
#[tokio::test]
async fn subscriber_cookie_and_anonymous_access() {
    let hub = start_hub_with(|c| c.anonymous(false)).await;
    let client = reqwest::Client::new();
    assert!(matches!(
        subscribe(&client, &hub.url(), &["a"], None, None).await,
        Err(SseError::Status(401))
    ));
    let token = subscriber_token(json!({"mercure": {"subscribe": ["a"]}}));
    let mut stream = open(
        request(&client, &hub, &[("topic", "a")])
            .header("cookie", format!("mercureAuthorization={token}")),
    )
    .await
    .expect("subscribe with the cookie");
    // The `authorization` query parameter too (authorization.go:88).
    let mut query = open(request(
        &client,
        &hub,
        &[("topic", "a"), ("authorization", token.as_str())],
    ))
    .await
    .expect("subscribe with the query parameter");
    published_id(&hub, "topic=a&data=private&private=on").await;
    for stream in [&mut stream, &mut query] {
        assert_eq!(
            stream.next_within(WAIT).await.map(|e| e.data).as_deref(),
            Some("private")
        );
    }
}
