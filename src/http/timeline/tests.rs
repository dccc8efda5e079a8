use super::*;
use crate::catalog::analysis::{AnalysisOptions, summarize_server};
use crate::catalog::backup_info::BackupInfo;
use crate::catalog::history::HistoryEntry;
use crate::catalog::{BackupDir, BackupInfoState, ServerCatalog};

/// 2025-11-01 02:00:00 UTC, the first backup's begin.
const T0: f64 = 1_761_962_400.0;
const HOUR: f64 = 3600.0;

fn dir(id: &str, info: Option<&str>) -> BackupDir {
    BackupDir {
        id: id.into(),
        objects: 2,
        bytes: 100,
        barman_bytes: 100,
        keep: None,
        info: match info {
            Some(text) => BackupInfoState::Parsed(std::sync::Arc::new(BackupInfo::parse(text.as_bytes()).unwrap())),
            None => BackupInfoState::Missing,
        },
        tars: vec![crate::catalog::payload::TarObject::readable("data.tar", 100)],
    }
}

/// A server like the scenario's: DONE, FAILED, STARTED, DONE and an
/// unreadable directory; WAL 1/01..1/04 then, after a promote at segment 5,
/// 2/05..2/08, one segment per hour; `skip` leaves one segment out.
fn catalog(name: &str, skip: Option<&str>) -> ServerCatalog {
    let done = |id: &str, begin: &str, end: &str, wal: &str, tli: u32| {
        dir(
            id,
            Some(&format!(
                "status=DONE\nbegin_time={begin}+00:00\nend_time={end}+00:00\nbegin_wal={wal}\nend_wal={wal}\ntimeline={tli}\n"
            )),
        )
    };
    let mut s = ServerCatalog {
        name: name.into(),
        backups: vec![
            done(
                "20251101T020000",
                "2025-11-01 02:00:00",
                "2025-11-01 02:20:00",
                "000000010000000000000001",
                1,
            ),
            dir(
                "20251101T030000",
                Some("status=FAILED\nbegin_time=2025-11-01 03:00:00+00:00\nerror=copy <failed> & \"quoted\"\n"),
            ),
            dir(
                "20251101T040000",
                Some("status=STARTED\nbegin_time=2025-11-01 04:00:00+00:00\n"),
            ),
            done(
                "20251101T060000",
                "2025-11-01 06:00:00",
                "2025-11-01 06:10:00",
                "000000020000000000000006",
                2,
            ),
            dir("not-a-backup-id", None),
        ],
        ..Default::default()
    };
    let segments = (1..=4)
        .map(|n| format!("00000001000000000000000{n}"))
        .chain((5..=8).map(|n| format!("00000002000000000000000{n}")));
    for (i, seg) in segments.enumerate() {
        if Some(seg.as_str()) != skip {
            let key = format!("{}/{seg}.gz", &seg[..16]);
            s.wal.add(&key, 100, Some(T0 + i as f64 * HOUR), &Default::default());
        }
    }
    s.wal
        .add("00000002.history.gz", 5, Some(T0 + 4.0 * HOUR), &Default::default());
    s.histories.insert(
        2,
        vec![HistoryEntry {
            parent: 1,
            switch_lsn: 0x0500_0000,
        }],
    );
    s
}

fn summary(s: &ServerCatalog) -> ServerSummary {
    let opts = AnalysisOptions {
        servers: None,
        orphan_after: 1e9,
        stuck_after: 1e9,
        retention: false,
        now: T0 + 8.0 * HOUR,
    };
    summarize_server(s, &opts)
}

fn svg(t: &Timeline) -> String {
    t.render().unwrap()
}

#[test]
fn server_names_and_errors_are_escaped() {
    let s = summary(&catalog("a<b&\"c'", None));
    let out = svg(&build("tl-0-0", &s, T0 + 8.0 * HOUR));
    for raw in ["a<b", "b&\"", "\"c'", "<failed>", "& \"quoted"] {
        assert!(!out.contains(raw), "{raw} unescaped in\n{out}");
    }
    assert!(
        out.contains("data-server=\"a&#60;b&#38;&#34;c&#39;\""),
        "attribute escaped:\n{out}"
    );
    assert!(out.contains("Backups and WAL of a&#60;b&#38;&#34;c&#39;</title>"));
    assert!(out.contains("copy &#60;failed&#62; &#38; &#34;quoted&#34;"));
    // The element ids come from the caller, not from the data.
    assert!(out.contains("id=\"tl-0-0-hatch\"") && out.contains("url(#tl-0-0-hatch)"));
}

#[test]
fn every_backup_has_one_mark_shaped_by_its_status() {
    let s = summary(&catalog("pg", None));
    let t = build("x", &s, T0 + 8.0 * HOUR);
    let shapes: Vec<(&str, Shape)> = t.backups.iter().map(|b| (b.status.as_str(), b.shape)).collect();
    assert_eq!(
        shapes,
        vec![
            ("UNREADABLE", Shape::Unreadable),
            ("DONE", Shape::Done),
            ("FAILED", Shape::Failed),
            ("STARTED", Shape::Started),
            ("DONE", Shape::Done),
        ]
    );
    let out = svg(&t);
    assert_eq!(out.matches("<g class=\"backup\"").count(), s.backup_list.len());
    for status in ["DONE", "FAILED", "STARTED", "UNREADABLE"] {
        assert!(out.contains(&format!("data-status=\"{status}\"")), "{status}");
    }
    // Dated backups are on the axis in time order; the undated one left of it.
    let undated = &t.backups[0];
    assert!(undated.x < PLOT_LEFT && undated.title.contains("time unknown"));
    let xs: Vec<f64> = t.backups[1..].iter().map(|b| b.x).collect();
    assert!(xs.windows(2).all(|w| w[0] < w[1]), "{xs:?}");
    assert!(xs.iter().all(|x| (PLOT_LEFT..=PLOT_RIGHT).contains(x)));
    // A DONE backup's line runs to its end; the title says whether it restores.
    assert!(t.backups[1].end_x.is_some_and(|e| e > t.backups[1].x));
    assert!(t.backups[1].title.contains("restorable to the newest WAL"));
    assert!(
        t.description
            .starts_with("5 backups (2 DONE, 1 FAILED, 1 STARTED, 1 unreadable, 0 other)")
    );
}

#[test]
fn two_timelines_show_a_switch_and_a_line_per_timeline() {
    let s = summary(&catalog("pg", None));
    let t = build("x", &s, T0 + 8.0 * HOUR);
    assert_eq!(t.switches.len(), 1);
    assert_eq!(t.switches[0].label, "TL 2");
    assert!(t.switches[0].title.contains("timeline 1 → 2 at LSN 0/5000000"));
    let labels: Vec<&str> = t.wal.iter().map(|w| w.label.as_str()).collect();
    assert_eq!(labels, ["TL 1", "TL 2"]);
    // The lines join at the switch, which is at 1/04's time (T0 + 3 h).
    assert_eq!(t.wal[0].x1, t.switches[0].x0);
    assert_eq!(t.wal[1].x0, t.switches[0].x0);
    assert!(t.wal[0].x0 < t.switches[0].x0 && t.switches[0].x0 < t.wal[1].x1);
    let newest = t.newest_wal.as_ref().unwrap();
    assert_eq!(newest.x0, t.wal[1].x1);
    assert!(newest.title.contains("000000020000000000000008"));
    assert!(t.gaps.is_empty());
    let window = t.window.as_ref().unwrap();
    assert_eq!(
        window.x1, newest.x0,
        "an unbroken chain: the window reaches the newest WAL"
    );
    let out = svg(&t);
    assert_eq!(out.matches("<g class=\"switch\"").count(), 1);
    assert!(out.contains("→ TL 2"));
    assert_eq!(out.matches("<g class=\"wal\"").count(), 2);
}

#[test]
fn a_gap_is_marked_where_the_chain_breaks_and_ends_the_window() {
    let s = summary(&catalog("pg", Some("000000020000000000000007")));
    let t = build("x", &s, T0 + 8.0 * HOUR);
    assert_eq!(t.gaps.len(), 1);
    let gap = &t.gaps[0];
    assert_eq!(gap.label, "gap ×1");
    assert!(
        gap.title.contains("000000020000000000000007 missing (1 segment)"),
        "{}",
        gap.title
    );
    let window = t.window.as_ref().unwrap();
    // The chain broke after 2/06 (T0 + 5 h): the window ends there, at the gap.
    assert_eq!(window.x1, gap.x0);
    assert!(gap.x0 < t.newest_wal.as_ref().unwrap().x0);
    let out = svg(&t);
    assert_eq!(out.matches("<g class=\"gap\"").count(), 1);
    assert!(t.description.contains("1 WAL gap;"));
}

#[test]
fn a_server_with_no_backups_and_no_wal_still_has_an_axis_and_now() {
    let s = summary(&ServerCatalog {
        name: "empty".into(),
        ..Default::default()
    });
    let now = T0;
    let t = build("x", &s, now);
    assert!(t.backups.is_empty() && t.wal.is_empty() && t.gaps.is_empty() && t.switches.is_empty());
    assert_eq!(t.window, None);
    assert_eq!(t.no_window.as_deref(), Some("no recovery window: no DONE backup"));
    assert!(t.newest_wal.is_none());
    // The last day, now at the right.
    assert!(t.now_x > PLOT_RIGHT - 40.0 && t.now_x <= PLOT_RIGHT);
    assert!(t.ticks.len() >= 3);
    let out = svg(&t);
    assert_eq!(out.matches("<svg class=\"timeline\"").count(), 1);
    assert_eq!(out.matches("class=\"backup\"").count(), 0);
    assert!(out.contains("no recovery window: no DONE backup") && out.contains(">now</text>"));
}

#[test]
fn ticks_are_round_times_in_order_inside_the_plot() {
    let s = summary(&catalog("pg", None));
    let t = build("x", &s, T0 + 8.0 * HOUR);
    let xs: Vec<f64> = t.ticks.iter().map(|(x, _)| *x).collect();
    assert!(xs.len() >= 3 && xs.len() <= 7, "{:?}", t.ticks);
    assert!(xs.windows(2).all(|w| w[0] < w[1]));
    assert!(xs.iter().all(|x| (PLOT_LEFT..=PLOT_RIGHT).contains(x)));
    // About 8 hours: hourly or two-hourly ticks, labelled with the date.
    assert!(
        t.ticks
            .iter()
            .all(|(_, l)| l.starts_with("11-01 ") && l.ends_with(":00")),
        "{:?}",
        t.ticks
    );
}

#[test]
fn crowded_marks_are_staggered() {
    let mut c = catalog("pg", None);
    // Two backups one second apart.
    c.backups = vec![
        dir(
            "20251101T020000",
            Some("status=FAILED\nbegin_time=2025-11-01 02:00:00+00:00\n"),
        ),
        dir(
            "20251101T020001",
            Some("status=FAILED\nbegin_time=2025-11-01 02:00:01+00:00\n"),
        ),
    ];
    let t = build("x", &summary(&c), T0 + 8.0 * HOUR);
    assert_eq!(t.backups[0].x, t.backups[1].x);
    assert_ne!(t.backups[0].y, t.backups[1].y);
}

#[test]
fn utc_formats_or_dashes() {
    assert_eq!(utc(Some(T0)), "2025-11-01 02:00:00 UTC");
    assert_eq!(utc(None), "–");
}
