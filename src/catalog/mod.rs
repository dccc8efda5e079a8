//! Pure barman-cloud knowledge: what the objects in a bucket mean. No I/O.
//!
//! The S3 source fills a [`TargetCatalog`] while it streams listings (one
//! [`ServerCatalog`] per server prefix, aggregating WAL objects as they pass so
//! memory does not grow with the number of objects); [`analysis`] turns it into
//! the numbers the exporter publishes.

pub mod analysis;
pub mod backup_info;
pub mod key;
pub mod wal;

use backup_info::BackupInfo;
use key::{WalFile, WalKind};
use wal::SegmentName;

/// What is known about one `base/<backup_id>/` directory that holds at least
/// one object. (Directories some S3 servers keep listing after every object in
/// them was deleted are not listed recursively and so never appear here.)
#[derive(Debug, Clone)]
pub struct BackupDir {
    /// The directory name, normally the backup id `%Y%m%dT%H%M%S`.
    pub id: String,
    /// Number of objects under the directory (tars, `backup.info`, annotations...).
    pub objects: u64,
    /// Sum of their sizes in bytes.
    pub bytes: u64,
    /// The parsed `backup.info`, or why there is none.
    pub info: BackupInfoState,
}

/// The state of a backup directory's `backup.info`.
#[derive(Debug, Clone)]
pub enum BackupInfoState {
    /// Parsed successfully.
    Parsed(Box<BackupInfo>),
    /// The directory has objects but no `backup.info` (barman skips such a
    /// directory silently; the exporter counts it as unreadable).
    Missing,
    /// `backup.info` exists but could not be fetched or parsed; the reason.
    Unreadable(String),
    /// The directory has a `backup.info` that has not been fetched yet.
    Pending,
}

/// Object count and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    /// Number of objects.
    pub objects: u64,
    /// Sum of their sizes in bytes.
    pub bytes: u64,
}

impl Usage {
    /// Adds one object of `bytes` bytes.
    pub fn add(&mut self, bytes: u64) {
        self.objects += 1;
        self.bytes += bytes;
    }

    /// Adds another usage.
    pub fn merge(&mut self, other: Usage) {
        self.objects += other.objects;
        self.bytes += other.bytes;
    }
}

/// Streaming aggregates over every object under a server's `wals/`.
#[derive(Debug, Clone, Default)]
pub struct WalTotals {
    /// Usage per kind, indexed by [`WalKind::index`].
    pub by_kind: [Usage; 5],
    /// Newest `LastModified` among full WAL segments, Unix seconds.
    pub newest_segment_modified: Option<f64>,
    /// The highest full segment name seen.
    pub newest_segment: Option<SegmentName>,
}

impl WalTotals {
    /// Accounts one object; `rest` is its key after `<server>/wals/`, `size`
    /// in bytes, `last_modified` in Unix seconds.
    pub fn add(&mut self, rest: &str, size: u64, last_modified: Option<f64>) -> WalFile {
        let file = key::classify_wal(rest);
        self.by_kind[file.kind.index()].add(size);
        if file.kind == WalKind::Segment {
            if let Some(t) = last_modified {
                self.newest_segment_modified =
                    Some(self.newest_segment_modified.map_or(t, |n| n.max(t)));
            }
            if file.segment > self.newest_segment {
                self.newest_segment = file.segment;
            }
        }
        file
    }

    /// Total usage over all kinds.
    pub fn total(&self) -> Usage {
        let mut u = Usage::default();
        self.by_kind.iter().for_each(|k| u.merge(*k));
        u
    }
}

/// Everything listed for one server prefix (`<path>/<serverName>/`).
#[derive(Debug, Clone, Default)]
pub struct ServerCatalog {
    /// The serverName (the prefix's last component).
    pub name: String,
    /// Backup directories, sorted by id.
    pub backups: Vec<BackupDir>,
    /// Objects directly under `base/` that are not in a backup directory.
    pub base_loose: Usage,
    /// WAL aggregates.
    pub wal: WalTotals,
}

impl ServerCatalog {
    /// Usage of everything under `base/`.
    pub fn base_usage(&self) -> Usage {
        let mut u = self.base_loose;
        for b in &self.backups {
            u.merge(Usage {
                objects: b.objects,
                bytes: b.bytes,
            });
        }
        u
    }
}

/// Everything listed for one configured target (`destination_path`).
#[derive(Debug, Clone, Default)]
pub struct TargetCatalog {
    /// Server prefixes that hold a `base/` or `wals/` (barman servers), by name.
    pub servers: Vec<ServerCatalog>,
    /// Objects directly under the destination path, outside any server prefix.
    pub loose: Usage,
}
