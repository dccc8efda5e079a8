//! `/api/status`: every target, collector, server and backup as JSON.
//!
//! The shape is these `#[derive(Serialize)]` types (documented field by field
//! in `docs/api.md`); a collector's `data` is the last good result as the
//! catalogue types serialise it ([`TargetSummary`] for S3, [`ArchiverStatus`]
//! for PostgreSQL). Keys are a contract: they are added, never renamed or
//! removed. Times are Unix seconds (floats), durations seconds, sizes bytes.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::response::{IntoResponse, Json, Response};
use serde::Serialize;

use super::AppState;

use crate::catalog::analysis::TargetSummary;
use crate::snapshot::{CollectorState, Store, TargetSlot, TargetSnapshot};
use crate::source::postgres::ArchiverStatus;
use crate::source::s3::WalkStats;

/// The whole document.
#[derive(Debug, Serialize)]
pub struct Status<'a> {
    /// Exporter version (the crate version, as in `barman_cloud_exporter_build_info`).
    pub version: &'static str,
    /// Git revision the binary was built from.
    pub revision: &'static str,
    /// Whether every target finished its first collection (as `/readyz`).
    pub ready: bool,
    /// The share of the configured targets this replica collects
    /// (`--shard`/`--total-shards`; shard 0 of 1 when not sharded).
    pub shard: ShardStatus,
    /// One entry per target this replica collects, in configuration order.
    pub targets: Vec<TargetStatus<'a>>,
}

/// This replica's shard (`barman_cloud_exporter_shard{shard,total}`).
#[derive(Debug, Serialize)]
pub struct ShardStatus {
    /// This replica's shard, 0-based.
    pub index: u32,
    /// How many shards the configured targets are spread over (1: not sharded).
    pub total: u32,
}

/// One target.
#[derive(Debug, Serialize)]
pub struct TargetStatus<'a> {
    /// Target name (the `target` label).
    pub name: &'a str,
    /// The target's static labels: label name → value.
    pub labels: BTreeMap<&'a str, &'a str>,
    /// `destination_path` (`s3://bucket/prefix`).
    pub destination_path: &'a str,
    /// `endpoint_url`, or `AWS` without one.
    pub endpoint: &'a str,
    /// serverName the PostgreSQL cluster archives to (`null` without `postgres`).
    pub postgres_server: Option<&'a str>,
    /// The S3 catalogue walk.
    pub s3: CollectorStatus<'a, TargetSummary>,
    /// `pg_stat_archiver` (`null` when the target has no `postgres`).
    pub postgres: Option<CollectorStatus<'a, ArchiverStatus>>,
    /// S3 requests sent since start, per S3 operation (e.g. `ListObjectsV2`): a count.
    pub s3_requests: BTreeMap<String, u64>,
    /// Successful S3 walks since start, per kind (`full`, `incremental`): a count.
    pub s3_walks: &'a BTreeMap<&'static str, u64>,
    /// The work of the last successful S3 walk (`null` before the first).
    pub s3_last_walk: Option<&'a WalkStats>,
}

/// One collector of a target.
#[derive(Debug, Serialize)]
pub struct CollectorStatus<'a, T> {
    /// Whether the last attempt succeeded (`barman_cloud_collector_up`).
    pub up: bool,
    /// Completed attempts since start (success or failure): a count.
    pub attempts: u64,
    /// End of the last successful attempt, Unix seconds (`null` before the first).
    pub last_success: Option<f64>,
    /// Wall time of the last attempt, seconds.
    pub last_duration_seconds: Option<f64>,
    /// Message of the last error (never a credential; kept after a later success).
    pub last_error: Option<&'a str>,
    /// When the last error happened, Unix seconds.
    pub last_error_time: Option<f64>,
    /// Errors since start per bounded reason (the `reason` label of
    /// `barman_cloud_collector_errors_total`): a count.
    pub errors: &'a BTreeMap<&'static str, u64>,
    /// The last good result (kept while later attempts fail; `null` before the first success).
    pub data: Option<&'a T>,
}

impl<'a, T> CollectorStatus<'a, T> {
    /// The status of one collector state.
    pub fn of(c: &'a CollectorState<T>) -> Self {
        Self {
            up: c.up,
            attempts: c.attempts,
            last_success: c.last_success,
            last_duration_seconds: c.last_duration,
            last_error: c.last_error.as_deref(),
            last_error_time: c.last_error_time,
            errors: &c.errors,
            data: c.last_good.as_deref(),
        }
    }
}

impl<'a> TargetStatus<'a> {
    /// The status of one target from its slot and a snapshot of it.
    pub fn of(slot: &'a TargetSlot, snap: &'a TargetSnapshot) -> Self {
        Self {
            name: &slot.name,
            labels: slot.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
            destination_path: &slot.destination_path,
            endpoint: &slot.endpoint,
            postgres_server: slot.postgres_server.as_deref(),
            s3: CollectorStatus::of(&snap.s3),
            postgres: snap.postgres.as_ref().map(CollectorStatus::of),
            s3_requests: slot.requests.snapshot().by_operation,
            s3_walks: &snap.walks,
            s3_last_walk: snap.last_walk.as_ref(),
        }
    }
}

/// The document for `store`, whose targets' current snapshots are `snaps` (same order).
pub fn status<'a>(store: &'a Store, snaps: &'a [std::sync::Arc<TargetSnapshot>]) -> Status<'a> {
    Status {
        version: crate::metrics::VERSION,
        revision: crate::metrics::REVISION,
        ready: store.ready(),
        shard: ShardStatus {
            index: store.shard.index,
            total: store.shard.total,
        },
        targets: store
            .targets
            .iter()
            .zip(snaps)
            .map(|(slot, snap)| TargetStatus::of(slot, snap))
            .collect(),
    }
}

/// `GET /api/status`.
pub async fn handler(State(state): State<AppState>) -> Response {
    let snaps: Vec<_> = state.store.targets.iter().map(|t| t.snapshot()).collect();
    Json(status(&state.store, &snaps)).into_response()
}
