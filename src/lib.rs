//! barman-cloud-exporter: a Prometheus exporter for PostgreSQL backups written
//! by barman-cloud (CloudNativePG's barman-cloud plugin, or barman-cloud alone)
//! to S3-compatible storage, cross-checked with `pg_stat_archiver`.
//!
//! # Layout
//!
//! Data flows config → targets → collectors → pure analysis → snapshot → HTTP:
//!
//! * [`config`]: the YAML/env configuration, validated at start-up;
//! * [`scheduler`]: one loop per target, collecting every `interval` under a hard `timeout`;
//! * [`source::s3`], [`source::postgres`]: the I/O (listings and GETs; `pg_stat_archiver`);
//! * [`catalog`]: pure barman-cloud knowledge (keys, WAL names, `backup.info`,
//!   the per-server analysis), unit-tested from fixtures;
//! * [`snapshot`]: immutable per-target snapshots swapped in after each collection;
//! * [`metrics`]: the metric catalogue and encoder; [`http`]: the router;
//! * [`web_config`]: optional TLS and basic auth in front of the router (`--web.config.file`).

pub mod catalog;
pub mod config;
pub mod http;
pub mod metrics;
pub mod scheduler;
pub mod snapshot;
pub mod source;
pub mod web_config;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use config::Config;
use snapshot::Store;
use web_config::{TlsListener, WebConfig};

/// How long background collections get to stop after shutdown is requested.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Runs the exporter on an already bound listener until `shutdown` is cancelled:
/// starts one collection loop per target and serves HTTP; on shutdown stops
/// accepting, drains requests and aborts collections still running after
/// [`SHUTDOWN_GRACE`].
///
/// # Errors
/// Only if the HTTP server fails.
pub async fn run(
    config: Config,
    listener: TcpListener,
    telemetry_path: String,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    run_with_web_config(config, listener, telemetry_path, WebConfig::default(), shutdown).await
}

/// As [`run`], with the TLS and basic auth of a `--web.config.file` in front
/// of every route.
///
/// # Errors
/// Only if the HTTP server fails.
pub async fn run_with_web_config(
    config: Config,
    listener: TcpListener,
    telemetry_path: String,
    web: WebConfig,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let store = Arc::new(Store::new(&config));
    let mut tasks = JoinSet::new();
    for (target, slot) in config.targets.iter().zip(&store.targets) {
        tasks.spawn(scheduler::run_target(
            target.clone(),
            slot.clone(),
            scheduler::Settings::of(&config),
            shutdown.clone(),
        ));
    }
    if let Ok(addr) = listener.local_addr() {
        let (scheme, auth) = (web.scheme(), web.requires_auth());
        info!(%addr, targets = config.targets.len(), basic_auth = auth, "serving metrics on {scheme}://{addr}{telemetry_path}");
    }
    let app = web.protect(http::router(http::AppState { store, telemetry_path }));
    let stop = shutdown.clone();
    let served = match web.tls() {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
        }
        Some(tls) => match TlsListener::new(listener, tls) {
            Ok(listener) => {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await
            }
            Err(e) => Err(e),
        },
    };
    shutdown.cancel();
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        warn!("collections still running after {SHUTDOWN_GRACE:?}; aborting them");
        tasks.shutdown().await;
    }
    info!("stopped");
    served
}
