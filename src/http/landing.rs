//! The landing page at `/`: each target's collectors, servers and backups,
//! with a picture per server ([`super::timeline`]).
//!
//! The page is an askama template (`templates/landing.html`): every value is
//! escaped by the template engine, the markup lives in the template, and the
//! view below is plain data built from the snapshots (pure, unit-tested).

use askama::Template;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::AppState;
use super::timeline::{self, Timeline, utc};
use crate::catalog::analysis::ServerSummary;
use crate::catalog::retention::LeftoverReason;
use crate::snapshot::{CollectorState, TargetSnapshot, unix_now};

/// `GET /`: the page for the current snapshots.
pub async fn page(State(state): State<AppState>) -> Response {
    let now = unix_now();
    let targets = state
        .store
        .targets
        .iter()
        .enumerate()
        .map(|(i, slot)| {
            let snap = slot.snapshot();
            target_view(i, (&slot.name, &slot.destination_path, &slot.endpoint), &snap, now)
        })
        .collect();
    let page = Landing {
        version: crate::metrics::VERSION.to_string(),
        telemetry_path: state.telemetry_path.clone(),
        shard: state
            .store
            .shard
            .is_sharded()
            .then_some((state.store.shard.index, state.store.shard.total)),
        targets,
    };
    match page.render() {
        Ok(html) => Html(html).into_response(),
        // Rendering fails only if a value's Display fails; say so rather than serve half a page.
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("landing page: {e}\n")).into_response(),
    }
}

/// The whole page.
#[derive(Debug, Template)]
#[template(path = "landing.html")]
pub struct Landing {
    /// Exporter version.
    pub version: String,
    /// Path of the metrics (`--web.telemetry-path`).
    pub telemetry_path: String,
    /// `(shard, total shards)` when the targets are sharded over replicas.
    pub shard: Option<(u32, u32)>,
    /// One section per target this replica collects, in configuration order.
    pub targets: Vec<TargetView>,
}

/// What the page shows of one target.
#[derive(Debug)]
pub struct TargetView {
    /// Target name.
    pub name: String,
    /// `destination_path`.
    pub destination_path: String,
    /// `endpoint_url` or `AWS`.
    pub endpoint: String,
    /// The S3 collector, then PostgreSQL when configured.
    pub collectors: Vec<CollectorRow>,
    /// Whether an S3 walk has succeeded yet (the server tables need one).
    pub has_summary: bool,
    /// One entry per server prefix of the last good walk.
    pub servers: Vec<ServerView>,
}

/// State of a collector as shown in its table cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// No attempt yet.
    Pending,
    /// The last attempt succeeded.
    Up,
    /// The last attempt failed.
    Down,
}

/// One collector's row.
#[derive(Debug)]
pub struct CollectorRow {
    /// `s3` or `postgres`.
    pub name: &'static str,
    /// Its state.
    pub health: Health,
    /// End of the last success, formatted UTC.
    pub last_success: String,
    /// The last error message, or `–`.
    pub last_error: String,
}

/// Whether a backup can be restored to the newest WAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restorable {
    /// Not a DONE backup: the question does not apply.
    NotApplicable,
    /// Yes.
    Yes,
    /// No: a WAL gap, or off the path to the newest timeline.
    No,
}

/// One backup's row.
#[derive(Debug)]
pub struct BackupRow {
    /// Backup id.
    pub id: String,
    /// Status.
    pub status: String,
    /// `begin_time`, formatted UTC.
    pub begin: String,
    /// `end_time`, formatted UTC.
    pub end: String,
    /// Timeline, or `–`.
    pub timeline: String,
    /// `begin_wal`, or `?`.
    pub begin_wal: String,
    /// `end_wal`, or `?`.
    pub end_wal: String,
    /// Bytes under `base/<id>/`.
    pub bytes: u64,
    /// Restorable to the newest WAL.
    pub restorable: Restorable,
    /// Why not, `; `-joined (payload problems, then the WAL reason), or empty.
    pub why_not: String,
    /// Error text, or empty.
    pub error: String,
}

/// What the page shows of one server.
#[derive(Debug)]
pub struct ServerView {
    /// serverName.
    pub name: String,
    /// Backups by status: DONE, FAILED, STARTED, unreadable.
    pub counts: [u64; 4],
    /// End of the newest DONE backup, formatted UTC.
    pub last_success: String,
    /// Highest WAL segment name, or `–`.
    pub newest_wal: String,
    /// Its `LastModified`, formatted UTC.
    pub newest_wal_time: String,
    /// Whether the prefix is orphaned.
    pub orphaned: bool,
    /// Newest timeline, or `–`.
    pub timeline: String,
    /// Newest full segment on it, or `–`.
    pub continuity_newest: String,
    /// Missing segments (`None` when unknown).
    pub missing: Option<u64>,
    /// First missing segment, or `–`.
    pub first_missing: String,
    /// `first recoverability point → recovery window end`.
    pub window: String,
    /// Number of restorable backups.
    pub restorable: usize,
    /// Unprotected WAL before the first backup.
    pub leftover: String,
    /// The retention simulation's figures.
    pub retention: String,
    /// Every backup, oldest first.
    pub backups: Vec<BackupRow>,
    /// The picture.
    pub picture: Timeline,
}

fn collector_row<T>(name: &'static str, c: &CollectorState<T>) -> CollectorRow {
    CollectorRow {
        name,
        health: if c.attempts == 0 {
            Health::Pending
        } else if c.up {
            Health::Up
        } else {
            Health::Down
        },
        last_success: utc(c.last_success),
        last_error: c.last_error.clone().unwrap_or_else(|| "–".into()),
    }
}

/// The view of one server; `id` is unique on the page (`[a-z0-9-]`), `now` in Unix seconds.
pub fn server_view(id: &str, s: &ServerSummary, now: f64) -> ServerView {
    let c = s.continuity.as_ref();
    let restorable = |id: &str| c.is_some_and(|c| c.restorable.iter().any(|r| r == id));
    ServerView {
        name: s.name.clone(),
        counts: [
            s.backups.done,
            s.backups.failed,
            s.backups.started,
            s.backups.unreadable,
        ],
        last_success: utc(s.last_success_timestamp),
        newest_wal: s.wal_newest_segment.clone().unwrap_or_else(|| "–".into()),
        newest_wal_time: utc(s.wal_last_archived_timestamp),
        orphaned: s.orphaned,
        timeline: c.map_or_else(|| "–".into(), |c| c.timeline.to_string()),
        continuity_newest: c.map_or_else(|| "–".into(), |c| c.newest_segment.clone()),
        missing: c.and_then(|c| c.missing_segments),
        first_missing: c.and_then(|c| c.first_missing.clone()).unwrap_or_else(|| "–".into()),
        window: format!(
            "{} → {}",
            utc(s.first_recoverability_point),
            utc(c.and_then(|c| c.recovery_window_end))
        ),
        restorable: c.map_or(0, |c| c.restorable.len()),
        leftover: s
            .leftover(LeftoverReason::Unprotected)
            .map_or_else(|| "–".into(), |u| format!("{} objects, {} bytes", u.objects, u.bytes)),
        retention: s.retention.as_ref().map_or_else(
            || "not configured".into(),
            |r| {
                if r.blocked {
                    "blocked (unreadable backup.info)".to_string()
                } else {
                    format!("{} / {} bytes", r.obsolete_backups.len(), r.reclaimable_bytes)
                }
            },
        ),
        backups: s
            .backup_list
            .iter()
            .map(|b| BackupRow {
                id: b.id.clone(),
                status: b.status.clone(),
                begin: utc(b.begin_time),
                end: utc(b.end_time),
                timeline: b.timeline.map_or_else(|| "–".into(), |t| t.to_string()),
                begin_wal: b.begin_wal.clone().unwrap_or_else(|| "?".into()),
                end_wal: b.end_wal.clone().unwrap_or_else(|| "?".into()),
                bytes: b.bytes,
                restorable: if b.status != "DONE" {
                    Restorable::NotApplicable
                } else if restorable(&b.id) {
                    Restorable::Yes
                } else {
                    Restorable::No
                },
                why_not: b.not_restorable.join("; "),
                error: b.error.clone().unwrap_or_default(),
            })
            .collect(),
        picture: timeline::build(id, s, now),
    }
}

/// The view of one target; `index` is its position (for unique element ids).
pub fn target_view(
    index: usize,
    (name, destination_path, endpoint): (&str, &str, &str),
    snap: &TargetSnapshot,
    now: f64,
) -> TargetView {
    let mut collectors = vec![collector_row("s3", &snap.s3)];
    collectors.extend(snap.postgres.as_ref().map(|p| collector_row("postgres", p)));
    let summary = snap.s3.last_good.as_deref();
    TargetView {
        name: name.to_string(),
        destination_path: destination_path.to_string(),
        endpoint: endpoint.to_string(),
        collectors,
        has_summary: summary.is_some(),
        servers: summary
            .into_iter()
            .flat_map(|t| &t.servers)
            .enumerate()
            .map(|(j, s)| server_view(&format!("tl-{index}-{j}"), s, now))
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::analysis::{AnalysisOptions, TargetSummary, summarize_server};
    use crate::catalog::backup_info::BackupInfo;
    use crate::catalog::{BackupDir, BackupInfoState, ServerCatalog};
    use std::sync::Arc;

    fn summary() -> TargetSummary {
        let info = "status=FAILED\nbegin_time=2025-11-01 02:00:00+00:00\nerror=boom <b>&\n";
        let server = ServerCatalog {
            name: "pg-<main>".into(),
            backups: vec![BackupDir {
                id: "20251101T020000".into(),
                objects: 1,
                bytes: 10,
                barman_bytes: 10,
                keep: None,
                info: BackupInfoState::Parsed(std::sync::Arc::new(BackupInfo::parse(info.as_bytes()).unwrap())),
                tars: Vec::new(),
            }],
            ..Default::default()
        };
        let opts = AnalysisOptions {
            servers: None,
            orphan_after: 1e9,
            stuck_after: 1e9,
            retention: false,
            now: 1_762_000_000.0,
        };
        TargetSummary {
            servers: vec![summarize_server(&server, &opts)],
            orphan_servers: 0,
            orphan_bytes: 0,
            storage: Default::default(),
        }
    }

    /// A snapshot after one successful walk.
    fn done(summary: TargetSummary) -> TargetSnapshot {
        TargetSnapshot {
            s3: CollectorState {
                last_good: Some(Arc::new(summary)),
                up: true,
                attempts: 1,
                last_success: Some(1_762_000_000.0),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn the_page_escapes_every_value_and_pictures_every_server() {
        let snap = done(summary());
        let page = Landing {
            version: "1<2".into(),
            telemetry_path: "/m\"x".into(),
            shard: Some((1, 3)),
            targets: vec![target_view(0, ("t&", "s3://b/p", "http://e"), &snap, 1_762_000_000.0)],
        }
        .render()
        .unwrap();
        for raw in ["pg-<main>", "boom <b>", "1<2", "/m\"x", "t& "] {
            assert!(!page.contains(raw), "{raw} unescaped");
        }
        assert!(
            page.contains("Target t&#38;") || page.contains("Target t&amp;"),
            "{page}"
        );
        assert_eq!(page.matches("<svg class=\"timeline\"").count(), 1);
        assert_eq!(page.matches("<g class=\"backup\"").count(), 1);
        assert!(page.contains("<span class=up>up</span>"));
        assert!(page.contains("Shard 1 of 3 (numbered from 0): this replica collects only the 1 target(s)"));
    }

    #[test]
    fn a_backup_that_is_not_restorable_says_why() {
        let mut t = summary();
        let info = "status=DONE\nbegin_time=2025-11-02 02:00:00+00:00\nend_time=2025-11-02 02:05:00+00:00\n\
                    timeline=1\nbegin_wal=000000010000000000000002\nend_wal=000000010000000000000002\n";
        let server = ServerCatalog {
            name: "pg".into(),
            backups: vec![BackupDir {
                id: "20251102T020000".into(),
                objects: 1,
                bytes: 10,
                barman_bytes: 10,
                keep: None,
                info: BackupInfoState::Parsed(std::sync::Arc::new(BackupInfo::parse(info.as_bytes()).unwrap())),
                tars: Vec::new(),
            }],
            ..Default::default()
        };
        let opts = AnalysisOptions {
            servers: None,
            orphan_after: 1e9,
            stuck_after: 1e9,
            retention: false,
            now: 1_762_000_000.0,
        };
        t.servers = vec![summarize_server(&server, &opts)];
        let view = target_view(0, ("t", "s3://b/p", "AWS"), &done(t), 0.0);
        let row = &view.servers[0].backups[0];
        assert_eq!(row.restorable, Restorable::No);
        assert_eq!(row.why_not, "data tar missing; no WAL in the archive");
        let page = Landing {
            version: "1".into(),
            telemetry_path: "/metrics".into(),
            shard: None,
            targets: vec![view],
        }
        .render()
        .unwrap();
        assert!(
            page.contains("<span class=down>no</span>: data tar missing; no WAL in the archive"),
            "{page}"
        );
        assert!(!page.contains("Shard "), "not sharded: no shard line");
    }

    #[test]
    fn a_pending_target_has_collectors_and_no_server_tables() {
        let view = target_view(3, ("t", "s3://b/p", "AWS"), &TargetSnapshot::default(), 0.0);
        assert_eq!(view.collectors[0].health, Health::Pending);
        assert!(!view.has_summary && view.servers.is_empty());
        let snap = done(summary());
        let view = target_view(3, ("t", "s3://b/p", "AWS"), &snap, 0.0);
        assert_eq!(view.servers[0].picture.id, "tl-3-0");
        assert_eq!(view.servers[0].backups[0].restorable, Restorable::NotApplicable);
        assert_eq!(view.servers[0].counts, [0, 1, 0, 0]);
    }
}
