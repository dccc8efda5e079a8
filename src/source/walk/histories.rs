//! Step 5 of the walk: the `.history` files, each fetched with a bounded GET
//! and decompressed with a bound ([`crate::catalog::history::read`]), or
//! reused from the cache while its ETag and size are unchanged.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use futures_util::{StreamExt, TryStreamExt, stream};

use super::cache::{Cached, ObjectId};
use super::{FetchedHistory, GET_CONCURRENCY, ServerWalk, ServerWalker};
use crate::catalog::history;
use crate::source::store::ObjectStore;

impl<S: ObjectStore> ServerWalker<'_, S> {
    /// Reads every `.history` file (from the cache when unchanged; `ids`: the
    /// `wals/` root objects as listed) into `w`.
    pub(super) async fn read_histories(
        &self,
        ids: &BTreeMap<String, Option<ObjectId>>,
        w: &mut ServerWalk,
    ) -> Result<(), S::Error> {
        let wals = format!("{}wals/", self.root);
        let keys = &w.catalog.wal.history_keys;
        let histories: Vec<(u32, String)> = keys.iter().map(|(t, k)| (*t, k.clone())).collect();
        let gets_sent = AtomicUsize::new(0);
        let gets_sent = &gets_sent;
        let wals = &wals;
        let fetched: Vec<FetchedHistory> = stream::iter(histories)
            .map(|(tli, rest)| {
                let oid = ids.get(&rest).cloned().flatten();
                let prev_hist = self.prev.and_then(|p| p.histories.get(&rest));
                async move {
                    if let Some(v) = Cached::hit(prev_hist, oid.as_ref()) {
                        return Ok((tli, v.clone(), prev_hist.cloned()));
                    }
                    gets_sent.fetch_add(1, Ordering::Relaxed);
                    let body = self.get_small(&format!("{wals}{rest}")).await?;
                    let fetched = body.is_some();
                    let parsed = body.and_then(|b| history::read(&rest, &b));
                    let c = oid.filter(|_| fetched).map(|id| Cached {
                        id,
                        value: parsed.clone(),
                    });
                    Ok((tli, parsed, c))
                }
            })
            .buffered(GET_CONCURRENCY)
            .try_collect()
            .await?;
        w.stats.reused_objects += (keys.len() - gets_sent.load(Ordering::Relaxed)) as u64;
        for (tli, entries, c) in fetched {
            match entries {
                Some(entries) => {
                    w.catalog.histories.insert(tli, entries);
                }
                None => w.catalog.histories_unreadable += 1,
            }
            if let (Some(c), Some(rest)) = (c, w.catalog.wal.history_keys.get(&tli)) {
                w.cache.histories.insert(rest.clone(), c);
            }
        }
        Ok(())
    }
}
