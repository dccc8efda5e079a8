//! The metric catalogue: every name, help text, unit and label set, and the
//! encoder that renders a [`Store`]'s current snapshots.
//!
//! A scrape builds a throw-away registry around a [`Collector`] that reads the
//! snapshots, so only what the snapshots hold is rendered (no stale series) and
//! nothing here does I/O. Label order on every series: `target`, the target's
//! static labels, then `server` and the metric's own labels.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabel, EncodeLabelSet, LabelSetEncoder, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::catalog::Usage;
use crate::catalog::analysis::ServerSummary;
use crate::catalog::key::WalKind;
use crate::catalog::retention::LeftoverReason;
use crate::snapshot::{Store, TargetSlot, TargetSnapshot};
use crate::source::s3::RequestCounts;

/// Content type of the OpenMetrics exposition.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the classic Prometheus text exposition.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Exporter version (`version` label of `barman_cloud_exporter_build_info`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Git revision the binary was built from (`revision` label).
pub const REVISION: &str = env!("BCE_REVISION");

/// Renders the store as OpenMetrics text (ends with `# EOF`).
///
/// The families computed from the snapshots are rendered once per set of
/// snapshots and cached in the store (a scrape then copies bytes; the cost
/// of encoding thousands of series is paid once per collection, not per
/// scrape); the live families (request counters, tasks, process figures,
/// build info) are encoded at every call.
pub fn render_openmetrics(store: &Store) -> String {
    let cached = snapshot_part(store);
    let live = encode(view(store, true));
    let mut out = String::with_capacity(cached.openmetrics.len() + live.len());
    out.push_str(&cached.openmetrics);
    out.push_str(&live);
    out
}

/// Renders the store in the classic Prometheus text format 0.0.4
/// ([`openmetrics_to_text`] of [`render_openmetrics`], with the snapshot part
/// converted once and cached).
pub fn render_text(store: &Store) -> String {
    let cached = snapshot_part(store);
    let text = cached.text.get_or_init(|| openmetrics_to_text(&cached.openmetrics));
    let live = openmetrics_to_text(&encode(view(store, true)));
    let mut out = String::with_capacity(text.len() + live.len());
    out.push_str(text);
    out.push_str(&live);
    out
}

fn view(store: &Store, live: bool) -> View {
    View {
        interval: humantime::format_duration(store.interval).to_string(),
        targets: store
            .targets
            .iter()
            .map(|slot| (slot.clone(), slot.snapshot(), slot.requests.snapshot()))
            .collect(),
        live,
        collector_tasks: store
            .collector_runtime
            .get()
            .filter(|_| live)
            .map(|h| h.metrics().num_alive_tasks()),
    }
}

/// OpenMetrics text of one view, ending with `# EOF`.
fn encode(view: View) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(view));
    let mut out = String::with_capacity(16 * 1024);
    // Writing to a String cannot fail; an encoder error would be a bug in a label set.
    if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
        out.clear();
        out.push_str("# EOF\n");
    }
    out
}

/// Renders the snapshot part of the store's current snapshots in both
/// formats unless the cache already holds it. Called after every publish by
/// a task off the HTTP path ([`crate::run`]), so scrapes find it ready.
pub fn prerender(store: &Store) {
    let r = snapshot_part(store);
    r.text.get_or_init(|| openmetrics_to_text(&r.openmetrics));
}

/// The snapshot families of the store's current snapshots (without `# EOF`),
/// from the cache when no target has published since. The cache lock is not
/// held while encoding: a scrape never waits for another rendering.
fn snapshot_part(store: &Store) -> Arc<Rendered> {
    let view = view(store, false);
    let current = |r: &Rendered| {
        r.snapshots.len() == view.targets.len()
            && r.snapshots
                .iter()
                .zip(&view.targets)
                .all(|(a, (_, b, _))| Arc::ptr_eq(a, b))
    };
    let cached = store
        .rendered
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    if let Some(r) = cached
        && current(&r)
    {
        return r;
    }
    let snapshots = view.targets.iter().map(|(_, s, _)| s.clone()).collect();
    let mut openmetrics = encode(view);
    if openmetrics.ends_with("# EOF\n") {
        openmetrics.truncate(openmetrics.len() - "# EOF\n".len());
    }
    let r = Arc::new(Rendered {
        snapshots,
        openmetrics,
        text: std::sync::OnceLock::new(),
    });
    *store.rendered.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(r.clone());
    r
}

/// The snapshot part of the exposition for one set of snapshots.
#[derive(Debug)]
pub struct Rendered {
    /// The snapshots it was rendered from (held, so pointers stay unique).
    snapshots: Vec<Arc<TargetSnapshot>>,
    /// OpenMetrics text without `# EOF`.
    openmetrics: String,
    /// The same in text format 0.0.4, converted on first use.
    text: std::sync::OnceLock<String>,
}

/// Converts OpenMetrics text from [`render_openmetrics`] to the classic
/// Prometheus text format 0.0.4: drops `# UNIT` and `# EOF`, names counter
/// families with their `_total` sample name and turns `info` into a gauge.
pub fn openmetrics_to_text(om: &str) -> String {
    let mut renamed = std::collections::HashMap::new();
    for line in om.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ")
            && let Some((name, kind)) = rest.split_once(' ')
        {
            match kind {
                "counter" => renamed.insert(name, (format!("{name}_total"), "counter")),
                "info" => renamed.insert(name, (format!("{name}_info"), "gauge")),
                _ => None,
            };
        }
    }
    let mut out = String::with_capacity(om.len());
    for line in om.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let rewritten = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let rest = line.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ')?;
            let (new_name, new_kind) = renamed.get(name)?;
            Some(if *p == "# TYPE " {
                format!("{p}{new_name} {new_kind}")
            } else {
                format!("{p}{new_name} {tail}")
            })
        });
        out.push_str(rewritten.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// One metric family: name without unit suffix, help, unit.
struct Family {
    name: &'static str,
    help: &'static str,
    unit: Option<Unit>,
}

const fn fam(name: &'static str, help: &'static str) -> Family {
    Family { name, help, unit: None }
}

const fn secs(name: &'static str, help: &'static str) -> Family {
    Family {
        name,
        help,
        unit: Some(Unit::Seconds),
    }
}

const fn bytes(name: &'static str, help: &'static str) -> Family {
    Family {
        name,
        help,
        unit: Some(Unit::Bytes),
    }
}

type ServerValue = fn(&ServerSummary) -> Option<f64>;

/// Per-server gauges without extra labels.
const SERVER_GAUGES: &[(Family, ServerValue)] = &[
    (
        secs(
            "barman_cloud_backup_last_success_timestamp",
            "end_time of the newest DONE base backup, Unix seconds.",
        ),
        |s| s.last_success_timestamp,
    ),
    (
        secs(
            "barman_cloud_first_recoverability_point_timestamp",
            "end_time of the oldest DONE base backup (the plugin's firstRecoverabilityPoint), Unix seconds.",
        ),
        |s| s.first_recoverability_point,
    ),
    (
        secs(
            "barman_cloud_backup_last_failure_timestamp",
            "Newest FAILED base backup: end_time, else begin_time, else the time in its id; Unix seconds.",
        ),
        |s| s.last_failure_timestamp,
    ),
    (
        secs(
            "barman_cloud_backup_last_duration",
            "end_time minus begin_time of the newest DONE base backup, seconds.",
        ),
        |s| s.last_duration_seconds,
    ),
    (
        bytes(
            "barman_cloud_backup_last_size",
            "Sum of the object sizes under base/<id>/ of the newest DONE base backup, bytes.",
        ),
        |s| s.last_size_bytes.map(|b| b as f64),
    ),
    (
        bytes(
            "barman_cloud_base",
            "Sum of the sizes of all objects under base/, bytes.",
        ),
        |s| Some(s.base.bytes as f64),
    ),
    (
        fam("barman_cloud_base_objects", "Number of objects under base/."),
        |s| Some(s.base.objects as f64),
    ),
    (
        secs(
            "barman_cloud_wal_last_archived_timestamp",
            "Newest LastModified among full WAL segments under wals/, Unix seconds.",
        ),
        |s| s.wal_last_archived_timestamp,
    ),
    (
        fam(
            "barman_cloud_server_orphaned",
            "1 when the target lists its servers and this server prefix is not one of them.",
        ),
        |s| Some(f64::from(u8::from(s.orphaned))),
    ),
];

/// Per-server gauges of the catalogue-truth analysis (continuity, retention, cadence).
const ANALYSIS_GAUGES: &[(Family, ServerValue)] = &[
    (
        fam(
            "barman_cloud_wal_missing_segments",
            "WAL segments missing between the oldest DONE backup's begin_wal and the newest archived segment, following timelines through .history files (.partial never counts). Above 0, point-in-time recovery to the newest WAL is broken.",
        ),
        |s| s.continuity.as_ref().and_then(|c| c.missing_segments).map(|m| m as f64),
    ),
    (
        fam(
            "barman_cloud_backups_restorable",
            "DONE backups whose WAL from begin_wal to the newest archived segment is all present.",
        ),
        |s| Some(s.continuity.as_ref().map_or(0, |c| c.restorable.len()) as f64),
    ),
    (
        fam(
            "barman_cloud_wal_timeline",
            "Newest timeline with an archived WAL segment.",
        ),
        |s| s.continuity.as_ref().map(|c| f64::from(c.timeline)),
    ),
    (
        bytes(
            "barman_cloud_wal_archived_lsn",
            "End LSN of the newest archived segment on the newest timeline, as a byte position.",
        ),
        |s| s.continuity.as_ref().map(|c| c.archived_lsn as f64),
    ),
    (
        secs(
            "barman_cloud_recovery_window_end_timestamp",
            "Newest point reachable from the oldest DONE backup without a WAL gap: LastModified of the last segment of the unbroken chain, Unix seconds.",
        ),
        |s| s.continuity.as_ref().and_then(|c| c.recovery_window_end),
    ),
    (
        fam(
            "barman_cloud_retention_obsolete_backups",
            "Backups the target's retention_policy (RECOVERY WINDOW) marks OBSOLETE: what barman-cloud-backup-delete would delete now.",
        ),
        |s| s.retention.as_ref().map(|r| r.obsolete_backups.len() as f64),
    ),
    (
        bytes(
            "barman_cloud_retention_reclaimable",
            "Bytes barman-cloud-backup-delete with the target's retention_policy would delete now (obsolete backups' tars and backup.info plus WAL), bytes.",
        ),
        |s| s.retention.as_ref().map(|r| r.reclaimable_bytes as f64),
    ),
    (
        fam(
            "barman_cloud_backups_stuck",
            "STARTED backups older than stuck_after (crashed or hung barman-cloud-backup).",
        ),
        |s| Some(s.stuck as f64),
    ),
    (
        secs(
            "barman_cloud_backup_interval",
            "Median gap between the begin times of the newest DONE backups (up to 7), seconds. 3600 for a schedule meant daily means a 5-field cron read as 6-field.",
        ),
        |s| s.interval_seconds,
    ),
    (
        fam(
            "barman_cloud_server_systems",
            "Distinct PostgreSQL system identifiers among the server's backups; above 1, two clusters write to one serverName.",
        ),
        |s| Some(s.systems as f64),
    ),
];

/// A label set: `target`, the target's static labels, then `extra`.
struct Labels<'a> {
    slot: &'a TargetSlot,
    extra: &'a [(&'static str, &'a str)],
}

impl EncodeLabelSet for Labels<'_> {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        ("target", self.slot.name.as_str()).encode(encoder.encode_label())?;
        for (k, v) in &self.slot.labels {
            (k.as_str(), v.as_str()).encode(encoder.encode_label())?;
        }
        for (k, v) in self.extra {
            (*k, *v).encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

#[derive(Debug)]
struct View {
    interval: String,
    targets: Vec<(Arc<TargetSlot>, Arc<TargetSnapshot>, RequestCounts)>,
    /// Encode the live families instead of the snapshot ones.
    live: bool,
    /// Tasks alive on the collector runtime, when it is apart.
    collector_tasks: Option<usize>,
}

impl View {
    fn help(&self, help: &str) -> String {
        format!("{help} Cached; refreshed every {}.", self.interval)
    }

    /// Encodes one family whose samples come from `samples`, called with a
    /// sink taking `(labels, value)`.
    fn family(
        &self,
        enc: &mut DescriptorEncoder,
        f: &Family,
        kind: MetricType,
        samples: impl Fn(&mut dyn FnMut(&Labels, f64) -> Result<(), std::fmt::Error>) -> Result<(), std::fmt::Error>,
    ) -> Result<(), std::fmt::Error> {
        let help = self.help(f.help);
        let mut m = enc.encode_descriptor(f.name, &help, f.unit.as_ref(), kind)?;
        samples(&mut |labels, value| encode_value(&mut m, labels, kind, value))
    }

    /// Encodes a per-server pair of families, objects then bytes, over the
    /// `(label value, usage)` pairs `per_server` yields under label `label`.
    fn usage_pair(
        &self,
        enc: &mut DescriptorEncoder,
        objects: Family,
        bytes: Family,
        label: &'static str,
        per_server: impl Fn(&ServerSummary) -> Vec<(&'static str, Usage)>,
    ) -> Result<(), std::fmt::Error> {
        for (f, pick) in [
            (objects, Usage::objects as fn(&Usage) -> u64),
            (bytes, |u: &Usage| u.bytes),
        ] {
            self.family(enc, &f, MetricType::Gauge, |emit| {
                for (slot, s) in self.servers() {
                    for (value, usage) in per_server(s) {
                        let extra = [("server", s.name.as_str()), (label, value)];
                        emit(&Labels { slot, extra: &extra }, pick(&usage) as f64)?;
                    }
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    fn servers(&self) -> impl Iterator<Item = (&TargetSlot, &ServerSummary)> {
        self.targets.iter().flat_map(|(slot, snap, _)| {
            snap.s3
                .last_good
                .iter()
                .flat_map(|t| t.servers.iter())
                .map(move |s| (slot.as_ref(), s))
        })
    }
}

fn encode_value(m: &mut MetricEncoder, labels: &Labels, kind: MetricType, value: f64) -> Result<(), std::fmt::Error> {
    let mut fm = m.encode_family(labels)?;
    // Integral values (counts, bytes, whole seconds) are written as integers.
    let integral = value.fract() == 0.0 && value.abs() < 9.0e15;
    match (kind, integral) {
        (MetricType::Counter, true) => fm.encode_counter::<NoLabelSet, _, u64>(&(value.max(0.0) as u64), None),
        (MetricType::Counter, false) => fm.encode_counter::<NoLabelSet, _, f64>(&value, None),
        (_, true) => fm.encode_gauge(&(value as i64)),
        (_, false) => fm.encode_gauge(&value),
    }
}

impl Collector for View {
    fn encode(&self, mut enc: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        if self.live {
            return self.encode_live(&mut enc);
        }
        let gauge = MetricType::Gauge;
        // --- per server ---
        self.family(
            &mut enc,
            &fam(
                "barman_cloud_backups",
                "Base backups by backup.info status (done, failed, started, other) plus base/<id>/ directories without a readable backup.info (unreadable).",
            ),
            gauge,
            |emit| {
                for (slot, s) in self.servers() {
                    let b = &s.backups;
                    for (status, n) in [
                        ("done", b.done),
                        ("failed", b.failed),
                        ("started", b.started),
                        ("other", b.other),
                        ("unreadable", b.unreadable),
                    ] {
                        let extra = [("server", s.name.as_str()), ("status", status)];
                        emit(&Labels { slot, extra: &extra }, n as f64)?;
                    }
                }
                Ok(())
            },
        )?;
        for (f, value) in SERVER_GAUGES.iter().chain(ANALYSIS_GAUGES) {
            self.family(&mut enc, f, gauge, |emit| {
                for (slot, s) in self.servers() {
                    if let Some(v) = value(s) {
                        emit(
                            &Labels {
                                slot,
                                extra: &[("server", s.name.as_str())],
                            },
                            v,
                        )?;
                    }
                }
                Ok(())
            })?;
        }
        self.usage_pair(
            &mut enc,
            fam(
                "barman_cloud_wal_objects",
                "Number of objects under wals/ by kind (segment, partial, backup_label, history, other).",
            ),
            bytes(
                "barman_cloud_wal",
                "Sum of the sizes of objects under wals/ by kind, bytes.",
            ),
            "kind",
            |s| WalKind::ALL.iter().map(|k| (k.as_str(), s.wal_usage(*k))).collect(),
        )?;
        self.usage_pair(
            &mut enc,
            fam(
                "barman_cloud_wal_before_first_backup_objects",
                "WAL objects older than what the oldest DONE backup needs, by why they survive: unprotected (retention should have deleted them), failed_or_started_backup, keep_annotation (keep:standalone range), history.",
            ),
            bytes(
                "barman_cloud_wal_before_first_backup",
                "Bytes of WAL objects older than what the oldest DONE backup needs, by reason, bytes.",
            ),
            "reason",
            |s| {
                LeftoverReason::ALL
                    .iter()
                    .filter_map(|r| Some((r.as_str(), s.leftover(*r)?)))
                    .collect()
            },
        )?;
        // --- per target ---
        type TargetValue = fn(&crate::catalog::analysis::TargetSummary) -> f64;
        let target_gauges: [(Family, TargetValue); 4] = [
            (
                bytes(
                    "barman_cloud_orphan",
                    "Bytes stored under orphaned server prefixes, bytes.",
                ),
                |t| t.orphan_bytes as f64,
            ),
            (
                fam(
                    "barman_cloud_orphan_servers",
                    "Number of orphaned server prefixes under the destination path.",
                ),
                |t| t.orphan_servers as f64,
            ),
            (
                bytes(
                    "barman_cloud_storage",
                    "Sum of the sizes of all objects under the destination path, bytes.",
                ),
                |t| t.storage.bytes as f64,
            ),
            (
                fam(
                    "barman_cloud_storage_objects",
                    "Number of objects under the destination path.",
                ),
                |t| t.storage.objects as f64,
            ),
        ];
        for (f, value) in &target_gauges {
            self.family(&mut enc, f, gauge, |emit| {
                for (slot, snap, _) in &self.targets {
                    if let Some(t) = &snap.s3.last_good {
                        emit(&Labels { slot, extra: &[] }, value(t))?;
                    }
                }
                Ok(())
            })?;
        }
        self.encode_postgres(&mut enc)?;
        self.encode_self(&mut enc)
    }
}

type PgValue = fn(&crate::source::postgres::ArchiverStatus) -> Option<f64>;

impl View {
    fn encode_postgres(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let pg: [(Family, MetricType, PgValue); 7] = [
            (
                fam(
                    "barman_cloud_pg_archiver_pending_segments",
                    "Full WAL segments between pg_stat_archiver.last_archived_wal and the segment being written (primary only).",
                ),
                MetricType::Gauge,
                |a| a.pending_segments().map(|p| p as f64),
            ),
            (
                fam(
                    "barman_cloud_pg_archiver_archived",
                    "pg_stat_archiver.archived_count: WAL files PostgreSQL archived successfully.",
                ),
                MetricType::Counter,
                |a| Some(a.archived_count as f64),
            ),
            (
                fam(
                    "barman_cloud_pg_archiver_failed",
                    "pg_stat_archiver.failed_count: failed attempts to archive WAL files.",
                ),
                MetricType::Counter,
                |a| Some(a.failed_count as f64),
            ),
            (
                secs(
                    "barman_cloud_pg_archiver_last_archived_timestamp",
                    "pg_stat_archiver.last_archived_time, Unix seconds.",
                ),
                MetricType::Gauge,
                |a| a.last_archived_time,
            ),
            (
                secs(
                    "barman_cloud_pg_archiver_last_failed_timestamp",
                    "pg_stat_archiver.last_failed_time, Unix seconds.",
                ),
                MetricType::Gauge,
                |a| a.last_failed_time,
            ),
            (
                fam(
                    "barman_cloud_pg_in_recovery",
                    "pg_is_in_recovery(): 1 on a standby, 0 on a primary.",
                ),
                MetricType::Gauge,
                |a| Some(f64::from(u8::from(a.in_recovery))),
            ),
            (
                bytes(
                    "barman_cloud_pg_current_wal_lsn",
                    "pg_current_wal_lsn() as a byte position (primary only), bytes.",
                ),
                MetricType::Gauge,
                |a| a.current_wal_lsn.map(|l| l as f64),
            ),
        ];
        for (f, kind, value) in &pg {
            self.family(enc, f, *kind, |emit| {
                for (slot, snap, _) in &self.targets {
                    if let Some(a) = snap.postgres.as_ref().and_then(|p| p.last_good.as_ref())
                        && let Some(v) = value(a)
                    {
                        let server = slot.postgres_server.as_deref().unwrap_or("");
                        emit(
                            &Labels {
                                slot,
                                extra: &[("server", server)],
                            },
                            v,
                        )?;
                    }
                }
                Ok(())
            })?;
        }
        self.family(
            enc,
            &fam(
                "barman_cloud_pg_archiver_last_archived_wal_in_storage",
                "1 if the WAL file pg_stat_archiver.last_archived_wal names exists in the bucket under the configured server, else 0. 0 means archiving goes to another bucket or serverName.",
            ),
            MetricType::Gauge,
            |emit| {
                for (slot, snap, _) in &self.targets {
                    let pg = snap.postgres.as_ref().and_then(|p| p.last_good.as_ref());
                    let (Some(pg), Some(s3)) = (pg, snap.s3.last_good.as_ref()) else { continue };
                    let (Some(name), Some(server)) = (pg.last_archived_wal.as_deref(), slot.postgres_server.as_deref())
                    else {
                        continue;
                    };
                    let found = s3.servers.iter().any(|s| s.name == server && s.wal_names.contains(name));
                    emit(&Labels { slot, extra: &[("server", server)] }, f64::from(u8::from(found)))?;
                }
                Ok(())
            },
        )?;
        Ok(())
    }

    fn encode_self(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        type CollectorValue = fn(bool, Option<f64>, Option<f64>) -> Option<f64>;
        let per_collector: [(Family, CollectorValue); 3] = [
            (
                fam(
                    "barman_cloud_collector_up",
                    "1 if the collector's last collection succeeded, else 0 (values of the last success are kept).",
                ),
                |up, _, _| Some(f64::from(u8::from(up))),
            ),
            (
                secs(
                    "barman_cloud_collector_duration",
                    "Wall time of the collector's last collection, seconds.",
                ),
                |_, d, _| d,
            ),
            (
                secs(
                    "barman_cloud_collector_last_success_timestamp",
                    "End of the collector's last successful collection, Unix seconds.",
                ),
                |_, _, t| t,
            ),
        ];
        for (f, value) in &per_collector {
            self.family(enc, f, MetricType::Gauge, |emit| {
                for (slot, snap, _) in &self.targets {
                    let s3 = &snap.s3;
                    if s3.attempts > 0
                        && let Some(v) = value(s3.up, s3.last_duration, s3.last_success)
                    {
                        emit(
                            &Labels {
                                slot,
                                extra: &[("collector", "s3")],
                            },
                            v,
                        )?;
                    }
                    if let Some(pg) = &snap.postgres
                        && pg.attempts > 0
                        && let Some(v) = value(pg.up, pg.last_duration, pg.last_success)
                    {
                        emit(
                            &Labels {
                                slot,
                                extra: &[("collector", "postgres")],
                            },
                            v,
                        )?;
                    }
                }
                Ok(())
            })?;
        }
        self.family(
            enc,
            &fam(
                "barman_cloud_collector_errors",
                "Failed collections by collector and bounded reason.",
            ),
            MetricType::Counter,
            |emit| {
                for (slot, snap, _) in &self.targets {
                    let pg = snap.postgres.as_ref().map(|p| &p.errors);
                    for (collector, errors) in [("s3", Some(&snap.s3.errors)), ("postgres", pg)] {
                        for (reason, n) in errors.into_iter().flatten() {
                            let extra = [("collector", collector), ("reason", *reason)];
                            emit(&Labels { slot, extra: &extra }, *n as f64)?;
                        }
                    }
                }
                Ok(())
            },
        )?;
        self.family(
            enc,
            &fam(
                "barman_cloud_s3_walks",
                "Successful S3 walks by kind: full (every WAL directory listed) or incremental.",
            ),
            MetricType::Counter,
            |emit| {
                for (slot, snap, _) in &self.targets {
                    for (kind, n) in &snap.walks {
                        emit(
                            &Labels {
                                slot,
                                extra: &[("kind", kind)],
                            },
                            *n as f64,
                        )?;
                    }
                }
                Ok(())
            },
        )?;
        Ok(())
    }

    /// The families read live at every scrape: request counters, runtime and
    /// process figures, build info.
    fn encode_live(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.family(
            enc,
            &fam(
                "barman_cloud_s3_requests",
                "HTTP requests sent to S3 by operation, retries included.",
            ),
            MetricType::Counter,
            |emit| {
                for (slot, _, requests) in &self.targets {
                    for (op, n) in &requests.by_operation {
                        emit(
                            &Labels {
                                slot,
                                extra: &[("operation", op.as_str())],
                            },
                            *n as f64,
                        )?;
                    }
                }
                Ok(())
            },
        )?;
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let help = "Tokio tasks alive in the exporter (collection loops, their work, HTTP connections).";
            let mut m = enc.encode_descriptor("barman_cloud_exporter_tasks", help, None, MetricType::Gauge)?;
            let collectors = self.collector_tasks.unwrap_or(0);
            m.encode_gauge(&((handle.metrics().num_alive_tasks() + collectors) as i64))?;
        }
        if let Some((rss, fds)) = process_usage() {
            let help = "Resident memory of the exporter process, bytes (Linux `/proc/self/status` VmRSS).";
            let mut m = enc.encode_descriptor("process_resident_memory_bytes", help, None, MetricType::Gauge)?;
            m.encode_gauge(&(rss as i64))?;
            let help = "Open file descriptors of the exporter process (Linux `/proc/self/fd`).";
            let mut m = enc.encode_descriptor("process_open_fds", help, None, MetricType::Gauge)?;
            m.encode_gauge(&(fds as i64))?;
        }
        let help = self.help("Version and git revision of the exporter.");
        let mut m = enc.encode_descriptor("barman_cloud_exporter_build", &help, None, MetricType::Info)?;
        m.encode_info(&[("version", VERSION), ("revision", REVISION)])
    }
}

/// The process's resident memory (bytes) and open file descriptors, from
/// Linux `/proc/self`; `None` elsewhere.
fn process_usage() -> Option<(u64, u64)> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let fds = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    Some((kb * 1024, fds))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write as _;

    /// One line per sample `name{labels} value`.
    fn sample_lines(openmetrics: &str) -> String {
        let mut out = String::new();
        for l in openmetrics.lines().filter(|l| !l.starts_with('#')) {
            let _ = writeln!(out, "{l}");
        }
        out
    }
    use crate::catalog::analysis::summarize_target;
    use crate::catalog::{ServerCatalog, TargetCatalog};
    use crate::config::Config;
    use std::time::Duration;

    fn store() -> Store {
        let config: Config = serde_yaml_from(
            r#"
interval: 5m
targets:
  - name: t1
    labels: {namespace: ns}
    destination_path: s3://b/p
    servers: [pg-main]
    postgres: {url: "postgresql://u@h/db", server: pg-main}
"#,
        );
        let store = Store::new(&config);
        let mut s = ServerCatalog {
            name: "pg-main".into(),
            ..Default::default()
        };
        s.wal.add(
            "0000000100000000/000000010000000000000001.gz",
            10,
            Some(100.0),
            &Default::default(),
        );
        let orphan = ServerCatalog {
            name: "pg-old".into(),
            ..Default::default()
        };
        let summary = summarize_target(
            &TargetCatalog {
                servers: vec![s, orphan],
                loose: Default::default(),
            },
            &crate::catalog::analysis::AnalysisOptions {
                servers: Some(&["pg-main".to_string()]),
                orphan_after: 7.0 * 86_400.0,
                stuck_after: 86_400.0,
                retention: true,
                now: 1000.0,
            },
        );
        store.targets[0].publish(|t| {
            t.s3.record(Ok(summary), Duration::from_millis(1500));
            if let Some(pg) = &mut t.postgres {
                pg.record(
                    Err(crate::collector::Failure::Postgres(
                        crate::source::postgres::PgError::new(
                            crate::source::postgres::PgErrorReason::Connect,
                            "refused",
                        ),
                    )),
                    Duration::from_millis(3),
                );
            }
        });
        store
    }

    fn serde_yaml_from(yaml: &str) -> Config {
        use figment::providers::{Format, Yaml};
        Config::from_figment(figment::Figment::new().merge(Yaml::string(yaml))).unwrap()
    }

    #[test]
    fn the_snapshot_part_is_cached_until_a_publish_and_live_families_are_fresh() {
        let store = store();
        let up = r#"barman_cloud_collector_up{target="t1",namespace="ns",collector="postgres"}"#;
        let first = render_openmetrics(&store);
        assert!(first.contains(&format!("{up} 0")));
        let cached = store.rendered.lock().unwrap().clone().unwrap();
        // Live counters move without a publish; the cached part is reused.
        store.targets[0].requests.record("ListObjectsV2", "GET");
        let second = render_openmetrics(&store);
        assert!(
            second
                .contains(r#"barman_cloud_s3_requests_total{target="t1",namespace="ns",operation="ListObjectsV2"} 1"#)
        );
        assert!(Arc::ptr_eq(&cached, store.rendered.lock().unwrap().as_ref().unwrap()));
        assert!(second.ends_with("# EOF\n") && second.matches("# EOF").count() == 1);
        // A publish invalidates it.
        store.targets[0].publish(|t| {
            if let Some(pg) = &mut t.postgres {
                pg.up = true;
            }
        });
        let third = render_openmetrics(&store);
        assert!(third.contains(&format!("{up} 1")), "{third}");
        assert!(!Arc::ptr_eq(&cached, store.rendered.lock().unwrap().as_ref().unwrap()));
        // The text format is the conversion of the same exposition.
        let stable = |t: String| {
            t.lines()
                .filter(|l| !l.starts_with("process_"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert!(stable(render_text(&store)) == stable(openmetrics_to_text(&render_openmetrics(&store))));
    }

    #[tokio::test]
    async fn a_publish_wakes_the_prerenderer_which_readies_both_formats() {
        let store = store();
        store.targets[0].publish(|t| t.s3.attempts += 1);
        store.targets[0].publish(|t| t.s3.attempts += 1);
        // Three publishes (one in `store()`), one wake-up (coalesced), then nothing pending.
        tokio::time::timeout(std::time::Duration::from_secs(1), store.published())
            .await
            .expect("a publish wakes the renderer");
        assert!(
            tokio::time::timeout(std::time::Duration::from_millis(50), store.published())
                .await
                .is_err()
        );
        prerender(&store);
        let r = store.rendered.lock().unwrap().clone().expect("rendered");
        assert!(r.text.get().is_some(), "the text format is ready too");
        let current: Vec<_> = store.targets.iter().map(|t| t.snapshot()).collect();
        assert!(r.snapshots.iter().zip(&current).all(|(a, b)| Arc::ptr_eq(a, b)));
        // A scrape now reuses it.
        let _ = render_text(&store);
        assert!(Arc::ptr_eq(&r, store.rendered.lock().unwrap().as_ref().unwrap()));
    }

    #[test]
    fn renders_openmetrics_with_labels_units_and_eof() {
        let om = render_openmetrics(&store());
        let lines = sample_lines(&om);
        for expected in [
            r#"barman_cloud_backups{target="t1",namespace="ns",server="pg-main",status="done"} 0"#,
            r#"barman_cloud_wal_objects{target="t1",namespace="ns",server="pg-main",kind="segment"} 1"#,
            r#"barman_cloud_wal_bytes{target="t1",namespace="ns",server="pg-main",kind="segment"} 10"#,
            r#"barman_cloud_wal_last_archived_timestamp_seconds{target="t1",namespace="ns",server="pg-main"} 100"#,
            r#"barman_cloud_server_orphaned{target="t1",namespace="ns",server="pg-old"} 1"#,
            r#"barman_cloud_orphan_servers{target="t1",namespace="ns"} 1"#,
            r#"barman_cloud_collector_up{target="t1",namespace="ns",collector="s3"} 1"#,
            r#"barman_cloud_collector_up{target="t1",namespace="ns",collector="postgres"} 0"#,
            r#"barman_cloud_collector_duration_seconds{target="t1",namespace="ns",collector="s3"} 1.5"#,
            r#"barman_cloud_collector_errors_total{target="t1",namespace="ns",collector="postgres",reason="connect"} 1"#,
        ] {
            assert!(lines.lines().any(|l| l == expected), "missing {expected}\n{om}");
        }
        assert!(om.contains("# UNIT barman_cloud_wal_bytes bytes"));
        assert!(om.contains("Cached; refreshed every 5m."));
        assert!(om.ends_with("# EOF\n"));
        // no data for a collector that never succeeded
        assert!(!om.contains("barman_cloud_pg_in_recovery{"));
        assert!(om.contains(&format!(r#"barman_cloud_exporter_build_info{{version="{VERSION}""#)));
    }

    #[test]
    fn text_format_renames_counters_and_info() {
        let text = openmetrics_to_text(&render_openmetrics(&store()));
        assert!(text.contains("# TYPE barman_cloud_collector_errors_total counter"));
        assert!(text.contains("# HELP barman_cloud_collector_errors_total "));
        assert!(text.contains("# TYPE barman_cloud_exporter_build_info gauge"));
        assert!(!text.contains("# EOF") && !text.contains("# UNIT"));
    }
}
