//! WAL continuity: can the base backups be restored to the newest archived WAL?
//!
//! Rules (layout doc §7, barman 3.19.1 `xlog.py`): a backup needs every full
//! segment from its `begin_wal` on; on a timeline switch recorded in
//! `wals/<T>.history` (parent P, switch LSN L), P's segments are needed up to
//! `segno(L) − 1` and T's from `segno(L)` on (P's `segno(L)` usually exists only
//! as `.partial`, which never counts). The target is the newest full segment on
//! the newest timeline. barman-cloud itself never checks this.

use std::collections::BTreeMap;

use serde::Serialize;

use super::history::HistoryEntry;
use super::wal::{SegmentName, WalIndex};

/// One stretch of the path to the newest WAL: `timeline` from `lo` to `hi`
/// (inclusive linear segment numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Leg {
    timeline: u32,
    lo: u64,
    hi: u64,
}

/// At most this many gaps are listed in [`Continuity::gaps`] (the oldest
/// first); [`Continuity::gap_count`] counts them all.
pub const MAX_LISTED_GAPS: usize = 32;

/// A stretch of missing full segments on the path to the newest WAL.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WalGap {
    /// Timeline of the missing segments.
    pub timeline: u32,
    /// First missing segment name.
    pub first: String,
    /// Last missing segment name (inclusive).
    pub last: String,
    /// Number of missing segments.
    pub segments: u64,
    /// Newest `LastModified` of the run of present segments just before the
    /// gap on the path (the last time the chain advanced before it breaks),
    /// Unix seconds; `None` when no present segment precedes the gap.
    pub after_time: Option<f64>,
}

/// A timeline switch on the path to the newest WAL (one line of the newest
/// timeline's `.history`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineSwitch {
    /// The timeline that ended.
    pub parent: u32,
    /// The timeline that started there.
    pub timeline: u32,
    /// The switch point, an LSN in bytes.
    pub switch_lsn: u64,
    /// The first segment the new timeline needs (`segno(switch_lsn)`).
    pub first_segment: String,
    /// Newest `LastModified` of the parent's full segments before the switch
    /// (the last archived time known before it), Unix seconds; `None` when
    /// none of them is in the archive.
    pub parent_last_archived: Option<f64>,
}

/// Continuity figures for one server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Continuity {
    /// Newest timeline with a full segment.
    pub timeline: u32,
    /// The newest full segment on that timeline.
    pub newest_segment: String,
    /// End LSN (bytes) of that segment.
    pub archived_lsn: u64,
    /// Segments missing between the oldest DONE backup on the path and the
    /// newest segment (`None` without such a backup).
    pub missing_segments: Option<u64>,
    /// The first missing segment, if any.
    pub first_missing: Option<String>,
    /// Newest `LastModified` of the unbroken chain from the oldest DONE
    /// backup (the recovery window's end), Unix seconds.
    pub recovery_window_end: Option<f64>,
    /// Backup ids that can be restored to the newest WAL.
    pub restorable: Vec<String>,
    /// Why each other backup cannot be (backup id → reason, e.g. `WAL gap at
    /// segment 000000010000000000000005`); published per backup as
    /// `backup_list[].not_restorable`.
    #[serde(skip)]
    pub not_restorable: BTreeMap<String, String>,
    /// True when a timeline's `.history` needed for the path is missing or unreadable.
    pub history_missing: bool,
    /// The gaps counted in `missing_segments`, oldest first, at most
    /// [`MAX_LISTED_GAPS`] (empty without a DONE backup on the path).
    pub gaps: Vec<WalGap>,
    /// Number of gaps counted in `missing_segments` (listed or not).
    pub gap_count: u64,
    /// The timeline switches on the path, oldest first (empty on timeline 1
    /// or without the newest timeline's `.history`).
    pub switches: Vec<TimelineSwitch>,
}

/// A DONE backup as continuity needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupRange {
    /// Backup id.
    pub id: String,
    /// `begin_wal`.
    pub begin: SegmentName,
    /// `end_wal`.
    pub end: SegmentName,
    /// keep:standalone: restorable to its own end only, so continuity does
    /// not start from it.
    pub standalone: bool,
}

/// Computes continuity. `backups` are the DONE backups oldest first;
/// `histories` maps a timeline to its parsed `.history`; `segment_size` in bytes.
pub fn analyze(
    index: &WalIndex,
    histories: &BTreeMap<u32, Vec<HistoryEntry>>,
    backups: &[BackupRange],
    segment_size: u64,
) -> Option<Continuity> {
    let timeline = index.newest_timeline()?;
    let newest = index.newest_on(timeline)?;
    let target = newest.segno(segment_size);
    let (legs, history_missing) = path(timeline, target, histories, segment_size);
    let runs: BTreeMap<u32, Vec<(u64, u64, f64)>> = legs
        .iter()
        .map(|l| (l.timeline, index.segno_runs(l.timeline, segment_size)))
        .collect();
    let walk = |start: SegmentName| scan(&legs, &runs, start, segment_size);
    let mut c = Continuity {
        timeline,
        newest_segment: newest.to_string(),
        archived_lsn: newest.end_lsn(segment_size),
        missing_segments: None,
        first_missing: None,
        recovery_window_end: None,
        restorable: Vec::new(),
        not_restorable: BTreeMap::new(),
        history_missing,
        gaps: Vec::new(),
        gap_count: 0,
        switches: switches(&legs, &runs, histories.get(&timeline), segment_size),
    };
    if let Some((first, s)) = backups
        .iter()
        .filter(|b| !b.standalone)
        .find_map(|b| walk(b.begin).map(|s| (b, s)))
    {
        c.missing_segments = Some(s.missing);
        c.first_missing = s.first_missing.map(|m| m.to_string());
        c.gap_count = s.gap_count;
        c.gaps = s.gaps;
        // The window ends where the chain first breaks, if that is after the backup's own range.
        let end_segno = first.end.segno(segment_size);
        if s.first_missing
            .is_none_or(|m| m.timeline != first.end.timeline || m.segno(segment_size) > end_segno)
        {
            c.recovery_window_end = s.chain_end_modified;
        }
    }
    for b in backups {
        match walk(b.begin) {
            Some(s) if s.missing == 0 => c.restorable.push(b.id.clone()),
            Some(s) => {
                let at = s.first_missing.map_or_else(String::new, |m| m.to_string());
                c.not_restorable
                    .insert(b.id.clone(), format!("WAL gap at segment {at}"));
            }
            None => {
                c.not_restorable.insert(
                    b.id.clone(),
                    format!("begin_wal {} is not on the timeline path to the newest WAL", b.begin),
                );
            }
        }
    }
    Some(c)
}

/// The legs from timeline 1 (or the oldest ancestor) to `timeline`, ending at `target`.
fn path(
    timeline: u32,
    target: u64,
    histories: &BTreeMap<u32, Vec<HistoryEntry>>,
    segment_size: u64,
) -> (Vec<Leg>, bool) {
    let entries = if timeline > 1 { histories.get(&timeline) } else { None };
    let mut legs = Vec::new();
    let mut lo = 0;
    if let Some(entries) = entries {
        for e in entries {
            let switch = e.switch_lsn / segment_size;
            legs.push(Leg {
                timeline: e.parent,
                lo,
                hi: switch.saturating_sub(1),
            });
            lo = switch;
        }
    }
    legs.push(Leg {
        timeline,
        lo,
        hi: target,
    });
    (legs, timeline > 1 && entries.is_none())
}

/// The switches between consecutive legs; `entries` is the newest timeline's `.history`.
fn switches(
    legs: &[Leg],
    runs: &BTreeMap<u32, Vec<(u64, u64, f64)>>,
    entries: Option<&Vec<HistoryEntry>>,
    size: u64,
) -> Vec<TimelineSwitch> {
    let Some(entries) = entries else {
        return Vec::new();
    };
    legs.windows(2)
        .zip(entries)
        .map(|(pair, e)| {
            let (parent, next) = (pair[0], pair[1]);
            let parent_last_archived = runs
                .get(&parent.timeline)
                .into_iter()
                .flatten()
                .filter(|&&(a, b, _)| a <= parent.hi && b >= parent.lo && parent.lo <= parent.hi)
                .map(|&(_, _, m)| m)
                .reduce(f64::max);
            TimelineSwitch {
                parent: parent.timeline,
                timeline: next.timeline,
                switch_lsn: e.switch_lsn,
                first_segment: SegmentName::from_segno(next.timeline, next.lo, size).to_string(),
                parent_last_archived,
            }
        })
        .collect()
}

struct Scan {
    missing: u64,
    first_missing: Option<SegmentName>,
    chain_end_modified: Option<f64>,
    gaps: Vec<WalGap>,
    gap_count: u64,
}

impl Scan {
    /// Counts segments `lo..=hi` of `timeline` as missing; `after` is the
    /// newest `LastModified` of the run just before them.
    fn gap(&mut self, timeline: u32, lo: u64, hi: u64, after: Option<f64>, size: u64) {
        self.missing += hi - lo + 1;
        if self.first_missing.is_none() {
            self.first_missing = Some(SegmentName::from_segno(timeline, lo, size));
        }
        self.gap_count += 1;
        if self.gaps.len() < MAX_LISTED_GAPS {
            self.gaps.push(WalGap {
                timeline,
                first: SegmentName::from_segno(timeline, lo, size).to_string(),
                last: SegmentName::from_segno(timeline, hi, size).to_string(),
                segments: hi - lo + 1,
                after_time: after,
            });
        }
    }
}

/// Counts missing segments from `start` to the end of the path; `None` when
/// `start` is not on the path (an abandoned timeline, or past a switch).
fn scan(legs: &[Leg], runs: &BTreeMap<u32, Vec<(u64, u64, f64)>>, start: SegmentName, size: u64) -> Option<Scan> {
    let s = start.segno(size);
    let first_leg = legs
        .iter()
        .position(|l| l.timeline == start.timeline && l.lo <= s && s <= l.hi)?;
    let mut out = Scan {
        missing: 0,
        first_missing: None,
        chain_end_modified: None,
        gaps: Vec::new(),
        gap_count: 0,
    };
    let mut broken = false;
    // Newest LastModified of the last present run passed on the path.
    let mut last_seen: Option<f64> = None;
    for (i, leg) in legs.iter().enumerate().skip(first_leg) {
        let lo = if i == first_leg { s } else { leg.lo };
        if lo > leg.hi {
            continue;
        }
        let mut next = lo; // first segno not yet accounted for
        for &(a, b, modified) in runs.get(&leg.timeline).into_iter().flatten() {
            if b < next || a > leg.hi {
                continue;
            }
            if a > next {
                out.gap(leg.timeline, next, a - 1, last_seen, size);
                broken = true;
            }
            if !broken {
                out.chain_end_modified = Some(modified);
            }
            last_seen = Some(modified);
            next = b.min(leg.hi) + 1;
            if next > leg.hi {
                break;
            }
        }
        if next <= leg.hi {
            out.gap(leg.timeline, next, leg.hi, last_seen, size);
            broken = true;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::wal::DEFAULT_SEGMENT_SIZE as S;

    fn seg(n: &str) -> SegmentName {
        SegmentName::parse(n).unwrap()
    }

    fn index(names: &[(&str, f64)]) -> WalIndex {
        let mut i = WalIndex::default();
        for (n, t) in names {
            i.insert(seg(n), *t);
        }
        i
    }

    fn backup(id: &str, b: &str, e: &str) -> BackupRange {
        BackupRange {
            id: id.into(),
            begin: seg(b),
            end: seg(e),
            standalone: false,
        }
    }

    /// The scenario's shape: timeline 1 segments 1..6 (7 only as .partial),
    /// switch at 0/70000A0, timeline 2 from segment 7.
    fn two_timelines(skip: Option<&str>) -> (WalIndex, BTreeMap<u32, Vec<HistoryEntry>>) {
        let names = [
            "000000010000000000000001",
            "000000010000000000000002",
            "000000010000000000000003",
            "000000010000000000000004",
            "000000010000000000000005",
            "000000010000000000000006",
            "000000020000000000000007",
            "000000020000000000000008",
            "000000020000000000000009",
            "00000002000000000000000A",
            "00000002000000000000000B",
        ];
        let list: Vec<(&str, f64)> = names
            .iter()
            .enumerate()
            .filter(|(_, n)| Some(**n) != skip)
            .map(|(i, n)| (*n, i as f64))
            .collect();
        let h = BTreeMap::from([(
            2,
            vec![HistoryEntry {
                parent: 1,
                switch_lsn: 0x0700_00A0,
            }],
        )]);
        (index(&list), h)
    }

    #[test]
    fn follows_a_promote_through_the_history_file() {
        let (i, h) = two_timelines(None);
        let backups = [
            backup("b1", "000000010000000000000004", "000000010000000000000004"),
            backup("b2", "000000020000000000000009", "000000020000000000000009"),
        ];
        let c = analyze(&i, &h, &backups, S).unwrap();
        assert_eq!(c.timeline, 2);
        assert_eq!(c.newest_segment, "00000002000000000000000B");
        assert_eq!(c.archived_lsn, 0x0C00_0000);
        assert_eq!(c.missing_segments, Some(0));
        assert_eq!(c.restorable, vec!["b1", "b2"]);
        assert_eq!(c.recovery_window_end, Some(10.0));
        assert!(!c.history_missing);
    }

    #[test]
    fn a_deleted_segment_breaks_the_chain() {
        let (i, h) = two_timelines(Some("000000020000000000000008"));
        let backups = [
            backup("b1", "000000010000000000000004", "000000010000000000000004"),
            backup("b2", "000000020000000000000009", "000000020000000000000009"),
        ];
        let c = analyze(&i, &h, &backups, S).unwrap();
        assert_eq!(c.missing_segments, Some(1));
        assert_eq!(c.first_missing.as_deref(), Some("000000020000000000000008"));
        assert_eq!(c.restorable, vec!["b2"]);
        // the chain from b1 ends at 2/07, archived at t=6
        assert_eq!(c.recovery_window_end, Some(6.0));
        // A gap inside the oldest backup's own range: no recovery window at all.
        let (i, h) = two_timelines(Some("000000010000000000000004"));
        let c = analyze(&i, &h, &backups, S).unwrap();
        assert_eq!(c.missing_segments, Some(1));
        assert_eq!(c.recovery_window_end, None);
        assert_eq!(c.restorable, vec!["b2"]);
    }

    #[test]
    fn missing_history_and_off_path_backups() {
        let (i, _) = two_timelines(None);
        let backups = [backup("b1", "000000010000000000000004", "000000010000000000000004")];
        let c = analyze(&i, &BTreeMap::new(), &backups, S).unwrap();
        assert!(c.history_missing);
        assert_eq!(
            c.missing_segments, None,
            "b1 is not on a path to timeline 2 without its history"
        );
        assert!(c.restorable.is_empty());
        // A backup on timeline 1 after the switch point is not on the path.
        let (i, h) = two_timelines(None);
        let late = [backup("late", "000000010000000000000008", "000000010000000000000008")];
        assert!(analyze(&i, &h, &late, S).unwrap().restorable.is_empty());
        assert!(analyze(&WalIndex::default(), &h, &late, S).is_none());
    }

    #[test]
    fn a_standalone_backup_before_a_gap_is_not_a_broken_chain() {
        let (i, h) = two_timelines(Some("000000010000000000000005"));
        let mut archival = backup("a", "000000010000000000000004", "000000010000000000000004");
        archival.standalone = true;
        let backups = [
            archival,
            backup("b2", "000000020000000000000009", "000000020000000000000009"),
        ];
        let c = analyze(&i, &h, &backups, S).unwrap();
        assert_eq!(c.missing_segments, Some(0));
        assert_eq!(c.restorable, vec!["b2"]);
    }

    #[test]
    fn gaps_and_switches_carry_their_segments_and_times() {
        let backups = [
            backup("b1", "000000010000000000000004", "000000010000000000000004"),
            backup("b2", "000000020000000000000009", "000000020000000000000009"),
        ];
        // Healthy: one switch, no gap. Segment i of the list was modified at t=i.
        let (i, h) = two_timelines(None);
        let c = analyze(&i, &h, &backups, S).unwrap();
        assert_eq!(
            c.switches,
            vec![TimelineSwitch {
                parent: 1,
                timeline: 2,
                switch_lsn: 0x0700_00A0,
                first_segment: "000000020000000000000007".into(),
                parent_last_archived: Some(5.0),
            }]
        );
        assert!(c.gaps.is_empty());
        assert_eq!(c.gap_count, 0);
        // A hole on timeline 2, after 2/07 (modified at t=6).
        let (i, h) = two_timelines(Some("000000020000000000000008"));
        let c = analyze(&i, &h, &backups, S).unwrap();
        assert_eq!(
            c.gaps,
            vec![WalGap {
                timeline: 2,
                first: "000000020000000000000008".into(),
                last: "000000020000000000000008".into(),
                segments: 1,
                after_time: Some(6.0),
            }]
        );
        assert_eq!(c.gap_count, 1);
        // The parent's last segment before the switch missing: the gap ends
        // timeline 1, and the switch's time is that of 1/05 (t=4).
        let (i, h) = two_timelines(Some("000000010000000000000006"));
        let c = analyze(&i, &h, &backups, S).unwrap();
        assert_eq!(c.gaps.len(), 1);
        assert_eq!((c.gaps[0].timeline, c.gaps[0].after_time), (1, Some(4.0)));
        assert_eq!(c.switches[0].parent_last_archived, Some(4.0));
        // The oldest backup's own first segment missing: nothing before the gap.
        let (i, h) = two_timelines(Some("000000010000000000000004"));
        let c = analyze(&i, &h, &backups, S).unwrap();
        assert_eq!(c.gaps[0].after_time, None);
        // Without the .history there is no switch to show.
        let (i, _) = two_timelines(None);
        assert!(analyze(&i, &BTreeMap::new(), &backups, S).unwrap().switches.is_empty());
    }

    #[test]
    fn gaps_are_listed_up_to_a_bound_and_all_counted() {
        // Every other segment of 1..=199 present: 99 one-segment gaps.
        let names: Vec<String> = (1..200u64)
            .step_by(2)
            .map(|n| SegmentName::from_segno(1, n, S).to_string())
            .collect();
        let list: Vec<(&str, f64)> = names.iter().map(|n| (n.as_str(), 1.0)).collect();
        let first = names[0].clone();
        let c = analyze(&index(&list), &BTreeMap::new(), &[backup("b", &first, &first)], S).unwrap();
        assert_eq!(c.missing_segments, Some(99));
        assert_eq!(c.gap_count, 99);
        assert_eq!(c.gaps.len(), MAX_LISTED_GAPS);
        assert_eq!(c.gaps[0].first, SegmentName::from_segno(1, 2, S).to_string());
        assert!(c.gaps.iter().all(|g| g.segments == 1 && g.first == g.last));
        // A few gaps: all listed, and they add up to missing_segments.
        let (i, h) = two_timelines(Some("000000020000000000000009"));
        let b = [backup("b1", "000000010000000000000002", "000000010000000000000002")];
        let c = analyze(&i, &h, &b, S).unwrap();
        assert_eq!(
            c.gaps.iter().map(|g| g.segments).sum::<u64>(),
            c.missing_segments.unwrap()
        );
    }

    #[test]
    fn wraps_log_boundaries_with_64_mib_segments() {
        let size = 64 << 20;
        let i = index(&[
            ("00000001000000000000003E", 1.0),
            ("00000001000000000000003F", 2.0),
            ("000000010000000100000000", 3.0),
            ("000000010000000100000002", 4.0),
        ]);
        let b = [backup("b", "00000001000000000000003E", "00000001000000000000003E")];
        let c = analyze(&i, &BTreeMap::new(), &b, size).unwrap();
        assert_eq!(c.missing_segments, Some(1));
        assert_eq!(c.first_missing.as_deref(), Some("000000010000000100000001"));
        assert_eq!(c.recovery_window_end, Some(3.0));
    }
}
