//! The OpenMetrics 1.0.0 encoder: a throw-away registry around one
//! [`View`](super::encoder::View), encoded by prometheus-client (≥ 0.25.2,
//! which escapes `\`, `"` and newlines in label values).

use prometheus_client::collector::Collector;
use prometheus_client::registry::Registry;

/// The line that ends an OpenMetrics exposition.
pub const EOF: &str = "# EOF\n";

/// OpenMetrics text of one collector, ending with [`EOF`].
pub(super) fn encode(collector: impl Collector) -> String {
    encode_sized(collector, 16 * 1024)
}

/// [`encode`] into a buffer of `capacity` bytes to start with (the size of
/// the last rendering: no regrowth, no buffer twice the text's size).
fn encode_sized(collector: impl Collector, capacity: usize) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(collector));
    let mut out = String::with_capacity(capacity);
    // Writing to a String cannot fail; an encoder error would be a bug in a label set.
    if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
        out.clear();
        out.push_str(EOF);
    }
    out
}

/// OpenMetrics text of one collector without the closing [`EOF`] (a part of
/// an exposition that another part ends).
pub(super) fn encode_part(collector: impl Collector, capacity: usize) -> String {
    let mut out = encode_sized(collector, capacity);
    if out.ends_with(EOF) {
        out.truncate(out.len() - EOF.len());
    }
    out
}
