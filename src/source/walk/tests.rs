//! The walk on an in-memory object store with S3's listing semantics (keys
//! sorted bytewise, delimiter roll-up, start-after, small pages), no services.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use super::*;
use crate::catalog::compression::{Codec, tests::compress};
use crate::source::store::{ErrorReason, ObjectInfo, Page, StoreError, Unusable};

/// A failure of the in-memory store.
#[derive(Debug, thiserror::Error)]
#[error("memory store: {0:?}")]
struct MemError(ErrorReason);

impl StoreError for MemError {
    fn reason(&self) -> ErrorReason {
        self.0
    }
}

/// A bucket in memory: sorted keys, `page_size` entries a page, GETs
/// refused (403) or failing (5xx) for chosen keys; counts its requests.
#[derive(Default)]
struct Memory {
    objects: BTreeMap<String, Vec<u8>>,
    page_size: usize,
    refused: BTreeSet<String>,
    broken: BTreeSet<String>,
    /// Storage class by key (`STANDARD` when absent).
    classes: BTreeMap<String, &'static str>,
    lists: Mutex<u64>,
    gets: Mutex<Vec<String>>,
}

impl Memory {
    fn put(&mut self, key: &str, body: impl Into<Vec<u8>>) {
        self.objects.insert(key.to_string(), body.into());
    }

    fn counts(&self) -> (u64, usize) {
        (*self.lists.lock().unwrap(), self.gets.lock().unwrap().len())
    }

    /// Every entry of a listing, as S3 returns them across pages.
    fn entries(&self, l: Listing<'_>) -> Vec<Result<ObjectInfo, String>> {
        let mut out: Vec<Result<ObjectInfo, String>> = Vec::new();
        for (key, body) in self.objects.range(l.prefix.to_string()..) {
            if !key.starts_with(l.prefix) {
                break;
            }
            if l.start_after.is_some_and(|a| key.as_str() <= a) {
                continue;
            }
            let rest = &key[l.prefix.len()..];
            match l.delimiter.and_then(|d| rest.find(d).map(|i| i + d.len())) {
                Some(end) => {
                    let p = format!("{}{}", l.prefix, &rest[..end]);
                    if out.last().is_none_or(|e| e.as_ref().err() != Some(&p)) {
                        out.push(Err(p));
                    }
                }
                None => out.push(Ok(ObjectInfo {
                    key: key.clone(),
                    size: body.len() as u64,
                    etag: Some(format!(
                        "\"{:x}\"",
                        body.len() * 31 + body.iter().map(|b| *b as usize).sum::<usize>()
                    )),
                    last_modified: Some(1_700_000_000.0),
                    storage_class: Some(self.classes.get(key).copied().unwrap_or("STANDARD").into()),
                })),
            }
        }
        out
    }
}

impl ObjectStore for Memory {
    type Error = MemError;

    async fn list<F>(&self, listing: Listing<'_>, mut on_page: F) -> Result<(), MemError>
    where
        F: FnMut(Page) -> bool + Send,
    {
        let entries = self.entries(listing);
        let mut chunks = entries.chunks(self.page_size.max(1)).peekable();
        if chunks.peek().is_none() {
            *self.lists.lock().unwrap() += 1;
            on_page(Page::default());
            return Ok(());
        }
        for chunk in chunks {
            *self.lists.lock().unwrap() += 1;
            let mut page = Page::default();
            for e in chunk {
                match e {
                    Ok(o) => page.objects.push(o.clone()),
                    Err(p) => page.prefixes.push(p.clone()),
                }
            }
            if !on_page(page) {
                break;
            }
        }
        Ok(())
    }

    async fn get(&self, key: &str, max_bytes: u64) -> Result<Result<Vec<u8>, Unusable>, MemError> {
        self.gets.lock().unwrap().push(key.to_string());
        if self.broken.contains(key) {
            return Err(MemError(ErrorReason::ServerError));
        }
        if self.refused.contains(key) {
            let reason = ErrorReason::AccessDenied;
            let message = "AccessDenied".to_string();
            return Ok(Err(Unusable::Refused { reason, message }));
        }
        Ok(match self.objects.get(key) {
            None => Err(Unusable::Refused {
                reason: ErrorReason::ClientError,
                message: "NoSuchKey".into(),
            }),
            Some(b) if b.len() as u64 > max_bytes => Err(Unusable::TooLarge { limit: max_bytes }),
            Some(b) => Ok(b.clone()),
        })
    }
}

fn info(begin_wal: &str, end_wal: &str, end_time: &str) -> String {
    format!(
        "status=DONE\nbegin_time=2025-11-26 09:15:49+00:00\nend_time={end_time}\nbegin_wal={begin_wal}\n\
         end_wal={end_wal}\ntimeline=1\nsystemid=7441478432510885907\nxlog_segment_size=16777216\n"
    )
}

/// Two servers under `pg/`: `a` with two backups, WAL on two directories of
/// timeline 1 and a switch to timeline 2 (its `.history` bzip2-compressed);
/// `b` with one backup and one directory; a stray object at the root.
fn bucket(page_size: usize) -> Memory {
    let mut m = Memory {
        page_size,
        ..Default::default()
    };
    m.put("pg/stray.txt", "x");
    m.put(
        "pg/a/base/20250101T000000/backup.info",
        info(
            "000000010000000000000001",
            "000000010000000000000001",
            "2025-01-01 01:00:00+00:00",
        ),
    );
    m.put("pg/a/base/20250101T000000/data.tar", "tar");
    m.put(
        "pg/a/base/20250102T000000/backup.info",
        info(
            "000000010000000100000002",
            "000000010000000100000002",
            "2025-01-02 01:00:00+00:00",
        ),
    );
    m.put("pg/a/base/20250102T000000/data.tar", "tar");
    m.put("pg/a/base/20250102T000000/annotations/keep", "standalone");
    for seg in 1..=4 {
        m.put(&format!("pg/a/wals/0000000100000000/00000001000000000000000{seg}"), "w");
    }
    for seg in 0..=3 {
        m.put(&format!("pg/a/wals/0000000100000001/00000001000000010000000{seg}"), "w");
    }
    m.put("pg/a/wals/0000000200000001/000000020000000100000003", "w");
    m.put(
        "pg/a/wals/00000002.history.bz2",
        compress(Codec::Bzip2, b"1\t1/3000000\tno recovery target specified\n"),
    );
    m.put(
        "pg/b/base/20250103T000000/backup.info",
        info(
            "000000010000000000000005",
            "000000010000000000000005",
            "2025-01-03 01:00:00+00:00",
        ),
    );
    m.put("pg/b/wals/0000000100000000/000000010000000000000005", "w");
    m
}

fn opts(now: f64) -> WalkOptions {
    WalkOptions {
        retention: None,
        now,
        full_walk_interval: 86_400.0,
        list_concurrency: 2,
    }
}

async fn walked(m: &Memory, now: f64, prev: &WalkCache) -> Walk {
    walk(m, "pg/", opts(now), prev).await.unwrap()
}

/// A full walk (`full_walk_interval` 0: the daily reconcile) after `prev`.
async fn reconciled(m: &Memory, now: f64, prev: &WalkCache) -> Walk {
    let opts = WalkOptions {
        full_walk_interval: 0.0,
        ..opts(now)
    };
    walk(m, "pg/", opts, prev).await.unwrap()
}

fn server<'a>(w: &'a Walk, name: &str) -> &'a ServerCatalog {
    w.catalog.servers.iter().find(|s| s.name == name).unwrap()
}

/// What must not depend on how the bucket was walked.
fn facts(s: &ServerCatalog) -> String {
    let backups: Vec<String> = s
        .backups
        .iter()
        .map(|b| format!("{}:{}:{}:{:?}", b.id, b.objects, b.bytes, b.keep))
        .collect();
    format!(
        "{backups:?} {:?} {:?} {:?} {:?} {} {:?}",
        s.wal.by_kind,
        s.wal.names,
        s.wal.newest_segment,
        s.histories,
        s.histories_unreadable,
        s.base_usage()
    )
}

#[tokio::test]
async fn a_cold_walk_reads_everything_once() {
    let m = bucket(1000);
    let w = walked(&m, 1e9, &WalkCache::default()).await;
    assert_eq!(w.catalog.servers.len(), 2);
    assert_eq!(w.catalog.loose.objects, 1);
    let a = server(&w, "a");
    assert_eq!(a.backups.len(), 2);
    assert!(a.backups.iter().all(|b| matches!(b.info, BackupInfoState::Parsed(_))));
    assert!(a.backups[1].keep.is_some());
    assert_eq!(a.wal.by_kind[0].objects, 9, "segments");
    assert_eq!(a.histories[&2][0].switch_lsn, 0x1_0300_0000);
    assert_eq!(a.histories_unreadable, 0);
    assert_eq!(
        w.stats,
        WalkStats {
            full_servers: 2,
            listed_dirs: 4,
            ..Default::default()
        }
    );
    // 3 backup.info, 1 keep, 1 history; 1 + 2 × (base, wals root) + chunks.
    let (lists, gets) = m.counts();
    assert_eq!(gets, 5);
    assert!(lists >= 5 + 2, "{lists}");
    assert_eq!(w.cache.size(), (2, 4));
}

#[tokio::test]
async fn small_pages_give_the_same_catalog() {
    let big = walked(&bucket(1000), 1e9, &WalkCache::default()).await;
    let m = bucket(2);
    let small = walked(&m, 1e9, &WalkCache::default()).await;
    for name in ["a", "b"] {
        assert_eq!(facts(server(&big, name)), facts(server(&small, name)), "{name}");
    }
    let (lists, _) = m.counts();
    assert!(lists > 12, "pages of 2 entries: {lists} listings");
}

#[tokio::test]
async fn an_incremental_walk_reuses_directories_and_objects() {
    let mut m = bucket(3);
    let first = walked(&m, 1e9, &WalkCache::default()).await;
    let before = m.counts();
    // New WAL in the newest directory of timeline 2, and a new directory.
    m.put("pg/a/wals/0000000200000001/000000020000000100000004", "w");
    m.put("pg/a/wals/0000000200000002/000000020000000200000000", "w");
    let inc = walked(&m, 1e9 + 60.0, &first.cache).await;
    assert_eq!(inc.stats.incremental_servers, 2);
    assert_eq!(inc.stats.full_servers, 0);
    // a: 0000000100000000 reused; b: its one directory is active, listed again.
    assert_eq!(inc.stats.reused_dirs, 1);
    assert_eq!(inc.stats.reused_objects, 5, "3 backup.info, 1 keep, 1 history");
    let after = m.counts();
    assert_eq!(after.1, before.1, "nothing fetched again");
    let cold = walked(&m, 1e9 + 60.0, &WalkCache::default()).await;
    for name in ["a", "b"] {
        assert_eq!(facts(server(&inc, name)), facts(server(&cold, name)), "{name}");
    }
    assert_eq!(server(&inc, "a").wal.by_kind[0].objects, 11);
}

#[tokio::test]
async fn refused_and_oversized_objects_are_unreadable_and_the_walk_goes_on() {
    let mut m = bucket(1000);
    m.refused.insert("pg/a/base/20250101T000000/backup.info".into());
    // A bzip2 bomb: 4 MiB of zeros, far over the 1 MiB bound once decompressed.
    m.put(
        "pg/b/wals/00000002.history.bz2",
        compress(Codec::Bzip2, &vec![0u8; 4 << 20]),
    );
    let w = walked(&m, 1e9, &WalkCache::default()).await;
    let a = server(&w, "a");
    match &a.backups[0].info {
        BackupInfoState::Unreadable(why) => assert_eq!(why, "GET refused (access_denied): AccessDenied"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(a.backups[1].info, BackupInfoState::Parsed(_)));
    let b = server(&w, "b");
    assert_eq!(b.histories_unreadable, 1);
    assert!(b.histories.is_empty());
    // A refused GET is read again next time; the bomb is not (same ETag).
    let gets = m.counts().1;
    let again = walked(&m, 1e9 + 1.0, &w.cache).await;
    let refetched: Vec<String> = m.gets.lock().unwrap()[gets..].to_vec();
    assert_eq!(refetched, vec!["pg/a/base/20250101T000000/backup.info".to_string()]);
    assert_eq!(server(&again, "b").histories_unreadable, 1);
}

#[tokio::test]
async fn a_server_error_on_a_get_fails_the_walk() {
    let mut m = bucket(1000);
    m.broken.insert("pg/a/wals/00000002.history.bz2".into());
    let e = walk(&m, "pg/", opts(1e9), &WalkCache::default()).await.unwrap_err();
    assert_eq!(e.reason(), ErrorReason::ServerError);
}

#[tokio::test]
async fn objects_in_archive_storage_classes_are_counted_by_area_and_kept_by_reuse() {
    let mut m = bucket(3);
    m.classes
        .insert("pg/a/base/20250101T000000/data.tar".into(), "DEEP_ARCHIVE");
    m.classes
        .insert("pg/a/wals/0000000100000000/000000010000000000000001".into(), "GLACIER");
    // Instant Retrieval reads directly: not counted.
    m.classes.insert(
        "pg/a/wals/0000000100000000/000000010000000000000002".into(),
        "GLACIER_IR",
    );
    let cold = walked(&m, 1e9, &WalkCache::default()).await;
    let a = server(&cold, "a");
    assert_eq!(a.base_archive_tier, Usage { objects: 1, bytes: 3 });
    assert_eq!(a.wal.archive_tier, Usage { objects: 1, bytes: 1 });
    assert_eq!(server(&cold, "b").wal.archive_tier, Usage::default());
    // The incremental walk does not list 0000000100000000 again; its figure stays.
    m.put("pg/a/wals/0000000200000001/000000020000000100000004", "w");
    let inc = walked(&m, 1e9 + 60.0, &cold.cache).await;
    assert!(inc.stats.reused_dirs >= 1);
    assert_eq!(server(&inc, "a").wal.archive_tier, Usage { objects: 1, bytes: 1 });
    assert_eq!(server(&inc, "a").base_archive_tier, Usage { objects: 1, bytes: 3 });
}

#[tokio::test]
async fn a_vanished_or_emptied_tar_shows_at_the_next_incremental_walk() {
    use crate::catalog::payload::Problem;
    let mut m = bucket(1000);
    let first = walked(&m, 1e9, &WalkCache::default()).await;
    assert!(
        server(&first, "a")
            .backups
            .iter()
            .all(|b| b.payload_problems().is_empty())
    );
    let before = m.counts();
    m.objects.remove("pg/a/base/20250102T000000/data.tar");
    m.put("pg/a/base/20250101T000000/data.tar", "");
    let inc = walked(&m, 1e9 + 60.0, &first.cache).await;
    assert_eq!(inc.stats.full_servers, 0, "{:?}", inc.stats);
    let a = server(&inc, "a");
    assert_eq!(a.backups[0].payload_problems(), vec![Problem::Empty("data.tar".into())]);
    assert_eq!(a.backups[1].payload_problems(), vec![Problem::Missing(None)]);
    assert_eq!(m.counts().1, before.1, "from the listing alone: no GET");
}

#[tokio::test]
async fn the_steady_state_lists_each_server_twice_and_sees_what_postgresql_adds() {
    let mut m = bucket(1000);
    let first = walked(&m, 1e9, &WalkCache::default()).await;
    // Unchanged bucket: the destination listing, then per server `base/` and
    // one tail listing of `wals/`; nothing fetched.
    let before = m.counts();
    let same = walked(&m, 1e9 + 60.0, &first.cache).await;
    let after = m.counts();
    assert_eq!(after.0 - before.0, 1 + 2 * 2, "listings");
    assert_eq!(after.1, before.1, "GETs");
    assert_eq!(same.stats.incremental_servers, 2);
    for name in ["a", "b"] {
        assert_eq!(facts(server(&same, name)), facts(server(&first, name)), "{name}");
    }
    // A promote to timeline 3 (its .history, a .partial of timeline 2, new
    // segments) and a new directory of timeline 2: all in the tail.
    m.put("pg/a/wals/0000000200000001/000000020000000100000004.partial", "p");
    m.put(
        "pg/a/wals/00000003.history",
        "1\t1/3000000\tno recovery target specified\n2\t1/4000000\tno recovery target specified\n",
    );
    m.put("pg/a/wals/0000000300000001/000000030000000100000004", "w");
    m.put("pg/a/wals/0000000300000002/000000030000000200000000", "w");
    let before = m.counts();
    let inc = walked(&m, 1e9 + 120.0, &same.cache).await;
    let after = m.counts();
    assert_eq!(after.0 - before.0, 1 + 2 * 2, "still two listings a server");
    assert_eq!(after.1 - before.1, 1, "the new .history only");
    let cold = walked(&m, 1e9 + 120.0, &WalkCache::default()).await;
    for name in ["a", "b"] {
        assert_eq!(facts(server(&inc, name)), facts(server(&cold, name)), "{name}");
    }
    let a = server(&inc, "a");
    assert_eq!(a.histories[&3].len(), 2);
    assert_eq!(a.wal.by_kind[0].objects, 11);
    // A directory the tail covers removed: seen at once, and the next walk
    // of that server is full (a change PostgreSQL does not make).
    m.objects.retain(|k, _| !k.starts_with("pg/a/wals/0000000300000002/"));
    let gone = walked(&m, 1e9 + 180.0, &inc.cache).await;
    assert_eq!(gone.stats.incremental_servers, 2);
    let cold = walked(&m, 1e9 + 180.0, &WalkCache::default()).await;
    assert_eq!(facts(server(&gone, "a")), facts(server(&cold, "a")));
    let next = walked(&m, 1e9 + 240.0, &gone.cache).await;
    assert_eq!((next.stats.full_servers, next.stats.incremental_servers), (1, 1));
}

#[tokio::test]
async fn old_directories_are_folded_into_spans_and_walks_stay_exact() {
    let mut m = Memory {
        page_size: 7,
        ..Default::default()
    };
    m.put(
        "pg/c/base/20250101T000000/backup.info",
        info(
            "000000010000000000000001",
            "000000010000000000000001",
            "2025-01-01 01:00:00+00:00",
        ),
    );
    for log in 0..12u32 {
        for seg in 0..4u32 {
            m.put(&format!("pg/c/wals/00000001{log:08X}/00000001{log:08X}{seg:08X}"), "w");
        }
    }
    let cold = walked(&m, 1e9, &WalkCache::default()).await;
    let dirs = &cold.cache.servers["c"].wal;
    assert_eq!(dirs.len(), 12, "every directory still known by name");
    let distinct: BTreeSet<*const crate::catalog::WalTotals> = dirs.totals.iter().map(Arc::as_ptr).collect();
    // list_concurrency 2: at most two spans, their shared empty aggregates,
    // and the active directory.
    assert!(distinct.len() <= 5, "{} distinct aggregates", distinct.len());
    assert_eq!(server(&cold, "c").wal.by_kind[0].objects, 48);
    // The daily reconcile over an unchanged bucket finds nothing changed.
    let reconcile = reconciled(&m, 1e9 + 60.0, &cold.cache).await;
    assert!(reconcile.stats.is_full());
    let settled = &reconcile.cache.servers["c"].wal;
    assert!(settled.settled, "folding must not look like a change");
    // New WAL and a rollover; then an old segment deleted by hand, which the
    // next reconcile sees as a change.
    m.put("pg/c/wals/000000010000000B/000000010000000B00000004", "w");
    m.put("pg/c/wals/000000010000000C/000000010000000C00000000", "w");
    let inc = walked(&m, 1e9 + 120.0, &reconcile.cache).await;
    let fresh = walked(&m, 1e9 + 120.0, &WalkCache::default()).await;
    assert_eq!(facts(server(&inc, "c")), facts(server(&fresh, "c")));
    m.objects.remove("pg/c/wals/0000000100000003/000000010000000300000002");
    let full = WalkOptions {
        full_walk_interval: 0.0,
        ..opts(1e9 + 180.0)
    };
    let changed = walk(&m, "pg/", full, &inc.cache).await.unwrap();
    assert!(!changed.cache.servers["c"].wal.settled);
    let fresh = walked(&m, 1e9 + 180.0, &WalkCache::default()).await;
    assert_eq!(facts(server(&changed, "c")), facts(server(&fresh, "c")));
}

#[tokio::test]
async fn a_server_whose_wal_is_all_deleted_is_gone_at_the_next_walk() {
    // `c`: WAL only (a cluster archiving before its first backup), and a stray
    // object that keeps its prefix listed once the WAL is deleted.
    let mut m = bucket(1000);
    m.put("pg/c/stray.txt", "x");
    m.put("pg/c/wals/0000000100000000/000000010000000000000001", "w");
    let first = walked(&m, 1e9, &WalkCache::default()).await;
    assert!(first.catalog.servers.iter().any(|s| s.name == "c"));
    m.objects.retain(|k, _| !k.starts_with("pg/c/wals/"));
    let next = walked(&m, 1e9 + 60.0, &first.cache).await;
    assert!(next.catalog.servers.iter().all(|s| s.name != "c"), "no phantom server");
}

/// Server `b` of [`bucket`] with a junk object at `wals/<junk>` and one
/// segment in each WAL directory of logs 1 to `logs`, walked cold: the walk
/// and (other objects, segments) of `b`.
async fn junk_beside_wal(junk: &str, logs: u32) -> (Memory, Walk, (u64, u64)) {
    use crate::catalog::key::WalKind;
    let mut m = bucket(1000);
    m.put(&format!("pg/b/wals/{junk}"), "not barman");
    for log in 1..=logs {
        m.put(&format!("pg/b/wals/00000001{log:08X}/00000001{log:08X}00000000"), "w");
    }
    let w = walked(&m, 1e9, &WalkCache::default()).await;
    let kinds = &server(&w, "b").wal.by_kind;
    let counts = (
        kinds[WalKind::Other.index()].objects,
        kinds[WalKind::Segment.index()].objects,
    );
    (m, w, counts)
}

/// A directory named "" (`wals//junk`: one Azure keeps) sorts first and is
/// listed in one range listing with the directories after it; its object is
/// still accounted, as it was when each directory had a listing of its own.
#[tokio::test]
async fn an_empty_directory_name_is_listed_with_the_others() {
    let (m, w, counts) = junk_beside_wal("/junk", 4).await;
    assert_eq!(counts, (1, 5), "the junk key and every segment");
    // And the next walk, incremental, keeps it.
    let again = walked(&m, 1e9 + 60.0, &w.cache).await;
    assert_eq!(facts(server(&again, "b")), facts(server(&w, "b")));
}

/// A junk directory whose name extends a WAL directory's with a character
/// below `/` (`0000000100000004-x/` lists before `0000000100000004/`): with
/// the names in listing order, the range listing that ends with one of them
/// does not stop at the other's keys (in plain string order `…04` would end
/// the first of two listings and `…04-x`, listed before it, stop it early).
#[tokio::test]
async fn directories_are_ordered_as_their_keys_list() {
    let (m, w, counts) = junk_beside_wal("0000000100000004-x/junk", 7).await;
    assert_eq!(counts, (1, 8), "the junk key and every segment");
    let full = reconciled(&m, 1e9 + 60.0, &w.cache).await;
    assert_eq!(facts(server(&full, "b")), facts(server(&w, "b")));
    assert!(full.cache.servers["b"].wal.settled, "nothing changed");
}
