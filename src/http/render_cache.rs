//! The `/metrics` render cache: the snapshot part of the exposition
//! ([`SnapshotFamilies`]) rendered once per [`Store::generation`] and reused by
//! every scrape until the next publish (a scrape then copies bytes; encoding
//! thousands of series is paid once per collection, not per scrape), and
//! likewise its gzip compression ([`GzipPrefix`]): a gzip scrape compresses
//! only the live families. Prerenders keep only the gzip of the OpenMetrics
//! part until a scrape asks for something else (Prometheus asks for gzip
//! OpenMetrics; the plain part is ten times its size). Presentation state
//! lives here, on the HTTP side; the store only counts its publishes.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use super::gzip::GzipPrefix;
use crate::metrics::{Live, SnapshotFamilies, openmetrics_to_text};
use crate::snapshot::Store;

/// One generation's snapshot part, and its gzip compression per format
/// (each made on first use, then reused until the next publish).
///
/// A prerendered one may keep only its OpenMetrics gzip (what Prometheus
/// asks for): the plain families of 50,000 series are about 4 MB, their
/// gzip a tenth of it, and two renderings are alive while the next one is
/// made ([`RenderCache::prerender`]).
#[derive(Debug)]
pub struct Rendered {
    generation: u64,
    /// Length of the plain OpenMetrics part, bytes.
    plain_len: usize,
    body: Body,
}

/// What a [`Rendered`] holds.
#[derive(Debug)]
enum Body {
    /// The plain families, and their compression per format (made on
    /// first use).
    Plain {
        families: SnapshotFamilies,
        openmetrics_gzip: OnceLock<GzipPrefix>,
        text_gzip: OnceLock<GzipPrefix>,
    },
    /// Only the OpenMetrics part, compressed.
    GzipOnly(GzipPrefix),
}

impl Rendered {
    fn new(families: SnapshotFamilies) -> Self {
        Self {
            generation: families.generation(),
            plain_len: families.openmetrics().len(),
            body: Body::Plain {
                families,
                openmetrics_gzip: OnceLock::new(),
                text_gzip: OnceLock::new(),
            },
        }
    }

    /// Keeps only the OpenMetrics part compressed (compressing it unless
    /// done): the plain families are dropped.
    fn keep_only_gzip(self) -> Self {
        let body = match self.body {
            Body::Plain {
                families,
                openmetrics_gzip,
                ..
            } => Body::GzipOnly(
                openmetrics_gzip
                    .into_inner()
                    .unwrap_or_else(|| GzipPrefix::new(families.openmetrics().as_bytes())),
            ),
            gzip_only => gzip_only,
        };
        Self { body, ..self }
    }

    /// The [`Store::generation`] rendered.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The plain families, unless only their gzip was kept.
    pub fn families(&self) -> Option<&SnapshotFamilies> {
        match &self.body {
            Body::Plain { families, .. } => Some(families),
            Body::GzipOnly(_) => None,
        }
    }

    /// The OpenMetrics snapshot part, compressed (once).
    pub fn openmetrics_gzip(&self) -> &GzipPrefix {
        match &self.body {
            Body::Plain {
                families,
                openmetrics_gzip,
                ..
            } => openmetrics_gzip.get_or_init(|| GzipPrefix::new(families.openmetrics().as_bytes())),
            Body::GzipOnly(gzip) => gzip,
        }
    }

    /// The text 0.0.4 snapshot part, compressed (once); `None` when only
    /// the OpenMetrics gzip was kept.
    pub fn text_gzip(&self) -> Option<&GzipPrefix> {
        match &self.body {
            Body::Plain {
                families, text_gzip, ..
            } => Some(text_gzip.get_or_init(|| GzipPrefix::new(families.text().as_bytes()))),
            Body::GzipOnly(_) => None,
        }
    }

    /// Whether the OpenMetrics gzip is made already (for tests).
    #[cfg(test)]
    fn gzip_ready(&self) -> bool {
        match &self.body {
            Body::Plain { openmetrics_gzip, .. } => openmetrics_gzip.get().is_some(),
            Body::GzipOnly(_) => true,
        }
    }
}

/// What a scrape needs of the cached rendering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// The OpenMetrics gzip (every rendering has it or can make it).
    OpenMetricsGzip,
    /// The plain families (uncompressed or text format scrapes).
    Plain,
}

/// The last rendered snapshot part, shared by the handlers and the
/// prerenderer ([`crate::run`]).
#[derive(Debug, Default)]
pub struct RenderCache {
    current: Mutex<Option<Arc<Rendered>>>,
    /// A prerender is running: scrapes serve the cached rendering meanwhile.
    prerendering: AtomicBool,
    /// A scrape asked for text format 0.0.4: prerenders convert to it too
    /// (else it is converted on first use: Prometheus asks for OpenMetrics,
    /// and a text copy of tens of thousands of series is megabytes).
    text_wanted: AtomicBool,
    /// A scrape asked for anything but OpenMetrics with gzip (an
    /// uncompressed or a text format exposition): renderings keep the plain
    /// families (else only their gzip; the first such scrape renders anew).
    plain_wanted: AtomicBool,
    /// Held while rendering: one rendering at a time. A scrape or `/readyz`
    /// that needs a newer one than the cache holds while another is being
    /// made waits for it and, if it will do, uses it, instead of making a
    /// second copy of the exposition alongside (megabytes at 50,000 series:
    /// the fleet's peak memory was two renderings at once at the end of its
    /// cold walk, the prerender's and `/readyz`'s).
    turn: Mutex<()>,
}

impl RenderCache {
    /// The snapshot part of the store's current generation: from the cache,
    /// or rendered now (after the rendering under way, if any: it may be
    /// the one needed). A rendering replaces the cached one only if it is
    /// not older.
    pub fn rendered(&self, store: &Store) -> Arc<Rendered> {
        self.rendered_for(store, Need::OpenMetricsGzip)
    }

    /// [`RenderCache::rendered`] with what the scrape needs of it.
    fn rendered_for(&self, store: &Store, need: Need) -> Arc<Rendered> {
        self.rendered_within(store, self.prerendering.load(Ordering::Acquire), need)
    }

    /// As [`RenderCache::rendered`], but never an older generation than the
    /// store's current one (`/readyz` uses it, so that once it said ready
    /// every scrape sees at least what was published then).
    pub fn rendered_fresh(&self, store: &Store) -> Arc<Rendered> {
        self.rendered_within(store, false, Need::OpenMetricsGzip)
    }

    /// The cached rendering when it is current, or when `stale_ok` (a
    /// prerender of the newer generation is under way: serving the previous
    /// one, at most one render old, keeps a scrape from rendering and
    /// compressing the whole exposition itself while collections publish)
    /// and it has what the scrape `need`s; else rendered now.
    fn rendered_within(&self, store: &Store, stale_ok: bool, need: Need) -> Arc<Rendered> {
        let generation = store.generation();
        let usable = |r: &Arc<Rendered>, stale_ok: bool| {
            (r.generation() >= generation || stale_ok) && (need == Need::OpenMetricsGzip || r.families().is_some())
        };
        if let Some(r) = self.lock().clone()
            && usable(&r, stale_ok)
        {
            return r;
        }
        let _turn = self.turn.lock().unwrap_or_else(PoisonError::into_inner);
        // The rendering this one waited for, if any, may be what it needs.
        if let Some(r) = self.lock().clone()
            && usable(&r, false)
        {
            return r;
        }
        let fresh = Rendered::new(SnapshotFamilies::render(store));
        let fresh = if need == Need::OpenMetricsGzip && !self.plain_wanted.load(Ordering::Relaxed) {
            fresh.keep_only_gzip()
        } else {
            fresh
        };
        let fresh = Arc::new(fresh);
        self.keep(&fresh);
        fresh
    }

    /// Caches `fresh` unless the cache holds a newer generation already (a
    /// slow rendering that finishes after a newer one).
    fn keep(&self, fresh: &Arc<Rendered>) {
        let mut slot = self.lock();
        if slot.as_ref().is_none_or(|r| r.generation() <= fresh.generation()) {
            *slot = Some(fresh.clone());
        }
    }

    /// Renders the current generation and compresses it in OpenMetrics
    /// (what Prometheus asks for) unless already done: called after every
    /// publish off the HTTP path, so scrapes find it ready. The plain
    /// families are kept, and converted to text format 0.0.4, only once a
    /// scrape asked for them (`plain_wanted`, `text_wanted`).
    ///
    /// The new rendering is made ready (the OpenMetrics gzip, and the plain
    /// and text parts when wanted) before it replaces the cached one; until then scrapes serve the
    /// cached one (from [`RenderCache::defer`] on, when the prerenderer
    /// called it first).
    pub fn prerender(&self, store: &Store) {
        /// Clears the flag however the rendering ends.
        struct Prerendering<'a>(&'a AtomicBool);
        impl Drop for Prerendering<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        self.prerendering.store(true, Ordering::Release);
        let _flag = Prerendering(&self.prerendering);
        let _turn = self.turn.lock().unwrap_or_else(PoisonError::into_inner);
        let cached = self.lock().clone();
        if cached.as_ref().is_some_and(|r| r.generation() == store.generation()) {
            return;
        }
        let size = cached.map_or(0, |r| r.plain_len);
        let fresh = Rendered::new(SnapshotFamilies::render_sized(store, (size + size / 8).max(16 * 1024)));
        let _ = fresh.openmetrics_gzip();
        let fresh = if self.plain_wanted.load(Ordering::Relaxed) {
            if self.text_wanted.load(Ordering::Relaxed)
                && let Some(families) = fresh.families()
            {
                let _ = families.text();
            }
            fresh
        } else {
            fresh.keep_only_gzip()
        };
        self.keep(&Arc::new(fresh));
    }

    /// Says a prerender of a newer generation is coming (the prerenderer
    /// spaces its renderings out while publishes come fast): until it ends,
    /// scrapes serve the cached rendering instead of rendering themselves.
    pub fn defer(&self) {
        self.prerendering.store(true, Ordering::Release);
    }

    /// The whole OpenMetrics exposition (ends with `# EOF`).
    pub fn openmetrics(&self, store: &Store) -> String {
        self.whole(store, false)
    }

    /// The whole exposition in text format 0.0.4.
    pub fn text(&self, store: &Store) -> String {
        self.whole(store, true)
    }

    /// The whole exposition uncompressed, in text format 0.0.4 if `text`
    /// (else OpenMetrics), from the plain families; from here on renderings
    /// keep them (and convert them to text, if `text`).
    fn whole(&self, store: &Store, text: bool) -> String {
        if text {
            self.text_wanted.store(true, Ordering::Relaxed);
        }
        self.plain_wanted.store(true, Ordering::Relaxed);
        let r = self.rendered_for(store, Need::Plain);
        let live = Live::now(store);
        let whole = |families: &SnapshotFamilies| {
            if text {
                families.with_live_text(store, live)
            } else {
                families.with_live_openmetrics(store, live)
            }
        };
        // A rendering for `Need::Plain` has its families; were one ever
        // without, the families rendered now serve.
        match r.families() {
            Some(families) => whole(families),
            None => whole(&SnapshotFamilies::render(store)),
        }
    }

    /// [`RenderCache::openmetrics`] as one gzip member; only the live
    /// families are compressed at this call.
    pub fn openmetrics_gzip(&self, store: &Store) -> Vec<u8> {
        let r = self.rendered(store);
        let live = SnapshotFamilies::live_openmetrics(store, Live::now(store));
        r.openmetrics_gzip().with_suffix(live.as_bytes())
    }

    /// [`RenderCache::text`] as one gzip member; only the live families are
    /// compressed at this call.
    pub fn text_gzip(&self, store: &Store) -> Vec<u8> {
        self.text_wanted.store(true, Ordering::Relaxed);
        self.plain_wanted.store(true, Ordering::Relaxed);
        let r = self.rendered_for(store, Need::Plain);
        let live = openmetrics_to_text(&SnapshotFamilies::live_openmetrics(store, Live::now(store)));
        match r.text_gzip() {
            Some(gz) => gz.with_suffix(live.as_bytes()),
            None => GzipPrefix::new(SnapshotFamilies::render(store).text().as_bytes()).with_suffix(live.as_bytes()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Arc<Rendered>>> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached rendering, if any (for tests and diagnostics).
    pub fn cached(&self) -> Option<Arc<Rendered>> {
        self.lock().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use figment::providers::{Format, Yaml};
    use std::time::Duration;

    fn store() -> Store {
        let config = Config::from_figment(figment::Figment::new().merge(Yaml::string(
            "interval: 5m\ntargets: [{name: t1, labels: {namespace: ns}, destination_path: 's3://b/p', postgres: {url: 'postgresql://u@h/db', server: pg-main}}]",
        )))
        .unwrap();
        let store = Store::new(&config);
        store.targets[0].publish(|t| {
            if let Some(pg) = &mut t.postgres {
                pg.record(
                    Err(crate::collector::Failure::Postgres(
                        crate::source::postgres::PgError::new(
                            crate::source::postgres::PgErrorReason::Connect,
                            "refused",
                        ),
                    )),
                    Duration::from_millis(3),
                );
            }
        });
        store
    }

    #[test]
    fn the_snapshot_part_is_cached_until_a_publish_and_live_families_are_fresh() {
        let store = store();
        let cache = RenderCache::default();
        let up = r#"barman_cloud_collector_up{target="t1",namespace="ns",collector="postgres"}"#;
        let first = cache.openmetrics(&store);
        assert!(first.contains(&format!("{up} 0")));
        let cached = cache.cached().unwrap();
        assert_eq!(cached.generation(), store.generation());
        // Live counters move without a publish; the cached part is reused.
        store.targets[0].requests.record("ListObjectsV2", "GET");
        let second = cache.openmetrics(&store);
        assert!(
            second
                .contains(r#"barman_cloud_s3_requests_total{target="t1",namespace="ns",operation="ListObjectsV2"} 1"#)
        );
        assert!(Arc::ptr_eq(&cached, &cache.cached().unwrap()));
        assert!(second.ends_with("# EOF\n") && second.matches("# EOF").count() == 1);
        // A publish invalidates it.
        store.targets[0].publish(|t| {
            if let Some(pg) = &mut t.postgres {
                pg.up = true;
            }
        });
        let third = cache.openmetrics(&store);
        assert!(third.contains(&format!("{up} 1")), "{third}");
        assert!(!Arc::ptr_eq(&cached, &cache.cached().unwrap()));
        // The text format is the conversion of the same exposition.
        let stable = |t: String| {
            t.lines()
                .filter(|l| !l.starts_with("process_"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(
            stable(cache.text(&store)),
            stable(crate::metrics::openmetrics_to_text(&cache.openmetrics(&store)))
        );
    }

    #[test]
    fn a_text_scrape_after_gzip_only_prerenders_gets_the_text_format() {
        let store = store();
        let cache = RenderCache::default();
        cache.prerender(&store);
        assert!(cache.cached().unwrap().families().is_none());
        let gz = cache.text_gzip(&store);
        let mut unzipped = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut unzipped).unwrap();
        let stable = |t: &str| {
            t.lines()
                .filter(|l| !l.starts_with("process_"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(stable(&unzipped), stable(&crate::metrics::render_text(&store)));
        assert!(!unzipped.contains("# EOF"), "text format 0.0.4: {unzipped}");
        let r = cache.cached().unwrap();
        assert!(r.families().is_some_and(SnapshotFamilies::text_ready));
        // From now on prerenders keep the plain families and the text.
        store.targets[0].publish(|t| t.s3.attempts += 1);
        cache.prerender(&store);
        assert!(
            cache
                .cached()
                .unwrap()
                .families()
                .is_some_and(SnapshotFamilies::text_ready)
        );
    }

    #[test]
    fn a_rendering_under_way_is_waited_for_and_used_not_made_twice() {
        let store = store();
        let cache = RenderCache::default();
        let turn = cache.turn.lock().unwrap();
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| cache.rendered_fresh(&store));
            // Time for the waiter to find the cache empty (it would render
            // its own copy at once if it did not wait for the turn).
            std::thread::sleep(Duration::from_millis(100));
            let made = Arc::new(Rendered::new(SnapshotFamilies::render(&store)));
            cache.keep(&made);
            drop(turn);
            assert!(Arc::ptr_eq(&waiter.join().unwrap(), &made));
        });
        // An older one under way does not do: the waiter renders after it.
        let turn = cache.turn.lock().unwrap();
        store.targets[0].publish(|t| t.s3.attempts += 1);
        std::thread::scope(|scope| {
            let waiter = scope.spawn(|| cache.rendered_fresh(&store));
            std::thread::sleep(Duration::from_millis(100));
            drop(turn);
            let got = waiter.join().unwrap();
            assert_eq!(got.generation(), store.generation());
            assert!(
                got.families().is_none(),
                "a gzip scrape's rendering keeps only the gzip"
            );
        });
    }

    #[test]
    fn an_older_rendering_never_replaces_a_newer_one() {
        let store = store();
        let cache = RenderCache::default();
        let old = Arc::new(Rendered::new(SnapshotFamilies::render(&store)));
        store.targets[0].publish(|t| t.s3.attempts += 1);
        let new = cache.rendered(&store);
        assert_eq!(new.generation(), old.generation() + 1);
        // A slow scrape finishing an old rendering after the new one was cached.
        cache.keep(&old);
        assert!(Arc::ptr_eq(&cache.cached().unwrap(), &new));
    }

    #[tokio::test]
    async fn a_publish_wakes_the_prerenderer_which_readies_openmetrics_and_text_once_asked() {
        let store = store();
        let cache = RenderCache::default();
        store.targets[0].publish(|t| t.s3.attempts += 1);
        store.targets[0].publish(|t| t.s3.attempts += 1);
        // Three publishes (one in `store()`), one wake-up (coalesced), then nothing pending.
        assert_eq!(store.generation(), 3);
        tokio::time::timeout(Duration::from_secs(1), store.published())
            .await
            .expect("a publish wakes the renderer");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), store.published())
                .await
                .is_err()
        );
        cache.prerender(&store);
        let r = cache.cached().expect("rendered");
        assert_eq!(r.generation(), 3);
        assert!(r.gzip_ready(), "the gzip of OpenMetrics is ready");
        assert!(r.families().is_none(), "only the gzip is kept until a plain scrape");
        // A gzip scrape reuses it, and its body is the plain exposition.
        let gz = cache.openmetrics_gzip(&store);
        assert!(Arc::ptr_eq(&r, &cache.cached().unwrap()));
        let stable = |t: &str| {
            t.lines()
                .filter(|l| !l.starts_with("process_"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let mut unzipped = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut unzipped).unwrap();
        assert_eq!(stable(&unzipped), stable(&crate::metrics::render_openmetrics(&store)));
        // The first plain scrape renders anew (same generation), with its families.
        let plain = cache.openmetrics(&store);
        assert_eq!(stable(&plain), stable(&unzipped));
        let r = cache.cached().expect("rendered");
        assert_eq!(r.generation(), 3);
        let families = r.families().expect("plain families after a plain scrape");
        assert!(!families.text_ready(), "no text format until one is asked for");
        // A text scrape now reuses it.
        let _ = cache.text(&store);
        assert!(Arc::ptr_eq(&r, &cache.cached().unwrap()));
        // Once a scrape asked for the text format, prerenders keep the
        // families and ready the text too.
        store.targets[0].publish(|t| t.s3.attempts += 1);
        cache.prerender(&store);
        let r = cache.cached().expect("rendered");
        assert_eq!(r.generation(), 4);
        assert!(
            r.families().is_some_and(SnapshotFamilies::text_ready),
            "the text format is ready too"
        );
        assert!(r.gzip_ready());
        // While a prerender is under way, scrapes serve the cached rendering
        // rather than render themselves; /readyz's fresh one does not.
        store.targets[0].publish(|t| t.s3.attempts += 1);
        cache.prerendering.store(true, Ordering::Release);
        assert!(Arc::ptr_eq(&cache.rendered(&store), &r));
        assert_eq!(cache.rendered_fresh(&store).generation(), 5);
        cache.prerendering.store(false, Ordering::Release);
        assert_eq!(cache.rendered(&store).generation(), 5);
    }
}
