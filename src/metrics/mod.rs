//! The metrics: the [`catalogue`] of families, the [`encoder`] that reads a
//! [`Store`]'s snapshots into them, the OpenMetrics and text 0.0.4 encoders
//! and the [`process`] figures.
//!
//! A rendering builds a throw-away registry around a collector that reads the
//! snapshots, so only what the snapshots hold is rendered (no stale series) and
//! nothing here does I/O but reading `/proc/self`. An exposition has two parts:
//! the families computed from the snapshots ([`SnapshotFamilies`], the same
//! until the next publish, so the HTTP side caches them by
//! [`Store::generation`]) and the live families read at every scrape
//! ([`Live`]: request counters, tasks, process figures, build info). Label
//! order on every series: `target`, the target's static labels, then the
//! family's own labels ([`catalogue::Family::labels`]).

pub mod catalogue;
pub mod encoder;
mod openmetrics;
pub mod process;
mod text;

use std::sync::OnceLock;

pub use encoder::Live;
pub use text::openmetrics_to_text;

use crate::snapshot::Store;
use encoder::View;

/// Content type of the OpenMetrics exposition.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the classic Prometheus text exposition.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Exporter version (`version` label of `barman_cloud_exporter_build_info`).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
/// Git revision the binary was built from (`revision` label).
pub const REVISION: &str = env!("BCE_REVISION");

/// The snapshot part of an exposition: every family computed from the
/// snapshots of one [`Store::generation`], in OpenMetrics (without `# EOF`)
/// and, converted on first use, in text format 0.0.4.
#[derive(Debug)]
pub struct SnapshotFamilies {
    generation: u64,
    openmetrics: String,
    text: OnceLock<String>,
}

impl SnapshotFamilies {
    /// Renders the store's current snapshots. The generation is read before
    /// the snapshots, so the rendering holds at least that generation's data.
    pub fn render(store: &Store) -> Self {
        Self::render_sized(store, 16 * 1024)
    }

    /// [`SnapshotFamilies::render`] into a buffer of `capacity` bytes to
    /// start with (the last rendering's size and a margin: a rendering of
    /// tens of thousands of series then never holds a buffer twice its size).
    pub fn render_sized(store: &Store, capacity: usize) -> Self {
        let generation = store.generation();
        Self {
            generation,
            openmetrics: openmetrics::encode_part(View::snapshots(store), capacity),
            text: OnceLock::new(),
        }
    }

    /// The [`Store::generation`] rendered.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The families in OpenMetrics, without `# EOF`.
    pub fn openmetrics(&self) -> &str {
        &self.openmetrics
    }

    /// Whether the text format was converted already.
    pub fn text_ready(&self) -> bool {
        self.text.get().is_some()
    }

    /// The families in text format 0.0.4 (converted once, then reused).
    pub fn text(&self) -> &str {
        self.text.get_or_init(|| openmetrics_to_text(&self.openmetrics))
    }

    /// The live families alone in OpenMetrics, ending with `# EOF`: what
    /// follows the snapshot part of an exposition.
    pub fn live_openmetrics(store: &Store, live: Live) -> String {
        openmetrics::encode(View::live(store, live))
    }

    /// The whole OpenMetrics exposition: these families, then `live`'s
    /// (ending with `# EOF`).
    pub fn with_live_openmetrics(&self, store: &Store, live: Live) -> String {
        let live = Self::live_openmetrics(store, live);
        let mut out = String::with_capacity(self.openmetrics.len() + live.len());
        out.push_str(&self.openmetrics);
        out.push_str(&live);
        out
    }

    /// The whole exposition in text format 0.0.4: these families, then `live`'s.
    pub fn with_live_text(&self, store: &Store, live: Live) -> String {
        let live = openmetrics_to_text(&Self::live_openmetrics(store, live));
        let text = self.text();
        let mut out = String::with_capacity(text.len() + live.len());
        out.push_str(text);
        out.push_str(&live);
        out
    }
}

/// Renders the store as OpenMetrics text (ends with `# EOF`), everything
/// rendered afresh; the HTTP side serves the same from its cache
/// ([`crate::http::render_cache`]).
pub fn render_openmetrics(store: &Store) -> String {
    render_openmetrics_with(store, Live::now(store))
}

/// As [`render_openmetrics`] with given live figures (fixed ones make the
/// exposition reproducible: the golden test).
pub fn render_openmetrics_with(store: &Store, live: Live) -> String {
    SnapshotFamilies::render(store).with_live_openmetrics(store, live)
}

/// Renders the store in the classic Prometheus text format 0.0.4
/// ([`openmetrics_to_text`] of [`render_openmetrics`]).
pub fn render_text(store: &Store) -> String {
    SnapshotFamilies::render(store).with_live_text(store, Live::now(store))
}

#[cfg(test)]
mod tests;
