//! The tail listing: the steady-state walk of a server's `wals/` as one range
//! listing, from the oldest active directory to the end of `wals/`. Pure; the
//! walk ([`crate::source::walk`]) does the I/O.
//!
//! WAL keys sort by timeline, then log, then segment, and a new timeline's
//! `.history` sorts after every directory of the timelines before it
//! (`00000002.history` < `0000000200000000/`), so everything PostgreSQL
//! archives after a walk sorts after the oldest directory that walk found
//! active ([`super::active_dirs`]). One listing starting there returns the
//! active directories, every new directory and every new timeline — in the
//! steady state one page — where the classic incremental walk sends a
//! delimiter listing of `wals/` plus one listing per active directory.
//! What it cannot see is a change below that point: a directory removed or
//! rewritten by hand (retention changes the backups first, which makes the
//! walk full) is left to the periodic full walk, and a removal it does see
//! makes the next walk full.

use super::{DirCache, DirNames, WalListing, active_dirs};
use crate::catalog::WalTotals;
use crate::catalog::retention::WalRules;

/// Keys one listing page holds (S3's `max-keys` default, Azure's and GCS's).
pub const PAGE_KEYS: u64 = 1000;

/// Where a tail listing of `wals/` starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TailPlan {
    /// The remembered directory just before the first one listed: the
    /// listing starts after its last key (`None`: at the start of `wals/`).
    pub after: Option<String>,
    /// The first directory listed: the oldest active one of the last walk.
    pub from: String,
}

/// Whether the walk of a server whose last walk left `prev` can be a tail
/// listing, and where it starts. Only when the walk would be incremental
/// anyway (same retention rules, settled, `full_walk_interval` seconds not
/// passed since the last full walk at `now`) and the tail is no more pages
/// than the classic incremental walk's listings (the `wals/` delimiter
/// listing and each active directory), counted from the remembered object
/// counts: after a failover, the old timeline's newest directory stays active
/// until it has been quiet for `full_walk_interval` ([`active_dirs`]), and a
/// tail from there over a long new timeline would cost more.
pub fn plan_tail(prev: &DirCache, rules: &WalRules, now: f64, full_walk_interval: f64) -> Option<TailPlan> {
    let incremental = prev.rules == *rules && prev.settled && now - prev.full_at < full_walk_interval;
    let from = prev.active.first()?;
    let pos = prev.names.position(from)?;
    if !incremental {
        return None;
    }
    let objects = |t: &WalTotals| t.by_kind.iter().map(|u| u.objects).sum::<u64>();
    let pages = |keys: u64| keys.div_ceil(PAGE_KEYS).max(1);
    let tail: u64 = prev.totals[pos..].iter().map(|t| objects(t)).sum();
    let classic = pages(prev.len() as u64)
        + prev
            .active
            .iter()
            .map(|d| pages(prev.get(d).map_or(0, |t| objects(t))))
            .sum::<u64>();
    if pages(tail) > classic {
        return None;
    }
    Some(TailPlan {
        after: pos.checked_sub(1).map(|i| prev.names.get(i).to_string()),
        from: from.clone(),
    })
}

/// After a tail listing that returned the directories `listed` (sorted):
/// the plan [`super::combine`] takes and every directory in order (the
/// remembered ones before `plan.from`, then `listed`, which the plan lists).
/// A remembered directory from `plan.from` on that the listing did not
/// return was removed (`removed`: the cache is then left unsettled, so the
/// next walk is full).
pub fn tail_listing(
    prev: &DirCache,
    plan: &TailPlan,
    listed: &DirNames,
    now: f64,
    full_walk_interval: f64,
) -> (WalListing, DirNames) {
    let pos = prev.names.partition_point(&plan.from);
    let removed = prev.names.slice(pos..prev.len()).any(|d| !listed.contains(d));
    let all = prev.names.first_then(pos, listed);
    let active = active_dirs(&all, Some(prev), now, full_walk_interval);
    let plan = WalListing {
        full: false,
        list: (pos..all.len()).map(|i| u32::try_from(i).unwrap_or(u32::MAX)).collect(),
        active,
        removed,
    };
    (plan, all)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::catalog::listing::combine;

    /// A directory's aggregates: `n` segments, the newest modified at `modified`.
    fn dir(name: &str, n: u32, modified: f64) -> (String, Arc<WalTotals>) {
        let mut t = WalTotals::default();
        let tli = &name[..8];
        for s in 0..n {
            let seg = format!("{tli}{}{s:08X}", &name[8..]);
            t.add(&format!("{name}/{seg}"), 16, Some(modified), &WalRules::default());
        }
        (name.to_string(), Arc::new(t))
    }

    fn cache(dirs: Vec<(String, Arc<WalTotals>)>, now: f64) -> DirCache {
        let names: DirNames = dirs.iter().map(|(d, _)| d.as_str()).collect();
        let mut c = DirCache {
            names: names.clone(),
            totals: dirs.into_iter().map(|(_, t)| t).collect(),
            full_at: 0.0,
            settled: true,
            ..Default::default()
        };
        c.active = active_dirs(&names, Some(&c), now, 100.0);
        c
    }

    #[test]
    fn one_timeline_tails_from_its_newest_directory() {
        let prev = cache(
            vec![
                dir("0000000100000000", 256, 1.0),
                dir("0000000100000001", 256, 2.0),
                dir("0000000100000002", 40, 50.0),
            ],
            50.0,
        );
        let rules = WalRules::default();
        let plan = plan_tail(&prev, &rules, 60.0, 100.0).unwrap();
        assert_eq!(
            plan,
            TailPlan {
                after: Some("0000000100000001".into()),
                from: "0000000100000002".into()
            }
        );
        // Not when the walk would be full anyway.
        assert!(plan_tail(&prev, &rules, 100.0, 100.0).is_none(), "reconcile due");
        let unsettled = DirCache {
            settled: false,
            ..prev.clone()
        };
        assert!(plan_tail(&unsettled, &rules, 60.0, 100.0).is_none());
        // The tail returned the active directory grown and a new one.
        let listed: DirNames = ["0000000100000002", "0000000100000003"].into_iter().collect();
        let (p, all) = tail_listing(&prev, &plan, &listed, 60.0, 100.0);
        assert_eq!(all.len(), 4);
        assert_eq!(p.list, [2, 3]);
        assert_eq!(all.slice(2..4).collect::<Vec<_>>(), listed.iter().collect::<Vec<_>>());
        assert!(!p.full && !p.removed);
        assert_eq!(p.active, ["0000000100000003".to_string()].into());
        let mut into = WalTotals::default();
        let aggregates = vec![
            None,
            None,
            Some(dir("0000000100000002", 41, 60.0).1),
            Some(dir("0000000100000003", 1, 60.0).1),
        ];
        let c = combine(Some(&prev), p, all, aggregates, &rules, 60.0, &mut into);
        assert_eq!((c.listed, c.reused), (2, 2));
        assert_eq!(into.by_kind[0].objects, 256 + 256 + 41 + 1);
        assert!(c.cache.settled);
        // A remembered directory from `from` on gone: the next walk is full.
        let (p, all) = tail_listing(&prev, &plan, &DirNames::default(), 60.0, 100.0);
        assert!(p.removed);
        let c = combine(Some(&prev), p, all, Vec::new(), &rules, 60.0, &mut WalTotals::default());
        assert!(!c.cache.settled);
    }

    #[test]
    fn after_a_failover_the_old_timeline_is_tailed_while_it_is_not_quiet() {
        let dirs = vec![
            dir("0000000100000000", 256, 1.0),
            dir("0000000100000001", 10, 40.0),
            dir("0000000200000001", 5, 50.0),
        ];
        // Right after the promote both newest directories are active; the
        // tail from the old one costs one page.
        let prev = cache(dirs.clone(), 50.0);
        assert_eq!(prev.active.len(), 2);
        let plan = plan_tail(&prev, &WalRules::default(), 60.0, 100.0).unwrap();
        assert_eq!(plan.from, "0000000100000001");
        // Quiet for a reconcile interval: only the new timeline is tailed.
        let later = cache(dirs, 200.0);
        assert_eq!(later.active, ["0000000200000001".to_string()].into());
        // A long new timeline after a recent failover: the tail would be more
        // pages than the classic walk's listings, so no tail.
        let mut long = vec![dir("0000000100000001", 10, 40.0)];
        long.extend((0..12).map(|i| dir(&format!("00000002{i:08X}"), 256, 50.0)));
        let busy = cache(long, 50.0);
        assert_eq!(busy.active.len(), 2);
        assert!(plan_tail(&busy, &WalRules::default(), 60.0, 100.0).is_none());
    }
}
