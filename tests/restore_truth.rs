//! "Restorable to the newest WAL" against real restores: every DONE backup of
//! each layout is restored with `barman-cloud-restore`, recovered by
//! PostgreSQL 15 with `barman-cloud-wal-restore` (`recovery_target_timeline =
//! 'latest'`, no target) and read table by table (`common::restore`). The
//! exporter's per-backup verdict must equal what really happened, backup by
//! backup, on:
//!
//! * `pg-main` as the scenario built it (two timelines), and a copy with one
//!   segment deleted inside the chain;
//! * `pg-payload` (one tablespace, the data tar split in 3 parts) as built, a
//!   copy with the tablespace tar deleted, and one with a middle part deleted;
//! * every other extra layout as built (FAILED/STARTED among DONE backups,
//!   keep:standalone, bzip2/zstd/snappy WAL across a promote, 64 MiB segments).
//!
//! Copies live under their own prefixes (written by the test, never by the
//! exporter); the restored servers archive nothing.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::restore::{Outcome, restore_and_recover};
use common::{Exporter, Scenario, copy_prefix, exporter_yaml, prefix_of, segments, segno};

/// The exporter's view of `server` at `dest`: backup id → reasons it is not
/// restorable (empty: restorable), and the end LSN of the newest segment.
async fn verdicts(sc: &Scenario, dest: &str, server: &str) -> (BTreeMap<String, Vec<String>>, u64) {
    let servers = format!("    servers: [\"{server}\"]\n");
    let exporter = Exporter::start(|dir| exporter_yaml(sc, dir, dest, &servers)).await;
    exporter.wait_ready(Duration::from_secs(60)).await;
    let (_, json) = exporter.get("/api/status").await;
    exporter.stop().await;
    let status: serde_json::Value = serde_json::from_str(&json).unwrap();
    let s = status["targets"][0]["s3"]["data"]["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == server)
        .unwrap_or_else(|| panic!("{server}: {json}"))
        .clone();
    let out = s["backup_list"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["status"] == "DONE")
        .map(|b| {
            let why = b["not_restorable"].as_array().unwrap();
            (
                b["id"].as_str().unwrap().to_string(),
                why.iter().map(|w| w.as_str().unwrap().to_string()).collect(),
            )
        })
        .collect();
    (out, s["continuity"]["archived_lsn"].as_u64().unwrap())
}

/// The default `wal_segment_size`, bytes.
const SEG16: u64 = 16 * 1024 * 1024;

/// Restores every DONE backup and compares with the exporter, backup by backup.
async fn compare(
    sc: &Scenario,
    dest: &str,
    server: &str,
    tablespaces: &[&str],
    case: &str,
    segment_size: u64,
) -> BTreeMap<String, Outcome> {
    let (said, newest_end) = verdicts(sc, dest, server).await;
    assert!(!said.is_empty(), "{case}: no DONE backup");
    let mut real = BTreeMap::new();
    for (id, why) in &said {
        let (sc2, dest2, server2, id2) = (sc.clone(), dest.to_string(), server.to_string(), id.clone());
        let tbs: Vec<String> = tablespaces.iter().map(|t| t.to_string()).collect();
        let o = tokio::task::spawn_blocking(move || {
            let tbs: Vec<&str> = tbs.iter().map(String::as_str).collect();
            restore_and_recover(&sc2, &dest2, &server2, &id2, &tbs)
        })
        .await
        .unwrap();
        // Recovery replays into the newest segment; reaching into it is
        // reaching the newest WAL (the segment's end is never a record).
        let reached = o.reaches(newest_end - segment_size + 1);
        assert_eq!(
            why.is_empty(),
            reached,
            "{case} {id}: the exporter says {why:?}; the real restore: {o:#?}"
        );
        println!("{case} {id}: exporter {why:?}; real restore {o:?}");
        real.insert(id.clone(), o);
    }
    real
}

/// Copies `server` of `src` to `copies/<name>/`, dropping keys for which
/// `drop` is true; returns the copy's `s3://` URL.
async fn copy_without(sc: &Scenario, src: &str, server: &str, name: &str, drop: impl Fn(&str) -> bool) -> String {
    let dest_prefix = format!("copies/{name}/");
    copy_prefix(
        sc,
        &prefix_of(src, server),
        &format!("{dest_prefix}{server}/"),
        drop,
        |_, t| t,
    )
    .await;
    format!("s3://{}/{}", sc.bucket, dest_prefix.trim_end_matches('/'))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn restorable_equals_real_restores_across_timelines_and_a_wal_gap() {
    let sc = Scenario::load();
    let healthy = compare(&sc, &sc.destination_path, "pg-main", &[], "pg-main", SEG16).await;
    assert!(
        healthy.values().all(|o| o.started && o.readable),
        "both backups restore: {healthy:#?}"
    );
    // A segment after the oldest backup's end, below the newest one.
    let listing = sc.list_full(&sc.server_prefix("pg-main")).await;
    let segs = segments(&listing, &sc.server_prefix("pg-main"));
    let barman = sc.barman_backup_list("pg-main");
    let oldest = barman
        .iter()
        .min_by_key(|b| b["backup_id"].as_str().unwrap().to_string())
        .unwrap();
    let newest = barman
        .iter()
        .max_by_key(|b| b["backup_id"].as_str().unwrap().to_string())
        .unwrap();
    let (tli, end) = segno(oldest["end_wal"].as_str().unwrap());
    let (ntli, nbegin) = segno(newest["begin_wal"].as_str().unwrap());
    let victim = segs
        .iter()
        .map(|(n, _, _)| n.clone())
        .filter(|n| {
            let (t, s) = segno(n);
            t == tli && s > end && (t < ntli || s < nbegin)
        })
        .min()
        .expect("a segment between the two backups");
    let dest = copy_without(&sc, &sc.destination_path, "pg-main", "restore-gap", |k| {
        k.contains(&format!("/{victim}")) && !k.contains(".backup") && !k.contains(".partial")
    })
    .await;
    let gap = compare(&sc, &dest, "pg-main", &[], "pg-main with a gap", SEG16).await;
    let oldest_id = oldest["backup_id"].as_str().unwrap();
    assert!(
        gap[oldest_id].started && gap[oldest_id].replay_lsn < healthy[oldest_id].replay_lsn,
        "the oldest backup recovers, but stops at the gap: {gap:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn restorable_equals_real_restores_with_tablespaces_and_split_tars() {
    let sc = Scenario::load();
    let text = std::fs::read_to_string(sc.dir.join("extra.json")).expect("scripts/test.sh runs `scenario.sh extra`");
    let extra: serde_json::Value = serde_json::from_str(&text).unwrap();
    let p = &extra["payload"];
    let (src, server, id) = (
        p["destination_path"].as_str().unwrap(),
        p["server"].as_str().unwrap(),
        p["id"].as_str().unwrap(),
    );
    let oid = p["tablespace_oid"].as_u64().unwrap();
    assert!(p["data_parts"].as_u64().unwrap() >= 3);
    let healthy = compare(&sc, src, server, &["bce_tbs"], "payload", SEG16).await;
    assert!(healthy[id].readable, "{healthy:#?}");

    let dest = copy_without(&sc, src, server, "restore-no-tablespace", |k| {
        k.ends_with(&format!("/{id}/{oid}.tar"))
    })
    .await;
    let (said, _) = verdicts(&sc, &dest, server).await;
    assert_eq!(said[id], vec![format!("tablespace {oid} tar missing")]);
    let o = compare(
        &sc,
        &dest,
        server,
        &["bce_tbs"],
        "payload without its tablespace tar",
        SEG16,
    )
    .await;
    assert!(
        !o[id].restored,
        "barman-cloud-restore exits on a missing tablespace tar: {o:#?}"
    );

    let dest = copy_without(&sc, src, server, "restore-no-part", |k| {
        k.ends_with(&format!("/{id}/data_0001.tar"))
    })
    .await;
    let (said, _) = verdicts(&sc, &dest, server).await;
    assert_eq!(said[id], vec!["data_0001 tar part missing".to_string()]);
    compare(&sc, &dest, server, &["bce_tbs"], "payload without data_0001", SEG16).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn restorable_equals_real_restores_on_every_extra_layout() {
    let sc = Scenario::load();
    let text = std::fs::read_to_string(sc.dir.join("extra.json")).expect("scripts/test.sh runs `scenario.sh extra`");
    let extra: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut layouts: Vec<&serde_json::Value> = vec![&extra["states"], &extra["keep"], &extra["seg64"]];
    layouts.extend(extra["compression"].as_array().unwrap());
    // Two layouts at a time: each restore is one PostgreSQL and one
    // barman-cloud-wal-restore per segment.
    let mut all = BTreeMap::new();
    for pair in layouts.chunks(2) {
        let runs = pair.iter().map(|l| {
            let dest = l["destination_path"].as_str().unwrap().to_string();
            let server = l["server"].as_str().unwrap().to_string();
            let seg = l["segment_size"].as_u64().unwrap_or(16 * 1024 * 1024);
            let sc = sc.clone();
            async move {
                let real = compare(&sc, &dest, &server, &[], &server, seg).await;
                (server, real)
            }
        });
        for (server, real) in futures_util::future::join_all(runs).await {
            assert!(
                real.values().all(|o| o.restored && o.started && o.readable),
                "{server}: {real:#?}"
            );
            all.insert(server, real.len());
        }
    }
    assert_eq!(all.len(), layouts.len(), "{all:?}");
}
