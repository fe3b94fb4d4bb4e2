//! The hand-written equivalent: the code a careful developer writes without the framework,
//! with one reused HTTP client and one signed JWT.

use std::time::Duration;

use futures_util::StreamExt as _;
use reqwest::header::CONTENT_TYPE;
use serde::Serialize;

/// Publishes image updates the way hand-written code does.
#[derive(Clone)]
pub struct HandPublisher {
    client: reqwest::Client,
    url: String,
    token: String,
}

#[derive(Serialize)]
struct HandImageUpdate<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    order_id: &'a str,
    image_id: i64,
}

impl HandPublisher {
    /// A publisher to `url` with a signed `token`.
    pub fn new(url: &str, token: String) -> Self {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .pool_max_idle_per_host(64)
            .build()
            .unwrap_or_default();
        Self {
            client,
            url: url.to_owned(),
            token,
        }
    }

    /// POSTs one image update.
    pub async fn post(&self, order_id: &str, image_id: i64) -> Result<String, reqwest::Error> {
        let data = serde_json::to_string(&HandImageUpdate {
            kind: "image_update",
            order_id,
            image_id,
        })
        .unwrap_or_default();
        self.post_raw(&format!("orders/{order_id}"), &data).await
    }

    /// POSTs one update of `data` to `topic`.
    pub async fn post_raw(&self, topic: &str, data: &str) -> Result<String, reqwest::Error> {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("topic", topic)
            .append_pair("data", data)
            .finish();
        self.client
            .post(&self.url)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .bearer_auth(&self.token)
            .body(body)
            .send()
            .await?
            .error_for_status()?
            .text()
            .await
    }

    /// POSTs every `(order_id, image_id)`, `concurrency` at a time; returns how many.
    pub async fn post_all(&self, events: Vec<(String, i64)>, concurrency: usize) -> usize {
        let count = events.len();
        futures_util::stream::iter(events)
            .for_each_concurrent(concurrency, |(order_id, image_id)| async move {
                if let Err(error) = self.post(&order_id, image_id).await {
                    eprintln!("hand-written publish failed: {error}");
                }
            })
            .await;
        count
    }
}
