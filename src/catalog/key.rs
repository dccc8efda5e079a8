//! Classification of object keys under a barman-cloud server root.
//!
//! The rules are barman 3.19.1's (`barman/cloud.py::CloudBackupCatalog`,
//! `barman/xlog.py`), summarised in `barman-cloud-layout.md` §3:
//!
//! * under `wals/`, barman takes the key's basename; if it matches the xlog
//!   regex it is that file, otherwise exactly one compression suffix from
//!   `ALLOWED_COMPRESSIONS` is stripped and the rest must match. The directory
//!   depth is not checked. Everything else is ignored by barman (we count it as
//!   [`WalKind::Other`]).
//! * under `base/<backup_id>/`, `backup.info` describes the backup and every
//!   other object belongs to it (tars, `backup_label`, `annotations/keep`).

use super::wal::SegmentName;

/// Compression suffixes barman-cloud writes and reads (`cloud.py::ALLOWED_COMPRESSIONS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    /// `.gz`
    Gzip,
    /// `.bz2`
    Bzip2,
    /// `.xz`
    Xz,
    /// `.snappy`
    Snappy,
    /// `.zst`
    Zstd,
    /// `.lz4`
    Lz4,
}

impl Compression {
    /// Maps a suffix without the dot (`gz`, `bz2`, ...) to a compression.
    pub fn from_suffix(suffix: &str) -> Option<Self> {
        Some(match suffix {
            "gz" => Self::Gzip,
            "bz2" => Self::Bzip2,
            "xz" => Self::Xz,
            "snappy" => Self::Snappy,
            "zst" => Self::Zstd,
            "lz4" => Self::Lz4,
            _ => return None,
        })
    }
}

/// What kind of object a key under `wals/` is; the `kind` label of the WAL metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WalKind {
    /// A full WAL segment (`<24 hex>`), barman `xlog.is_wal_file`.
    Segment,
    /// The unfinished last segment of a timeline (`<24 hex>.partial`).
    Partial,
    /// A backup label file (`<24 hex>.<8 hex>.backup`).
    BackupLabel,
    /// A timeline history file (`<8 hex>.history`).
    History,
    /// Anything barman would ignore.
    Other,
}

impl WalKind {
    /// All kinds, in label order.
    pub const ALL: [WalKind; 5] = [
        WalKind::Segment,
        WalKind::Partial,
        WalKind::BackupLabel,
        WalKind::History,
        WalKind::Other,
    ];

    /// The value of the `kind` label.
    pub fn as_str(self) -> &'static str {
        match self {
            WalKind::Segment => "segment",
            WalKind::Partial => "partial",
            WalKind::BackupLabel => "backup_label",
            WalKind::History => "history",
            WalKind::Other => "other",
        }
    }

    /// Index into arrays ordered like [`WalKind::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// A classified key under `wals/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalFile {
    /// The kind of WAL object.
    pub kind: WalKind,
    /// The segment the name refers to (segments, partials and backup labels).
    pub segment: Option<SegmentName>,
    /// The timeline (history files: the new timeline the file describes).
    pub timeline: Option<u32>,
    /// The compression suffix, if any.
    pub compression: Option<Compression>,
}

impl WalFile {
    const OTHER: WalFile = WalFile {
        kind: WalKind::Other,
        segment: None,
        timeline: None,
        compression: None,
    };
}

/// Classifies a key below `<server root>/wals/`; `rest` is the part after
/// `wals/` (e.g. `0000000100000000/000000010000000000000006.gz`).
pub fn classify_wal(rest: &str) -> WalFile {
    let basename = rest.rsplit('/').next().unwrap_or(rest);
    if let Some(f) = parse_xlog_name(basename) {
        return f;
    }
    // Allow exactly one compression suffix (`os.path.splitext`).
    if let Some((stem, suffix)) = basename.rsplit_once('.')
        && let Some(c) = Compression::from_suffix(suffix)
        && let Some(mut f) = parse_xlog_name(stem)
    {
        f.compression = Some(c);
        return f;
    }
    WalFile::OTHER
}

/// barman's `_xlog_re` on a bare name:
/// `^([0-9A-Fa-f]{8})(?:([0-9A-Fa-f]{8})([0-9A-Fa-f]{8})(?:\.[0-9A-Fa-f]{8}\.backup|\.partial)?|\.history)$`
fn parse_xlog_name(name: &str) -> Option<WalFile> {
    let hex = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit());
    if let Some(tli) = name.strip_suffix(".history") {
        if tli.len() == 8 && hex(tli) {
            return Some(WalFile {
                kind: WalKind::History,
                segment: None,
                timeline: u32::from_str_radix(tli, 16).ok(),
                compression: None,
            });
        }
        return None;
    }
    if name.len() < 24 || !name.is_char_boundary(24) {
        return None;
    }
    let (base, suffix) = name.split_at(24);
    let segment = SegmentName::parse(base)?;
    let kind = match suffix {
        "" => WalKind::Segment,
        ".partial" => WalKind::Partial,
        s => {
            let offset = s.strip_prefix('.')?.strip_suffix(".backup")?;
            if offset.len() != 8 || !hex(offset) {
                return None;
            }
            WalKind::BackupLabel
        }
    };
    Some(WalFile {
        kind,
        segment: Some(segment),
        timeline: Some(segment.timeline),
        compression: None,
    })
}

/// What an object under `base/` is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseObject<'a> {
    /// `base/<id>/backup.info`.
    BackupInfo {
        /// The backup id (directory name).
        id: &'a str,
    },
    /// Any other object in a backup directory (tars, `backup_label`, annotations).
    BackupFile {
        /// The backup id (directory name).
        id: &'a str,
    },
    /// An object directly under `base/` (not inside a backup directory).
    Loose,
}

/// Classifies a key below `<server root>/base/`; `rest` is the part after `base/`.
pub fn classify_base(rest: &str) -> BaseObject<'_> {
    match rest.split_once('/') {
        Some((id, "backup.info")) if !id.is_empty() => BaseObject::BackupInfo { id },
        Some((id, _)) if !id.is_empty() => BaseObject::BackupFile { id },
        _ => BaseObject::Loose,
    }
}

/// Whether a file name inside `base/<id>/` is one of the tars barman deletes
/// with the backup (`cloud.py::get_backup_files`, layout doc §3):
/// `^(data|\d+)(_\d{4,})?\.tar(\.(gz|bz2|snappy|lz4))?$`.
pub fn is_backup_tar(name: &str) -> bool {
    let name = ["", ".gz", ".bz2", ".snappy", ".lz4"]
        .iter()
        .find_map(|c| name.strip_suffix(c).and_then(|n| n.strip_suffix(".tar")))
        .filter(|n| !n.is_empty());
    let Some(stem) = name else { return false };
    let (base, part) = match stem.split_once('_') {
        Some((b, p)) => (b, Some(p)),
        None => (stem, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    (base == "data" || digits(base)) && part.is_none_or(|p| p.len() >= 4 && digits(p))
}

/// The `(timeline, log)` of a `wals/<TLI><LOG>/...` key (`rest` after `wals/`),
/// as barman's `xlog.decode_hash_dir`; `None` at the `wals/` root or for a
/// malformed directory name.
pub fn wal_dir(rest: &str) -> Option<(u32, u32)> {
    let (dir, _) = rest.split_once('/')?;
    if dir.len() != 16 || !dir.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((
        u32::from_str_radix(&dir[..8], 16).ok()?,
        u32::from_str_radix(&dir[8..], 16).ok()?,
    ))
}

/// The bare WAL name of a key under `wals/` (basename without a compression
/// suffix, uppercased), as PostgreSQL names it in `pg_stat_archiver`.
pub fn bare_wal_name(rest: &str, file: &WalFile) -> String {
    let base = rest.rsplit('/').next().unwrap_or(rest);
    let base = if file.compression.is_some() {
        base.rsplit_once('.').map_or(base, |(b, _)| b)
    } else {
        base
    };
    // Hex parts (name, backup offset) in uppercase; `partial`, `backup`, `history` as they are.
    base.split('.')
        .map(|p| {
            if p.bytes().all(|b| b.is_ascii_hexdigit()) {
                p.to_ascii_uppercase()
            } else {
                p.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_every_wal_kind_with_and_without_compression() {
        let f = classify_wal("0000000100000000/000000010000000000000006");
        assert_eq!(f.kind, WalKind::Segment);
        assert_eq!(f.segment.unwrap().seg, 6);
        assert_eq!(f.compression, None);

        let f = classify_wal("0000000100000000/000000010000000000000006.gz");
        assert_eq!((f.kind, f.compression), (WalKind::Segment, Some(Compression::Gzip)));

        for (key, kind) in [
            ("0000000100000000/000000010000000000000007.partial.gz", WalKind::Partial),
            ("0000000100000000/000000010000000000000007.partial", WalKind::Partial),
            (
                "0000000100000000/000000010000000000000006.00000028.backup.bz2",
                WalKind::BackupLabel,
            ),
            ("00000002.history.gz", WalKind::History),
            ("00000002.history", WalKind::History),
            ("0000000100000000/000000010000000000000006.zst", WalKind::Segment),
            ("0000000100000000/000000010000000000000006.snappy", WalKind::Segment),
            ("0000000100000000/000000010000000000000006.lz4", WalKind::Segment),
            ("0000000100000000/000000010000000000000006.xz", WalKind::Segment),
            // lowercase hex is accepted by barman's regex
            ("0000000100000000/0000000a000000000000000f.gz", WalKind::Segment),
        ] {
            assert_eq!(classify_wal(key).kind, kind, "{key}");
        }
        assert_eq!(classify_wal("00000002.history.gz").timeline, Some(2));
    }

    #[test]
    fn junk_is_other() {
        for key in [
            "0000000100000000/000000010000000000000006.gz.gz",
            "0000000100000000/000000010000000000000006.tmp",
            "0000000100000000/00000001000000000000006",
            "0000000100000000/000000010000000000000006.partial.backup",
            "0000000100000000/000000010000000000000006.0000028.backup",
            "0000000100000000/",
            "README",
            "0000000G.history",
            "0000000100000000/0000000100000000000000€6",
            "",
        ] {
            assert_eq!(classify_wal(key).kind, WalKind::Other, "{key}");
        }
    }

    #[test]
    fn classifies_base_objects() {
        assert_eq!(
            classify_base("20251126T091549/backup.info"),
            BaseObject::BackupInfo { id: "20251126T091549" }
        );
        assert_eq!(
            classify_base("20251126T091549/data.tar.gz"),
            BaseObject::BackupFile { id: "20251126T091549" }
        );
        assert_eq!(
            classify_base("20251126T091549/annotations/keep"),
            BaseObject::BackupFile { id: "20251126T091549" }
        );
        assert_eq!(classify_base("stray"), BaseObject::Loose);
        for tar in [
            "data.tar",
            "data.tar.gz",
            "16385.tar.bz2",
            "data_0001.tar.lz4",
            "16385_0002.tar.snappy",
        ] {
            assert!(is_backup_tar(tar), "{tar}");
        }
        for other in [
            "backup.info",
            "data.tar.xz",
            "data_01.tar",
            "x.tar",
            ".tar",
            "backup_label",
            "annotations/keep",
        ] {
            assert!(!is_backup_tar(other), "{other}");
        }
        assert_eq!(wal_dir("0000000100000002/x"), Some((1, 2)));
        assert_eq!(wal_dir("00000002.history.gz"), None);
        assert_eq!(wal_dir("junk/x"), None);
        let rest = "0000000100000000/0000000a0000000000000004.00000028.backup.gz";
        assert_eq!(
            bare_wal_name(rest, &classify_wal(rest)),
            "0000000A0000000000000004.00000028.backup"
        );
    }
}
