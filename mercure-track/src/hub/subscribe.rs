//! `GET /.well-known/mercure`: subscribing over server-sent events.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::HubState;
use super::auth::AuthError;
use super::form::Form;
use super::history::StoredUpdate;
use super::selector::Selectors;

/// What a subscriber may receive.
struct Filter {
    topics: Selectors,
    /// The token's subscribe grants: private updates need one to match.
    authorized: Selectors,
}

impl Filter {
    /// The reference's `Subscriber.Match`: one of the update's topics is subscribed to and,
    /// for a private update, one of them is authorized.
    fn accepts(&self, update: &StoredUpdate) -> bool {
        self.topics.any_topic(&update.topics)
            && (!update.private || self.authorized.any_topic(&update.topics))
    }
}

/// Subscribing, as the reference hub does (`subscribe.go`, `registerSubscriber` and
/// `retrieveLastEventID`; `authorization.go` for the token; `subscribematchers.go` for 1.0's
/// parameters).
pub(crate) async fn subscribe(
    State(hub): State<Arc<HubState>>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let rules = hub.rules;
    let identity = hub.identity(&headers);
    // `URL.Query`: malformed pairs are dropped, not an error.
    let query = Form::parse(query.as_deref().unwrap_or_default().as_bytes());
    let token = match hub.token(&method, &headers, &query) {
        Ok(token) => token,
        Err(error) => {
            tracing::debug!(?error, "dev hub: subscriber refused");
            return rules.refuse_auth(Some(error), &identity);
        }
    };
    let (authorized, expires_at) =
        match token.map(|token| hub.subscriber.verify(&token, &identity.resource)) {
            Some(Ok(verified)) => (verified.grants.subscribe, verified.expires_at),
            Some(Err(error)) => {
                tracing::debug!(?error, "dev hub: subscriber token refused");
                return rules.refuse_auth(Some(error), &identity);
            }
            None if hub.config.anonymous => (Vec::new(), None),
            None => return rules.refuse_auth(None, &identity),
        };
    // A grant whose pattern does not compile makes the token invalid.
    let Ok(authorized) = Selectors::compile(&authorized, &identity.base) else {
        return rules.refuse_auth(Some(AuthError::InvalidToken), &identity);
    };
    // The generation's parameters (`topic` for 0.x; `match`, `match_exact`,
    // `match_urlpattern` for 1.0, where any other `match…` name and `topic` are refused).
    let mut matchers = Vec::new();
    for (name, value) in query.pairs() {
        match rules.subscribe_matcher(name, value) {
            None => {}
            Some(Ok(matcher)) => matchers.push(matcher),
            Some(Err(error)) => {
                return (StatusCode::BAD_REQUEST, error.to_string()).into_response();
            }
        }
    }
    if matchers.is_empty() {
        return (StatusCode::BAD_REQUEST, "missing topic matcher").into_response();
    }
    if matchers.len() > rules.max_subscribe_matchers() {
        return (StatusCode::BAD_REQUEST, "too many topic matchers").into_response();
    }
    let Ok(topics) = Selectors::compile(&matchers, &identity.base) else {
        return (StatusCode::BAD_REQUEST, "invalid topic matcher pattern").into_response();
    };
    // The header wins over the query parameter (spec: "the HTTP header MUST take
    // precedence"); an empty value counts as absent.
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .filter(|id| !id.is_empty())
        .or_else(|| Some(query.first(rules.last_event_id_param())).filter(|id| !id.is_empty()))
        .map(str::to_owned);
    let filter = Filter { topics, authorized };

    // Subscribe before reading the history, so that nothing falls between the two.
    let (live, stored_until) = hub.history.subscribe();
    let replay = last_event_id
        .as_deref()
        .map(|id| hub.history.replay(id, stored_until, |u| filter.accepts(u)));
    // The connection ends when the token expires: its authorization ends then.
    let deadline = expires_at.map(|exp| {
        Instant::now()
            + exp
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO)
    });
    let header_last_id = replay.as_ref().map(|r| r.last_event_id.clone());
    let state = Subscriber {
        hub: hub.clone(),
        live,
        pending: replay.map(|r| r.updates).unwrap_or_default().into(),
        last_seq: stored_until,
        filter,
        deadline,
    };
    let stream = futures_util::stream::unfold(state, Subscriber::next);
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(hub.config.heartbeat))
        .into_response();
    let headers = response.headers_mut();
    headers.insert(
        "cache-control",
        HeaderValue::from_static("private, no-cache, no-store, must-revalidate, max-age=0"),
    );
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    if let Some(id) = header_last_id.and_then(|id| HeaderValue::try_from(id).ok()) {
        headers.insert(rules.last_event_id_header(), id);
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
    /// When the subscriber's token expires.
    deadline: Option<Instant>,
}

impl Subscriber {
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if self
                .deadline
                .is_some_and(|deadline| Instant::now() >= deadline)
            {
                return None;
            }
            if let Some(update) = self.pending.pop_front() {
                if self.filter.accepts(&update) {
                    return Some((Ok(to_event(&update)), self));
                }
                continue;
            }
            let received = match self.deadline {
                Some(deadline) => tokio::select! {
                    received = self.live.recv() => received,
                    () = tokio::time::sleep_until(deadline) => {
                        tracing::debug!("dev hub: subscriber token expired, closing the stream");
                        return None;
                    }
                },
                None => self.live.recv().await,
            };
            match received {
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
