//! The scheduler's timing rules with paused tokio time and scripted
//! collectors: the deadline, the last good values, the interval and shutdown.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use figment::Figment;
use figment::providers::{Format, Yaml};

use super::*;
use crate::catalog::analysis::TargetSummary;
use crate::collector::CollectorKind;
use crate::config::Config;
use crate::snapshot::Store;
use crate::source::postgres::{PgError, PgErrorReason};
use crate::source::s3::WalkStats;

/// What a scripted collector does at one cycle.
enum Step<T> {
    /// Succeeds with the value after the duration.
    Ok(T, Duration),
    /// Fails with a PostgreSQL-style reason after the duration.
    Fail(PgErrorReason, Duration),
}

/// Shared observations of a scripted collector.
#[derive(Default)]
struct Seen {
    /// Paused-clock instants at which each collection started.
    starts: Mutex<Vec<Instant>>,
    /// Collections dropped before they finished (deadline or shutdown).
    dropped: AtomicUsize,
}

struct Scripted<T> {
    kind: CollectorKind,
    steps: VecDeque<Step<T>>,
    seen: Arc<Seen>,
}

/// Counts a drop that happens before `done` is set.
struct DropGuard<'a> {
    seen: &'a Seen,
    done: bool,
}

impl Drop for DropGuard<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.seen.dropped.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl<T: Send + 'static> Collector for Scripted<T> {
    type Data = T;

    fn kind(&self) -> CollectorKind {
        self.kind
    }

    async fn collect(&mut self, _now: f64) -> Result<T, Failure> {
        self.seen.starts.lock().unwrap().push(Instant::now());
        let mut guard = DropGuard {
            seen: &self.seen,
            done: false,
        };
        // Out of script: hang until dropped.
        let step = self.steps.pop_front();
        let took = match &step {
            Some(Step::Ok(_, d) | Step::Fail(_, d)) => *d,
            None => Duration::from_secs(86_400 * 365),
        };
        tokio::time::sleep(took).await;
        guard.done = true;
        match step {
            Some(Step::Ok(v, _)) => Ok(v),
            Some(Step::Fail(reason, _)) => Err(Failure::Postgres(PgError::new(reason, "scripted failure"))),
            None => unreachable!("slept for a year"),
        }
    }
}

fn scripted<T>(kind: CollectorKind, steps: Vec<Step<T>>) -> (Scripted<T>, Arc<Seen>) {
    let seen = Arc::new(Seen::default());
    let c = Scripted {
        kind,
        steps: steps.into(),
        seen: seen.clone(),
    };
    (c, seen)
}

/// A walk whose `listed_dirs` marks which scripted step produced it.
fn walk(mark: u64, full: bool) -> S3Collection {
    S3Collection {
        summary: TargetSummary {
            servers: Vec::new(),
            orphan_servers: 0,
            orphan_bytes: 0,
            storage: Default::default(),
        },
        stats: WalkStats {
            listed_dirs: mark,
            incremental_servers: u64::from(!full),
            ..Default::default()
        },
    }
}

fn archiver(count: i64) -> ArchiverStatus {
    ArchiverStatus {
        archived_count: count,
        last_archived_wal: None,
        last_archived_time: None,
        failed_count: 0,
        last_failed_wal: None,
        last_failed_time: None,
        stats_reset: None,
        in_recovery: false,
        current_wal_lsn: None,
        current_wal_file: None,
        wal_segment_size: None,
    }
}

fn store(with_postgres: bool) -> Store {
    let pg = if with_postgres {
        ", postgres: {url: 'postgresql://u@127.0.0.1:1/db'}"
    } else {
        ""
    };
    let yaml = format!("targets: [{{name: t, destination_path: 's3://b/p', servers: [s]{pg}}}]");
    Store::new(&Config::from_figment(Figment::from(Yaml::string(&yaml))).unwrap())
}

const MIN: Duration = Duration::from_secs(60);

/// Runs the loop in a task; returns the store, the shutdown token and the task.
fn start(
    with_postgres: bool,
    interval: Duration,
    timeout: Duration,
    s3: Scripted<S3Collection>,
    pg: Option<Scripted<ArchiverStatus>>,
) -> (Arc<Store>, CancellationToken, tokio::task::JoinHandle<()>) {
    let store = Arc::new(store(with_postgres));
    let shutdown = CancellationToken::new();
    let (st, stop) = (store.clone(), shutdown.clone());
    let task =
        tokio::spawn(
            async move { run_loop(&st.targets[0], interval, timeout, s3, pg, &Semaphore::new(1), stop).await },
        );
    (store, shutdown, task)
}

#[tokio::test(start_paused = true)]
async fn the_deadline_drops_a_hung_collector_and_still_publishes_the_other() {
    let (s3, s3_seen) = scripted(CollectorKind::S3, vec![]);
    let (pg, pg_seen) = scripted(
        CollectorKind::Postgres,
        vec![Step::Ok(archiver(7), Duration::from_secs(2))],
    );
    let (store, shutdown, task) = start(true, 5 * MIN, 30 * Duration::from_secs(1), s3, Some(pg));
    store.published().await;
    let snap = store.targets[0].snapshot();
    assert!(!snap.s3.up);
    assert_eq!(snap.s3.errors.get("timeout"), Some(&1));
    assert_eq!(snap.s3.last_error.as_deref(), Some("S3 walk did not finish within 30s"));
    // The paused clock makes the attempt's wall time exactly the deadline.
    assert_eq!(snap.s3.last_duration, Some(30.0));
    assert_eq!(s3_seen.dropped.load(Ordering::SeqCst), 1, "the hung walk was dropped");
    let pg = snap.postgres.as_ref().unwrap();
    assert!(pg.up);
    assert_eq!(pg.last_good.as_ref().unwrap().archived_count, 7);
    assert_eq!(pg.last_duration, Some(2.0));
    assert_eq!(pg_seen.dropped.load(Ordering::SeqCst), 0);
    assert!(store.ready());
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_failure_keeps_the_last_good_values_until_the_next_success() {
    let d = Duration::from_secs(1);
    let (s3, _) = scripted(
        CollectorKind::S3,
        vec![
            Step::Ok(walk(1, true), d),
            Step::Fail(PgErrorReason::Connect, d),
            Step::Ok(walk(3, false), d),
        ],
    );
    let (store, shutdown, task) = start(false, MIN, 10 * d, s3, None::<Scripted<ArchiverStatus>>);
    let slot = &store.targets[0];

    store.published().await;
    let first = slot.snapshot();
    assert!(first.s3.up && first.s3.last_error.is_none());
    assert_eq!(first.last_walk.map(|w| w.listed_dirs), Some(1));
    assert_eq!(first.walks.get("full"), Some(&1));
    let first_good = first.s3.last_good.clone().unwrap();

    store.published().await;
    let second = slot.snapshot();
    assert!(!second.s3.up);
    assert_eq!(second.s3.errors.get("connect"), Some(&1));
    assert_eq!(second.s3.attempts, 2);
    assert!(
        Arc::ptr_eq(second.s3.last_good.as_ref().unwrap(), &first_good),
        "last good kept"
    );
    assert_eq!(
        second.last_walk.map(|w| w.listed_dirs),
        Some(1),
        "a failed walk changes no walk figure"
    );
    assert_eq!(second.s3.last_success, first.s3.last_success);

    store.published().await;
    let third = slot.snapshot();
    assert!(third.s3.up);
    assert_eq!(third.last_walk.map(|w| w.listed_dirs), Some(3));
    assert_eq!(
        (third.walks.get("full"), third.walks.get("incremental")),
        (Some(&1), Some(&1))
    );
    assert_eq!(third.s3.errors.get("connect"), Some(&1), "the counter never goes back");
    shutdown.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn cycles_start_every_interval_and_an_overrun_delays_the_next() {
    let (s3, seen) = scripted(
        CollectorKind::S3,
        vec![
            Step::Ok(walk(1, true), Duration::from_secs(10)),
            Step::Ok(walk(2, true), Duration::from_secs(90)),
            Step::Ok(walk(3, true), Duration::from_secs(10)),
            Step::Ok(walk(4, true), Duration::from_secs(10)),
        ],
    );
    let origin = Instant::now();
    let (store, shutdown, task) = start(false, MIN, 2 * MIN, s3, None::<Scripted<ArchiverStatus>>);
    for _ in 0..4 {
        store.published().await;
    }
    shutdown.cancel();
    task.await.unwrap();
    let starts: Vec<u64> = seen
        .starts
        .lock()
        .unwrap()
        .iter()
        .map(|t| (*t - origin).as_secs())
        .collect();
    // 0 and 60 on schedule; the second cycle ends at 150, so the third starts
    // at once and the fourth one interval later: never two at a time.
    assert_eq!(starts, vec![0, 60, 150, 210]);
}

#[tokio::test(start_paused = true)]
async fn shutdown_interrupts_a_cycle_without_publishing_it() {
    let (s3, seen) = scripted(CollectorKind::S3, vec![]);
    let (store, shutdown, task) = start(false, MIN, 10 * MIN, s3, None::<Scripted<ArchiverStatus>>);
    tokio::time::sleep(Duration::from_secs(5)).await;
    shutdown.cancel();
    task.await.unwrap();
    assert_eq!(seen.starts.lock().unwrap().len(), 1);
    assert_eq!(seen.dropped.load(Ordering::SeqCst), 1, "the running walk was dropped");
    let snap = store.targets[0].snapshot();
    assert_eq!(snap.s3.attempts, 0, "nothing published");
    assert!(!store.ready());
}

#[tokio::test(start_paused = true)]
async fn both_collectors_share_one_deadline_from_the_cycle_start() {
    let (s3, _) = scripted(
        CollectorKind::S3,
        vec![Step::Ok(walk(1, true), Duration::from_secs(20))],
    );
    let (pg, pg_seen) = scripted(
        CollectorKind::Postgres,
        vec![Step::Ok(archiver(1), Duration::from_secs(45))],
    );
    let (store, shutdown, task) = start(true, 5 * MIN, Duration::from_secs(30), s3, Some(pg));
    store.published().await;
    let snap = store.targets[0].snapshot();
    assert!(snap.s3.up);
    let pg = snap.postgres.as_ref().unwrap();
    assert!(!pg.up);
    assert_eq!(pg.errors.get("timeout"), Some(&1));
    assert_eq!(
        pg.last_error.as_deref(),
        Some("PostgreSQL collection did not finish within 30s")
    );
    assert_eq!(pg_seen.dropped.load(Ordering::SeqCst), 1);
    shutdown.cancel();
    task.await.unwrap();
}
