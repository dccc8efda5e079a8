//! Per-target collection loop: every `interval`, run the S3 walk and the
//! PostgreSQL query concurrently under one hard deadline (`timeout`), then
//! publish a new snapshot.
//!
//! The deadline drops the collection futures, which aborts all their work
//! (listings, GETs, the PostgreSQL connection task); nothing is detached. One
//! target's failure or slowness never delays another target: each runs in its
//! own task.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::catalog::analysis::{AnalysisOptions, TargetSummary, summarize_target};
use crate::config::Target;
use crate::snapshot::TargetSlot;
use crate::snapshot::unix_now;
use crate::source::postgres::{ArchiverStatus, PgError, PgErrorReason, PgTarget};
use crate::source::s3::{S3Source, WalkCache, WalkOptions, WalkStats};

/// A collector outcome as recorded in the snapshot: data, or `(reason, message)`.
type Outcome<T> = Result<T, (&'static str, String)>;

/// How every target is collected (from the global configuration).
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Time between the starts of two collections.
    pub interval: Duration,
    /// Hard deadline of one collection.
    pub timeout: Duration,
    /// The periodic full reconcile of the incremental walk.
    pub full_walk_interval: Duration,
    /// WAL directory listings in flight at once per target.
    pub list_concurrency: usize,
}

impl Settings {
    /// The settings of `config`.
    pub fn of(config: &crate::config::Config) -> Self {
        Self {
            interval: config.interval,
            timeout: config.timeout,
            full_walk_interval: config.full_walk_interval,
            list_concurrency: config.list_concurrency,
        }
    }
}

/// Collects one target forever (until `shutdown`), publishing into `slot`.
pub async fn run_target(target: Target, slot: Arc<TargetSlot>, settings: Settings, shutdown: CancellationToken) {
    let Settings {
        interval,
        timeout,
        full_walk_interval,
        list_concurrency,
    } = settings;
    // Built at the first cycle, and again at the next one while it fails (a
    // `ca_file` not mounted yet); kept between cycles once built.
    let mut client: Option<S3Source> = None;
    // What the last successful walk saw; a failed or aborted walk leaves it as is.
    let mut cache = WalkCache::default();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = shutdown.cancelled() => break,
        }
        let deadline = Instant::now() + timeout;
        // One "now" per cycle for the retention plan and the analysis.
        let now = unix_now();
        let built = client.take();
        let s3_run = async {
            let start = Instant::now();
            let s3 = match built {
                Some(c) => Ok(c),
                None => S3Source::new(&target, slot.requests.clone()).await,
            };
            let outcome: Outcome<(TargetSummary, WalkStats)> = match &s3 {
                Err(e) => Err((e.reason().as_str(), e.to_string())),
                Ok(source) => {
                    let opts = WalkOptions {
                        retention: target.retention(),
                        now,
                        full_walk_interval: full_walk_interval.as_secs_f64(),
                        list_concurrency,
                    };
                    let sent = || slot.requests.snapshot().by_operation.values().sum::<u64>();
                    let before = sent();
                    match tokio::time::timeout_at(deadline, source.walk(opts, &cache)).await {
                        Ok(Ok(mut walk)) => {
                            walk.stats.requests = sent() - before;
                            debug!(target_name = %slot.name, stats = ?walk.stats, "walk finished");
                            cache = walk.cache;
                            Ok((
                                summarize_target(&walk.catalog, &analysis_options(&target, now)),
                                walk.stats,
                            ))
                        }
                        Ok(Err(e)) => Err((e.reason().as_str(), e.to_string())),
                        Err(_) => Err(("timeout", format!("S3 walk did not finish within {}", fmt(timeout)))),
                    }
                }
            };
            (outcome, start.elapsed(), s3.ok())
        };
        let pg_run = async {
            let pg = target.postgres.as_ref()?;
            let start = Instant::now();
            let outcome = match tokio::time::timeout_at(deadline, collect_postgres(pg, timeout)).await {
                Ok(Ok(status)) => Ok(status),
                Ok(Err(e)) => Err((e.reason.as_str(), e.message)),
                Err(_) => Err((
                    PgErrorReason::Timeout.as_str(),
                    format!("PostgreSQL collection did not finish within {}", fmt(timeout)),
                )),
            };
            Some((outcome, start.elapsed()))
        };
        let ((s3_outcome, s3_took, built), pg) = tokio::select! {
            r = async { tokio::join!(s3_run, pg_run) } => r,
            () = shutdown.cancelled() => break,
        };
        client = built;
        log_outcome(&slot.name, "s3", &s3_outcome, s3_took);
        if let Some((o, took)) = &pg {
            log_outcome(&slot.name, "postgres", o, *took);
        }
        slot.publish(|snap| {
            let s3_outcome = s3_outcome.map(|(summary, stats)| {
                *snap
                    .walks
                    .entry(if stats.is_full() { "full" } else { "incremental" })
                    .or_default() += 1;
                snap.last_walk = Some(stats);
                summary
            });
            snap.s3.record(s3_outcome, s3_took);
            if let (Some(state), Some((o, took))) = (&mut snap.postgres, pg) {
                state.record(o, took);
            }
        });
    }
    debug!(target_name = %slot.name, "collection loop stopped");
}

fn analysis_options(target: &Target, now: f64) -> AnalysisOptions<'_> {
    AnalysisOptions {
        servers: target.servers.as_deref(),
        orphan_after: target.orphan_after.as_secs_f64(),
        stuck_after: target.stuck_after.as_secs_f64(),
        retention: target.retention_policy.is_some(),
        now,
    }
}

/// One PostgreSQL collection; the server cancels our statements after
/// `timeout` too, so a hung query does not outlive the deadline there.
async fn collect_postgres(pg: &crate::config::Postgres, timeout: Duration) -> Result<ArchiverStatus, PgError> {
    let url = match (&pg.url, &pg.url_file) {
        (Some(url), _) => url.expose().to_string(),
        (None, Some(path)) => tokio::fs::read_to_string(path)
            .await
            .map_err(|e| PgError {
                reason: PgErrorReason::Config,
                message: format!("postgres url_file {}: {e}", path.display()),
            })?
            .trim()
            .to_string(),
        (None, None) => {
            return Err(PgError {
                reason: PgErrorReason::Config,
                message: "postgres: neither url nor url_file".into(),
            });
        }
    };
    PgTarget::parse(&url)?.with_statement_timeout(timeout).collect().await
}

fn log_outcome<T>(target: &str, collector: &str, outcome: &Outcome<T>, took: Duration) {
    match outcome {
        Ok(_) => info!(
            target_name = target,
            collector,
            seconds = took.as_secs_f64(),
            "collection succeeded"
        ),
        Err((reason, message)) => warn!(
            target_name = target,
            collector,
            reason,
            error = %message,
            seconds = took.as_secs_f64(),
            "collection failed; keeping the last good values"
        ),
    }
}

fn fmt(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}
