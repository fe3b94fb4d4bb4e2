//! `POST /.well-known/mercure`: publishing, rule by rule as the reference hub does
//! (`publish.go`, `PublishHandler` and `Update.Validate`; Go's `Request.ParseForm`), with the
//! differences between generations in [`super::rules`].

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;

use super::HubState;
use super::auth::AuthError;
use super::form::{Form, media_type};
use super::history::StoredUpdate;
use super::rules::FieldsToValidate;
use super::selector::Selectors;

/// Most topics of one update (`maxPublishTopics`, both generations).
pub(crate) const MAX_PUBLISH_TOPICS: usize = 1000;

pub(crate) async fn publish(
    State(hub): State<Arc<HubState>>,
    method: Method,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Body,
) -> Response {
    let rules = hub.rules;
    let identity = hub.identity(&headers);
    let query = Form::parse(query.as_deref().unwrap_or_default().as_bytes());
    // Authorization comes first: nothing of the body is read for an unauthorized request.
    let token = match hub.token(&method, &headers, &query) {
        Ok(Some(token)) => token,
        Ok(None) => return rules.refuse_auth(None, &identity),
        Err(error) => {
            tracing::debug!(?error, "dev hub: publisher refused");
            return rules.refuse_auth(Some(error), &identity);
        }
    };
    let verified = match hub.publisher.verify(&token, &identity.resource) {
        Ok(verified) if verified.publish_claimed => verified,
        Ok(_) => return rules.refuse_auth(Some(AuthError::InvalidToken), &identity),
        Err(error) => {
            tracing::debug!(?error, "dev hub: publisher token refused");
            return rules.refuse_auth(Some(error), &identity);
        }
    };

    // A grant whose pattern does not compile makes the token invalid.
    let Ok(granted) = Selectors::compile(&verified.grants.publish, &identity.base) else {
        return rules.refuse_auth(Some(AuthError::InvalidToken), &identity);
    };

    // `ParseForm`: only a form body is read; any other (or no) content type leaves the form
    // empty, so the request fails below for want of a topic. A malformed content type, a body
    // over the limit, a malformed pair in the body or in the URL's query are refused.
    let content_type = headers
        .get(CONTENT_TYPE)
        .map_or(Some("application/octet-stream".to_owned()), |value| {
            value.to_str().ok().and_then(media_type)
        });
    let Some(content_type) = content_type else {
        return refuse(StatusCode::BAD_REQUEST, "malformed content type");
    };
    let form = if content_type == "application/x-www-form-urlencoded" {
        let (limit, status) = rules.body_limit();
        let Some(bytes) = read_limited(body, limit).await else {
            return refuse(status, "body too large or unreadable");
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
    let topics_utf8 = form.is_utf8("topic");
    if !topics
        .iter()
        .all(|t| rules.topic_acceptable(t, topics_utf8))
    {
        return refuse(
            StatusCode::BAD_REQUEST,
            "topic contains a forbidden character",
        );
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
    if !granted.every_topic(&topics) {
        return rules.insufficient_scope(&identity);
    }
    let id = form.first("id");
    let event_type = form.first("type");
    if let Err(refusal) = rules.validate(&FieldsToValidate {
        topics: &topics,
        id,
        id_utf8: form.is_utf8("id"),
        event_type,
        type_utf8: form.is_utf8("type"),
        data_utf8: form.is_utf8("data"),
    }) {
        return refusal.into_response();
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
        id.to_owned()
    };
    let stored = hub.history.push(|seq| StoredUpdate {
        seq,
        id,
        topics,
        data,
        private,
        event_type: (!event_type.is_empty()).then(|| event_type.to_owned()),
        retry: retry.filter(|&ms| ms != 0),
    });
    tracing::debug!(id = %stored.id, topics = ?stored.topics, "dev hub: update published");
    (
        StatusCode::OK,
        [(CONTENT_TYPE, "text/plain; charset=utf-8")],
        stored.id.clone(),
    )
        .into_response()
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
