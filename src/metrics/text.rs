//! The classic Prometheus text format 0.0.4, converted from OpenMetrics.

/// Converts OpenMetrics text (as [`super::render_openmetrics`] writes it) to
/// the classic Prometheus text format 0.0.4: drops `# UNIT` and `# EOF`,
/// names counter families with their `_total` sample name and turns `info`
/// into a gauge named `<name>_info`. Samples and label escaping are the same
/// in both formats and are copied as they are.
pub fn openmetrics_to_text(om: &str) -> String {
    let mut renamed = std::collections::HashMap::new();
    for line in om.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ")
            && let Some((name, kind)) = rest.split_once(' ')
        {
            match kind {
                "counter" => renamed.insert(name, (format!("{name}_total"), "counter")),
                "info" => renamed.insert(name, (format!("{name}_info"), "gauge")),
                _ => None,
            };
        }
    }
    let mut out = String::with_capacity(om.len());
    for line in om.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let rewritten = ["# HELP ", "# TYPE "].iter().find_map(|p| {
            let rest = line.strip_prefix(p)?;
            let (name, tail) = rest.split_once(' ')?;
            let (new_name, new_kind) = renamed.get(name)?;
            Some(if *p == "# TYPE " {
                format!("{p}{new_name} {new_kind}")
            } else {
                format!("{p}{new_name} {tail}")
            })
        });
        out.push_str(rewritten.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_info_units_and_eof() {
        let om = "# HELP a_seconds A.\n# TYPE a_seconds gauge\n# UNIT a_seconds seconds\na_seconds{x=\"1\"} 2\n\
# HELP c Errors.\n# TYPE c counter\nc_total{r=\"a\\\"b\"} 3\n\
# HELP b Build.\n# TYPE b info\nb_info{version=\"1\"} 1\n# EOF\n";
        assert_eq!(
            openmetrics_to_text(om),
            "# HELP a_seconds A.\n# TYPE a_seconds gauge\na_seconds{x=\"1\"} 2\n\
# HELP c_total Errors.\n# TYPE c_total counter\nc_total{r=\"a\\\"b\"} 3\n\
# HELP b_info Build.\n# TYPE b_info gauge\nb_info{version=\"1\"} 1\n"
        );
    }
}
