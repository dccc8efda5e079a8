//! What every fuzz target asserts, one function per target. Each takes the raw
//! fuzz input, runs the exporter's parser on it and panics when an invariant
//! fails (a panic inside the parser is a crash too).
//!
//! Shared with `tests/fuzz_corpus.rs` (included there by `#[path]`), which runs
//! every kept corpus file and every fixed crash input through the same checks
//! on the stable toolchain.

use std::collections::{BTreeMap, BTreeSet};

use barman_cloud_exporter::catalog::WalTotals;
use barman_cloud_exporter::catalog::backup_info::{BackupInfo, BackupInfoError, MAX_BACKUP_INFO_BYTES};
use barman_cloud_exporter::catalog::compression::{Codec, DecompressError, decompress};
use barman_cloud_exporter::catalog::history;
use barman_cloud_exporter::catalog::key::{
    BaseObject, WalKind, bare_wal_name, classify_base, classify_wal, is_backup_tar, wal_dir,
};
use barman_cloud_exporter::catalog::retention::WalRules;
use barman_cloud_exporter::catalog::wal::{SegmentName, WalIndex, parse_lsn, segments_per_log};
use barman_cloud_exporter::config::Config;
use figment::Figment;
use figment::providers::{Format, Yaml};

/// A check: panics when the input breaks an invariant.
pub type Check = fn(&[u8]);

/// The fuzz targets, by name, as `cargo fuzz run <name>` knows them.
pub const TARGETS: [(&str, Check); 6] = [
    ("backup_info", backup_info),
    ("key", key),
    ("history", history),
    ("history_file", history_file),
    ("config", config),
    ("wal_arith", wal_arith),
];

/// `BackupInfo::parse` on arbitrary bytes: never panics; a parsed file has a
/// valid segment size, at most 32 unknown keys of at most 80 characters, WAL
/// names that round-trip, and WAL arithmetic that does not overflow; an error
/// names the problem with bounded excerpts.
pub fn backup_info(data: &[u8]) {
    match BackupInfo::parse(data) {
        Ok(info) => {
            assert!(data.len() as u64 <= MAX_BACKUP_INFO_BYTES);
            assert!(std::str::from_utf8(data).is_ok());
            let size = info.xlog_segment_size;
            assert!(size.is_power_of_two() && (1 << 20..=1 << 30).contains(&size), "{size}");
            assert!(info.unknown_keys.len() <= 32);
            assert!(info.unknown_keys.iter().all(|k| k.chars().count() <= 80));
            for wal in [info.begin_wal, info.end_wal].into_iter().flatten() {
                assert_eq!(SegmentName::parse(&wal.to_string()), Some(wal));
                // What the analysis computes from these names.
                let _ = wal.segno(size);
                let _ = wal.end_lsn(size);
            }
            for lsn in [info.begin_xlog, info.end_xlog].into_iter().flatten() {
                let seg = SegmentName::from_lsn(info.timeline.unwrap_or(1), lsn, size);
                assert!(seg.end_lsn(size) > lsn || seg.end_lsn(size) == u64::MAX);
            }
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            match e {
                BackupInfoError::TooLarge => assert!(data.len() as u64 > MAX_BACKUP_INFO_BYTES),
                BackupInfoError::NotUtf8 => assert!(std::str::from_utf8(data).is_err()),
                BackupInfoError::InvalidLine { line } => assert!(line >= 1),
                BackupInfoError::InvalidValue { key, value, .. } => {
                    assert!(key.chars().count() <= 80 && value.chars().count() <= 80);
                }
            }
        }
    }
}

/// The key classifiers on an arbitrary key (the part after `wals/` or
/// `base/`): never panic; every WAL kind carries what it promises and its bare
/// name is the canonical uppercase name; base ids are the first path element;
/// the streaming WAL accounting counts the object exactly once under its kind.
pub fn key(data: &[u8]) {
    let Ok(rest) = std::str::from_utf8(data) else {
        return;
    };
    let f = classify_wal(rest);
    let basename = rest.rsplit('/').next().unwrap_or(rest);
    match f.kind {
        WalKind::Segment | WalKind::Partial | WalKind::BackupLabel => {
            let seg = f.segment.expect("a segment kind has a segment");
            assert_eq!(f.timeline, Some(seg.timeline));
            let bare = bare_wal_name(rest, &f);
            assert!(bare.starts_with(&seg.to_string()), "{bare} vs {seg}");
            let tail = match f.kind {
                WalKind::Segment => "",
                WalKind::Partial => ".partial",
                _ => ".backup",
            };
            assert!(bare.ends_with(tail), "{bare}");
            if f.kind == WalKind::Segment {
                assert_eq!(bare, seg.to_string());
            }
        }
        WalKind::History => {
            let tli = f.timeline.expect("a history file has a timeline");
            assert!(f.segment.is_none());
            assert_eq!(bare_wal_name(rest, &f), format!("{tli:08X}.history"));
        }
        WalKind::Other => assert!(f.segment.is_none() && f.timeline.is_none() && f.compression.is_none()),
    }
    if f.compression.is_some() {
        let (_, suffix) = basename.rsplit_once('.').expect("a compressed name has a suffix");
        assert!(
            ["gz", "bz2", "xz", "snappy", "zst", "lz4"].contains(&suffix),
            "{suffix}"
        );
    }
    let mut totals = WalTotals::default();
    let again = totals.add(rest, 7, Some(1.0), &WalRules::default());
    assert_eq!(again, f);
    for (i, u) in totals.by_kind.iter().enumerate() {
        let expect = if i == f.kind.index() { (1, 7) } else { (0, 0) };
        assert_eq!((u.objects, u.bytes), expect);
    }
    if let Some((tli, log)) = wal_dir(rest) {
        assert!(rest[..16].eq_ignore_ascii_case(&format!("{tli:08X}{log:08X}")));
    }
    match classify_base(rest) {
        BaseObject::BackupInfo { id } => assert_eq!(rest, format!("{id}/backup.info")),
        BaseObject::BackupFile { id } => {
            assert!(!id.is_empty() && !id.contains('/') && rest.starts_with(&format!("{id}/")));
        }
        BaseObject::Loose => assert!(!rest.contains('/') || rest.starts_with('/')),
    }
    if is_backup_tar(basename) {
        assert!(basename.contains(".tar"));
    }
}

/// The `.history` parser on arbitrary text: never panics; a parse is never
/// empty, and a trailing comment line changes nothing.
pub fn history(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = history::parse(text);
    if let Some(entries) = &parsed {
        assert!(!entries.is_empty());
    }
    assert_eq!(history::parse(&format!("{text}\n# trailing comment\n")), parsed);
}

/// The key suffixes of `.history` objects, one per barman compression.
pub const HISTORY_SUFFIXES: [&str; 7] = ["", ".gz", ".bz2", ".xz", ".snappy", ".zst", ".lz4"];

/// A fetched `.history` object through the walk's own path
/// (`history::read`: decompression bounded to `MAX_HISTORY_BYTES`, then the
/// parser): byte 0 picks the key suffix ([`HISTORY_SUFFIXES`]), the rest is
/// the object's body. Never panics; what it returns is exactly what the
/// bounded decompression and the parser give, never more than the bound.
pub fn history_file(data: &[u8]) {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let key = format!(
        "00000002.history{}",
        HISTORY_SUFFIXES[usize::from(pick) % HISTORY_SUFFIXES.len()]
    );
    let codec = Codec::of_key(&key, "history").expect("every suffix is a barman codec");
    let read = history::read(&key, body);
    match decompress(codec, body, history::MAX_HISTORY_BYTES) {
        Ok(bytes) => {
            assert!(bytes.len() as u64 <= history::MAX_HISTORY_BYTES);
            let expect = std::str::from_utf8(&bytes).ok().and_then(history::parse);
            assert_eq!(read, expect);
        }
        Err(e) => {
            assert!(read.is_none(), "{key}: {e} yet parsed");
            if let DecompressError::TooLarge { limit } = e {
                assert_eq!(limit, history::MAX_HISTORY_BYTES);
            }
        }
    }
    if let Some(entries) = &read {
        assert!(!entries.is_empty());
    }
}

/// The config loader on an arbitrary YAML document: never panics; an accepted
/// config validates, has targets with a parsable destination, and non-zero
/// durations; a rejected one says why.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Config::from_figment(Figment::new().merge(Yaml::string(text))) {
        Ok(c) => {
            assert!(c.validate().is_ok());
            assert!(!c.targets.is_empty());
            assert!(!c.interval.is_zero() && !c.timeout.is_zero());
            let names: BTreeSet<&str> = c.targets.iter().map(|t| t.name.as_str()).collect();
            assert_eq!(names.len(), c.targets.len());
            for t in &c.targets {
                let (bucket, prefix) = t.bucket_and_prefix().expect("validated destination");
                assert!(!bucket.is_empty());
                assert!(prefix.is_empty() || prefix.ends_with('/'));
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

/// Segment/LSN arithmetic and the WAL index on structured input: byte 0
/// picks the segment size (1 MiB to 1 GiB), bytes 1–8 an LSN, 9–12 a
/// timeline; the rest is tried as a WAL name and an LSN string, and read as
/// `(timeline, log, seg)` triples inserted into a [`WalIndex`] that must agree
/// with a plain set.
pub fn wal_arith(data: &[u8]) {
    if data.len() < 13 {
        return;
    }
    let size = 1u64 << (20 + u32::from(data[0] % 11));
    let per = segments_per_log(size);
    assert_eq!(per, (1u64 << 32) / size);
    let lsn = u64::from_le_bytes(data[1..9].try_into().unwrap());
    let tli = u32::from_le_bytes(data[9..13].try_into().unwrap());
    let seg = SegmentName::from_lsn(tli, lsn, size);
    assert_eq!(seg.timeline, tli);
    assert_eq!(u64::from(seg.log), lsn >> 32);
    assert!(u64::from(seg.seg) < per);
    assert_eq!(seg.segno(size), lsn / size);
    assert_eq!(SegmentName::from_segno(tli, seg.segno(size), size), seg);
    assert_eq!(SegmentName::parse(&seg.to_string()), Some(seg));
    let end = seg.end_lsn(size);
    assert!(end > lsn || end == u64::MAX, "end {end} <= lsn {lsn}");
    assert_eq!(
        parse_lsn(&format!("{:X}/{:X}", lsn >> 32, lsn & 0xFFFF_FFFF)),
        Some(lsn)
    );

    let rest = &data[13..];
    if let Ok(s) = std::str::from_utf8(rest) {
        if let Some(n) = SegmentName::parse(s) {
            assert_eq!(n.to_string(), s.to_ascii_uppercase());
            let _ = n.end_lsn(size);
            let _ = n.hash_dir();
        }
        if let Some(l) = parse_lsn(s) {
            assert_eq!(parse_lsn(&format!("{:X}/{:X}", l >> 32, l & 0xFFFF_FFFF)), Some(l));
        }
    }

    // The run-length WAL index against a set, 16 MiB segments.
    const S16: u64 = 16 << 20;
    let mut index = WalIndex::default();
    let mut set: BTreeSet<(u32, u64)> = BTreeSet::new();
    for c in rest.chunks_exact(3) {
        let s = SegmentName {
            timeline: 1 + u32::from(c[0] % 3),
            log: u32::from(c[1] % 3),
            seg: u32::from(c[2]),
        };
        index.insert(s, f64::from(c[2]));
        set.insert((s.timeline, s.segno(S16)));
    }
    let mut dirs: BTreeMap<(u32, u32), Vec<u32>> = BTreeMap::new();
    for &(t, n) in &set {
        dirs.entry((t, (n / 256) as u32)).or_default().push((n % 256) as u32);
    }
    let runs_in_dirs: usize = dirs
        .values()
        .map(|segs| 1 + segs.windows(2).filter(|w| w[1] != w[0] + 1).count())
        .sum();
    assert_eq!(index.size(), (dirs.len(), runs_in_dirs));
    assert_eq!(index.newest_timeline(), set.iter().next_back().map(|(t, _)| *t));
    for t in 1..=3u32 {
        let on: Vec<u64> = set.iter().filter(|(x, _)| *x == t).map(|(_, n)| *n).collect();
        assert_eq!(index.newest_on(t).map(|s| s.segno(S16)), on.last().copied());
        let mut covered = Vec::new();
        let runs = index.segno_runs(t, S16);
        for w in runs.windows(2) {
            assert!(w[0].1 + 1 < w[1].0, "runs overlap or touch: {runs:?}");
        }
        for (a, b, _) in runs {
            assert!(a <= b);
            covered.extend(a..=b);
        }
        assert_eq!(covered, on);
        for seg in 0..=2u32 {
            for s in [0u32, 1, 127, 254, 255] {
                let name = SegmentName {
                    timeline: t,
                    log: seg,
                    seg: s,
                };
                assert_eq!(index.contains(name), set.contains(&(t, name.segno(S16))));
            }
        }
    }
}
