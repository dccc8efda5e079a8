//! The incremental walk gives exactly what a full walk gives, on a real
//! barman-cloud layout (a copy of the scenario's `pg-main`, written by
//! PostgreSQL 15 + barman-cloud 3.19.1) through the changes a bucket sees:
//! new WAL in the newest directory, a new directory, a `.partial` on the old
//! timeline, a new DONE backup, a STARTED one, and a real
//! `barman-cloud-backup-delete`. Each step compares an incremental walk (from
//! the previous walk's cache) with a cold full walk of the same bucket at the
//! same instant, and checks which kind of walk ran and what it cost in requests.

mod common;

use std::sync::Arc;

use barman_cloud_exporter::catalog::analysis::{AnalysisOptions, TargetSummary, summarize_target};
use barman_cloud_exporter::config::{Config, Target};
use barman_cloud_exporter::source::s3::{RequestCounter, S3Source, Walk, WalkCache, WalkOptions};
use common::{Scenario, copy_server, prefix_of, shift_backup_times};
use figment::providers::{Format, Yaml};

/// One target pointed at a copy, with its S3 source and request counter.
struct Walker {
    target: Target,
    source: S3Source,
    requests: Arc<RequestCounter>,
}

impl Walker {
    async fn new(sc: &Scenario, dir: &std::path::Path, destination: &str) -> Self {
        let yaml = common::exporter_yaml(
            sc,
            dir,
            destination,
            "    servers: [\"pg-main\"]\n    retention_policy: 7d\n",
        );
        let config = Config::from_figment(figment::Figment::new().merge(Yaml::string(&yaml))).unwrap();
        let target = config.targets[0].clone();
        let requests = Arc::new(RequestCounter::default());
        let source = S3Source::new(&target, requests.clone()).await.unwrap();
        Self {
            target,
            source,
            requests,
        }
    }

    fn opts(&self, now: f64, list_concurrency: usize) -> WalkOptions {
        WalkOptions {
            retention: self.target.retention(),
            now,
            full_walk_interval: 86_400.0,
            list_concurrency,
        }
    }

    /// Walks from `cache` with `list_concurrency` listings at once (1: every
    /// WAL directory in one range listing; more: a listing per directory on
    /// this small layout); returns the walk, its summary and the requests it sent.
    async fn walk(&self, cache: &WalkCache, now: f64, list_concurrency: usize) -> (Walk, TargetSummary, u64) {
        let before: u64 = self.requests.snapshot().by_operation.values().sum();
        let walk = self.source.walk(self.opts(now, list_concurrency), cache).await.unwrap();
        let after: u64 = self.requests.snapshot().by_operation.values().sum();
        let servers = self.target.servers.clone();
        let summary = summarize_target(
            &walk.catalog,
            &AnalysisOptions {
                servers: servers.as_deref(),
                orphan_after: self.target.orphan_after.as_secs_f64(),
                stuck_after: self.target.stuck_after.as_secs_f64(),
                retention: true,
                now,
            },
        );
        (walk, summary, after - before)
    }

    /// An incremental walk from `cache` and a cold full walk at the same
    /// instant, listing all directories in one range listing; asserts they
    /// agree and returns the incremental one.
    async fn compare(&self, step: &str, cache: &WalkCache) -> (Walk, u64) {
        let now = barman_cloud_exporter::snapshot::unix_now();
        let (inc, inc_summary, inc_requests) = self.walk(cache, now, 4).await;
        let (full, full_summary, _) = self.walk(&WalkCache::default(), now, 1).await;
        assert!(full.stats.is_full(), "{step}: a cold walk is full");
        assert_eq!(
            serde_json::to_value(&inc_summary).unwrap(),
            serde_json::to_value(&full_summary).unwrap(),
            "{step}: the incremental walk differs from a full walk"
        );
        assert_eq!(inc_summary, full_summary, "{step}");
        (inc, inc_requests)
    }
}

async fn put(sc: &Scenario, key: &str, body: Vec<u8>) {
    sc.s3_client()
        .await
        .put_object()
        .bucket(&sc.bucket)
        .key(key)
        .body(body.into())
        .send()
        .await
        .unwrap();
}

async fn get(sc: &Scenario, key: &str) -> Vec<u8> {
    let out = sc
        .s3_client()
        .await
        .get_object()
        .bucket(&sc.bucket)
        .key(key)
        .send()
        .await
        .unwrap();
    out.body.collect().await.unwrap().into_bytes().to_vec()
}

#[tokio::test]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn incremental_walk_equals_full_walk_through_real_changes() {
    let sc = Scenario::load();
    let tmp = tempfile::tempdir().unwrap();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dest_prefix = format!("incremental-{nanos}/");
    let destination = format!("s3://{}/{}", sc.bucket, dest_prefix.trim_end_matches('/'));
    // The copy's backups moved back 20 and 10 days, so that RECOVERY WINDOW OF
    // 7 DAYS makes the older one obsolete (the real delete below removes it).
    let originals = sc.barman_backup_list("pg-main");
    let oldest = originals[0]["backup_id"].as_str().unwrap().to_string();
    let newest = originals.last().unwrap()["backup_id"].as_str().unwrap().to_string();
    assert_ne!(oldest, newest, "the scenario has two backups of pg-main");
    copy_server(
        &sc,
        "pg-main",
        &dest_prefix,
        |_| false,
        |rel, text| shift_backup_times(&text, if rel.contains(&oldest) { 20 } else { 10 }),
    )
    .await;
    let prefix = prefix_of(&destination, "pg-main");
    let walker = Walker::new(&sc, tmp.path(), &destination).await;

    // Cold, then steady state on the unchanged bucket.
    let (cold, _, cold_requests) = walker.walk(&WalkCache::default(), now(), 4).await;
    assert!(cold.stats.is_full());
    assert!(cold.stats.listed_dirs >= 2, "{:?}", cold.stats);
    let (steady, steady_requests) = walker.compare("unchanged bucket", &cold.cache).await;
    assert!(!steady.stats.is_full(), "{:?}", steady.stats);
    assert_eq!(
        steady.stats.reused_objects,
        2 + 1,
        "two backup.info and one .history reused"
    );
    // target listing + base/ + one tail listing of wals/ from the newest
    // directory of timeline 1 (not quiet yet: just promoted) to the end
    assert_eq!(steady_requests, 3, "steady-state requests for one server");
    assert!(steady_requests < cold_requests, "{steady_requests} vs {cold_requests}");
    println!("cold walk: {cold_requests} requests; steady state: {steady_requests}");

    // New WAL: two segments after the newest on timeline 2, a new directory
    // (log 1), and a late .partial in timeline 1's directory.
    let wal = |name: &str| {
        let dir = &name[..16];
        format!("{prefix}wals/{dir}/{name}")
    };
    let body = get(&sc, &wal("00000002000000000000000B.gz")).await;
    for name in ["00000002000000000000000C.gz", "00000002000000000000000D.gz"] {
        put(&sc, &wal(name), body.clone()).await;
    }
    put(&sc, &wal("000000020000000100000000.gz"), body.clone()).await;
    put(&sc, &wal("000000010000000000000008.partial.gz"), body.clone()).await;
    let (after_wal, _) = walker.compare("new WAL", &steady.cache).await;
    assert!(!after_wal.stats.is_full(), "{:?}", after_wal.stats);

    // A new DONE backup with the newest original's (recent) times: the
    // retention plan does not change, so the walk stays incremental.
    let info = get(
        &sc,
        &format!("{}base/{newest}/backup.info", sc.server_prefix("pg-main")),
    )
    .await;
    put(&sc, &format!("{prefix}base/20991231T000000/backup.info"), info.clone()).await;
    let (after_done, _) = walker.compare("new DONE backup", &after_wal.cache).await;
    assert!(!after_done.stats.is_full(), "{:?}", after_done.stats);

    // A STARTED backup pins its timeline: the plan changes, the walk is full.
    let started = String::from_utf8(info)
        .unwrap()
        .replace("status=DONE", "status=STARTED");
    put(
        &sc,
        &format!("{prefix}base/20991231T010000/backup.info"),
        started.into_bytes(),
    )
    .await;
    let (after_started, _) = walker.compare("new STARTED backup", &after_done.cache).await;
    assert!(after_started.stats.is_full(), "{:?}", after_started.stats);

    // A real barman-cloud-backup-delete with the same policy.
    let before = sc.list(&format!("{prefix}wals/")).await.len();
    sc.barman(
        "barman-cloud-backup-delete",
        &[
            "--retention-policy",
            "RECOVERY WINDOW OF 7 DAYS",
            &destination,
            "pg-main",
        ],
    );
    let after = sc.list(&format!("{prefix}wals/")).await.len();
    assert!(after < before, "barman deleted WAL ({before} -> {after})");
    let (deleted, _) = walker
        .compare("after barman-cloud-backup-delete", &after_started.cache)
        .await;
    assert!(deleted.stats.is_full(), "the backup set changed: {:?}", deleted.stats);
    // The full walk saw old directories change, so the next one is full too;
    // then the bucket is settled and walks are incremental again.
    let (settling, _) = walker.compare("settling", &deleted.cache).await;
    assert!(settling.stats.is_full(), "{:?}", settling.stats);
    let (settled, _) = walker.compare("settled", &settling.cache).await;
    assert!(!settled.stats.is_full(), "{:?}", settled.stats);
}

fn now() -> f64 {
    barman_cloud_exporter::snapshot::unix_now()
}
