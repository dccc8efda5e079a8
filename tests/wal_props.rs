//! Property tests of the WAL segment/LSN arithmetic (`catalog::wal`) against a
//! reference written here from PostgreSQL's definitions (`xlog_internal.h`):
//!
//! * `XLogSegmentsPerXLogId(size) = 0x100000000 / size`;
//! * `XLByteToSeg(lsn) = lsn / size`;
//! * `XLogFileName = %08X%08X%08X` of `(tli, segno / per, segno % per)`;
//! * the segment after `segno` is `segno + 1`, across `log` boundaries.
//!
//! Every supported `wal_segment_size` (powers of two from 1 MiB to 1 GiB) is
//! covered; strategies are biased towards the edges (log boundaries, the last
//! segment of the 64-bit WAL space).

use std::collections::BTreeSet;

use barman_cloud_exporter::catalog::wal::{SegmentName, WalIndex, parse_lsn, segments_per_log};
use proptest::prelude::*;

/// Reference: segments per `log` value.
fn per(size: u64) -> u64 {
    0x1_0000_0000 / size
}

/// Reference: the 24-hex-digit name of `segno` on `tli`.
fn ref_name(tli: u32, segno: u64, size: u64) -> String {
    format!("{tli:08X}{:08X}{:08X}", segno / per(size), segno % per(size))
}

/// Reference: `(tli, segno)` of a name, from its three hex fields.
fn ref_parse(name: &str, size: u64) -> (u32, u64) {
    let field = |r: std::ops::Range<usize>| u64::from_str_radix(&name[r], 16).unwrap();
    (field(0..8) as u32, field(8..16) * per(size) + field(16..24))
}

/// Every supported segment size, in bytes.
fn size() -> impl Strategy<Value = u64> {
    (20u32..=30).prop_map(|shift| 1u64 << shift)
}

/// A segment number valid for `size` (its first LSN fits in 64 bits), with
/// the first, last, and log-boundary numbers over-represented.
fn segno(size: u64) -> impl Strategy<Value = u64> {
    let max = u64::MAX / size; // the last segment of the WAL space
    let per = per(size);
    prop_oneof![
        0..=max,
        Just(0),
        Just(max),
        (0..=max / per).prop_flat_map(move |log| prop_oneof![Just(log * per), Just(log * per + per - 1)]),
        (0..=1_000u64).prop_map(move |d| max - d),
    ]
}

fn sized_segno() -> impl Strategy<Value = (u64, u64)> {
    size().prop_flat_map(|s| (Just(s), segno(s)))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn segments_per_log_is_postgres_definition(size in size()) {
        prop_assert_eq!(segments_per_log(size), per(size));
    }

    #[test]
    fn name_segno_round_trip((size, n) in sized_segno(), tli in any::<u32>()) {
        let seg = SegmentName::from_segno(tli, n, size);
        prop_assert_eq!(seg.to_string(), ref_name(tli, n, size));
        prop_assert_eq!(seg.segno(size), n);
        let parsed = SegmentName::parse(&ref_name(tli, n, size)).unwrap();
        prop_assert_eq!(parsed, seg);
        prop_assert_eq!(ref_parse(&seg.to_string(), size), (tli, n));
        // barman's regex accepts lowercase hex: same segment.
        prop_assert_eq!(SegmentName::parse(&ref_name(tli, n, size).to_ascii_lowercase()), Some(seg));
        prop_assert_eq!(seg.hash_dir(), ref_name(tli, n, size)[..16].to_string());
    }

    #[test]
    fn lsn_to_segment_and_end((size, n) in sized_segno(), offset in any::<u64>(), tli in 1u32..=u32::MAX) {
        let lsn = n * size + offset % size; // any byte inside segment n
        let seg = SegmentName::from_lsn(tli, lsn, size);
        prop_assert_eq!(seg.to_string(), ref_name(tli, lsn / size, size));
        // The end of the segment is the next one's first byte; 2^64 for the
        // very last segment, which saturates at u64::MAX.
        let end = (u128::from(n) + 1) * u128::from(size);
        prop_assert_eq!(u128::from(seg.end_lsn(size)), end.min(u128::from(u64::MAX)));
        prop_assert!(u128::from(lsn) < end);
        let text = format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF);
        prop_assert_eq!(parse_lsn(&text), Some(lsn));
        prop_assert_eq!(parse_lsn(&text.to_ascii_lowercase()), Some(lsn));
    }

    #[test]
    fn next_and_previous_cross_log_boundaries((size, n) in sized_segno(), tli in any::<u32>()) {
        let seg = SegmentName::from_segno(tli, n, size);
        if n < u64::MAX / size {
            let next = SegmentName::from_segno(tli, seg.segno(size) + 1, size);
            prop_assert_eq!(next.to_string(), ref_name(tli, n + 1, size));
            if n % per(size) == per(size) - 1 {
                prop_assert_eq!((next.log, next.seg), (seg.log + 1, 0));
            } else {
                prop_assert_eq!((next.log, next.seg), (seg.log, seg.seg + 1));
            }
            prop_assert!(next > seg, "names order like segment numbers");
        }
        if n > 0 {
            let prev = SegmentName::from_segno(tli, seg.segno(size) - 1, size);
            prop_assert_eq!(prev.to_string(), ref_name(tli, n - 1, size));
            prop_assert!(prev < seg);
        }
    }

    #[test]
    fn counts_between_two_names(size in size(), a in any::<u64>(), b in any::<u64>(), tli in any::<u32>()) {
        // Two names in a window of a few logs, so runs cross log boundaries often.
        let window = per(size) * 4;
        let (a, b) = (a % window, b % window);
        let (lo, hi) = (a.min(b), a.max(b));
        let x = SegmentName::parse(&ref_name(tli, lo, size)).unwrap();
        let y = SegmentName::parse(&ref_name(tli, hi, size)).unwrap();
        prop_assert_eq!(y.segno(size) - x.segno(size), hi - lo);
        prop_assert_eq!(x <= y, ref_name(tli, lo, size) <= ref_name(tli, hi, size));
    }

    #[test]
    fn wal_index_runs_match_a_set(
        size in size(),
        picks in proptest::collection::vec((1u32..=3, 0u64..200), 0..300),
        base_log in 0u64..4,
    ) {
        // Segment numbers around a log boundary of this size.
        let per = per(size);
        let origin = base_log * per + per.saturating_sub(100);
        let mut index = WalIndex::default();
        let mut set = BTreeSet::new();
        for (tli, d) in picks {
            let n = origin + d;
            index.insert(SegmentName::parse(&ref_name(tli, n, size)).unwrap(), d as f64);
            set.insert((tli, n));
        }
        for tli in 1..=3u32 {
            let want: Vec<u64> = set.iter().filter(|(t, _)| *t == tli).map(|(_, n)| *n).collect();
            let runs = index.segno_runs(tli, size);
            let mut got = Vec::new();
            for (i, (a, b, modified)) in runs.iter().enumerate() {
                prop_assert!(a <= b);
                if i > 0 {
                    prop_assert!(runs[i - 1].1 + 1 < *a, "runs must be maximal: {:?}", runs);
                }
                // newest LastModified of the run is the largest d inside it
                prop_assert_eq!(*modified, (*b - origin) as f64);
                got.extend(*a..=*b);
            }
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(index.newest_on(tli).map(|s| s.segno(size)), want.last().copied());
            for n in origin..origin + 200 {
                let name = SegmentName::parse(&ref_name(tli, n, size)).unwrap();
                prop_assert_eq!(index.contains(name), set.contains(&(tli, n)));
            }
        }
    }
}

#[test]
fn the_last_segment_of_the_wal_space_has_a_saturated_end() {
    for shift in 20..=30 {
        let size = 1u64 << shift;
        let last = SegmentName::from_lsn(1, u64::MAX, size);
        assert_eq!(last.to_string(), ref_name(1, u64::MAX / size, size));
        assert_eq!(last.end_lsn(size), u64::MAX, "size {size}");
    }
}
