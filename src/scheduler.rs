//! Per-target collection loop: every `interval`, run the target's collectors
//! ([`crate::collector`]: the S3 walk and, when configured, the PostgreSQL
//! query) concurrently under one hard deadline (`timeout`), then publish a new
//! snapshot.
//!
//! The deadline drops the collection futures, which aborts all their work
//! (listings, GETs, the PostgreSQL connection task); nothing is detached. A
//! failed collector keeps its last good values and is marked down. One
//! target's failure or slowness never delays another target: each runs in its
//! own task. The loop is generic over the [`Collector`] seam, so its timing
//! rules are unit-tested with paused tokio time and no endpoint.

use std::sync::Arc;
use std::time::Duration;

use aws_smithy_runtime_api::client::http::SharedHttpClient;
use tokio::sync::Semaphore;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::collector::{Collector, Failure, PgCollector, S3Collection, S3Collector};
use crate::config::Target;
use crate::snapshot::{TargetSlot, TargetSnapshot, unix_now};
use crate::source::postgres::ArchiverStatus;

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

/// What every target's loop shares: the bound on collections running at once
/// (`max_concurrent_collections`) and the HTTP client of the S3 targets.
#[derive(Debug, Clone)]
pub struct Shared {
    /// One permit per collection that may run at once.
    pub slots: Arc<Semaphore>,
    /// The HTTP client S3 targets without a `ca_file` send through.
    pub http: Option<SharedHttpClient>,
}

impl Shared {
    /// For `config`: `max_concurrent_collections` slots, and one HTTP client
    /// whose idle connections close after half the collection interval.
    pub fn of(config: &crate::config::Config) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(config.max_concurrent_collections)),
            http: Some(crate::source::tls::shared_http_client(config.interval / 2)),
        }
    }
}

/// Collects one target forever (until `shutdown`), publishing into `slot`.
pub async fn run_target(
    target: Target,
    slot: Arc<TargetSlot>,
    settings: Settings,
    shared: Shared,
    shutdown: CancellationToken,
) {
    let pg = target.postgres.clone().map(|p| PgCollector::new(p, settings.timeout));
    let s3 = S3Collector::new(
        target,
        slot.requests.clone(),
        settings.full_walk_interval,
        settings.list_concurrency,
    )
    .with_http_client(shared.http);
    run_loop(
        &slot,
        settings.interval,
        settings.timeout,
        s3,
        pg,
        &shared.slots,
        shutdown,
    )
    .await;
}

/// The loop of [`run_target`] over any collectors: a cycle starts every
/// `interval` (a cycle that overruns delays the next, it never overlaps it),
/// runs both collectors concurrently until `timeout` after the cycle's start,
/// and publishes both outcomes at once. Shutdown interrupts a cycle without
/// publishing it.
pub async fn run_loop<S, P>(
    slot: &TargetSlot,
    interval: Duration,
    timeout: Duration,
    mut s3: S,
    mut pg: Option<P>,
    slots: &Semaphore,
    shutdown: CancellationToken,
) where
    S: Collector<Data = S3Collection>,
    P: Collector<Data = ArchiverStatus>,
{
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            () = shutdown.cancelled() => break,
        }
        // A slot among `max_concurrent_collections` before the deadline starts
        // (never closed, so acquiring cannot fail).
        let _slot = tokio::select! {
            slot = slots.acquire() => slot.ok(),
            () = shutdown.cancelled() => break,
        };
        let deadline = Instant::now() + timeout;
        // One "now" per cycle for the retention plan and the analysis.
        let now = unix_now();
        let cycle = async {
            let pg_run = async {
                match pg.as_mut() {
                    Some(p) => Some(run_one(p, now, deadline, timeout).await),
                    None => None,
                }
            };
            tokio::join!(run_one(&mut s3, now, deadline, timeout), pg_run)
        };
        let (s3_run, pg_run) = tokio::select! {
            r = cycle => r,
            () = shutdown.cancelled() => break,
        };
        log_outcome(&slot.name, &s3_run);
        if let Some(r) = &pg_run {
            log_outcome(&slot.name, r);
        }
        slot.publish(|snap| record(snap, s3_run, pg_run));
    }
    debug!(target_name = %slot.name, "collection loop stopped");
}

/// One collector's attempt: its kind, its outcome and its wall time.
pub struct Run<T> {
    /// `collector` label value.
    pub collector: &'static str,
    /// Data, or why not.
    pub outcome: Result<T, Failure>,
    /// Wall time of the attempt, from the start of the cycle (at most the
    /// target's `timeout`; a collector that hits the deadline took exactly
    /// `timeout`, however late `join!` first polled it).
    pub took: Duration,
}

/// Runs `c` once, until `deadline` at the latest: a collector that is still
/// running then is dropped (its work aborted) and fails with
/// [`Failure::Deadline`].
pub async fn run_one<C: Collector>(c: &mut C, now: f64, deadline: Instant, timeout: Duration) -> Run<C::Data> {
    let kind = c.kind();
    // The cycle started `timeout` before the shared deadline. Measuring from
    // the first poll instead would under-report a collector polled after
    // another's synchronous set-up (e.g. the SDK client) ran.
    let start = deadline.checked_sub(timeout).unwrap_or_else(Instant::now);
    let outcome = match tokio::time::timeout_at(deadline, c.collect(now)).await {
        Ok(r) => r,
        Err(_) => Err(Failure::Deadline {
            collector: kind,
            after: timeout,
        }),
    };
    Run {
        collector: kind.as_str(),
        outcome,
        took: start.elapsed(),
    }
}

/// Applies one cycle's outcomes to the next snapshot: a success replaces the
/// collector's last good values (and counts the walk by kind), a failure
/// keeps them and counts its reason.
pub fn record(snap: &mut TargetSnapshot, s3: Run<S3Collection>, pg: Option<Run<ArchiverStatus>>) {
    let outcome = s3.outcome.map(|c| {
        *snap
            .walks
            .entry(if c.stats.is_full() { "full" } else { "incremental" })
            .or_default() += 1;
        snap.last_walk = Some(c.stats);
        c.summary
    });
    snap.s3.record(outcome, s3.took);
    if let (Some(state), Some(run)) = (&mut snap.postgres, pg) {
        state.record(run.outcome, run.took);
    }
}

fn log_outcome<T>(target: &str, run: &Run<T>) {
    let (collector, seconds) = (run.collector, run.took.as_secs_f64());
    match &run.outcome {
        Ok(_) => info!(target_name = target, collector, seconds, "collection succeeded"),
        Err(e) => warn!(
            target_name = target,
            collector,
            reason = e.reason(),
            error = %e,
            seconds,
            "collection failed; keeping the last good values"
        ),
    }
}

#[cfg(test)]
mod tests;
