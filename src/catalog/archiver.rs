//! `pg_stat_archiver` read against the bucket: pure arithmetic and joins on
//! what PostgreSQL says and what the S3 walk found. No I/O.
//!
//! PostgreSQL semantics: `last_archived_wal` is the name of the last file
//! `archive_command` succeeded for (a segment, `.partial`, `.backup` or
//! `.history`); `pg_walfile_name(pg_current_wal_lsn())` the segment being
//! written (primary only).

use super::analysis::TargetSummary;
use super::wal::SegmentName;

/// Full segments between `last_archived_wal` and `current_wal_file` (the
/// segment being written, not counted), for segments of `segment_size` bytes.
/// `None` when either is not a plain segment name or they are on different
/// timelines (after a promote the count would mean nothing).
pub fn pending_segments(last_archived_wal: &str, current_wal_file: &str, segment_size: u64) -> Option<u64> {
    let last = SegmentName::parse(last_archived_wal)?;
    let current = SegmentName::parse(current_wal_file)?;
    if last.timeline != current.timeline || segment_size == 0 {
        return None;
    }
    Some(current.segno(segment_size).saturating_sub(last.segno(segment_size) + 1))
}

/// Whether the file `last_archived_wal` names was found under `wals/` of
/// server `server` in the walk `summary`: `Some(false)` when it is not there
/// (or the server is not), meaning PostgreSQL archives to another bucket or
/// serverName; `None` when PostgreSQL has archived nothing yet.
pub fn last_archived_wal_in_storage(
    summary: &TargetSummary,
    server: &str,
    last_archived_wal: Option<&str>,
) -> Option<bool> {
    let name = last_archived_wal?;
    Some(
        summary
            .servers
            .iter()
            .any(|s| s.name == server && s.wal_names.contains(name)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::analysis::{AnalysisOptions, summarize_target};
    use crate::catalog::{ServerCatalog, TargetCatalog};

    const SEG: u64 = 16 << 20;

    #[test]
    fn pending_segments_between_archived_and_current() {
        // FF, 1/00, 1/01 are complete but not archived; 1/02 is being written.
        assert_eq!(
            pending_segments("0000000200000000000000FE", "000000020000000100000002", SEG),
            Some(3)
        );
        assert_eq!(
            pending_segments("000000020000000100000001", "000000020000000100000002", SEG),
            Some(0)
        );
        // Archived up to the one being written (a switch in between): never negative.
        assert_eq!(
            pending_segments("000000020000000100000002", "000000020000000100000002", SEG),
            Some(0)
        );
        // 64 MiB segments: 64 per 4 GiB "log" (segno 1 archived, 64 being written).
        assert_eq!(
            pending_segments("000000010000000000000001", "000000010000000100000000", 64 << 20),
            Some(62)
        );
        assert_eq!(
            pending_segments(
                "000000020000000100000001.00000028.backup",
                "000000020000000100000002",
                SEG
            ),
            None
        );
        assert_eq!(
            pending_segments("00000002.history", "000000020000000100000002", SEG),
            None
        );
        assert_eq!(
            pending_segments("000000010000000100000001", "000000020000000100000002", SEG),
            None,
            "another timeline"
        );
    }

    fn summary() -> TargetSummary {
        let mut s = ServerCatalog {
            name: "pg-main".into(),
            ..Default::default()
        };
        for key in [
            "0000000100000000/000000010000000000000001.gz",
            "0000000100000000/000000010000000000000002.partial",
            "00000002.history",
        ] {
            s.wal.add(key, 10, Some(100.0), &Default::default());
        }
        let other = ServerCatalog {
            name: "pg-old".into(),
            ..Default::default()
        };
        summarize_target(
            &TargetCatalog {
                servers: vec![s, other],
                loose: Default::default(),
            },
            &AnalysisOptions {
                servers: None,
                orphan_after: 1e9,
                stuck_after: 1e9,
                retention: false,
                now: 1000.0,
            },
        )
    }

    #[test]
    fn the_last_archived_file_is_looked_up_under_the_configured_server() {
        let t = summary();
        let found = |server, name| last_archived_wal_in_storage(&t, server, name);
        // Compressed in the bucket, bare in pg_stat_archiver.
        assert_eq!(found("pg-main", Some("000000010000000000000001")), Some(true));
        assert_eq!(found("pg-main", Some("000000010000000000000002.partial")), Some(true));
        assert_eq!(found("pg-main", Some("00000002.history")), Some(true));
        assert_eq!(found("pg-main", Some("000000010000000000000003")), Some(false));
        // Another server's prefix, or one the walk did not find.
        assert_eq!(found("pg-old", Some("000000010000000000000001")), Some(false));
        assert_eq!(found("pg-gone", Some("000000010000000000000001")), Some(false));
        assert_eq!(found("pg-main", None), None);
    }
}
