//! The routes: two pages, a JSON API, the actions, and the event schema.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use mercure_track::Model;
use mercure_track::protocol::Matcher;
use mercure_track::subscriber::Discovery;
use mercure_track::{MercureEvent, Publisher};
use mercure_track_sqlx::{Error, TaskTracker};
use serde_json::json;

use crate::domain::{
    ColoringVersion, Image, ListUpdate, Order, OrderUpdate, SvgVersion, order_status,
};
use crate::services::{ColoringGenerationService, OrderIngestionService, ingest_order_by_hand};
use crate::session::AppSession;

/// What the routes share.
pub(crate) struct AppState<S> {
    /// A new session for a request or a task.
    pub(crate) new_session: Arc<dyn Fn() -> S + Send + Sync>,
    /// Background work: publishes and services, drained at shutdown.
    pub(crate) tasks: TaskTracker,
    /// What pages are told about the hub: cookie, `Link` header, subscribe URL.
    pub(crate) discovery: Arc<Discovery>,
    /// The publisher, for the id of the latest update (the `Link` header's `last-event-id`).
    pub(crate) publisher: Arc<dyn Publisher>,
    /// The simulated duration of a processing step.
    pub(crate) step: Duration,
}

impl<S> Clone for AppState<S> {
    fn clone(&self) -> Self {
        Self {
            new_session: self.new_session.clone(),
            tasks: self.tasks.clone(),
            discovery: self.discovery.clone(),
            publisher: self.publisher.clone(),
            step: self.step,
        }
    }
}

pub(crate) fn router<S: AppSession>(state: AppState<S>) -> Router {
    Router::new()
        .route("/", get(list_page::<S>))
        .route("/orders/{id}", get(order_page::<S>))
        .route("/api/orders", get(list_orders::<S>))
        .route("/api/orders/{id}", get(show_order::<S>))
        .route("/api/orders/{id}/advance", post(advance_order::<S>))
        .route("/api/orders/{id}/ingest", post(ingest_order::<S>))
        .route("/api/approve-ready", post(approve_ready::<S>))
        .route("/api/images/{id}/colorings", post(start_coloring::<S>))
        .route(
            "/api/images/{id}/select-coloring/{version}",
            post(select_coloring::<S>),
        )
        .route("/api/images/{id}/select-svg/{svg}", post(select_svg::<S>))
        .route("/events/schema", get(event_schema))
        .route("/favicon.ico", get(|| async { StatusCode::NO_CONTENT }))
        .with_state(state)
}

/// An error answer: 404 for a missing row, 422 for a reference to a row that does not exist,
/// 409 for a key taken meanwhile, 500 otherwise (logged).
enum ApiError {
    /// A session or database error.
    Session(Error),
    /// The request names a row that exists, and refers to another that does not (or that
    /// belongs elsewhere).
    Unprocessable(String),
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        Self::Session(error)
    }
}

/// The answer `status` with `{"error": message}`.
fn error_answer(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let error = match self {
            Self::Unprocessable(message) => {
                return error_answer(StatusCode::UNPROCESSABLE_ENTITY, &message);
            }
            Self::Session(error) => error,
        };
        if let Error::RowNotFound { .. } = &error {
            return error_answer(StatusCode::NOT_FOUND, &error.to_string());
        }
        if let Error::Database(sqlx::Error::Database(database)) = &error {
            // The database's own constraints, for writes that raced with another request.
            match database.kind() {
                sqlx::error::ErrorKind::ForeignKeyViolation => {
                    return error_answer(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "a referenced row does not exist",
                    );
                }
                sqlx::error::ErrorKind::UniqueViolation => {
                    return error_answer(StatusCode::CONFLICT, "the row exists already");
                }
                _ => {}
            }
        }
        tracing::error!(%error, "request failed");
        error_answer(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

/// An order key from the path. Orders' keys are short and made of URI-unreserved characters
/// (`A-Z a-z 0-9 - . _ ~`); any other path segment cannot name an order and answers 404 before
/// the database is asked (PostgreSQL refuses NUL bytes in text with an error, and a key made of
/// template characters such as `{+x}` must never reach a topic selector).
struct OrderKey(String);

/// The longest order key.
const MAX_ORDER_KEY_LEN: usize = 64;

impl OrderKey {
    fn parse(raw: &str) -> Option<Self> {
        let valid = !raw.is_empty()
            && raw.len() <= MAX_ORDER_KEY_LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'));
        valid.then(|| Self(raw.to_owned()))
    }
}

impl<St: Send + Sync> axum::extract::FromRequestParts<St> for OrderKey {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &St,
    ) -> Result<Self, Self::Rejection> {
        // The order key is the path's first parameter; the others (if any) are read by the
        // handler's own extractor.
        let params = axum::extract::RawPathParams::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let raw = params.iter().next().map(|(_, value)| value).unwrap_or("");
        Self::parse(raw).ok_or_else(|| error_answer(StatusCode::NOT_FOUND, "no such order"))
    }
}

/// A page following `topic`, with a subscription cookie for that topic only (the hub checks
/// it for private updates) and the discovery `Link` header.
fn page<S>(state: &AppState<S>, html: &str, topic: String) -> Response {
    let topics = [Matcher::Exact(topic)];
    let mercure = json!({
        "subscribeUrl": state.discovery.subscribe_url(&topics, None).ok(),
        "lastEventIdParam": state.discovery.last_event_id_param(),
    });
    let body = html
        .replace("{{MERCURE}}", &mercure.to_string())
        .replace("{{SUBSCRIBE_SCRIPT}}", SUBSCRIBE_SCRIPT);
    let mut response = Html(body).into_response();
    match state
        .discovery
        .cookie(&topics)
        .ok()
        .and_then(|cookie| HeaderValue::try_from(cookie).ok())
    {
        Some(cookie) => {
            response.headers_mut().insert(header::SET_COOKIE, cookie);
        }
        None => tracing::warn!(
            "the subscription cookie could not be signed: private updates will not reach this page"
        ),
    }
    with_link(response, state, state.publisher.last_event_id())
}

/// `response` with the discovery header `Link: <hub>; rel="mercure"; last-event-id="..."`.
/// `last_event_id` must have been read before the state the response carries: a change
/// committed after that read is then replayed to a subscription resuming from it.
fn with_link<S>(
    mut response: Response,
    state: &AppState<S>,
    last_event_id: Option<String>,
) -> Response {
    match HeaderValue::try_from(state.discovery.link_header(last_event_id.as_deref())) {
        Ok(link) => {
            response.headers_mut().insert(header::LINK, link);
        }
        Err(_) => tracing::warn!("the hub's last event id cannot be sent in a header"),
    }
    response
}

async fn list_page<S: AppSession>(State(state): State<AppState<S>>) -> Response {
    let topic = first_topic(&ListUpdate {
        order_ids: Vec::new(),
    });
    page(&state, LIST_PAGE, topic)
}

/// The page of one order, with a subscription cookie for that order's topic only: the topic is
/// made from the order row read from the database (whose key is checked by [`OrderKey`]), never
/// from the request; an unknown order is 404 and gets no cookie.
async fn order_page<S: AppSession>(
    State(state): State<AppState<S>>,
    OrderKey(id): OrderKey,
) -> Result<Response, ApiError> {
    let mut session = (state.new_session)();
    let order = Order::find(&mut session, id.as_str()).await?;
    drop(session);
    let topic = first_topic(&OrderUpdate { order_id: order.id });
    Ok(page(&state, ORDER_PAGE, topic))
}

/// The topic an event is published to (its first), as the page's own topic.
fn first_topic(event: &impl MercureEvent) -> String {
    event.topics().into_iter().next().unwrap_or_default()
}

async fn list_orders<S: AppSession>(
    State(state): State<AppState<S>>,
) -> Result<Response, ApiError> {
    // The id first, then the state: see `with_link`.
    let last_event_id = state.publisher.last_event_id();
    let mut session = (state.new_session)();
    let orders = Json(session.list_orders().await?).into_response();
    Ok(with_link(orders, &state, last_event_id))
}

async fn show_order<S: AppSession>(
    State(state): State<AppState<S>>,
    OrderKey(id): OrderKey,
) -> Result<Response, ApiError> {
    // The id first, then the state: see `with_link`.
    let last_event_id = state.publisher.last_event_id();
    let mut session = (state.new_session)();
    let order = Order::find(&mut session, id.as_str()).await?;
    let images = session.order_images(&id).await?;
    let body = Json(json!({ "order": order, "images": images })).into_response();
    Ok(with_link(body, &state, last_event_id))
}

/// Moves an order to its next status, through the API (a setter on a tracked session).
async fn advance_order<S: AppSession>(
    State(state): State<AppState<S>>,
    OrderKey(id): OrderKey,
) -> Result<Response, ApiError> {
    let mut session = (state.new_session)();
    session.track_event::<crate::domain::OrderUpdate>();
    // Locked: two advances at once move the order two steps, never one step twice.
    let mut order = session.find_order_for_update(&id).await?;
    let Some(next) = order_status::next(&order.status) else {
        return Ok((
            StatusCode::CONFLICT,
            Json(json!({ "error": "the order has no next status" })),
        )
            .into_response());
    };
    order.set_status(&mut session, next).await?;
    session.commit().await?;
    Ok(Json(order).into_response())
}

/// Approves every order ready for review, in one set-based write:
/// `UPDATE orders SET status = 'APPROVED' WHERE status = 'READY_FOR_REVIEW' ... RETURNING id`.
/// The session records the orders the statement changed, and publishes their `order_update`s
/// and one `list_update` naming them all at the commit. Answers the approved orders' keys
/// (none when no order was waiting: not an error). Takes no input.
async fn approve_ready<S: AppSession>(
    State(state): State<AppState<S>>,
) -> Result<Response, ApiError> {
    let mut session = (state.new_session)();
    session.track_event::<OrderUpdate>();
    let mut approved = Order::update()
        .set(Order::status, order_status::APPROVED)
        .filter(Order::status.is(order_status::READY_FOR_REVIEW))
        .execute(&mut session)
        .await?;
    session.commit().await?;
    approved.sort();
    Ok(Json(json!({ "approved": approved })).into_response())
}

/// How `/api/orders/{id}/ingest` runs the ingestion: the original design shows both forms.
#[derive(serde::Deserialize)]
struct IngestForm {
    /// `autotracked` (default): the `#[mercure_autotrack]` service; `by_hand`:
    /// `track_changes` + `add_tracking_context`.
    #[serde(default)]
    form: Option<String>,
}

/// Runs the ingestion of an order in the background, in the form `?form=` asks for.
async fn ingest_order<S: AppSession>(
    State(state): State<AppState<S>>,
    OrderKey(id): OrderKey,
    axum::extract::Query(query): axum::extract::Query<IngestForm>,
) -> Result<Response, ApiError> {
    let by_hand = match query.form.as_deref() {
        None | Some("autotracked") => false,
        Some("by_hand") => true,
        Some(_) => {
            return Ok((
                StatusCode::BAD_REQUEST,
                Json(json!({ "error": "form must be autotracked or by_hand" })),
            )
                .into_response());
        }
    };
    let mut check = (state.new_session)();
    Order::find(&mut check, id.as_str()).await?;
    drop(check);
    let session = (state.new_session)();
    let step = state.step;
    state.tasks.spawn(async move {
        let result = if by_hand {
            let mut session = session;
            ingest_order_by_hand(&mut session, &id, step).await
        } else {
            OrderIngestionService::new(session, step).ingest(&id).await
        };
        if let Err(error) = result {
            tracing::warn!(order = %id, %error, "ingestion failed");
        }
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "ingesting": true, "by_hand": by_hand })),
    )
        .into_response())
}

/// Starts a coloring generation of an image; the service runs in the background.
async fn start_coloring<S: AppSession>(
    State(state): State<AppState<S>>,
    Path(image_id): Path<i64>,
) -> Result<Response, ApiError> {
    let mut service = ColoringGenerationService::new((state.new_session)(), state.step);
    let version_id = service.start(image_id).await?;
    state.tasks.spawn(async move {
        if let Err(error) = service.process(version_id).await {
            tracing::warn!(version_id, %error, "coloring generation failed");
        }
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "coloring_version_id": version_id })),
    )
        .into_response())
}

/// Selects a coloring of the image; 404 for an unknown image, 422 for a coloring that does not
/// exist or belongs to another image.
async fn select_coloring<S: AppSession>(
    State(state): State<AppState<S>>,
    Path((image_id, version_id)): Path<(i64, i64)>,
) -> Result<Response, ApiError> {
    let mut session = (state.new_session)();
    session.track_event::<crate::domain::ImageUpdate>();
    let mut image = Image::find(&mut session, image_id).await?;
    match ColoringVersion::find(&mut session, version_id).await {
        Ok(version) if version.image_id == image.id => {}
        Ok(_) | Err(Error::RowNotFound { .. }) => {
            return Err(ApiError::Unprocessable(format!(
                "image {image_id} has no coloring {version_id}"
            )));
        }
        Err(error) => return Err(error.into()),
    }
    image
        .set_selected_coloring_id(&mut session, Some(version_id))
        .await?;
    session.commit().await?;
    Ok(Json(image).into_response())
}

/// Selects an svg of the image; 404 for an unknown image, 422 for an svg that does not exist or
/// belongs to another image.
async fn select_svg<S: AppSession>(
    State(state): State<AppState<S>>,
    Path((image_id, svg_id)): Path<(i64, i64)>,
) -> Result<Response, ApiError> {
    let mut session = (state.new_session)();
    session.track_event::<crate::domain::ImageUpdate>();
    let mut image = Image::find(&mut session, image_id).await?;
    match SvgVersion::find(&mut session, svg_id).await {
        Ok(svg) if svg.image_id == image.id => {}
        Ok(_) | Err(Error::RowNotFound { .. }) => {
            return Err(ApiError::Unprocessable(format!(
                "image {image_id} has no svg {svg_id}"
            )));
        }
        Err(error) => return Err(error.into()),
    }
    image
        .set_selected_svg_id(&mut session, Some(svg_id))
        .await?;
    session.commit().await?;
    Ok(Json(image).into_response())
}

/// The union of the events as an OpenAPI document, for frontend type generators.
async fn event_schema() -> Json<serde_json::Value> {
    Json(mercure_track::schema::openapi_document(
        "mercure-track example events",
        env!("CARGO_PKG_VERSION"),
        "/events",
    ))
}

const LIST_PAGE: &str = include_str!("../static/list.html");
const ORDER_PAGE: &str = include_str!("../static/order.html");
const SUBSCRIBE_SCRIPT: &str = include_str!("../static/subscribe.js");
