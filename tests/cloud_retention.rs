//! The retention simulation on Azure (Azurite) and GCS (fake-gcs-server),
//! checked against `barman-cloud-backup-delete --dry-run` run on the same
//! provider: a copy of the `-main` server beside the destination
//! (`<path>-retention`) with its backups moved back in time (the oldest ends
//! 10 days ago, the others 5), under `RECOVERY WINDOW OF 1 DAYS`.

mod common;

use std::time::Duration;

use common::cloud::{Cloud, Kind, origin};
use common::hostile::Daemon;
use common::{Scenario, doomed_by_dry_run, samples, shift_backup_times, value};

async fn retention_is_barmans(kind: Kind) {
    let sc = Scenario::load();
    let cloud = Cloud::load(&sc);
    let l = cloud.layout(kind).clone();
    let server = l.postgres.server.clone();
    let root = barman_cloud_exporter::config::parse_destination(&l.destination_path)
        .unwrap()
        .1;
    let copy_root = format!("{}-retention/", root.trim_end_matches('/'));
    let _ = cloud.tool(&sc, kind, &["delete-prefix", &copy_root]);
    let (src, dst) = (format!("{root}{server}/"), format!("{copy_root}{server}/"));
    cloud.tool(&sc, kind, &["copy-prefix", &src, &dst]);
    let infos: Vec<String> = cloud
        .list(&sc, kind, &format!("{dst}base/"))
        .into_keys()
        .filter(|k| k.ends_with("/backup.info"))
        .collect();
    assert!(infos.len() >= 2, "{kind:?}: {infos:?}");
    let work = tempfile::tempdir().unwrap();
    for (i, key) in infos.iter().enumerate() {
        let text = cloud.tool(&sc, kind, &["cat", key]);
        let file = work.path().join(format!("info{i}"));
        std::fs::write(&file, shift_backup_times(&text, if i == 0 { 10 } else { 5 })).unwrap();
        cloud.tool(&sc, kind, &["put", key, file.to_str().unwrap()]);
    }
    let dest = format!("{}-retention", l.destination_path.trim_end_matches('/'));

    // barman's answer, on this provider.
    let out = cloud.barman(
        &sc,
        kind,
        "barman-cloud-backup-delete",
        &[
            "--dry-run",
            "--retention-policy",
            "RECOVERY WINDOW OF 1 DAYS",
            &dest,
            &server,
        ],
    );
    let listing: Vec<(String, i64)> = cloud
        .list(&sc, kind, &dst)
        .into_iter()
        .map(|(k, (s, _))| (k, s))
        .collect();
    let (doomed, doomed_bytes) = doomed_by_dry_run(&out, &listing);
    let obsolete = out.lines().filter(|l| l.contains("backup.info")).count();
    assert_eq!(obsolete, 1, "{kind:?}: barman marks the oldest backup obsolete:\n{out}");
    assert!(
        doomed.iter().any(|k| k.contains("/wals/")),
        "{kind:?}: barman deletes WAL too:\n{out}"
    );

    let cfg = work.path().join("c.yaml");
    let creds = match kind {
        Kind::Azure => format!(
            ", azure_sas_token_file: \"{}\"",
            l.sas_token_file.as_ref().unwrap().display()
        ),
        Kind::Gcs => String::new(),
    };
    std::fs::write(
        &cfg,
        format!(
            "interval: 1h\ntimeout: 30s\ntargets:\n  - {{name: r, destination_path: \"{dest}\", retention_policy: 1d{creds}}}\n"
        ),
    )
    .unwrap();
    let emulator = origin(&l.endpoint);
    let env: Vec<(&str, &str)> = match kind {
        Kind::Azure => vec![],
        Kind::Gcs => vec![("STORAGE_EMULATOR_HOST", emulator.as_str())],
    };
    let mut d = Daemon::start_with_env(&cfg, &env);
    d.wait_ready(Duration::from_secs(60)).await;
    let s = samples(&d.get("/metrics").await);
    let lab = [("target", "r"), ("server", server.as_str())];
    assert_eq!(
        value(&s, "barman_cloud_retention_obsolete_backups", &lab),
        Some(obsolete as f64),
        "{kind:?}"
    );
    assert_eq!(
        value(&s, "barman_cloud_retention_reclaimable_bytes", &lab),
        Some(doomed_bytes as f64),
        "{kind:?}: barman would delete {doomed:#?}"
    );
    drop(d);
    cloud.tool(&sc, kind, &["delete-prefix", &copy_root]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn azure_retention_equals_barmans_dry_run() {
    retention_is_barmans(Kind::Azure).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn gcs_retention_equals_barmans_dry_run() {
    retention_is_barmans(Kind::Gcs).await;
}
