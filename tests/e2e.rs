//! End to end on the real scenario (`scripts/scenario.sh`): PostgreSQL 15
//! archiving with barman-cloud 3.19.1 into SeaweedFS. The exporter's numbers
//! must equal what barman's own `barman-cloud-backup-list --format json`, a
//! direct listing of the bucket and `pg_stat_archiver` say.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{Exporter, Sample, Scenario, samples, unix, value};

async fn scrape(exporter: &Exporter) -> (String, Vec<Sample>) {
    let (status, body) = exporter.get("/metrics").await;
    assert_eq!(status, 200);
    let s = samples(&body);
    (body, s)
}

/// Independent classification of a key under `wals/` (not the exporter's code).
fn kind_of(rest: &str) -> &'static str {
    let base = rest.rsplit('/').next().unwrap();
    let base = base.strip_suffix(".gz").unwrap_or(base);
    if base.ends_with(".history") {
        "history"
    } else if base.ends_with(".partial") {
        "partial"
    } else if base.ends_with(".backup") {
        "backup_label"
    } else if base.len() == 24 && base.chars().all(|c| c.is_ascii_hexdigit()) && rest.contains('/') {
        "segment"
    } else {
        "other"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn s3_metrics_equal_barman_and_a_direct_listing() {
    let sc = Scenario::load();
    // Read-only credentials (Read + List): the walk must need nothing more.
    let exporter = Exporter::start(|dir| {
        sc.config_yaml_with_keys(dir, "1h", "1m", true, &sc.s3.ro_access_key, &sc.s3.ro_secret_key)
    })
    .await;
    exporter.wait_ready(Duration::from_secs(60)).await;
    let (om, s) = scrape(&exporter).await;
    // The whole exposition of the real scenario through the real parser.
    let text = exporter.get_text().await;
    let (ok, msg) = common::promtool_check(&text);
    assert!(ok, "promtool check metrics: {msg}\n{text}");
    let t = [("target", "scenario")];
    assert_eq!(
        value(&s, "barman_cloud_collector_up", &[t[0], ("collector", "s3")]),
        Some(1.0),
        "{om}"
    );

    let mut all_servers = sc.servers.clone();
    all_servers.extend(sc.orphan_servers.clone());
    let (_, status_json) = exporter.get("/api/status").await;
    let status: serde_json::Value = serde_json::from_str(&status_json).unwrap();
    let mut total_bytes = 0i64;
    let mut total_objects = 0usize;
    for server in &all_servers {
        let l = |extra: &[(&'static str, &'static str)]| -> Vec<(&str, &str)> {
            let mut v = vec![("target", "scenario"), ("server", server.as_str())];
            v.extend_from_slice(extra);
            v
        };
        // --- backups: barman-cloud-backup-list is the reference ---
        let barman = sc.barman_backup_list(server);
        assert!(!barman.is_empty(), "scenario has backups for {server}");
        let count = |st: &str| barman.iter().filter(|b| b["status"] == st).count() as f64;
        for (label, st) in [("done", "DONE"), ("failed", "FAILED"), ("started", "STARTED")] {
            assert_eq!(
                value(&s, "barman_cloud_backups", &l(&[("status", label)])),
                Some(count(st)),
                "{server} {label}"
            );
        }
        assert_eq!(
            value(&s, "barman_cloud_backups", &l(&[("status", "unreadable")])),
            Some(0.0)
        );
        let done_ends: Vec<f64> = barman
            .iter()
            .filter(|b| b["status"] == "DONE")
            .map(|b| unix(b["end_time_iso"].as_str().unwrap()))
            .collect();
        let max = done_ends.iter().cloned().fold(f64::MIN, f64::max);
        let min = done_ends.iter().cloned().fold(f64::MAX, f64::min);
        let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-3);
        assert!(
            close(
                value(&s, "barman_cloud_backup_last_success_timestamp_seconds", &l(&[])),
                max
            ),
            "{server} last success"
        );
        assert!(
            close(
                value(&s, "barman_cloud_first_recoverability_point_timestamp_seconds", &l(&[])),
                min
            ),
            "{server} first recoverability"
        );
        // per-backup status and end time, from the JSON status endpoint
        let ours: BTreeMap<String, (String, Option<f64>)> = status["targets"][0]["s3"]["data"]["servers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["name"] == server.as_str())
            .unwrap()["backup_list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                (
                    b["id"].as_str().unwrap().to_string(),
                    (b["status"].as_str().unwrap().to_string(), b["end_time"].as_f64()),
                )
            })
            .collect();
        let theirs: BTreeMap<String, (String, Option<f64>)> = barman
            .iter()
            .map(|b| {
                (
                    b["backup_id"].as_str().unwrap().to_string(),
                    (
                        b["status"].as_str().unwrap().to_string(),
                        b["end_time_iso"].as_str().map(unix),
                    ),
                )
            })
            .collect();
        assert_eq!(
            ours.keys().collect::<Vec<_>>(),
            theirs.keys().collect::<Vec<_>>(),
            "{server} ids"
        );
        for (id, (st, end)) in &theirs {
            assert_eq!(&ours[id].0, st, "{server} {id} status");
            match (ours[id].1, end) {
                (Some(a), Some(b)) => assert!((a - b).abs() < 1e-3, "{server} {id} end {a} vs {b}"),
                (a, b) => assert_eq!(a, *b, "{server} {id} end"),
            }
        }

        // --- sizes and WAL counts: a direct listing is the reference ---
        let prefix = sc.server_prefix(server);
        let listing = sc.list(&prefix).await;
        total_bytes += listing.iter().map(|(_, sz)| sz).sum::<i64>();
        total_objects += listing.len();
        let base: Vec<&(String, i64)> = listing
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{prefix}base/")))
            .collect();
        assert_eq!(
            value(&s, "barman_cloud_base_objects", &l(&[])),
            Some(base.len() as f64),
            "{server}"
        );
        assert_eq!(
            value(&s, "barman_cloud_base_bytes", &l(&[])),
            Some(base.iter().map(|(_, sz)| *sz).sum::<i64>() as f64),
            "{server}"
        );
        let newest_done = barman
            .iter()
            .filter(|b| b["status"] == "DONE")
            .max_by(|a, b| a["backup_id"].as_str().cmp(&b["backup_id"].as_str()))
            .unwrap()["backup_id"]
            .as_str()
            .unwrap()
            .to_string();
        let newest_size: i64 = base
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{prefix}base/{newest_done}/")))
            .map(|(_, sz)| *sz)
            .sum();
        assert_eq!(
            value(&s, "barman_cloud_backup_last_size_bytes", &l(&[])),
            Some(newest_size as f64)
        );
        let mut by_kind: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
        for (k, sz) in listing.iter().filter(|(k, _)| k.starts_with(&format!("{prefix}wals/"))) {
            let e = by_kind.entry(kind_of(&k[prefix.len() + 5..])).or_default();
            e.0 += 1.0;
            e.1 += *sz as f64;
        }
        for kind in ["segment", "partial", "backup_label", "history", "other"] {
            let (n, b) = by_kind.get(kind).copied().unwrap_or_default();
            assert_eq!(
                value(&s, "barman_cloud_wal_objects", &l(&[("kind", kind)])),
                Some(n),
                "{server} {kind}"
            );
            assert_eq!(
                value(&s, "barman_cloud_wal_bytes", &l(&[("kind", kind)])),
                Some(b),
                "{server} {kind}"
            );
        }
        assert!(by_kind["segment"].0 >= 3.0, "{server} has archived segments");
        let orphaned = if sc.orphan_servers.contains(server) { 1.0 } else { 0.0 };
        assert_eq!(value(&s, "barman_cloud_server_orphaned", &l(&[])), Some(orphaned));
        let newest_segment = sc
            .list_full(&format!("{prefix}wals/"))
            .await
            .into_iter()
            .filter(|(k, _, _)| kind_of(&k[prefix.len() + 5..]) == "segment")
            .map(|(_, _, t)| t)
            .fold(f64::MIN, f64::max);
        assert_eq!(
            value(&s, "barman_cloud_wal_last_archived_timestamp_seconds", &l(&[])),
            Some(newest_segment),
            "{server}"
        );
    }
    // The scenario's pg-main went through a promote: a .history and a .partial.
    let main = [("target", "scenario"), ("server", sc.servers[0].as_str())];
    let wal = |kind| value(&s, "barman_cloud_wal_objects", &[main[0], main[1], ("kind", kind)]).unwrap();
    assert!(wal("history") >= 1.0 && wal("partial") >= 1.0 && wal("backup_label") >= 2.0);

    assert_eq!(
        value(&s, "barman_cloud_orphan_servers", &t),
        Some(sc.orphan_servers.len() as f64)
    );
    let everything = sc.list(&sc.server_prefix("")).await;
    assert_eq!(
        everything.len(),
        total_objects,
        "only barman servers under the destination path"
    );
    assert_eq!(value(&s, "barman_cloud_storage_bytes", &t), Some(total_bytes as f64));
    assert_eq!(
        value(&s, "barman_cloud_storage_objects", &t),
        Some(total_objects as f64)
    );
    // Every request the exporter sent was a read.
    assert!(
        value(
            &s,
            "barman_cloud_s3_requests_total",
            &[t[0], ("operation", "ListObjectsV2")]
        )
        .unwrap()
            >= 5.0
    );
    assert!(
        value(
            &s,
            "barman_cloud_s3_requests_total",
            &[t[0], ("operation", "GetObject")]
        )
        .unwrap()
            >= 3.0
    );
    assert_eq!(
        s.iter()
            .filter(|x| x.name == "barman_cloud_s3_requests_total")
            .filter(|x| !matches!(x.labels["operation"].as_str(), "ListObjectsV2" | "GetObject"))
            .count(),
        0
    );

    // docs/metrics.md lists exactly what a real scrape emits, with the same labels.
    let documented = common::documented_metrics();
    let emitted = common::exposition_families(&om);
    assert_eq!(
        documented.keys().collect::<Vec<_>>(),
        emitted.keys().collect::<Vec<_>>(),
        "docs/metrics.md vs real scrape"
    );
    for (name, fam) in &emitted {
        let mut labels = fam.labels.clone();
        labels.remove("namespace");
        labels.remove("cluster");
        if !labels.is_empty() {
            assert_eq!(labels, documented[name].labels, "labels of {name}");
        }
    }
    // The landing page shows each server and backup.
    let (code, html) = exporter.get("/").await;
    assert_eq!(code, 200);
    // No secret anywhere a user or scraper can see.
    let password = sc
        .postgres
        .url
        .split(':')
        .nth(2)
        .unwrap()
        .split('@')
        .next()
        .unwrap()
        .to_string();
    for page in [om.as_str(), html.as_str(), status_json.as_str()] {
        for secret in [&sc.s3.ro_access_key, &sc.s3.ro_secret_key, &sc.s3.secret_key, &password] {
            assert!(!page.contains(secret.as_str()), "a secret leaked");
        }
    }
    for server in &all_servers {
        assert!(html.contains(server.as_str()), "landing page lists {server}");
    }
    exporter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn postgres_metrics_equal_pg_stat_archiver() {
    let sc = Scenario::load();
    let (client, conn) = tokio_postgres::connect(&sc.postgres.superuser_url, tokio_postgres::NoTls)
        .await
        .expect("superuser connection to the scenario's PostgreSQL");
    tokio::spawn(conn);
    let exporter = Exporter::start(|dir| sc.config_yaml(dir, "1h", "1m", true)).await;
    exporter.wait_ready(Duration::from_secs(60)).await;
    let (om, s) = scrape(&exporter).await;
    let row = client
        .query_one(
            "SELECT archived_count, failed_count, extract(epoch FROM last_archived_time)::float8, \
             extract(epoch FROM last_failed_time)::float8, pg_is_in_recovery(), \
             (pg_current_wal_lsn() - '0/0')::float8 FROM pg_stat_archiver",
            &[],
        )
        .await
        .unwrap();
    let l = [("target", "scenario"), ("server", sc.postgres.server.as_str())];
    assert_eq!(
        value(&s, "barman_cloud_collector_up", &[l[0], ("collector", "postgres")]),
        Some(1.0),
        "{om}"
    );
    assert_eq!(
        value(&s, "barman_cloud_pg_archiver_archived_total", &l),
        Some(row.get::<_, i64>(0) as f64)
    );
    assert!(row.get::<_, i64>(0) > 0, "the scenario archived WAL");
    assert_eq!(
        value(&s, "barman_cloud_pg_archiver_failed_total", &l),
        Some(row.get::<_, i64>(1) as f64)
    );
    let close = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() < 1e-3,
        (a, b) => a == b,
    };
    assert!(close(
        value(&s, "barman_cloud_pg_archiver_last_archived_timestamp_seconds", &l),
        row.get(2)
    ));
    assert!(close(
        value(&s, "barman_cloud_pg_archiver_last_failed_timestamp_seconds", &l),
        row.get(3)
    ));
    assert_eq!(value(&s, "barman_cloud_pg_in_recovery", &l), Some(0.0));
    assert!(!row.get::<_, bool>(4), "the scenario's cluster is a primary");
    // The WAL position only moves forward, and not by a whole segment while idle.
    let ours = value(&s, "barman_cloud_pg_current_wal_lsn_bytes", &l).unwrap();
    let now: f64 = row.get(5);
    assert!(
        ours <= now && now - ours < 16.0 * 1024.0 * 1024.0,
        "lsn {ours} vs {now}"
    );
    exporter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn unreachable_postgres_is_counted_and_does_not_hide_s3() {
    let sc = Scenario::load();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let exporter = Exporter::start(|dir| {
        sc.config_yaml(dir, "1h", "20s", false)
            + &format!("    postgres: {{url: \"postgresql://exporter:wrong@127.0.0.1:{port}/postgres?sslmode=disable\", server: pg-main}}\n")
    })
    .await;
    let start = Instant::now();
    exporter.wait_ready(Duration::from_secs(60)).await;
    let (om, s) = scrape(&exporter).await;
    let t = ("target", "scenario");
    assert_eq!(
        value(&s, "barman_cloud_collector_up", &[t, ("collector", "postgres")]),
        Some(0.0)
    );
    assert_eq!(
        value(
            &s,
            "barman_cloud_collector_errors_total",
            &[t, ("collector", "postgres"), ("reason", "connect")]
        ),
        Some(1.0),
        "{om}"
    );
    assert_eq!(
        value(&s, "barman_cloud_collector_up", &[t, ("collector", "s3")]),
        Some(1.0)
    );
    assert!(value(&s, "barman_cloud_backups", &[t, ("status", "done")]).is_some());
    assert!(!om.contains("wrong"), "the password never appears in /metrics");
    let (_, json) = exporter.get("/api/status").await;
    assert!(!json.contains(":wrong@") && json.contains("connect"), "{json}");
    assert!(start.elapsed() < Duration::from_secs(30));
    exporter.stop().await;
}
