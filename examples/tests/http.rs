//! The example application over HTTP, as users will copy it: keys made by the database, 404 for
//! what does not exist, 422 for references to rows that do not exist, no 500 for any input, a
//! subscription cookie only for an existing order's own topic, SIGTERM that drains, and no
//! password in the banner or the startup errors. SQLite and PostgreSQL where the database
//! matters (the PostgreSQL variants are ignored without `MERCURE_TRACK_PG_URL`).

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mercure_track_examples::app::{self, RunningApp};
use mercure_track_examples::config::{AppConfig, DEVELOPMENT_KEY};
use mercure_track_examples::load::Scratch;
use serde_json::Value;
use support::pg_scratch as postgres_database;

mod support;

/// The application on a fresh database.
struct App {
    running: RunningApp,
    database: Scratch,
    http: reqwest::Client,
}

impl App {
    async fn start(database: Scratch) -> Self {
        Self::start_with(database, false).await
    }

    /// The application on `database`, with `CAPTURE=1` when `capture`.
    async fn start_with(database: Scratch, capture: bool) -> Self {
        let mut config = AppConfig::embedded_on_free_port(Duration::from_millis(5));
        config.database_url = Some(database.url().to_owned());
        config.capture = capture;
        let running = app::start(config).await.expect("start the application");
        Self {
            running,
            database,
            http: reqwest::Client::new(),
        }
    }

    async fn sqlite() -> Self {
        Self::start(Scratch::sqlite()).await
    }

    async fn postgres() -> Self {
        Self::start(postgres_database().await).await
    }

    /// Subscribes to `topic` at the embedded hub (anonymous: public updates only). The hub
    /// subscribes before it answers: every update published after this returns is received.
    async fn subscribe(&self, topic: &str) -> Events {
        let response = self
            .http
            .get(format!("{}/.well-known/mercure", self.running.url))
            .query(&[("topic", topic)])
            .send()
            .await
            .expect("a subscription");
        assert_eq!(response.status(), 200, "subscribing to {topic}");
        Events {
            response,
            buffer: String::new(),
        }
    }

    /// Runs `sql` with the examples' `plain-sql` program: another process, no session.
    async fn plain_sql(&self, sql: &str) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_plain-sql"));
        command.arg(sql).env("DATABASE_URL", self.database.url());
        let output = tokio::task::spawn_blocking(move || command.output())
            .await
            .expect("join")
            .expect("run plain-sql");
        assert!(
            output.status.success(),
            "plain-sql {sql}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// `method path` (the path sent as written, escapes included); the status and body.
    async fn request(&self, method: &str, path: &str) -> (u16, String) {
        if path.len() > 60_000 {
            return self.raw_request(method, path).await;
        }
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let response = self
            .http
            .request(method, format!("{}{path}", self.running.url))
            .send()
            .await
            .expect("an answer");
        let status = response.status().as_u16();
        (status, response.text().await.unwrap_or_default())
    }

    /// The same over a plain socket, for what an HTTP client refuses to send (a 1 MB URI):
    /// the status line of the answer, or 0 when the server closed without one.
    async fn raw_request(&self, method: &str, path: &str) -> (u16, String) {
        use std::io::{Read, Write};
        let addr = self.running.url.trim_start_matches("http://").to_owned();
        let request =
            format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        tokio::task::spawn_blocking(move || {
            let mut stream = std::net::TcpStream::connect(&addr).expect("connect");
            stream
                .set_read_timeout(Some(Duration::from_secs(30)))
                .expect("a timeout");
            // The server may answer (and close) before it has read everything.
            let _ = stream.write_all(request.as_bytes());
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer);
            let answer = String::from_utf8_lossy(&answer).into_owned();
            let status = answer
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            (status, answer)
        })
        .await
        .expect("the request")
    }

    async fn json(&self, path: &str) -> Value {
        let (status, body) = self.request("GET", path).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        serde_json::from_str(&body).expect("JSON")
    }

    async fn finish(self) {
        assert_eq!(self.running.shutdown(Duration::from_secs(30)).await, 0);
        self.database.finish().await;
    }
}

/// A hub subscription, read event by event.
struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    /// The `data` of the next event; fails after `wait`.
    async fn next(&mut self, wait: Duration) -> Value {
        let until = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                let data: String = event
                    .lines()
                    .filter_map(|line| line.strip_prefix("data:"))
                    .map(str::trim_start)
                    .collect();
                if !data.is_empty() {
                    return serde_json::from_str(&data).expect("JSON data");
                }
                continue;
            }
            let chunk = tokio::time::timeout_at(until, self.response.chunk())
                .await
                .unwrap_or_else(|_| panic!("no event within {wait:?}; received {:?}", self.buffer))
                .expect("the stream")
                .expect("the stream ended");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

/// Declares one test per database for an `async fn(&App)`.
macro_rules! on_both_databases {
    ($check:ident) => {
        mod $check {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let app = super::App::sqlite().await;
                super::$check(&app).await;
                app.finish().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            #[cfg_attr(
                not(mercure_track_pg),
                ignore = "needs PostgreSQL: set MERCURE_TRACK_PG_URL"
            )]
            async fn postgres() {
                let app = super::App::postgres().await;
                super::$check(&app).await;
                app.finish().await;
            }
        }
    };
}

/// 20 clients start colorings at once: each gets its own key, made by the database.
async fn concurrent_colorings_get_distinct_keys(app: &App) {
    let mut requests = Vec::new();
    for client in 0..20 {
        let http = app.http.clone();
        let url = app.running.url.clone();
        requests.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 0..5 {
                let image = 1 + (client + n) % 4;
                let response = http
                    .post(format!("{url}/api/images/{image}/colorings"))
                    .send()
                    .await
                    .expect("an answer");
                let status = response.status().as_u16();
                let body: Value =
                    serde_json::from_str(&response.text().await.expect("a body")).expect("JSON");
                assert_eq!(status, 202, "{body}");
                ids.push(body["coloring_version_id"].as_i64().expect("an id"));
            }
            ids
        }));
    }
    let mut ids = Vec::new();
    for request in requests {
        ids.extend(request.await.expect("a client"));
    }
    let distinct: BTreeSet<i64> = ids.iter().copied().collect();
    assert_eq!(distinct.len(), 100, "duplicate keys: {ids:?}");
}
on_both_databases!(concurrent_colorings_get_distinct_keys);

/// An unknown or negative image id is 404, for every image route.
async fn unknown_images_answer_404(app: &App) {
    for image in ["424242", "-1", "0"] {
        for path in [
            format!("/api/images/{image}/colorings"),
            format!("/api/images/{image}/select-coloring/1"),
            format!("/api/images/{image}/select-svg/1"),
        ] {
            let (status, body) = app.request("POST", &path).await;
            assert_eq!(status, 404, "POST {path}: {body}");
        }
    }
    for path in ["/api/orders/ord-9999", "/orders/ord-9999"] {
        let (status, body) = app.request("GET", path).await;
        assert_eq!(status, 404, "GET {path}: {body}");
    }
    for path in [
        "/api/orders/ord-9999/advance",
        "/api/orders/ord-9999/ingest",
    ] {
        let (status, body) = app.request("POST", path).await;
        assert_eq!(status, 404, "POST {path}: {body}");
    }
}
on_both_databases!(unknown_images_answer_404);

/// Selecting a coloring or svg that does not exist, or belongs to another image, is 422 and
/// stores nothing; selecting the image's own is 200.
async fn references_to_missing_rows_answer_422(app: &App) {
    let (status, body) = app.request("POST", "/api/images/2/colorings").await;
    assert_eq!(status, 202, "{body}");
    let other_image_coloring =
        serde_json::from_str::<Value>(&body).expect("JSON")["coloring_version_id"]
            .as_i64()
            .expect("an id");
    for path in [
        "/api/images/1/select-coloring/424242".to_owned(),
        format!("/api/images/1/select-coloring/{other_image_coloring}"),
        "/api/images/1/select-svg/424242".to_owned(),
        "/api/images/1/select-svg/2".to_owned(), // svg 2 is image 3's
    ] {
        let (status, body) = app.request("POST", &path).await;
        assert_eq!(status, 422, "POST {path}: {body}");
    }
    let order = app.json("/api/orders/ord-1001").await;
    let image = &order["images"][0];
    assert_eq!(image["id"], 1);
    assert!(image["selected_coloring_id"].is_null(), "{order}");
    assert!(image["selected_svg_id"].is_null(), "{order}");

    let (status, body) = app.request("POST", "/api/images/1/select-svg/1").await;
    assert_eq!(status, 200, "{body}");
    let order = app.json("/api/orders/ord-1001").await;
    assert_eq!(order["images"][0]["selected_svg_id"], 1, "{order}");
}
on_both_databases!(references_to_missing_rows_answer_422);

/// `POST /api/approve-ready` approves every order ready for review in one write and answers
/// their keys; a second call finds none (200, empty); the request carries no input that could
/// select other rows (a query string is ignored); other methods and paths are 4xx.
async fn approve_ready_approves_the_waiting_orders_once(app: &App) {
    let (status, body) = app
        .request("POST", "/api/approve-ready?status=NEW&id=ord-1001")
        .await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(
        body["approved"],
        serde_json::json!(["ord-1003", "ord-1004", "ord-1005"])
    );
    let orders = app.json("/api/orders").await;
    let statuses: Vec<(&str, &str)> = orders
        .as_array()
        .expect("a list")
        .iter()
        .map(|o| {
            (
                o["id"].as_str().unwrap_or(""),
                o["status"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        statuses,
        [
            ("ord-1001", "NEW"),
            ("ord-1002", "PROCESSING"),
            ("ord-1003", "APPROVED"),
            ("ord-1004", "APPROVED"),
            ("ord-1005", "APPROVED"),
        ]
    );
    let (status, body) = app.request("POST", "/api/approve-ready").await;
    assert_eq!((status, body.as_str()), (200, r#"{"approved":[]}"#));
    for (method, path, expected) in [
        ("GET", "/api/approve-ready", 405),
        ("PUT", "/api/approve-ready", 405),
        ("POST", "/api/approve-ready/ord-1001", 404),
        ("POST", "/api/approve-ready/%00", 404),
    ] {
        let (status, body) = app.request(method, path).await;
        assert_eq!(status, expected, "{method} {path}: {body}");
    }
}
on_both_databases!(approve_ready_approves_the_waiting_orders_once);

/// Approvals racing with advances, 10 of each at once: each order ready for review is
/// approved once — by one approval or by one advance, never by both — and nothing is a 5xx.
async fn concurrent_approvals_approve_each_order_once(app: &App) {
    let mut requests = Vec::new();
    for n in 0..20 {
        let http = app.http.clone();
        let path = if n % 2 == 0 {
            "/api/approve-ready".to_owned()
        } else {
            format!("/api/orders/ord-100{}/advance", 3 + n % 3)
        };
        let url = format!("{}{path}", app.running.url);
        requests.push(tokio::spawn(async move {
            let response = http.post(url).send().await.expect("an answer");
            let status = response.status().as_u16();
            let body: Value =
                serde_json::from_str(&response.text().await.expect("a body")).expect("JSON");
            (path, status, body)
        }));
    }
    let mut approved = Vec::new();
    for request in requests {
        let (path, status, body) = request.await.expect("a client");
        match (path.as_str(), status) {
            ("/api/approve-ready", 200) => approved.extend(
                body["approved"]
                    .as_array()
                    .expect("keys")
                    .iter()
                    .map(|id| id.as_str().expect("a key").to_owned()),
            ),
            // An advance that won the race moved its order to APPROVED.
            (_, 200) => {
                assert_eq!(body["status"], "APPROVED", "{path}: {body}");
                approved.push(body["id"].as_str().expect("a key").to_owned());
            }
            // An advance that lost: the order has no next status.
            (_, 409) => {}
            _ => panic!("POST {path} answered {status}: {body}"),
        }
    }
    approved.sort();
    assert_eq!(approved, ["ord-1003", "ord-1004", "ord-1005"]);
}
on_both_databases!(concurrent_approvals_approve_each_order_once);

/// With `CAPTURE=1`: the set-based approval publishes its `list_update` once (its session takes
/// the rows its own transaction logged; the capture loop does not publish them again), and a
/// plain-SQL write from another process, with no session, publishes through the capture loop.
async fn captured_writes_publish_once(database: Scratch) {
    let app = App::start_with(database, true).await;
    let mut events = app.subscribe("orders").await;
    let (status, body) = app.request("POST", "/api/approve-ready").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        app.running.wait_idle(Duration::from_secs(30)).await,
        "the approval's publish did not finish"
    );
    app.plain_sql("UPDATE orders SET status = 'NEW' WHERE id = 'ord-1002'")
        .await;
    // The capture loop delivers the log in order: a second publish of the approval would come
    // before the plain-SQL write's update, or in it.
    let mut lists: Vec<Value> = Vec::new();
    let names_ord_1002 = |list: &Value| {
        list.as_array()
            .is_some_and(|ids| ids.contains(&"ord-1002".into()))
    };
    while !lists.iter().any(names_ord_1002) {
        let event = events.next(Duration::from_secs(30)).await;
        assert_eq!(event["type"], "list_update", "{event}");
        lists.push(event["order_ids"].clone());
        assert!(lists.len() <= 2, "published more than once: {lists:?}");
    }
    assert_eq!(
        lists,
        [
            serde_json::json!(["ord-1003", "ord-1004", "ord-1005"]),
            serde_json::json!(["ord-1002"])
        ]
    );
    let order = app.json("/api/orders/ord-1002").await;
    assert_eq!(order["order"]["status"], "NEW");
    app.finish().await;
}

mod captured_writes_publish_once {
    use super::{Scratch, captured_writes_publish_once, postgres_database};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sqlite() {
        captured_writes_publish_once(Scratch::sqlite()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[cfg_attr(
        not(mercure_track_pg),
        ignore = "needs PostgreSQL: set MERCURE_TRACK_PG_URL"
    )]
    async fn postgres() {
        captured_writes_publish_once(postgres_database().await).await;
    }
}

/// Odd input is a 4xx, never a 5xx: NUL bytes, bad escapes, invalid UTF-8, template characters,
/// huge and malformed numbers, a 1 MB id, wrong methods.
async fn no_input_answers_500(app: &App) {
    let huge = "a".repeat(1 << 20);
    let cases: Vec<(&str, String, Option<u16>)> = vec![
        ("GET", "/orders/ord-1001%00".into(), Some(404)),
        ("GET", "/orders/%00".into(), Some(404)),
        ("GET", "/api/orders/ord%00x".into(), Some(404)),
        ("POST", "/api/orders/ord-1001%00/advance".into(), Some(404)),
        ("POST", "/api/orders/%00/ingest".into(), Some(404)),
        ("GET", "/orders/%7B%2Bx%7D".into(), Some(404)),
        ("GET", "/api/orders/%C3%A9t%C3%A9".into(), Some(404)),
        ("GET", "/orders/%zz".into(), Some(404)),
        ("GET", "/api/orders/%E2%28%A1".into(), Some(400)),
        (
            "POST",
            "/api/orders/ord-1001/ingest?form=%zz".into(),
            Some(400),
        ),
        (
            "POST",
            "/api/orders/ord-1001/ingest?form=nope".into(),
            Some(400),
        ),
        (
            "POST",
            "/api/images/99999999999999999999/colorings".into(),
            Some(400),
        ),
        ("POST", "/api/images/abc/colorings".into(), Some(400)),
        (
            "POST",
            "/api/images/1/select-coloring/%00".into(),
            Some(400),
        ),
        ("POST", "/api/images/1/select-coloring/-5".into(), Some(422)),
        ("GET", "/api/orders/ord-1001/advance".into(), Some(405)),
        ("DELETE", "/api/orders/ord-1001".into(), Some(405)),
        ("PUT", "/".into(), Some(405)),
        ("GET", "/api/images/1/colorings".into(), Some(405)),
        ("GET", "/nowhere".into(), Some(404)),
        ("GET", format!("/api/orders/{}", &huge[..10_000]), Some(404)),
        ("GET", format!("/orders/{huge}"), None),
        ("POST", format!("/api/orders/{huge}/advance"), None),
    ];
    for (method, path, expected) in cases {
        let (status, body) = app.request(method, &path).await;
        let shown = &path[..path.len().min(60)];
        assert!(status < 500, "{method} {shown} answered {status}: {body}");
        assert!(status >= 400, "{method} {shown} answered {status}: {body}");
        if let Some(expected) = expected {
            assert_eq!(status, expected, "{method} {shown}: {body}");
        }
    }
}
on_both_databases!(no_input_answers_500);

/// The same action submitted twice at once (a double click), 50 times over: no 5xx.
async fn double_submits_never_answer_500(app: &App) {
    let actions = [
        "/api/orders/ord-1001/advance",
        "/api/orders/ord-1002/ingest",
        "/api/images/1/colorings",
        "/api/images/3/select-svg/2",
        "/api/orders/ord-1003/advance",
    ];
    let mut statuses = Vec::new();
    for round in 0..50 {
        let path = actions[round % actions.len()];
        let url = format!("{}{path}", app.running.url);
        let (first, second) = tokio::join!(app.http.post(&url).send(), app.http.post(&url).send());
        for response in [first, second] {
            let response = response.expect("an answer");
            statuses.push((path, response.status().as_u16()));
        }
    }
    let failed: Vec<_> = statuses.iter().filter(|(_, s)| *s >= 500).collect();
    assert!(
        failed.is_empty(),
        "{} of {} answered 5xx: {failed:?}",
        failed.len(),
        statuses.len()
    );
}
on_both_databases!(double_submits_never_answer_500);

/// Ten advances of one order at once: each 200 moved it one step (NEW → PROCESSING →
/// READY_FOR_REVIEW → APPROVED, each answered once), the others are 409; none read a status
/// another request was changing.
async fn concurrent_advances_move_one_step_each(app: &App) {
    let url = format!("{}/api/orders/ord-1001/advance", app.running.url);
    let answers = futures_join_all((0..10).map(|_| {
        let request = app.http.post(&url);
        async move {
            let response = request.send().await.expect("an answer");
            let status = response.status().as_u16();
            (status, response.text().await.unwrap_or_default())
        }
    }))
    .await;
    let mut moved_to: Vec<String> = answers
        .iter()
        .filter(|(status, _)| *status == 200)
        .map(|(_, body)| {
            serde_json::from_str::<Value>(body).expect("JSON")["status"]
                .as_str()
                .expect("a status")
                .to_owned()
        })
        .collect();
    moved_to.sort();
    assert_eq!(
        moved_to,
        ["APPROVED", "PROCESSING", "READY_FOR_REVIEW"],
        "{answers:?}"
    );
    assert!(
        answers
            .iter()
            .all(|(status, _)| [200, 409].contains(status)),
        "{answers:?}"
    );
    let order = app.json("/api/orders/ord-1001").await;
    assert_eq!(order["order"]["status"], "APPROVED", "{order}");
}
on_both_databases!(concurrent_advances_move_one_step_each);

/// Runs the futures concurrently; their outputs in order.
async fn futures_join_all<F: std::future::Future + Send + 'static>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut outputs = Vec::new();
    for handle in handles {
        outputs.push(handle.await.expect("a request"));
    }
    outputs
}

/// The order page's cookie: none for an order that does not exist (whatever the id spells,
/// `{+x}` included), and for an existing order exactly its own topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_page_cookie_covers_only_an_existing_orders_topic() {
    let app = App::sqlite().await;
    for path in [
        "/orders/%7B%2Bx%7D",
        "/orders/%7Bid%7D",
        "/orders/*",
        "/orders/ord-9999",
    ] {
        let response = app
            .http
            .get(format!("{}{path}", app.running.url))
            .send()
            .await
            .expect("an answer");
        assert_eq!(response.status().as_u16(), 404, "GET {path}");
        assert!(
            response.headers().get("set-cookie").is_none(),
            "GET {path} minted a subscription cookie"
        );
    }
    let response = app
        .http
        .get(format!("{}/orders/ord-1001", app.running.url))
        .send()
        .await
        .expect("an answer");
    assert_eq!(response.status().as_u16(), 200);
    let cookie = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a cookie")
        .to_owned();
    let token = cookie
        .split(';')
        .next()
        .and_then(|pair| pair.split_once('='))
        .map(|(_, token)| token)
        .expect("name=token");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_aud = false;
    let claims = jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(DEVELOPMENT_KEY.as_bytes()),
        &validation,
    )
    .expect("a JWT signed with the subscriber key")
    .claims;
    assert_eq!(
        claims["mercure"]["subscribe"],
        serde_json::json!(["orders/ord-1001"]),
        "{claims}"
    );
    app.finish().await;
}

/// The application binary, with `vars` set (and `APP_ADDR` on a free port), its output read
/// line by line (stdout and stderr, in one channel).
struct Process {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Process {
    fn spawn(vars: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_mercure-track-examples"));
        command
            .env("APP_ADDR", "127.0.0.1:0")
            .env("RUST_LOG", "info")
            .env_remove("DATABASE_URL")
            .env_remove("MERCURE_URL")
            .env_remove("DELIVERY")
            .env_remove("CAPTURE")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, value) in vars {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("run the application");
        let (sender, lines) = mpsc::channel();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let sender = sender.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Self {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads lines until one contains `needle` (returned) or `wait` passes (`None`).
    fn wait_for(&mut self, needle: &str, wait: Duration) -> Option<String> {
        let until = Instant::now() + wait;
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return Some(line);
                    }
                }
                Err(_) => return None,
            }
        }
        None
    }

    /// Waits for the exit (killing the process after `wait`); returns whether it succeeded,
    /// and everything it printed.
    fn exit(mut self, wait: Duration) -> (Option<bool>, String) {
        let until = Instant::now() + wait;
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break Some(status.success()),
                Ok(None) if Instant::now() < until => std::thread::sleep(Duration::from_millis(20)),
                _ => {
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    break None;
                }
            }
        };
        // The readers end with the process; take what is left.
        let drain_until = Instant::now() + Duration::from_secs(5);
        while let Some(left) = drain_until.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => break,
            }
        }
        (status, self.seen.join("\n"))
    }

    fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([format!("-{signal}"), self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -{signal} failed");
    }
}

/// SIGTERM (docker stop, systemd, Kubernetes) drains the background work as Ctrl-C does: a
/// coloring started just before finishes, and the process says so and exits with success.
#[cfg(unix)]
#[test]
fn sigterm_drains_like_ctrl_c() {
    let database = Scratch::sqlite();
    let url = database.url().to_owned();
    let mut process = Process::spawn(&[("DATABASE_URL", &url), ("DEMO_STEP_MS", "150")]);
    let line = process
        .wait_for("running at ", Duration::from_secs(60))
        .expect("the banner");
    let base = line
        .split("running at ")
        .nth(1)
        .expect("a URL")
        .trim()
        .to_owned();
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let status = runtime.block_on(async {
        reqwest::Client::new()
            .post(format!("{base}/api/images/1/colorings"))
            .send()
            .await
            .expect("an answer")
            .status()
            .as_u16()
    });
    assert_eq!(status, 202);
    process.signal("TERM");
    let (success, output) = process.exit(Duration::from_secs(30));
    assert_eq!(success, Some(true), "{output}");
    assert!(
        output.contains("every background publish was drained"),
        "{output}"
    );
    // The coloring's service ran to its end (six steps of 150 ms) before the exit.
    let completed = runtime.block_on(async {
        let pool = sqlx::SqlitePool::connect(&url)
            .await
            .expect("open the database");
        let (status,): (String,) =
            sqlx::query_as("SELECT status FROM coloring_versions ORDER BY id LIMIT 1")
                .fetch_one(&pool)
                .await
                .expect("the coloring");
        pool.close().await;
        status
    });
    assert_eq!(completed, "COMPLETED", "{output}");
    runtime.block_on(database.finish());
}

const PASSWORD: &str = "Pw0rd-that-must-not-show";

/// Startup errors quote no password of `DATABASE_URL` or `MERCURE_URL`.
#[test]
fn startup_errors_print_no_password() {
    let other = format!("mysql://app:{PASSWORD}@127.0.0.1/shop");
    let hub = format!("ftp://app:{PASSWORD}@127.0.0.1/.well-known/mercure");
    let cases: [&[(&str, &str)]; 2] = [&[("DATABASE_URL", &other)], &[("MERCURE_URL", &hub)]];
    for vars in cases {
        let (success, output) = Process::spawn(vars).exit(Duration::from_secs(60));
        assert_eq!(success, Some(false), "{vars:?} should not start: {output}");
        assert!(output.contains("error"), "{vars:?}: {output}");
        assert!(
            !output.contains(PASSWORD),
            "{vars:?} printed the password: {output}"
        );
    }
}

/// `CAPTURE` is 0 or 1: any other value stops the start with a message naming it.
#[test]
fn an_invalid_capture_setting_is_refused() {
    let (success, output) = Process::spawn(&[("CAPTURE", "yes")]).exit(Duration::from_secs(60));
    assert_eq!(
        success,
        Some(false),
        "CAPTURE=yes should not start: {output}"
    );
    assert!(output.contains("CAPTURE is invalid"), "{output}");
}

/// The pages never give browsers a hub URL with credentials: the library refuses such a URL at
/// startup, and its error does not show the password.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_never_show_the_hub_password() {
    let database = Scratch::sqlite();
    let mut config = AppConfig::embedded_on_free_port(Duration::from_millis(5));
    config.database_url = Some(database.url().to_owned());
    config.discovery.hub_url =
        format!("https://hub-user:{PASSWORD}@hub.example/.well-known/mercure");
    let error = match app::start(config).await {
        Ok(running) => {
            running.shutdown(Duration::from_secs(10)).await;
            panic!("the application started with credentials in the hub URL");
        }
        Err(error) => error.to_string(),
    };
    database.finish().await;
    assert!(error.contains("credentials"), "{error}");
    assert!(
        !error.contains(PASSWORD),
        "the error showed the hub password: {error}"
    );
}

/// The startup banner shows `DATABASE_URL` without its password (PostgreSQL: the test server
/// trusts local connections, so any password is accepted).
#[cfg(unix)]
#[test]
#[cfg_attr(
    not(mercure_track_pg),
    ignore = "needs PostgreSQL: set MERCURE_TRACK_PG_URL"
)]
fn banner_prints_no_password() {
    let server = std::env::var("MERCURE_TRACK_PG_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .expect("missing service: PostgreSQL: set MERCURE_TRACK_PG_URL");
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let database = runtime
        .block_on(Scratch::postgres(&server))
        .expect("missing service: PostgreSQL schema");
    let mut url = url::Url::parse(database.url()).expect("a URL");
    if url.username().is_empty() {
        url.set_username("postgres").expect("a user");
    }
    url.set_password(Some(PASSWORD)).expect("a password");
    let mut process = Process::spawn(&[("DATABASE_URL", url.as_str())]);
    let banner = process.wait_for("Press Ctrl-C", Duration::from_secs(60));
    process.signal("TERM");
    let (_, output) = process.exit(Duration::from_secs(30));
    runtime.block_on(database.finish());
    assert!(banner.is_some(), "no banner: {output}");
    assert!(output.contains("database: postgres://"), "{output}");
    assert!(
        !output.contains(PASSWORD),
        "the banner printed the password: {output}"
    );
}
