//! Objects in archive storage classes on the real S3 server: a copy of the
//! scenario's `pg-main` (made by the test under its own prefix) whose oldest
//! backup's data tar is rewritten as `DEEP_ARCHIVE`, one WAL segment as
//! `GLACIER` and another as `GLACIER_IR` (SeaweedFS keeps and lists the
//! class it was given, as S3 does after a lifecycle transition). The
//! exporter counts the first two by area from its listing, not the third.

mod common;

use std::time::Duration;

use aws_sdk_s3::types::StorageClass;
use common::{Exporter, Scenario, copy_server, exporter_yaml, samples, segments, value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn objects_in_glacier_and_deep_archive_are_counted_by_area() {
    let sc = Scenario::load();
    let dest_prefix = "copies/archive-tier/";
    copy_server(&sc, "pg-main", dest_prefix, |_| false, |_, t| t).await;
    let server_prefix = format!("{dest_prefix}pg-main/");
    let listing = sc.list_full(&server_prefix).await;
    let oldest = sc
        .barman_backup_list("pg-main")
        .iter()
        .map(|b| b["backup_id"].as_str().unwrap().to_string())
        .min()
        .unwrap();
    let tar = listing
        .iter()
        .find(|(k, _, _)| k.starts_with(&format!("{server_prefix}base/{oldest}/data.tar")))
        .map(|(k, sz, _)| (k.clone(), *sz))
        .expect("the oldest backup's data tar");
    let segs = segments(&listing, &server_prefix);
    let seg_key = |name: &str| {
        listing
            .iter()
            .find(|(k, _, _)| k.contains("/wals/") && k.contains(name))
            .map(|(k, sz, _)| (k.clone(), *sz))
            .unwrap()
    };
    let glacier = seg_key(&segs[0].0);
    let instant = seg_key(&segs[1].0);

    let client = sc.s3_client().await;
    for ((key, _), class) in [
        (&tar, StorageClass::DeepArchive),
        (&glacier, StorageClass::Glacier),
        (&instant, StorageClass::GlacierIr),
    ] {
        common::hostile::set_storage_class(&client, &sc.bucket, key, class.clone()).await;
        let listed = client
            .list_objects_v2()
            .bucket(&sc.bucket)
            .prefix(key)
            .send()
            .await
            .unwrap();
        let o = &listed.contents()[0];
        assert_eq!(
            o.storage_class().map(|c| c.as_str()),
            Some(class.as_str()),
            "the server keeps {key}'s class"
        );
    }

    let dest = format!("s3://{}/{}", sc.bucket, dest_prefix.trim_end_matches('/'));
    let exporter = Exporter::start(|dir| exporter_yaml(&sc, dir, &dest, "")).await;
    exporter.wait_ready(Duration::from_secs(60)).await;
    let (_, body) = exporter.get("/metrics").await;
    exporter.stop().await;
    let s = samples(&body);
    let at = |name: &str, area: &str| {
        value(
            &s,
            name,
            &[("target", "scenario"), ("server", "pg-main"), ("area", area)],
        )
    };
    assert_eq!(at("barman_cloud_archive_tier_objects", "base"), Some(1.0), "{body}");
    assert_eq!(at("barman_cloud_archive_tier_bytes", "base"), Some(tar.1 as f64));
    assert_eq!(
        at("barman_cloud_archive_tier_objects", "wals"),
        Some(1.0),
        "GLACIER_IR is not counted"
    );
    assert_eq!(at("barman_cloud_archive_tier_bytes", "wals"), Some(glacier.1 as f64));
}
