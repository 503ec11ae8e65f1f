//! The webhook routes, called without a socket: authentication, answers by outcome, the body limit,
//! and their mounting on the upload API's router.

mod events_support;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::{Extension, Router};
use events_support::*;
use folio_api::events::http::{EVENT_BODY_LIMIT, SECRET_HEADER};
use folio_api::events::{events_router, EventsAuth, EventsEndpoint};
use folio_api::http::{ApiKeys, AppState, ServeConfig, StoreProbe};
use http_body_util::BodyExt;
use std::sync::Arc;
use tower::ServiceExt;

const SECRET: &str = "s3-events-shared-secret-0123";
const TOKEN: &str = "seaweedfs-bearer-token-4567";

fn endpoint(h: &Harness, auth: EventsAuth) -> EventsEndpoint {
    EventsEndpoint::new(h.trigger.clone(), auth).unwrap()
}

fn both() -> EventsAuth {
    EventsAuth {
        s3_secret: Some(SECRET.into()),
        seaweedfs_token: Some(TOKEN.into()),
        ..EventsAuth::default()
    }
}

async fn call(app: &Router, req: Request<Body>) -> (StatusCode, serde_json::Value) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
    )
}

fn post(path: &str, header: Option<(&str, &str)>, body: impl Into<Body>) -> Request<Body> {
    let mut b = Request::post(path).header("content-type", "application/json");
    if let Some((k, v)) = header {
        b = b.header(k, v);
    }
    b.body(body.into()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_route_authenticates_and_answers_by_outcome() {
    let h = Harness::new(RULES);
    let app = events_router(endpoint(&h, both()));
    let pdf = corpus(PDF_3P);
    h.put_source("inbox", "scans/a.pdf", pdf.clone()).await;
    let body = aws_put("inbox", "scans/a.pdf", pdf.len() as u64, "e1", "01");

    let (status, json) = call(&app, post("/v1/events/s3", None, body.clone())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(json["error"]["code"], "unauthorized");
    let (status, _) = call(
        &app,
        post(
            "/v1/events/s3",
            Some((SECRET_HEADER, "wrong-secret-0123456789")),
            body.clone(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let ok = Some((SECRET_HEADER, SECRET));
    let (status, json) = call(&app, post("/v1/events/s3", ok, body.clone())).await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["outcomes"][0]["outcome"], "submitted");
    assert_eq!(json["outcomes"][0]["pages"], 3);
    let (status, json) = call(&app, post("/v1/events/s3", ok, body)).await;
    assert_eq!(
        (status, json["outcomes"][0]["outcome"].as_str()),
        (StatusCode::OK, Some("duplicate"))
    );
    assert_eq!(h.jobs(), 3);

    let (status, json) = call(&app, post("/v1/events/s3", ok, "{\"Records\": 7}")).await;
    assert_eq!(
        (status, json["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("malformed_event"))
    );
    let test = r#"{"Service":"Amazon S3","Event":"s3:TestEvent","Bucket":"inbox"}"#;
    let (status, json) = call(&app, post("/v1/events/s3", ok, test)).await;
    assert_eq!(
        (status, json["outcomes"][0]["reason"].as_str()),
        (StatusCode::OK, Some("test_event"))
    );
    let huge = vec![b' '; EVENT_BODY_LIMIT + 1];
    let (status, _) = call(&app, post("/v1/events/s3", ok, huge)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seaweedfs_route_takes_a_bearer_token() {
    let h = Harness::new(RULES);
    let png = corpus(PNG);
    h.put_source("inbox", "scans/t.png", png.clone()).await;
    let app = events_router(endpoint(&h, both()));
    let body = seaweed_event("create", "inbox", "scans/t.png", png.len() as u64, "v1");
    let (status, _) = call(
        &app,
        post(
            "/v1/events/seaweedfs",
            Some(("authorization", "Bearer nope")),
            body.clone(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The S3 route's secret is not the webhook's token.
    let (status, _) = call(
        &app,
        post(
            "/v1/events/seaweedfs",
            Some((SECRET_HEADER, SECRET)),
            body.clone(),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let bearer = format!("Bearer {TOKEN}");
    let (status, json) = call(
        &app,
        post(
            "/v1/events/seaweedfs",
            Some(("authorization", &bearer)),
            body,
        ),
    )
    .await;
    assert_eq!(
        (status, json["outcomes"][0]["outcome"].as_str()),
        (StatusCode::OK, Some("submitted"))
    );
    assert_eq!(h.jobs(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_without_a_secret_are_off_and_short_secrets_refused() {
    let h = Harness::new(RULES);
    let app = events_router(endpoint(&h, EventsAuth::default()));
    for path in ["/v1/events/s3", "/v1/events/seaweedfs"] {
        let (status, json) = call(&app, post(path, Some((SECRET_HEADER, SECRET)), "{}")).await;
        assert_eq!(
            (status, json["error"]["code"].as_str()),
            (StatusCode::NOT_FOUND, Some("events_disabled"))
        );
    }
    let short = EventsAuth {
        s3_secret: Some("short".into()),
        ..EventsAuth::default()
    };
    assert!(EventsEndpoint::new(h.trigger.clone(), short).is_err());
    assert!(!format!("{:?}", both()).contains(SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mounted_on_the_upload_api() {
    let h = Harness::new(RULES);
    let mut keys = ApiKeys::new();
    keys.insert("an-api-key-long-enough", "acme").unwrap();
    let config = ServeConfig::new("127.0.0.1:0".parse().unwrap(), keys);
    let queue: Arc<dyn folio_transport::JobQueue> = Arc::new(h.queue.clone());
    let ingestor =
        folio_ingest::Ingestor::new(folio_ingest::IngestConfig::from_runtime_dir(&runtime_dir()));
    let state = AppState::new(
        config,
        h.store.clone(),
        queue,
        ingestor,
        Arc::new(StoreProbe::new(h.store.clone())),
    )
    .unwrap();
    let ok = Some((SECRET_HEADER, SECRET));
    // Mounted but not configured: off.
    let bare = folio_api::http::app(state.clone());
    let (status, json) = call(&bare, post("/v1/events/s3", ok, "{}")).await;
    assert_eq!(
        (status, json["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("events_disabled"))
    );
    // With the endpoint in an extension layer: on.
    let app = folio_api::http::app(state).layer(Extension(endpoint(&h, both())));
    let png = corpus(PNG);
    h.put_source("inbox", "scans/u.png", png.clone()).await;
    let body = aws_put("inbox", "scans/u.png", png.len() as u64, "u1", "01");
    let (status, json) = call(&app, post("/v1/events/s3", ok, body)).await;
    assert_eq!(
        (status, json["outcomes"][0]["outcome"].as_str()),
        (StatusCode::OK, Some("submitted")),
        "{json}"
    );
}
