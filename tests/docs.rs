//! docs/metrics.md must list exactly the metrics the exporter emits, with their
//! type and label names (the end-to-end test checks the same against a scrape
//! of the real scenario); docs/api.md exactly the keys of `/api/status`.

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
            info: BackupInfoState::Parsed(std::sync::Arc::new(BackupInfo::parse(info.as_bytes()).unwrap())),
            tars: vec![barman_cloud_exporter::catalog::payload::TarObject::readable(
                "data.tar.gz",
                10,
            )],
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

/// Object paths of `tests/golden/status.json` whose keys are data (label
/// values, operations), documented as maps and not broken down.
const STATUS_MAPS: [&str; 5] = [
    "targets[].labels",
    "targets[].s3.errors",
    "targets[].postgres.errors",
    "targets[].s3_requests",
    "targets[].s3_walks",
];

/// Every object path of `v` (`.` for the root, `a.b[]` for an element of an
/// array) with the keys seen there, over all elements of every array.
fn status_keys(v: &serde_json::Value, path: &str, out: &mut BTreeMap<String, std::collections::BTreeSet<String>>) {
    match v {
        serde_json::Value::Object(m) => {
            let shown = if path.is_empty() { "." } else { path };
            if STATUS_MAPS.contains(&shown) {
                return;
            }
            let keys = out.entry(shown.to_string()).or_default();
            keys.extend(m.keys().cloned());
            for (k, x) in m {
                let child = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                status_keys(x, &child, out);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|x| status_keys(x, &format!("{path}[]"), out)),
        _ => {}
    }
}

/// docs/api.md must document exactly the keys of a real `/api/status`
/// document (the golden one of `tests/golden.rs`): one `### \`path\``
/// section per object, one table row per key.
#[test]
fn docs_api_lists_every_key_of_the_status_document() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let golden = std::fs::read_to_string(root.join("tests/golden/status.json")).unwrap();
    let mut want = BTreeMap::new();
    status_keys(&serde_json::from_str(&golden).unwrap(), "", &mut want);

    let doc = std::fs::read_to_string(root.join("docs/api.md")).unwrap();
    let mut got: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    let mut section = None;
    for line in doc.lines() {
        if let Some(h) = line.strip_prefix("### `").and_then(|h| h.strip_suffix('`')) {
            section = Some(h.to_string());
            got.entry(h.to_string()).or_default();
        } else if let (Some(s), Some(cell)) = (&section, line.strip_prefix("| `")) {
            let key = cell.split('`').next().unwrap();
            got.get_mut(s).unwrap().insert(key.to_string());
        }
    }
    assert!(
        want.len() > 10 && want.contains_key("targets[].s3.data.servers[].backup_list[]"),
        "{want:?}"
    );
    assert_eq!(got, want, "docs/api.md sections and keys vs tests/golden/status.json");
}
