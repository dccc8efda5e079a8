//! The barman scenarios built by `scripts/scenario.sh extra` (FAILED and
//! STARTED backups, a keep:standalone annotation, bzip2/zstd/snappy WAL with a
//! promote, a 64 MiB `wal_segment_size` cluster), each checked against
//! barman's own `barman-cloud-backup-list`, a direct listing, and for
//! retention `barman-cloud-backup-delete --dry-run` on a time-shifted copy.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Exporter, Sample, Scenario, copy_prefix, prefix_of, samples, segno, unix, value};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Layout {
    destination_path: String,
    server: String,
    #[serde(default)]
    failed: Vec<String>,
    #[serde(default)]
    started: Vec<String>,
    #[serde(default)]
    standalone: Option<String>,
    #[serde(default)]
    segment_size: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct Extra {
    states: Layout,
    keep: Layout,
    compression: Vec<Layout>,
    seg64: Layout,
}

fn extra(sc: &Scenario) -> Extra {
    let path = sc.dir.join("extra.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (scripts/test.sh runs `scenario.sh extra`)", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// One exporter target per layout, named after its server.
fn config(sc: &Scenario, dir: &std::path::Path, layouts: &[&Layout], extra_keys: &str) -> String {
    let base = sc.config_yaml(dir, "1h", "1m", false);
    let (head, target) = base.split_at(base.find("  - name:").unwrap());
    let mut y = head.to_string();
    for l in layouts {
        y.push_str(
            &target
                .replace("name: scenario", &format!("name: {}", l.server))
                .replace(&sc.destination_path, &l.destination_path)
                .replace("servers: [\"pg-main\"]", &format!("servers: [\"{}\"]", l.server)),
        );
        y.push_str(extra_keys);
    }
    y
}

/// Bare WAL name and kind of a key below `wals/`, independent of the exporter's code.
fn kind_of(rest: &str) -> (String, &'static str) {
    let base = rest.rsplit('/').next().unwrap();
    let bare = ["gz", "bz2", "zst", "snappy", "lz4", "xz"]
        .iter()
        .find_map(|c| base.strip_suffix(&format!(".{c}")))
        .unwrap_or(base)
        .to_string();
    let kind = if bare.ends_with(".history") {
        "history"
    } else if bare.ends_with(".partial") {
        "partial"
    } else if bare.ends_with(".backup") {
        "backup_label"
    } else if bare.len() == 24 && rest.contains('/') {
        "segment"
    } else {
        "other"
    };
    (bare, kind)
}

/// Checks what every layout must satisfy: statuses and end times as barman
/// lists them, WAL objects per kind as listed, and an unbroken chain.
async fn check_layout(sc: &Scenario, l: &Layout, s: &[Sample], status: &serde_json::Value) -> Vec<serde_json::Value> {
    let lab = [("target", l.server.as_str()), ("server", l.server.as_str())];
    let with = |k: &'static str, v: &'static str| [lab[0], lab[1], (k, v)];
    let out = sc.barman(
        "barman-cloud-backup-list",
        &["--format", "json", &l.destination_path, &l.server],
    );
    let barman: Vec<serde_json::Value> = serde_json::from_str::<serde_json::Value>(&out).unwrap()["backups_list"]
        .as_array()
        .unwrap()
        .clone();
    for (label, st) in [("done", "DONE"), ("failed", "FAILED"), ("started", "STARTED")] {
        let n = barman.iter().filter(|b| b["status"] == st).count() as f64;
        assert_eq!(
            value(s, "barman_cloud_backups", &with("status", label)),
            Some(n),
            "{} {label}",
            l.server
        );
    }
    let ours = common::backup_statuses(
        &status["targets"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == l.server.as_str())
            .unwrap()["s3"]["data"]["servers"][0],
    );
    let theirs: BTreeMap<String, String> = barman
        .iter()
        .map(|b| {
            (
                b["backup_id"].as_str().unwrap().to_string(),
                b["status"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(ours, theirs, "{}: per-backup status", l.server);

    let prefix = prefix_of(&l.destination_path, &l.server);
    let listing = sc.list_full(&format!("{prefix}wals/")).await;
    let mut kinds: BTreeMap<&str, f64> = BTreeMap::new();
    let mut newest: Option<String> = None;
    for (k, _, _) in &listing {
        let (bare, kind) = kind_of(&k[prefix.len() + 5..]);
        *kinds.entry(kind).or_default() += 1.0;
        if kind == "segment" && newest.as_ref().is_none_or(|n| bare > *n) {
            newest = Some(bare);
        }
    }
    for kind in ["segment", "partial", "backup_label", "history", "other"] {
        assert_eq!(
            value(s, "barman_cloud_wal_objects", &with("kind", kind)),
            Some(kinds.get(kind).copied().unwrap_or(0.0)),
            "{} {kind}",
            l.server
        );
    }
    let newest = newest.unwrap();
    let size = l.segment_size.unwrap_or(16 << 20);
    let per_log = (1u64 << 32) / size;
    let tli = u32::from_str_radix(&newest[..8], 16).unwrap();
    let n =
        u64::from_str_radix(&newest[8..16], 16).unwrap() * per_log + u64::from_str_radix(&newest[16..], 16).unwrap();
    assert_eq!(
        value(s, "barman_cloud_wal_timeline", &lab),
        Some(f64::from(tli)),
        "{}",
        l.server
    );
    assert_eq!(
        value(s, "barman_cloud_wal_archived_lsn_bytes", &lab),
        Some(((n + 1) * size) as f64),
        "{}",
        l.server
    );
    assert_eq!(
        value(s, "barman_cloud_wal_missing_segments", &lab),
        Some(0.0),
        "{}",
        l.server
    );
    barman
}

/// Shifts every backup of a layout back in time (the i-th newest by `2 + 5i`
/// days) into `copies/<name>/`, and returns the copy's destination.
async fn time_shifted_copy(sc: &Scenario, l: &Layout, name: &str) -> String {
    let out = sc.barman(
        "barman-cloud-backup-list",
        &["--format", "json", &l.destination_path, &l.server],
    );
    let mut ids: Vec<String> = serde_json::from_str::<serde_json::Value>(&out).unwrap()["backups_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["backup_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    ids.reverse();
    let dst_root = format!("copies/{name}/");
    copy_prefix(
        sc,
        &prefix_of(&l.destination_path, &l.server),
        &format!("{dst_root}{}/", l.server),
        |_| false,
        |rel, text| {
            let i = ids
                .iter()
                .position(|id| rel.starts_with(&format!("base/{id}/")))
                .unwrap() as i64;
            common::shift_backup_times(&text, 2 + 5 * i)
        },
    )
    .await;
    format!("s3://{}/{}", sc.bucket, dst_root.trim_end_matches('/'))
}

async fn scrape(exporter: &Exporter) -> (Vec<Sample>, serde_json::Value) {
    let (_, body) = exporter.get("/metrics").await;
    let (_, json) = exporter.get("/api/status").await;
    (samples(&body), serde_json::from_str(&json).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn every_extra_layout_agrees_with_barman() {
    let sc = Scenario::load();
    let x = extra(&sc);
    let mut layouts: Vec<&Layout> = vec![&x.states, &x.keep, &x.seg64];
    layouts.extend(x.compression.iter());
    let exporter = Exporter::start(|dir| config(&sc, dir, &layouts, "    stuck_after: 1s\n")).await;
    exporter.wait_ready(Duration::from_secs(90)).await;
    let (s, status) = scrape(&exporter).await;
    for l in &layouts {
        let barman = check_layout(&sc, l, &s, &status).await;
        let lab = [("target", l.server.as_str()), ("server", l.server.as_str())];
        let done = barman.iter().filter(|b| b["status"] == "DONE").count() as f64;
        if l.standalone.is_none() {
            assert_eq!(
                value(&s, "barman_cloud_backups_restorable", &lab),
                Some(done),
                "{}",
                l.server
            );
        }
        assert_eq!(value(&s, "barman_cloud_server_systems", &lab), Some(1.0));
    }
    // Compressed .history files were read: continuity followed the promote.
    for l in &x.compression {
        let lab = [("target", l.server.as_str()), ("server", l.server.as_str())];
        assert_eq!(value(&s, "barman_cloud_wal_timeline", &lab), Some(2.0), "{}", l.server);
    }
    // FAILED and STARTED backups: counted, stuck, and the failure time.
    let st = &x.states;
    let lab = [("target", st.server.as_str()), ("server", st.server.as_str())];
    assert!(!st.failed.is_empty() && !st.started.is_empty());
    assert_eq!(
        value(&s, "barman_cloud_backups_stuck", &lab),
        Some(st.started.len() as f64)
    );
    let barman = sc.barman(
        "barman-cloud-backup-list",
        &["--format", "json", &st.destination_path, &st.server],
    );
    let barman: serde_json::Value = serde_json::from_str(&barman).unwrap();
    let failure = barman["backups_list"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["status"] == "FAILED")
        .map(|b| unix(b["end_time_iso"].as_str().or(b["begin_time_iso"].as_str()).unwrap()))
        .fold(f64::MIN, f64::max);
    let ours = value(&s, "barman_cloud_backup_last_failure_timestamp_seconds", &lab).unwrap();
    assert!((ours - failure).abs() < 1e-3, "{ours} vs {failure}");
    // keep:standalone: the WAL below the first valid backup inside its range is kept for it.
    let k = &x.keep;
    let lab = [("target", k.server.as_str()), ("server", k.server.as_str())];
    let list = sc.barman(
        "barman-cloud-backup-list",
        &["--format", "json", &k.destination_path, &k.server],
    );
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let mut backups: Vec<&serde_json::Value> = list["backups_list"].as_array().unwrap().iter().collect();
    backups.sort_by_key(|b| b["backup_id"].as_str().unwrap().to_string());
    let archival = backups
        .iter()
        .find(|b| Some(b["backup_id"].as_str().unwrap()) == k.standalone.as_deref())
        .unwrap();
    let first = backups
        .iter()
        .find(|b| b["backup_id"] != archival["backup_id"])
        .unwrap();
    let (ftli, fseg) = segno(first["begin_wal"].as_str().unwrap());
    let (_, ab) = segno(archival["begin_wal"].as_str().unwrap());
    let (_, ae) = segno(archival["end_wal"].as_str().unwrap());
    let prefix = prefix_of(&k.destination_path, &k.server);
    let (mut kept, mut awaiting) = (0.0, 0.0);
    for (key, _) in sc.list(&format!("{prefix}wals/")).await {
        let (bare, kind) = kind_of(&key[prefix.len() + 5..]);
        if !matches!(kind, "segment" | "partial" | "backup_label") {
            continue;
        }
        let (tli, n) = segno(&bare);
        if !((tli == ftli && n < fseg) || tli < ftli) {
            continue;
        }
        let inside = if kind == "partial" {
            ab <= n && n < ae
        } else {
            ab <= n && n <= ae
        };
        if inside { kept += 1.0 } else { awaiting += 1.0 }
    }
    let r = |reason| [lab[0], lab[1], ("reason", reason)];
    assert!(
        kept >= 1.0,
        "the archival backup's own WAL lies below the first valid backup"
    );
    assert_eq!(
        value(
            &s,
            "barman_cloud_wal_before_first_backup_objects",
            &r("keep_annotation")
        ),
        Some(kept)
    );
    // The rest waits for barman's first deletion (none happened here).
    assert_eq!(
        value(
            &s,
            "barman_cloud_wal_before_first_backup_objects",
            &r("awaiting_next_deletion")
        ),
        Some(awaiting)
    );
    assert_eq!(
        value(&s, "barman_cloud_wal_before_first_backup_objects", &r("unprotected")),
        Some(0.0)
    );
    exporter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn retention_with_failed_started_and_keep_equals_barman_dry_run() {
    let sc = Scenario::load();
    let x = extra(&sc);
    for (l, name) in [(&x.states, "states"), (&x.keep, "keep"), (&x.seg64, "seg64")] {
        let dest = time_shifted_copy(&sc, l, &format!("shifted-{name}")).await;
        let (out, doomed, bytes) = common::barman_dry_run(
            &sc,
            &dest,
            &l.server,
            "RECOVERY WINDOW OF 1 DAYS",
            &prefix_of(&dest, &l.server),
        )
        .await;
        let obsolete = out.lines().filter(|line| line.contains("backup.info")).count();
        assert!(obsolete >= 1, "{name}: something is obsolete:\n{out}");
        let shifted = Layout {
            destination_path: dest.clone(),
            server: l.server.clone(),
            failed: vec![],
            started: vec![],
            standalone: None,
            segment_size: l.segment_size,
        };
        let exporter = Exporter::start(|dir| config(&sc, dir, &[&shifted], "    retention_policy: 1d\n")).await;
        exporter.wait_ready(Duration::from_secs(60)).await;
        let (s, _) = scrape(&exporter).await;
        let lab = [("target", l.server.as_str()), ("server", l.server.as_str())];
        assert_eq!(
            value(&s, "barman_cloud_retention_obsolete_backups", &lab),
            Some(obsolete as f64),
            "{name}:\n{out}"
        );
        assert_eq!(
            value(&s, "barman_cloud_retention_reclaimable_bytes", &lab),
            Some(bytes as f64),
            "{name}: barman would delete {doomed:#?}"
        );
        exporter.stop().await;
    }
}
