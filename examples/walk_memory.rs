//! Peak memory of the real walk over one server of N WAL segments, on a
//! synthetic in-process object store that generates its keys as they are
//! listed (no bucket to seed: 10,000,000 objects cost nothing to set up).
//!
//! The walk is the exporter's own ([`walk`]), with its listing plans, range
//! listings, directory folding, tail listings and analysis inputs; only the
//! object store is synthetic: S3's listing semantics (bytewise order,
//! `/` delimiter roll-up, start-after, pages of 1,000 keys) over one backup
//! and `DIRS` full WAL directories of 256 segments (16 MiB segments). It runs
//! a cold walk, an incremental walk, a full reconcile and a tail walk after new
//! WAL, and prints the process's peak resident memory (VmHWM) after each. Run
//! it once per size (peak memory is per process) and compare:
//!
//!   cargo run --release --example walk_memory 3907    # ≈ 1,000,000 segments
//!   cargo run --release --example walk_memory 39063   # ≈ 10,000,000 segments
//!
//! Linux only (reads `/proc/self/status`).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use barman_cloud_exporter::source::store::{ErrorReason, Listing, ObjectInfo, ObjectStore, Page, StoreError, Unusable};
use barman_cloud_exporter::source::walk::{WalkCache, WalkOptions, walk};

const SEGMENTS_PER_DIR: u32 = 256;
const PAGE: usize = 1000;
const INFO: &str = "status=DONE\nbegin_time=2025-01-01 00:00:00+00:00\nend_time=2025-01-01 01:00:00+00:00\n\
                    begin_wal=000000010000000000000000\nend_wal=000000010000000000000000\ntimeline=1\n\
                    systemid=7441478432510885907\nxlog_segment_size=16777216\n";

/// Never fails.
#[derive(Debug, thiserror::Error)]
#[error("synthetic store")]
struct Never;

impl StoreError for Never {
    fn reason(&self) -> ErrorReason {
        ErrorReason::ServerError
    }
}

/// `pg/s/`: one backup, then `dirs` WAL directories of timeline 1, the last
/// holding `last_segments` segments.
struct Synthetic {
    dirs: AtomicU32,
    last_segments: AtomicU32,
    lists: AtomicU64,
}

fn dir_name(d: u32) -> String {
    format!("00000001{d:08X}")
}

impl Synthetic {
    fn object(key: String) -> ObjectInfo {
        ObjectInfo {
            key,
            size: 16 << 20,
            etag: Some("\"e\"".into()),
            last_modified: Some(1.7e9),
            storage_class: Some("STANDARD".into()),
        }
    }

    fn segments(&self, d: u32) -> u32 {
        let dirs = self.dirs.load(Ordering::Relaxed);
        if d + 1 == dirs {
            self.last_segments.load(Ordering::Relaxed)
        } else {
            SEGMENTS_PER_DIR
        }
    }

    /// The WAL keys from directory `d` on, up to `end` (exclusive), in order.
    fn wal_keys(&self, from: u32, end: u32) -> impl Iterator<Item = String> + '_ {
        (from..end).flat_map(move |d| {
            let name = dir_name(d);
            (0..self.segments(d)).map(move |s| format!("pg/s/wals/{name}/{name}{s:08X}"))
        })
    }
}

impl ObjectStore for Synthetic {
    type Error = Never;

    async fn list<F>(&self, l: Listing<'_>, mut on_page: F) -> Result<(), Never>
    where
        F: FnMut(Page) -> bool + Send,
    {
        let dirs = self.dirs.load(Ordering::Relaxed);
        let mut send = |objects: Vec<ObjectInfo>, prefixes: Vec<String>| {
            self.lists.fetch_add(1, Ordering::Relaxed);
            on_page(Page { objects, prefixes })
        };
        match (l.prefix, l.delimiter) {
            ("pg/", Some(_)) => {
                send(Vec::new(), vec!["pg/s/".into()]);
            }
            ("pg/s/base/", None) => {
                let keys = ["backup.info", "data.tar"].map(|f| Self::object(format!("pg/s/base/20250101T000000/{f}")));
                send(keys.to_vec(), Vec::new());
            }
            ("pg/s/wals/", Some(_)) => {
                // Page by page, as a real listing arrives.
                for first in (0..dirs).step_by(PAGE) {
                    let page = (first..dirs.min(first + PAGE as u32))
                        .map(|d| format!("pg/s/wals/{}/", dir_name(d)))
                        .collect();
                    if !send(Vec::new(), page) {
                        break;
                    }
                }
            }
            (prefix, None) => {
                // A range listing of wals/ (after `<dir>/` + U+10FFFF) or one directory.
                let rest = prefix.strip_prefix("pg/s/wals/").unwrap_or_default();
                let (from, end) = if rest.is_empty() {
                    let after = l.start_after.and_then(|a| a.strip_prefix("pg/s/wals/"));
                    let from = after.map_or(0, |a| u32::from_str_radix(&a[8..16], 16).unwrap_or(0) + 1);
                    (from, dirs)
                } else {
                    let d = u32::from_str_radix(&rest[8..16], 16).unwrap_or(0);
                    (d, d + 1)
                };
                let mut page = Vec::with_capacity(PAGE);
                for key in self.wal_keys(from, end.min(dirs)) {
                    page.push(Self::object(key));
                    if page.len() == PAGE && !send(std::mem::take(&mut page), Vec::new()) {
                        return Ok(());
                    }
                }
                send(page, Vec::new());
            }
            _ => {
                send(Vec::new(), Vec::new());
            }
        }
        Ok(())
    }

    async fn get(&self, key: &str, _max: u64) -> Result<Result<Vec<u8>, Unusable>, Never> {
        Ok(if key.ends_with("backup.info") {
            Ok(INFO.as_bytes().to_vec())
        } else {
            Err(Unusable::Refused {
                reason: ErrorReason::ClientError,
                message: "NoSuchKey".into(),
            })
        })
    }
}

fn peak_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let dirs: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(39_063);
    let store = Synthetic {
        dirs: AtomicU32::new(dirs),
        last_segments: AtomicU32::new(SEGMENTS_PER_DIR),
        lists: AtomicU64::new(0),
    };
    let opts = |now: f64, full_walk_interval: f64| WalkOptions {
        retention: None,
        now,
        full_walk_interval,
        list_concurrency: 16,
    };
    let segments = u64::from(dirs) * u64::from(SEGMENTS_PER_DIR);
    println!("{dirs} WAL directories, {segments} segments; peak resident memory (VmHWM) after each walk:");
    let mut cache = WalkCache::default();
    let steps: [(&str, f64, bool); 4] = [
        ("cold walk", 0.0, false),
        ("incremental walk", 60.0, false),
        ("full reconcile", 120.0, false),
        ("tail walk after new WAL", 180.0, true),
    ];
    for (what, t, grow) in steps {
        if grow {
            store.dirs.fetch_add(1, Ordering::Relaxed);
            store.last_segments.store(3, Ordering::Relaxed);
        }
        let interval = if what == "full reconcile" { 0.0 } else { 86_400.0 };
        let before = store.lists.load(Ordering::Relaxed);
        let w = walk(&store, "pg/", opts(1.7e9 + 3600.0 + t, interval), &cache)
            .await
            .unwrap_or_else(|_| unreachable!("the synthetic store never fails"));
        let lists = store.lists.load(Ordering::Relaxed) - before;
        let wal = &w.catalog.servers[0].wal;
        println!(
            "  {what}: {:.1} MiB ({} segments seen, {lists} listings, {:?})",
            peak_mib(),
            wal.by_kind[0].objects,
            w.stats
        );
        cache = w.cache;
    }
}
