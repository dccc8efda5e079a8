//! HTTP layer: only encodes the current snapshots, never does I/O.
//!
//! * `/metrics` (or `--web.telemetry-path`): OpenMetrics 1.0.0, or the classic
//!   text format 0.0.4 when the client asks only for `text/plain`; gzip when
//!   the client accepts it (Prometheus does), at the fastest level, the
//!   snapshot part compressed once per publish ([`gzip`], [`render_cache`]);
//! * `/healthz`: 200 while the process runs;
//! * `/readyz`: 200 once every target finished its first collection (success or not), else 503;
//! * `/api/status`: JSON with every target, server and backup (per-backup detail
//!   stays off the metrics to keep cardinality bounded);
//! * `/`: an HTML landing page with the same information and a picture per
//!   server ([`landing`], [`timeline`]).
//!
//! `/api/status` is [`status`]; its shape is documented in `docs/api.md`.

pub mod gzip;
pub mod landing;
pub mod status;
pub mod timeline;

pub mod render_cache;

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::metrics::{OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE};
use crate::snapshot::Store;
use render_cache::RenderCache;

/// Shared state of the HTTP handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The snapshot store.
    pub store: Arc<Store>,
    /// Path the metrics are served on (e.g. `/metrics`).
    pub telemetry_path: String,
    /// The snapshot part of the exposition, rendered once per publish.
    pub render_cache: Arc<RenderCache>,
}

impl AppState {
    /// The state for `store`, serving the metrics on `telemetry_path`, with an empty render cache.
    pub fn new(store: Arc<Store>, telemetry_path: impl Into<String>) -> Self {
        Self {
            store,
            telemetry_path: telemetry_path.into(),
            render_cache: Arc::default(),
        }
    }
}

/// Builds the router.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(landing::page))
        .route(&state.telemetry_path, get(metrics_handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/api/status", get(status::handler))
        .with_state(state)
}

async fn metrics_handler(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    let accept = header(header::ACCEPT);
    let text = accept.contains("text/plain") && !accept.contains("application/openmetrics-text");
    let content_type = if text {
        TEXT_CONTENT_TYPE
    } else {
        OPENMETRICS_CONTENT_TYPE
    };
    let (cache, store) = (&state.render_cache, &state.store);
    let vary = (header::VARY, "accept-encoding");
    if gzip::accepts_gzip(header(header::ACCEPT_ENCODING)) {
        let body = if text {
            cache.text_gzip(store)
        } else {
            cache.openmetrics_gzip(store)
        };
        let headers = [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_ENCODING, "gzip"),
            vary,
        ];
        (headers, body).into_response()
    } else {
        let body = if text {
            cache.text(store)
        } else {
            cache.openmetrics(store)
        };
        ([(header::CONTENT_TYPE, content_type), vary], body).into_response()
    }
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.store.ready() {
        // What is published now is what scrapes see from here on.
        let _ = state.render_cache.rendered_fresh(&state.store);
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: waiting for the first collection of every target\n",
        )
            .into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use axum::body::Body;
    use axum::http::Request;
    use figment::providers::{Format, Yaml};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    fn state() -> AppState {
        let config = Config::from_figment(
            figment::Figment::new().merge(Yaml::string("targets: [{name: \"a<b\", destination_path: 's3://b/p'}]")),
        )
        .unwrap();
        AppState::new(Arc::new(Store::new(&config)), "/metrics")
    }

    async fn get(state: AppState, path: &str, accept: Option<&str>) -> (StatusCode, String, String) {
        let mut req = Request::get(path);
        if let Some(a) = accept {
            req = req.header(header::ACCEPT, a);
        }
        let resp = router(state).oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
        let status = resp.status();
        let ct = resp
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, ct, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn metrics_negotiates_the_format() {
        let (s, ct, body) = get(state(), "/metrics", None).await;
        assert_eq!((s, ct.as_str()), (StatusCode::OK, OPENMETRICS_CONTENT_TYPE));
        assert!(body.ends_with("# EOF\n"));
        let prom = "application/openmetrics-text;version=1.0.0;q=0.5,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
        assert_eq!(get(state(), "/metrics", Some(prom)).await.1, OPENMETRICS_CONTENT_TYPE);
        let (_, ct, body) = get(state(), "/metrics", Some("text/plain")).await;
        assert_eq!(ct, TEXT_CONTENT_TYPE);
        assert!(!body.contains("# EOF"));
    }

    #[tokio::test]
    async fn metrics_are_gzipped_when_the_client_accepts_it() {
        use std::io::Read;
        let state = state();
        let fetch = |gzip: bool| {
            let state = state.clone();
            async move {
                let mut req = Request::get("/metrics");
                if gzip {
                    // What Prometheus sends.
                    req = req.header(header::ACCEPT_ENCODING, "gzip");
                }
                let resp = router(state).oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
                let encoding = resp.headers().get(header::CONTENT_ENCODING).cloned();
                (encoding, resp.into_body().collect().await.unwrap().to_bytes())
            }
        };
        let (encoding, plain) = fetch(false).await;
        assert_eq!(encoding, None);
        let (encoding, gz) = fetch(true).await;
        assert_eq!(encoding.as_ref().and_then(|v| v.to_str().ok()), Some("gzip"));
        let mut unzipped = String::new();
        flate2::read::GzDecoder::new(&gz[..])
            .read_to_string(&mut unzipped)
            .unwrap();
        // Same exposition but for the process figures read at each scrape.
        let stable = |t: &str| {
            t.lines()
                .filter(|l| !l.starts_with("process_"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(stable(&unzipped), stable(std::str::from_utf8(&plain).unwrap()));
        assert!(gz.len() < plain.len(), "{} >= {}", gz.len(), plain.len());
        // Other routes are left alone.
        let req = Request::get("/api/status").header(header::ACCEPT_ENCODING, "gzip");
        let resp = router(state.clone())
            .oneshot(req.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert!(resp.headers().get(header::CONTENT_ENCODING).is_none());
    }

    #[tokio::test]
    async fn readiness_follows_the_first_collection() {
        let st = state();
        assert_eq!(
            get(st.clone(), "/readyz", None).await.0,
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(get(st.clone(), "/healthz", None).await.0, StatusCode::OK);
        st.store.targets[0].publish(|t| {
            t.s3.record(
                Err(crate::collector::Failure::S3(crate::source::s3::S3Error::List {
                    bucket: "b".into(),
                    prefix: "p/".into(),
                    reason: crate::source::s3::S3ErrorReason::Connect,
                    message: "refused".into(),
                })),
                Default::default(),
            )
        });
        assert_eq!(get(st.clone(), "/readyz", None).await.0, StatusCode::OK);
        let (_, _, json) = get(st.clone(), "/api/status", None).await;
        let v: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["targets"][0]["s3"]["errors"]["connect"], 1);
        let (_, _, html) = get(st, "/", None).await;
        assert!(html.contains("Target a&#60;b") && html.contains("class=down"), "{html}");
    }
}
