//! Unit tests of the parent module.

use super::*;
use crate::catalog::key::classify_wal;

const DAY: f64 = 86_400.0;

fn seg(name: &str) -> SegmentName {
    SegmentName::parse(name).unwrap()
}

fn done(id: &str, tli: u32, begin: &str, end: &str, end_time: f64) -> BackupMeta {
    BackupMeta {
        id: id.into(),
        done: true,
        status_done: true,
        timeline: Some(tli),
        begin_wal: Some(seg(begin)),
        end_wal: Some(seg(end)),
        begin_offset: Some(40),
        end_time: Some(end_time),
        keep: None,
    }
}

fn wal(name: &str) -> WalFile {
    classify_wal(&format!("{}/{name}", &name[..16.min(name.len())]))
}

/// The reason of a leftover, the unkept ones resolved with `last_deleted`
/// (the newest deleted backup's `begin_wal`).
fn class(r: &WalRules, f: &WalFile, last_deleted: Option<&str>) -> Option<LeftoverReason> {
    Some(match r.leftover(f)? {
        Leftover::Reason(reason) => reason,
        Leftover::Unkept(b) => r.resolve(b, last_deleted.map(seg)),
    })
}

#[test]
fn parses_retention_policies() {
    assert_eq!(RetentionPolicy::parse("3d").unwrap().window_seconds(), 3.0 * DAY);
    assert_eq!(RetentionPolicy::parse("2w").unwrap().window_seconds(), 14.0 * DAY);
    assert_eq!(RetentionPolicy::parse("1m").unwrap().window_seconds(), 31.0 * DAY);
    for bad in ["0d", "3", "d", "3y", "03d", "-1d", ""] {
        assert!(RetentionPolicy::parse(bad).is_none(), "{bad}");
    }
}

#[test]
fn recovery_window_keeps_the_newest_backup_before_the_point_of_recoverability() {
    let now = 100.0 * DAY;
    let backups = vec![
        done(
            "20250101T000000",
            1,
            "000000010000000000000002",
            "000000010000000000000002",
            now - 10.0 * DAY,
        ),
        done(
            "20250102T000000",
            1,
            "000000010000000000000005",
            "000000010000000000000005",
            now - 5.0 * DAY,
        ),
        done(
            "20250103T000000",
            1,
            "000000010000000000000009",
            "000000010000000000000009",
            now - 4.0 * DAY,
        ),
        done(
            "20250104T000000",
            1,
            "00000001000000000000000C",
            "00000001000000000000000C",
            now - 1.0 * DAY,
        ),
    ];
    let r = WalRules::plan(&backups, RetentionPolicy::parse("3d"), now, false);
    // 4 days ago is the newest before the point of recoverability: kept.
    assert_eq!(r.obsolete, vec!["20250101T000000", "20250102T000000"]);
    // First deletion: until = next backup's begin (…05); second: until …09.
    assert!(
        r.reclaimable(&wal("000000010000000000000001"), Some((1, 0)))
            || r.reclaimable(&wal("000000010000000000000001"), None)
    );
    assert!(r.reclaimable(&wal("000000010000000000000008"), None));
    assert!(!r.reclaimable(&wal("000000010000000000000009"), None));
    assert!(!r.reclaimable(&wal("00000001000000000000000A"), None));
    // The backup label of the kept backup is not below its begin_wal.
    assert!(!r.reclaimable(&wal("000000010000000000000009.00000028.backup"), None));
    // History files are never removed.
    assert!(!r.reclaimable(&classify_wal("00000002.history"), None));
    // Nothing obsolete when everything is inside the window.
    assert!(
        WalRules::plan(&backups, RetentionPolicy::parse("30d"), now, false)
            .obsolete
            .is_empty()
    );
    // An unreadable backup.info blocks everything.
    let blocked = WalRules::plan(&backups, RetentionPolicy::parse("3d"), now, true);
    assert!(blocked.blocked && blocked.obsolete.is_empty());
    assert!(!blocked.reclaimable(&wal("000000010000000000000001"), None));
}

#[test]
fn keep_full_before_the_deleted_backup_stops_wal_cleanup_and_standalone_protects_its_range() {
    let now = 100.0 * DAY;
    let mut kept = done(
        "20250101T000000",
        1,
        "000000010000000000000002",
        "000000010000000000000003",
        now - 20.0 * DAY,
    );
    let old = done(
        "20250102T000000",
        1,
        "000000010000000000000005",
        "000000010000000000000005",
        now - 10.0 * DAY,
    );
    let newest = done(
        "20250103T000000",
        1,
        "000000010000000000000009",
        "000000010000000000000009",
        now - 5.0 * DAY,
    );
    kept.keep = Some(Keep::Full);
    let r = WalRules::plan(
        &[kept.clone(), old.clone(), newest.clone()],
        RetentionPolicy::parse("1d"),
        now,
        false,
    );
    assert_eq!(r.obsolete, vec!["20250102T000000"]);
    assert!(
        !r.reclaimable(&wal("000000010000000000000006"), None),
        "keep:full before D: no WAL cleanup"
    );
    kept.keep = Some(Keep::Standalone);
    let r = WalRules::plan(&[kept, old, newest], RetentionPolicy::parse("1d"), now, false);
    assert!(r.reclaimable(&wal("000000010000000000000006"), None));
    assert!(r.reclaimable(&wal("000000010000000000000001"), None));
    assert!(
        !r.reclaimable(&wal("000000010000000000000002"), None),
        "standalone range"
    );
    assert!(
        !r.reclaimable(&wal("000000010000000000000003"), None),
        "standalone range"
    );
    assert!(
        r.reclaimable(&wal("000000010000000000000003.partial"), None),
        "X.partial sorts after end_wal X"
    );
    // Leftovers: the first valid backup is `old` (…05); the standalone range
    // survives for its keep. Without a known deletion the rest awaits one.
    let one = wal("000000010000000000000001");
    let four = wal("000000010000000000000004");
    assert_eq!(class(&r, &one, None), Some(LeftoverReason::AwaitingNextDeletion));
    assert_eq!(
        class(&r, &wal("000000010000000000000002"), None),
        Some(LeftoverReason::KeepAnnotation)
    );
    assert_eq!(class(&r, &four, None), Some(LeftoverReason::AwaitingNextDeletion));
    assert_eq!(r.leftover(&wal("000000010000000000000005")), None);
    // A backup deleted before the standalone one (begin …01): its deletion,
    // with U = the standalone backup, removes …01 but not …04 (above U's begin;
    // it goes when `old` is deleted, the standalone range protected).
    let d = Some("000000010000000000000001");
    assert_eq!(class(&r, &one, d), Some(LeftoverReason::Unprotected));
    assert_eq!(class(&r, &four, d), Some(LeftoverReason::AwaitingNextDeletion));
    // A backup deleted after the standalone one (begin …04): a retention run
    // removes …01 and …04 (the range protected), but barman's own `-b` delete
    // skips WAL cleanup behind a keep:standalone backup; both look the same
    // in the bucket, so both wait for the next deletion.
    let after = Some("000000010000000000000004");
    assert_eq!(class(&r, &one, after), Some(LeftoverReason::AwaitingNextDeletion));
    assert_eq!(class(&r, &four, after), Some(LeftoverReason::AwaitingNextDeletion));
}

#[test]
fn timelines_are_protected_including_the_deleted_backups_own() {
    let now = 100.0 * DAY;
    let d = done(
        "20250101T000000",
        1,
        "000000010000000000000002",
        "000000010000000000000002",
        now - 10.0 * DAY,
    );
    let u = done(
        "20250102T000000",
        2,
        "000000020000000000000009",
        "000000020000000000000009",
        now - 5.0 * DAY,
    );
    let r = WalRules::plan(&[d, u], RetentionPolicy::parse("1d"), now, false);
    assert_eq!(r.obsolete, vec!["20250101T000000"]);
    // The quirk: D's timeline 1 stays protected, so nothing on it goes now.
    assert!(!r.reclaimable(&wal("000000010000000000000001"), None));
    assert!(!r.reclaimable(&wal("000000010000000000000001"), Some((1, 0))));
    // Only timeline 2 below U's begin_wal goes.
    assert!(r.reclaimable(&wal("000000020000000000000008"), None));
}

#[test]
fn prefix_shortcut_removes_junk_in_old_directories() {
    let now = 100.0 * DAY;
    let d = done(
        "20250101T000000",
        1,
        "000000010000000000000002",
        "000000010000000000000002",
        now - 10.0 * DAY,
    );
    let u = done(
        "20250102T000000",
        1,
        "000000010000000200000009",
        "000000010000000200000009",
        now - 5.0 * DAY,
    );
    let r = WalRules::plan(&[d, u], RetentionPolicy::parse("1d"), now, false);
    let junk = classify_wal("0000000100000001/junk.tmp");
    assert!(r.reclaimable(&junk, Some((1, 1))));
    assert!(
        !r.reclaimable(&junk, Some((1, 2))),
        "U's own log directory is checked per object"
    );
}

#[test]
fn both_x_and_x_gz_count_once_as_barman_deletes_one_path_per_name() {
    let now = 100.0 * DAY;
    let d = done(
        "20250101T000000",
        1,
        "000000010000000000000002",
        "000000010000000000000002",
        now - 10.0 * DAY,
    );
    let u = done(
        "20250102T000000",
        1,
        "000000010000000000000009",
        "000000010000000000000009",
        now - 5.0 * DAY,
    );
    let rules = WalRules::plan(&[d, u], RetentionPolicy::parse("1d"), now, false);
    let mut totals = crate::catalog::WalTotals::default();
    for (key, size) in [
        ("0000000100000000/000000010000000000000003", 100),
        ("0000000100000000/000000010000000000000003.00000028.backup.gz", 1),
        ("0000000100000000/000000010000000000000003.gz", 10),
        ("0000000100000000/000000010000000000000004.gz", 20),
    ] {
        totals.add(key, size, Some(0.0), &rules);
    }
    // 03.gz replaces 03 (listed later); the label and 04 count on their own.
    assert_eq!(totals.reclaimable, crate::catalog::Usage { objects: 3, bytes: 31 });
    assert_eq!(
        totals.by_kind[WalKind::Segment.index()].objects,
        3,
        "objects are still all counted"
    );
}

#[test]
fn leftover_reasons() {
    let f = done(
        "20250102T000000",
        3,
        "000000030000000000000009",
        "000000030000000000000009",
        0.0,
    );
    let failed = BackupMeta {
        id: "20250101T000000".into(),
        done: false,
        status_done: false,
        timeline: Some(2),
        begin_wal: Some(seg("000000020000000000000004")),
        end_wal: None,
        begin_offset: None,
        end_time: None,
        keep: None,
    };
    let r = WalRules::plan(&[failed, f], None, 0.0, false);
    let eight = wal("000000030000000000000008");
    let tl1 = wal("000000010000000000000005");
    assert_eq!(class(&r, &eight, None), Some(LeftoverReason::AwaitingNextDeletion));
    assert_eq!(r.leftover(&wal("000000030000000000000009")), None);
    assert_eq!(r.leftover(&wal("00000003000000000000000A")), None);
    assert_eq!(
        class(&r, &wal("000000020000000000000005.partial"), None),
        Some(LeftoverReason::FailedOrStartedBackup)
    );
    assert_eq!(class(&r, &tl1, None), Some(LeftoverReason::AwaitingNextDeletion));
    // A backup on timeline 3 deleted by hand (begin …03): barman's deletion of
    // it protects {2, 3} ∪ {3} − {3} and removes everything else below …09.
    let d = Some("000000030000000000000003");
    assert_eq!(class(&r, &eight, d), Some(LeftoverReason::Unprotected));
    assert_eq!(class(&r, &tl1, d), Some(LeftoverReason::Unprotected));
    assert_eq!(
        class(&r, &wal("000000020000000000000005.partial"), d),
        Some(LeftoverReason::FailedOrStartedBackup)
    );
    assert_eq!(
        class(&r, &classify_wal("00000002.history"), d),
        Some(LeftoverReason::History)
    );
    assert_eq!(r.leftover(&classify_wal("00000004.history")), None);
    assert_eq!(r.leftover(&classify_wal("0000000100000000/junk")), None);
    assert!(
        WalRules::plan(&[], None, 0.0, false)
            .leftover(&wal("000000010000000000000001"))
            .is_none()
    );
}

#[test]
fn a_failover_leaves_the_old_timeline_for_the_next_deletion() {
    // D (timeline 1, begin …02) deleted; F on timeline 2 begins at …08.
    let f = done(
        "20250102T000000",
        2,
        "000000020000000000000008",
        "000000020000000000000008",
        0.0,
    );
    let r = WalRules::plan(&[f], None, 0.0, false);
    let d = Some("000000010000000000000002");
    for name in ["000000010000000000000003", "000000010000000000000007.partial"] {
        // The quirk: D's own timeline 1 is protected in its deletion.
        assert_eq!(
            class(&r, &wal(name), d),
            Some(LeftoverReason::AwaitingNextDeletion),
            "{name}"
        );
    }
    // Timeline 2 below F: D's deletion (U = F on timeline 2) removes it.
    assert_eq!(
        class(&r, &wal("000000020000000000000007"), d),
        Some(LeftoverReason::Unprotected)
    );
    // D on timeline 2 instead: timeline 1 is no longer protected.
    let d2 = Some("000000020000000000000005");
    assert_eq!(
        class(&r, &wal("000000010000000000000003"), d2),
        Some(LeftoverReason::Unprotected)
    );
}

#[test]
fn a_standalone_backup_on_a_lower_timeline_keeps_that_timeline_above_its_begin() {
    let mut k = done(
        "20250101T000000",
        1,
        "000000010000000000000005",
        "000000010000000000000006",
        0.0,
    );
    k.keep = Some(Keep::Standalone);
    let f = done(
        "20250102T000000",
        2,
        "000000020000000000000009",
        "000000020000000000000009",
        0.0,
    );
    let r = WalRules::plan(&[k, f], None, 0.0, false);
    let d = Some("000000010000000000000002");
    assert_eq!(
        class(&r, &wal("000000010000000000000006"), d),
        Some(LeftoverReason::KeepAnnotation),
        "in the range"
    );
    assert_eq!(
        class(&r, &wal("000000010000000000000008"), d),
        Some(LeftoverReason::KeepAnnotation),
        "after the range, on the standalone backup's timeline"
    );
    // Below it: D's deletion (U = the standalone backup) removes it.
    assert_eq!(
        class(&r, &wal("000000010000000000000003"), d),
        Some(LeftoverReason::Unprotected)
    );
    assert_eq!(
        class(&r, &wal("000000010000000000000003"), None),
        Some(LeftoverReason::AwaitingNextDeletion)
    );
}

#[test]
fn foreign_labels_are_those_of_no_catalog_backup() {
    let f = done(
        "20250102T000000",
        1,
        "000000010000000000000009",
        "000000010000000000000009",
        0.0,
    );
    let r = WalRules::plan(&[f], None, 0.0, false);
    assert!(!r.is_foreign_label("000000010000000000000009.00000028.backup"));
    assert!(r.is_foreign_label("000000010000000000000003.00000028.backup"));
}

#[test]
fn barman_label_ids() {
    let label = |l: &str| format!("START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\nLABEL: {l}\n");
    assert_eq!(
        barman_label_id(&label("Barman backup cloud 20261203T100000")),
        Some("20261203T100000")
    );
    assert_eq!(
        barman_label_id(&label("Barman backup pg 20261203T100000")),
        Some("20261203T100000")
    );
    assert_eq!(barman_label_id(&label("pg_basebackup base backup")), None);
    assert_eq!(barman_label_id("no label at all"), None);
}
