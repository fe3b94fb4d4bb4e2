//! `GET /.well-known/mercure`: subscribing over server-sent events.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast;

use super::history::StoredUpdate;
use super::{HubState, selector};

/// What a subscriber may receive.
struct Filter {
    topics: Vec<String>,
    /// Selectors of the JWT's `mercure.subscribe`: private updates need one to match.
    authorized: Vec<String>,
}

impl Filter {
    fn accepts(&self, update: &StoredUpdate) -> bool {
        selector::any_matches(&self.topics, &update.topics)
            && (!update.private || selector::any_matches(&self.authorized, &update.topics))
    }
}

pub(crate) async fn subscribe(
    State(hub): State<Arc<HubState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let mut topics = Vec::new();
    let mut last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    for (key, value) in url::form_urlencoded::parse(query.as_deref().unwrap_or_default().as_bytes())
    {
        match &*key {
            "topic" => topics.push(value.into_owned()),
            "lastEventID" => last_event_id = Some(value.into_owned()),
            _ => {}
        }
    }
    if topics.is_empty() {
        return (StatusCode::BAD_REQUEST, "missing topic").into_response();
    }
    let authorized = match super::auth::token(&headers) {
        Err(()) => {
            return (StatusCode::UNAUTHORIZED, "malformed Authorization header").into_response();
        }
        Ok(Some(token)) => match hub.subscriber.verify(&token) {
            Some(claims) => claims.mercure.subscribe.unwrap_or_default(),
            None => return (StatusCode::UNAUTHORIZED, "invalid subscriber JWT").into_response(),
        },
        Ok(None) if hub.config.anonymous => Vec::new(),
        Ok(None) => {
            return (
                StatusCode::UNAUTHORIZED,
                "anonymous subscribers are not allowed",
            )
                .into_response();
        }
    };

    // Subscribe before reading the history, so that nothing falls between the two.
    let (live, stored_until) = hub.history.subscribe();
    let replay: VecDeque<_> = last_event_id
        .as_deref()
        .and_then(|id| hub.history.after_id(id, stored_until))
        .unwrap_or_default()
        .into();
    let header_last_id = hub.history.last_id();
    let state = Subscriber {
        hub: hub.clone(),
        live,
        pending: replay,
        last_seq: stored_until,
        filter: Filter { topics, authorized },
    };
    let stream = futures_util::stream::unfold(state, Subscriber::next);
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(hub.config.heartbeat))
        .into_response();
    let headers = response.headers_mut();
    headers.insert("cache-control", HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    if let Some(id) = header_last_id.and_then(|id| HeaderValue::try_from(id).ok()) {
        headers.insert("last-event-id", id);
    }
    response
}

struct Subscriber {
    hub: Arc<HubState>,
    live: broadcast::Receiver<Arc<StoredUpdate>>,
    /// Updates to send before reading the live channel (replay, catch-up).
    pending: VecDeque<Arc<StoredUpdate>>,
    /// The newest sequence number queued or skipped: live updates up to it are duplicates.
    last_seq: u64,
    filter: Filter,
}

impl Subscriber {
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if let Some(update) = self.pending.pop_front() {
                if self.filter.accepts(&update) {
                    return Some((Ok(to_event(&update)), self));
                }
                continue;
            }
            match self.live.recv().await {
                Ok(update) => {
                    if update.seq > self.last_seq {
                        self.last_seq = update.seq;
                        self.pending.push_back(update);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    let caught_up = self.hub.history.after_seq(self.last_seq);
                    tracing::debug!(
                        missed,
                        caught_up = caught_up.len(),
                        "dev hub: slow subscriber caught up from history"
                    );
                    if let Some(last) = caught_up.last() {
                        self.last_seq = last.seq;
                    }
                    self.pending.extend(caught_up);
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

fn to_event(update: &StoredUpdate) -> Event {
    // The publish handler refused ids and types with line breaks and turned `\r` in data into
    // line breaks, which the event builder would otherwise reject.
    let mut event = Event::default()
        .id(update.id.as_str())
        .data(update.data.as_str());
    if let Some(event_type) = &update.event_type {
        event = event.event(event_type.as_str());
    }
    if let Some(retry) = update.retry {
        event = event.retry(Duration::from_millis(retry));
    }
    event
}
