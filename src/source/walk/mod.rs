//! The catalog walk of one destination path, on any [`ObjectStore`]:
//! listings and small GETs, read-only, provider-neutral.
//!
//! Per target: one delimiter listing of the destination path finds the server
//! prefixes; per server (`ServerWalker`), in this order:
//!
//! 1. a recursive listing of `base/`: backup directories, their sizes, whether
//!    each has a `backup.info` and a keep annotation;
//! 2. one bounded GET per new or changed `backup.info` and keep annotation,
//!    after which the retention rules are known;
//! 3. a delimiter listing of `wals/`: its root objects (`.history` files,
//!    strays) and its directory names;
//! 4. range listings of the WAL directories the incremental plan picks
//!    ([`crate::catalog::listing`]), every key classified and aggregated as the
//!    pages stream by (memory does not grow with the number of WAL objects),
//!    the other directories' previous aggregates reused;
//!
//!    or, in the steady state, instead of 3 and 4, one range listing from the
//!    oldest active WAL directory to the end of `wals/` (`tail`,
//!    [`crate::catalog::listing::plan_tail`]): a server then costs two
//!    listings a cycle, `base/` and this one;
//! 5. one bounded GET per new or changed `.history` file, decompressed with a
//!    bound too ([`crate::catalog::history::read`]);
//! 6. one bounded GET per new foreign label file below the first backup,
//!    newest first, until the newest deleted backup is found (`labels`).

mod cache;
mod dirs;
mod histories;
mod labels;
mod tail;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::{StreamExt, TryStreamExt, stream};
use tokio::sync::Semaphore;

use cache::{Cached, MAX_ROOT_OBJECTS, ObjectId, RootObject};
pub use cache::{ServerCache, WalkCache};
use dirs::{Fold, list_wal_dirs};

use crate::catalog::backup_info::{BackupInfo, BackupStatus, MAX_BACKUP_INFO_BYTES};
use crate::catalog::history::HistoryEntry;
use crate::catalog::key::{BaseObject, classify_base, is_backup_tar};
use crate::catalog::listing::{DirNames, combine, listing_chunks, plan_tail, plan_wal_listing};
use crate::catalog::payload::TarObject;
use crate::catalog::retention::{BackupMeta, Keep, RetentionPolicy, WalRules};
use crate::catalog::{BackupDir, BackupInfoState, ServerCatalog, TargetCatalog, Usage, WalTotals, needs_restore};
use crate::source::store::{Listing, ObjectStore};

/// What a walk needs besides the bucket: the retention policy to simulate, the
/// time to simulate it at, and how to list.
#[derive(Debug, Clone, Copy)]
pub struct WalkOptions {
    /// The target's `retention_policy`.
    pub retention: Option<RetentionPolicy>,
    /// Now, Unix seconds.
    pub now: f64,
    /// Seconds after which every WAL directory is re-listed anyway
    /// (`full_walk_interval`); 0 makes every walk full.
    pub full_walk_interval: f64,
    /// WAL directory listings in flight at once per target, all its server
    /// prefixes together (`list_concurrency`): each holds one page of up to
    /// 1,000 keys in memory, so this bounds the walk's peak memory.
    pub list_concurrency: usize,
}

/// The result of [`walk`].
#[derive(Debug)]
pub struct Walk {
    /// What the bucket holds.
    pub catalog: TargetCatalog,
    /// What the next walk may reuse.
    pub cache: WalkCache,
    /// How much was listed, fetched and reused.
    pub stats: WalkStats,
}

/// Counts of one walk's work, summed over servers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct WalkStats {
    /// Servers whose WAL directories were all listed.
    pub full_servers: u64,
    /// Servers walked incrementally.
    pub incremental_servers: u64,
    /// WAL directories listed.
    pub listed_dirs: u64,
    /// WAL directories whose previous aggregates were reused unlisted.
    pub reused_dirs: u64,
    /// `backup.info`, keep annotations and `.history` objects not fetched
    /// again because their ETag and size were unchanged, and label files
    /// not fetched again because they were read before.
    pub reused_objects: u64,
    /// HTTP requests the walk sent to S3, retries included (filled in by the
    /// scheduler from the target's request counter).
    pub requests: u64,
}

impl WalkStats {
    fn add(&mut self, o: &WalkStats) {
        self.full_servers += o.full_servers;
        self.incremental_servers += o.incremental_servers;
        self.listed_dirs += o.listed_dirs;
        self.reused_dirs += o.reused_dirs;
        self.reused_objects += o.reused_objects;
        self.requests += o.requests;
    }

    /// True when every server's WAL directories were all listed (or there
    /// were no servers): the `kind="full"` of `barman_cloud_s3_walks_total`.
    pub fn is_full(&self) -> bool {
        self.incremental_servers == 0
    }
}

/// How many server prefixes are walked at once per target.
const SERVER_CONCURRENCY: usize = 4;
/// How many `backup.info` GETs are in flight at once per server.
const GET_CONCURRENCY: usize = 8;

/// Walks the destination path `prefix` (empty, or ending with `/`) of
/// `store`, reusing what `prev` (the previous successful walk's cache; empty
/// for a cold start) says cannot have changed. Returns the catalog and the
/// cache for the next walk.
///
/// Per server: `base/` is listed and only new or changed `backup.info`,
/// keep annotations and `.history` files are fetched (an object whose ETag
/// and size are unchanged is not fetched again; STARTED backups are always
/// re-read). `wals/` is listed with a delimiter to find its directories;
/// a full walk lists every directory, `opts.list_concurrency` at once
/// across all servers of the target; an incremental walk lists only new
/// directories and the newest directory of the two newest timelines, and
/// reuses the previous aggregates of the rest. See [`plan_wal_listing`] for
/// when a walk is full.
///
/// # Errors
/// Any failed listing, and GETs that fail for network or server reasons,
/// fail the walk: a partial catalog is never returned. A `backup.info`
/// that is refused (4xx), too large or malformed only marks that backup
/// unreadable; a `.history` file that is refused, too large, does not
/// decompress within its bound or does not parse is counted unreadable.
pub async fn walk<S: ObjectStore>(
    store: &S,
    prefix: &str,
    opts: WalkOptions,
    prev: &WalkCache,
) -> Result<Walk, S::Error> {
    let mut catalog = TargetCatalog::default();
    let mut candidates = Vec::new();
    store
        .list(Listing::one_level(prefix), |page| {
            for p in &page.prefixes {
                if let Some(name) = p.strip_prefix(prefix).and_then(|n| n.strip_suffix('/'))
                    && !name.is_empty()
                {
                    candidates.push(name.to_string());
                }
            }
            for o in &page.objects {
                catalog.loose.add(o.size);
            }
            true
        })
        .await?;
    // One bound for the target: in-flight listings hold a page each.
    let permits = Semaphore::new(opts.list_concurrency.max(1));
    let walked: Vec<Option<ServerWalk>> = stream::iter(candidates)
        .map(|name| {
            let walker = ServerWalker {
                store,
                root: format!("{prefix}{name}/"),
                opts,
                prev: prev.servers.get(&name),
                permits: &permits,
            };
            walker.walk(name)
        })
        .buffered(SERVER_CONCURRENCY)
        .try_collect()
        .await?;
    let mut walk = Walk {
        catalog,
        cache: WalkCache::default(),
        stats: WalkStats::default(),
    };
    for w in walked.into_iter().flatten() {
        walk.stats.add(&w.stats);
        walk.cache.servers.insert(w.catalog.name.clone(), w.cache);
        walk.catalog.servers.push(w.catalog);
    }
    Ok(walk)
}

/// One server's walk result.
struct ServerWalk {
    catalog: ServerCatalog,
    cache: ServerCache,
    stats: WalkStats,
}

/// One backup directory as listed under `base/`.
#[derive(Default)]
struct ListedBackup {
    usage: Usage,
    barman_bytes: u64,
    /// `Some` when it holds a `backup.info` (with its identity, if any).
    info: Option<Option<ObjectId>>,
    /// `Some` when it holds an `annotations/keep`.
    keep: Option<Option<ObjectId>>,
    /// Its tars.
    tars: Vec<TarObject>,
}

/// `base/` as listed.
#[derive(Default)]
struct BaseListing {
    /// Backup directories by id.
    dirs: BTreeMap<String, ListedBackup>,
    /// Objects not in a backup directory.
    loose: Usage,
    /// Objects in a storage class that must be restored first.
    archive_tier: Usage,
    /// Whether `base/` holds any object.
    seen: bool,
}

/// The root of `wals/` as listed.
#[derive(Default)]
struct WalRoot {
    /// Directory names, in listing order.
    dirs: DirNames,
    /// Root objects (after `wals/`) and their identity.
    ids: BTreeMap<String, Option<ObjectId>>,
    /// The root objects in key order, for the cache (`None` past
    /// [`cache::MAX_ROOT_OBJECTS`]).
    objects: Option<Vec<RootObject>>,
    /// Whether `wals/` holds any object or directory.
    seen: bool,
}

/// A backup directory as read, with what may be cached of its `backup.info`
/// and keep annotation, and how many objects were reused from the cache.
type FetchedBackup = (
    BackupDir,
    Option<Cached<BackupInfoState>>,
    Option<Cached<Option<Keep>>>,
    u64,
);

/// A `.history` file's timeline, its parsed entries, and what may be cached.
type FetchedHistory = (
    u32,
    Option<Vec<HistoryEntry>>,
    Option<Cached<Option<Vec<HistoryEntry>>>>,
);

/// Walks one server prefix (`root`, ending with `/`).
struct ServerWalker<'a, S> {
    store: &'a S,
    root: String,
    opts: WalkOptions,
    /// The previous walk of this server.
    prev: Option<&'a ServerCache>,
    /// The target's bound on WAL listings in flight.
    permits: &'a Semaphore,
}

impl<S: ObjectStore> ServerWalker<'_, S> {
    /// Walks the server; `None` when it holds neither `base/` nor `wals/`.
    ///
    /// Order matters for flat memory: `base/` is listed and every `backup.info`
    /// (and keep annotation) fetched first, so the retention rules are known
    /// before `wals/` streams by and each WAL object is accounted as it passes.
    async fn walk(self, name: String) -> Result<Option<ServerWalk>, S::Error> {
        let mut w = ServerWalk {
            catalog: ServerCatalog {
                name,
                ..Default::default()
            },
            cache: ServerCache::default(),
            stats: WalkStats::default(),
        };
        let base = self.list_base().await?;
        w.catalog.base_loose = base.loose;
        w.catalog.base_archive_tier = base.archive_tier;
        self.read_backups(base.dirs, &mut w).await?;
        let s = &mut w.catalog;
        let metas: Vec<BackupMeta> = s.backups.iter().filter_map(BackupDir::retention_meta).collect();
        let unreadable = s
            .backups
            .iter()
            .any(|b| matches!(&b.info, BackupInfoState::Unreadable(_)) || b.blocks_barman());
        s.rules = WalRules::plan(&metas, self.opts.retention, self.opts.now, unreadable);
        let (now, interval) = (self.opts.now, self.opts.full_walk_interval);
        // Not for a server without `base/`: only the delimiter listing can tell
        // that its `wals/` is gone too (then the server is gone).
        let tail = self
            .prev
            .filter(|_| base.seen)
            .and_then(|p| Some((p.root.as_deref()?, plan_tail(&p.wal, &s.rules, now, interval)?)));
        let root = match tail {
            Some((cached_root, plan)) => self.walk_tail(cached_root, plan, &mut w).await?,
            None => {
                let mut root = self.list_wal_root(&mut s.wal, &s.rules).await?;
                if !base.seen && !root.seen {
                    return Ok(None);
                }
                self.list_wal(std::mem::take(&mut root.dirs), &mut w).await?;
                root
            }
        };
        w.cache.root = root.objects;
        self.read_histories(&root.ids, &mut w).await?;
        self.find_last_deleted(&mut w).await?;
        Ok(Some(w))
    }

    /// Lists `base/` recursively.
    async fn list_base(&self) -> Result<BaseListing, S::Error> {
        let base = format!("{}base/", self.root);
        let mut out = BaseListing::default();
        self.store
            .list(Listing::recursive(&base), |page| {
                for o in &page.objects {
                    out.seen = true;
                    let Some(rest) = o.key.strip_prefix(&base) else {
                        continue;
                    };
                    if needs_restore(o.storage_class.as_deref()) {
                        out.archive_tier.add(o.size);
                    }
                    let (id, file) = match classify_base(rest) {
                        BaseObject::BackupInfo { id } => (id, "backup.info"),
                        BaseObject::BackupFile { id } => (id, &rest[id.len() + 1..]),
                        BaseObject::Loose => {
                            out.loose.add(o.size);
                            continue;
                        }
                    };
                    let d = out.dirs.entry(id.to_string()).or_default();
                    d.usage.add(o.size);
                    match file {
                        "backup.info" => {
                            d.info = Some(ObjectId::of(o));
                            d.barman_bytes += o.size;
                        }
                        "annotations/keep" => d.keep = Some(ObjectId::of(o)),
                        f if is_backup_tar(f) => {
                            d.barman_bytes += o.size;
                            d.tars.push(TarObject {
                                name: f.to_string(),
                                size: o.size,
                                archive_tier: o.storage_class.clone().filter(|c| needs_restore(Some(c))),
                            });
                        }
                        _ => {}
                    }
                }
                true
            })
            .await?;
        Ok(out)
    }

    /// Reads every backup directory's `backup.info` and keep annotation
    /// (from the cache when unchanged) into `w`.
    async fn read_backups(&self, dirs: BTreeMap<String, ListedBackup>, w: &mut ServerWalk) -> Result<(), S::Error> {
        let fetched: Vec<FetchedBackup> = stream::iter(dirs)
            .map(|(id, d)| self.read_backup(id, d))
            .buffered(GET_CONCURRENCY)
            .try_collect()
            .await?;
        for (dir, info, keep, reused) in fetched {
            w.stats.reused_objects += reused;
            if let Some(c) = info {
                w.cache.infos.insert(dir.id.clone(), c);
            }
            if let Some(c) = keep {
                w.cache.keeps.insert(dir.id.clone(), c);
            }
            w.catalog.backups.push(dir);
        }
        Ok(())
    }

    /// One backup directory's `backup.info` and keep annotation.
    async fn read_backup(&self, id: String, d: ListedBackup) -> Result<FetchedBackup, S::Error> {
        let base = format!("{}base/{id}/", self.root);
        let prev_info = self.prev.and_then(|p| p.infos.get(&id));
        let prev_keep = self.prev.and_then(|p| p.keeps.get(&id));
        let mut reused = 0;
        let (info, info_cache) = match d.info {
            None => (BackupInfoState::Missing, None),
            Some(oid) => match Cached::hit(prev_info, oid.as_ref()) {
                Some(v) => {
                    reused += 1;
                    (v.clone(), prev_info.cloned())
                }
                None => {
                    let (state, stable) = self.fetch_backup_info(&format!("{base}backup.info")).await?;
                    let c = oid.filter(|_| stable).map(|id| Cached {
                        id,
                        value: state.clone(),
                    });
                    (state, c)
                }
            },
        };
        let (keep, keep_cache) = match d.keep {
            None => (None, None),
            Some(oid) => match Cached::hit(prev_keep, oid.as_ref()) {
                Some(v) => {
                    reused += 1;
                    (*v, prev_keep.cloned())
                }
                None => match self.get_small(&format!("{base}annotations/keep")).await? {
                    Some(body) => {
                        let keep = Keep::from_body(&String::from_utf8_lossy(&body));
                        (keep, oid.map(|id| Cached { id, value: keep }))
                    }
                    None => (None, None),
                },
            },
        };
        let dir = BackupDir {
            id,
            objects: d.usage.objects,
            bytes: d.usage.bytes,
            barman_bytes: d.barman_bytes,
            keep,
            info,
            tars: d.tars,
        };
        Ok((dir, info_cache, keep_cache, reused))
    }

    /// Fetches and parses one `backup.info`; the flag says whether the result
    /// may be cached by ETag (a parsed DONE or FAILED backup, or a malformed
    /// file: both follow from the bytes alone; STARTED backups and refused
    /// GETs are read again next time).
    async fn fetch_backup_info(&self, key: &str) -> Result<(BackupInfoState, bool), S::Error> {
        Ok(match self.store.get(key, MAX_BACKUP_INFO_BYTES).await? {
            Ok(buf) => match BackupInfo::parse(&buf) {
                Ok(info) => {
                    let stable = info.status != BackupStatus::Started;
                    (BackupInfoState::Parsed(Arc::new(info)), stable)
                }
                Err(e) => (BackupInfoState::Unreadable(e.to_string()), true),
            },
            Err(why) => (BackupInfoState::Unreadable(why.to_string()), false),
        })
    }

    /// GETs a small object (at most [`MAX_BACKUP_INFO_BYTES`]); `None` when it
    /// is missing, refused or too large.
    async fn get_small(&self, key: &str) -> Result<Option<Vec<u8>>, S::Error> {
        Ok(self.store.get(key, MAX_BACKUP_INFO_BYTES).await?.ok())
    }

    /// Lists `wals/` with a delimiter: accounts its root objects into `wal`
    /// with `rules`, and returns its directory names and root objects.
    async fn list_wal_root(&self, wal: &mut WalTotals, rules: &WalRules) -> Result<WalRoot, S::Error> {
        let wals = format!("{}wals/", self.root);
        let mut out = WalRoot {
            objects: Some(Vec::new()),
            ..Default::default()
        };
        self.store
            .list(Listing::one_level(&wals), |page| {
                for p in &page.prefixes {
                    out.seen = true;
                    if let Some(d) = p.strip_prefix(&wals).and_then(|d| d.strip_suffix('/')) {
                        out.dirs.push(d);
                    }
                }
                for o in &page.objects {
                    out.seen = true;
                    if let Some(rest) = o.key.strip_prefix(&wals) {
                        let object = RootObject::of(rest, o);
                        object.account(wal, rules);
                        out.ids.insert(rest.to_string(), object.id.clone());
                        if let Some(kept) = &mut out.objects {
                            if kept.len() < MAX_ROOT_OBJECTS {
                                kept.push(object);
                            } else {
                                out.objects = None;
                            }
                        }
                    }
                }
                true
            })
            .await?;
        Ok(out)
    }

    /// Lists the WAL directories the plan picks (`dirs`: every directory, in
    /// listing order), `list_concurrency` listings at once across the
    /// target, and combines them with the previous walk's aggregates.
    async fn list_wal(&self, dirs: DirNames, w: &mut ServerWalk) -> Result<(), S::Error> {
        let dirs = dirs.sorted();
        let prev = self.prev.map(|p| &p.wal);
        let (opts, server) = (self.opts, &mut w.catalog);
        let plan = plan_wal_listing(prev, &dirs, &server.rules, opts.now, opts.full_walk_interval);
        let chunks = listing_chunks(&plan.list, opts.list_concurrency);
        let wals = format!("{}wals/", self.root);
        let rules = &server.rules;
        let fold = Fold::below(&plan.active, prev);
        let (fold, all) = (&fold, &dirs);
        let mut listed: Vec<Option<Arc<WalTotals>>> = vec![None; dirs.len()];
        let mut lists = stream::iter(chunks)
            .map(|chunk| async {
                // Never closed, so acquiring cannot fail.
                let _permit = self.permits.acquire().await.ok();
                list_wal_dirs(self.store, &wals, all, chunk, rules, fold).await
            })
            .buffer_unordered(opts.list_concurrency.max(1));
        while let Some(got) = lists.try_next().await? {
            for (name, totals) in got.names.iter().zip(got.totals) {
                if let Some(i) = all.position(name) {
                    listed[i] = Some(totals);
                }
            }
        }
        drop(lists);
        let full = plan.full;
        let c = combine(prev, plan, dirs, listed, &server.rules, opts.now, &mut server.wal);
        w.stats.listed_dirs += c.listed;
        w.stats.reused_dirs += c.reused;
        if full {
            w.stats.full_servers += 1;
        } else {
            w.stats.incremental_servers += 1;
        }
        w.cache.wal = c.cache;
        Ok(())
    }
}
