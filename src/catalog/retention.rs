//! barman's retention rules as pure functions: which backups a
//! `RECOVERY WINDOW` policy marks obsolete, which WAL objects
//! `barman-cloud-backup-delete` would remove with them, and why WAL older than
//! the oldest DONE backup is still in the bucket.
//!
//! Sources (barman 3.19.1, layout doc §8):
//! * `retention_policies.py::RecoveryWindowRetentionPolicy._backup_report`:
//!   DONE backups in descending id order are VALID (or KEEP:*) until the first
//!   one whose `end_time` is before `now − window`; older ones are OBSOLETE
//!   unless keep-annotated; non-DONE backups are never deleted;
//! * `clients/cloud_backup_delete.py::main/_delete_backup/_remove_wals_for_backup`:
//!   obsolete backups are deleted in ascending id order, the in-memory catalog
//!   updated after each; nothing is deleted when any `backup.info` is unreadable;
//! * `backup.py::BackupManager.should_remove_wals`, `find_previous_backup_in`,
//!   `find_next_backup_in`, `get_timelines_to_protect` (with its `==` quirk:
//!   the deleted backup's own timeline stays protected).
//!
//! The rules are computed from the backups before the WAL listing and applied
//! to each object as it streams by, so no key list is ever kept.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::key::{WalFile, WalKind};
use super::wal::SegmentName;

/// A `retentionPolicy` as the ObjectStore accepts it (`^[1-9][0-9]*[dwm]$`),
/// run by the plugin as `RECOVERY WINDOW OF N DAYS|WEEKS|MONTHS`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// N.
    pub amount: u32,
    /// Days per unit: 1 (d), 7 (w) or 31 (m), as barman's `RecoveryWindowRetentionPolicy`.
    pub days_per_unit: u32,
}

impl RetentionPolicy {
    /// Parses `3d`, `2w`, `1m`.
    pub fn parse(s: &str) -> Option<Self> {
        let (num, unit) = s.split_at(s.len().checked_sub(1)?);
        let days_per_unit = match unit {
            "d" => 1,
            "w" => 7,
            "m" => 31,
            _ => return None,
        };
        if num.is_empty() || num.starts_with('0') || !num.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some(Self {
            amount: num.parse().ok()?,
            days_per_unit,
        })
    }

    /// The window in seconds.
    pub fn window_seconds(&self) -> f64 {
        f64::from(self.amount) * f64::from(self.days_per_unit) * 86_400.0
    }
}

/// A backup's keep annotation (`base/<id>/annotations/keep`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Keep {
    /// `full`, or any other non-empty value.
    Full,
    /// `standalone`.
    Standalone,
}

impl Keep {
    /// Interprets the annotation body as barman does (empty means no keep).
    pub fn from_body(body: &str) -> Option<Self> {
        match body.trim() {
            "" => None,
            "standalone" => Some(Keep::Standalone),
            _ => Some(Keep::Full),
        }
    }
}

/// What retention needs to know of one backup with a readable `backup.info`.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupMeta {
    /// Backup id; barman orders backups by it.
    pub id: String,
    /// True for `status=DONE` (or `WAITING_FOR_WALS`, barman's `STATUS_COPY_DONE`
    /// for neighbour look-ups; only DONE is retained or deleted).
    pub done: bool,
    /// `status == DONE` exactly.
    pub status_done: bool,
    /// `timeline`.
    pub timeline: Option<u32>,
    /// `begin_wal`.
    pub begin_wal: Option<SegmentName>,
    /// `end_wal`.
    pub end_wal: Option<SegmentName>,
    /// `end_time`, Unix seconds.
    pub end_time: Option<f64>,
    /// Keep annotation.
    pub keep: Option<Keep>,
}

/// Why a WAL object older than the oldest DONE backup's `begin_wal` survives:
/// the `reason` label of `barman_cloud_wal_before_first_backup_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum LeftoverReason {
    /// Nothing protects it: retention should have removed it (barman removes WAL
    /// only when it deletes a backup, so a lower timeline's leftovers can wait
    /// for the next deletion).
    Unprotected,
    /// On the timeline of a FAILED or STARTED backup, which barman never deletes.
    FailedOrStartedBackup,
    /// Inside the WAL range of a `keep:standalone` backup.
    KeepAnnotation,
    /// A `.history` file: barman never deletes them.
    History,
}

impl LeftoverReason {
    /// All reasons in label order.
    pub const ALL: [LeftoverReason; 4] = [
        LeftoverReason::Unprotected,
        LeftoverReason::FailedOrStartedBackup,
        LeftoverReason::KeepAnnotation,
        LeftoverReason::History,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unprotected => "unprotected",
            Self::FailedOrStartedBackup => "failed_or_started_backup",
            Self::KeepAnnotation => "keep_annotation",
            Self::History => "history",
        }
    }

    /// Index into arrays ordered like [`LeftoverReason::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// One simulated `_remove_wals_for_backup` call that removes WAL.
#[derive(Debug, Clone, PartialEq)]
struct Deletion {
    /// `remove_until.begin_wal`: objects named below it are removed.
    until: SegmentName,
    /// Timelines whose WAL is kept.
    protected: BTreeSet<u32>,
    /// Inclusive `(begin_wal, end_wal)` ranges of keep:standalone backups.
    ranges: Vec<(SegmentName, SegmentName)>,
}

impl Deletion {
    /// The per-object rule: not history, timeline not protected, outside every
    /// range, name below `until` (barman compares names as strings; for
    /// uppercase names that is `(tli, log, seg)` order, a suffix sorting after
    /// its 24-character base).
    fn removes(&self, f: &WalFile) -> bool {
        let Some(seg) = f.segment else { return false };
        if f.kind == WalKind::History || self.protected.contains(&seg.timeline) {
            return false;
        }
        if self.ranges.iter().any(|r| in_range(f, *r)) {
            return false;
        }
        seg < self.until
    }

    /// The prefix shortcut: everything under `wals/<TLI><LOG>/` goes when the
    /// timeline is not protected, the directory is outside the ranges' tli/log
    /// box, on `until`'s timeline and below its log.
    fn removes_prefix(&self, tli: u32, log: u32) -> bool {
        !self.protected.contains(&tli)
            && !self
                .ranges
                .iter()
                .any(|(b, e)| tli >= b.timeline && log >= b.log && tli <= e.timeline && log <= e.log)
            && tli == self.until.timeline
            && log < self.until.log
    }
}

/// barman's range check: `.backup` names are cut to their 24-character base;
/// a `.partial` name sorts after its base, so `X.partial` is out of `[b, X]`.
fn in_range(f: &WalFile, (b, e): (SegmentName, SegmentName)) -> bool {
    let Some(s) = f.segment else { return false };
    match f.kind {
        WalKind::Partial => b <= s && s < e,
        _ => b <= s && s <= e,
    }
}

/// How a simulated deletion removes a WAL object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// With everything under its `wals/<TLI><LOG>/` directory.
    Prefix,
    /// By its bare WAL name (one path per name).
    ByName,
}

/// The result of planning: retention figures plus the per-object rules.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WalRules {
    /// `(timeline, begin_wal)` of the oldest DONE backup (by id) that is not keep:standalone.
    first: Option<(u32, SegmentName)>,
    /// Ranges of every keep:standalone DONE backup.
    standalone: Vec<(SegmentName, SegmentName)>,
    /// Timelines of FAILED/STARTED (non-DONE) backups.
    pinned: BTreeSet<u32>,
    deletions: Vec<Deletion>,
    /// Ids a RECOVERY WINDOW policy marks OBSOLETE (and barman would delete).
    pub obsolete: Vec<String>,
    /// True when retention is configured but barman would refuse to run
    /// (an unreadable `backup.info` in the catalog).
    pub blocked: bool,
}

impl WalRules {
    /// Plans from the server's readable backups. `policy` and `now` (Unix
    /// seconds) drive the RECOVERY WINDOW simulation; `unreadable` is true when
    /// any `backup.info` could not be read (barman then deletes nothing).
    pub fn plan(backups: &[BackupMeta], policy: Option<RetentionPolicy>, now: f64, unreadable: bool) -> Self {
        let mut sorted: Vec<&BackupMeta> = backups.iter().collect();
        sorted.sort_by(|a, b| a.id.cmp(&b.id));
        // The "first valid" backup: the oldest DONE one that needs all WAL after
        // it (a keep:standalone backup needs only its own range).
        let first = sorted
            .iter()
            .find(|b| b.status_done && b.keep != Some(Keep::Standalone))
            .and_then(|b| Some((b.timeline?, b.begin_wal?)));
        let standalone = sorted
            .iter()
            .filter(|b| b.status_done && b.keep == Some(Keep::Standalone))
            .filter_map(|b| Some((b.begin_wal?, b.end_wal?)))
            .collect();
        let pinned = sorted.iter().filter(|b| !b.done).filter_map(|b| b.timeline).collect();
        let mut rules = WalRules {
            first,
            standalone,
            pinned,
            ..Default::default()
        };
        let Some(policy) = policy else { return rules };
        if unreadable {
            rules.blocked = true;
            return rules;
        }
        // RecoveryWindowRetentionPolicy._backup_report (minimum redundancy 0).
        let por = now - policy.window_seconds();
        let mut found = false;
        for b in sorted.iter().rev().filter(|b| b.status_done) {
            if found {
                if b.keep.is_none() {
                    rules.obsolete.push(b.id.clone());
                }
            } else if b.end_time.is_some_and(|t| t < por) {
                found = true;
            }
        }
        rules.obsolete.reverse();
        // Deletions in ascending order, the catalog updated after each.
        let mut catalog: BTreeMap<&str, &BackupMeta> = sorted.iter().map(|b| (b.id.as_str(), *b)).collect();
        for id in rules.obsolete.clone() {
            let Some(deleted) = catalog.get(id.as_str()).copied() else {
                continue;
            };
            if let Some(d) = plan_deletion(&catalog, deleted) {
                rules.deletions.push(d);
            }
            catalog.remove(id.as_str());
        }
        rules
    }

    /// Whether the simulated `barman-cloud-backup-delete` removes this WAL
    /// object; `dir` is the `(timeline, log)` of its `wals/<TLI><LOG>/`
    /// directory, if it is in one.
    pub fn reclaimable(&self, f: &WalFile, dir: Option<(u32, u32)>) -> bool {
        self.removal(f, dir).is_some()
    }

    /// How the simulated deletion removes the object, if it does: the prefix
    /// shortcut removes every object under the directory; the per-object rule
    /// works on barman's WAL dict keyed by bare name, so of `X` and `X.gz` only
    /// the path listed last is removed.
    pub fn removal(&self, f: &WalFile, dir: Option<(u32, u32)>) -> Option<Removal> {
        if dir.is_some_and(|(t, l)| self.deletions.iter().any(|d| d.removes_prefix(t, l))) {
            return Some(Removal::Prefix);
        }
        self.deletions.iter().any(|d| d.removes(f)).then_some(Removal::ByName)
    }

    /// Why this object, older than the oldest DONE backup needs, survives;
    /// `None` when it is not older (or is not WAL, or there is no DONE backup).
    pub fn leftover(&self, f: &WalFile) -> Option<LeftoverReason> {
        let (ftli, fbegin) = self.first?;
        if f.kind == WalKind::History {
            return (f.timeline? <= ftli).then_some(LeftoverReason::History);
        }
        let s = f.segment?;
        if !((s.timeline == ftli && s < fbegin) || s.timeline < ftli) {
            return None;
        }
        Some(if self.standalone.iter().any(|r| in_range(f, *r)) {
            LeftoverReason::KeepAnnotation
        } else if s.timeline != ftli && self.pinned.contains(&s.timeline) {
            LeftoverReason::FailedOrStartedBackup
        } else {
            LeftoverReason::Unprotected
        })
    }
}

/// `_remove_wals_for_backup` for one deleted backup, or `None` when it removes
/// no WAL (a previous backup without keep:standalone exists).
fn plan_deletion(catalog: &BTreeMap<&str, &BackupMeta>, deleted: &BackupMeta) -> Option<Deletion> {
    // should_remove_wals: walk back over keep:standalone predecessors.
    let mut ranges = Vec::new();
    let mut cursor = deleted.id.as_str();
    loop {
        let prev = catalog.range(..cursor).rev().map(|(_, b)| *b).find(|b| b.done);
        match prev {
            None => break,
            Some(p) if p.keep == Some(Keep::Standalone) => {
                ranges.push((p.begin_wal?, p.end_wal?));
                cursor = p.id.as_str();
            }
            Some(_) => return None,
        }
    }
    let next = catalog
        .range::<str, _>((
            std::ops::Bound::Excluded(deleted.id.as_str()),
            std::ops::Bound::Unbounded,
        ))
        .map(|(_, b)| *b)
        .find(|b| b.done);
    let until = next.unwrap_or(deleted);
    // get_timelines_to_protect: `value == deleted_backup` never matches (a
    // reloaded BackupInfo has no __eq__), so the deleted backup's timeline counts.
    let mut protected: BTreeSet<u32> = catalog.values().filter_map(|b| b.timeline).collect();
    if let Some(t) = until.timeline {
        protected.remove(&t);
    }
    Some(Deletion {
        until: until.begin_wal?,
        protected,
        ranges,
    })
}

#[cfg(test)]
mod tests;
