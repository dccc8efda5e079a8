//! docs/metrics.md must list exactly the metrics the exporter emits, with their
//! type and label names. (The end-to-end test checks the same against a scrape
//! of the real scenario.)

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use barman_cloud_exporter::catalog::analysis::summarize_target;
use barman_cloud_exporter::catalog::backup_info::BackupInfo;
use barman_cloud_exporter::catalog::{BackupDir, BackupInfoState, ServerCatalog, TargetCatalog};
use barman_cloud_exporter::collector::{CollectorKind, Failure};
use barman_cloud_exporter::config::Config;
use barman_cloud_exporter::metrics::render_openmetrics;
use barman_cloud_exporter::snapshot::Store;
use barman_cloud_exporter::source::postgres::ArchiverStatus;
use figment::providers::{Format, Yaml};

fn populated_store() -> Store {
    let config = Config::from_figment(figment::Figment::new().merge(Yaml::string(
        r#"
targets:
  - name: t
    labels: {namespace: ns}
    destination_path: s3://b/p
    servers: [pg-main]
    postgres: {url: "postgresql://u@h/db"}
"#,
    )))
    .unwrap();
    let store = Store::new(&config);
    store.targets[0].requests.record("ListObjectsV2", "GET");
    let mut server = ServerCatalog {
        name: "pg-main".into(),
        ..Default::default()
    };
    server.wal.add(
        "0000000100000000/000000010000000000000001.gz",
        1,
        Some(1.0),
        &Default::default(),
    );
    for (id, info) in [
        (
            "20251101T020000",
            "status=DONE\nbegin_time=2025-11-01 02:00:00+00:00\nend_time=2025-11-01 02:10:00+00:00\ntimeline=1\nbegin_wal=000000010000000000000001\nend_wal=000000010000000000000001\n",
        ),
        (
            "20251101T030000",
            "status=DONE\nbegin_time=2025-11-01 03:00:00+00:00\nend_time=2025-11-01 03:10:00+00:00\ntimeline=1\nbegin_wal=000000010000000000000001\nend_wal=000000010000000000000001\n",
        ),
        (
            "20251102T020000",
            "status=FAILED\nbegin_time=2025-11-02 02:00:00+00:00\n",
        ),
    ] {
        server.backups.push(BackupDir {
            barman_bytes: 0,
            keep: None,
            id: id.into(),
            objects: 2,
            bytes: 10,
            info: BackupInfoState::Parsed(Box::new(BackupInfo::parse(info.as_bytes()).unwrap())),
        });
    }
    let summary = summarize_target(
        &TargetCatalog {
            servers: vec![server],
            loose: Default::default(),
        },
        &barman_cloud_exporter::catalog::analysis::AnalysisOptions {
            servers: Some(&["pg-main".into()]),
            orphan_after: 7.0 * 86_400.0,
            stuck_after: 86_400.0,
            retention: true,
            now: 1.0e9,
        },
    );
    store.targets[0].publish(|t| {
        t.s3.record(
            Err(Failure::Deadline {
                collector: CollectorKind::S3,
                after: Duration::from_secs(1),
            }),
            Duration::from_secs(1),
        );
        t.s3.record(Ok(summary), Duration::from_secs(1));
        t.walks.insert("full", 1);
        let pg = t.postgres.as_mut().unwrap();
        pg.record(
            Ok(ArchiverStatus {
                archived_count: 1,
                last_archived_wal: Some("000000010000000000000001".into()),
                last_archived_time: Some(1.0),
                failed_count: 0,
                last_failed_wal: None,
                last_failed_time: Some(1.0),
                stats_reset: None,
                in_recovery: false,
                current_wal_lsn: Some(1),
                current_wal_file: Some("000000010000000000000003".into()),
                wal_segment_size: Some(16 << 20),
            }),
            Duration::from_secs(1),
        );
    });
    store
}

/// In a runtime, as the exporter renders (`barman_cloud_exporter_tasks` needs one).
#[tokio::test]
async fn docs_list_every_emitted_metric_with_its_type_and_labels() {
    let om = render_openmetrics(&populated_store());
    let emitted = common::exposition_families(&om);
    let documented = common::documented_metrics();
    let names = |m: &BTreeMap<String, common::MetricDoc>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(
        names(&documented),
        names(&emitted),
        "docs/metrics.md and the exposition differ"
    );
    for (name, doc) in &documented {
        let seen = &emitted[name];
        assert_eq!(doc.kind, seen.kind, "type of {name}");
        // every documented metric has samples in the populated store
        let mut labels = seen.labels.clone();
        labels.remove("namespace"); // the target's static label
        assert_eq!(doc.labels, labels, "labels of {name}");
    }
}
