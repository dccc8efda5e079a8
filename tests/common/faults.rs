//! Shared checks of the fault tests (`tests/faults_s3.rs`, `tests/faults_pg.rs`):
//! timed scrapes, the catalog values of one target, error counters, a panic
//! counter for the exporter's tasks, and the per-fault report row.

use std::collections::BTreeMap;
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use super::{Exporter, Sample, samples, value};

/// The bound 95 % of the scrapes of each fault are held to (100 ms;
/// `BCE_SCRAPE_P95_MS` overrides it on a machine busy with other work).
pub fn scrape_budget() -> Duration {
    Duration::from_millis(
        std::env::var("BCE_SCRAPE_P95_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100),
    )
}

/// The bound every scrape is held to: far below any collection `timeout`, so
/// a scrape that waited on a collection fails it; above the few hundred ms a
/// scrape can lose to a CPU shared with builds.
pub const SCRAPE_HARD_LIMIT: Duration = Duration::from_secs(1);

static PANICS: AtomicUsize = AtomicUsize::new(0);
static HOOK: Once = Once::new();

/// Counts panics on tokio worker threads (the exporter's collection and HTTP
/// tasks run there; the test bodies do not), keeping the default report.
pub fn count_task_panics() {
    HOOK.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if std::thread::current()
                .name()
                .is_some_and(|n| n.starts_with("tokio-runtime-worker"))
            {
                PANICS.fetch_add(1, Ordering::SeqCst);
            }
            default(info);
        }));
    });
}

/// Panics seen on tokio worker threads so far.
pub fn task_panics() -> usize {
    PANICS.load(Ordering::SeqCst)
}

/// Timed `/metrics` scrapes: each is held to [`SCRAPE_HARD_LIMIT`], the 95th
/// percentile of each window (see [`Scraper::take_max`]) to [`scrape_budget`].
pub struct Scraper<'a> {
    exporter: &'a Exporter,
    client: reqwest::Client,
    /// Scrape durations since the last [`Scraper::take_max`].
    pub took: Vec<Duration>,
}

impl<'a> Scraper<'a> {
    pub fn new(exporter: &'a Exporter) -> Self {
        Self {
            exporter,
            client: reqwest::Client::new(),
            took: Vec::new(),
        }
    }

    /// Scrapes `/metrics` once, asserting it answers 200 within the budget.
    pub async fn scrape(&mut self) -> Vec<Sample> {
        let start = Instant::now();
        let resp = self
            .client
            .get(format!("{}/metrics", self.exporter.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let body = resp.text().await.unwrap();
        let took = start.elapsed();
        assert!(took < SCRAPE_HARD_LIMIT, "a scrape took {took:?}");
        self.took.push(took);
        samples(&body)
    }

    /// `/api/status` as JSON.
    pub async fn status(&self) -> serde_json::Value {
        let resp = self
            .client
            .get(format!("{}/api/status", self.exporter.base))
            .send()
            .await
            .unwrap();
        serde_json::from_str(&resp.text().await.unwrap()).unwrap()
    }

    /// The last error message of a target's collector, from `/api/status`.
    pub async fn last_error(&self, target: &str, collector: &str) -> String {
        let status = self.status().await;
        let t = status["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == target)
            .unwrap();
        t[collector]["last_error"].as_str().unwrap_or("").to_string()
    }

    /// Ends a window: asserts its 95th percentile is within [`scrape_budget`]
    /// and returns (slowest, 95th percentile, number of scrapes).
    pub fn take_max(&mut self) -> (Duration, Duration, usize) {
        let mut t = std::mem::take(&mut self.took);
        if t.is_empty() {
            return (Duration::ZERO, Duration::ZERO, 0);
        }
        t.sort();
        let p95 = t[(t.len() * 95).div_ceil(100) - 1];
        assert!(
            p95 < scrape_budget(),
            "95th percentile scrape {p95:?} (of {}, slowest {:?})",
            t.len(),
            t[t.len() - 1]
        );
        (t[t.len() - 1], p95, t.len())
    }

    /// Scrapes every 50 ms until `cond` holds; checks `each` on every scrape.
    pub async fn until(
        &mut self,
        within: Duration,
        what: &str,
        mut each: impl FnMut(&[Sample]),
        cond: impl Fn(&[Sample]) -> bool,
    ) -> Vec<Sample> {
        let start = Instant::now();
        loop {
            let s = self.scrape().await;
            each(&s);
            if cond(&s) {
                return s;
            }
            assert!(
                start.elapsed() < within,
                "timed out after {within:?} waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Scrapes every 50 ms for `how_long`, checking `each`.
    pub async fn hold(&mut self, how_long: Duration, mut each: impl FnMut(&[Sample])) {
        let start = Instant::now();
        while start.elapsed() < how_long {
            let s = self.scrape().await;
            each(&s);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The data series of `target` (collector bookkeeping and request counters
/// excluded), keyed by name and labels: what must stay unchanged while a
/// collector fails. `keep` filters by series name.
pub fn values(s: &[Sample], target: &str, keep: impl Fn(&str) -> bool) -> BTreeMap<String, f64> {
    s.iter()
        .filter(|x| x.labels.get("target").map(String::as_str) == Some(target))
        .filter(|x| {
            !x.name.starts_with("barman_cloud_collector_")
                && !x.name.starts_with("barman_cloud_s3_")
                && !x.name.starts_with("barman_cloud_exporter_")
        })
        .filter(|x| keep(&x.name))
        .map(|x| (format!("{}{:?}", x.name, x.labels), x.value))
        .collect()
}

/// `barman_cloud_collector_up` of a target's collector.
pub fn up(s: &[Sample], target: &str, collector: &str) -> Option<f64> {
    value(
        s,
        "barman_cloud_collector_up",
        &[("target", target), ("collector", collector)],
    )
}

/// `barman_cloud_collector_last_success_timestamp_seconds` of a target's collector.
pub fn last_success(s: &[Sample], target: &str, collector: &str) -> Option<f64> {
    value(
        s,
        "barman_cloud_collector_last_success_timestamp_seconds",
        &[("target", target), ("collector", collector)],
    )
}

/// `barman_cloud_collector_errors_total` of a target's collector, by reason.
pub fn errors(s: &[Sample], target: &str, collector: &str) -> BTreeMap<String, f64> {
    s.iter()
        .filter(|x| {
            x.name == "barman_cloud_collector_errors_total"
                && x.labels.get("target").map(String::as_str) == Some(target)
                && x.labels.get("collector").map(String::as_str) == Some(collector)
        })
        .map(|x| (x.labels["reason"].clone(), x.value))
        .collect()
}

/// Now, Unix seconds.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// One line of the report in docs/reliability.md.
#[derive(Debug)]
pub struct Row {
    pub fault: String,
    pub reason: String,
    pub detected: Duration,
    pub recovered: Duration,
    pub max_scrape: Duration,
    pub p95_scrape: Duration,
    pub scrapes: usize,
    pub note: String,
}

impl Row {
    /// Prints the row as a Markdown table line (copied into docs/reliability.md).
    pub fn print(&self) {
        println!(
            "| {} | `{}` | {:.1} s | yes, {:.1} s | {:.1} ms (p95 {:.1} ms, {} scrapes) | {} |",
            self.fault,
            self.reason,
            self.detected.as_secs_f64(),
            self.recovered.as_secs_f64(),
            self.max_scrape.as_secs_f64() * 1000.0,
            self.p95_scrape.as_secs_f64() * 1000.0,
            self.scrapes,
            self.note
        );
    }
}
