//! Listing → numbers: turns a [`TargetCatalog`] into per-server summaries.
//!
//! Pure functions, no I/O. The rules and their barman sources:
//! * success is `status == DONE` (barman retention, `RetentionPolicy._backup_report`);
//! * backups are ordered by `begin_time`, then id, as the plugin sorts its
//!   catalog (`barman-cloud pkg/catalog/sorting.go::Less`);
//! * first recoverability point = `end_time` of the oldest DONE backup
//!   (`Catalog.FirstRecoverabilityPoint` returns `EndTime`, layout doc §9);
//! * last failure = newest FAILED backup's `end_time`, else `begin_time`, else the
//!   time in its backup id (layout doc §9, "bucket-derived equivalents").

use chrono::{NaiveDateTime, TimeZone, Utc};
use serde::Serialize;

use std::collections::{BTreeMap, BTreeSet};

use super::backup_info::BackupStatus;
use super::continuity::{self, BackupRange, Continuity};
use super::key::WalKind;
use super::retention::LeftoverReason;
use super::wal::DEFAULT_SEGMENT_SIZE;
use super::{BackupDir, BackupInfoState, ServerCatalog, TargetCatalog, Usage, WalNames};

/// How many of the newest DONE backups the cadence looks at.
pub const CADENCE_BACKUPS: usize = 7;

/// Settings the analysis needs from the target's configuration.
#[derive(Debug, Clone, Copy)]
pub struct AnalysisOptions<'a> {
    /// The target's `servers` list; any other prefix is orphaned.
    pub servers: Option<&'a [String]>,
    /// Seconds without a DONE backup or new WAL after which a prefix is orphaned anyway.
    pub orphan_after: f64,
    /// Seconds after which a STARTED backup is stuck.
    pub stuck_after: f64,
    /// Whether a `retention_policy` is configured (retention figures are published).
    pub retention: bool,
    /// Now, Unix seconds.
    pub now: f64,
}

/// What the simulated `barman-cloud-backup-delete` would remove now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RetentionSummary {
    /// Backups the RECOVERY WINDOW policy marks OBSOLETE.
    pub obsolete_backups: Vec<String>,
    /// Bytes it would delete: the obsolete backups' tars and `backup.info`, plus WAL.
    pub reclaimable_bytes: u64,
    /// Of which WAL, bytes.
    pub reclaimable_wal_bytes: u64,
    /// True when barman would refuse to run (an unreadable `backup.info`).
    pub blocked: bool,
}

/// Per-status backup counts (the `status` label of `barman_cloud_backups`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BackupCounts {
    /// `status=DONE`.
    pub done: u64,
    /// `status=FAILED`.
    pub failed: u64,
    /// `status=STARTED` (running or crashed).
    pub started: u64,
    /// Any other status (`EMPTY`, `WAITING_FOR_WALS`, `SYNCING`, unknown).
    pub other: u64,
    /// Directories with objects but no readable `backup.info`.
    pub unreadable: u64,
}

/// One backup as shown on the landing page and in the JSON status.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackupDetail {
    /// Backup id (directory name).
    pub id: String,
    /// `DONE`, `FAILED`, `STARTED`, another barman status, or `UNREADABLE`.
    pub status: String,
    /// `backup_name`, if set.
    pub name: Option<String>,
    /// `begin_time`, Unix seconds.
    pub begin_time: Option<f64>,
    /// `end_time`, Unix seconds.
    pub end_time: Option<f64>,
    /// `timeline`.
    pub timeline: Option<u32>,
    /// `begin_wal`.
    pub begin_wal: Option<String>,
    /// `end_wal`.
    pub end_wal: Option<String>,
    /// `systemid`.
    pub systemid: Option<String>,
    /// Objects under `base/<id>/`.
    pub objects: u64,
    /// Bytes under `base/<id>/`.
    pub bytes: u64,
    /// `error` of a FAILED backup, or why `backup.info` is unreadable.
    pub error: Option<String>,
    /// Payload problems of a DONE backup ([`super::payload::check`]), as
    /// sentences (`data tar missing`, `tablespace 16385 tar missing`,
    /// `data.tar.gz in DEEP_ARCHIVE`...); empty when complete.
    pub payload_problems: Vec<String>,
    /// Why a DONE backup cannot be restored to the newest WAL: its payload
    /// problems, then the WAL reason (`WAL gap at segment X`); empty when it
    /// can (and for other statuses).
    pub not_restorable: Vec<String>,
}

/// Objects in a storage class that must be restored before they can be read
/// ([`super::needs_restore`]: S3 `GLACIER`, `DEEP_ARCHIVE`; Azure `Archive`), by area: the
/// `area` label of `barman_cloud_archive_tier_objects` / `_bytes`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ArchiveTier {
    /// Under `base/` (`area="base"`).
    pub base: Usage,
    /// Under `wals/` (`area="wals"`).
    pub wals: Usage,
}

/// The published numbers for one server prefix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServerSummary {
    /// serverName.
    pub name: String,
    /// Backup counts by status.
    pub backups: BackupCounts,
    /// `end_time` of the newest DONE backup, Unix seconds.
    pub last_success_timestamp: Option<f64>,
    /// `end_time` of the oldest DONE backup, Unix seconds.
    pub first_recoverability_point: Option<f64>,
    /// Newest FAILED backup's `end_time`, else `begin_time`, else id time; Unix seconds.
    pub last_failure_timestamp: Option<f64>,
    /// `end_time - begin_time` of the newest DONE backup, seconds.
    pub last_duration_seconds: Option<f64>,
    /// Bytes under `base/<id>/` of the newest DONE backup.
    pub last_size_bytes: Option<u64>,
    /// Everything under `base/`.
    pub base: Usage,
    /// Usage under `wals/` per kind, indexed like [`WalKind::ALL`].
    pub wal: [Usage; 5],
    /// Objects that must be restored from an archive storage class first.
    pub archive_tier: ArchiveTier,
    /// Newest `LastModified` among WAL segments, Unix seconds.
    pub wal_last_archived_timestamp: Option<f64>,
    /// Highest WAL segment name in the archive.
    pub wal_newest_segment: Option<String>,
    /// True when the target lists its `servers` and this prefix is not one of
    /// them, or when it has no DONE backup and no WAL newer than `orphan_after`.
    pub orphaned: bool,
    /// Every backup directory, oldest first.
    pub backup_list: Vec<BackupDetail>,
    /// WAL continuity to the newest archived segment (`None` without WAL).
    pub continuity: Option<Continuity>,
    /// WAL objects older than the oldest DONE backup needs, per
    /// [`LeftoverReason::index`] (`None` without a DONE backup).
    pub leftovers: Option<[Usage; 5]>,
    /// The retention simulation (`None` without `retention_policy`).
    pub retention: Option<RetentionSummary>,
    /// STARTED backups older than `stuck_after`.
    pub stuck: u64,
    /// DONE backups with a payload object missing or empty
    /// (`barman_cloud_backups_incomplete`).
    pub incomplete: u64,
    /// Whether the newest DONE backup is one of them (`None` without a DONE backup).
    pub last_incomplete: Option<bool>,
    /// Median gap between the begin times of the newest DONE backups, seconds.
    pub interval_seconds: Option<f64>,
    /// Distinct `systemid`s among the backups.
    pub systems: u64,
    /// `.history` files that could not be read.
    pub histories_unreadable: u64,
    /// Which WAL files exist (for the `pg_stat_archiver` cross-check).
    #[serde(skip)]
    pub wal_names: WalNames,
}

impl ServerSummary {
    /// Everything stored under the server prefix (`base/` plus `wals/`).
    pub fn storage(&self) -> Usage {
        let mut u = self.base;
        self.wal.iter().for_each(|k| u.merge(*k));
        u
    }

    /// Usage of one WAL kind.
    pub fn wal_usage(&self, kind: WalKind) -> Usage {
        self.wal[kind.index()]
    }

    /// Leftover usage for one reason, when known.
    pub fn leftover(&self, reason: LeftoverReason) -> Option<Usage> {
        self.leftovers.map(|l| l[reason.index()])
    }
}

/// The published numbers for one target.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TargetSummary {
    /// One entry per server prefix, by name.
    pub servers: Vec<ServerSummary>,
    /// Number of orphaned server prefixes.
    pub orphan_servers: u64,
    /// Bytes stored under orphaned server prefixes.
    pub orphan_bytes: u64,
    /// Everything under the destination path.
    pub storage: Usage,
}

/// Summarises a target's catalog. `configured_servers` is the target's
/// `servers` list; when given, any other prefix is orphaned.
pub fn summarize_target(catalog: &TargetCatalog, opts: &AnalysisOptions) -> TargetSummary {
    let servers: Vec<ServerSummary> = catalog.servers.iter().map(|s| summarize_server(s, opts)).collect();
    let mut storage = catalog.loose;
    servers.iter().for_each(|s| storage.merge(s.storage()));
    TargetSummary {
        orphan_servers: servers.iter().filter(|s| s.orphaned).count() as u64,
        orphan_bytes: servers.iter().filter(|s| s.orphaned).map(|s| s.storage().bytes).sum(),
        servers,
        storage,
    }
}

/// Summarises one server prefix.
pub fn summarize_server(server: &ServerCatalog, opts: &AnalysisOptions) -> ServerSummary {
    let mut counts = BackupCounts::default();
    let mut details: Vec<BackupDetail> = server.backups.iter().map(detail).collect();
    for d in &details {
        match d.status.as_str() {
            "DONE" => counts.done += 1,
            "FAILED" => counts.failed += 1,
            "STARTED" => counts.started += 1,
            UNREADABLE => counts.unreadable += 1,
            _ => counts.other += 1,
        }
    }
    // Plugin order: begin_time, then id (ids sort chronologically).
    details.sort_by(|a, b| {
        let ka = a.begin_time.or_else(|| id_time(&a.id));
        let kb = b.begin_time.or_else(|| id_time(&b.id));
        ka.partial_cmp(&kb)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then_with(|| a.id.cmp(&b.id))
    });
    let done: Vec<&BackupDetail> = details.iter().filter(|d| d.status == "DONE").collect();
    let newest = done.last().copied();
    let last_failure = details
        .iter()
        .filter(|d| d.status == "FAILED")
        .filter_map(|d| d.end_time.or(d.begin_time).or_else(|| id_time(&d.id)))
        .fold(None, |acc: Option<f64>, t| Some(acc.map_or(t, |a| a.max(t))));
    let listed_elsewhere = opts.servers.is_some_and(|list| !list.iter().any(|n| n == &server.name));
    let stale = server
        .wal
        .newest_segment_modified
        .is_none_or(|t| t < opts.now - opts.orphan_after);
    let orphaned = listed_elsewhere || (counts.done == 0 && stale);
    let parsed: Vec<(&BackupDir, &super::backup_info::BackupInfo)> = server
        .backups
        .iter()
        .filter_map(|b| match &b.info {
            BackupInfoState::Parsed(i) => Some((b, i.as_ref())),
            _ => None,
        })
        .collect();
    let segment_size = parsed
        .iter()
        .find(|(_, i)| i.status == BackupStatus::Done)
        .map_or(DEFAULT_SEGMENT_SIZE, |(_, i)| i.xlog_segment_size);
    let ranges: Vec<BackupRange> = parsed
        .iter()
        .filter(|(_, i)| i.status == BackupStatus::Done)
        .filter_map(|(b, i)| {
            Some(BackupRange {
                id: b.id.clone(),
                begin: i.begin_wal?,
                end: i.end_wal?,
                standalone: b.keep == Some(super::retention::Keep::Standalone),
            })
        })
        .collect();
    let mut continuity = continuity::analyze(&server.wal.names.index, &server.histories, &ranges, segment_size);
    let incomplete_ids: BTreeSet<&str> = server
        .backups
        .iter()
        .filter(|b| b.payload_problems().iter().any(super::payload::Problem::is_incomplete))
        .map(|b| b.id.as_str())
        .collect();
    // Restorable needs the payload too: what barman-cloud-restore reads.
    let payload_ok: BTreeSet<String> = details
        .iter()
        .filter(|d| d.status == "DONE" && d.payload_problems.is_empty())
        .map(|d| d.id.clone())
        .collect();
    if let Some(c) = continuity.as_mut() {
        c.restorable.retain(|id| payload_ok.contains(id));
    }
    let incomplete = done.iter().filter(|d| incomplete_ids.contains(d.id.as_str())).count() as u64;
    let last_incomplete = newest.map(|d| incomplete_ids.contains(d.id.as_str()));
    let stuck = details
        .iter()
        .filter(|d| d.status == "STARTED")
        .filter(|d| {
            d.begin_time
                .or_else(|| id_time(&d.id))
                .is_some_and(|t| t < opts.now - opts.stuck_after)
        })
        .count() as u64;
    let starts: Vec<f64> = done.iter().filter_map(|d| d.begin_time).collect();
    let recent = &starts[starts.len().saturating_sub(CADENCE_BACKUPS)..];
    let mut gaps: Vec<f64> = recent.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort_by(f64::total_cmp);
    let interval_seconds = match gaps.len() {
        0 => None,
        n if n % 2 == 1 => Some(gaps[n / 2]),
        n => Some((gaps[n / 2 - 1] + gaps[n / 2]) / 2.0),
    };
    let systems = parsed
        .iter()
        .filter_map(|(_, i)| i.systemid.as_deref())
        .collect::<BTreeSet<_>>()
        .len() as u64;
    let retention = opts.retention.then(|| {
        let rules = &server.rules;
        let backup_bytes: u64 = server
            .backups
            .iter()
            .filter(|b| rules.obsolete.contains(&b.id))
            .map(|b| b.barman_bytes)
            .sum();
        RetentionSummary {
            obsolete_backups: rules.obsolete.clone(),
            reclaimable_bytes: backup_bytes + server.wal.reclaimable.bytes,
            reclaimable_wal_bytes: server.wal.reclaimable.bytes,
            blocked: rules.blocked,
        }
    });
    let wal_reasons = continuity.as_ref().map(|c| c.not_restorable.clone());
    ServerSummary {
        name: server.name.clone(),
        backups: counts,
        last_success_timestamp: newest.and_then(|d| d.end_time),
        first_recoverability_point: done.first().and_then(|d| d.end_time),
        last_failure_timestamp: last_failure,
        last_duration_seconds: newest.and_then(|d| Some(d.end_time? - d.begin_time?)),
        last_size_bytes: newest.map(|d| d.bytes),
        base: server.base_usage(),
        wal: server.wal.by_kind,
        archive_tier: ArchiveTier {
            base: server.base_archive_tier,
            wals: server.wal.archive_tier,
        },
        wal_last_archived_timestamp: server.wal.newest_segment_modified,
        wal_newest_segment: server.wal.newest_segment.map(|s| s.to_string()),
        orphaned,
        continuity,
        leftovers: (counts.done > 0).then_some(server.leftovers()),
        retention,
        stuck,
        incomplete,
        last_incomplete,
        interval_seconds,
        systems,
        histories_unreadable: server.histories_unreadable,
        wal_names: server.wal.names.clone(),
        backup_list: with_reasons(details, wal_reasons.as_ref()),
    }
}

const UNREADABLE: &str = "UNREADABLE";

/// Fills [`BackupDetail::not_restorable`] of the DONE backups: payload
/// problems first, then the WAL reason (`wal`: continuity's, `None` when
/// there is no WAL at all).
fn with_reasons(mut details: Vec<BackupDetail>, wal: Option<&BTreeMap<String, String>>) -> Vec<BackupDetail> {
    for d in details.iter_mut().filter(|d| d.status == "DONE") {
        d.not_restorable = d.payload_problems.clone();
        match wal {
            Some(w) => d.not_restorable.extend(w.get(&d.id).cloned()),
            None => d.not_restorable.push("no WAL in the archive".into()),
        }
    }
    details
}

fn detail(dir: &BackupDir) -> BackupDetail {
    let mut d = BackupDetail {
        id: dir.id.clone(),
        status: UNREADABLE.to_string(),
        name: None,
        begin_time: None,
        end_time: None,
        timeline: None,
        begin_wal: None,
        end_wal: None,
        systemid: None,
        objects: dir.objects,
        bytes: dir.bytes,
        error: None,
        payload_problems: Vec::new(),
        not_restorable: Vec::new(),
    };
    match &dir.info {
        BackupInfoState::Parsed(info) => {
            d.status = info.status.as_str().to_string();
            d.name = info.backup_name.clone();
            d.begin_time = info.begin_time.map(secs);
            d.end_time = info.end_time.map(secs);
            d.timeline = info.timeline;
            d.begin_wal = info.begin_wal.map(|s| s.to_string());
            d.end_wal = info.end_wal.map(|s| s.to_string());
            d.systemid = info.systemid.clone();
            d.error = if info.status == BackupStatus::Failed {
                info.error.clone()
            } else {
                None
            };
            if info.status == BackupStatus::Done {
                d.payload_problems = dir.payload_problems().iter().map(ToString::to_string).collect();
            }
        }
        BackupInfoState::Missing => d.error = Some("no backup.info in the backup directory".into()),
        BackupInfoState::Unreadable(why) => d.error = Some(why.clone()),
        BackupInfoState::Pending => d.error = Some("backup.info not fetched".into()),
    }
    d
}

fn secs<Tz: TimeZone>(t: chrono::DateTime<Tz>) -> f64 {
    t.timestamp_micros() as f64 / 1e6
}

/// The time encoded in a backup id (`%Y%m%dT%H%M%S`, the sidecar's local
/// clock, read as UTC), Unix seconds.
pub fn id_time(id: &str) -> Option<f64> {
    let naive = NaiveDateTime::parse_from_str(id, "%Y%m%dT%H%M%S").ok()?;
    Some(Utc.from_utc_datetime(&naive).timestamp() as f64)
}

#[cfg(test)]
mod tests;
