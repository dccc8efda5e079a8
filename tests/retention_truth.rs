//! `unprotected` and `awaiting_next_deletion` against what real
//! `barman-cloud-backup-delete` runs remove, on copies of the keep:standalone
//! layout built by `scripts/scenario.sh extra` (`pg-keep`: a keep:standalone
//! backup, then two more).
//!
//! * After a real `REDUNDANCY 1` run nothing is `unprotected`, and what is
//!   `awaiting_next_deletion` is exactly what the next real deletion removes.
//! * A backup deleted by hand (its `base/<id>/` gone, its WAL still there)
//!   makes `unprotected` exactly what `barman-cloud-backup-delete -b <id>`
//!   removes on a twin copy (`pg-main`), and nothing when barman's own delete
//!   would remove nothing either (behind a keep:standalone backup, `pg-keep`).
//!
//! The copies live under their own destination paths in the scenario's bucket
//! (written by the test, never by the exporter).

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Exporter, Scenario, copy_prefix, exporter_yaml, prefix_of, samples, value};

/// The keep layout: destination path, server, backup ids (oldest first).
fn keep_layout(sc: &Scenario) -> (String, String, Vec<String>) {
    let path = sc.dir.join("extra.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (scripts/test.sh runs `scenario.sh extra`)", path.display()));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let k = &v["keep"];
    let mut ids: Vec<String> = k["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().to_string())
        .collect();
    ids.sort();
    assert_eq!(
        k["standalone"].as_str(),
        Some(ids[0].as_str()),
        "the oldest is keep:standalone"
    );
    (
        k["destination_path"].as_str().unwrap().to_string(),
        k["server"].as_str().unwrap().to_string(),
        ids,
    )
}

/// Copies `server` of the destination `src` to `copies/<name>/`; returns
/// the copy's `s3://` URL and key prefix.
async fn copy_layout(sc: &Scenario, src: &str, server: &str, name: &str) -> (String, String) {
    let dest_prefix = format!("copies/{name}/");
    copy_prefix(
        sc,
        &prefix_of(src, server),
        &format!("{dest_prefix}{server}/"),
        |_| false,
        |_, t| t,
    )
    .await;
    let dest = format!("s3://{}/{}", sc.bucket, dest_prefix.trim_end_matches('/'));
    (dest, dest_prefix)
}

/// The exporter's leftovers of `server` at `dest`, by reason: (objects, bytes).
async fn leftovers(sc: &Scenario, dest: &str, server: &str) -> BTreeMap<String, (f64, f64)> {
    let servers = format!("    servers: [\"{server}\"]\n");
    let exporter = Exporter::start(|dir| exporter_yaml(sc, dir, dest, &servers)).await;
    exporter.wait_ready(Duration::from_secs(60)).await;
    let (_, body) = exporter.get("/metrics").await;
    exporter.stop().await;
    let s = samples(&body);
    let mut out = BTreeMap::new();
    for reason in [
        "unprotected",
        "failed_or_started_backup",
        "keep_annotation",
        "history",
        "awaiting_next_deletion",
    ] {
        let l = [("target", "scenario"), ("server", server), ("reason", reason)];
        let objects = value(&s, "barman_cloud_wal_before_first_backup_objects", &l);
        let bytes = value(&s, "barman_cloud_wal_before_first_backup_bytes", &l);
        out.insert(
            reason.to_string(),
            (objects.unwrap_or_else(|| panic!("{reason}: {body}")), bytes.unwrap()),
        );
    }
    out
}

/// `begin_wal` of the first valid backup (the oldest DONE that is not
/// keep:standalone) as barman lists it.
fn first_begin_wal(sc: &Scenario, dest: &str, server: &str, standalone: &str) -> String {
    let out = sc.barman("barman-cloud-backup-list", &["--format", "json", dest, server]);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut done: Vec<&serde_json::Value> = list["backups_list"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["status"] == "DONE" && b["backup_id"] != standalone)
        .collect();
    done.sort_by_key(|b| b["backup_id"].as_str().unwrap().to_string());
    done[0]["begin_wal"].as_str().unwrap().to_string()
}

fn usage(removed: &BTreeMap<String, i64>) -> (f64, f64) {
    (removed.len() as f64, removed.values().sum::<i64>() as f64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn after_a_real_redundancy_1_run_with_a_standalone_backup_awaiting_is_the_next_deletion() {
    let sc = Scenario::load();
    let (src, server, ids) = keep_layout(&sc);
    let (dest, dest_prefix) = copy_layout(&sc, &src, &server, "keep-redundancy").await;
    sc.barman(
        "barman-cloud-backup-delete",
        &["--retention-policy", "REDUNDANCY 1", &dest, &server],
    );
    let left = leftovers(&sc, &dest, &server).await;
    assert_eq!(
        left["unprotected"],
        (0.0, 0.0),
        "a real barman-cloud-backup-delete run leaves nothing it should have deleted: {left:?}"
    );
    assert!(left["keep_annotation"].0 >= 1.0, "{left:?}");
    // The deletion of the middle backup (its predecessor keep:standalone)
    // removed everything outside the standalone range: nothing awaits, and
    // the next deletion must remove nothing below the first backup either.
    assert_eq!(left["awaiting_next_deletion"], (0.0, 0.0), "{left:?}");
    let first = first_begin_wal(&sc, &dest, &server, &ids[0]);
    let removed = common::retention::next_deletion_removes(&sc, &dest, &dest_prefix, &server, &first).await;
    assert_eq!(
        usage(&removed),
        left["awaiting_next_deletion"],
        "barman's next deletion removed {removed:#?}; the exporter said {left:?}"
    );
}

/// Deletes `base/<victim>/` of `server` under `prefix` by hand (as a
/// lifecycle rule or a manual cleanup would, leaving the WAL).
async fn delete_by_hand(sc: &Scenario, prefix: &str, server: &str, victim: &str) {
    let client = sc.s3_client().await;
    common::hostile::delete_where(&client, &sc.bucket, &format!("{prefix}{server}/base/{victim}/"), |_| {
        true
    })
    .await;
}

/// Runs a real `barman-cloud-backup-delete -b <victim>` and returns the WAL
/// objects it removed.
async fn barman_delete(sc: &Scenario, dest: &str, prefix: &str, server: &str, victim: &str) -> BTreeMap<String, i64> {
    let wals = format!("{prefix}{server}/wals/");
    let before: BTreeMap<String, i64> = sc.list(&wals).await.into_iter().collect();
    sc.barman("barman-cloud-backup-delete", &["-b", victim, dest, server]);
    let after: BTreeMap<String, i64> = sc.list(&wals).await.into_iter().collect();
    before.into_iter().filter(|(k, _)| !after.contains_key(k)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn a_backup_deleted_by_hand_leaves_unprotected_exactly_what_barman_would_delete() {
    let sc = Scenario::load();
    // pg-main: the oldest backup on timeline 1, the next on timeline 2.
    let (dest_a, prefix_a) = copy_layout(&sc, &sc.destination_path, "pg-main", "main-by-hand").await;
    let (dest_b, prefix_b) = copy_layout(&sc, &sc.destination_path, "pg-main", "main-by-barman").await;
    let mut ids: Vec<String> = sc
        .barman_backup_list("pg-main")
        .iter()
        .map(|b| b["backup_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    let victim = &ids[0];
    let before = leftovers(&sc, &dest_a, "pg-main").await;
    assert_eq!(before["unprotected"], (0.0, 0.0), "nothing deleted yet: {before:?}");
    delete_by_hand(&sc, &prefix_a, "pg-main", victim).await;
    let removed = barman_delete(&sc, &dest_b, &prefix_b, "pg-main", victim).await;
    assert!(!removed.is_empty(), "barman's delete of {victim} removed WAL");
    let a = leftovers(&sc, &dest_a, "pg-main").await;
    assert_eq!(
        a["unprotected"],
        usage(&removed),
        "barman removed {removed:#?}; the exporter said {a:?}"
    );
    // On B, right after barman's own deletion, nothing is unprotected, and
    // what it kept (timeline 1, the quirk) goes at the next deletion.
    let b = leftovers(&sc, &dest_b, "pg-main").await;
    assert_eq!(b["unprotected"], (0.0, 0.0), "{b:?}");
    assert_eq!(
        b["awaiting_next_deletion"], a["awaiting_next_deletion"],
        "{b:?} vs {a:?}"
    );
    let first = first_begin_wal(&sc, &dest_b, "pg-main", "");
    let next = common::retention::next_deletion_removes(&sc, &dest_b, &prefix_b, "pg-main", &first).await;
    assert_eq!(usage(&next), b["awaiting_next_deletion"], "{next:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn a_backup_deleted_by_hand_behind_a_standalone_backup_awaits_the_next_deletion() {
    let sc = Scenario::load();
    let (src, server, ids) = keep_layout(&sc);
    let (dest_a, prefix_a) = copy_layout(&sc, &src, &server, "keep-by-hand").await;
    let (dest_b, prefix_b) = copy_layout(&sc, &src, &server, "keep-by-barman").await;
    let victim = &ids[1];
    delete_by_hand(&sc, &prefix_a, &server, victim).await;
    // barman's own delete of the same backup removes no WAL behind a
    // keep:standalone backup (skip_wal_cleanup_if_standalone): nothing of
    // what the hand delete left is one barman "should have" removed.
    let removed = barman_delete(&sc, &dest_b, &prefix_b, &server, victim).await;
    assert!(removed.is_empty(), "{removed:#?}");
    let a = leftovers(&sc, &dest_a, &server).await;
    assert_eq!(a["unprotected"], (0.0, 0.0), "{a:?}");
    let b = leftovers(&sc, &dest_b, &server).await;
    assert_eq!(a, b, "the hand delete and barman's look the same");
    let first = first_begin_wal(&sc, &dest_a, &server, &ids[0]);
    let next = common::retention::next_deletion_removes(&sc, &dest_a, &prefix_a, &server, &first).await;
    assert!(!next.is_empty());
    assert_eq!(usage(&next), a["awaiting_next_deletion"], "{next:#?} vs {a:?}");
}
