//! Catalogue truth on real layouts: continuity across a promote, leftovers,
//! the archiver cross-check, a WAL gap, and the retention simulation checked
//! against `barman-cloud-backup-delete --dry-run` itself.
//!
//! Gap and retention cases work on copies of the real `pg-main` server under
//! their own destination paths in the scenario's bucket (made by the test,
//! never by the exporter), so the shared scenario stays untouched.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Exporter, Scenario, copy_server, exporter_yaml, samples, segments, segno, value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn continuity_leftovers_and_archiver_cross_check_on_a_promoted_cluster() {
    let sc = Scenario::load();
    let exporter = Exporter::start(|dir| {
        let mut y = sc.config_yaml(dir, "1h", "1m", true);
        // A second target whose PostgreSQL is said to archive to the old server: the cross-check must say 0.
        let second = sc.config_yaml(dir, "1h", "1m", true);
        let second = second[second.find("  - name:").unwrap()..]
            .replace("name: scenario", "name: wrong-server")
            .replace(&format!("server: \"{}\"", sc.postgres.server), "server: \"pg-old\"");
        y.push_str(&second);
        y
    })
    .await;
    exporter.wait_ready(Duration::from_secs(60)).await;
    let (_, body) = exporter.get("/metrics").await;
    let s = samples(&body);
    let main = [("target", "scenario"), ("server", "pg-main")];
    let prefix = sc.server_prefix("pg-main");
    let listing = sc.list_full(&prefix).await;
    let segs = segments(&listing, &prefix);
    let newest = segs.iter().map(|(n, _, _)| n.clone()).max().unwrap();
    let (newest_tli, newest_segno) = segno(&newest);
    assert_eq!(
        value(&s, "barman_cloud_wal_timeline", &main),
        Some(f64::from(newest_tli))
    );
    assert_eq!(newest_tli, 2, "the scenario promoted to timeline 2");
    assert_eq!(
        value(&s, "barman_cloud_wal_archived_lsn_bytes", &main),
        Some(((newest_segno + 1) * 16 * 1024 * 1024) as f64)
    );
    assert_eq!(
        value(&s, "barman_cloud_wal_missing_segments", &main),
        Some(0.0),
        "{body}"
    );
    let barman = sc.barman_backup_list("pg-main");
    let done: Vec<&serde_json::Value> = barman.iter().filter(|b| b["status"] == "DONE").collect();
    assert_eq!(
        value(&s, "barman_cloud_backups_restorable", &main),
        Some(done.len() as f64)
    );
    let newest_modified = segs.iter().find(|(n, _, _)| *n == newest).unwrap().2;
    assert_eq!(
        value(&s, "barman_cloud_recovery_window_end_timestamp_seconds", &main),
        Some(newest_modified)
    );
    assert_eq!(value(&s, "barman_cloud_server_systems", &main), Some(1.0));
    assert_eq!(value(&s, "barman_cloud_backups_stuck", &main), Some(0.0));
    let begins: Vec<f64> = done
        .iter()
        .map(|b| common::unix(b["begin_time_iso"].as_str().unwrap()))
        .collect();
    let gap = begins[1] - begins[0];
    let interval = value(&s, "barman_cloud_backup_interval_seconds", &main).unwrap();
    assert!((interval - gap).abs() < 1e-3, "{interval} vs {gap}");

    // Leftovers: WAL below the oldest DONE backup's begin_wal on its timeline (or on a lower one).
    let first = done
        .iter()
        .min_by_key(|b| b["backup_id"].as_str().unwrap().to_string())
        .unwrap();
    let (ftli, fseg) = segno(first["begin_wal"].as_str().unwrap());
    let mut expected = (0.0, 0.0);
    for (k, sz, _) in &listing {
        let Some(rest) = k.strip_prefix(&format!("{prefix}wals/")) else {
            continue;
        };
        let Some((_, base)) = rest.split_once('/') else {
            continue;
        };
        let (tli, n) = segno(base);
        if (tli == ftli && n < fseg) || tli < ftli {
            expected.0 += 1.0;
            expected.1 += *sz as f64;
        }
    }
    assert!(expected.0 >= 1.0, "the scenario has WAL before its first backup");
    // No backup was ever deleted: all of it waits for barman's first deletion.
    let r = |reason| [main[0], main[1], ("reason", reason)];
    assert_eq!(
        value(
            &s,
            "barman_cloud_wal_before_first_backup_objects",
            &r("awaiting_next_deletion")
        ),
        Some(expected.0)
    );
    assert_eq!(
        value(
            &s,
            "barman_cloud_wal_before_first_backup_bytes",
            &r("awaiting_next_deletion")
        ),
        Some(expected.1)
    );
    for reason in ["unprotected", "failed_or_started_backup", "keep_annotation", "history"] {
        assert_eq!(
            value(&s, "barman_cloud_wal_before_first_backup_objects", &r(reason)),
            Some(0.0)
        );
    }

    // Orphans: pg-old is listed in no `servers`; its bytes are orphan bytes.
    let old: i64 = sc
        .list(&sc.server_prefix("pg-old"))
        .await
        .iter()
        .map(|(_, sz)| sz)
        .sum();
    assert_eq!(value(&s, "barman_cloud_orphan_bytes", &[main[0]]), Some(old as f64));

    // Archiver cross-check against pg_stat_archiver.
    let (client, conn) = tokio_postgres::connect(&sc.postgres.superuser_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let row = client
        .query_one(
            "SELECT last_archived_wal, pg_walfile_name(pg_current_wal_lsn()) FROM pg_stat_archiver",
            &[],
        )
        .await
        .unwrap();
    let (last, current): (String, String) = (row.get(0), row.get(1));
    assert_eq!(
        value(&s, "barman_cloud_pg_archiver_last_archived_wal_in_storage", &main),
        Some(1.0)
    );
    if last.len() == 24 {
        let pending = segno(&current).1 - segno(&last).1 - 1;
        assert_eq!(
            value(&s, "barman_cloud_pg_archiver_pending_segments", &main),
            Some(pending as f64)
        );
    }
    let wrong = [("target", "wrong-server"), ("server", "pg-old")];
    assert_eq!(
        value(&s, "barman_cloud_pg_archiver_last_archived_wal_in_storage", &wrong),
        Some(0.0)
    );
    exporter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn a_deleted_segment_is_a_gap_and_breaks_older_backups() {
    let sc = Scenario::load();
    let dest_prefix = "copies/gap/";
    let prefix = sc.server_prefix("pg-main");
    let segs = segments(&sc.list_full(&prefix).await, &prefix);
    let barman = sc.barman_backup_list("pg-main");
    // Delete (skip copying) the segment right after the oldest backup's end_wal.
    let oldest = barman
        .iter()
        .min_by_key(|b| b["backup_id"].as_str().unwrap().to_string())
        .unwrap();
    let (tli, end) = segno(oldest["end_wal"].as_str().unwrap());
    let victim = segs
        .iter()
        .map(|(n, _, _)| n.clone())
        .filter(|n| segno(n).1 > end && segno(n).0 >= tli)
        .min()
        .unwrap();
    copy_server(&sc, "pg-main", dest_prefix, |k| k.contains(&victim), |_, t| t).await;
    let dest = format!("s3://{}/{}", sc.bucket, dest_prefix.trim_end_matches('/'));
    let exporter = Exporter::start(|dir| exporter_yaml(&sc, dir, &dest, "")).await;
    exporter.wait_ready(Duration::from_secs(60)).await;
    let (_, body) = exporter.get("/metrics").await;
    let s = samples(&body);
    let l = [("target", "scenario"), ("server", "pg-main")];
    assert_eq!(value(&s, "barman_cloud_wal_missing_segments", &l), Some(1.0), "{body}");
    // Only backups starting after the gap can still reach the newest WAL.
    let after: usize = barman
        .iter()
        .filter(|b| b["status"] == "DONE" && b["begin_wal"].as_str().unwrap() > victim.as_str())
        .count();
    assert_eq!(value(&s, "barman_cloud_backups_restorable", &l), Some(after as f64));
    let (_, json) = exporter.get("/api/status").await;
    assert!(json.contains(&format!("\"first_missing\":\"{victim}\"")), "{json}");
    let (_, html) = exporter.get("/").await;
    assert!(
        html.contains(&victim) && html.contains("<span class=down>1</span>"),
        "landing page shows the gap"
    );
    exporter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn retention_simulation_equals_barman_cloud_backup_delete_dry_run() {
    let sc = Scenario::load();
    let dest_prefix = "copies/retention/";
    // Shift the backups back in time: the oldest ends 10 days ago, the next 5 days ago.
    let ids: Vec<String> = sc
        .barman_backup_list("pg-main")
        .iter()
        .map(|b| b["backup_id"].as_str().unwrap().to_string())
        .collect();
    let shift = |rel: &str, text: String| -> String {
        common::shift_backup_times(
            &text,
            if rel.starts_with(&format!("base/{}/", ids[0])) {
                10
            } else {
                5
            },
        )
    };
    copy_server(&sc, "pg-main", dest_prefix, |_| false, shift).await;
    let dest = format!("s3://{}/{}", sc.bucket, dest_prefix.trim_end_matches('/'));

    // barman's answer: the objects a dry run would delete.
    let (out, doomed, doomed_bytes) = common::barman_dry_run(
        &sc,
        &dest,
        "pg-main",
        "RECOVERY WINDOW OF 1 DAYS",
        &format!("{dest_prefix}pg-main/"),
    )
    .await;
    let obsolete = out.lines().filter(|l| l.contains("backup.info")).count();
    assert_eq!(obsolete, 1, "barman marks the oldest backup obsolete:\n{out}");
    assert!(
        doomed.iter().any(|k| k.contains("/wals/")),
        "barman deletes WAL too:\n{out}"
    );

    let exporter = Exporter::start(|dir| exporter_yaml(&sc, dir, &dest, "    retention_policy: 1d\n")).await;
    exporter.wait_ready(Duration::from_secs(60)).await;
    let (_, body) = exporter.get("/metrics").await;
    let s = samples(&body);
    let l = [("target", "scenario"), ("server", "pg-main")];
    assert_eq!(
        value(&s, "barman_cloud_retention_obsolete_backups", &l),
        Some(obsolete as f64),
        "{body}"
    );
    assert_eq!(
        value(&s, "barman_cloud_retention_reclaimable_bytes", &l),
        Some(doomed_bytes as f64),
        "barman would delete {doomed:#?}"
    );
    exporter.stop().await;

    // Now really delete (on the copy) and look again: nothing reclaimable, and
    // what is left below the new first backup is exactly what the bucket holds.
    sc.barman(
        "barman-cloud-backup-delete",
        &["--retention-policy", "RECOVERY WINDOW OF 1 DAYS", &dest, "pg-main"],
    );
    let after = sc.list(&format!("{dest_prefix}pg-main/")).await;
    assert!(
        after.iter().all(|(k, _)| !doomed.contains(k)),
        "barman deleted what the dry run said"
    );
    let out = sc.barman("barman-cloud-backup-list", &["--format", "json", &dest, "pg-main"]);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    let first = list["backups_list"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["status"] == "DONE")
        .min_by_key(|b| b["backup_id"].as_str().unwrap().to_string())
        .unwrap()
        .clone();
    let wal_prefix = format!("{dest_prefix}pg-main/wals/");
    let (objects, bytes, history) =
        common::leftovers_from_listing(&sc, &wal_prefix, first["begin_wal"].as_str().unwrap()).await;
    let awaiting = (objects, bytes);
    assert!(
        awaiting.0 >= 1.0,
        "timeline 1 WAL survives the deletion (barman's protected-timeline quirk)"
    );
    let exporter = Exporter::start(|dir| exporter_yaml(&sc, dir, &dest, "    retention_policy: 1d\n")).await;
    exporter.wait_ready(Duration::from_secs(60)).await;
    let (_, body) = exporter.get("/metrics").await;
    let s = samples(&body);
    assert_eq!(value(&s, "barman_cloud_retention_obsolete_backups", &l), Some(0.0));
    assert_eq!(value(&s, "barman_cloud_retention_reclaimable_bytes", &l), Some(0.0));
    let r = |reason| [l[0], l[1], ("reason", reason)];
    assert_eq!(
        value(&s, "barman_cloud_wal_before_first_backup_objects", &r("unprotected")),
        Some(0.0),
        "a real barman-cloud-backup-delete run leaves nothing it should have deleted"
    );
    assert_eq!(
        value(
            &s,
            "barman_cloud_wal_before_first_backup_objects",
            &r("awaiting_next_deletion")
        ),
        Some(awaiting.0)
    );
    assert_eq!(
        value(
            &s,
            "barman_cloud_wal_before_first_backup_bytes",
            &r("awaiting_next_deletion")
        ),
        Some(awaiting.1)
    );
    assert_eq!(
        value(&s, "barman_cloud_wal_before_first_backup_objects", &r("history")),
        Some(history)
    );
    assert_eq!(
        value(&s, "barman_cloud_backups", &[l[0], l[1], ("status", "done")]),
        Some(1.0)
    );
    exporter.stop().await;
    // The proof: barman's next deletion removes exactly what awaits it.
    let removed = common::retention::next_deletion_removes(
        &sc,
        &dest,
        dest_prefix,
        "pg-main",
        first["begin_wal"].as_str().unwrap(),
    )
    .await;
    assert_eq!(
        (removed.len() as f64, removed.values().sum::<i64>() as f64),
        awaiting,
        "{removed:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn backup_dirs_without_a_readable_backup_info_are_counted_and_block_retention() {
    let sc = Scenario::load();
    let dest_prefix = "copies/unreadable/";
    copy_server(&sc, "pg-main", dest_prefix, |_| false, |_, t| t).await;
    let client = sc.s3_client().await;
    let base = format!("{dest_prefix}pg-main/base/");
    // A directory with a tar but no backup.info (e.g. an interrupted upload) ...
    client
        .put_object()
        .bucket(&sc.bucket)
        .key(format!("{base}20200101T000000/data.tar.gz"))
        .body(b"not really a tar".to_vec().into())
        .send()
        .await
        .unwrap();
    // ... and one whose backup.info has a line without '=' (barman: "unreadable").
    client
        .put_object()
        .bucket(&sc.bucket)
        .key(format!("{base}20200102T000000/backup.info"))
        .body(b"status=DONE\nthis line has no equals sign\n".to_vec().into())
        .send()
        .await
        .unwrap();
    let dest = format!("s3://{}/{}", sc.bucket, dest_prefix.trim_end_matches('/'));
    // barman lists neither, and refuses to apply retention.
    let out = sc.barman("barman-cloud-backup-list", &["--format", "json", &dest, "pg-main"]);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    let barman_ids: Vec<&str> = list["backups_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["backup_id"].as_str().unwrap())
        .collect();
    assert!(!barman_ids.contains(&"20200101T000000") && !barman_ids.contains(&"20200102T000000"));
    let refused = std::process::Command::new(sc.barman_bin.join("barman-cloud-backup-delete"))
        .args([
            "--endpoint-url",
            &sc.s3.endpoint,
            "--cloud-provider",
            "aws-s3",
            "--dry-run",
        ])
        .args(["--retention-policy", "RECOVERY WINDOW OF 1 DAYS", &dest, "pg-main"])
        .env("AWS_ACCESS_KEY_ID", &sc.s3.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &sc.s3.secret_key)
        .env("AWS_DEFAULT_REGION", &sc.s3.region)
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("Unsafe to proceed"));

    let exporter = Exporter::start(|dir| exporter_yaml(&sc, dir, &dest, "    retention_policy: 1d\n")).await;
    exporter.wait_ready(Duration::from_secs(60)).await;
    let (_, body) = exporter.get("/metrics").await;
    let s = samples(&body);
    let l = |status| [("target", "scenario"), ("server", "pg-main"), ("status", status)];
    assert_eq!(value(&s, "barman_cloud_backups", &l("unreadable")), Some(2.0), "{body}");
    assert_eq!(
        value(&s, "barman_cloud_backups", &l("done")),
        Some(barman_ids.len() as f64)
    );
    let t = [("target", "scenario"), ("server", "pg-main")];
    assert_eq!(value(&s, "barman_cloud_retention_obsolete_backups", &t), Some(0.0));
    assert_eq!(value(&s, "barman_cloud_retention_reclaimable_bytes", &t), Some(0.0));
    // The collection itself succeeded: bad input is counted, never fatal.
    assert_eq!(
        value(
            &s,
            "barman_cloud_collector_up",
            &[("target", "scenario"), ("collector", "s3")]
        ),
        Some(1.0)
    );
    let (_, json) = exporter.get("/api/status").await;
    assert!(
        json.contains("no '=' in line") && json.contains("\"blocked\":true"),
        "{json}"
    );
    exporter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn leftovers_after_a_real_redundancy_1_deletion_match_the_bucket() {
    let sc = Scenario::load();
    let dest_prefix = "copies/redundancy/";
    copy_server(&sc, "pg-main", dest_prefix, |_| false, |_, t| t).await;
    let dest = format!("s3://{}/{}", sc.bucket, dest_prefix.trim_end_matches('/'));
    sc.barman(
        "barman-cloud-backup-delete",
        &["--retention-policy", "REDUNDANCY 1", &dest, "pg-main"],
    );
    let out = sc.barman("barman-cloud-backup-list", &["--format", "json", &dest, "pg-main"]);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    let remaining = list["backups_list"].as_array().unwrap();
    assert_eq!(remaining.len(), 1, "REDUNDANCY 1 keeps one backup");
    let wal_prefix = format!("{dest_prefix}pg-main/wals/");
    let (objects, bytes, history) =
        common::leftovers_from_listing(&sc, &wal_prefix, remaining[0]["begin_wal"].as_str().unwrap()).await;
    assert!(
        objects >= 1.0,
        "the old timeline's WAL survives the deletion (the protected-timeline quirk)"
    );
    let exporter = Exporter::start(|dir| exporter_yaml(&sc, dir, &dest, "    retention_policy: 1d\n")).await;
    exporter.wait_ready(Duration::from_secs(60)).await;
    let (_, body) = exporter.get("/metrics").await;
    let s = samples(&body);
    let l = [("target", "scenario"), ("server", "pg-main")];
    let r = |reason| [l[0], l[1], ("reason", reason)];
    assert_eq!(
        value(&s, "barman_cloud_wal_before_first_backup_objects", &r("unprotected")),
        Some(0.0),
        "a real barman-cloud-backup-delete run leaves nothing it should have deleted"
    );
    assert_eq!(
        value(
            &s,
            "barman_cloud_wal_before_first_backup_objects",
            &r("awaiting_next_deletion")
        ),
        Some(objects)
    );
    assert_eq!(
        value(
            &s,
            "barman_cloud_wal_before_first_backup_bytes",
            &r("awaiting_next_deletion")
        ),
        Some(bytes)
    );
    assert_eq!(
        value(&s, "barman_cloud_wal_before_first_backup_objects", &r("history")),
        Some(history)
    );
    // The remaining backup is within a 1-day window: nothing more to delete.
    assert_eq!(value(&s, "barman_cloud_retention_obsolete_backups", &l), Some(0.0));
    assert_eq!(value(&s, "barman_cloud_retention_reclaimable_bytes", &l), Some(0.0));
    assert_eq!(value(&s, "barman_cloud_backups_restorable", &l), Some(1.0));
    exporter.stop().await;
    // The proof: barman's next deletion removes exactly what awaits it.
    let removed = common::retention::next_deletion_removes(
        &sc,
        &dest,
        dest_prefix,
        "pg-main",
        remaining[0]["begin_wal"].as_str().unwrap(),
    )
    .await;
    assert_eq!(
        (removed.len() as f64, removed.values().sum::<i64>() as f64),
        (objects, bytes),
        "{removed:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn two_clusters_under_one_server_name_show_two_systems() {
    let sc = Scenario::load();
    let dest_prefix = "copies/mixed/";
    // The old cluster's base backups land under pg-main's prefix, as when two
    // clusters are configured with the same serverName.
    copy_server(&sc, "pg-main", dest_prefix, |_| false, |_, t| t).await;
    common::copy_prefix(
        &sc,
        &format!("{}base/", sc.server_prefix("pg-old")),
        &format!("{dest_prefix}pg-main/base/"),
        |_| false,
        |_, t| t,
    )
    .await;
    let dest = format!("s3://{}/{}", sc.bucket, dest_prefix.trim_end_matches('/'));
    let out = sc.barman("barman-cloud-backup-list", &["--format", "json", &dest, "pg-main"]);
    let list: serde_json::Value = serde_json::from_str(&out).unwrap();
    let systems: BTreeSet<&str> = list["backups_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["systemid"].as_str().unwrap())
        .collect();
    assert_eq!(systems.len(), 2);
    let exporter = Exporter::start(|dir| exporter_yaml(&sc, dir, &dest, "")).await;
    exporter.wait_ready(Duration::from_secs(60)).await;
    let (_, body) = exporter.get("/metrics").await;
    let s = samples(&body);
    let l = [("target", "scenario"), ("server", "pg-main")];
    assert_eq!(value(&s, "barman_cloud_server_systems", &l), Some(2.0));
    exporter.stop().await;
}
