//! The hub publisher against the development hub, over real HTTP on loopback.

use std::collections::HashSet;
use std::time::Duration;

use mercure_track::hub::{DevHub, DevHubConfig, RunningHub};
use mercure_track::publisher::{
    Algorithm, HubConfig, JwtKey, JwtSigner, PublishError, PublishOutcome,
};
use mercure_track::{HubPublisher, Publisher, PublisherExt, Update};
use mercure_track_tests::domain::{ImageUpdate, OrderUpdate};
use mercure_track_tests::sse::{SseError, subscribe};

const PUBLISHER_KEY: &str = "publisher-test-key-0123456789abcdef";
const SUBSCRIBER_KEY: &str = "subscriber-test-key-0123456789abcdef";
const WAIT: Duration = Duration::from_secs(5);

async fn start_hub(configure: impl FnOnce(DevHubConfig) -> DevHubConfig) -> RunningHub {
    let config = configure(DevHubConfig::new(
        JwtKey::new(PUBLISHER_KEY),
        JwtKey::new(SUBSCRIBER_KEY),
    ));
    DevHub::new(config)
        .expect("hub config")
        .bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind")
}

fn publisher(hub: &RunningHub) -> HubPublisher {
    HubPublisher::new(
        HubConfig::new(&hub.url())
            .expect("url")
            .key(JwtKey::new(PUBLISHER_KEY)),
    )
    .expect("publisher")
}

fn subscriber_token(selectors: &[&str]) -> String {
    JwtSigner::subscriber(
        &JwtKey::new(SUBSCRIBER_KEY),
        Algorithm::Hs256,
        selectors.iter().map(|s| s.to_string()).collect(),
        None,
    )
    .expect("signer")
    .token()
    .expect("token")
}

fn ids(outcome: &PublishOutcome) -> Vec<String> {
    outcome.ids().to_vec()
}

#[tokio::test]
async fn subscriber_receives_exactly_the_published_updates() {
    let hub = start_hub(|c| c).await;
    let client = reqwest::Client::new();
    // `orders/x y` is not a URI, so no template matches it: it is subscribed to by name.
    let mut stream = subscribe(
        &client,
        &hub.url(),
        &["orders/{id}", "orders/x y"],
        None,
        None,
    )
    .await
    .expect("subscribe");
    assert!(
        stream
            .headers
            .get("link")
            .is_some_and(|l| l.to_str().unwrap_or("").contains("rel=\"mercure\""))
    );
    let mut other = subscribe(&client, &hub.url(), &["users/{id}"], None, None)
        .await
        .expect("subscribe");

    let publisher = publisher(&hub);
    let order = OrderUpdate {
        order_id: "abc".into(),
    };
    let first = publisher.publish(&order).await.expect("publish");
    let tricky = Update::new(["orders/x y"], "line one\nline two: ünïcødé & = ?")
        .id("my-id-1")
        .event_type("custom")
        .retry(1500);
    let second = publisher
        .publish_update(tricky.clone())
        .await
        .expect("publish");
    assert_eq!(ids(&second), ["my-id-1"]);

    let events = stream.collect(2, WAIT).await;
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        events[0].data,
        r#"{"type":"order_update","order_id":"abc"}"#
    );
    assert_eq!(
        Some(&events[0].id.clone().unwrap_or_default()),
        ids(&first).first()
    );
    assert!(
        events[0]
            .id
            .as_deref()
            .is_some_and(|id| id.starts_with("urn:uuid:"))
    );
    assert_eq!(events[1].data, tricky.data);
    assert_eq!(events[1].id.as_deref(), Some("my-id-1"));
    assert_eq!(events[1].event.as_deref(), Some("custom"));
    assert_eq!(events[1].retry, Some(1500));
    // Nothing else arrives, and a subscriber of other topics gets nothing.
    assert_eq!(stream.next_within(Duration::from_millis(300)).await, None);
    assert_eq!(other.next_within(Duration::from_millis(300)).await, None);
}

#[tokio::test]
async fn private_updates_reach_only_authorized_subscribers() {
    let hub = start_hub(|c| c).await;
    let client = reqwest::Client::new();
    let mut anonymous = subscribe(&client, &hub.url(), &["orders/{id}"], None, None)
        .await
        .expect("subscribe");
    let token = subscriber_token(&["orders/{id}"]);
    let mut authorized = subscribe(&client, &hub.url(), &["orders/{id}"], Some(&token), None)
        .await
        .expect("subscribe");
    let other_token = subscriber_token(&["users/{id}"]);
    let mut wrong_scope = subscribe(
        &client,
        &hub.url(),
        &["orders/{id}"],
        Some(&other_token),
        None,
    )
    .await
    .expect("subscribe");

    let publisher = publisher(&hub);
    // `ImageUpdate` is declared `#[mercure(private)]`.
    let image = ImageUpdate {
        order_id: "abc".into(),
        image_id: 7,
    };
    publisher.publish(&image).await.expect("publish");
    publisher
        .publish(&OrderUpdate {
            order_id: "abc".into(),
        })
        .await
        .expect("publish");

    let seen = authorized.collect(2, WAIT).await;
    assert_eq!(seen.len(), 2);
    assert_eq!(
        seen[0].data,
        r#"{"type":"image_update","order_id":"abc","image_id":7}"#
    );
    // The anonymous and wrongly scoped subscribers see only the public update.
    for stream in [&mut anonymous, &mut wrong_scope] {
        let only = stream.next_within(WAIT).await.expect("public update");
        assert_eq!(only.data, r#"{"type":"order_update","order_id":"abc"}"#);
        assert_eq!(stream.next_within(Duration::from_millis(300)).await, None);
    }
}

#[tokio::test]
async fn subscriber_jwt_may_come_in_the_cookie_and_anonymous_can_be_refused() {
    let hub = start_hub(|c| c.anonymous(false)).await;
    let client = reqwest::Client::new();
    assert!(matches!(
        subscribe(&client, &hub.url(), &["orders"], None, None).await,
        Err(SseError::Status(401))
    ));
    assert!(matches!(
        subscribe(&client, &hub.url(), &["orders"], Some("not-a-jwt"), None).await,
        Err(SseError::Status(401))
    ));
    assert!(matches!(
        subscribe(&client, &hub.url(), &[], None, None).await,
        Err(SseError::Status(400 | 401))
    ));
    let token = subscriber_token(&["orders"]);
    let response = client
        .get(hub.url())
        .query(&[("topic", "orders")])
        .header(
            "cookie",
            format!("theme=dark; mercureAuthorization={token}"),
        )
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn wrong_key_is_an_authorization_error() {
    let hub = start_hub(|c| c).await;
    let publisher = HubPublisher::new(
        HubConfig::new(&hub.url())
            .expect("url")
            .key(JwtKey::new("not-the-key")),
    )
    .expect("publisher");
    let error = publisher
        .publish(&OrderUpdate {
            order_id: "a".into(),
        })
        .await
        .expect_err("refused");
    assert!(
        matches!(error, PublishError::Unauthorized { status: 401 }),
        "{error:?}"
    );
    assert!(!error.is_retryable());
}

#[tokio::test]
async fn topics_not_covered_by_the_jwt_are_refused() {
    let hub = start_hub(|c| c).await;
    let config = HubConfig::new(&hub.url())
        .expect("url")
        .key(JwtKey::new(PUBLISHER_KEY))
        .publish_selectors(["orders/{id}"]);
    let publisher = HubPublisher::new(config).expect("publisher");
    publisher
        .publish(&OrderUpdate {
            order_id: "a".into(),
        })
        .await
        .expect("covered");
    let error = publisher
        .publish_update(Update::new(["orders/a", "users/1"], "{}"))
        .await
        .expect_err("not covered");
    assert!(
        matches!(error, PublishError::Unauthorized { .. }),
        "{error:?}"
    );
}

#[tokio::test]
async fn hub_answers_400_for_missing_topic_and_bad_retry() {
    let hub = start_hub(|c| c).await;
    let token = JwtSigner::publisher(
        &JwtKey::new(PUBLISHER_KEY),
        Algorithm::Hs256,
        vec!["*".into()],
        None,
    )
    .expect("signer")
    .token()
    .expect("token");
    let client = reqwest::Client::new();
    let post = |body: &'static str| {
        client
            .post(hub.url())
            .bearer_auth(&token)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    assert_eq!(post("data=x").await.expect("post").status(), 400);
    assert_eq!(
        post("topic=a&data=x&retry=soon")
            .await
            .expect("post")
            .status(),
        400
    );
    assert_eq!(
        post("topic=a&data=x&id=two%0Alines")
            .await
            .expect("post")
            .status(),
        400
    );
    let ok = post("topic=a&data=x&id=fine").await.expect("post");
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.expect("body"), "fine");
    let anonymous = client
        .post(hub.url())
        .body("topic=a")
        .send()
        .await
        .expect("post");
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn hub_down_is_a_connection_error_within_the_timeout() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let timeout = Duration::from_secs(2);
    let config = HubConfig::new(&format!("http://127.0.0.1:{port}/.well-known/mercure"))
        .expect("url")
        .key(JwtKey::new(PUBLISHER_KEY))
        .timeout(timeout);
    let publisher = HubPublisher::new(config).expect("publisher");
    let result = tokio::time::timeout(
        timeout * 3,
        publisher.publish(&OrderUpdate {
            order_id: "a".into(),
        }),
    )
    .await
    .expect("the publisher gave up by itself");
    let error = result.expect_err("refused");
    assert!(matches!(error, PublishError::Connect(_)), "{error:?}");
    assert!(error.is_retryable());
}

#[tokio::test]
async fn a_silent_hub_is_a_timeout_error() {
    // Accepts connections and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let timeout = Duration::from_millis(500);
    let config = HubConfig::new(&format!("http://{addr}/.well-known/mercure"))
        .expect("url")
        .key(JwtKey::new(PUBLISHER_KEY))
        .timeout(timeout);
    let publisher = HubPublisher::new(config).expect("publisher");
    let result = tokio::time::timeout(
        timeout * 10,
        publisher.publish(&OrderUpdate {
            order_id: "a".into(),
        }),
    )
    .await
    .expect("the publisher gave up by itself");
    assert!(
        matches!(result, Err(PublishError::Timeout(_))),
        "{result:?}"
    );
    silent.abort();
}

#[tokio::test]
async fn hub_answering_500_is_a_status_error() {
    let app = axum::Router::new().route(
        "/.well-known/mercure",
        axum::routing::post(|| async {
            (
                axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                "hub exploded",
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let config = HubConfig::new(&format!("http://{addr}/.well-known/mercure"))
        .expect("url")
        .key(JwtKey::new(PUBLISHER_KEY));
    let error = HubPublisher::new(config)
        .expect("publisher")
        .publish(&OrderUpdate {
            order_id: "a".into(),
        })
        .await
        .expect_err("500");
    match &error {
        PublishError::Status { status, body } => {
            assert_eq!(*status, 500);
            assert_eq!(body, "hub exploded");
        }
        other => panic!("expected a status error, got {other:?}"),
    }
    assert!(error.is_retryable());
    server.abort();
}

#[tokio::test]
async fn missing_key_skips_publishing_without_panicking() {
    let hub = start_hub(|c| c).await;
    let publisher = HubPublisher::new(HubConfig::new(&hub.url()).expect("url")).expect("publisher");
    for _ in 0..2 {
        let outcome = publisher
            .publish(&OrderUpdate {
                order_id: "a".into(),
            })
            .await
            .expect("skipped");
        assert_eq!(outcome, PublishOutcome::Skipped);
    }
}

#[tokio::test]
async fn one_thousand_publishes_from_fifty_tasks_arrive_exactly_once() {
    let hub = start_hub(|c| c).await;
    let client = reqwest::Client::new();
    let mut stream = subscribe(&client, &hub.url(), &["load/{n}"], None, None)
        .await
        .expect("subscribe");
    let publisher = publisher(&hub);
    let mut tasks = Vec::new();
    for task in 0..50 {
        let publisher = publisher.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in 0..20 {
                let update = Update::new(
                    [format!("load/{task}")],
                    format!("{{\"task\":{task},\"n\":{n}}}"),
                );
                let outcome = publisher.publish_update(update).await.expect("publish");
                ids.extend(outcome.ids().iter().cloned());
            }
            ids
        }));
    }
    let mut published = HashSet::new();
    for task in tasks {
        for id in task.await.expect("task") {
            assert!(published.insert(id), "duplicate id from the hub");
        }
    }
    assert_eq!(published.len(), 1000);

    let events = stream.collect(1000, WAIT).await;
    assert_eq!(events.len(), 1000);
    let received: HashSet<_> = events.iter().filter_map(|e| e.id.clone()).collect();
    assert_eq!(received, published);
    let data: HashSet<_> = events.iter().map(|e| e.data.clone()).collect();
    assert_eq!(data.len(), 1000, "every update exactly once");
    assert_eq!(stream.next_within(Duration::from_millis(300)).await, None);
}

#[tokio::test]
async fn last_event_id_reconnection_receives_what_was_missed() {
    let hub = start_hub(|c| c).await;
    let client = reqwest::Client::new();
    let publisher = publisher(&hub);
    let mut stream = subscribe(&client, &hub.url(), &["orders/{id}"], None, None)
        .await
        .expect("subscribe");
    publisher
        .publish(&OrderUpdate {
            order_id: "1".into(),
        })
        .await
        .expect("publish");
    let first = stream.next_within(WAIT).await.expect("first");
    drop(stream);

    for id in ["2", "3", "4"] {
        publisher
            .publish(&OrderUpdate {
                order_id: id.into(),
            })
            .await
            .expect("publish");
    }
    // An update for a topic the subscriber does not follow is not replayed.
    publisher
        .publish_update(Update::new(["users/1"], "{}"))
        .await
        .expect("publish");

    let mut resumed = subscribe(
        &client,
        &hub.url(),
        &["orders/{id}"],
        None,
        first.id.as_deref(),
    )
    .await
    .expect("resubscribe");
    let missed = resumed.collect(3, WAIT).await;
    let orders: Vec<_> = missed.iter().map(|e| e.data.clone()).collect();
    assert_eq!(
        orders,
        [2, 3, 4].map(|n| format!(r#"{{"type":"order_update","order_id":"{n}"}}"#))
    );
    // `earliest` replays the whole history of the topics.
    let mut everything = subscribe(
        &client,
        &hub.url(),
        &["orders/{id}"],
        None,
        Some("earliest"),
    )
    .await
    .expect("subscribe from the earliest update");
    let all: Vec<_> = everything
        .collect(4, WAIT)
        .await
        .into_iter()
        .map(|e| e.data)
        .collect();
    assert_eq!(
        all,
        [1, 2, 3, 4].map(|n| format!(r#"{{"type":"order_update","order_id":"{n}"}}"#))
    );
    // And then it follows live updates.
    publisher
        .publish(&OrderUpdate {
            order_id: "5".into(),
        })
        .await
        .expect("publish");
    let live = resumed.next_within(WAIT).await.expect("live");
    assert_eq!(live.data, r#"{"type":"order_update","order_id":"5"}"#);
}

#[tokio::test]
async fn an_update_with_alternate_topics_is_one_request() {
    let hub = start_hub(|c| c).await;
    let client = reqwest::Client::new();
    let mut stream = subscribe(&client, &hub.url(), &["*"], None, None)
        .await
        .expect("subscribe");
    // One update carrying both topics, the canonical one first: one id, one event.
    let v0 = publisher_v0(&hub)
        .publish_update(Update::new(["a", "b"], "one"))
        .await
        .expect("publish");
    assert_eq!(v0.ids().len(), 1);
    let event = stream.next_within(WAIT).await.expect("event");
    assert_eq!(event.data, "one");
    assert_eq!(stream.next_within(Duration::from_millis(300)).await, None);
}

fn publisher_v0(hub: &RunningHub) -> HubPublisher {
    publisher(hub)
}

#[tokio::test]
async fn rs256_keys_sign_and_verify() {
    let private = include_str!("../fixtures/rs256-test-private.pem");
    let public = include_str!("../fixtures/rs256-test-public.pem");
    let hub = start_hub(|mut c| {
        c.publisher_key = JwtKey::new(public);
        c.publisher_algorithm = Algorithm::Rs256;
        c
    })
    .await;
    let client = reqwest::Client::new();
    let mut stream = subscribe(&client, &hub.url(), &["orders/{id}"], None, None)
        .await
        .expect("subscribe");
    let config = HubConfig::new(&hub.url())
        .expect("url")
        .key(JwtKey::new(private))
        .algorithm(Algorithm::Rs256);
    HubPublisher::new(config)
        .expect("publisher")
        .publish(&OrderUpdate {
            order_id: "rs".into(),
        })
        .await
        .expect("publish");
    assert_eq!(
        stream.next_within(WAIT).await.map(|e| e.data),
        Some(r#"{"type":"order_update","order_id":"rs"}"#.to_owned())
    );

    // A key that is not PEM is refused at construction, not at the first publish.
    let bad = HubConfig::new(&hub.url())
        .expect("url")
        .key(JwtKey::new("not pem"))
        .algorithm(Algorithm::Rs256);
    assert!(HubPublisher::new(bad).is_err());
}

#[tokio::test]
async fn heartbeats_keep_idle_streams_alive() {
    let hub = start_hub(|c| c.heartbeat(Duration::from_millis(100))).await;
    let client = reqwest::Client::new();
    let mut stream = subscribe(&client, &hub.url(), &["quiet"], None, None)
        .await
        .expect("subscribe");
    assert_eq!(stream.next_within(Duration::from_millis(1000)).await, None);
    assert!(stream.comments >= 2, "heartbeats seen: {}", stream.comments);
}
