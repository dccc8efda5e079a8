//! The metric catalogue: every family the exporter emits, with its name,
//! type, help text, unit and label names, each defined once here.
//!
//! A leaf module (it imports nothing of the crate), so that `config` can take
//! its reserved label names from it ([`RESERVED_LABELS`]) without a cycle.
//! Every series carries `target` and the target's static labels first, then
//! the [`Family::labels`] of its family, in that order.

use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Unit;

/// A base unit a family name ends with (`Copy`, so families stay `const`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseUnit {
    /// `_seconds`.
    Seconds,
    /// `_bytes`.
    Bytes,
}

impl BaseUnit {
    /// The prometheus-client unit.
    pub fn unit(self) -> Unit {
        match self {
            Self::Seconds => Unit::Seconds,
            Self::Bytes => Unit::Bytes,
        }
    }
}

/// The label names the exporter sets itself.
pub mod label {
    /// The target's `name`, on every series of a target.
    pub const TARGET: &str = "target";
    /// The serverName (the prefix under `destination_path`).
    pub const SERVER: &str = "server";
    /// A backup's `backup.info` status.
    pub const STATUS: &str = "status";
    /// A WAL object kind, or an S3 walk kind.
    pub const KIND: &str = "kind";
    /// A collector: `s3` or `postgres`.
    pub const COLLECTOR: &str = "collector";
    /// A bounded reason: of an error, or of WAL surviving retention.
    pub const REASON: &str = "reason";
    /// An S3 operation (`ListObjectsV2`, `GetObject`).
    pub const OPERATION: &str = "operation";
    /// Where under the server prefix: `base` or `wals`.
    pub const AREA: &str = "area";
    /// The exporter's version (build info).
    pub const VERSION: &str = "version";
    /// The exporter's git revision (build info).
    pub const REVISION: &str = "revision";
    /// A target's object store kind: `s3`, `azure`, `gcs`.
    pub const PROVIDER: &str = "provider";
    /// A target's `destination_path` (without query or fragment).
    pub const DESTINATION: &str = "destination";
    /// This replica's shard number, 0-based (`--shard`).
    pub const SHARD: &str = "shard";
    /// How many shards the targets are spread over (`--total-shards`).
    pub const TOTAL: &str = "total";
}

use label::{
    AREA, COLLECTOR, DESTINATION, KIND, OPERATION, PROVIDER, REASON, REVISION, SERVER, SHARD, STATUS, TARGET, TOTAL,
    VERSION,
};

/// Every label name the exporter sets itself, [`label::TARGET`] included.
pub const LABELS: &[&str] = &[
    TARGET,
    SERVER,
    STATUS,
    KIND,
    COLLECTOR,
    REASON,
    OPERATION,
    AREA,
    VERSION,
    REVISION,
    PROVIDER,
    DESTINATION,
    SHARD,
    TOTAL,
];

/// Label names a target's static `labels` may not use: the exporter's own
/// ([`LABELS`]) plus `job` and `instance`, which Prometheus sets on every
/// scraped series.
pub const RESERVED_LABELS: &[&str] = &[
    TARGET,
    SERVER,
    STATUS,
    KIND,
    COLLECTOR,
    REASON,
    OPERATION,
    AREA,
    VERSION,
    REVISION,
    PROVIDER,
    DESTINATION,
    SHARD,
    TOTAL,
    "job",
    "instance",
];

/// One metric family.
#[derive(Debug, Clone, Copy)]
pub struct Family {
    /// Family name without the unit suffix (the OpenMetrics encoder appends
    /// `_seconds` / `_bytes` from [`Family::unit`], and `_total` to counter samples).
    pub name: &'static str,
    /// HELP text.
    pub help: &'static str,
    /// Base unit, when the name carries one as a suffix.
    pub unit: Option<BaseUnit>,
    /// Gauge, counter or info.
    pub kind: MetricType,
    /// The family's own label names, after `target` and the static labels.
    pub labels: &'static [&'static str],
    /// Whether the HELP text says the value is cached and refreshed every
    /// `interval` (false for the figures read at each scrape).
    pub cached: bool,
}

const fn gauge(name: &'static str, labels: &'static [&'static str], help: &'static str) -> Family {
    Family {
        name,
        help,
        unit: None,
        kind: MetricType::Gauge,
        labels,
        cached: true,
    }
}

const fn counter(name: &'static str, labels: &'static [&'static str], help: &'static str) -> Family {
    Family {
        kind: MetricType::Counter,
        ..gauge(name, labels, help)
    }
}

const fn seconds(f: Family) -> Family {
    Family {
        unit: Some(BaseUnit::Seconds),
        ..f
    }
}

const fn bytes(f: Family) -> Family {
    Family {
        unit: Some(BaseUnit::Bytes),
        ..f
    }
}

/// A figure read at each scrape: its HELP text does not say "cached".
const fn live(f: Family) -> Family {
    Family { cached: false, ..f }
}

const S: &[&str] = &[SERVER];

// --- per server ---

/// `barman_cloud_backups{server,status}`.
pub const BACKUPS: Family = gauge(
    "barman_cloud_backups",
    &[SERVER, STATUS],
    "Base backups by backup.info status (done, failed, started, other) plus base/<id>/ directories without a readable backup.info (unreadable).",
);
/// `barman_cloud_backup_last_success_timestamp_seconds{server}`.
pub const BACKUP_LAST_SUCCESS: Family = seconds(gauge(
    "barman_cloud_backup_last_success_timestamp",
    S,
    "end_time of the newest DONE base backup, Unix seconds.",
));
/// `barman_cloud_first_recoverability_point_timestamp_seconds{server}`.
pub const FIRST_RECOVERABILITY_POINT: Family = seconds(gauge(
    "barman_cloud_first_recoverability_point_timestamp",
    S,
    "end_time of the oldest DONE base backup (the plugin's firstRecoverabilityPoint), Unix seconds.",
));
/// `barman_cloud_backup_last_failure_timestamp_seconds{server}`.
pub const BACKUP_LAST_FAILURE: Family = seconds(gauge(
    "barman_cloud_backup_last_failure_timestamp",
    S,
    "Newest FAILED base backup: end_time, else begin_time, else the time in its id; Unix seconds.",
));
/// `barman_cloud_backup_last_duration_seconds{server}`.
pub const BACKUP_LAST_DURATION: Family = seconds(gauge(
    "barman_cloud_backup_last_duration",
    S,
    "end_time minus begin_time of the newest DONE base backup, seconds.",
));
/// `barman_cloud_backup_last_size_bytes{server}`.
pub const BACKUP_LAST_SIZE: Family = bytes(gauge(
    "barman_cloud_backup_last_size",
    S,
    "Sum of the object sizes under base/<id>/ of the newest DONE base backup, bytes.",
));
/// `barman_cloud_base_bytes{server}`.
pub const BASE_BYTES: Family = bytes(gauge(
    "barman_cloud_base",
    S,
    "Sum of the sizes of all objects under base/, bytes.",
));
/// `barman_cloud_base_objects{server}`.
pub const BASE_OBJECTS: Family = gauge("barman_cloud_base_objects", S, "Number of objects under base/.");
/// `barman_cloud_wal_last_archived_timestamp_seconds{server}`.
pub const WAL_LAST_ARCHIVED: Family = seconds(gauge(
    "barman_cloud_wal_last_archived_timestamp",
    S,
    "Newest LastModified among full WAL segments under wals/, Unix seconds.",
));
/// `barman_cloud_server_orphaned{server}`.
pub const SERVER_ORPHANED: Family = gauge(
    "barman_cloud_server_orphaned",
    S,
    "1 when the target lists its servers and this server prefix is not one of them.",
);
/// `barman_cloud_wal_missing_segments{server}`.
pub const WAL_MISSING_SEGMENTS: Family = gauge(
    "barman_cloud_wal_missing_segments",
    S,
    "WAL segments missing between the oldest DONE backup's begin_wal and the newest archived segment, following timelines through .history files (.partial never counts). Above 0, point-in-time recovery to the newest WAL is broken.",
);
/// `barman_cloud_backups_restorable{server}`.
pub const BACKUPS_RESTORABLE: Family = gauge(
    "barman_cloud_backups_restorable",
    S,
    "DONE backups that barman-cloud-restore can restore to the newest WAL: every tar it reads is there, not empty and not in an archive storage class, and the WAL from begin_wal to the newest archived segment is all present.",
);
/// `barman_cloud_backups_incomplete{server}`.
pub const BACKUPS_INCOMPLETE: Family = gauge(
    "barman_cloud_backups_incomplete",
    S,
    "DONE backups with a payload object missing or empty: the data tar, a data_NNNN part below the highest one, or a tablespace tar listed in backup.info. barman-cloud-restore cannot restore them.",
);
/// `barman_cloud_backup_last_incomplete{server}`.
pub const BACKUP_LAST_INCOMPLETE: Family = gauge(
    "barman_cloud_backup_last_incomplete",
    S,
    "1 when the newest DONE backup is incomplete (see barman_cloud_backups_incomplete), else 0; absent without a DONE backup.",
);
/// `barman_cloud_wal_timeline{server}`.
pub const WAL_TIMELINE: Family = gauge(
    "barman_cloud_wal_timeline",
    S,
    "Newest timeline with an archived WAL segment.",
);
/// `barman_cloud_wal_archived_lsn_bytes{server}`.
pub const WAL_ARCHIVED_LSN: Family = bytes(gauge(
    "barman_cloud_wal_archived_lsn",
    S,
    "End LSN of the newest archived segment on the newest timeline, as a byte position.",
));
/// `barman_cloud_recovery_window_end_timestamp_seconds{server}`.
pub const RECOVERY_WINDOW_END: Family = seconds(gauge(
    "barman_cloud_recovery_window_end_timestamp",
    S,
    "Newest point reachable from the oldest DONE backup without a WAL gap: LastModified of the last segment of the unbroken chain, Unix seconds.",
));
/// `barman_cloud_retention_obsolete_backups{server}`.
pub const RETENTION_OBSOLETE: Family = gauge(
    "barman_cloud_retention_obsolete_backups",
    S,
    "Backups the target's retention_policy (RECOVERY WINDOW) marks OBSOLETE: what barman-cloud-backup-delete would delete now.",
);
/// `barman_cloud_retention_reclaimable_bytes{server}`.
pub const RETENTION_RECLAIMABLE: Family = bytes(gauge(
    "barman_cloud_retention_reclaimable",
    S,
    "Bytes barman-cloud-backup-delete with the target's retention_policy would delete now (obsolete backups' tars and backup.info plus WAL), bytes.",
));
/// `barman_cloud_backups_stuck{server}`.
pub const BACKUPS_STUCK: Family = gauge(
    "barman_cloud_backups_stuck",
    S,
    "STARTED backups older than stuck_after (crashed or hung barman-cloud-backup).",
);
/// `barman_cloud_backup_interval_seconds{server}`.
pub const BACKUP_INTERVAL: Family = seconds(gauge(
    "barman_cloud_backup_interval",
    S,
    "Median gap between the begin times of the newest DONE backups (up to 7), seconds. 3600 for a schedule meant daily means a 5-field cron read as 6-field.",
));
/// `barman_cloud_server_systems{server}`.
pub const SERVER_SYSTEMS: Family = gauge(
    "barman_cloud_server_systems",
    S,
    "Distinct PostgreSQL system identifiers among the server's backups; above 1, two clusters write to one serverName.",
);
/// `barman_cloud_wal_objects{server,kind}`.
pub const WAL_OBJECTS: Family = gauge(
    "barman_cloud_wal_objects",
    &[SERVER, KIND],
    "Number of objects under wals/ by kind (segment, partial, backup_label, history, other).",
);
/// `barman_cloud_wal_bytes{server,kind}`.
pub const WAL_BYTES: Family = bytes(gauge(
    "barman_cloud_wal",
    &[SERVER, KIND],
    "Sum of the sizes of objects under wals/ by kind, bytes.",
));
/// `barman_cloud_wal_before_first_backup_objects{server,reason}`.
pub const LEFTOVER_OBJECTS: Family = gauge(
    "barman_cloud_wal_before_first_backup_objects",
    &[SERVER, REASON],
    "WAL objects older than what the oldest DONE backup needs, by why they survive: unprotected (barman's last deletion should have removed them), failed_or_started_backup, keep_annotation (keep:standalone), history, awaiting_next_deletion (goes at barman's next deletion).",
);
/// `barman_cloud_wal_before_first_backup_bytes{server,reason}`.
pub const LEFTOVER_BYTES: Family = bytes(gauge(
    "barman_cloud_wal_before_first_backup",
    &[SERVER, REASON],
    "Bytes of WAL objects older than what the oldest DONE backup needs, by reason, bytes.",
));
/// `barman_cloud_archive_tier_objects{server,area}`.
pub const ARCHIVE_TIER_OBJECTS: Family = gauge(
    "barman_cloud_archive_tier_objects",
    &[SERVER, AREA],
    "Objects under base/ or wals/ in a storage class that must be restored before a GET can read them (S3 GLACIER, DEEP_ARCHIVE, not GLACIER_IR; Azure Archive); barman-cloud-restore and barman-cloud-wal-restore cannot read them until then.",
);
/// `barman_cloud_archive_tier_bytes{server,area}`.
pub const ARCHIVE_TIER_BYTES: Family = bytes(gauge(
    "barman_cloud_archive_tier",
    &[SERVER, AREA],
    "Sum of the sizes of the objects counted in barman_cloud_archive_tier_objects, bytes.",
));

// --- per target ---

/// `barman_cloud_orphan_bytes`.
pub const ORPHAN_BYTES: Family = bytes(gauge(
    "barman_cloud_orphan",
    &[],
    "Bytes stored under orphaned server prefixes, bytes.",
));
/// `barman_cloud_orphan_servers`.
pub const ORPHAN_SERVERS: Family = gauge(
    "barman_cloud_orphan_servers",
    &[],
    "Number of orphaned server prefixes under the destination path.",
);
/// `barman_cloud_storage_bytes`.
pub const STORAGE_BYTES: Family = bytes(gauge(
    "barman_cloud_storage",
    &[],
    "Sum of the sizes of all objects under the destination path, bytes.",
));
/// `barman_cloud_storage_objects`.
pub const STORAGE_OBJECTS: Family = gauge(
    "barman_cloud_storage_objects",
    &[],
    "Number of objects under the destination path.",
);

// --- PostgreSQL (server: the target's postgres.server) ---

/// `barman_cloud_pg_archiver_pending_segments{server}`.
pub const PG_PENDING_SEGMENTS: Family = gauge(
    "barman_cloud_pg_archiver_pending_segments",
    S,
    "Full WAL segments between pg_stat_archiver.last_archived_wal and the segment being written (primary only).",
);
/// `barman_cloud_pg_archiver_archived_total{server}`.
pub const PG_ARCHIVED: Family = counter(
    "barman_cloud_pg_archiver_archived",
    S,
    "pg_stat_archiver.archived_count: WAL files PostgreSQL archived successfully.",
);
/// `barman_cloud_pg_archiver_failed_total{server}`.
pub const PG_FAILED: Family = counter(
    "barman_cloud_pg_archiver_failed",
    S,
    "pg_stat_archiver.failed_count: failed attempts to archive WAL files.",
);
/// `barman_cloud_pg_archiver_last_archived_timestamp_seconds{server}`.
pub const PG_LAST_ARCHIVED: Family = seconds(gauge(
    "barman_cloud_pg_archiver_last_archived_timestamp",
    S,
    "pg_stat_archiver.last_archived_time, Unix seconds.",
));
/// `barman_cloud_pg_archiver_last_failed_timestamp_seconds{server}`.
pub const PG_LAST_FAILED: Family = seconds(gauge(
    "barman_cloud_pg_archiver_last_failed_timestamp",
    S,
    "pg_stat_archiver.last_failed_time, Unix seconds.",
));
/// `barman_cloud_pg_in_recovery{server}`.
pub const PG_IN_RECOVERY: Family = gauge(
    "barman_cloud_pg_in_recovery",
    S,
    "pg_is_in_recovery(): 1 on a standby, 0 on a primary.",
);
/// `barman_cloud_pg_current_wal_lsn_bytes{server}`.
pub const PG_CURRENT_WAL_LSN: Family = bytes(gauge(
    "barman_cloud_pg_current_wal_lsn",
    S,
    "pg_current_wal_lsn() as a byte position (primary only), bytes.",
));
/// `barman_cloud_pg_archiver_last_archived_wal_in_storage{server}`.
pub const PG_LAST_ARCHIVED_IN_STORAGE: Family = gauge(
    "barman_cloud_pg_archiver_last_archived_wal_in_storage",
    S,
    "1 if the WAL file pg_stat_archiver.last_archived_wal names exists in the bucket under the configured server, else 0. 0 means archiving goes to another bucket or serverName.",
);

// --- the exporter itself ---

/// `barman_cloud_collector_up{collector}`.
pub const COLLECTOR_UP: Family = gauge(
    "barman_cloud_collector_up",
    &[COLLECTOR],
    "1 if the collector's last collection succeeded, else 0 (values of the last success are kept).",
);
/// `barman_cloud_collector_duration_seconds{collector}`.
pub const COLLECTOR_DURATION: Family = seconds(gauge(
    "barman_cloud_collector_duration",
    &[COLLECTOR],
    "Wall time of the collector's last collection, seconds.",
));
/// `barman_cloud_collector_last_success_timestamp_seconds{collector}`.
pub const COLLECTOR_LAST_SUCCESS: Family = seconds(gauge(
    "barman_cloud_collector_last_success_timestamp",
    &[COLLECTOR],
    "End of the collector's last successful collection, Unix seconds.",
));
/// `barman_cloud_collector_errors_total{collector,reason}`: every reason of
/// each configured collector, at 0 from the first scrape.
pub const COLLECTOR_ERRORS: Family = counter(
    "barman_cloud_collector_errors",
    &[COLLECTOR, REASON],
    "Failed collections by collector and bounded reason.",
);
/// `barman_cloud_s3_walks_total{kind}`.
pub const S3_WALKS: Family = counter(
    "barman_cloud_s3_walks",
    &[KIND],
    "Successful S3 walks by kind: full (every WAL directory listed) or incremental.",
);
/// `barman_cloud_s3_requests_total{operation}`: every operation of the
/// target's provider at 0 from the first scrape.
pub const S3_REQUESTS: Family = counter(
    "barman_cloud_s3_requests",
    &[OPERATION],
    "HTTP requests sent to the target's object store by operation, retries included (S3: ListObjectsV2, GetObject; Azure: ListBlobs, GetBlob; GCS: ListObjects, GetObject).",
);
/// `barman_cloud_target_info{provider,destination}`: 1 per target.
pub const TARGET_INFO: Family = gauge(
    "barman_cloud_target_info",
    &[PROVIDER, DESTINATION],
    "Always 1: the target's object store provider (s3, azure, gcs) and destination_path (without query or fragment).",
);
/// `barman_cloud_exporter_tasks`.
pub const EXPORTER_TASKS: Family = live(gauge(
    "barman_cloud_exporter_tasks",
    &[],
    "Tokio tasks alive in the exporter (collection loops, their work, HTTP connections).",
));
/// `barman_cloud_exporter_shard{shard,total}`: 1, one series per replica.
pub const SHARD_INFO: Family = live(gauge(
    "barman_cloud_exporter_shard",
    &[SHARD, TOTAL],
    "Always 1: the shard of the targets this replica collects (--shard, 0-based) of how many (--total-shards); shard 0 of 1 when not sharded.",
));
/// `barman_cloud_exporter_total_shards`.
pub const TOTAL_SHARDS: Family = live(gauge(
    "barman_cloud_exporter_total_shards",
    &[],
    "How many shards the targets are spread over (--total-shards; 1 when not sharded): as many replicas should each export barman_cloud_exporter_shard.",
));
/// `barman_cloud_exporter_build_info{version,revision}`.
pub const BUILD_INFO: Family = Family {
    kind: MetricType::Info,
    ..gauge(
        "barman_cloud_exporter_build",
        &[VERSION, REVISION],
        "Version and git revision of the exporter.",
    )
};

// --- the process (Linux only), as the Prometheus client libraries name them ---

/// `process_resident_memory_bytes`.
pub const PROCESS_RESIDENT_MEMORY: Family = live(gauge(
    "process_resident_memory_bytes",
    &[],
    "Resident memory of the exporter process, bytes (Linux `/proc/self/stat` rss).",
));
/// `process_open_fds`.
pub const PROCESS_OPEN_FDS: Family = live(gauge(
    "process_open_fds",
    &[],
    "Open file descriptors of the exporter process (Linux `/proc/self/fd`).",
));
/// `process_cpu_seconds_total`.
pub const PROCESS_CPU: Family = live(counter(
    "process_cpu_seconds",
    &[],
    "User and system CPU time of the exporter process, seconds (Linux `/proc/self/stat` utime + stime).",
));
/// `process_start_time_seconds`.
pub const PROCESS_START_TIME: Family = live(gauge(
    "process_start_time_seconds",
    &[],
    "Start time of the exporter process since the Unix epoch, seconds (Linux `/proc/self/stat` starttime plus boot time).",
));
/// `process_virtual_memory_bytes`.
pub const PROCESS_VIRTUAL_MEMORY: Family = live(gauge(
    "process_virtual_memory_bytes",
    &[],
    "Virtual memory size of the exporter process, bytes (Linux `/proc/self/stat` vsize).",
));
/// `process_max_fds`.
pub const PROCESS_MAX_FDS: Family = live(gauge(
    "process_max_fds",
    &[],
    "Maximum number of open file descriptors of the exporter process: the soft RLIMIT_NOFILE (Linux `/proc/self/limits`).",
));

/// Every family, in exposition order.
pub const FAMILIES: &[&Family] = &[
    &BACKUPS,
    &BACKUP_LAST_SUCCESS,
    &FIRST_RECOVERABILITY_POINT,
    &BACKUP_LAST_FAILURE,
    &BACKUP_LAST_DURATION,
    &BACKUP_LAST_SIZE,
    &BASE_BYTES,
    &BASE_OBJECTS,
    &WAL_LAST_ARCHIVED,
    &SERVER_ORPHANED,
    &WAL_MISSING_SEGMENTS,
    &BACKUPS_RESTORABLE,
    &BACKUPS_INCOMPLETE,
    &BACKUP_LAST_INCOMPLETE,
    &WAL_TIMELINE,
    &WAL_ARCHIVED_LSN,
    &RECOVERY_WINDOW_END,
    &RETENTION_OBSOLETE,
    &RETENTION_RECLAIMABLE,
    &BACKUPS_STUCK,
    &BACKUP_INTERVAL,
    &SERVER_SYSTEMS,
    &WAL_OBJECTS,
    &WAL_BYTES,
    &LEFTOVER_OBJECTS,
    &LEFTOVER_BYTES,
    &ARCHIVE_TIER_OBJECTS,
    &ARCHIVE_TIER_BYTES,
    &ORPHAN_BYTES,
    &ORPHAN_SERVERS,
    &STORAGE_BYTES,
    &STORAGE_OBJECTS,
    &PG_PENDING_SEGMENTS,
    &PG_ARCHIVED,
    &PG_FAILED,
    &PG_LAST_ARCHIVED,
    &PG_LAST_FAILED,
    &PG_IN_RECOVERY,
    &PG_CURRENT_WAL_LSN,
    &PG_LAST_ARCHIVED_IN_STORAGE,
    &TARGET_INFO,
    &COLLECTOR_UP,
    &COLLECTOR_DURATION,
    &COLLECTOR_LAST_SUCCESS,
    &COLLECTOR_ERRORS,
    &S3_WALKS,
    &S3_REQUESTS,
    &EXPORTER_TASKS,
    &SHARD_INFO,
    &TOTAL_SHARDS,
    &PROCESS_RESIDENT_MEMORY,
    &PROCESS_OPEN_FDS,
    &PROCESS_CPU,
    &PROCESS_START_TIME,
    &PROCESS_VIRTUAL_MEMORY,
    &PROCESS_MAX_FDS,
    &BUILD_INFO,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_labels_come_from_the_label_set() {
        let mut names = std::collections::BTreeSet::new();
        for f in FAMILIES {
            assert!(names.insert(f.name), "{} twice", f.name);
            for l in f.labels {
                assert!(LABELS.contains(l) && *l != TARGET, "{}: label {l}", f.name);
            }
            assert!(!f.name.ends_with("_total"), "{}: the encoder adds _total", f.name);
        }
        for l in LABELS {
            assert!(RESERVED_LABELS.contains(l), "{l} is reserved");
        }
    }
}
