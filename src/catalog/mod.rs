//! Pure barman-cloud knowledge: what the objects in a bucket mean. No I/O.
//!
//! The S3 source fills a [`TargetCatalog`] while it streams listings (one
//! [`ServerCatalog`] per server prefix, aggregating WAL objects as they pass so
//! memory does not grow with the number of objects); [`analysis`] turns it into
//! the numbers the exporter publishes.

pub mod analysis;
pub mod archiver;
pub mod backup_info;
pub mod compression;
pub mod continuity;
pub mod history;
pub mod key;
pub mod listing;
pub mod payload;
pub mod retention;
pub mod wal;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use backup_info::BackupInfo;
use history::HistoryEntry;
use key::{WalFile, WalKind};
use retention::{BackupMeta, Bucket, Keep, Leftover, Removal, WalRules};
use wal::{SegmentName, WalIndex};

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
    /// Bytes of the objects barman deletes with the backup (its tars and
    /// `backup.info`; annotations and unrecognised files stay).
    pub barman_bytes: u64,
    /// The `annotations/keep` annotation, if any.
    pub keep: Option<Keep>,
    /// The parsed `backup.info`, or why there is none.
    pub info: BackupInfoState,
    /// The backup's tars as listed (a handful per backup), for
    /// [`payload::check`].
    pub tars: Vec<payload::TarObject>,
}

/// The state of a backup directory's `backup.info`.
#[derive(Debug, Clone)]
pub enum BackupInfoState {
    /// Parsed successfully; shared by the walk's cache, the catalog and the
    /// analysis (one copy of each backup's facts however often it is held).
    Parsed(Arc<BackupInfo>),
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
    /// Number of objects.
    pub fn objects(&self) -> u64 {
        self.objects
    }

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

/// Which WAL files exist: full segments as runs, and the bare names of the few
/// `.partial`, `.backup` and `.history` objects (a handful per timeline and
/// backup).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WalNames {
    /// Full segments.
    pub index: WalIndex,
    /// Bare names of `.partial`, `.backup` and `.history` objects.
    pub other: BTreeSet<String>,
}

impl WalNames {
    /// Whether a WAL file named as PostgreSQL names it
    /// (`pg_stat_archiver.last_archived_wal`) is in the archive.
    pub fn contains(&self, name: &str) -> bool {
        match SegmentName::parse(name) {
            Some(seg) => self.index.contains(seg),
            None => self.other.contains(name),
        }
    }
}

/// The directory being listed and the bare names removable by name in it,
/// with their sizes in bytes ([`WalTotals`]).
type ByName = (Option<String>, BTreeMap<String, u64>);

/// Streaming aggregates over every object under a server's `wals/`. Memory
/// grows with directories, gaps, timelines and backups, never with segments.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WalTotals {
    /// Usage per kind, indexed by [`WalKind::index`].
    pub by_kind: [Usage; 5],
    /// Newest `LastModified` among full WAL segments, Unix seconds.
    pub newest_segment_modified: Option<f64>,
    /// The highest full segment name seen.
    pub newest_segment: Option<SegmentName>,
    /// Which WAL files exist, by name.
    pub names: WalNames,
    /// `.history` keys (after `wals/`) by timeline, fetched after the listing.
    pub history_keys: BTreeMap<u32, String>,
    /// WAL objects older than the oldest DONE backup needs whose reason the
    /// catalog alone gives, per [`retention::LeftoverReason::index`] (the
    /// `unprotected` and `awaiting_next_deletion` slots stay 0 here: see
    /// [`ServerCatalog::leftovers`]).
    pub leftovers: [Usage; 5],
    /// The other such objects, per [`Bucket`], for [`WalRules::resolve`].
    pub unkept: BTreeMap<Bucket, Usage>,
    /// Label files (`.backup`) among the leftovers that belong to no backup in
    /// the catalog: bare name → key after `wals/`, the [`MAX_FOREIGN_LABELS`]
    /// highest names only.
    pub foreign_labels: BTreeMap<String, String>,
    /// WAL objects the simulated `barman-cloud-backup-delete` would remove.
    pub reclaimable: Usage,
    /// WAL objects in a storage class that must be restored before they can
    /// be read ([`needs_restore`]); counted by the walk from the listing.
    pub archive_tier: Usage,
    /// Bare names removable by name in the directory being listed, with the
    /// size counted for them (barman removes one path per bare name). Cleared
    /// at each new directory, so it is bounded by one directory's size; boxed
    /// (and `None` until needed) so that the aggregates every remembered WAL
    /// directory keeps stay small.
    by_name: Option<Box<ByName>>,
}

impl WalTotals {
    /// Accounts one object; `rest` is its key after `<server>/wals/`, `size`
    /// in bytes, `last_modified` in Unix seconds; `rules` come from the
    /// server's backups ([`WalRules::plan`]).
    pub fn add(&mut self, rest: &str, size: u64, last_modified: Option<f64>, rules: &WalRules) -> WalFile {
        let file = key::classify_wal(rest);
        self.by_kind[file.kind.index()].add(size);
        match (file.kind, file.segment) {
            (WalKind::Segment, Some(seg)) => {
                let t = last_modified.unwrap_or(0.0);
                self.newest_segment_modified = Some(self.newest_segment_modified.map_or(t, |n| n.max(t)));
                if file.segment > self.newest_segment {
                    self.newest_segment = file.segment;
                }
                self.names.index.insert(seg, t);
            }
            (WalKind::Partial | WalKind::BackupLabel | WalKind::History, _) => {
                self.names.other.insert(key::bare_wal_name(rest, &file));
                if let (WalKind::History, Some(tli)) = (file.kind, file.timeline) {
                    self.history_keys.insert(tli, rest.to_string());
                }
            }
            _ => {}
        }
        match rules.leftover(&file) {
            Some(Leftover::Reason(r)) => self.leftovers[r.index()].add(size),
            Some(Leftover::Unkept(b)) => {
                self.unkept.entry(b).or_default().add(size);
                let bare = key::bare_wal_name(rest, &file);
                if file.kind == WalKind::BackupLabel && rules.is_foreign_label(&bare) {
                    self.foreign_labels.insert(bare, rest.to_string());
                    trim_labels(&mut self.foreign_labels);
                }
            }
            None => {}
        }
        match rules.removal(&file, key::wal_dir(rest)) {
            Some(Removal::Prefix) => self.reclaimable.add(size),
            Some(Removal::ByName) => {
                let dir = rest.rsplit_once('/').map(|(d, _)| d.to_string());
                let by_name = self.by_name.get_or_insert_with(Default::default);
                if by_name.0 != dir {
                    **by_name = (dir, BTreeMap::new());
                }
                // The later path of the same bare name replaces the earlier one.
                match by_name.1.insert(key::bare_wal_name(rest, &file), size) {
                    Some(earlier) => self.reclaimable.bytes = self.reclaimable.bytes - earlier + size,
                    None => self.reclaimable.add(size),
                }
            }
            None => {}
        }
        file
    }
}

impl WalTotals {
    /// Drops what only the listing of a directory needs (the names removable
    /// by name in it), once its last object was accounted: a remembered
    /// directory keeps only its aggregates.
    pub fn finish_directory(&mut self) {
        self.by_name = None;
    }

    /// Whether both describe the same objects (counts and bytes per kind, the
    /// same WAL names with the same newest `LastModified`), whatever the
    /// retention rules they were accounted with.
    pub fn same_objects(&self, other: &WalTotals) -> bool {
        self.by_kind == other.by_kind
            && self.archive_tier == other.archive_tier
            && self.names == other.names
            && self.newest_segment_modified == other.newest_segment_modified
    }

    /// Adds the aggregates of another, disjoint set of objects (another
    /// directory's listing) to these. The result equals accounting both sets'
    /// objects into one [`WalTotals`] with the same rules, because the
    /// one-path-per-bare-name rule only ever applies inside one directory.
    pub fn merge(&mut self, other: &WalTotals) {
        for (a, b) in self.by_kind.iter_mut().zip(&other.by_kind) {
            a.merge(*b);
        }
        self.newest_segment_modified = match (self.newest_segment_modified, other.newest_segment_modified) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.newest_segment = self.newest_segment.max(other.newest_segment);
        self.names.index.merge(&other.names.index);
        self.names.other.extend(other.names.other.iter().cloned());
        for (tli, key) in &other.history_keys {
            self.history_keys.entry(*tli).or_insert_with(|| key.clone());
        }
        for (a, b) in self.leftovers.iter_mut().zip(&other.leftovers) {
            a.merge(*b);
        }
        for (b, u) in &other.unkept {
            self.unkept.entry(*b).or_default().merge(*u);
        }
        self.foreign_labels
            .extend(other.foreign_labels.iter().map(|(k, v)| (k.clone(), v.clone())));
        trim_labels(&mut self.foreign_labels);
        self.reclaimable.merge(other.reclaimable);
        self.archive_tier.merge(other.archive_tier);
    }
}

/// How many foreign label files a server remembers (the highest names): the
/// walk reads them, newest first, to find the newest deleted backup.
pub const MAX_FOREIGN_LABELS: usize = 16;

/// Keeps the [`MAX_FOREIGN_LABELS`] highest names.
fn trim_labels(labels: &mut BTreeMap<String, String>) {
    while labels.len() > MAX_FOREIGN_LABELS {
        labels.pop_first();
    }
}

/// Whether an object listed with `storage_class` must be restored (a
/// `RestoreObject` request, hours) before a GET can read it: S3's `GLACIER`
/// (Flexible Retrieval) and `DEEP_ARCHIVE`, where a GET answers
/// `InvalidObjectState` (AWS S3 user guide, "Working with archived
/// objects"). `GLACIER_IR` (Instant Retrieval) and every other class read
/// directly. `INTELLIGENT_TIERING` objects in its opt-in archive tiers are
/// listed as `INTELLIGENT_TIERING` and not seen here (only `HeadObject`'s
/// `x-amz-archive-status` tells). barman-cloud-restore and
/// barman-cloud-wal-restore read with plain GETs, so such objects break a
/// restore until restored.
///
/// On Azure the listing's `AccessTier` is the class: `Archive` blobs must be
/// rehydrated (hours) before a read (a GET answers 409 `BlobArchived`;
/// Azure docs, "Blob rehydration from the archive tier"); `Hot`, `Cool` and
/// `Cold` read directly. GCS classes (`NEARLINE`, `COLDLINE`, `ARCHIVE`) all
/// read directly.
pub fn needs_restore(storage_class: Option<&str>) -> bool {
    matches!(storage_class, Some("GLACIER" | "DEEP_ARCHIVE" | "Archive"))
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
    /// Objects under `base/` in a storage class that must be restored before
    /// it can be read ([`needs_restore`]).
    pub base_archive_tier: Usage,
    /// WAL aggregates.
    pub wal: WalTotals,
    /// Parsed `.history` files by timeline.
    pub histories: BTreeMap<u32, Vec<HistoryEntry>>,
    /// `.history` files that could not be read or parsed.
    pub histories_unreadable: u64,
    /// Retention rules and figures planned from the backups.
    pub rules: WalRules,
    /// `begin_wal` of the newest backup deleted from `base/` whose barman
    /// label file is still under `wals/` (found by the walk from
    /// [`WalTotals::foreign_labels`]); `None` when there is none.
    pub last_deleted: Option<SegmentName>,
}

impl BackupDir {
    /// What `barman-cloud-restore` would miss in this backup's payload
    /// ([`payload::check`] with the tablespaces of its `backup.info`); empty
    /// without a parsed `backup.info`. A `tablespaces` value that does not
    /// parse is checked as if it listed none.
    pub fn payload_problems(&self) -> Vec<payload::Problem> {
        let BackupInfoState::Parsed(info) = &self.info else {
            return Vec::new();
        };
        let oids = info
            .tablespaces
            .as_deref()
            .and_then(payload::tablespace_oids)
            .unwrap_or_default();
        payload::check(&self.tars, &oids)
    }

    /// What retention needs of this backup; `None` without a readable `backup.info`.
    pub fn retention_meta(&self) -> Option<BackupMeta> {
        let BackupInfoState::Parsed(info) = &self.info else {
            return None;
        };
        let status_done = info.status == backup_info::BackupStatus::Done;
        Some(BackupMeta {
            id: self.id.clone(),
            done: status_done || info.status.as_str() == "WAITING_FOR_WALS",
            status_done,
            timeline: info.timeline,
            begin_wal: info.begin_wal,
            end_wal: info.end_wal,
            begin_offset: info.begin_offset,
            end_time: info.end_time.map(|t| t.timestamp_micros() as f64 / 1e6),
            keep: self.keep,
        })
    }

    /// Whether barman itself would refuse this backup.info (an unknown key makes
    /// `barman-cloud-backup-delete` exit), which stops all retention.
    pub fn blocks_barman(&self) -> bool {
        matches!(&self.info, BackupInfoState::Parsed(i) if !i.unknown_keys.is_empty())
    }
}

impl ServerCatalog {
    /// WAL objects older than the oldest DONE backup needs, per
    /// [`retention::LeftoverReason::index`]: every such object in exactly one reason,
    /// the unkept ones resolved with [`WalRules::resolve`].
    pub fn leftovers(&self) -> [Usage; 5] {
        let mut out = self.wal.leftovers;
        for (b, u) in &self.wal.unkept {
            out[self.rules.resolve(*b, self.last_deleted).index()].merge(*u);
        }
        out
    }

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

#[cfg(test)]
mod tier_tests {
    use super::needs_restore;

    #[test]
    fn archive_classes_of_s3_and_azure_need_a_restore() {
        for c in ["GLACIER", "DEEP_ARCHIVE", "Archive"] {
            assert!(needs_restore(Some(c)), "{c}");
        }
        for c in ["STANDARD", "GLACIER_IR", "Hot", "Cool", "Cold", "ARCHIVE", "COLDLINE"] {
            assert!(!needs_restore(Some(c)), "{c}");
        }
        assert!(!needs_restore(None));
    }
}
