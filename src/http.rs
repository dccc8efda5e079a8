//! HTTP layer: only encodes the current snapshots, never does I/O.
//!
//! * `/metrics` (or `--web.telemetry-path`): OpenMetrics 1.0.0, or the classic
//!   text format 0.0.4 when the client asks only for `text/plain`; gzip when
//!   the client accepts it (Prometheus does), at the fastest level;
//! * `/healthz`: 200 while the process runs;
//! * `/readyz`: 200 once every target finished its first collection (success or not), else 503;
//! * `/api/status`: JSON with every target, server and backup (per-backup detail
//!   stays off the metrics to keep cardinality bounded);
//! * `/`: an HTML landing page with the same information.

pub mod render_cache;

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::get;
use serde_json::{Value, json};
use tower_http::CompressionLevel;
use tower_http::compression::CompressionLayer;

use crate::metrics::{self, OPENMETRICS_CONTENT_TYPE, TEXT_CONTENT_TYPE};
use crate::snapshot::{CollectorState, Store, TargetSlot, TargetSnapshot};
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
        .route("/", get(landing))
        .route(
            &state.telemetry_path,
            get(metrics_handler).layer(CompressionLayer::new().gzip(true).quality(CompressionLevel::Fastest)),
        )
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/api/status", get(status_json))
        .with_state(state)
}

async fn metrics_handler(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()).unwrap_or("");
    if accept.contains("text/plain") && !accept.contains("application/openmetrics-text") {
        (
            [(header::CONTENT_TYPE, TEXT_CONTENT_TYPE)],
            state.render_cache.text(&state.store),
        )
            .into_response()
    } else {
        (
            [(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)],
            state.render_cache.openmetrics(&state.store),
        )
            .into_response()
    }
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.store.ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: waiting for the first collection of every target\n",
        )
            .into_response()
    }
}

fn collector_json<T: serde::Serialize>(c: &CollectorState<T>) -> Value {
    json!({
        "up": c.up,
        "attempts": c.attempts,
        "last_success": c.last_success,
        "last_duration_seconds": c.last_duration,
        "last_error": c.last_error,
        "last_error_time": c.last_error_time,
        "errors": c.errors,
        "data": c.last_good.as_deref(),
    })
}

fn target_json(slot: &TargetSlot, snap: &TargetSnapshot) -> Value {
    json!({
        "name": slot.name,
        "labels": slot.labels.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
        "destination_path": slot.destination_path,
        "endpoint": slot.endpoint,
        "postgres_server": slot.postgres_server,
        "s3": collector_json(&snap.s3),
        "postgres": snap.postgres.as_ref().map(collector_json),
        "s3_requests": slot.requests.snapshot().by_operation,
        "s3_walks": snap.walks,
        "s3_last_walk": snap.last_walk,
    })
}

async fn status_json(State(state): State<AppState>) -> Json<Value> {
    let targets: Vec<Value> = state
        .store
        .targets
        .iter()
        .map(|slot| target_json(slot, &slot.snapshot()))
        .collect();
    Json(json!({
        "version": metrics::VERSION,
        "revision": metrics::REVISION,
        "ready": state.store.ready(),
        "targets": targets,
    }))
}

/// Escapes text for HTML.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn time(t: Option<f64>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t as i64, 0))
        .map_or_else(|| "–".into(), |d| d.format("%Y-%m-%d %H:%M:%S UTC").to_string())
}

fn state_cell<T>(c: &CollectorState<T>) -> String {
    if c.attempts == 0 {
        "pending".into()
    } else if c.up {
        "<span class=up>up</span>".into()
    } else {
        "<span class=down>down</span>".into()
    }
}

async fn landing(State(state): State<AppState>) -> Html<String> {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=utf-8><title>barman-cloud-exporter</title>\
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;margin-bottom:1.5em}}\
td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left}}.up{{color:#080}}.down{{color:#c00;font-weight:bold}}</style>\
</head><body><h1>barman-cloud-exporter {}</h1><p><a href=\"{}\">Metrics</a> · <a href=\"/api/status\">JSON status</a> · \
<a href=\"/healthz\">healthz</a> · <a href=\"/readyz\">readyz</a></p>",
        esc(metrics::VERSION),
        esc(&state.telemetry_path)
    );
    for slot in &state.store.targets {
        let snap = slot.snapshot();
        let _ = write!(
            h,
            "<h2>Target {}</h2><p>{} at {}</p><table><tr><th>collector</th><th>state</th><th>last success</th><th>last error</th></tr>\
<tr><td>s3</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&slot.name),
            esc(&slot.destination_path),
            esc(&slot.endpoint),
            state_cell(&snap.s3),
            time(snap.s3.last_success),
            esc(snap.s3.last_error.as_deref().unwrap_or("–")),
        );
        if let Some(pg) = &snap.postgres {
            let _ = write!(
                h,
                "<tr><td>postgres</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                state_cell(pg),
                time(pg.last_success),
                esc(pg.last_error.as_deref().unwrap_or("–")),
            );
        }
        h.push_str("</table>");
        let Some(summary) = &snap.s3.last_good else {
            continue;
        };
        h.push_str("<table><tr><th>server</th><th>done</th><th>failed</th><th>started</th><th>unreadable</th><th>newest DONE backup ended</th><th>newest WAL</th><th>orphaned</th></tr>");
        for s in &summary.servers {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{} ({})</td><td>{}</td></tr>",
                esc(&s.name),
                s.backups.done,
                s.backups.failed,
                s.backups.started,
                s.backups.unreadable,
                time(s.last_success_timestamp),
                esc(s.wal_newest_segment.as_deref().unwrap_or("–")),
                time(s.wal_last_archived_timestamp),
                if s.orphaned {
                    "<span class=down>yes</span>"
                } else {
                    "no"
                },
            );
        }
        h.push_str("</table>");
        h.push_str("<table><tr><th>server</th><th>timeline</th><th>newest WAL</th><th>missing segments</th><th>first missing</th><th>recovery window</th><th>restorable</th><th>WAL before first backup (unprotected)</th><th>retention: obsolete / reclaimable</th></tr>");
        for s in &summary.servers {
            let c = s.continuity.as_ref();
            let window = format!(
                "{} → {}",
                time(s.first_recoverability_point),
                time(c.and_then(|c| c.recovery_window_end))
            );
            let missing = c.and_then(|c| c.missing_segments);
            let leftover = s
                .leftover(crate::catalog::retention::LeftoverReason::Unprotected)
                .map_or_else(|| "–".into(), |u| format!("{} objects, {} bytes", u.objects, u.bytes));
            let retention = s.retention.as_ref().map_or_else(
                || "not configured".into(),
                |r| {
                    if r.blocked {
                        "blocked (unreadable backup.info)".to_string()
                    } else {
                        format!("{} / {} bytes", r.obsolete_backups.len(), r.reclaimable_bytes)
                    }
                },
            );
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&s.name),
                c.map_or_else(|| "–".into(), |c| c.timeline.to_string()),
                esc(c.map_or("–", |c| c.newest_segment.as_str())),
                match missing {
                    Some(0) => "0".to_string(),
                    Some(n) => format!("<span class=down>{n}</span>"),
                    None => "–".into(),
                },
                esc(c.and_then(|c| c.first_missing.as_deref()).unwrap_or("–")),
                esc(&window),
                c.map_or(0, |c| c.restorable.len()),
                esc(&leftover),
                esc(&retention),
            );
        }
        h.push_str("</table>");
        for s in &summary.servers {
            let _ = write!(
                h,
                "<h3>Backups of {}</h3><table><tr><th>id</th><th>status</th><th>begin</th><th>end</th><th>timeline</th><th>WAL</th><th>bytes</th><th>restorable to newest WAL</th><th>error</th></tr>",
                esc(&s.name)
            );
            let restorable = |id: &str| {
                s.continuity
                    .as_ref()
                    .is_some_and(|c| c.restorable.iter().any(|r| r == id))
            };
            for b in &s.backup_list {
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}..{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                    esc(&b.id),
                    esc(&b.status),
                    time(b.begin_time),
                    time(b.end_time),
                    b.timeline.map_or_else(|| "–".into(), |t| t.to_string()),
                    esc(b.begin_wal.as_deref().unwrap_or("?")),
                    esc(b.end_wal.as_deref().unwrap_or("?")),
                    b.bytes,
                    if b.status != "DONE" {
                        "–"
                    } else if restorable(&b.id) {
                        "yes"
                    } else {
                        "<span class=down>no</span>"
                    },
                    esc(b.error.as_deref().unwrap_or("")),
                );
            }
            h.push_str("</table>");
        }
    }
    h.push_str("</body></html>");
    Html(h)
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
        st.store.targets[0].publish(|t| t.s3.record(Err(("connect", "x".into())), Default::default()));
        assert_eq!(get(st.clone(), "/readyz", None).await.0, StatusCode::OK);
        let (_, _, json) = get(st.clone(), "/api/status", None).await;
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["targets"][0]["s3"]["errors"]["connect"], 1);
        let (_, _, html) = get(st, "/", None).await;
        assert!(html.contains("Target a&lt;b") && html.contains("class=down"));
    }
}
