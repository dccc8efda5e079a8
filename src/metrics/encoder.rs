//! The collector that turns a store's snapshots into the families of the
//! [`catalogue`](super::catalogue): it reads values and hands them to the
//! OpenMetrics encoder, nothing more (the joins and arithmetic live in
//! [`crate::catalog`]).

use std::collections::BTreeMap;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabel, EncodeLabelSet, LabelSetEncoder, MetricEncoder, NoLabelSet,
};
use prometheus_client::metrics::MetricType;

use super::catalogue::{self as c, Family, label};
use super::process::ProcessFigures;
use crate::catalog::Usage;
use crate::catalog::analysis::{ServerSummary, TargetSummary};
use crate::catalog::archiver;
use crate::catalog::key::WalKind;
use crate::catalog::retention::LeftoverReason;
use crate::config::Provider;
use crate::snapshot::{Store, TargetSlot, TargetSnapshot};
use crate::source::postgres::{ArchiverStatus, PgErrorReason};
use crate::source::s3::{RequestCounts, S3ErrorReason};

/// The figures read at each scrape rather than from the snapshots.
#[derive(Debug, Clone, PartialEq)]
pub struct Live {
    /// Tokio tasks alive in the exporter (`barman_cloud_exporter_tasks`);
    /// `None` outside a runtime.
    pub tasks: Option<usize>,
    /// The `process_*` figures (each `None` where unavailable: off Linux).
    pub process: ProcessFigures,
    /// `version` label of the build info.
    pub version: String,
    /// `revision` label of the build info.
    pub revision: String,
}

impl Live {
    /// The figures now: tasks of the current runtime plus the store's
    /// collector runtime, this process's `/proc/self`, the build's version.
    pub fn now(store: &Store) -> Self {
        let collectors = store
            .collector_runtime
            .get()
            .map_or(0, |h| h.metrics().num_alive_tasks());
        Self {
            tasks: tokio::runtime::Handle::try_current()
                .ok()
                .map(|h| h.metrics().num_alive_tasks() + collectors),
            process: ProcessFigures::read(),
            version: super::VERSION.into(),
            revision: super::REVISION.into(),
        }
    }
}

/// What one encoding pass reads: the snapshots of every target and, for the
/// live part, the figures read at the scrape.
#[derive(Debug)]
pub(super) struct View {
    interval: String,
    targets: Vec<(Arc<TargetSlot>, Arc<TargetSnapshot>, RequestCounts)>,
    /// Encode the live families instead of the snapshot ones.
    live: Option<Live>,
    /// The store's shard.
    shard: crate::shard::Shard,
}

impl View {
    /// The snapshot families of the store's current snapshots.
    pub(super) fn snapshots(store: &Store) -> Self {
        Self::of(store, None)
    }

    /// The live families with `live`'s figures.
    pub(super) fn live(store: &Store, live: Live) -> Self {
        Self::of(store, Some(live))
    }

    fn of(store: &Store, live: Option<Live>) -> Self {
        View {
            interval: humantime::format_duration(store.interval).to_string(),
            targets: store
                .targets
                .iter()
                .map(|slot| (slot.clone(), slot.snapshot(), slot.requests.snapshot()))
                .collect(),
            live,
            shard: store.shard,
        }
    }
}

/// A label set: `target`, the target's static labels, then the family's
/// labels with `values` (as many as the family has labels).
struct Labels<'a> {
    slot: &'a TargetSlot,
    names: &'static [&'static str],
    values: &'a [&'a str],
}

impl EncodeLabelSet for Labels<'_> {
    fn encode(&self, encoder: &mut LabelSetEncoder) -> Result<(), std::fmt::Error> {
        (label::TARGET, self.slot.name.as_str()).encode(encoder.encode_label())?;
        for (k, v) in &self.slot.labels {
            (k.as_str(), v.as_str()).encode(encoder.encode_label())?;
        }
        for (k, v) in self.names.iter().zip(self.values) {
            (*k, *v).encode(encoder.encode_label())?;
        }
        Ok(())
    }
}

/// A sink for one family's samples: `(target slot, label values, value)`.
type Emit<'e> = dyn FnMut(&TargetSlot, &[&str], f64) -> Result<(), std::fmt::Error> + 'e;

type ServerValue = fn(&ServerSummary) -> Option<f64>;

/// Per-server gauges without labels of their own, in exposition order.
const SERVER_GAUGES: &[(&Family, ServerValue)] = &[
    (&c::BACKUP_LAST_SUCCESS, |s| s.last_success_timestamp),
    (&c::FIRST_RECOVERABILITY_POINT, |s| s.first_recoverability_point),
    (&c::BACKUP_LAST_FAILURE, |s| s.last_failure_timestamp),
    (&c::BACKUP_LAST_DURATION, |s| s.last_duration_seconds),
    (&c::BACKUP_LAST_SIZE, |s| s.last_size_bytes.map(|b| b as f64)),
    (&c::BASE_BYTES, |s| Some(s.base.bytes as f64)),
    (&c::BASE_OBJECTS, |s| Some(s.base.objects as f64)),
    (&c::WAL_LAST_ARCHIVED, |s| s.wal_last_archived_timestamp),
    (&c::SERVER_ORPHANED, |s| Some(f64::from(u8::from(s.orphaned)))),
    (&c::WAL_MISSING_SEGMENTS, |s| {
        s.continuity.as_ref().and_then(|c| c.missing_segments).map(|m| m as f64)
    }),
    (&c::BACKUPS_RESTORABLE, |s| {
        Some(s.continuity.as_ref().map_or(0, |c| c.restorable.len()) as f64)
    }),
    (&c::BACKUPS_INCOMPLETE, |s| Some(s.incomplete as f64)),
    (&c::BACKUP_LAST_INCOMPLETE, |s| {
        s.last_incomplete.map(|b| f64::from(u8::from(b)))
    }),
    (&c::WAL_TIMELINE, |s| {
        s.continuity.as_ref().map(|c| f64::from(c.timeline))
    }),
    (&c::WAL_ARCHIVED_LSN, |s| {
        s.continuity.as_ref().map(|c| c.archived_lsn as f64)
    }),
    (&c::RECOVERY_WINDOW_END, |s| {
        s.continuity.as_ref().and_then(|c| c.recovery_window_end)
    }),
    (&c::RETENTION_OBSOLETE, |s| {
        s.retention.as_ref().map(|r| r.obsolete_backups.len() as f64)
    }),
    (&c::RETENTION_RECLAIMABLE, |s| {
        s.retention.as_ref().map(|r| r.reclaimable_bytes as f64)
    }),
    (&c::BACKUPS_STUCK, |s| Some(s.stuck as f64)),
    (&c::BACKUP_INTERVAL, |s| s.interval_seconds),
    (&c::SERVER_SYSTEMS, |s| Some(s.systems as f64)),
];

type TargetValue = fn(&TargetSummary) -> f64;

/// Per-target gauges, in exposition order.
const TARGET_GAUGES: &[(&Family, TargetValue)] = &[
    (&c::ORPHAN_BYTES, |t| t.orphan_bytes as f64),
    (&c::ORPHAN_SERVERS, |t| t.orphan_servers as f64),
    (&c::STORAGE_BYTES, |t| t.storage.bytes as f64),
    (&c::STORAGE_OBJECTS, |t| t.storage.objects as f64),
];

type PgValue = fn(&ArchiverStatus) -> Option<f64>;

/// PostgreSQL figures, in exposition order.
const PG_FAMILIES: &[(&Family, PgValue)] = &[
    (&c::PG_PENDING_SEGMENTS, |a| {
        archiver::pending_segments(
            a.last_archived_wal.as_deref()?,
            a.current_wal_file.as_deref()?,
            a.wal_segment_size?,
        )
        .map(|p| p as f64)
    }),
    (&c::PG_ARCHIVED, |a| Some(a.archived_count as f64)),
    (&c::PG_FAILED, |a| Some(a.failed_count as f64)),
    (&c::PG_LAST_ARCHIVED, |a| a.last_archived_time),
    (&c::PG_LAST_FAILED, |a| a.last_failed_time),
    (&c::PG_IN_RECOVERY, |a| Some(f64::from(u8::from(a.in_recovery)))),
    (&c::PG_CURRENT_WAL_LSN, |a| a.current_wal_lsn.map(|l| l as f64)),
];

/// `(up, last duration, last success)` of a collector → the value of one family.
type CollectorValue = fn(bool, Option<f64>, Option<f64>) -> Option<f64>;

const COLLECTOR_FAMILIES: &[(&Family, CollectorValue)] = &[
    (&c::COLLECTOR_UP, |up, _, _| Some(f64::from(u8::from(up)))),
    (&c::COLLECTOR_DURATION, |_, d, _| d),
    (&c::COLLECTOR_LAST_SUCCESS, |_, _, t| t),
];

/// Every bounded reason at 0, plus the counts so far (a reason outside the
/// bounded set is kept rather than dropped), by label value.
fn with_zeros<'a>(
    bounded: impl IntoIterator<Item = &'a str>,
    counts: impl IntoIterator<Item = (&'a str, u64)>,
) -> BTreeMap<&'a str, u64> {
    let mut out: BTreeMap<&str, u64> = bounded.into_iter().map(|r| (r, 0)).collect();
    for (r, n) in counts {
        *out.entry(r).or_default() += n;
    }
    out
}

/// `barman_cloud_collector_errors_total` of one target: `(collector, reason, count)`
/// for every reason of each configured collector (a target without
/// `postgres` has no postgres series).
pub(super) fn collector_errors(snap: &TargetSnapshot) -> Vec<(&'static str, &'static str, u64)> {
    let s3 = with_zeros(
        S3ErrorReason::ALL.iter().map(|r| r.as_str()),
        snap.s3.errors.iter().map(|(r, n)| (*r, *n)),
    );
    let mut out: Vec<_> = s3.into_iter().map(|(r, n)| ("s3", r, n)).collect();
    if let Some(pg) = &snap.postgres {
        let pg = with_zeros(
            PgErrorReason::ALL.iter().map(|r| r.as_str()),
            pg.errors.iter().map(|(r, n)| (*r, *n)),
        );
        out.extend(pg.into_iter().map(|(r, n)| ("postgres", r, n)));
    }
    out
}

/// `barman_cloud_s3_requests_total` of one target of `provider`: every
/// operation of [`Provider::operations`] (at 0 until sent) plus any other
/// that was counted.
pub(super) fn s3_requests(provider: Provider, requests: &RequestCounts) -> BTreeMap<&str, u64> {
    with_zeros(
        provider.operations().iter().copied(),
        requests.by_operation.iter().map(|(op, n)| (op.as_str(), *n)),
    )
}

impl View {
    fn help(&self, f: &Family) -> String {
        if f.cached {
            format!("{} Cached; refreshed every {}.", f.help, self.interval)
        } else {
            f.help.to_string()
        }
    }

    /// Encodes family `f` with the samples `samples` hands to its sink.
    fn family(
        &self,
        enc: &mut DescriptorEncoder,
        f: &Family,
        samples: impl FnOnce(&mut Emit) -> Result<(), std::fmt::Error>,
    ) -> Result<(), std::fmt::Error> {
        let help = self.help(f);
        let unit = f.unit.map(|u| u.unit());
        let mut m = enc.encode_descriptor(f.name, &help, unit.as_ref(), f.kind)?;
        samples(&mut |slot, values, value| {
            debug_assert_eq!(values.len(), f.labels.len(), "label values of {}", f.name);
            let labels = Labels {
                slot,
                names: f.labels,
                values,
            };
            encode_value(&mut m, &labels, f.kind, value)
        })
    }

    /// Encodes an unlabelled family with one value, when there is one.
    fn single(&self, enc: &mut DescriptorEncoder, f: &Family, value: Option<f64>) -> Result<(), std::fmt::Error> {
        let Some(value) = value else { return Ok(()) };
        let help = self.help(f);
        let unit = f.unit.map(|u| u.unit());
        let mut m = enc.encode_descriptor(f.name, &help, unit.as_ref(), f.kind)?;
        encode_number(&mut m, f.kind, value)
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

    /// Encodes a per-server pair of families, objects then bytes, over the
    /// `(label value, usage)` pairs `per_server` yields.
    fn usage_pair(
        &self,
        enc: &mut DescriptorEncoder,
        objects: &Family,
        bytes: &Family,
        per_server: impl Fn(&ServerSummary) -> Vec<(&'static str, Usage)>,
    ) -> Result<(), std::fmt::Error> {
        for (f, pick) in [
            (objects, Usage::objects as fn(&Usage) -> u64),
            (bytes, |u: &Usage| u.bytes),
        ] {
            self.family(enc, f, |emit| {
                for (slot, s) in self.servers() {
                    for (value, usage) in per_server(s) {
                        emit(slot, &[&s.name, value], pick(&usage) as f64)?;
                    }
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    fn encode_servers(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.family(enc, &c::BACKUPS, |emit| {
            for (slot, s) in self.servers() {
                let b = &s.backups;
                for (status, n) in [
                    ("done", b.done),
                    ("failed", b.failed),
                    ("started", b.started),
                    ("other", b.other),
                    ("unreadable", b.unreadable),
                ] {
                    emit(slot, &[&s.name, status], n as f64)?;
                }
            }
            Ok(())
        })?;
        for (f, value) in SERVER_GAUGES {
            self.family(enc, f, |emit| {
                for (slot, s) in self.servers() {
                    if let Some(v) = value(s) {
                        emit(slot, &[&s.name], v)?;
                    }
                }
                Ok(())
            })?;
        }
        self.usage_pair(enc, &c::WAL_OBJECTS, &c::WAL_BYTES, |s| {
            WalKind::ALL.iter().map(|k| (k.as_str(), s.wal_usage(*k))).collect()
        })?;
        self.usage_pair(enc, &c::LEFTOVER_OBJECTS, &c::LEFTOVER_BYTES, |s| {
            LeftoverReason::ALL
                .iter()
                .filter_map(|r| Some((r.as_str(), s.leftover(*r)?)))
                .collect()
        })?;
        self.usage_pair(enc, &c::ARCHIVE_TIER_OBJECTS, &c::ARCHIVE_TIER_BYTES, |s| {
            vec![("base", s.archive_tier.base), ("wals", s.archive_tier.wals)]
        })
    }

    fn encode_targets(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (f, value) in TARGET_GAUGES {
            self.family(enc, f, |emit| {
                for (slot, snap, _) in &self.targets {
                    if let Some(t) = &snap.s3.last_good {
                        emit(slot, &[], value(t))?;
                    }
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    fn encode_postgres(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (f, value) in PG_FAMILIES {
            self.family(enc, f, |emit| {
                for (slot, snap, _) in &self.targets {
                    if let Some(a) = snap.postgres.as_ref().and_then(|p| p.last_good.as_ref())
                        && let Some(v) = value(a)
                    {
                        emit(slot, &[slot.postgres_server.as_deref().unwrap_or("")], v)?;
                    }
                }
                Ok(())
            })?;
        }
        self.family(enc, &c::PG_LAST_ARCHIVED_IN_STORAGE, |emit| {
            for (slot, snap, _) in &self.targets {
                let pg = snap.postgres.as_ref().and_then(|p| p.last_good.as_ref());
                let (Some(pg), Some(s3), Some(server)) =
                    (pg, snap.s3.last_good.as_ref(), slot.postgres_server.as_deref())
                else {
                    continue;
                };
                let Some(found) = archiver::last_archived_wal_in_storage(s3, server, pg.last_archived_wal.as_deref())
                else {
                    continue;
                };
                emit(slot, &[server], f64::from(u8::from(found)))?;
            }
            Ok(())
        })
    }

    fn encode_self(&self, enc: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        self.family(enc, &c::TARGET_INFO, |emit| {
            for (slot, _, _) in &self.targets {
                let destination = slot.destination_path.split(['?', '#']).next().unwrap_or_default();
                emit(slot, &[slot.provider.as_str(), destination], 1.0)?;
            }
            Ok(())
        })?;
        for (f, value) in COLLECTOR_FAMILIES {
            self.family(enc, f, |emit| {
                for (slot, snap, _) in &self.targets {
                    let s3 = &snap.s3;
                    if s3.attempts > 0
                        && let Some(v) = value(s3.up, s3.last_duration, s3.last_success)
                    {
                        emit(slot, &["s3"], v)?;
                    }
                    if let Some(pg) = &snap.postgres
                        && pg.attempts > 0
                        && let Some(v) = value(pg.up, pg.last_duration, pg.last_success)
                    {
                        emit(slot, &["postgres"], v)?;
                    }
                }
                Ok(())
            })?;
        }
        self.family(enc, &c::COLLECTOR_ERRORS, |emit| {
            for (slot, snap, _) in &self.targets {
                for (collector, reason, n) in collector_errors(snap) {
                    emit(slot, &[collector, reason], n as f64)?;
                }
            }
            Ok(())
        })?;
        self.family(enc, &c::S3_WALKS, |emit| {
            for (slot, snap, _) in &self.targets {
                for (kind, n) in &snap.walks {
                    emit(slot, &[kind], *n as f64)?;
                }
            }
            Ok(())
        })
    }

    /// The families read live at every scrape: request counters, runtime and
    /// process figures, build info.
    fn encode_live(&self, enc: &mut DescriptorEncoder, live: &Live) -> Result<(), std::fmt::Error> {
        self.family(enc, &c::S3_REQUESTS, |emit| {
            for (slot, _, requests) in &self.targets {
                for (op, n) in s3_requests(slot.provider, requests) {
                    emit(slot, &[op], n as f64)?;
                }
            }
            Ok(())
        })?;
        self.single(enc, &c::EXPORTER_TASKS, live.tasks.map(|t| t as f64))?;
        let f = &c::SHARD_INFO;
        let help = self.help(f);
        let mut m = enc.encode_descriptor(f.name, &help, None, f.kind)?;
        debug_assert_eq!(f.labels, [label::SHARD, label::TOTAL]);
        let (shard, total) = (self.shard.index.to_string(), self.shard.total.to_string());
        let labels = [(f.labels[0], shard.as_str()), (f.labels[1], total.as_str())];
        encode_value(&mut m, &labels, f.kind, 1.0)?;
        self.single(enc, &c::TOTAL_SHARDS, Some(f64::from(self.shard.total)))?;
        let p = &live.process;
        let as_f64 = |v: Option<u64>| v.map(|v| v as f64);
        self.single(enc, &c::PROCESS_RESIDENT_MEMORY, as_f64(p.resident_memory_bytes))?;
        self.single(enc, &c::PROCESS_OPEN_FDS, as_f64(p.open_fds))?;
        self.single(enc, &c::PROCESS_CPU, p.cpu_seconds)?;
        self.single(enc, &c::PROCESS_START_TIME, p.start_time_seconds)?;
        self.single(enc, &c::PROCESS_VIRTUAL_MEMORY, as_f64(p.virtual_memory_bytes))?;
        self.single(enc, &c::PROCESS_MAX_FDS, as_f64(p.max_fds))?;
        let f = &c::BUILD_INFO;
        let help = self.help(f);
        let mut m = enc.encode_descriptor(f.name, &help, None, f.kind)?;
        debug_assert_eq!(f.labels, [label::VERSION, label::REVISION]);
        m.encode_info(&[
            (f.labels[0], live.version.as_str()),
            (f.labels[1], live.revision.as_str()),
        ])
    }
}

fn encode_value(
    m: &mut MetricEncoder,
    labels: &impl EncodeLabelSet,
    kind: MetricType,
    value: f64,
) -> Result<(), std::fmt::Error> {
    encode_number(&mut m.encode_family(labels)?, kind, value)
}

/// Writes one sample of `kind` with `value` on `fm` (labels already set).
fn encode_number(fm: &mut MetricEncoder, kind: MetricType, value: f64) -> Result<(), std::fmt::Error> {
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
        if let Some(live) = &self.live {
            return self.encode_live(&mut enc, live);
        }
        self.encode_servers(&mut enc)?;
        self.encode_targets(&mut enc)?;
        self.encode_postgres(&mut enc)?;
        self.encode_self(&mut enc)
    }
}
