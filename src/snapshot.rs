//! The in-memory snapshot store between collectors and the HTTP layer.
//!
//! Each target has one slot holding an immutable [`TargetSnapshot`] behind an
//! `Arc`; a collection builds the next snapshot and swaps it in, so a scrape
//! only clones `Arc`s under a brief read lock and never waits on S3 or
//! PostgreSQL. A failed collection keeps the last good data (`last_good`) and
//! marks its collector down.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::catalog::analysis::TargetSummary;
use crate::collector::Failure;
use crate::config::{Config, Target};
use crate::source::postgres::ArchiverStatus;
use crate::source::s3::{RequestCounter, WalkStats};

/// The state of one collector (S3 or PostgreSQL) of one target.
#[derive(Debug, Clone)]
pub struct CollectorState<T> {
    /// The result of the last successful collection.
    pub last_good: Option<Arc<T>>,
    /// Whether the last collection succeeded.
    pub up: bool,
    /// Number of completed attempts (success or failure).
    pub attempts: u64,
    /// Unix seconds of the last successful collection's end.
    pub last_success: Option<f64>,
    /// Wall time of the last attempt, seconds.
    pub last_duration: Option<f64>,
    /// The last error message (credentials never included).
    pub last_error: Option<String>,
    /// Unix seconds of the last error.
    pub last_error_time: Option<f64>,
    /// Errors so far per bounded reason (a counter).
    pub errors: BTreeMap<&'static str, u64>,
}

impl<T> Default for CollectorState<T> {
    fn default() -> Self {
        Self {
            last_good: None,
            up: false,
            attempts: 0,
            last_success: None,
            last_duration: None,
            last_error: None,
            last_error_time: None,
            errors: BTreeMap::new(),
        }
    }
}

impl<T> CollectorState<T> {
    /// Records an attempt's outcome: `Ok(data)` replaces `last_good`, a
    /// [`Failure`] keeps it and counts its [`Failure::reason`]. `duration` is
    /// the attempt's wall time.
    pub fn record(&mut self, outcome: Result<T, Failure>, duration: Duration) {
        let now = unix_now();
        self.attempts += 1;
        self.last_duration = Some(duration.as_secs_f64());
        match outcome {
            Ok(data) => {
                self.last_good = Some(Arc::new(data));
                self.up = true;
                self.last_success = Some(now);
            }
            Err(failure) => {
                self.up = false;
                self.last_error = Some(failure.to_string());
                self.last_error_time = Some(now);
                *self.errors.entry(failure.reason()).or_default() += 1;
            }
        }
    }
}

/// What is known about one target at one moment. Immutable once published.
#[derive(Debug, Clone, Default)]
pub struct TargetSnapshot {
    /// The S3 catalog walk.
    pub s3: CollectorState<TargetSummary>,
    /// `pg_stat_archiver`, when the target has `postgres`.
    pub postgres: Option<CollectorState<ArchiverStatus>>,
    /// Successful S3 walks by kind (`full`, `incremental`).
    pub walks: BTreeMap<&'static str, u64>,
    /// The work of the last successful S3 walk.
    pub last_walk: Option<WalkStats>,
}

impl TargetSnapshot {
    /// Whether every configured collector has completed at least one attempt.
    pub fn completed_once(&self) -> bool {
        self.s3.attempts > 0 && self.postgres.as_ref().is_none_or(|p| p.attempts > 0)
    }
}

/// Static facts about a target, fixed at start-up.
#[derive(Debug)]
pub struct TargetSlot {
    /// Target name (`target` label).
    pub name: String,
    /// Static labels, sorted by name.
    pub labels: Vec<(String, String)>,
    /// `destination_path`.
    pub destination_path: String,
    /// `endpoint_url` or `AWS`.
    pub endpoint: String,
    /// The object store kind of `destination_path`.
    pub provider: crate::config::Provider,
    /// serverName the PostgreSQL cluster archives to, when configured.
    pub postgres_server: Option<String>,
    /// S3 requests sent for this target.
    pub requests: Arc<RequestCounter>,
    current: RwLock<Arc<TargetSnapshot>>,
    /// Shared by all slots of a [`Store`]: counted and woken at every publish.
    published: Arc<Publications>,
}

/// The publications of a [`Store`]'s slots: a generation counter and a
/// notification, both moved by every publish of any target.
#[derive(Debug, Default)]
struct Publications {
    /// Publishes so far ([`Store::generation`]).
    generation: AtomicU64,
    /// Woken at every publish ([`Store::published`]).
    notify: tokio::sync::Notify,
}

impl TargetSlot {
    /// The current snapshot.
    pub fn snapshot(&self) -> Arc<TargetSnapshot> {
        self.current
            .read()
            .map(|g| g.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    /// Publishes a new snapshot built from the current one by `update`.
    pub fn publish(&self, update: impl FnOnce(&mut TargetSnapshot)) {
        let mut next = (*self.snapshot()).clone();
        update(&mut next);
        let next = Arc::new(next);
        match self.current.write() {
            Ok(mut g) => *g = next,
            Err(p) => *p.into_inner() = next,
        }
        // After the swap: whoever reads the new generation then sees the new snapshot.
        self.published.generation.fetch_add(1, Ordering::Release);
        self.published.notify.notify_one();
    }
}

/// All targets' slots, in configuration order, plus exporter-wide facts.
#[derive(Debug)]
pub struct Store {
    /// Collection interval (shown in HELP texts).
    pub interval: Duration,
    /// One slot per target this replica collects.
    pub targets: Vec<Arc<TargetSlot>>,
    /// The shard those targets are ([`Config::shard`]).
    pub shard: crate::shard::Shard,
    /// Counted and woken at every publish of any target.
    published: Arc<Publications>,
    /// The runtime the collections run on, when apart from the one serving
    /// HTTP (its tasks count in `barman_cloud_exporter_tasks`).
    pub collector_runtime: std::sync::OnceLock<tokio::runtime::Handle>,
}

impl Store {
    /// Creates empty slots for every configured target.
    pub fn new(config: &Config) -> Self {
        let published = Arc::new(Publications::default());
        Self {
            interval: config.interval,
            targets: config.targets.iter().map(|t| Arc::new(slot(t, &published))).collect(),
            shard: config.shard,
            published,
            collector_runtime: std::sync::OnceLock::new(),
        }
    }

    /// Resolves after the next publish of any target (or at once if one
    /// happened since the last call: notifications coalesce into one).
    pub async fn published(&self) {
        self.published.notify.notified().await;
    }

    /// The publish generation: how many publishes of any target happened so
    /// far. It moves after the new snapshot is in place, so anything read
    /// after reading generation `g` is at least as new as `g` (a rendering
    /// cached under `g` is current while the generation is still `g`).
    pub fn generation(&self) -> u64 {
        self.published.generation.load(Ordering::Acquire)
    }

    /// Whether every target has completed its first collection (success or not).
    pub fn ready(&self) -> bool {
        self.targets.iter().all(|t| t.snapshot().completed_once())
    }
}

fn slot(t: &Target, published: &Arc<Publications>) -> TargetSlot {
    TargetSlot {
        name: t.name.clone(),
        labels: t.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
        destination_path: t.destination_path.clone(),
        endpoint: t.endpoint_url.clone().unwrap_or_else(|| match t.provider() {
            crate::config::Provider::S3 => "AWS".into(),
            crate::config::Provider::Azure => t
                .destination()
                .ok()
                .and_then(|d| d.service_url)
                .unwrap_or_else(|| "Azure".into()),
            crate::config::Provider::Gcs => "https://storage.googleapis.com".into(),
        }),
        provider: t.provider(),
        postgres_server: t.postgres.as_ref().and_then(|p| p.server_name(t)).map(str::to_string),
        requests: Arc::new(RequestCounter::default()),
        current: RwLock::new(Arc::new(TargetSnapshot {
            s3: CollectorState::default(),
            postgres: t.postgres.as_ref().map(|_| CollectorState::default()),
            walks: BTreeMap::new(),
            last_walk: None,
        })),
        published: published.clone(),
    }
}

/// Current time as Unix seconds.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
