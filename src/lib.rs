//! barman-cloud-exporter: a Prometheus exporter for PostgreSQL backups written
//! by barman-cloud (CloudNativePG's barman-cloud plugin, or barman-cloud alone)
//! to S3-compatible storage, cross-checked with `pg_stat_archiver`.
//!
//! # Layout
//!
//! Data flows config → collectors → pure analysis → snapshot → HTTP:
//!
//! * [`config`]: the YAML/env configuration, validated at start-up;
//! * [`shard`]: which targets this replica collects when several share the
//!   configuration (`--shard`/`--total-shards`);
//! * [`scheduler`]: one loop per target, running its collectors every
//!   `interval` under one hard `timeout` and publishing the outcome, on a
//!   tokio runtime of its own so that scrapes never queue behind collection
//!   work; [`collector`]: the seam it runs (the S3 walk, the PostgreSQL query)
//!   and their typed failures;
//! * [`source`]: the I/O. [`source::store`] is the object-store seam (list a
//!   prefix page by page, GET at most N bytes), [`source::s3`] its S3
//!   implementation, [`source::walk`] the one (incremental) walk over it;
//!   [`source::postgres`]: `pg_stat_archiver` with libpq's `sslmode`;
//!   [`source::tls`]: CA bundles;
//! * [`catalog`]: pure barman-cloud knowledge, no I/O, unit-tested from
//!   fixtures: keys ([`catalog::key`]), WAL names and arithmetic
//!   ([`catalog::wal`]), `backup.info` ([`catalog::backup_info`]), `.history`
//!   ([`catalog::history`]), bounded decompression ([`catalog::compression`]),
//!   listing plans ([`catalog::listing`]), continuity
//!   ([`catalog::continuity`]), retention ([`catalog::retention`]), the
//!   archiver↔bucket join ([`catalog::archiver`]) and the per-server
//!   analysis ([`catalog::analysis`]);
//! * [`snapshot`]: the store of immutable per-target snapshots, swapped in
//!   after each collection, with a publish generation;
//! * [`metrics`]: the metric catalogue ([`metrics::catalogue`]), the encoder
//!   and its OpenMetrics and text 0.0.4 writers, the process figures
//!   ([`metrics::process`]);
//! * [`http`]: the router, the render cache ([`http::render_cache`]), the
//!   landing page ([`http::landing`], [`http::timeline`]) and `/api/status`
//!   ([`http::status`]);
//! * [`web_config`]: optional TLS and basic auth in front of the router
//!   (`--web.config.file`).

pub mod catalog;
pub mod collector;
pub mod config;
pub mod http;
pub mod metrics;
pub mod scheduler;
pub mod shard;
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

/// Crates whose debug or trace logs print credentials: the AWS SDK logs the
/// resolved identity (access key id) at debug and SigV4's canonical request
/// (access key id, session token) at trace.
pub const CREDENTIAL_LOGGING_CRATES: &[&str] = &[
    "aws_config",
    "aws_credential_types",
    "aws_runtime",
    "aws_sdk_s3",
    "aws_sdk_sso",
    "aws_sdk_ssooidc",
    "aws_sdk_sts",
    "aws_sigv4",
    "aws_smithy_http_client",
    "aws_smithy_runtime",
    "aws_smithy_runtime_api",
];

/// The tracing filter for `--log.level`: the directive as given, with every
/// crate of [`CREDENTIAL_LOGGING_CRATES`] that it does not name capped at
/// `info`, so `--log.level debug` never prints a credential. Naming such a
/// crate (e.g. `debug,aws_smithy_runtime=debug`) lifts the cap for it.
pub fn log_filter(directive: &str) -> String {
    let mut out = directive.trim().to_string();
    for krate in CREDENTIAL_LOGGING_CRATES {
        let named = out
            .split(',')
            .any(|d| d.trim().split(['=', '[', ':']).next() == Some(krate));
        if !named {
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(krate);
            out.push_str("=info");
        }
    }
    out
}

/// The collections' own tokio runtime (one worker per CPU, threads named as
/// tokio's default), apart from the one serving HTTP: a scrape never queues
/// behind collection work (listing pages being parsed, analysis, rendering)
/// on a worker thread. Shut down in the background when dropped (dropping a
/// runtime inside async code would panic), after the collections stopped.
struct CollectorRuntime(Option<tokio::runtime::Runtime>);

impl CollectorRuntime {
    fn new() -> std::io::Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .thread_name("collector")
            .on_thread_start(lower_priority)
            .build()?;
        Ok(Self(Some(rt)))
    }

    fn handle(&self) -> tokio::runtime::Handle {
        match &self.0 {
            Some(rt) => rt.handle().clone(),
            None => unreachable!("the runtime is only taken on drop"),
        }
    }
}

impl Drop for CollectorRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// The nice value of the collector runtime's threads (0 is the default, 19
/// the lowest priority): the kernel then gives the HTTP threads the CPU first
/// when a walk parses listings at full speed, so scrapes do not queue behind
/// it; with CPU to spare the walk is as fast as before.
pub const COLLECTOR_NICE: i32 = 10;

/// Lowers the calling thread's CPU priority to [`COLLECTOR_NICE`] (Linux:
/// the nice value is per thread); where that is refused, nothing changes.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), COLLECTOR_NICE) {
        tracing::debug!("could not lower the collector thread's priority: {e}");
    }
}

/// Renders the exposition's snapshot part after every publish (coalesced),
/// on the blocking pool of the collector runtime, so the scrape that follows
/// finds it ready in `cache` ([`http::render_cache::RenderCache::prerender`]).
///
/// Renderings are spaced out: the next one starts no sooner than
/// [`RENDER_SPACING`] times the last one's duration after it started (at
/// most [`MAX_RENDER_DELAY`]), so that with hundreds of targets publishing
/// every second or so, rendering tens of thousands of series takes at most
/// a fifth of a core and scrapes keep the CPU they need; meanwhile scrapes
/// serve the previous rendering. With a few targets a rendering takes
/// about a millisecond and the spacing is not noticeable.
async fn prerender_on_publish(
    store: Arc<Store>,
    cache: Arc<http::render_cache::RenderCache>,
    shutdown: CancellationToken,
) {
    let mut next = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = store.published() => {}
            () = shutdown.cancelled() => break,
        }
        cache.defer();
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            () = shutdown.cancelled() => break,
        }
        let started = tokio::time::Instant::now();
        let (s, c) = (store.clone(), cache.clone());
        if tokio::task::spawn_blocking(move || c.prerender(&s)).await.is_err() {
            warn!("rendering the metrics after a publish failed; scrapes render them instead");
        }
        next = started + (started.elapsed() * RENDER_SPACING).min(MAX_RENDER_DELAY);
    }
}

/// Renderings of `/metrics` start at least this many times the last one's
/// duration apart ([`prerender_on_publish`]).
const RENDER_SPACING: u32 = 5;
/// The longest a publish waits for its rendering because of the spacing.
const MAX_RENDER_DELAY: Duration = Duration::from_secs(1);

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
    let collectors = CollectorRuntime::new()?;
    let on = collectors.handle();
    let _ = store.collector_runtime.set(on.clone());
    let mut tasks = JoinSet::new();
    let shared = scheduler::Shared::of(&config);
    for (target, slot) in config.targets.iter().zip(&store.targets) {
        tasks.spawn_on(
            scheduler::run_target(
                target.clone(),
                slot.clone(),
                scheduler::Settings::of(&config),
                shared.clone(),
                shutdown.clone(),
            ),
            &on,
        );
    }
    let state = http::AppState::new(store.clone(), telemetry_path.clone());
    tasks.spawn_on(
        prerender_on_publish(store, state.render_cache.clone(), shutdown.clone()),
        &on,
    );
    if let Ok(addr) = listener.local_addr() {
        let (scheme, auth) = (web.scheme(), web.requires_auth());
        info!(%addr, targets = config.targets.len(), basic_auth = auth, "serving metrics on {scheme}://{addr}{telemetry_path}");
    }
    let app = web.protect(http::router(state));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_logging_keeps_the_sdk_at_info() {
        let f = log_filter("debug");
        assert!(f.starts_with("debug,") && f.contains("aws_smithy_runtime=info") && f.contains("aws_sigv4=info"));
        let f = log_filter("debug,aws_smithy_runtime=trace");
        assert!(f.contains("aws_smithy_runtime=trace") && !f.contains("aws_smithy_runtime=info"));
        assert!(f.contains("aws_smithy_runtime_api=info"), "{f}");
        assert!(tracing_subscriber::EnvFilter::try_new(log_filter("warn,barman_cloud_exporter=debug")).is_ok());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn collector_threads_run_at_a_lower_priority() {
        use rustix::process::getpriority_process;
        use rustix::thread::gettid;
        let base = getpriority_process(Some(gettid())).unwrap();
        let rt = CollectorRuntime::new().unwrap();
        let (worker, blocking) = rt.handle().block_on(async {
            let worker = getpriority_process(Some(gettid())).unwrap();
            let blocking = tokio::task::spawn_blocking(|| getpriority_process(Some(gettid())).unwrap())
                .await
                .unwrap();
            (worker, blocking)
        });
        let handle = rt.handle();
        let spawned = handle.block_on(handle.spawn(async { getpriority_process(Some(gettid())).unwrap() }));
        if base <= COLLECTOR_NICE {
            assert_eq!((spawned.unwrap(), blocking), (COLLECTOR_NICE, COLLECTOR_NICE));
        }
        // The thread that only waited on the runtime keeps its priority.
        assert_eq!(worker, base);
        assert_eq!(getpriority_process(Some(gettid())).unwrap(), base);
    }
}
