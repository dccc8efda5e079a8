//! WAL file names and segment/LSN arithmetic for any WAL segment size.
//!
//! Follows barman 3.19.1 `barman/xlog.py`: a segment name is `%08X%08X%08X` of
//! `(timeline, log, seg)`; with segment size `S` bytes there are `2^32 / S`
//! segments per `log` (barman's `xlog_segments_per_file(S)` is the *maximum*
//! `seg` index, `0xFFFFFFFF // S`). Names with lowercase hex are accepted, as
//! barman's `_xlog_re` accepts them.

use std::fmt;

/// Default WAL segment size in bytes (16 MiB), barman's default when a
/// `backup.info` has no `xlog_segment_size`.
pub const DEFAULT_SEGMENT_SIZE: u64 = 16 * 1024 * 1024;

/// A WAL segment identity: timeline, `log` (high 32 bits of the LSN) and
/// segment number inside that log.
///
/// Ordering is `(timeline, log, seg)`, which equals barman's string comparison
/// of fixed-width uppercase names (`xlog.py`, "names compared as strings").
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SegmentName {
    /// Timeline ID (`TLI`).
    pub timeline: u32,
    /// The `LOG` part: LSN >> 32.
    pub log: u32,
    /// The `SEG` part: segment index inside `log`.
    pub seg: u32,
}

impl SegmentName {
    /// Parses a bare 24-hex-digit segment name (either case), e.g.
    /// `000000010000000000000006`. Returns `None` for anything else.
    pub fn parse(name: &str) -> Option<Self> {
        let b = name.as_bytes();
        if b.len() != 24 || !b.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        Some(Self {
            timeline: hex_u32(&name[0..8])?,
            log: hex_u32(&name[8..16])?,
            seg: hex_u32(&name[16..24])?,
        })
    }

    /// Linear segment number on its timeline: `log * (2^32 / S) + seg`
    /// (barman `xlog.py`, contiguity means `segno + 1` on the same timeline).
    pub fn segno(&self, segment_size: u64) -> u64 {
        u64::from(self.log) * segments_per_log(segment_size) + u64::from(self.seg)
    }

    /// The segment with linear number `segno` on `timeline` for segment size
    /// `segment_size` bytes.
    pub fn from_segno(timeline: u32, segno: u64, segment_size: u64) -> Self {
        let per = segments_per_log(segment_size);
        Self {
            timeline,
            log: (segno / per) as u32,
            seg: (segno % per) as u32,
        }
    }

    /// The segment holding byte position `lsn` (bytes since the start of WAL)
    /// on `timeline` (barman `location_to_xlogfile_name_offset`).
    pub fn from_lsn(timeline: u32, lsn: u64, segment_size: u64) -> Self {
        Self::from_segno(timeline, lsn / segment_size, segment_size)
    }

    /// First LSN (bytes) after this segment, i.e. the end of its WAL range.
    /// Saturates at `u64::MAX` for the last segment of the 64-bit WAL space
    /// (its end, 2^64, does not fit), and for names whose `seg` is out of
    /// range for `segment_size` (barman's regex accepts them).
    pub fn end_lsn(&self, segment_size: u64) -> u64 {
        (self.segno(segment_size) + 1).saturating_mul(segment_size)
    }

    /// The `wals/` sub-directory barman stores this segment in
    /// (`xlog.hash_dir`: `%08X%08X` of timeline and log).
    pub fn hash_dir(&self) -> String {
        format!("{:08X}{:08X}", self.timeline, self.log)
    }
}

impl fmt::Display for SegmentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08X}{:08X}{:08X}", self.timeline, self.log, self.seg)
    }
}

/// Number of segments per `log` value for a segment size in bytes: `2^32 / S`.
/// Sizes that are not a power of two between 1 MiB and 1 GiB are clamped into
/// that range, which is what PostgreSQL allows for `wal_segment_size`.
pub fn segments_per_log(segment_size: u64) -> u64 {
    let s = segment_size.clamp(1 << 20, 1 << 30);
    (1u64 << 32) / s
}

/// Parses a PostgreSQL LSN `X/Y` (two hex numbers) into a byte position
/// `(X << 32) + Y` (barman `xlog.parse_lsn`).
pub fn parse_lsn(lsn: &str) -> Option<u64> {
    let (hi, lo) = lsn.trim().split_once('/')?;
    let hi = u64::from(hex_u32(hi)?);
    let lo = u64::from(hex_u32(lo)?);
    Some((hi << 32) + lo)
}

fn hex_u32(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 8 {
        return None;
    }
    u32::from_str_radix(s, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats_names() {
        let n = SegmentName::parse("000000010000000000000006").unwrap();
        assert_eq!((n.timeline, n.log, n.seg), (1, 0, 6));
        assert_eq!(n.to_string(), "000000010000000000000006");
        // barman's regex accepts lowercase hex; we normalise to uppercase.
        let l = SegmentName::parse("0000000a00000001000000ff").unwrap();
        assert_eq!((l.timeline, l.log, l.seg), (10, 1, 255));
        assert_eq!(l.to_string(), "0000000A00000001000000FF");
        assert!(SegmentName::parse("00000001000000000000006").is_none());
        assert!(SegmentName::parse("00000001000000000000000G").is_none());
    }

    #[test]
    fn segno_wraps_at_log_boundary_for_16_and_64_mib() {
        let s16 = DEFAULT_SEGMENT_SIZE;
        let last = SegmentName::parse("0000000100000000000000FF").unwrap();
        let next = SegmentName::from_segno(1, last.segno(s16) + 1, s16);
        assert_eq!(next.to_string(), "000000010000000100000000");
        let s64 = 64 * 1024 * 1024;
        assert_eq!(segments_per_log(s64), 64);
        let last64 = SegmentName::parse("00000001000000000000003F").unwrap();
        let next64 = SegmentName::from_segno(1, last64.segno(s64) + 1, s64);
        assert_eq!(next64.to_string(), "000000010000000100000000");
    }

    #[test]
    fn lsn_to_segment() {
        let lsn = parse_lsn("0/6000028").unwrap();
        assert_eq!(lsn, 0x0600_0028);
        let seg = SegmentName::from_lsn(1, lsn, DEFAULT_SEGMENT_SIZE);
        assert_eq!(seg.to_string(), "000000010000000000000006");
        let lsn = parse_lsn("1/FF000000").unwrap();
        assert_eq!(
            SegmentName::from_lsn(2, lsn, DEFAULT_SEGMENT_SIZE).to_string(),
            "0000000200000001000000FF"
        );
        assert_eq!(
            SegmentName::from_lsn(1, 0x0600_0028, 64 << 20).to_string(),
            "000000010000000000000001"
        );
        assert!(parse_lsn("nope").is_none());
        assert!(parse_lsn("1/123456789").is_none());
        assert_eq!(seg.end_lsn(DEFAULT_SEGMENT_SIZE), 0x0700_0000);
        assert_eq!(seg.hash_dir(), "0000000100000000");
    }

    #[test]
    fn end_of_the_last_segment_saturates_instead_of_overflowing() {
        // Found by tests/wal_props.rs: (2^44 - 1 + 1) * 1 MiB overflowed u64
        // (a panic in debug builds, a wrapped 0 in release).
        let last = SegmentName::parse("00000001FFFFFFFF00000FFF").unwrap();
        assert_eq!(last.end_lsn(1 << 20), u64::MAX);
        let last16 = SegmentName::from_lsn(1, u64::MAX, DEFAULT_SEGMENT_SIZE);
        assert_eq!(last16.to_string(), "00000001FFFFFFFF000000FF");
        assert_eq!(last16.end_lsn(DEFAULT_SEGMENT_SIZE), u64::MAX);
        // One before the last still has an exact end.
        let before = SegmentName::from_segno(1, last16.segno(DEFAULT_SEGMENT_SIZE) - 1, DEFAULT_SEGMENT_SIZE);
        assert_eq!(
            before.end_lsn(DEFAULT_SEGMENT_SIZE),
            u64::MAX - DEFAULT_SEGMENT_SIZE + 1
        );
        // A hostile name with every field at its maximum (seg out of range).
        let junk = SegmentName::parse("FFFFFFFFFFFFFFFFFFFFFFFF").unwrap();
        assert_eq!(junk.end_lsn(DEFAULT_SEGMENT_SIZE), u64::MAX);
    }
}

/// A maximal run of consecutive present segments inside one `wals/<TLI><LOG>/`
/// directory, with the newest `LastModified` among them.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Run {
    /// First `seg` index of the run.
    pub start: u32,
    /// Last `seg` index of the run (inclusive).
    pub end: u32,
    /// Newest `LastModified` of the run's segments, Unix seconds.
    pub newest_modified: f64,
}

/// Which full WAL segments exist, as runs per `(timeline, log)` directory.
///
/// Memory grows with the number of gaps and timelines, not with the number
/// of segments or directories: a healthy 256-segment directory is one run,
/// and consecutive full directories of 16 MiB segments (segments `00` to
/// `FF` each) are one entry however many there are, so a server of ten
/// million segments without gaps is a handful of entries. Segment numbers
/// are stored as `(log, seg)`, independent of the segment size, which is
/// applied only when asking questions in linear `segno` terms. The entries
/// are one flat vector sorted by `(timeline, log, seg)`, 32 bytes each, in a
/// canonical form (coalescible neighbours are always coalesced), so two
/// indexes of the same segments and times compare equal however they were
/// built.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct WalIndex {
    runs: Vec<DirRun>,
}

/// The highest `seg` of a directory of 16 MiB segments (PostgreSQL's
/// default): consecutive directories holding exactly `00..=FF` are
/// coalesced into one entry.
const FULL_END: u32 = 0xFF;

/// A [`Run`] of one `(timeline, log)` directory, or (`last_log > log`) the
/// same full run `00..=FF` in every directory from `log` to `last_log`, with
/// the newest `LastModified` among all of them.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
struct DirRun {
    timeline: u32,
    log: u32,
    last_log: u32,
    run: Run,
}

impl DirRun {
    /// The sort key of the entry's end.
    fn end_key(&self) -> (u32, u32, u32) {
        (self.timeline, self.last_log, self.run.end)
    }

    /// A single directory's run in `(timeline, log)`.
    fn same_dir(&self, timeline: u32, log: u32) -> bool {
        self.timeline == timeline && self.log == log && self.last_log == log
    }

    /// Whether it holds segment `(timeline, log, seg)`.
    fn holds(&self, timeline: u32, log: u32, seg: u32) -> bool {
        self.timeline == timeline
            && (self.log..=self.last_log).contains(&log)
            && (self.run.start..=self.run.end).contains(&seg)
    }

    /// A full directory of 16 MiB segments (or a run of them).
    fn is_full(&self) -> bool {
        self.run.start == 0 && self.run.end == FULL_END
    }

    /// Whether `next` continues this entry as one coalesced entry.
    fn coalesces_with(&self, next: &DirRun) -> bool {
        self.is_full()
            && next.is_full()
            && self.timeline == next.timeline
            && self.last_log.checked_add(1) == Some(next.log)
    }
}

impl WalIndex {
    /// Records a present full segment with its `LastModified` (Unix seconds).
    pub fn insert(&mut self, seg: SegmentName, modified: f64) {
        let (t, l, s) = (seg.timeline, seg.log, seg.seg);
        // Listings arrive sorted, so the common case extends the last run.
        if let Some(last) = self.runs.last_mut()
            && last.same_dir(t, l)
        {
            if s == last.run.end.wrapping_add(1) {
                last.run.end = s;
                last.run.newest_modified = last.run.newest_modified.max(modified);
                self.coalesce_at(self.runs.len() - 1);
                return;
            }
            if (last.run.start..=last.run.end).contains(&s) {
                last.run.newest_modified = last.run.newest_modified.max(modified);
                return;
            }
        }
        let mut pos = self.runs.partition_point(|r| r.end_key() < (t, l, s));
        if let Some(r) = self.runs.get_mut(pos) {
            if r.holds(t, l, s) {
                r.run.newest_modified = r.run.newest_modified.max(modified);
                return;
            }
            if r.timeline == t && r.log < r.last_log && (r.log..=r.last_log).contains(&l) {
                // A segment past FF in a coalesced directory: that directory
                // becomes an entry of its own again.
                self.split(pos, l);
                pos = self.runs.partition_point(|r| r.end_key() < (t, l, s));
            }
        }
        let run = Run {
            start: s,
            end: s,
            newest_modified: modified,
        };
        self.runs.insert(
            pos,
            DirRun {
                timeline: t,
                log: l,
                last_log: l,
                run,
            },
        );
        // Merge with neighbours of the same directory that became adjacent.
        if let Some(next) = self.runs.get(pos + 1).copied()
            && next.same_dir(t, l)
            && next.run.start == s + 1
        {
            self.runs.remove(pos + 1);
            let cur = &mut self.runs[pos].run;
            cur.end = next.run.end;
            cur.newest_modified = cur.newest_modified.max(next.run.newest_modified);
        }
        if pos > 0 && self.runs[pos - 1].same_dir(t, l) && self.runs[pos - 1].run.end + 1 == s {
            let cur = self.runs.remove(pos);
            pos -= 1;
            let prev = &mut self.runs[pos].run;
            prev.end = cur.run.end;
            prev.newest_modified = prev.newest_modified.max(cur.run.newest_modified);
        }
        self.coalesce_at(pos);
    }

    /// Splits the coalesced entry at `pos` so that directory `log` is an
    /// entry of its own.
    fn split(&mut self, pos: usize, log: u32) {
        let r = self.runs[pos];
        let mut parts = Vec::with_capacity(3);
        if r.log < log {
            parts.push(DirRun { last_log: log - 1, ..r });
        }
        parts.push(DirRun {
            log,
            last_log: log,
            ..r
        });
        if log < r.last_log {
            parts.push(DirRun { log: log + 1, ..r });
        }
        self.runs.splice(pos..=pos, parts);
    }

    /// Coalesces the entry at `pos` with its neighbours where they are full
    /// directories of consecutive logs (keeps the canonical form).
    fn coalesce_at(&mut self, mut pos: usize) {
        if pos > 0 && self.runs[pos - 1].coalesces_with(&self.runs[pos]) {
            let cur = self.runs.remove(pos);
            pos -= 1;
            let prev = &mut self.runs[pos];
            prev.last_log = cur.last_log;
            prev.run.newest_modified = prev.run.newest_modified.max(cur.run.newest_modified);
        }
        if let Some(next) = self.runs.get(pos + 1).copied()
            && self.runs[pos].coalesces_with(&next)
        {
            self.runs.remove(pos + 1);
            let cur = &mut self.runs[pos];
            cur.last_log = next.last_log;
            cur.run.newest_modified = cur.run.newest_modified.max(next.run.newest_modified);
        }
    }

    /// The entries of `timeline`, in order.
    fn on_timeline(&self, timeline: u32) -> &[DirRun] {
        let from = self.runs.partition_point(|r| r.timeline < timeline);
        let to = self.runs.partition_point(|r| r.timeline <= timeline);
        &self.runs[from..to]
    }

    /// Whether the full segment exists.
    pub fn contains(&self, seg: SegmentName) -> bool {
        let pos = self
            .runs
            .partition_point(|r| r.end_key() < (seg.timeline, seg.log, seg.seg));
        self.runs
            .get(pos)
            .is_some_and(|r| r.holds(seg.timeline, seg.log, seg.seg))
    }

    /// The highest timeline with a segment.
    pub fn newest_timeline(&self) -> Option<u32> {
        self.runs.last().map(|r| r.timeline)
    }

    /// The highest segment on `timeline`.
    pub fn newest_on(&self, timeline: u32) -> Option<SegmentName> {
        self.on_timeline(timeline).last().map(|r| SegmentName {
            timeline: r.timeline,
            log: r.last_log,
            seg: r.run.end,
        })
    }

    /// Runs on `timeline` as inclusive linear `segno` ranges with their newest
    /// `LastModified`, in order, for segment size `segment_size` bytes.
    ///
    /// A coalesced entry is one range with 16 MiB segments. With another
    /// segment size its directories are not adjacent in `segno` terms (each
    /// misses the segments past `FF`, or holds names past the last segment
    /// of its log): it gives one range per directory, each with the entry's
    /// newest `LastModified` (the only value not kept per directory).
    pub fn segno_runs(&self, timeline: u32, segment_size: u64) -> Vec<(u64, u64, f64)> {
        let per = segments_per_log(segment_size);
        let mut out: Vec<(u64, u64, f64)> = Vec::new();
        let mut push = |a: u64, b: u64, m: f64| match out.last_mut() {
            Some(last) if last.1 + 1 == a => {
                last.1 = b;
                last.2 = last.2.max(m);
            }
            _ => out.push((a, b, m)),
        };
        for r in self.on_timeline(timeline) {
            let m = r.run.newest_modified;
            let (start, end) = (u64::from(r.run.start), u64::from(r.run.end));
            if r.log == r.last_log || per == u64::from(FULL_END) + 1 {
                push(u64::from(r.log) * per + start, u64::from(r.last_log) * per + end, m);
            } else {
                for log in r.log..=r.last_log {
                    push(u64::from(log) * per + start, u64::from(log) * per + end, m);
                }
            }
        }
        out
    }

    /// Adds every segment of `other` (the index of another directory listing).
    pub fn merge(&mut self, other: &WalIndex) {
        // Directories merged in order (the walk's case): other's runs all sort
        // after ours, in other directories, and are appended as they are
        // (coalescing at the seam).
        let after = match (self.runs.last(), other.runs.first()) {
            (Some(last), Some(first)) => (last.timeline, last.last_log) < (first.timeline, first.log),
            _ => true,
        };
        if after {
            let seam = self.runs.len();
            self.runs.extend_from_slice(&other.runs);
            if seam > 0 && seam < self.runs.len() {
                self.coalesce_at(seam);
            }
            return;
        }
        for r in &other.runs {
            for log in r.log..=r.last_log {
                for seg in r.run.start..=r.run.end {
                    let name = SegmentName {
                        timeline: r.timeline,
                        log,
                        seg,
                    };
                    self.insert(name, r.run.newest_modified);
                }
            }
        }
    }

    /// Number of directories and entries held (for memory accounting).
    pub fn size(&self) -> (usize, usize) {
        let mut dirs = 0;
        let mut last = None;
        for r in &self.runs {
            if last != Some((r.timeline, r.log)) {
                dirs += (r.last_log - r.log) as usize + 1;
                last = Some((r.timeline, r.last_log));
            }
        }
        (dirs, self.runs.len())
    }
}

#[cfg(test)]
mod index_tests {
    use super::*;

    fn seg(t: u32, l: u32, s: u32) -> SegmentName {
        SegmentName {
            timeline: t,
            log: l,
            seg: s,
        }
    }

    #[test]
    fn runs_merge_in_any_order() {
        let mut i = WalIndex::default();
        for s in [1, 2, 3, 7, 5, 6, 9, 4, 3] {
            i.insert(seg(1, 0, s), f64::from(s));
        }
        assert_eq!(i.size(), (1, 2));
        assert_eq!(i.segno_runs(1, DEFAULT_SEGMENT_SIZE), vec![(1, 7, 7.0), (9, 9, 9.0)]);
        assert!(i.contains(seg(1, 0, 4)) && !i.contains(seg(1, 0, 8)) && !i.contains(seg(2, 0, 4)));
        assert_eq!(i.newest_on(1), Some(seg(1, 0, 9)));
    }

    #[test]
    fn runs_join_across_log_boundaries_in_segno_terms() {
        let mut i = WalIndex::default();
        i.insert(seg(2, 0, 254), 1.0);
        i.insert(seg(2, 0, 255), 2.0);
        i.insert(seg(2, 1, 0), 3.0);
        i.insert(seg(1, 0, 3), 0.5);
        assert_eq!(i.segno_runs(2, DEFAULT_SEGMENT_SIZE), vec![(254, 256, 3.0)]);
        assert_eq!(i.newest_timeline(), Some(2));
        // with 64 MiB segments, seg 0 of log 1 is segno 64
        let mut j = WalIndex::default();
        j.insert(seg(1, 0, 63), 1.0);
        j.insert(seg(1, 1, 0), 2.0);
        assert_eq!(j.segno_runs(1, 64 << 20), vec![(63, 64, 2.0)]);
    }

    /// Every segment of `logs` full directories (00..=FF) on timeline 1,
    /// LastModified = the segment's number.
    fn full_dirs(logs: std::ops::Range<u32>) -> Vec<(SegmentName, f64)> {
        logs.flat_map(|l| (0..=FULL_END).map(move |s| (seg(1, l, s), f64::from(l * 256 + s))))
            .collect()
    }

    #[test]
    fn consecutive_full_directories_are_one_entry() {
        let mut i = WalIndex::default();
        for (name, m) in full_dirs(0..1000) {
            i.insert(name, m);
        }
        assert_eq!(i.size(), (1000, 1));
        let newest = f64::from(999 * 256 + 255);
        assert_eq!(i.segno_runs(1, DEFAULT_SEGMENT_SIZE), vec![(0, 1000 * 256 - 1, newest)]);
        assert!(i.contains(seg(1, 500, 0)) && i.contains(seg(1, 999, 255)));
        assert!(!i.contains(seg(1, 1000, 0)) && !i.contains(seg(1, 500, 256)) && !i.contains(seg(2, 5, 5)));
        assert_eq!(i.newest_on(1), Some(seg(1, 999, 255)));
        // A segment past FF in a coalesced directory splits it out.
        i.insert(seg(1, 500, 256), 1.0);
        assert_eq!(i.size(), (1000, 3));
        assert!(i.contains(seg(1, 500, 256)) && i.contains(seg(1, 501, 3)));
        // A gap splits too; filling it coalesces again.
        let mut j = WalIndex::default();
        for (name, m) in full_dirs(0..10).into_iter().filter(|(n, _)| *n != seg(1, 4, 7)) {
            j.insert(name, m);
        }
        assert_eq!(j.size(), (10, 4));
        assert_eq!(j.segno_runs(1, DEFAULT_SEGMENT_SIZE).len(), 2);
        j.insert(seg(1, 4, 7), f64::from(4 * 256 + 7));
        assert_eq!(j.size(), (10, 1));
        // With 64 MiB segments (64 a log), full 00..=FF directories are not
        // adjacent: one range per directory, with the entry's newest time.
        assert_eq!(
            j.segno_runs(1, 64 << 20)[..2],
            [
                (0, 255, f64::from(9 * 256 + 255)),
                (64, 64 + 255, f64::from(9 * 256 + 255))
            ]
        );
    }

    /// The same segments give the same index (and the same answers as a
    /// plain set of names) whatever the order of inserts and merges: the
    /// walk compares indexes built from differently grouped directories.
    #[test]
    fn the_index_is_canonical_and_exact() {
        let mut rng = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        for _ in 0..40 {
            // Mostly full directories, with a few gaps and strays.
            let mut names: Vec<(SegmentName, f64)> = full_dirs(0..12)
                .into_iter()
                .filter(|_| next(200) != 0)
                .map(|(n, _)| (n, 0.0))
                .collect();
            for _ in 0..next(4) {
                names.push((seg(1 + next(2) as u32, next(14) as u32, next(300) as u32), 0.0));
            }
            for (k, n) in names.iter_mut().enumerate() {
                n.1 = (k % 97) as f64;
            }
            let mut sorted = names.clone();
            sorted.sort_by_key(|(n, _)| (n.timeline, n.log, n.seg));
            let mut a = WalIndex::default();
            for &(n, m) in &sorted {
                a.insert(n, m);
            }
            // Shuffled inserts.
            let mut shuffled = names.clone();
            for k in (1..shuffled.len()).rev() {
                shuffled.swap(k, next(k as u64 + 1) as usize);
            }
            let mut b = WalIndex::default();
            for &(n, m) in &shuffled {
                b.insert(n, m);
            }
            // Per-directory indexes merged in order, in random groups.
            let mut c = WalIndex::default();
            let mut group = WalIndex::default();
            let mut dir = None;
            for &(n, m) in &sorted {
                if dir != Some((n.timeline, n.log)) && next(3) == 0 {
                    c.merge(&std::mem::take(&mut group));
                }
                dir = Some((n.timeline, n.log));
                group.insert(n, m);
            }
            c.merge(&group);
            assert_eq!(a, b);
            assert_eq!(a, c);
            // Exact against the set of names (16 MiB segments).
            let set: std::collections::BTreeMap<(u32, u64), f64> = sorted
                .iter()
                .filter(|(n, _)| n.seg <= FULL_END)
                .fold(Default::default(), |mut m, (n, t)| {
                    let e = m.entry((n.timeline, n.segno(DEFAULT_SEGMENT_SIZE))).or_insert(*t);
                    *e = e.max(*t);
                    m
                });
            for tli in 1..=2 {
                let mut want: Vec<(u64, u64, f64)> = Vec::new();
                for (&(_, s), &t) in set.range((tli, 0)..(tli + 1, 0)) {
                    match want.last_mut() {
                        Some(l) if l.1 + 1 == s => {
                            l.1 = s;
                            l.2 = l.2.max(t);
                        }
                        _ => want.push((s, s, t)),
                    }
                }
                if sorted.iter().all(|(n, _)| n.timeline != tli || n.seg <= FULL_END) {
                    assert_eq!(a.segno_runs(tli, DEFAULT_SEGMENT_SIZE), want);
                }
            }
            for (n, _) in &sorted {
                assert!(a.contains(*n));
            }
            for _ in 0..200 {
                let probe = seg(1 + next(2) as u32, next(14) as u32, next(300) as u32);
                assert_eq!(a.contains(probe), sorted.iter().any(|(n, _)| *n == probe));
            }
        }
    }
}
