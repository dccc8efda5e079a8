//! What one walk leaves for the next ([`WalkCache`]): per server, the values
//! read from objects (kept while the object's ETag and size are unchanged)
//! and the aggregates of each WAL directory ([`DirCache`]).

use std::collections::BTreeMap;

use crate::catalog::BackupInfoState;
use crate::catalog::history::HistoryEntry;
use crate::catalog::listing::DirCache;
use crate::catalog::retention::Keep;
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
        (
            self.servers.len(),
            self.servers.values().map(|s| s.wal.dirs.len()).sum(),
        )
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
