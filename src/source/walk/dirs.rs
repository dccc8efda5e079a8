//! Step 4 of the walk: range listings of consecutive WAL directories, each
//! directory's objects accounted as the pages stream by ([`DirAccumulator`]),
//! old directories folded into spans ([`Fold`]).

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::sync::Arc;

use crate::catalog::listing::{Chunk, DirCache, DirNames, dir_cmp};
use crate::catalog::retention::WalRules;
use crate::catalog::{WalTotals, needs_restore};
use crate::source::store::{Listing, ObjectInfo, ObjectStore};

#[cfg(doc)]
use crate::catalog::listing::combine;

/// Lists a run of consecutive `wals/` directories (`chunk`: indices into
/// `all`, the delimiter listing's names) and accounts each one's objects
/// with `rules`. One directory is listed by its prefix; several by one range
/// listing of `wals/` from just before the first (start-after) up to the end
/// of the last, so pages are full whatever the directories hold. Objects at
/// the `wals/` root (history files) and directories created since the
/// delimiter listing are left to that listing and the next walk.
///
/// The range starts after `<after>/` + U+10FFFF (past every key of the
/// directory before), not after `<first>`: SeaweedFS skips a whole
/// directory named like the `StartAfter` value, which AWS does not.
pub(super) async fn list_wal_dirs<S: ObjectStore>(
    store: &S,
    wals: &str,
    all: &DirNames,
    chunk: Chunk,
    rules: &WalRules,
    fold: &Fold,
) -> Result<Listed, S::Error> {
    let range = chunk.dirs;
    if range.is_empty() {
        return Ok(Listed::default());
    }
    let (first, last) = (all.get(range.start), all.get(range.end - 1));
    let (prefix, start_after) = if range.len() == 1 {
        (format!("{wals}{first}/"), None)
    } else {
        (
            wals.to_string(),
            chunk.after.map(|a| format!("{wals}{}/\u{10FFFF}", all.get(a))),
        )
    };
    let listing = Listing {
        prefix: &prefix,
        delimiter: None,
        start_after: start_after.as_deref(),
    };
    let mut out = DirAccumulator::new(fold);
    // Whether the directory of the previous object is one of the chunk's
    // (a listing returns each directory's objects together). `None` before
    // the first object: a directory may be named "" (`wals//junk`).
    let mut seen: Option<(String, bool)> = None;
    store
        .list(listing, |page| {
            for o in &page.objects {
                let Some(rest) = o.key.strip_prefix(wals) else {
                    continue;
                };
                let Some((dir, _)) = rest.split_once('/') else {
                    continue; // a root object
                };
                if dir_cmp(dir, last) == Ordering::Greater {
                    return false;
                }
                if seen.as_ref().is_none_or(|(d, _)| d != dir) {
                    let wanted = all.position(dir).is_some_and(|i| range.contains(&i));
                    seen = Some((dir.to_string(), wanted));
                }
                if seen.as_ref().is_some_and(|(_, wanted)| *wanted) {
                    out.add(dir, rest, o, rules);
                }
            }
            true
        })
        .await?;
    Ok(out.finish())
}

/// The directories a listing accounted: their names (in listing order,
/// [`dir_cmp`]) and aggregates (in the same order).
#[derive(Debug, Default)]
pub(super) struct Listed {
    pub(super) names: DirNames,
    pub(super) totals: Vec<Arc<WalTotals>>,
}

/// Which listed WAL directories are folded into spans: those below the
/// oldest active one that were not active in the last walk either (their
/// change would be expected, see [`combine`]).
///
/// A span keeps the merged aggregates of its consecutive directories under
/// its first one, and an empty aggregate (one allocation shared by the span)
/// under the others: every directory stays known by name (removals and new
/// directories are still seen), merging them all still gives the server's
/// totals, and memory per old directory is its name and a pointer instead of
/// its own aggregates. A full walk compares the old and new aggregates of
/// such directories summed over all of them ([`combine`]), so how they were
/// grouped does not matter.
#[derive(Debug, Default)]
pub(super) struct Fold {
    /// Fold directories sorting before this one (`None`: fold none).
    below: Option<String>,
    /// Never fold these.
    keep: BTreeSet<String>,
}

impl Fold {
    /// The fold of a walk whose active directories are `active`, after the
    /// walk that left `prev`.
    pub(super) fn below(active: &BTreeSet<String>, prev: Option<&DirCache>) -> Self {
        Self {
            below: active.first().cloned(),
            keep: prev.map(|p| p.active.clone()).unwrap_or_default(),
        }
    }

    fn folds(&self, dir: &str) -> bool {
        self.below.as_deref().is_some_and(|b| dir < b) && !self.keep.contains(dir)
    }
}

/// Accounts the objects of consecutive WAL directories as a listing
/// streams them (sorted, so each directory's objects are contiguous), each
/// directory's aggregates moved into the `Arc` the cache keeps once it is
/// complete (no copy of them is ever held beside another), and the
/// directories [`Fold`] picks merged into spans as they complete, so that a
/// walk of tens of thousands of directories holds one span's aggregates, not
/// one per directory.
pub(super) struct DirAccumulator<'f> {
    fold: &'f Fold,
    done: Listed,
    current: Option<(String, WalTotals)>,
    /// The span being built: its first directory's index in `done` and the
    /// merged aggregates.
    span: Option<(usize, WalTotals)>,
    /// The empty aggregate the other directories of spans share.
    folded: Arc<WalTotals>,
}

impl<'f> DirAccumulator<'f> {
    /// An accumulator folding as `fold` says.
    pub(super) fn new(fold: &'f Fold) -> Self {
        Self {
            fold,
            done: Listed::default(),
            current: None,
            span: None,
            folded: Arc::default(),
        }
    }

    /// Accounts the object `o` of directory `dir` (`rest`: its key after `wals/`).
    pub(super) fn add(&mut self, dir: &str, rest: &str, o: &ObjectInfo, rules: &WalRules) {
        if self.current.as_ref().is_none_or(|(d, _)| d != dir) {
            self.flush();
            self.current = Some((dir.to_string(), WalTotals::default()));
        }
        if let Some((_, totals)) = &mut self.current {
            totals.add(rest, o.size, o.last_modified, rules);
            if needs_restore(o.storage_class.as_deref()) {
                totals.archive_tier.add(o.size);
            }
        }
    }

    /// Completes the current directory: into the span, or on its own (which
    /// ends the span).
    fn flush(&mut self) {
        let Some((d, mut t)) = self.current.take() else {
            return;
        };
        t.finish_directory();
        self.done.names.push(&d);
        if self.fold.folds(&d) {
            match &mut self.span {
                Some((_, span)) => span.merge(&t),
                // The span's first directory: its slot is filled when the span ends.
                None => self.span = Some((self.done.totals.len(), t)),
            }
            self.done.totals.push(self.folded.clone());
        } else {
            self.end_span();
            self.done.totals.push(Arc::new(t));
        }
    }

    fn end_span(&mut self) {
        if let Some((i, t)) = self.span.take() {
            self.done.totals[i] = Arc::new(t);
        }
    }

    /// Every directory accounted, in listing order ([`dir_cmp`]). A directory whose objects
    /// came in two places (a store that does not sort its listings) is one
    /// directory with both parts' aggregates.
    pub(super) fn finish(mut self) -> Listed {
        self.flush();
        self.end_span();
        let Listed { names, totals } = self.done;
        if names.is_sorted() {
            return Listed { names, totals };
        }
        let mut pairs: Vec<(&str, Arc<WalTotals>)> = names.iter().zip(totals).collect();
        pairs.sort_by(|a, b| dir_cmp(a.0, b.0));
        let mut out = Listed::default();
        for (n, t) in pairs {
            match out.totals.last_mut() {
                Some(last) if out.names.get(out.names.len() - 1) == n => Arc::make_mut(last).merge(&t),
                _ => {
                    out.names.push(n);
                    out.totals.push(t);
                }
            }
        }
        out
    }
}
