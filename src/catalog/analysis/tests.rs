//! Unit tests of the parent module.

use super::*;
use crate::catalog::backup_info::BackupInfo;
use crate::catalog::{BackupDir, ServerCatalog, TargetCatalog};

fn opts(servers: Option<&[String]>) -> AnalysisOptions<'_> {
    AnalysisOptions {
        servers,
        orphan_after: 7.0 * 86_400.0,
        stuck_after: 86_400.0,
        retention: false,
        now: 1_762_200_000.0,
    }
}

fn dir(id: &str, info: &str, objects: u64, bytes: u64) -> BackupDir {
    BackupDir {
        barman_bytes: 0,
        keep: None,
        id: id.into(),
        objects,
        bytes,
        info: BackupInfoState::Parsed(std::sync::Arc::new(BackupInfo::parse(info.as_bytes()).unwrap())),
        tars: vec![crate::catalog::payload::TarObject::readable("data.tar.gz", bytes)],
    }
}

fn server() -> ServerCatalog {
    let mut s = ServerCatalog {
        name: "pg-main".into(),
        ..Default::default()
    };
    s.backups = vec![
        dir(
            "20251101T020000",
            "status=DONE\nbegin_time=2025-11-01 02:00:00+00:00\nend_time=2025-11-01 02:10:00+00:00\n",
            3,
            1000,
        ),
        dir(
            "20251102T020000",
            "status=FAILED\nbegin_time=2025-11-02 02:00:00+00:00\nerror=failure copy (boom)\n",
            1,
            10,
        ),
        dir(
            "20251103T020000",
            "status=DONE\nbegin_time=2025-11-03 02:00:00+00:00\nend_time=2025-11-03 02:05:30+00:00\n",
            4,
            2000,
        ),
        dir(
            "20251104T020000",
            "status=STARTED\nbegin_time=2025-11-04 02:00:00+00:00\n",
            1,
            5,
        ),
        BackupDir {
            barman_bytes: 0,
            keep: None,
            id: "20251105T020000".into(),
            objects: 2,
            bytes: 7,
            info: BackupInfoState::Missing,
            tars: Vec::new(),
        },
    ];
    s.base_loose.add(11);
    s.wal.add(
        "0000000100000000/000000010000000000000001.gz",
        100,
        Some(1_000.0),
        &Default::default(),
    );
    s.wal.add(
        "0000000100000000/000000010000000000000002.gz",
        100,
        Some(2_000.0),
        &Default::default(),
    );
    s.wal.add(
        "0000000100000000/000000010000000000000003.partial.gz",
        50,
        Some(3_000.0),
        &Default::default(),
    );
    s.wal.add("00000002.history.gz", 5, Some(3_000.0), &Default::default());
    s.wal.add("junk.txt", 1, None, &Default::default());
    s
}

#[test]
fn summarises_counts_times_and_sizes() {
    let s = summarize_server(&server(), &opts(None));
    assert_eq!(
        s.backups,
        BackupCounts {
            done: 2,
            failed: 1,
            started: 1,
            other: 0,
            unreadable: 1
        }
    );
    assert_eq!(s.last_success_timestamp, Some(1_762_135_530.0));
    assert_eq!(s.first_recoverability_point, Some(1_761_963_000.0));
    assert_eq!(s.last_failure_timestamp, Some(1_762_048_800.0));
    assert_eq!(s.last_duration_seconds, Some(330.0));
    assert_eq!(s.last_size_bytes, Some(2000));
    assert_eq!(
        s.base,
        Usage {
            objects: 12,
            bytes: 3033
        }
    );
    assert_eq!(s.wal_usage(WalKind::Segment), Usage { objects: 2, bytes: 200 });
    assert_eq!(s.wal_usage(WalKind::Partial), Usage { objects: 1, bytes: 50 });
    assert_eq!(s.wal_usage(WalKind::History), Usage { objects: 1, bytes: 5 });
    assert_eq!(s.wal_usage(WalKind::Other), Usage { objects: 1, bytes: 1 });
    // .partial never counts as an archived segment
    assert_eq!(s.wal_last_archived_timestamp, Some(2_000.0));
    assert_eq!(s.wal_newest_segment.as_deref(), Some("000000010000000000000002"));
    assert_eq!(
        s.storage(),
        Usage {
            objects: 17,
            bytes: 3289
        }
    );
    assert_eq!(s.backup_list[1].error.as_deref(), Some("failure copy (boom)"));
}

#[test]
fn empty_server_has_no_times() {
    let s = summarize_server(&ServerCatalog::default(), &opts(None));
    assert_eq!(s.backups, BackupCounts::default());
    assert_eq!(s.last_success_timestamp, None);
    assert_eq!(s.last_failure_timestamp, None);
    assert_eq!(s.last_size_bytes, None);
}

#[test]
fn cadence_is_the_median_gap_of_the_newest_seven_done_backups() {
    // Ten daily backups, then eight hourly ones (the 6-field cron mistake):
    // the newest seven are hourly, so the median gap is 3600 s.
    let mut backups = Vec::new();
    for day in 1..=10 {
        let id = format!("202510{day:02}T020000");
        let info = format!(
            "status=DONE\nbegin_time=2025-10-{day:02} 02:00:00+00:00\nend_time=2025-10-{day:02} 02:10:00+00:00\n"
        );
        backups.push(dir(&id, &info, 1, 1));
    }
    for hour in 0..8 {
        let id = format!("20251011T{hour:02}0200");
        let info = format!(
            "status=DONE\nbegin_time=2025-10-11 {hour:02}:02:00+00:00\nend_time=2025-10-11 {hour:02}:05:00+00:00\n"
        );
        backups.push(dir(&id, &info, 1, 1));
    }
    let s = ServerCatalog {
        backups,
        ..Default::default()
    };
    assert_eq!(summarize_server(&s, &opts(None)).interval_seconds, Some(3600.0));
    let daily = ServerCatalog {
        backups: s.backups[..10].to_vec(),
        ..Default::default()
    };
    assert_eq!(summarize_server(&daily, &opts(None)).interval_seconds, Some(86_400.0));
}

#[test]
fn failure_time_falls_back_to_backup_id() {
    let s = ServerCatalog {
        backups: vec![dir("20251102T020000", "status=FAILED\n", 1, 1)],
        ..Default::default()
    };
    assert_eq!(
        summarize_server(&s, &opts(None)).last_failure_timestamp,
        Some(1_762_048_800.0)
    );
}

#[test]
fn orphans_only_with_a_server_list() {
    let mut other = server();
    other.name = "pg-old".into();
    let catalog = TargetCatalog {
        servers: vec![server(), other],
        loose: Usage { objects: 1, bytes: 9 },
    };
    let t = summarize_target(&catalog, &opts(Some(&["pg-main".to_string()])));
    assert_eq!(t.orphan_servers, 1);
    assert!(t.servers[1].orphaned && !t.servers[0].orphaned);
    assert_eq!(
        t.storage,
        Usage {
            objects: 35,
            bytes: 6587
        }
    );
    assert_eq!(summarize_target(&catalog, &opts(None)).orphan_servers, 0);
}

#[test]
fn restorable_needs_the_payload_and_says_why_not() {
    let info = |day: u32, seg: u32| {
        format!(
            "status=DONE\nbegin_time=2025-11-0{day} 02:00:00+00:00\nend_time=2025-11-0{day} 02:05:00+00:00\n\
             timeline=1\nbegin_wal=0000000100000000000000{seg:02X}\nend_wal=0000000100000000000000{seg:02X}\n\
             tablespaces=[('tbs', 16385, '/tbs')]\n"
        )
    };
    let mut s = ServerCatalog {
        name: "pg".into(),
        ..Default::default()
    };
    let mut complete = dir("20251101T020000", &info(1, 2), 2, 10);
    complete
        .tars
        .push(crate::catalog::payload::TarObject::readable("16385.tar.gz", 5));
    let mut no_tablespace = dir("20251102T020000", &info(2, 4), 2, 10);
    no_tablespace.tars[0].size = 0;
    s.backups = vec![complete, no_tablespace];
    for seg in 1..=6 {
        let name = format!("0000000100000000/0000000100000000000000{seg:02X}");
        s.wal.add(&name, 16, Some(f64::from(seg)), &Default::default());
    }
    let sum = summarize_server(&s, &opts(None));
    assert_eq!(sum.continuity.as_ref().unwrap().restorable, vec!["20251101T020000"]);
    assert_eq!((sum.incomplete, sum.last_incomplete), (1, Some(true)));
    let newest = &sum.backup_list[1];
    assert_eq!(
        newest.not_restorable,
        vec!["tablespace 16385 tar missing", "data.tar.gz is empty"]
    );
    assert!(sum.backup_list[0].not_restorable.is_empty());
    // A gap after the first backup's begin: the WAL reason follows.
    s.wal = Default::default();
    for seg in [1, 2, 3, 5, 6] {
        let name = format!("0000000100000000/0000000100000000000000{seg:02X}");
        s.wal.add(&name, 16, Some(f64::from(seg)), &Default::default());
    }
    let sum = summarize_server(&s, &opts(None));
    assert_eq!(
        sum.backup_list[0].not_restorable,
        vec!["WAL gap at segment 000000010000000000000004"]
    );
}
