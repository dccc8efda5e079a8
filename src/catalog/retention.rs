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
    /// `begin_offset`: the byte offset of `begin_xlog` in `begin_wal`, which
    /// names the backup's label file `<begin_wal>.<%08X offset>.backup`.
    pub begin_offset: Option<u64>,
    /// `end_time`, Unix seconds.
    pub end_time: Option<f64>,
    /// Keep annotation.
    pub keep: Option<Keep>,
}

/// Why a WAL object older than the oldest DONE backup's `begin_wal` survives:
/// the `reason` label of `barman_cloud_wal_before_first_backup_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum LeftoverReason {
    /// barman's last deletion should have removed it and did not: the
    /// replay of the newest deleted backup's `_remove_wals_for_backup` (see
    /// [`WalRules::resolve`]) removes it.
    Unprotected,
    /// On the timeline of a FAILED or STARTED backup, which barman never deletes.
    FailedOrStartedBackup,
    /// Inside the WAL range of a `keep:standalone` backup.
    KeepAnnotation,
    /// A `.history` file: barman never deletes them.
    History,
    /// Nothing keeps it for good, but barman's last deletion did not remove
    /// it either: barman removes WAL only when it deletes a backup, so it goes
    /// at the next deletion (a lower timeline kept by the protected-timeline
    /// quirk, WAL between a keep:standalone range and the next backup, or a
    /// server that never deleted a backup).
    AwaitingNextDeletion,
}

impl LeftoverReason {
    /// All reasons in label order.
    pub const ALL: [LeftoverReason; 5] = [
        LeftoverReason::Unprotected,
        LeftoverReason::FailedOrStartedBackup,
        LeftoverReason::KeepAnnotation,
        LeftoverReason::History,
        LeftoverReason::AwaitingNextDeletion,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unprotected => "unprotected",
            Self::FailedOrStartedBackup => "failed_or_started_backup",
            Self::KeepAnnotation => "keep_annotation",
            Self::History => "history",
            Self::AwaitingNextDeletion => "awaiting_next_deletion",
        }
    }

    /// Index into arrays ordered like [`LeftoverReason::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Where a leftover that no backup in the catalog keeps sits: its timeline
/// and how many DONE backups begin at or below it. Every object of one bucket
/// gets the same verdict from [`WalRules::resolve`], so the walk keeps one
/// [`Usage`](super::Usage) per bucket, not a key list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bucket {
    /// The object's timeline.
    pub timeline: u32,
    /// The number of DONE backups whose `begin_wal` is at or below its name.
    pub index: usize,
}

/// What [`WalRules::leftover`] says of an object older than the first backup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leftover {
    /// A reason known from the catalog alone.
    Reason(LeftoverReason),
    /// Nothing in the catalog keeps it: [`LeftoverReason::Unprotected`] or
    /// [`LeftoverReason::AwaitingNextDeletion`], decided by
    /// [`WalRules::resolve`] once the newest deleted backup is known.
    Unkept(Bucket),
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
    /// Per timeline, the highest `begin_wal` of a keep:standalone DONE backup
    /// on it (those beginning at or below the first backup's `begin_wal`).
    kept_timelines: BTreeMap<u32, SegmentName>,
    /// Timelines of the catalog's backups, any status, up to the first
    /// backup's timeline (higher ones hold no leftover).
    timelines: BTreeSet<u32>,
    /// `begin_wal` of the DONE (or WAITING_FOR_WALS) backups beginning at or
    /// below the first backup's, sorted.
    done_begins: Vec<SegmentName>,
    /// Bare label-file names (`<begin_wal>.<%08X begin_offset>.backup`) of the
    /// catalog's backups beginning at or below the first backup's.
    labels: BTreeSet<String>,
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
        // What decides the leftovers, kept only as far as objects below the
        // first backup can see it: a backup taken after it then leaves the
        // rules (and so the incremental walk's cached aggregates) unchanged.
        let below = |seg: Option<SegmentName>| first.is_some_and(|(_, f)| seg.is_some_and(|s| s <= f));
        let mut kept_timelines: BTreeMap<u32, SegmentName> = BTreeMap::new();
        for b in sorted
            .iter()
            .filter(|b| b.status_done && b.keep == Some(Keep::Standalone))
        {
            if let (Some(t), Some(begin)) = (b.timeline, b.begin_wal)
                && below(Some(begin))
            {
                let e = kept_timelines.entry(t).or_insert(begin);
                *e = (*e).max(begin);
            }
        }
        let mut done_begins: Vec<SegmentName> = sorted
            .iter()
            .filter(|b| b.done && below(b.begin_wal))
            .filter_map(|b| b.begin_wal)
            .collect();
        done_begins.sort();
        let labels = sorted
            .iter()
            .filter(|b| below(b.begin_wal))
            .filter_map(|b| Some(format!("{}.{:08X}.backup", b.begin_wal?, b.begin_offset?)))
            .collect();
        let timelines = sorted
            .iter()
            .filter_map(|b| b.timeline)
            .filter(|t| first.is_some_and(|(ft, _)| *t <= ft))
            .collect();
        let mut rules = WalRules {
            first,
            standalone,
            pinned,
            kept_timelines,
            timelines,
            done_begins,
            labels,
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
    ///
    /// In order: a `.history` file; inside a keep:standalone range; on a lower
    /// timeline that a FAILED/STARTED backup pins; on a lower timeline at or
    /// above a keep:standalone backup on it (every later deletion's next
    /// backup is on another timeline, so the timeline stays protected while
    /// that backup exists). Anything else is [`Leftover::Unkept`].
    pub fn leftover(&self, f: &WalFile) -> Option<Leftover> {
        let (ftli, fbegin) = self.first?;
        if f.kind == WalKind::History {
            return (f.timeline? <= ftli).then_some(Leftover::Reason(LeftoverReason::History));
        }
        let s = f.segment?;
        if !((s.timeline == ftli && s < fbegin) || s.timeline < ftli) {
            return None;
        }
        let lower = s.timeline != ftli;
        Some(if self.standalone.iter().any(|r| in_range(f, *r)) {
            Leftover::Reason(LeftoverReason::KeepAnnotation)
        } else if lower && self.pinned.contains(&s.timeline) {
            Leftover::Reason(LeftoverReason::FailedOrStartedBackup)
        } else if lower && self.kept_timelines.get(&s.timeline).is_some_and(|b| s >= *b) {
            Leftover::Reason(LeftoverReason::KeepAnnotation)
        } else {
            Leftover::Unkept(Bucket {
                timeline: s.timeline,
                index: self.done_begins.partition_point(|b| *b <= s),
            })
        })
    }

    /// Whether a `.backup` label file below the first backup (bare name, as
    /// [`super::key::bare_wal_name`] gives it) belongs to no backup in the
    /// catalog: the label of a deleted backup, or of a `pg_basebackup` run.
    pub fn is_foreign_label(&self, bare: &str) -> bool {
        !self.labels.contains(bare)
    }

    /// The verdict on an unkept bucket, given `last_deleted`, the `begin_wal`
    /// of the newest backup deleted from `base/` whose label file is still
    /// under `wals/` (found by the walk, see [`barman_label_id`]).
    ///
    /// barman deletes WAL only in `_remove_wals_for_backup`, run once per
    /// deleted backup D (`clients/cloud_backup_delete.py`). Its replay here:
    /// U = the oldest remaining DONE backup beginning after D; the protected
    /// timelines are every catalog backup's plus D's own (the `==` quirk of
    /// `get_timelines_to_protect`) minus U's; an object goes when its timeline
    /// is not protected and its name is below `U.begin_wal`. Such an object is
    /// [`LeftoverReason::Unprotected`]: the deletion that should have removed
    /// it did not (a backup deleted by hand or by a lifecycle rule, a
    /// deletion that died half-way). Everything else, and everything when no
    /// deleted backup is known (barman's own delete removes the label with the
    /// WAL unless the timeline was protected), waits for the next deletion.
    ///
    /// D is below the first non-standalone backup, so any backup before it is
    /// keep:standalone. Then barman's own `barman-cloud-backup-delete -b D`
    /// removes no WAL at all (`_delete_backup` passes
    /// `skip_wal_cleanup_if_standalone=True` unless a retention policy runs,
    /// `BackupManager.should_remove_wals`), while a retention run removes
    /// it: the two cannot be told apart from the bucket, so such leftovers
    /// wait for the next deletion, which removes them either way (no false
    /// `unprotected` after a legitimate manual delete).
    pub fn resolve(&self, b: Bucket, last_deleted: Option<SegmentName>) -> LeftoverReason {
        let Some(d) = last_deleted else {
            return LeftoverReason::AwaitingNextDeletion;
        };
        let u = self.done_begins.partition_point(|x| *x <= d);
        let (0, Some(until)) = (u, self.done_begins.first()) else {
            return LeftoverReason::AwaitingNextDeletion;
        };
        let protected =
            (b.timeline == d.timeline || self.timelines.contains(&b.timeline)) && b.timeline != until.timeline;
        if !protected && b.index <= u {
            LeftoverReason::Unprotected
        } else {
            LeftoverReason::AwaitingNextDeletion
        }
    }
}

/// The backup id in a label file written for barman: PostgreSQL copies the
/// label given to `pg_backup_start` into the `LABEL:` line, and barman's
/// `ConcurrentBackupStrategy.start_backup` passes `Barman backup <server>
/// <backup_id>` (`<server>` is `cloud` for `barman-cloud-backup`,
/// `cloud.py::CloudBackupUploaderPostgres.backup`). `None` for any other label
/// (a `pg_basebackup` run says `pg_basebackup base backup`).
pub fn barman_label_id(text: &str) -> Option<&str> {
    let label = text.lines().find_map(|l| l.strip_prefix("LABEL: "))?;
    let rest = label.trim_end().strip_prefix("Barman backup ")?;
    let (_, id) = rest.rsplit_once(' ')?;
    (!id.is_empty()).then_some(id)
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
