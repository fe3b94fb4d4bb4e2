//! `POST /.well-known/mercure`: publishing.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::history::StoredUpdate;
use super::{HubState, selector};

pub(crate) async fn publish(
    State(hub): State<Arc<HubState>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(Some(token)) = super::auth::token(&headers) else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "missing or malformed publisher JWT",
        );
    };
    let Some(claims) = hub.publisher.verify(&token) else {
        return refuse(StatusCode::UNAUTHORIZED, "invalid publisher JWT");
    };
    let Some(selectors) = claims.mercure.publish else {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "the JWT has no mercure.publish claim",
        );
    };

    let mut topics = Vec::new();
    let mut data = String::new();
    let mut private = false;
    let mut id = None;
    let mut event_type = None;
    let mut retry = None;
    for (key, value) in url::form_urlencoded::parse(&body) {
        match &*key {
            "topic" => topics.push(value.into_owned()),
            "data" => data = value.into_owned(),
            "private" => private = true,
            "id" => id = Some(value.into_owned()),
            "type" => event_type = Some(value.into_owned()),
            "retry" => match value.parse::<u64>() {
                Ok(ms) => retry = Some(ms),
                Err(_) => {
                    return refuse(
                        StatusCode::BAD_REQUEST,
                        "invalid retry: expected milliseconds",
                    );
                }
            },
            _ => {}
        }
    }
    if topics.is_empty() {
        return refuse(StatusCode::BAD_REQUEST, "missing topic");
    }
    // SSE fields cannot carry line breaks.
    if [&id, &event_type]
        .into_iter()
        .flatten()
        .any(|field| field.contains(['\n', '\r', '\0']))
    {
        return refuse(StatusCode::BAD_REQUEST, "id and type must be single lines");
    }
    if !topics
        .iter()
        .all(|topic| selectors.iter().any(|s| selector::matches(s, topic)))
    {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "the JWT does not allow publishing to these topics",
        );
    }
    // SSE has no way to transmit a carriage return: lines are what subscribers receive.
    let data = if data.contains('\r') {
        data.replace("\r\n", "\n").replace('\r', "\n")
    } else {
        data
    };
    let id = id.unwrap_or_else(|| format!("urn:uuid:{}", uuid::Uuid::new_v4()));
    let stored = hub.history.push(|seq| StoredUpdate {
        seq,
        id,
        topics,
        data,
        private,
        event_type,
        retry,
    });
    tracing::debug!(id = %stored.id, topics = ?stored.topics, "dev hub: update published");
    (StatusCode::OK, stored.id.clone()).into_response()
}

fn refuse(status: StatusCode, reason: &'static str) -> Response {
    (status, reason).into_response()
}
