//! The subscriber helpers (`mercure_track::subscriber::Discovery`) against the development
//! hub, over real HTTP on loopback: the cookie authorizes the page's own topics only, and a
//! subscription that resumes from the `last-event-id` of the discovery `Link` header receives a
//! change committed between the page's render and its subscription.

use std::time::Duration;

use mercure_track::hub::{DevHub, DevHubConfig, RunningHub};
use mercure_track::protocol::{Matcher, ProtocolVersion};
use mercure_track::publisher::{HubConfig, JwtKey};
use mercure_track::subscriber::{Discovery, DiscoveryConfig};
use mercure_track::{HubPublisher, Publisher, Update};

const PUBLISHER_KEY: &str = "publisher-test-key-0123456789abcdef";
const SUBSCRIBER_KEY: &str = "subscriber-test-key-0123456789abcdef";
const WAIT: Duration = Duration::from_secs(5);
/// How long a subscription is watched for an update that must not come.
const QUIET: Duration = Duration::from_millis(500);

struct Setup {
    _hub: RunningHub,
    publisher: HubPublisher,
    discovery: Discovery,
    client: reqwest::Client,
}

async fn setup(protocol: ProtocolVersion) -> Setup {
    let hub = DevHub::new(
        configure_hub(
            DevHubConfig::new(JwtKey::new(PUBLISHER_KEY), JwtKey::new(SUBSCRIBER_KEY)),
            protocol,
        )
        .anonymous(false),
    )
    .expect("hub config")
    .bind("127.0.0.1:0".parse().expect("addr"))
    .await
    .expect("bind");
    let publisher = HubPublisher::new(
        HubConfig::new(&hub.url())
            .expect("url")
            .key(JwtKey::new(PUBLISHER_KEY))
            .protocol(protocol)
            .issuer(ISSUER),
    )
    .expect("publisher");
    let discovery = Discovery::new(
        DiscoveryConfig::new(hub.url(), JwtKey::new(SUBSCRIBER_KEY))
            .protocol(protocol)
            .issuer(ISSUER),
    )
    .expect("discovery");
    Setup {
        _hub: hub,
        publisher,
        discovery,
        client: reqwest::Client::new(),
    }
}

const ISSUER: &str = "https://app.example";

fn configure_hub(config: DevHubConfig, protocol: ProtocolVersion) -> DevHubConfig {
    config.protocol(protocol).issuer(ISSUER)
}

impl Setup {
    /// Publishes a private update of `data` to `topic`; returns its id.
    async fn publish(&self, topic: &str, data: &str) -> String {
        let outcome = self
            .publisher
            .publish_update(Update::new([topic], data).private(true))
            .await
            .expect("published");
        outcome.ids()[0].clone()
    }

    /// Subscribes as a page would: the subscribe URL of `topics` resuming after
    /// `last_event_id`, with the cookie minted for `cookie_topics`.
    async fn subscribe(
        &self,
        topics: &[Matcher],
        last_event_id: Option<&str>,
        cookie_topics: &[Matcher],
    ) -> Stream {
        let url = self
            .discovery
            .subscribe_url(topics, last_event_id)
            .expect("subscribe url");
        let set_cookie = self.discovery.cookie(cookie_topics).expect("cookie");
        // What a browser sends back: name=value, without the attributes.
        let cookie = set_cookie.split(';').next().unwrap_or_default().to_owned();
        let response = self
            .client
            .get(url)
            .header("cookie", cookie)
            .send()
            .await
            .expect("subscribe");
        assert!(response.status().is_success(), "{}", response.status());
        Stream {
            response,
            buffer: String::new(),
        }
    }
}

struct Stream {
    response: reqwest::Response,
    buffer: String,
}

impl Stream {
    /// The `data:` of the next event within `wait`.
    async fn next_data(&mut self, wait: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let event: String = self.buffer.drain(..end + 2).collect();
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|l| l.strip_prefix("data:"))
                    .map(|d| d.strip_prefix(' ').unwrap_or(d))
                    .collect();
                if !data.is_empty() {
                    return Some(data.join("\n"));
                }
                continue;
            }
            match tokio::time::timeout_at(deadline, self.response.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                _ => return None,
            }
        }
    }
}

async fn a_change_between_render_and_subscription_is_replayed(protocol: ProtocolVersion) {
    let s = setup(protocol).await;
    let page = [Matcher::exact("orders/a")];
    s.publish("orders/a", "before render").await;

    // The page is rendered: the id is read before the state.
    let last_event_id = s.publisher.last_event_id();
    assert!(last_event_id.is_some());
    let link = s.discovery.link_header(last_event_id.as_deref());
    assert!(
        link.ends_with(&format!(
            r#">; rel="mercure"; last-event-id="{}""#,
            last_event_id.as_deref().unwrap_or_default()
        )),
        "{link}"
    );

    // A change commits and is published before the page subscribes.
    s.publish("orders/a", "after render").await;
    let latest = s.publish("orders/b", "another order").await;
    assert_eq!(s.publisher.last_event_id(), Some(latest));

    // The page subscribes, resuming from the Link header's id: the change is replayed, and
    // only it.
    let mut resumed = s.subscribe(&page, last_event_id.as_deref(), &page).await;
    assert_eq!(
        resumed.next_data(WAIT).await.as_deref(),
        Some("after render")
    );
    assert_eq!(resumed.next_data(QUIET).await, None);

    // Without the id, the change is lost: the window the helper closes.
    let mut unresumed = s.subscribe(&page, None, &page).await;
    assert_eq!(unresumed.next_data(QUIET).await, None);

    // The cookie authorizes the page's own topics only: a cookie for another order does not
    // receive this order's private updates.
    let other_cookie = [Matcher::exact("orders/b")];
    let mut foreign = s
        .subscribe(&page, last_event_id.as_deref(), &other_cookie)
        .await;
    assert_eq!(foreign.next_data(QUIET).await, None);
}

#[tokio::test]
async fn protocol_0_x_a_change_between_render_and_subscription_is_replayed() {
    a_change_between_render_and_subscription_is_replayed(ProtocolVersion::V0).await;
}

#[tokio::test]
async fn protocol_1_0_a_change_between_render_and_subscription_is_replayed() {
    a_change_between_render_and_subscription_is_replayed(ProtocolVersion::V1).await;
}
