//! Unit tests of the rendering (the cache is tested in `crate::http::render_cache`).

use std::time::Duration;

use super::*;
use crate::catalog::analysis::{AnalysisOptions, summarize_target};
use crate::catalog::{ServerCatalog, TargetCatalog};
use crate::config::Config;
use crate::source::postgres::PgErrorReason;
use crate::source::s3::{OPERATIONS, S3Error, S3ErrorReason};

fn config(yaml: &str) -> Config {
    use figment::providers::{Format, Yaml};
    Config::from_figment(figment::Figment::new().merge(Yaml::string(yaml))).unwrap()
}

const TWO_TARGETS: &str = r#"
interval: 5m
targets:
  - name: t1
    labels: {namespace: ns}
    destination_path: s3://b/p
    servers: [pg-main]
    postgres: {url: "postgresql://u@h/db", server: pg-main}
  - name: t2
    destination_path: s3://b/q
"#;

/// Two targets (`t1` with PostgreSQL, `t2` without); `t1` published one walk
/// of `server` and an orphan `pg-old`, and a failed PostgreSQL attempt.
fn store_with(server: &str) -> Store {
    let store = Store::new(&config(TWO_TARGETS));
    let mut s = ServerCatalog {
        name: server.into(),
        ..Default::default()
    };
    s.wal.add(
        "0000000100000000/000000010000000000000001.gz",
        10,
        Some(100.0),
        &Default::default(),
    );
    let orphan = ServerCatalog {
        name: "pg-old".into(),
        ..Default::default()
    };
    let summary = summarize_target(
        &TargetCatalog {
            servers: vec![s, orphan],
            loose: Default::default(),
        },
        &AnalysisOptions {
            servers: Some(&["pg-main".to_string()]),
            orphan_after: 7.0 * 86_400.0,
            stuck_after: 86_400.0,
            retention: true,
            now: 1000.0,
        },
    );
    store.targets[0].publish(|t| {
        t.s3.record(Ok(summary), Duration::from_millis(1500));
        if let Some(pg) = &mut t.postgres {
            pg.record(
                Err(crate::collector::Failure::Postgres(
                    crate::source::postgres::PgError::new(crate::source::postgres::PgErrorReason::Connect, "refused"),
                )),
                Duration::from_millis(3),
            );
        }
    });
    store
}

fn store() -> Store {
    store_with("pg-main")
}

fn sample_lines(openmetrics: &str) -> Vec<&str> {
    openmetrics.lines().filter(|l| !l.starts_with('#')).collect()
}

#[test]
fn renders_openmetrics_with_labels_units_and_eof() {
    let om = render_openmetrics(&store());
    let lines = sample_lines(&om);
    for expected in [
        r#"barman_cloud_backups{target="t1",namespace="ns",server="pg-main",status="done"} 0"#,
        r#"barman_cloud_wal_objects{target="t1",namespace="ns",server="pg-main",kind="segment"} 1"#,
        r#"barman_cloud_wal_bytes{target="t1",namespace="ns",server="pg-main",kind="segment"} 10"#,
        r#"barman_cloud_wal_last_archived_timestamp_seconds{target="t1",namespace="ns",server="pg-main"} 100"#,
        r#"barman_cloud_server_orphaned{target="t1",namespace="ns",server="pg-old"} 1"#,
        r#"barman_cloud_orphan_servers{target="t1",namespace="ns"} 1"#,
        r#"barman_cloud_collector_up{target="t1",namespace="ns",collector="s3"} 1"#,
        r#"barman_cloud_collector_up{target="t1",namespace="ns",collector="postgres"} 0"#,
        r#"barman_cloud_collector_duration_seconds{target="t1",namespace="ns",collector="s3"} 1.5"#,
        r#"barman_cloud_collector_errors_total{target="t1",namespace="ns",collector="postgres",reason="connect"} 1"#,
    ] {
        assert!(lines.contains(&expected), "missing {expected}\n{om}");
    }
    assert!(om.contains("# UNIT barman_cloud_wal_bytes bytes"));
    assert!(om.contains("Cached; refreshed every 5m."));
    assert!(om.ends_with("# EOF\n") && om.matches("# EOF").count() == 1);
    // no data for a collector that never succeeded
    assert!(!om.contains("barman_cloud_pg_in_recovery{"));
    assert!(om.contains(&format!(r#"barman_cloud_exporter_build_info{{version="{VERSION}""#)));
}

#[test]
fn text_format_renames_counters_and_info() {
    let text = openmetrics_to_text(&render_openmetrics(&store()));
    assert!(text.contains("# TYPE barman_cloud_collector_errors_total counter"));
    assert!(text.contains("# HELP barman_cloud_collector_errors_total "));
    assert!(text.contains("# TYPE barman_cloud_exporter_build_info gauge"));
    assert!(!text.contains("# EOF") && !text.contains("# UNIT"));
    // render_text is the conversion of the same exposition (the live part aside).
    let store = store();
    let live = Live::now(&store);
    let parts = SnapshotFamilies::render(&store);
    assert_eq!(
        parts.with_live_text(&store, live.clone()),
        openmetrics_to_text(&parts.with_live_openmetrics(&store, live))
    );
}

/// Samples of `family` for target `target`, as `(labels after target, value)`.
fn series<'a>(om: &'a str, family: &str, target: &str) -> Vec<(&'a str, &'a str)> {
    let head = format!("{family}{{target=\"{target}\",");
    om.lines()
        .filter_map(|l| l.strip_prefix(head.as_str()))
        .filter_map(|l| l.rsplit_once("} "))
        .collect()
}

#[test]
fn bounded_counters_are_at_zero_from_the_first_scrape() {
    let store = Store::new(&config(TWO_TARGETS));
    let om = render_openmetrics(&store);
    let errors = series(&om, "barman_cloud_collector_errors_total", "t1");
    let expected: Vec<String> = {
        let mut s3: Vec<_> = S3ErrorReason::ALL.iter().map(|r| r.as_str()).collect();
        let mut pg: Vec<_> = PgErrorReason::ALL.iter().map(|r| r.as_str()).collect();
        s3.sort_unstable();
        pg.sort_unstable();
        let s3 = s3
            .into_iter()
            .map(|r| format!("namespace=\"ns\",collector=\"s3\",reason=\"{r}\""));
        let pg = pg
            .into_iter()
            .map(|r| format!("namespace=\"ns\",collector=\"postgres\",reason=\"{r}\""));
        s3.chain(pg).collect()
    };
    assert_eq!(errors.iter().map(|(l, _)| l.to_string()).collect::<Vec<_>>(), expected);
    assert!(errors.iter().all(|(_, v)| *v == "0"), "{errors:?}");
    // A target without postgres has no postgres series.
    let t2 = series(&om, "barman_cloud_collector_errors_total", "t2");
    assert_eq!(t2.len(), S3ErrorReason::ALL.len());
    assert!(t2.iter().all(|(l, v)| l.starts_with("collector=\"s3\"") && *v == "0"));
    for t in ["t1", "t2"] {
        let requests = series(&om, "barman_cloud_s3_requests_total", t);
        assert_eq!(requests.len(), OPERATIONS.len(), "{t}: {requests:?}");
        for op in OPERATIONS {
            assert!(
                requests
                    .iter()
                    .any(|(l, v)| l.ends_with(&format!("operation=\"{op}\"")) && *v == "0")
            );
        }
    }
    // The first error and request count from there.
    store.targets[1].publish(|t| {
        let denied = S3Error::List {
            bucket: "b".into(),
            prefix: "p/".into(),
            reason: S3ErrorReason::AccessDenied,
            message: "403".into(),
        };
        t.s3.record(Err(crate::collector::Failure::S3(denied)), Duration::ZERO)
    });
    store.targets[1].requests.record("ListObjectsV2", "GET");
    let om = render_openmetrics(&store);
    let t2 = series(&om, "barman_cloud_collector_errors_total", "t2");
    assert!(
        t2.contains(&(r#"collector="s3",reason="access_denied""#, "1")),
        "{t2:?}"
    );
    assert!(t2.contains(&(r#"collector="s3",reason="timeout""#, "0")));
    let requests = series(&om, "barman_cloud_s3_requests_total", "t2");
    assert!(requests.contains(&(r#"operation="ListObjectsV2""#, "1")));
    assert!(requests.contains(&(r#"operation="GetObject""#, "0")));
}

#[test]
fn a_reason_outside_the_bounded_set_is_kept() {
    let store = Store::new(&config(TWO_TARGETS));
    // Not reachable through typed failures today; the encoder still keeps
    // whatever the state counted rather than dropping it.
    store.targets[1].publish(|t| {
        t.s3.errors.insert("something_new", 1);
    });
    store.targets[1].requests.record("HeadObject", "HEAD");
    let snap = store.targets[1].snapshot();
    let errors = encoder::collector_errors(&snap);
    assert_eq!(errors.len(), S3ErrorReason::ALL.len() + 1);
    assert!(errors.contains(&("s3", "something_new", 1)));
    let counts = store.targets[1].requests.snapshot();
    let requests = encoder::s3_requests(crate::config::Provider::S3, &counts)
        .into_iter()
        .collect::<Vec<_>>();
    assert_eq!(requests, [("GetObject", 0), ("HeadObject", 1), ("ListObjectsV2", 0)]);
}

#[test]
fn label_values_are_escaped() {
    let name = "we\"ird\\ pg\nmain %+ é";
    let om = render_openmetrics(&store_with(name));
    let escaped = r#"server="we\"ird\\ pg\nmain %+ é""#;
    assert!(
        om.lines()
            .any(|l| l.starts_with("barman_cloud_base_objects{") && l.contains(escaped)),
        "{om}"
    );
    // Every sample stays on one line.
    assert!(!om.lines().any(|l| l.starts_with("main ")));
}

#[test]
fn live_figures_are_the_ones_given() {
    let store = store();
    let live = Live {
        tasks: Some(7),
        process: process::ProcessFigures {
            cpu_seconds: Some(1.25),
            start_time_seconds: Some(1_700_000_000.5),
            resident_memory_bytes: Some(1 << 20),
            virtual_memory_bytes: Some(1 << 30),
            open_fds: Some(9),
            max_fds: None,
        },
        version: "1.2.3".into(),
        revision: "abc".into(),
    };
    let om = render_openmetrics_with(&store, live);
    let lines = sample_lines(&om);
    for expected in [
        "barman_cloud_exporter_tasks 7",
        "process_cpu_seconds_total 1.25",
        "process_start_time_seconds 1700000000.5",
        "process_resident_memory_bytes 1048576",
        "process_virtual_memory_bytes 1073741824",
        "process_open_fds 9",
        r#"barman_cloud_exporter_build_info{version="1.2.3",revision="abc"} 1"#,
    ] {
        assert!(lines.contains(&expected), "missing {expected}\n{om}");
    }
    assert!(om.contains("# TYPE process_cpu_seconds counter"));
    assert!(!om.contains("process_max_fds"), "no limit, no series");
}

#[cfg(target_os = "linux")]
#[test]
fn the_process_families_are_read_on_linux() {
    let om = render_openmetrics(&store());
    for family in [
        "process_cpu_seconds_total",
        "process_start_time_seconds",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
    ] {
        assert!(
            om.lines().any(|l| l.starts_with(&format!("{family} "))),
            "{family}\n{om}"
        );
    }
}
