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
//! * [`metrics`]: the metric catalogue and encoder; [`http`]: the router.

pub mod catalog;
pub mod config;
pub mod http;
pub mod metrics;
pub mod scheduler;
pub mod snapshot;
pub mod source;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use config::Config;
use snapshot::Store;

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
    let store = Arc::new(Store::new(&config));
    let mut tasks = JoinSet::new();
    for (target, slot) in config.targets.iter().zip(&store.targets) {
        tasks.spawn(scheduler::run_target(
            target.clone(),
            slot.clone(),
            config.interval,
            config.timeout,
            shutdown.clone(),
        ));
    }
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, targets = config.targets.len(), "serving metrics on http://{addr}{telemetry_path}");
    }
    let app = http::router(http::AppState { store, telemetry_path });
    let stop = shutdown.clone();
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    shutdown.cancel();
    let drained = tokio::time::timeout(SHUTDOWN_GRACE, async { while tasks.join_next().await.is_some() {} }).await;
    if drained.is_err() {
        warn!("collections still running after {SHUTDOWN_GRACE:?}; aborting them");
        tasks.shutdown().await;
    }
    info!("stopped");
    served
}
