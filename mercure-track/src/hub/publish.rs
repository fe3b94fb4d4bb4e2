//! `POST /.well-known/mercure`: publishing, rule by rule as the reference hub v0.24.2 does
//! (`publish.go`, `PublishHandler` and `Update.Validate`; Go's `Request.ParseForm`).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::HubState;
use super::form::{Form, media_type};
use super::history::StoredUpdate;
use super::selector::Selectors;

/// Most bytes of a form body (Go's `parsePostForm` limit: 10 MiB).
pub(crate) const MAX_FORM_BYTES: usize = 10 << 20;
/// Most topics of one update (`maxPublishTopics`).
pub(crate) const MAX_PUBLISH_TOPICS: usize = 1000;
/// Topics containing this are the hub's own (`reservedTopicSubstring`).
const RESERVED_TOPIC: &str = "/.well-known/mercure";

pub(crate) async fn publish(
    State(hub): State<Arc<HubState>>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Response {
    let query = Form::parse(query.as_deref().unwrap_or_default().as_bytes());
    // Authorization comes first: nothing of the body is read for an unauthorized request.
    let token = match super::auth::presented_token(&method, &headers, &query, &hub.origins) {
        Ok(Some(token)) => token,
        Ok(None) => return refuse(StatusCode::UNAUTHORIZED, "missing publisher JWT"),
        Err(error) => {
            tracing::debug!(?error, "dev hub: publisher refused");
            return refuse(StatusCode::UNAUTHORIZED, "invalid publisher JWT");
        }
    };
    let selectors = match hub.publisher.verify(&token) {
        Ok(verified) => match verified.mercure.publish {
            Some(selectors) => selectors,
            None => return refuse(StatusCode::UNAUTHORIZED, "no mercure.publish claim"),
        },
        Err(error) => {
            tracing::debug!(?error, "dev hub: publisher token refused");
            return refuse(StatusCode::UNAUTHORIZED, "invalid publisher JWT");
        }
    };

    // `ParseForm`: only a form body is read; any other (or no) content type leaves the form
    // empty, so the request fails below for want of a topic. A malformed content type, a body
    // over 10 MiB, a malformed pair in the body or in the URL's query are 400.
    let content_type = headers
        .get(CONTENT_TYPE)
        .map_or(Some("application/octet-stream".to_owned()), |value| {
            value.to_str().ok().and_then(media_type)
        });
    let Some(content_type) = content_type else {
        return refuse(StatusCode::BAD_REQUEST, "malformed content type");
    };
    let form = if content_type == "application/x-www-form-urlencoded" {
        let Some(bytes) = read_limited(body, MAX_FORM_BYTES).await else {
            return refuse(StatusCode::BAD_REQUEST, "body too large or unreadable");
        };
        Form::parse(&bytes)
    } else {
        Form::default()
    };
    if form.malformed || query.malformed {
        return refuse(StatusCode::BAD_REQUEST, "malformed form");
    }

    let topics = form.all("topic");
    if topics.is_empty() {
        return refuse(StatusCode::BAD_REQUEST, "missing \"topic\" parameter");
    }
    if topics.len() > MAX_PUBLISH_TOPICS {
        return refuse(StatusCode::BAD_REQUEST, "too many topics in update");
    }
    // Repeated fields: the first value counts (Go's `Values.Get`); an empty retry is no retry.
    let retry = match form.first("retry") {
        "" => None,
        retry => match parse_u64(retry) {
            Some(ms) => Some(ms),
            None => return refuse(StatusCode::BAD_REQUEST, "invalid \"retry\" parameter"),
        },
    };
    // `private` with any value, even empty or `off`.
    let private = form.has("private");
    if !Selectors::new(&selectors).every_topic(&topics) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "the JWT does not allow publishing to these topics",
        );
    }
    if topics.iter().any(|topic| topic.contains(RESERVED_TOPIC)) {
        return refuse(
            StatusCode::FORBIDDEN,
            "topic value references the reserved \"/.well-known/mercure\" namespace",
        );
    }
    let id = form.first("id").to_owned();
    let event_type = form.first("type").to_owned();
    // SSE fields cannot carry line breaks: they would inject fields into every stream.
    if id.contains(['\n', '\r', '\0']) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "\"id\" field contains a forbidden control character",
        );
    }
    if event_type.contains(['\n', '\r', '\0']) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "\"type\" field contains a forbidden control character",
        );
    }
    let data = form.first("data");
    // SSE has no way to transmit a carriage return: lines are what subscribers receive.
    let data = if data.contains('\r') {
        data.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        data.to_owned()
    };
    let id = if id.is_empty() {
        format!("urn:uuid:{}", uuid::Uuid::new_v4())
    } else {
        id
    };
    let stored = hub.history.push(|seq| StoredUpdate {
        seq,
        id,
        topics,
        data,
        private,
        event_type: (!event_type.is_empty()).then_some(event_type),
        retry: retry.filter(|&ms| ms != 0),
    });
    tracing::debug!(id = %stored.id, topics = ?stored.topics, "dev hub: update published");
    (StatusCode::OK, stored.id.clone()).into_response()
}

/// Go's `strconv.ParseUint(s, 10, 64)`: ASCII digits only, no sign, no overflow.
fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The body, or `None` when it exceeds `limit` bytes or fails to arrive.
async fn read_limited(body: Body, limit: usize) -> Option<Vec<u8>> {
    let mut stream = body.into_data_stream();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.ok()?;
        if bytes.len() + chunk.len() > limit {
            return None;
        }
        bytes.extend_from_slice(&chunk);
    }
    Some(bytes)
}

fn refuse(status: StatusCode, reason: &'static str) -> Response {
    (status, reason).into_response()
}
