//! Steps 3–4 of the walk in the steady state: one range listing of `wals/`
//! from the oldest active directory to the end ([`plan_tail`]), instead of
//! the delimiter listing and a listing per active directory. Root objects it
//! does not list again come from the cache.

use super::cache::{MAX_ROOT_OBJECTS, RootObject};
use super::dirs::{DirAccumulator, Fold};
use super::{ServerWalk, ServerWalker, WalRoot};
use crate::catalog::listing::{TailPlan, combine, tail_listing};
use crate::source::store::{Listing, ObjectStore};

#[cfg(doc)]
use crate::catalog::listing::plan_tail;

impl<S: ObjectStore> ServerWalker<'_, S> {
    /// Lists `wals/` from `plan.from` to the end, accounts every WAL
    /// directory it returns and the root objects (those before the listed
    /// range from `cached_root`, the rest as listed), combines them with the
    /// previous walk's aggregates of the directories before `plan.from`, and
    /// returns the root as a delimiter listing would have.
    pub(super) async fn walk_tail(
        &self,
        cached_root: &[RootObject],
        plan: TailPlan,
        w: &mut ServerWalk,
    ) -> Result<WalRoot, S::Error> {
        let wals = format!("{}wals/", self.root);
        // Past every key of the directory before (see `list_wal_dirs`).
        let start_after = plan.after.as_ref().map(|a| format!("{wals}{a}/\u{10FFFF}"));
        let before = |rest: &str| {
            start_after
                .as_deref()
                .is_some_and(|a| format!("{wals}{rest}").as_str() <= a)
        };
        let mut root: Vec<RootObject> = cached_root.iter().filter(|o| before(&o.rest)).cloned().collect();
        let rules = &w.catalog.rules;
        let no_fold = Fold::default();
        let mut listed = DirAccumulator::new(&no_fold);
        let listing = Listing {
            prefix: &wals,
            delimiter: None,
            start_after: start_after.as_deref(),
        };
        {
            // Never closed, so acquiring cannot fail.
            let _permit = self.permits.acquire().await.ok();
            self.store
                .list(listing, |page| {
                    for o in &page.objects {
                        let Some(rest) = o.key.strip_prefix(&wals) else {
                            continue;
                        };
                        let Some((dir, _)) = rest.split_once('/') else {
                            root.push(RootObject::of(rest, o));
                            continue;
                        };
                        listed.add(dir, rest, o, rules);
                    }
                    true
                })
                .await?;
        }
        let mut out = WalRoot {
            seen: true,
            ..Default::default()
        };
        for o in &root {
            o.account(&mut w.catalog.wal, rules);
            out.ids.insert(o.rest.clone(), o.id.clone());
        }
        out.objects = (root.len() <= MAX_ROOT_OBJECTS).then_some(root);
        let Some(prev) = self.prev.map(|p| &p.wal) else {
            // Unreachable: a tail is only planned from a previous walk.
            return Ok(out);
        };
        let listed = listed.finish();
        let (now, interval) = (self.opts.now, self.opts.full_walk_interval);
        let (tail, all) = tail_listing(prev, &plan, &listed.names, now, interval);
        // The listed directories are the last ones of `all`.
        let before = all.len() - listed.names.len();
        let listed = std::iter::repeat_n(None, before)
            .chain(listed.totals.into_iter().map(Some))
            .collect();
        let server = &mut w.catalog;
        let c = combine(Some(prev), tail, all, listed, &server.rules, now, &mut server.wal);
        w.stats.listed_dirs += c.listed;
        w.stats.reused_dirs += c.reused;
        w.stats.incremental_servers += 1;
        w.cache.wal = c.cache;
        Ok(out)
    }
}
