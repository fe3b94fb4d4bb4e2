//! A minimal server-sent events client for the tests: connects with reqwest and parses the
//! stream into events.

use std::time::Duration;

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    /// `id:`.
    pub id: Option<String>,
    /// `event:`.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// `retry:`.
    pub retry: Option<u64>,
}

/// An open subscription.
pub struct SseStream {
    response: reqwest::Response,
    buffer: String,
    /// Comment lines seen (heartbeats).
    pub comments: usize,
    /// The response headers.
    pub headers: reqwest::header::HeaderMap,
    /// Whether the hub ended the stream.
    pub closed: bool,
}

/// Why a subscription failed.
#[derive(Debug)]
pub enum SseError {
    /// The hub answered with this status.
    Status(u16),
    /// Transport failure.
    Http(reqwest::Error),
}

/// Subscribes to `topics` at `hub_url`, with an optional JWT and `Last-Event-ID`.
pub async fn subscribe(
    client: &reqwest::Client,
    hub_url: &str,
    topics: &[&str],
    token: Option<&str>,
    last_event_id: Option<&str>,
) -> Result<SseStream, SseError> {
    let query: Vec<(&str, &str)> = topics.iter().map(|t| ("topic", *t)).collect();
    let mut request = client.get(hub_url).query(&query);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    open(request).await
}

/// Sends a prepared subscription request (any query, headers or cookies).
pub async fn open(request: reqwest::RequestBuilder) -> Result<SseStream, SseError> {
    let response = request.send().await.map_err(SseError::Http)?;
    if !response.status().is_success() {
        return Err(SseError::Status(response.status().as_u16()));
    }
    Ok(SseStream {
        headers: response.headers().clone(),
        response,
        buffer: String::new(),
        comments: 0,
        closed: false,
    })
}

impl SseStream {
    /// The next event, or `None` when none arrives within `wait` or the stream ends.
    pub async fn next_within(&mut self, wait: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(event) = self.parse_one() {
                return Some(event);
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk()).await;
            match chunk {
                Ok(Ok(Some(bytes))) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(Ok(None) | Err(_)) => {
                    self.closed = true;
                    return None;
                }
                Err(_) => return None,
            }
        }
    }

    /// Waits up to `wait` for the hub to end the stream; events before the end are dropped.
    /// Whether it ended.
    pub async fn ends_within(&mut self, wait: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + wait;
        while !self.closed {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                break;
            }
            let _ = self.next_within(left).await;
        }
        self.closed
    }

    /// Collects `count` events, each within `wait` of the previous one.
    pub async fn collect(&mut self, count: usize, wait: Duration) -> Vec<SseEvent> {
        let mut events = Vec::with_capacity(count);
        while events.len() < count {
            match self.next_within(wait).await {
                Some(event) => events.push(event),
                None => break,
            }
        }
        events
    }

    fn parse_one(&mut self) -> Option<SseEvent> {
        loop {
            let end = self.buffer.find("\n\n")?;
            let block: String = self.buffer.drain(..end + 2).collect();
            let mut event = SseEvent::default();
            let mut data_lines = Vec::new();
            let mut has_field = false;
            for line in block.lines().filter(|line| !line.is_empty()) {
                if line.starts_with(':') {
                    self.comments += 1;
                    continue;
                }
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                has_field = true;
                match field {
                    "id" => event.id = Some(value.to_owned()),
                    "event" => event.event = Some(value.to_owned()),
                    "data" => data_lines.push(value.to_owned()),
                    "retry" => event.retry = value.parse().ok(),
                    _ => {}
                }
            }
            if has_field {
                event.data = data_lines.join("\n");
                return Some(event);
            }
        }
    }
}
