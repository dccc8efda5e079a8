//! Base-backup payload against real `barman-cloud-restore` runs: copies of
//! the scenario's `pg-main` (made by the test under its own prefixes) with
//! one payload object removed, emptied or moved to `DEEP_ARCHIVE`. For every
//! DONE backup of every copy, the exporter's payload verdict must equal
//! whether `barman-cloud-restore` of that backup really succeeds.
//!
//! (SeaweedFS serves GETs of `DEEP_ARCHIVE` objects, which S3 refuses with
//! `InvalidObjectState` until restored, so for that copy the reference is the
//! listed storage class, not a restore.)

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_s3::types::StorageClass;
use common::{Exporter, Scenario, copy_server, exporter_yaml, samples, value};

/// How a copy's payload is damaged.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Damage {
    None,
    /// The newest backup's data tar deleted.
    DeleteNewest,
    /// The oldest backup's data tar rewritten with 0 bytes.
    EmptyOldest,
    /// The oldest backup's data tar rewritten as `DEEP_ARCHIVE`.
    DeepArchiveOldest,
}

/// Whether a real `barman-cloud-restore` of `id` at `dest` succeeds (into a
/// scratch directory, removed afterwards).
fn restores(sc: &Scenario, dest: &str, id: &str) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("pgdata");
    let out = std::process::Command::new(sc.barman_bin.join("barman-cloud-restore"))
        .args(["--endpoint-url", &sc.s3.endpoint, "--cloud-provider", "aws-s3"])
        .args([dest, "pg-main", id, target.to_str().unwrap()])
        .env("AWS_ACCESS_KEY_ID", &sc.s3.access_key)
        .env("AWS_SECRET_ACCESS_KEY", &sc.s3.secret_key)
        .env("AWS_DEFAULT_REGION", &sc.s3.region)
        .output()
        .unwrap();
    out.status.success() && target.join("PG_VERSION").exists()
}

/// Makes the damaged copy and returns its `s3://` URL.
async fn damaged_copy(sc: &Scenario, damage: Damage, ids: &[String]) -> String {
    let dest_prefix = format!("copies/payload-{damage:?}/").to_lowercase();
    copy_server(sc, "pg-main", &dest_prefix, |_| false, |_, t| t).await;
    let base = format!("{dest_prefix}pg-main/base/");
    let tar_of = |id: &str| {
        let id = id.to_string();
        let base = base.clone();
        async move {
            sc.list(&format!("{base}{id}/"))
                .await
                .into_iter()
                .map(|(k, _)| k)
                .find(|k| k.contains("/data.tar"))
                .expect("a data tar")
        }
    };
    let client = sc.s3_client().await;
    match damage {
        Damage::None => {}
        Damage::DeleteNewest => {
            let key = tar_of(ids.last().unwrap()).await;
            common::hostile::delete_where(&client, &sc.bucket, &key, |_| true).await;
        }
        Damage::EmptyOldest => {
            let key = tar_of(&ids[0]).await;
            common::hostile::put(&client, &sc.bucket, &key, Vec::new()).await;
        }
        Damage::DeepArchiveOldest => {
            let key = tar_of(&ids[0]).await;
            common::hostile::set_storage_class(&client, &sc.bucket, &key, StorageClass::DeepArchive).await;
        }
    }
    format!("s3://{}/{}", sc.bucket, dest_prefix.trim_end_matches('/'))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn payload_verdicts_equal_real_barman_cloud_restore_runs() {
    let sc = Scenario::load();
    let mut ids: Vec<String> = sc
        .barman_backup_list("pg-main")
        .iter()
        .filter(|b| b["status"] == "DONE")
        .map(|b| b["backup_id"].as_str().unwrap().to_string())
        .collect();
    ids.sort();
    assert!(ids.len() >= 2, "the scenario has two DONE backups of pg-main");
    for damage in [
        Damage::None,
        Damage::DeleteNewest,
        Damage::EmptyOldest,
        Damage::DeepArchiveOldest,
    ] {
        let dest = damaged_copy(&sc, damage, &ids).await;
        let exporter = Exporter::start(|dir| exporter_yaml(&sc, dir, &dest, "")).await;
        exporter.wait_ready(Duration::from_secs(60)).await;
        let (_, body) = exporter.get("/metrics").await;
        let (_, json) = exporter.get("/api/status").await;
        exporter.stop().await;
        let status: serde_json::Value = serde_json::from_str(&json).unwrap();
        let server = status["targets"][0]["s3"]["data"]["servers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == "pg-main")
            .unwrap()
            .clone();
        let problems: BTreeMap<String, Vec<String>> = server["backup_list"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["status"] == "DONE")
            .map(|b| {
                let p = b["payload_problems"].as_array().unwrap();
                (
                    b["id"].as_str().unwrap().to_string(),
                    p.iter().map(|x| x.as_str().unwrap().to_string()).collect(),
                )
            })
            .collect();
        let mut incomplete = 0;
        for id in &ids {
            let said = &problems[id];
            if damage == Damage::DeepArchiveOldest && *id == ids[0] {
                assert_eq!(said, &vec!["data.tar.gz in DEEP_ARCHIVE".to_string()], "{damage:?}");
                continue;
            }
            let real = restores(&sc, &dest, id);
            assert_eq!(
                said.is_empty(),
                real,
                "{damage:?} {id}: the exporter says {said:?}, barman-cloud-restore {}",
                if real { "succeeded" } else { "failed" }
            );
            incomplete += u32::from(!said.is_empty());
        }
        let s = samples(&body);
        let l = [("target", "scenario"), ("server", "pg-main")];
        assert_eq!(
            value(&s, "barman_cloud_backups_incomplete", &l),
            Some(f64::from(incomplete)),
            "{damage:?}"
        );
        assert_eq!(
            value(&s, "barman_cloud_backup_last_incomplete", &l),
            Some(f64::from(u8::from(damage == Damage::DeleteNewest))),
            "{damage:?}"
        );
        let expected = match damage {
            Damage::None => vec![],
            Damage::DeleteNewest => vec![(ids.last().unwrap(), "data tar missing")],
            Damage::EmptyOldest => vec![(&ids[0], "data.tar.gz is empty")],
            Damage::DeepArchiveOldest => vec![(&ids[0], "data.tar.gz in DEEP_ARCHIVE")],
        };
        let got: Vec<(&String, &str)> = problems
            .iter()
            .flat_map(|(id, p)| p.iter().map(move |x| (id, x.as_str())))
            .collect();
        assert_eq!(got, expected, "{damage:?}");
        // A damaged backup is not counted restorable.
        let restorable = value(&s, "barman_cloud_backups_restorable", &l).unwrap();
        let wal_ok = server["continuity"]["restorable"].as_array().unwrap().len() as f64;
        assert_eq!(restorable, wal_ok, "{damage:?}");
        for (id, _) in &expected {
            assert!(
                !server["continuity"]["restorable"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r == id.as_str()),
                "{damage:?}: {id} is not restorable"
            );
        }
    }
}
