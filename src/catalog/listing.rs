//! The incremental WAL listing: which `wals/` directories a walk lists, how
//! they are grouped into range listings, and how the listed directories are
//! combined with the aggregates the previous walk left. Pure; the walk
//! ([`crate::source::walk`]) does the I/O.
//!
//! Why it is safe: WAL keys sort lexicographically and PostgreSQL only
//! appends, so a directory that is no longer written into changes only by
//! retention, which changes the backup set (and so the [`WalRules`]) first.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::WalTotals;
use super::retention::WalRules;

mod names;
mod tail;

pub use names::{DirNames, dir_cmp};
pub use tail::{PAGE_KEYS, TailPlan, plan_tail, tail_listing};

/// What a walk remembers of one server's `wals/` directories for the next.
#[derive(Debug, Clone, Default)]
pub struct DirCache {
    /// The retention rules the directory aggregates were computed with.
    pub rules: WalRules,
    /// The directory names (`wals/<dir>/` without slashes), sorted.
    pub names: DirNames,
    /// Aggregates of each directory, in the order of `names`.
    pub totals: Vec<Arc<WalTotals>>,
    /// When every directory was last listed, Unix seconds.
    pub full_at: f64,
    /// False when the last full walk found older directories changed, so the
    /// next walk is full too.
    pub settled: bool,
    /// The directories that were active then ([`WalListing::active`]): they
    /// may have been filled after they were listed, so they are listed again.
    pub active: BTreeSet<String>,
}

impl DirCache {
    /// The aggregates of directory `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<WalTotals>> {
        self.names.position(name).map(|i| &self.totals[i])
    }

    /// Number of directories.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// Whether it remembers no directory.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// Which WAL directories a walk lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalListing {
    /// Every directory is listed.
    pub full: bool,
    /// The directories to list: indices into the names the plan was made
    /// from, ascending.
    pub list: Vec<u32>,
    /// Directories PostgreSQL may still be writing into ([`active_dirs`]): the
    /// newest of the newest timeline and, unless quiet, of the one before (a
    /// promote archives the old timeline's `.partial`). A change there is
    /// expected and does not unsettle a full walk.
    pub active: BTreeSet<String>,
    /// A directory of the previous walk is gone (retention ran).
    pub removed: bool,
}

/// A run of consecutive `wals/` directories listed together, and the
/// directory just before it in the delimiter listing (where its range
/// listing starts after), as indices into the directory names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The directory before the first one, `None` at the start of `wals/`.
    pub after: Option<usize>,
    /// The directories.
    pub dirs: std::ops::Range<usize>,
}

/// Groups the directories to list (`list`: ascending indices into the
/// `wals/` delimiter listing's names) into chunks for concurrent listings:
/// runs of consecutive directories, each cut into pieces of at most
/// `ceil(list / concurrency)` directories but not fewer than
/// [`MIN_CHUNK_DIRS`], so a cold walk makes about `concurrency` range
/// listings of full pages (a small server one listing, not one per
/// directory) and an incremental one a listing per active directory.
pub fn listing_chunks(list: &[u32], concurrency: usize) -> Vec<Chunk> {
    let size = list.len().div_ceil(concurrency.max(1)).max(MIN_CHUNK_DIRS);
    let mut chunks: Vec<Chunk> = Vec::new();
    for &i in list {
        let i = i as usize;
        match chunks.last_mut() {
            Some(c) if c.dirs.end == i && c.dirs.len() < size => c.dirs.end = i + 1,
            _ => chunks.push(Chunk {
                after: i.checked_sub(1),
                dirs: i..i + 1,
            }),
        }
    }
    chunks
}

/// The fewest directories a range listing is cut to: four directories of
/// 16 MiB segments (256 each) are about one page of [`PAGE_KEYS`] keys, so
/// listing them apart would only add requests of part-filled pages.
pub const MIN_CHUNK_DIRS: usize = 4;

/// Decides which WAL directories to list, given the previous walk of the
/// server (`None`: cold start), the directories listed now under `wals/`
/// (sorted), the retention rules planned now, now (Unix seconds) and
/// `full_walk_interval` (seconds; 0 makes every walk full).
///
/// The walk is full (every directory) on a cold start, when the rules differ
/// from those the cached aggregates were computed with (the backup set
/// changed, or a RECOVERY WINDOW moved), when a directory disappeared
/// (retention deleted it), when the previous full walk was not settled, or
/// when `full_walk_interval` has passed since the last full walk. Otherwise it
/// lists the new directories, the active ones and those active in the
/// previous walk (which may have been filled since).
pub fn plan_wal_listing(
    prev: Option<&DirCache>,
    dirs: &DirNames,
    rules: &WalRules,
    now: f64,
    full_walk_interval: f64,
) -> WalListing {
    let active = active_dirs(dirs, prev, now, full_walk_interval);
    let removed = prev.is_some_and(|p| p.names.iter().any(|d| !dirs.contains(d)));
    let full = match prev {
        None => true,
        Some(p) => p.rules != *rules || removed || !p.settled || now - p.full_at >= full_walk_interval,
    };
    let list = dirs
        .iter()
        .enumerate()
        .filter(|(_, d)| {
            full || active.contains(*d) || prev.is_none_or(|p| p.active.contains(*d) || !p.names.contains(d))
        })
        .map(|(i, _)| u32::try_from(i).unwrap_or(u32::MAX))
        .collect();
    WalListing {
        full,
        list,
        active,
        removed,
    }
}

/// The directories PostgreSQL may still be writing into, among `dirs`
/// (sorted): the newest directory of the newest timeline, and the
/// newest of the timeline before it unless that one is quiet — its newest
/// segment, as `prev` listed it, older than `full_walk_interval` seconds
/// before `now`. After a promote the old primary may still archive into its
/// timeline for a while (and the new one archives its `.partial` there);
/// once that timeline has been quiet for a reconcile interval, a late change
/// there is left to the periodic full walk, like any old directory.
pub fn active_dirs(dirs: &DirNames, prev: Option<&DirCache>, now: f64, full_walk_interval: f64) -> BTreeSet<String> {
    let mut newest: BTreeMap<u32, &str> = BTreeMap::new();
    let mut slashed = String::new();
    for d in dirs.iter() {
        slashed.clear();
        slashed.push_str(d);
        slashed.push('/');
        if let Some((tli, _)) = super::key::wal_dir(&slashed) {
            let e = newest.entry(tli).or_insert(d);
            if d > *e {
                *e = d;
            }
        }
    }
    let quiet = |d: &str| {
        prev.and_then(|p| p.get(d))
            .and_then(|t| t.newest_segment_modified)
            .is_some_and(|m| now - m >= full_walk_interval)
    };
    let mut newest = newest.into_values().rev();
    let mut active: BTreeSet<String> = newest.next().map(String::from).into_iter().collect();
    active.extend(newest.next().filter(|d| !quiet(d)).map(String::from));
    active
}

/// The outcome of [`combine`].
#[derive(Debug, Clone)]
pub struct Combined {
    /// What the next walk may reuse.
    pub cache: DirCache,
    /// Directories listed now (those of the plan, an emptied one included).
    pub listed: u64,
    /// Directories whose previous aggregates were reused unlisted.
    pub reused: u64,
}

/// Combines the directories listed now (`listed[i]`: the aggregates of
/// `all`'s directory `i` if it was listed, accounted with `rules`, each in
/// the allocation the cache keeps: no copy) with the previous walk's
/// aggregates of the others, in the order of `all` (the directories of the
/// `wals/` delimiter listing, sorted), merging every directory's aggregates
/// into `into`. `now` is Unix seconds.
///
/// A directory of the plan that the listing did not return was emptied in
/// between and counts as listed and empty. A full walk that finds old
/// directories (not active now nor in the previous walk) changed, compared
/// summed over all of them, or one removed, is not settled: the next walk is
/// full again.
pub fn combine(
    prev: Option<&DirCache>,
    plan: WalListing,
    all: DirNames,
    mut listed: Vec<Option<Arc<WalTotals>>>,
    rules: &WalRules,
    now: f64,
    into: &mut WalTotals,
) -> Combined {
    listed.resize(all.len(), None);
    for &i in &plan.list {
        if let Some(slot) = listed.get_mut(i as usize) {
            slot.get_or_insert_with(Default::default);
        }
    }
    let listed_count = listed.iter().filter(|t| t.is_some()).count() as u64;
    let mut reused = 0;
    let mut changed = plan.removed;
    // A full walk's old and new aggregates of the directories that should
    // not have changed, summed (directories folded into spans hold their
    // span's sum under its first one: only sums compare).
    let (mut old_sum, mut new_sum) = (WalTotals::default(), WalTotals::default());
    // In place: `listed`'s allocation becomes the cache's aggregates.
    let totals: Vec<Arc<WalTotals>> = listed
        .into_iter()
        .enumerate()
        .map(|(i, slot)| {
            let d = all.get(i);
            let t = match slot {
                Some(t) => {
                    let expected = plan.active.contains(d) || prev.is_some_and(|p| p.active.contains(d));
                    if let Some(old) = prev.and_then(|p| p.get(d)).filter(|_| plan.full && !expected) {
                        old_sum.merge(old);
                        new_sum.merge(&t);
                    }
                    t
                }
                None => match prev.and_then(|p| p.get(d)) {
                    Some(t) => {
                        reused += 1;
                        t.clone()
                    }
                    // Unreachable: a directory not listed now was in the previous cache.
                    None => Arc::new(WalTotals::default()),
                },
            };
            into.merge(&t);
            t
        })
        .collect();
    if !old_sum.same_objects(&new_sum) {
        changed = true;
    }
    let mut names = all;
    names.shrink_to_fit();
    let cache = DirCache {
        rules: rules.clone(),
        names,
        totals,
        full_at: if plan.full {
            now
        } else {
            prev.map_or(now, |p| p.full_at)
        },
        // A full walk that found old directories changed (retention deleting
        // WAL, or WAL written into an old directory) is repeated next cycle,
        // until the bucket is seen to be settled; so is a tail listing that
        // found a directory removed.
        settled: !(prev.is_some() && (plan.removed || (plan.full && changed))),
        active: plan.active,
    };
    Combined {
        cache,
        listed: listed_count,
        reused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::retention::BackupMeta;

    fn dirs(names: &[&str]) -> DirNames {
        names.iter().copied().collect()
    }

    fn plan(prev: Option<&DirCache>, names: &DirNames, rules: &WalRules, now: f64) -> WalListing {
        plan_wal_listing(prev, names, rules, now, 100.0)
    }

    /// The names of a plan's list.
    fn listed<'a>(p: &WalListing, all: &'a DirNames) -> Vec<&'a str> {
        p.list.iter().map(|&i| all.get(i as usize)).collect()
    }

    fn cache(names: &[&str], full_at: f64) -> DirCache {
        DirCache {
            names: dirs(names),
            totals: names.iter().map(|_| Arc::new(WalTotals::default())).collect(),
            full_at,
            settled: true,
            // As the walk that listed `names` leaves it.
            active: plan(None, &dirs(names), &WalRules::default(), 0.0).active,
            ..Default::default()
        }
    }

    /// Aggregates of one segment `name` in directory `dir`.
    fn one_segment(dir: &str, name: &str) -> WalTotals {
        let mut t = WalTotals::default();
        t.add(&format!("{dir}/{name}"), 16, Some(1.0), &WalRules::default());
        t
    }

    const OLD: [&str; 5] = [
        "0000000100000000",
        "0000000100000001",
        "0000000200000001",
        "0000000300000001",
        "0000000300000002",
    ];

    #[test]
    fn chunks_are_runs_of_consecutive_directories() {
        // Indices into a, b, c, d, e, f, g.
        let all: Vec<u32> = (0..7).collect();
        let chunk = |after: Option<usize>, d: std::ops::Range<usize>| Chunk { after, dirs: d };
        // At least MIN_CHUNK_DIRS (4) directories a listing.
        assert_eq!(listing_chunks(&all, 3), vec![chunk(None, 0..4), chunk(Some(3), 4..7)]);
        assert_eq!(listing_chunks(&all, 100), listing_chunks(&all, 3));
        assert_eq!(listing_chunks(&[0, 1, 2], 16), vec![chunk(None, 0..3)]);
        let many: Vec<u32> = (0..20).collect();
        assert_eq!(
            listing_chunks(&many, 4),
            vec![
                chunk(None, 0..5),
                chunk(Some(4), 5..10),
                chunk(Some(9), 10..15),
                chunk(Some(14), 15..20)
            ]
        );
        // a, b, d, g: runs of consecutive directories only.
        assert_eq!(
            listing_chunks(&[0, 1, 3, 6], 2),
            vec![chunk(None, 0..2), chunk(Some(2), 3..4), chunk(Some(5), 6..7)]
        );
        assert!(listing_chunks(&[], 4).is_empty());
    }

    #[test]
    fn cold_start_lists_everything() {
        let p = plan(None, &dirs(&OLD), &WalRules::default(), 0.0);
        assert!(p.full);
        assert_eq!(listed(&p, &dirs(&OLD)), OLD);
    }

    #[test]
    fn steady_state_lists_the_newest_directory_of_the_two_newest_timelines() {
        let prev = cache(&OLD, 0.0);
        let p = plan(Some(&prev), &dirs(&OLD), &WalRules::default(), 50.0);
        assert!(!p.full);
        assert_eq!(listed(&p, &dirs(&OLD)), ["0000000200000001", "0000000300000002"]);
        // A new directory is listed as well; junk directories only when new.
        let now: DirNames = OLD.iter().copied().chain(["0000000300000003", "junk"]).collect();
        let p = plan(Some(&prev), &now, &WalRules::default(), 50.0);
        assert_eq!(
            listed(&p, &now),
            ["0000000200000001", "0000000300000002", "0000000300000003", "junk"]
        );
        assert_eq!(
            p.active,
            ["0000000200000001", "0000000300000003"].map(String::from).into()
        );
    }

    #[test]
    fn full_walk_when_anything_suggests_old_directories_changed() {
        let prev = cache(&OLD, 0.0);
        // The periodic reconcile.
        assert!(plan(Some(&prev), &dirs(&OLD), &WalRules::default(), 100.0).full);
        // A directory disappeared (retention deleted it).
        let p = plan(Some(&prev), &dirs(&OLD[1..]), &WalRules::default(), 1.0);
        assert!(p.full && p.removed);
        // The retention plan changed (a backup was added, deleted or aged out).
        let meta = BackupMeta {
            id: "20250101T000000".into(),
            done: true,
            status_done: true,
            timeline: Some(1),
            begin_wal: crate::catalog::wal::SegmentName::parse("000000010000000000000004"),
            end_wal: crate::catalog::wal::SegmentName::parse("000000010000000000000004"),
            begin_offset: Some(40),
            end_time: Some(0.0),
            keep: None,
        };
        let rules = WalRules::plan(&[meta], None, 1.0, false);
        assert!(plan(Some(&prev), &dirs(&OLD), &rules, 1.0).full);
        // The last full walk was not settled.
        let unsettled = DirCache {
            settled: false,
            ..cache(&OLD, 0.0)
        };
        assert!(plan(Some(&unsettled), &dirs(&OLD), &WalRules::default(), 1.0).full);
        // full_walk_interval 0: every walk is full.
        assert!(plan_wal_listing(Some(&prev), &dirs(&OLD), &WalRules::default(), 0.0, 0.0).full);
    }

    #[test]
    fn combine_reuses_unlisted_directories_and_merges_in_order() {
        let all = dirs(&["0000000100000000", "0000000100000001"]);
        let rules = WalRules::default();
        let cold = plan(None, &all, &rules, 10.0);
        let aggregates = [
            ("0000000100000000", "000000010000000000000001"),
            ("0000000100000001", "000000010000000100000000"),
        ]
        .into_iter()
        .map(|(d, s)| Some(Arc::new(one_segment(d, s))))
        .collect();
        let mut first = WalTotals::default();
        let c = combine(None, cold, all.clone(), aggregates, &rules, 10.0, &mut first);
        assert_eq!((c.listed, c.reused), (2, 0));
        assert!(c.cache.settled && c.cache.full_at == 10.0);
        assert_eq!(first.by_kind[0].objects, 2);

        // Incremental: only the active directory is listed, and it grew.
        let inc = plan(Some(&c.cache), &all, &rules, 20.0);
        assert!(!inc.full);
        assert_eq!(listed(&inc, &all), ["0000000100000001"]);
        let mut grown = one_segment("0000000100000001", "000000010000000100000000");
        grown.add("0000000100000001/000000010000000100000001", 16, Some(2.0), &rules);
        let aggregates = vec![None, Some(Arc::new(grown))];
        let mut second = WalTotals::default();
        let c2 = combine(Some(&c.cache), inc, all.clone(), aggregates, &rules, 20.0, &mut second);
        assert_eq!((c2.listed, c2.reused), (1, 1));
        assert_eq!(second.by_kind[0].objects, 3);
        assert_eq!(
            c2.cache.full_at, 10.0,
            "an incremental walk keeps the last full walk's time"
        );
        assert!(Arc::ptr_eq(
            c2.cache.get("0000000100000000").unwrap(),
            c.cache.get("0000000100000000").unwrap()
        ));

        // A planned directory the range listing did not return was emptied.
        let full = plan_wal_listing(Some(&c2.cache), &all, &rules, 30.0, 0.0);
        let mut third = WalTotals::default();
        let c3 = combine(Some(&c2.cache), full, all, Vec::new(), &rules, 30.0, &mut third);
        assert_eq!((c3.listed, c3.reused), (2, 0));
        assert_eq!(third.by_kind[0].objects, 0);
        // The old directory changed during a full walk: not settled.
        assert!(!c3.cache.settled);
    }
}
