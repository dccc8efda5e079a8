//! Golden end-to-end exposition (like node_exporter's
//! `collector/fixtures/e2e-output.txt`): a fixture catalogue with fixed times,
//! rendered through the real encoder with fixed live figures (tasks, process,
//! build info), compared byte for byte with `tests/golden/exposition.txt`;
//! and the same store's `/api/status` document, compared with
//! `tests/golden/status.json` (whose keys `docs/api.md` must document, see
//! `tests/docs.rs`). No services needed.
//!
//! After an intended change of the output, regenerate the file and review its diff:
//!
//! ```sh
//! BCE_UPDATE_GOLDEN=1 cargo test --test golden
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use barman_cloud_exporter::catalog::analysis::{AnalysisOptions, summarize_target};
use barman_cloud_exporter::catalog::backup_info::BackupInfo;
use barman_cloud_exporter::catalog::payload::TarObject;
use barman_cloud_exporter::catalog::retention::{RetentionPolicy, WalRules};
use barman_cloud_exporter::catalog::{BackupDir, BackupInfoState, ServerCatalog, TargetCatalog, Usage};
use barman_cloud_exporter::config::Config;
use barman_cloud_exporter::http::status::status;
use barman_cloud_exporter::metrics::process::ProcessFigures;
use barman_cloud_exporter::metrics::{Live, render_openmetrics_with};
use barman_cloud_exporter::snapshot::{CollectorState, Store};
use barman_cloud_exporter::source::postgres::ArchiverStatus;
use barman_cloud_exporter::source::s3::WalkStats;
use figment::providers::{Format, Yaml};

/// "Now" of the fixture: 2025-11-10 00:00:00 UTC.
const NOW: f64 = 1_762_732_800.0;

fn backup(id: &str, info: &str, objects: u64, bytes: u64) -> BackupDir {
    BackupDir {
        id: id.into(),
        objects,
        bytes,
        barman_bytes: bytes,
        keep: None,
        info: BackupInfoState::Parsed(std::sync::Arc::new(BackupInfo::parse(info.as_bytes()).unwrap())),
        tars: vec![TarObject::readable("data.tar.gz", bytes)],
    }
}

fn info(status: &str, begin: &str, end: Option<&str>, tli: u32, begin_wal: &str, end_wal: &str) -> String {
    let end = end.map_or_else(|| "end_time=None\n".to_string(), |e| format!("end_time={e}\n"));
    format!(
        "status={status}\nbegin_time={begin}\n{end}timeline={tli}\nbegin_wal={begin_wal}\nend_wal={end_wal}\nsystemid=7300000000000000001\n"
    )
}

/// pg-main: three DONE backups across a promote to timeline 2, one FAILED,
/// one unreadable directory; WAL with a `.history`, a `.partial`, a
/// `.backup` label and a gap on timeline 2.
fn pg_main() -> ServerCatalog {
    let mut s = ServerCatalog {
        name: "pg-main".into(),
        ..Default::default()
    };
    s.backups = vec![
        backup(
            "20251101T020000",
            &info(
                "DONE",
                "2025-11-01 02:00:00+00:00",
                Some("2025-11-01 02:10:00+00:00"),
                1,
                "000000010000000000000002",
                "000000010000000000000002",
            ),
            3,
            30_000,
        ),
        backup(
            "20251105T020000",
            &info(
                "DONE",
                "2025-11-05 02:00:00+00:00",
                Some("2025-11-05 02:20:00+00:00"),
                1,
                "000000010000000000000005",
                "000000010000000000000005",
            ),
            3,
            32_000,
        ),
        backup(
            "20251106T020000",
            &info(
                "FAILED",
                "2025-11-06 02:00:00+00:00",
                None,
                1,
                "000000010000000000000006",
                "None",
            ),
            1,
            500,
        ),
        backup(
            "20251108T020000",
            &info(
                "DONE",
                "2025-11-08 02:00:00+00:00",
                Some("2025-11-08 02:30:00+00:00"),
                2,
                "000000020000000000000008",
                "000000020000000000000008",
            ),
            3,
            34_000,
        ),
        BackupDir {
            id: "20251109T020000".into(),
            objects: 1,
            bytes: 100,
            barman_bytes: 0,
            keep: None,
            info: BackupInfoState::Missing,
            tars: Vec::new(),
        },
    ];
    s.base_loose = Usage { objects: 1, bytes: 7 };
    // The oldest backup's data tar moved to DEEP_ARCHIVE by a lifecycle rule,
    // and one old WAL segment to GLACIER (as the walk counts them from the listing).
    // A DONE backup whose data tar a hand cleanup removed: incomplete.
    s.backups
        .iter_mut()
        .find(|b| b.id == "20251105T020000")
        .unwrap()
        .tars
        .clear();
    s.backups[0].tars[0] = TarObject {
        name: "data.tar.gz".into(),
        size: 30000,
        archive_tier: Some("DEEP_ARCHIVE".into()),
    };
    s.base_archive_tier = Usage {
        objects: 1,
        bytes: 30000,
    };
    let metas: Vec<_> = s.backups.iter().filter_map(BackupDir::retention_meta).collect();
    s.rules = WalRules::plan(&metas, RetentionPolicy::parse("3d"), NOW, false);
    let t0 = 1_761_955_200.0; // 2025-11-01 00:00:00
    let mut wal = vec![];
    for seg in 1..=7u32 {
        wal.push((
            format!("0000000100000000/0000000100000000{seg:08X}.gz"),
            4_000,
            t0 + f64::from(seg) * 3600.0,
        ));
    }
    wal.push((
        "0000000100000000/000000010000000000000007.partial.gz".into(),
        3_000,
        t0 + 8.0 * 3600.0,
    ));
    wal.push((
        "0000000100000000/000000010000000000000005.00000028.backup.gz".into(),
        200,
        t0 + 5.0 * 3600.0,
    ));
    wal.push(("00000002.history.gz".into(), 60, t0 + 8.0 * 3600.0));
    for seg in [7u32, 8, 10] {
        wal.push((
            format!("0000000200000000/0000000200000000{seg:08X}.gz"),
            4_000,
            t0 + f64::from(seg) * 3600.0,
        ));
    }
    wal.push(("README".into(), 11, t0));
    for (key, size, modified) in wal {
        s.wal.add(&key, size, Some(modified), &s.rules.clone());
        if key == "0000000100000000/000000010000000000000002.gz" {
            s.wal.archive_tier.add(size);
        }
    }
    s.histories.insert(
        2,
        barman_cloud_exporter::catalog::history::parse("1\t0/7000000\tno recovery target specified\n").unwrap(),
    );
    s
}

/// pg-old: an old cluster's server, one DONE backup, nothing recent (orphaned).
fn pg_old() -> ServerCatalog {
    let mut s = ServerCatalog {
        name: "pg-old".into(),
        ..Default::default()
    };
    s.backups = vec![backup(
        "20250901T010000",
        &info(
            "DONE",
            "2025-09-01 01:00:00+00:00",
            Some("2025-09-01 01:05:00+00:00"),
            1,
            "000000010000000000000001",
            "000000010000000000000001",
        ),
        2,
        9_000,
    )];
    s.wal.add(
        "0000000100000000/000000010000000000000001.gz",
        4_000,
        Some(1_756_688_700.0),
        &Default::default(),
    );
    s
}

fn store() -> Store {
    let config = Config::from_figment(figment::Figment::new().merge(Yaml::string(
        r#"
interval: 5m
targets:
  - name: main
    labels: {cluster: pg-main, namespace: db}
    destination_path: s3://backups/barman
    servers: [pg-main]
    retention_policy: 3d
    postgres: {url: "postgresql://exporter@db/postgres", server: pg-main}
  - name: down
    destination_path: s3://other/path
"#,
    )))
    .unwrap();
    let store = Store::new(&config);
    let summary = summarize_target(
        &TargetCatalog {
            servers: vec![pg_main(), pg_old()],
            loose: Usage { objects: 2, bytes: 64 },
        },
        &AnalysisOptions {
            servers: Some(&["pg-main".to_string()]),
            orphan_after: 7.0 * 86_400.0,
            stuck_after: 86_400.0,
            retention: true,
            now: NOW,
        },
    );
    let main = &store.targets[0];
    for (op, n) in [("ListObjectsV2", 12), ("GetObject", 5)] {
        for _ in 0..n {
            main.requests.record(op, "GET");
        }
    }
    main.publish(|t| {
        t.s3 = CollectorState {
            last_good: Some(Arc::new(summary)),
            up: true,
            attempts: 3,
            last_success: Some(NOW - 60.0),
            last_duration: Some(1.25),
            errors: BTreeMap::from([("timeout", 1)]),
            ..Default::default()
        };
        t.postgres = Some(CollectorState {
            last_good: Some(Arc::new(ArchiverStatus {
                archived_count: 42,
                last_archived_wal: Some("00000002000000000000000A".into()),
                last_archived_time: Some(NOW - 120.0),
                failed_count: 1,
                last_failed_wal: Some("000000020000000000000009".into()),
                last_failed_time: Some(NOW - 3600.5),
                stats_reset: None,
                in_recovery: false,
                current_wal_lsn: Some(0x0C00_0060),
                current_wal_file: Some("00000002000000000000000C".into()),
                wal_segment_size: Some(16 << 20),
            })),
            up: true,
            attempts: 3,
            last_success: Some(NOW - 59.0),
            last_duration: Some(0.004),
            ..Default::default()
        });
        t.walks = BTreeMap::from([("full", 1), ("incremental", 2)]);
        t.last_walk = Some(WalkStats {
            full_servers: 0,
            incremental_servers: 2,
            listed_dirs: 2,
            reused_dirs: 5,
            reused_objects: 9,
            requests: 6,
        });
    });
    store.targets[1].requests.record("ListObjectsV2", "GET");
    store.targets[1].publish(|t| {
        t.s3 = CollectorState {
            up: false,
            attempts: 2,
            last_duration: Some(0.5),
            last_error: Some("listing s3://other/path/: access denied".into()),
            last_error_time: Some(NOW - 30.0),
            errors: BTreeMap::from([("access_denied", 2)]),
            ..Default::default()
        };
    });
    store
}

fn live() -> Live {
    Live {
        tasks: Some(5),
        process: ProcessFigures {
            cpu_seconds: Some(12.5),
            start_time_seconds: Some(NOW - 86_400.0),
            resident_memory_bytes: Some(24 << 20),
            virtual_memory_bytes: Some(512 << 20),
            open_fds: Some(17),
            max_fds: Some(1_048_576),
        },
        version: "0.0.0-golden".into(),
        revision: "golden".into(),
    }
}

/// `got` must equal the golden file `name` (rewritten under `BCE_UPDATE_GOLDEN`).
fn compare_with_golden(name: &str, got: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(name);
    if std::env::var_os("BCE_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; regenerate with BCE_UPDATE_GOLDEN=1 cargo test --test golden",
            path.display()
        )
    });
    if got != want {
        let first = got
            .lines()
            .zip(want.lines())
            .position(|(a, b)| a != b)
            .unwrap_or(got.lines().count().min(want.lines().count()));
        panic!(
            "the output differs from {} from line {}:\n  got:  {:?}\n  want: {:?}\n\
             If the change is intended: BCE_UPDATE_GOLDEN=1 cargo test --test golden, and review the diff.",
            path.display(),
            first + 1,
            got.lines().nth(first),
            want.lines().nth(first),
        );
    }
}

#[test]
fn the_exposition_equals_the_golden_file() {
    compare_with_golden("exposition.txt", &render_openmetrics_with(&store(), live()));
}

#[test]
fn the_status_document_equals_the_golden_file() {
    let store = store();
    let snaps: Vec<_> = store.targets.iter().map(|t| t.snapshot()).collect();
    let mut doc = serde_json::to_value(status(&store, &snaps)).unwrap();
    // The build's own figures, fixed as in the exposition.
    doc["version"] = "0.0.0-golden".into();
    doc["revision"] = "golden".into();
    compare_with_golden("status.json", &(serde_json::to_string_pretty(&doc).unwrap() + "\n"));
}
