//! What one walk leaves for the next ([`WalkCache`]): per server, the values
//! read from objects (kept while the object's ETag and size are unchanged)
//! and the aggregates of each WAL directory ([`DirCache`]).

use std::collections::BTreeMap;

use crate::catalog::history::HistoryEntry;
use crate::catalog::listing::DirCache;
use crate::catalog::retention::Keep;
use crate::catalog::retention::WalRules;
use crate::catalog::{BackupInfoState, WalTotals};
use crate::source::store::ObjectInfo;

/// What one walk leaves for the next: per server, the objects already read
/// (by ETag) and the aggregates of each WAL directory. Memory grows with
/// servers, backups and WAL directories, never with WAL segments.
#[derive(Debug, Clone, Default)]
pub struct WalkCache {
    pub(super) servers: BTreeMap<String, ServerCache>,
}

impl WalkCache {
    /// Number of servers and WAL directories remembered.
    pub fn size(&self) -> (usize, usize) {
        (self.servers.len(), self.servers.values().map(|s| s.wal.len()).sum())
    }
}

/// One server's part of a [`WalkCache`].
#[derive(Debug, Clone, Default)]
pub struct ServerCache {
    /// Parsed `backup.info` by backup id (not STARTED ones).
    pub(super) infos: BTreeMap<String, Cached<BackupInfoState>>,
    /// Keep annotations by backup id.
    pub(super) keeps: BTreeMap<String, Cached<Option<Keep>>>,
    /// Parsed `.history` files by key after `wals/`.
    pub(super) histories: BTreeMap<String, Cached<Option<Vec<HistoryEntry>>>>,
    /// Foreign label files read (key after `wals/`) and the barman backup id
    /// each names (`None`: not a barman label, or unreadable). By key only:
    /// PostgreSQL writes a label file once.
    pub(super) labels: BTreeMap<String, Option<String>>,
    /// The WAL directories: their aggregates and the incremental plan's state.
    pub(super) wal: DirCache,
    /// The `wals/` root objects as last listed, in key order, so that a tail
    /// listing can account those it does not list again; `None` when there
    /// were more than [`MAX_ROOT_OBJECTS`] (then no tail listing).
    pub(super) root: Option<Vec<RootObject>>,
}

/// The most `wals/` root objects remembered for a tail listing (barman
/// writes a handful there: one `.history` per timeline).
pub(super) const MAX_ROOT_OBJECTS: usize = 1000;

/// A `wals/` root object as listed.
#[derive(Debug, Clone)]
pub(super) struct RootObject {
    /// Key after `wals/`.
    pub(super) rest: String,
    /// Size, bytes.
    pub(super) size: u64,
    /// `LastModified`, Unix seconds.
    pub(super) last_modified: Option<f64>,
    /// In a storage class that must be restored before it can be read.
    pub(super) archive_tier: bool,
    /// Its identity (for the `.history` cache).
    pub(super) id: Option<ObjectId>,
}

impl RootObject {
    /// The root object `o` whose key after `wals/` is `rest`.
    pub(super) fn of(rest: &str, o: &ObjectInfo) -> Self {
        Self {
            rest: rest.to_string(),
            size: o.size,
            last_modified: o.last_modified,
            archive_tier: crate::catalog::needs_restore(o.storage_class.as_deref()),
            id: ObjectId::of(o),
        }
    }

    /// Accounts it into `wal` with `rules`, as the listing of `wals/` does.
    pub(super) fn account(&self, wal: &mut WalTotals, rules: &WalRules) {
        wal.add(&self.rest, self.size, self.last_modified, rules);
        if self.archive_tier {
            wal.archive_tier.add(self.size);
        }
    }
}

/// An object's identity as listed: a value derived from its bytes stays valid
/// while the ETag and size do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ObjectId {
    etag: String,
    size: u64,
}

impl ObjectId {
    /// `None` when the listing gave no ETag (then nothing is cached).
    pub(super) fn of(o: &ObjectInfo) -> Option<Self> {
        Some(Self {
            etag: o.etag.clone()?,
            size: o.size,
        })
    }
}

/// A value derived from an object's bytes, with the object's identity.
#[derive(Debug, Clone)]
pub(super) struct Cached<T> {
    pub(super) id: ObjectId,
    pub(super) value: T,
}

impl<T> Cached<T> {
    /// The cached value when the object is listed with the same identity.
    pub(super) fn hit<'a>(cached: Option<&'a Cached<T>>, now: Option<&ObjectId>) -> Option<&'a T> {
        let c = cached?;
        (Some(&c.id) == now).then_some(&c.value)
    }
}
