//! PostgreSQL faults against a real PostgreSQL 15 started for this test (a
//! throwaway primary and, from `pg_basebackup -R`, a standby, both on
//! loopback, stopped by their postmaster PID when the test ends or panics).
//!
//! Target `pgfault` reads its PostgreSQL URL from a `url_file` (re-read every
//! cycle), pointed at the primary, the standby, or a loopback listener that
//! black-holes connections;
//! target `other` reads the scenario's own `pg-main` (read-only). For each
//! fault: no panic; `pgfault` keeps its last good values with
//! `barman_cloud_collector_up{collector="postgres"} 0` and the expected
//! `reason`; the hard `timeout` ends the work (the black hole sees the
//! connection closed; a hung query's backend is gone from `pg_stat_activity`); `other`
//! and `pgfault`'s S3 collector keep their schedule; `/metrics` stays fast;
//! the next good cycle recovers without a restart.

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::faults::{Row, Scraper, count_task_panics, errors, last_success, task_panics, unix_now, up, values};
use common::pg_cluster::{Cluster, PASSWORD};
use common::{Exporter, Sample, Scenario, value};
use tokio::net::TcpListener;

const INTERVAL: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_secs(4);
const T: &str = "pgfault";
const O: &str = "other";

/// A listener on loopback that accepts connections and never answers (a
/// peer that is gone: "no route"); counts the connections still open.
struct BlackHole {
    port: u16,
    open: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl BlackHole {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let open = Arc::new(AtomicUsize::new(0));
        let o = open.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                let o = o.clone();
                o.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    // Swallow everything until the client gives up.
                    let _ = tokio::io::copy(&mut client, &mut tokio::io::sink()).await;
                    o.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Self { port, open, task }
    }
}

/// PostgreSQL series of a target whose values must not change while the
/// collector fails (the WAL position moves with any write, so it is compared separately).
fn pg_values(s: &[Sample], target: &str) -> BTreeMap<String, f64> {
    values(s, target, |n| {
        n.starts_with("barman_cloud_pg_")
            && n != "barman_cloud_pg_current_wal_lsn_bytes"
            && n != "barman_cloud_pg_archiver_pending_segments"
    })
}

fn lsn(s: &[Sample], target: &str) -> Option<f64> {
    s.iter()
        .find(|x| x.name == "barman_cloud_pg_current_wal_lsn_bytes" && x.labels["target"] == target)
        .map(|x| x.value)
}

/// Active backends of the `exporter` role reading pg_stat_archiver.
fn exporter_queries(primary: &Cluster) -> usize {
    primary
        .psql(
            "SELECT count(*) FROM pg_stat_activity WHERE usename = 'exporter' AND state = 'active' \
             AND query LIKE '%pg_stat_archiver%'",
        )
        .parse()
        .unwrap()
}

struct Ctx<'a> {
    scraper: Scraper<'a>,
    primary: &'a Cluster,
    baseline: BTreeMap<String, f64>,
    rows: Vec<Row>,
}

impl Ctx<'_> {
    /// Fault on (by `on`), detection with `reason`, a hold, fault off (by
    /// `off`), recovery; returns the detection instant for extra checks.
    /// `restarts`: the fault restarts the server, whose shutdown archives a
    /// segment, so the recovered values are checked against the server itself
    /// and become the new baseline.
    async fn fault(
        &mut self,
        name: &str,
        reason: &str,
        on: impl AsyncFnOnce(),
        off: impl AsyncFnOnce(),
        restarts: bool,
        note: &str,
    ) {
        let s = self.scraper.scrape().await;
        assert_eq!(up(&s, T, "postgres"), Some(1.0), "{name}: starts from a good cycle");
        let errors_before = errors(&s, T, "postgres");
        let lsn_before = lsn(&s, T);
        let other_before = last_success(&s, O, "postgres").unwrap();
        let s3_before = last_success(&s, T, "s3").unwrap();
        self.scraper.take_max();
        let started = Instant::now();
        on().await;
        let baseline = self.baseline.clone();
        let check = |s: &[Sample]| {
            assert_eq!(pg_values(s, T), baseline, "{name}: the last good values stay");
            assert_eq!(
                up(s, O, "postgres"),
                Some(1.0),
                "{name}: the other target is unaffected"
            );
            assert_eq!(up(s, T, "s3"), Some(1.0), "{name}: the S3 collector is unaffected");
        };
        let detected_at = self
            .scraper
            .until(TIMEOUT + INTERVAL * 4, &format!("{name} detected"), check, |s| {
                errors(s, T, "postgres").values().sum::<f64>() > errors_before.values().sum::<f64>()
            })
            .await;
        let detected = started.elapsed();
        let message = self.scraper.last_error(T, "postgres").await;
        assert_eq!(
            up(&detected_at, T, "postgres"),
            Some(0.0),
            "{name}: collector_up drops to 0"
        );
        // A cycle that was under way when the fault began may still have
        // succeeded (and seen the WAL the fault's own SQL wrote); from here on
        // the WAL position stays what the last good cycle saw.
        let lsn_last_good = lsn(&detected_at, T);
        assert!(lsn_last_good >= lsn_before);
        let mut expected = errors_before.clone();
        *expected.entry(reason.to_string()).or_default() += 1.0;
        assert_eq!(
            errors(&detected_at, T, "postgres"),
            expected,
            "{name}: one error, reason {reason}: {message}"
        );
        assert!(!message.contains(PASSWORD), "{name}: no password in the error");
        self.scraper
            .hold(Duration::from_millis(1500), |s| {
                check(s);
                assert_eq!(up(s, T, "postgres"), Some(0.0));
                assert_eq!(lsn(s, T), lsn_last_good, "{name}: the last good WAL position stays");
            })
            .await;
        let s = self.scraper.scrape().await;
        for (who, collector, before) in [(O, "postgres", other_before), (T, "s3", s3_before)] {
            let now = last_success(&s, who, collector).unwrap();
            assert!(
                now > before && unix_now() - now < 2.5 * INTERVAL.as_secs_f64(),
                "{name}: {who}/{collector} kept its schedule ({before} → {now})"
            );
        }
        off().await;
        let off_at = Instant::now();
        let off_unix = unix_now();
        let s = self
            .scraper
            .until(
                TIMEOUT + INTERVAL * 6,
                &format!("{name} recovered"),
                |_| {},
                |s| up(s, T, "postgres") == Some(1.0) && last_success(s, T, "postgres").is_some_and(|t| t > off_unix),
            )
            .await;
        let recovered = off_at.elapsed();
        let archived: f64 = self
            .primary
            .psql("SELECT archived_count FROM pg_stat_archiver")
            .parse()
            .unwrap();
        assert_eq!(
            value(&s, "barman_cloud_pg_archiver_archived_total", &[("target", T)]),
            Some(archived),
            "{name}: the recovered values are the server's"
        );
        if restarts {
            self.baseline = pg_values(&s, T);
        } else {
            assert_eq!(pg_values(&s, T), self.baseline, "{name}: same values after recovery");
        }
        assert!(lsn(&s, T) >= lsn_before, "{name}: the WAL position only moves forward");
        let (max_scrape, p95_scrape, scrapes) = self.scraper.take_max();
        self.rows.push(Row {
            fault: name.to_string(),
            reason: reason.to_string(),
            detected,
            recovered,
            max_scrape,
            p95_scrape,
            scrapes,
            note: format!("{note}; error: {}", message.chars().take(120).collect::<String>()),
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn postgres_faults_keep_the_last_good_values() {
    count_task_panics();
    let sc = Scenario::load();
    let bin = PathBuf::from(
        serde_json::from_str::<serde_json::Value>(
            &std::fs::read_to_string(std::env::var("BCE_SCENARIO").unwrap()).unwrap(),
        )
        .unwrap()["pg_bin"]
            .as_str()
            .unwrap_or("/usr/lib/postgresql/15/bin"),
    );
    let primary = Cluster::primary(&bin);
    let hole = BlackHole::start().await;
    let url_dir = tempfile::tempdir().unwrap();
    let url_file = url_dir.path().join("url");
    std::fs::write(&url_file, primary.url(primary.port)).unwrap();
    let exporter = Exporter::start(|dir| {
        let scenario = sc.config_yaml(dir, "1s", "4s", true);
        let pgfault = scenario
            .replace("name: scenario", &format!("name: {T}"))
            .split_once("    postgres:\n")
            .unwrap()
            .0
            .split_once("targets:\n")
            .unwrap()
            .1
            .to_string()
            + &format!(
                "    postgres:\n      url_file: \"{}\"\n      server: \"pg-main\"\n",
                url_file.display()
            );
        format!("{}{pgfault}", scenario.replace("name: scenario", &format!("name: {O}")))
    })
    .await;
    exporter.wait_ready(Duration::from_secs(30)).await;
    let mut scraper = Scraper::new(&exporter);
    let s = scraper.scrape().await;
    assert_eq!(up(&s, T, "postgres"), Some(1.0), "{:?}", errors(&s, T, "postgres"));
    assert_eq!(
        value(&s, "barman_cloud_pg_archiver_archived_total", &[("target", T)]),
        Some(1.0)
    );
    assert_eq!(value(&s, "barman_cloud_pg_in_recovery", &[("target", T)]), Some(0.0));
    let baseline = pg_values(&s, T);
    let mut ctx = Ctx {
        scraper,
        primary: &primary,
        baseline,
        rows: Vec::new(),
    };

    // Wrong password: the server refuses the login.
    ctx.fault(
        "wrong password (role password changed)",
        "auth",
        async || {
            primary.psql("ALTER ROLE exporter PASSWORD 'changed-elsewhere'");
        },
        async || {
            primary.psql(&format!("ALTER ROLE exporter PASSWORD '{PASSWORD}'"));
        },
        false,
        "the server rejects the login",
    )
    .await;

    // Down (connection refused), then started again: a restart.
    ctx.fault(
        "server stopped (port refused), then restarted",
        "connect",
        async || primary.stop(),
        async || primary.start(),
        true,
        "pg_ctl stop -m fast / start",
    )
    .await;

    // No route: connections are accepted and never answered.
    ctx.fault(
        "no route (connections black-holed)",
        "timeout",
        async || {
            std::fs::write(&url_file, primary.url(hole.port)).unwrap();
        },
        async || std::fs::write(&url_file, primary.url(primary.port)).unwrap(),
        false,
        "a loopback listener swallows the startup packet",
    )
    .await;
    // Every black-holed connection was closed by the exporter at its deadline.
    let start = Instant::now();
    while hole.open.load(Ordering::SeqCst) > 0 {
        assert!(
            start.elapsed() < TIMEOUT + Duration::from_secs(2),
            "black-holed connections left open"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A query that hangs: a view shadowing pg_catalog.pg_stat_archiver sleeps.
    primary.psql(
        "CREATE SCHEMA hang; CREATE VIEW hang.pg_stat_archiver AS SELECT a.* FROM pg_catalog.pg_stat_archiver a, \
         pg_sleep(3600); GRANT USAGE ON SCHEMA hang TO exporter; GRANT SELECT ON hang.pg_stat_archiver TO exporter",
    );
    let mut hung_seen = 0;
    ctx.fault(
        "query hangs (pg_sleep(3600) in pg_stat_archiver)",
        "timeout",
        async || {
            primary.psql("ALTER ROLE exporter SET search_path = hang, pg_catalog");
        },
        async || {
            // The backend of the query that the deadline aborted is gone.
            let start = Instant::now();
            while exporter_queries(&primary) == 0 {
                assert!(start.elapsed() < TIMEOUT, "the hanging query never ran");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            hung_seen = 1;
            primary.psql("ALTER ROLE exporter RESET search_path");
        },
        false,
        "search_path shadows the catalog view",
    )
    .await;
    assert_eq!(hung_seen, 1);
    let start = Instant::now();
    while exporter_queries(&primary) > 0 {
        assert!(
            start.elapsed() < TIMEOUT + Duration::from_secs(2),
            "a hung query outlived the deadline in pg_stat_activity"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    primary.psql("DROP SCHEMA hang CASCADE");

    // A replica in recovery: up, in_recovery 1, no WAL position series.
    let standby = Cluster::standby_of(&primary);
    std::fs::write(&url_file, standby.url(standby.port)).unwrap();
    let standby_url_at = unix_now();
    let s = ctx
        .scraper
        .until(
            TIMEOUT + INTERVAL * 4,
            "standby collected",
            |_| {},
            |s| last_success(s, T, "postgres").is_some_and(|t| t > standby_url_at + 0.5),
        )
        .await;
    assert_eq!(up(&s, T, "postgres"), Some(1.0));
    assert_eq!(value(&s, "barman_cloud_pg_in_recovery", &[("target", T)]), Some(1.0));
    assert_eq!(lsn(&s, T), None, "no pg_current_wal_lsn on a standby");
    assert_eq!(
        value(&s, "barman_cloud_pg_archiver_pending_segments", &[("target", T)]),
        None
    );
    println!(
        "standby (pg_basebackup -R): collector_up 1, barman_cloud_pg_in_recovery 1, no \
         barman_cloud_pg_current_wal_lsn_bytes, {:.1} s after the URL switched",
        unix_now() - standby_url_at
    );
    std::fs::write(&url_file, primary.url(primary.port)).unwrap();
    drop(standby);

    assert_eq!(task_panics(), 0, "no panic in the exporter's tasks");
    assert!(!exporter.handle.is_finished());
    let rows = std::mem::take(&mut ctx.rows);
    drop(ctx);
    exporter.stop().await;
    println!("| fault | reason | detected after | recovered | slowest /metrics | notes |");
    for r in &rows {
        r.print();
    }
    drop(hole);
    drop(primary);
}
