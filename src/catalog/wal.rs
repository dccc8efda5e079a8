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
    pub fn end_lsn(&self, segment_size: u64) -> u64 {
        (self.segno(segment_size) + 1) * segment_size
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
}
