//! The bundled alerts end to end with the real monitoring stack: Debian's
//! Prometheus scrapes the in-process exporter (running against the real
//! barman-cloud scenario) with `alerts/barman-cloud-exporter.rules.yaml`
//! loaded and sends to a real Alertmanager. The scrape must be healthy and
//! parsed as OpenMetrics; the healthy scenario fires exactly the alerts its
//! layout calls for (none critical); a WAL segment deleted from a copy of
//! `pg-main` makes `BarmanCloudWALGap` reach Alertmanager for that copy only.
//!
//! The copy lives under its own prefix of the scenario's bucket (removed at
//! the end, also on panic); the shared scenario is only read. Prometheus and
//! Alertmanager listen on 127.0.0.1 only, with their storage in a temp dir,
//! and are stopped by PID when the test ends, also on panic.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::monitoring::{AlertKey, Daemon, get_json, settle_on, wait_http_ok};
use common::{Exporter, Scenario, copy_server, documented_metrics, segments, segno};

const RULES: &str = "alerts/barman-cloud-exporter.rules.yaml";
const MIGRATION_RULES: &str = "alerts/migration-recording.rules.yaml";
/// The job name the bundled rules select on (`job="barman-cloud-exporter"`).
const JOB: &str = "barman-cloud-exporter";
/// What every `for:` becomes in the test's copy of the rules.
const TEST_FOR: &str = "5s";
const PROMETHEUS: &str = "/usr/bin/prometheus";
const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The test's own prefix in the scenario's bucket, deleted on drop (also on panic).
struct OwnPrefix {
    sc: Scenario,
    prefix: String,
}

impl OwnPrefix {
    async fn delete_all(sc: &Scenario, prefix: &str) {
        assert!(
            prefix.starts_with("alerting/"),
            "only the test's own prefix is ever deleted"
        );
        let client = sc.s3_client().await;
        for (key, _) in sc.list(prefix).await {
            client
                .delete_object()
                .bucket(&sc.bucket)
                .key(&key)
                .send()
                .await
                .unwrap();
        }
    }
}

impl Drop for OwnPrefix {
    fn drop(&mut self) {
        let (sc, prefix) = (self.sc.clone(), self.prefix.clone());
        // Drop runs inside the test's runtime: clean up from a thread with its own.
        let _ = std::thread::spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(Self::delete_all(&sc, &prefix));
        })
        .join();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The bundled rules with every `for:` shortened to [`TEST_FOR`], so that the
/// test does not wait minutes to hours; expressions, labels and annotations
/// are the shipped ones, unchanged.
fn rules_for_test() -> String {
    let text = std::fs::read_to_string(repo(RULES)).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        match line.trim_start().strip_prefix("for: ") {
            Some(_) => {
                let indent = &line[..line.len() - line.trim_start().len()];
                out.push_str(&format!("{indent}for: {TEST_FOR}\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    assert!(
        out.matches(&format!("for: {TEST_FOR}")).count() >= 15,
        "every rule has a for:"
    );
    out
}

/// Unix seconds of an ISO-8601 time from `scenario.json`.
fn iso(s: &str) -> f64 {
    chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros() as f64 / 1e6
}

/// What the bundled rules must fire for a target whose servers have the
/// scenario's backups (from `scenario.json`, not from the exporter): orphan
/// prefixes → `BarmanCloudOrphanServer`; other servers by the cadence (median
/// gap of `begin_time`s vs. the expected 24h) and the age of the newest DONE
/// backup (26h / 50h).
fn expected_from_layout(
    scenario_json: &serde_json::Value,
    target: &str,
    servers: &[String],
    orphans: &[String],
) -> BTreeSet<AlertKey> {
    let key = |name: &str, sev: &str, server: &str| (name.into(), sev.into(), target.into(), server.into());
    let now = chrono::Utc::now().timestamp_micros() as f64 / 1e6;
    let mut out = BTreeSet::new();
    for server in orphans {
        out.insert(key("BarmanCloudOrphanServer", "info", server));
    }
    for server in servers {
        let backups = scenario_json["backups"][server.as_str()].as_array().unwrap();
        let done: Vec<&serde_json::Value> = backups.iter().filter(|b| b["status"] == "DONE").collect();
        let mut begins: Vec<f64> = done
            .iter()
            .map(|b| iso(b["begin_time_iso"].as_str().unwrap()))
            .collect();
        begins.sort_by(f64::total_cmp);
        let newest: Vec<f64> = begins.iter().rev().take(7).rev().copied().collect();
        let mut gaps: Vec<f64> = newest.windows(2).map(|w| w[1] - w[0]).collect();
        gaps.sort_by(f64::total_cmp);
        if !gaps.is_empty() {
            let median = if gaps.len() % 2 == 1 {
                gaps[gaps.len() / 2]
            } else {
                (gaps[gaps.len() / 2 - 1] + gaps[gaps.len() / 2]) / 2.0
            };
            if median < 0.5 * 86_400.0 {
                out.insert(key("BarmanCloudBackupsTooFrequent", "warning", server));
            } else if median > 1.5 * 86_400.0 {
                out.insert(key("BarmanCloudBackupsTooRare", "warning", server));
            }
        }
        let last_end = done
            .iter()
            .map(|b| iso(b["end_time_iso"].as_str().unwrap()))
            .fold(f64::MIN, f64::max);
        if done.is_empty() {
            out.insert(key("BarmanCloudNoDoneBackup", "critical", server));
        } else {
            if now - last_end > 26.0 * 3600.0 {
                out.insert(key("BarmanCloudBackupTooOld", "warning", server));
            }
            if now - last_end > 50.0 * 3600.0 {
                out.insert(key("BarmanCloudBackupTooOld", "critical", server));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn prometheus_and_alertmanager_fire_the_bundled_alerts_on_a_real_scenario() {
    let sc = Scenario::load();
    let scenario_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(sc.dir.join("scenario.json")).unwrap()).unwrap();
    let tmp = tempfile::tempdir().unwrap();

    // --- a copy of pg-main under the test's own prefix: the staged target ---
    let stamp = chrono::Utc::now().timestamp_micros();
    let own = OwnPrefix {
        sc: sc.clone(),
        prefix: format!("alerting/{}-{stamp}/", std::process::id()),
    };
    copy_server(&sc, "pg-main", &own.prefix, |_| false, |_, t| t).await;
    let staged_dest = format!("s3://{}/{}", sc.bucket, own.prefix.trim_end_matches('/'));

    // --- the exporter: the scenario (with PostgreSQL) and the copy, every 2 s, full walks ---
    let exporter = Exporter::start(|dir| {
        let mut yaml = format!("full_walk_interval: 0s\n{}", sc.config_yaml(dir, "2s", "20s", true));
        let staged = sc.config_yaml(dir, "2s", "20s", false);
        let staged = staged[staged.find("  - name:").unwrap()..]
            .replace("- name: scenario", "- name: staged")
            .replace(&sc.destination_path, &staged_dest);
        yaml.push_str(&staged);
        yaml
    })
    .await;
    exporter.wait_ready(Duration::from_secs(60)).await;
    let exporter_addr = exporter.base.trim_start_matches("http://").to_string();

    // --- Alertmanager: loopback, no clustering, one null receiver ---
    let am_port = free_port();
    let am_dir = tmp.path().join("alertmanager");
    std::fs::create_dir_all(&am_dir).unwrap();
    let am_config = tmp.path().join("alertmanager.yml");
    std::fs::write(
        &am_config,
        "route: {receiver: \"null\", group_wait: 1s, group_interval: 1s, repeat_interval: 1h}\n\
         receivers: [{name: \"null\"}]\n",
    )
    .unwrap();
    let am = Daemon::start(
        "alertmanager",
        ALERTMANAGER,
        &[
            format!("--config.file={}", am_config.display()),
            format!("--storage.path={}", am_dir.display()),
            format!("--web.listen-address=127.0.0.1:{am_port}"),
            "--cluster.listen-address=".into(),
        ],
        tmp.path().join("alertmanager.log"),
    );
    let am_url = format!("http://127.0.0.1:{am_port}");
    wait_http_ok(&format!("{am_url}/-/ready"), Duration::from_secs(30), &am).await;

    // --- Prometheus: scrapes the exporter every second, evaluates the rules every second ---
    let rules = tmp.path().join("rules.yaml");
    std::fs::write(&rules, rules_for_test()).unwrap();
    let prom_port = free_port();
    let prom_config = tmp.path().join("prometheus.yml");
    std::fs::write(
        &prom_config,
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\n\
             rule_files: [\"{}\"]\n\
             alerting:\n  alertmanagers: [{{static_configs: [{{targets: [\"127.0.0.1:{am_port}\"]}}]}}]\n\
             scrape_configs:\n  - job_name: {JOB}\n    scrape_timeout: 1s\n    \
             static_configs: [{{targets: [\"{exporter_addr}\"]}}]\n",
            rules.display()
        ),
    )
    .unwrap();
    let prom = Daemon::start(
        "prometheus",
        PROMETHEUS,
        &[
            format!("--config.file={}", prom_config.display()),
            format!("--storage.tsdb.path={}", tmp.path().join("prometheus").display()),
            format!("--web.listen-address=127.0.0.1:{prom_port}"),
        ],
        tmp.path().join("prometheus.log"),
    );
    let prom_url = format!("http://127.0.0.1:{prom_port}");
    wait_http_ok(&format!("{prom_url}/-/ready"), Duration::from_secs(30), &prom).await;

    // --- the scrape is healthy and parsed as OpenMetrics ---
    let start = Instant::now();
    let target = loop {
        let v = get_json(&format!("{prom_url}/api/v1/targets")).await;
        let t = v["data"]["activeTargets"][0].clone();
        if t["health"] == "up" {
            break t;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "scrape target not up: {t}\n{}",
            prom.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert_eq!(target["labels"]["job"], JOB);
    assert_eq!(target["lastError"], "", "{target}");
    // Only the OpenMetrics parser knows the `info` type (text format 0.0.4 has none).
    let meta = get_json(&format!(
        "{prom_url}/api/v1/targets/metadata?metric=barman_cloud_exporter_build"
    ))
    .await;
    assert_eq!(meta["data"][0]["type"], "info", "not scraped as OpenMetrics: {meta}");
    let rules_loaded = get_json(&format!("{prom_url}/api/v1/rules")).await;
    let loaded: usize = rules_loaded["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["rules"].as_array().unwrap().len())
        .sum();
    let shipped = std::fs::read_to_string(repo(RULES))
        .unwrap()
        .matches("- alert: ")
        .count();
    assert_eq!(loaded, shipped, "Prometheus loaded every bundled rule");

    // --- healthy: exactly what the layout calls for, nothing critical ---
    let mut want = expected_from_layout(&scenario_json, "scenario", &sc.servers, &sc.orphan_servers);
    want.extend(expected_from_layout(
        &scenario_json,
        "staged",
        &["pg-main".to_string()],
        &[],
    ));
    assert!(
        want.iter().all(|(_, sev, _, _)| sev != "critical"),
        "the scenario is too old for this test (rebuild it): {want:#?}"
    );
    let healthy = settle_on(&prom_url, &am_url, &want, Duration::from_secs(120), &[&prom, &am]).await;
    for alert in healthy.values() {
        let name = alert["labels"]["alertname"].as_str().unwrap();
        assert_eq!(alert["labels"]["job"], JOB);
        assert_eq!(
            alert["labels"]["namespace"], "demo",
            "the target's static labels reach Alertmanager"
        );
        assert!(
            alert["annotations"]["runbook_url"]
                .as_str()
                .unwrap()
                .ends_with(&format!("/docs/runbooks/{name}.md")),
            "{alert}"
        );
    }

    // --- staged failure: one WAL segment deleted in the middle of the copy ---
    let copy_prefix = format!("{}pg-main/", own.prefix);
    let listing = sc.list_full(&copy_prefix).await;
    let segs = segments(&listing, &copy_prefix);
    let barman = sc.barman_backup_list("pg-main");
    let oldest = barman
        .iter()
        .filter(|b| b["status"] == "DONE")
        .min_by_key(|b| b["backup_id"].as_str().unwrap().to_string())
        .unwrap();
    let (tli, end) = segno(oldest["end_wal"].as_str().unwrap());
    // The first segment after the oldest backup's end on its timeline or later:
    // it lies between that backup and the newest WAL.
    let victim = segs
        .iter()
        .map(|(n, _, _)| n.clone())
        .filter(|n| segno(n).1 > end && segno(n).0 >= tli)
        .min()
        .expect("the copy has a segment after the oldest backup");
    assert!(
        segs.iter().any(|(n, _, _)| n > &victim),
        "{victim} is not the newest segment"
    );
    let victim_key = listing
        .iter()
        .map(|(k, _, _)| k)
        .find(|k| k.contains(&format!("/{victim}")) && !k.contains(".backup") && !k.contains(".partial"))
        .unwrap()
        .clone();
    let client = sc.s3_client().await;
    client
        .delete_object()
        .bucket(&sc.bucket)
        .key(&victim_key)
        .send()
        .await
        .unwrap();

    let gap: AlertKey = (
        "BarmanCloudWALGap".into(),
        "critical".into(),
        "staged".into(),
        "pg-main".into(),
    );
    let mut want_gap = want.clone();
    want_gap.insert(gap.clone());
    let failed = settle_on(&prom_url, &am_url, &want_gap, Duration::from_secs(120), &[&prom, &am]).await;
    let alert = &failed[&gap];
    assert_eq!(alert["status"]["state"], "active", "{alert}");
    assert_eq!(alert["labels"]["job"], JOB);
    assert_eq!(alert["labels"]["instance"], exporter_addr.as_str());
    assert_eq!(
        alert["annotations"]["summary"],
        "WAL segments are missing from the barman-cloud archive; point-in-time recovery is broken."
    );
    assert_eq!(
        alert["annotations"]["description"],
        "1 WAL segment(s) are missing between the oldest DONE backup of server pg-main (target staged) \
         and the newest archived segment: recovery past the gap is impossible.",
        "{alert}"
    );
    assert_eq!(
        alert["annotations"]["runbook_url"],
        "https://github.com/barman-cloud-exporter/barman-cloud-exporter/blob/main/docs/runbooks/BarmanCloudWALGap.md"
    );

    // --- staged payload failures: the newest backup's data tar deleted (a
    // lifecycle rule or a hand cleanup), and the newest WAL segment moved to
    // DEEP_ARCHIVE (a lifecycle transition; SeaweedFS keeps the class) ---
    let newest = barman
        .iter()
        .filter(|b| b["status"] == "DONE")
        .map(|b| b["backup_id"].as_str().unwrap().to_string())
        .max()
        .unwrap();
    let tar_key = listing
        .iter()
        .map(|(k, _, _)| k)
        .find(|k| k.starts_with(&format!("{copy_prefix}base/{newest}/data.tar")))
        .expect("the newest backup's data tar")
        .clone();
    client
        .delete_object()
        .bucket(&sc.bucket)
        .key(&tar_key)
        .send()
        .await
        .unwrap();
    let newest_seg = segs.iter().map(|(n, _, _)| n.clone()).max().unwrap();
    let seg_key = listing
        .iter()
        .map(|(k, _, _)| k)
        .find(|k| k.contains(&format!("/{newest_seg}")) && !k.contains(".backup") && !k.contains(".partial"))
        .unwrap()
        .clone();
    common::hostile::set_storage_class(
        &client,
        &sc.bucket,
        &seg_key,
        aws_sdk_s3::types::StorageClass::DeepArchive,
    )
    .await;
    let incomplete: AlertKey = (
        "BarmanCloudBackupIncomplete".into(),
        "critical".into(),
        "staged".into(),
        "pg-main".into(),
    );
    let archived: AlertKey = (
        "BarmanCloudObjectsInArchiveTier".into(),
        "critical".into(),
        "staged".into(),
        "pg-main".into(),
    );
    let mut want_payload = want_gap.clone();
    want_payload.insert(incomplete.clone());
    want_payload.insert(archived.clone());
    let fired = settle_on(
        &prom_url,
        &am_url,
        &want_payload,
        Duration::from_secs(120),
        &[&prom, &am],
    )
    .await;
    assert_eq!(
        fired[&incomplete]["annotations"]["summary"],
        "The newest barman-cloud DONE backup is missing part of its payload."
    );
    assert_eq!(fired[&archived]["labels"]["area"], "wals", "{}", fired[&archived]);
    assert_eq!(
        fired[&archived]["annotations"]["description"],
        "1 object(s) under wals/ of server pg-main (target staged) are in S3 GLACIER or DEEP_ARCHIVE: \
         barman-cloud-wal-restore cannot read them until they are restored.",
        "{}",
        fired[&archived]
    );

    drop(prom);
    drop(am);
    exporter.stop().await;
    OwnPrefix::delete_all(&own.sc, &own.prefix).await;
    assert!(sc.list(&own.prefix).await.is_empty());
}

/// Every `barman_cloud_*` name in the shipped rules (alerting and migration
/// recording rules) is a metric of docs/metrics.md.
#[test]
fn rules_use_only_documented_metrics() {
    let documented = documented_metrics();
    for file in [RULES, MIGRATION_RULES] {
        let text = std::fs::read_to_string(repo(file)).unwrap();
        let names: BTreeSet<&str> = text
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| w.starts_with("barman_cloud_") && !w.ends_with('_'))
            .collect();
        assert!(!names.is_empty(), "{file} names no metric");
        for name in names {
            assert!(
                documented.contains_key(name),
                "{file}: {name} is not in docs/metrics.md"
            );
        }
    }
}

/// Every alert links its runbook, and the runbook exists in docs/runbooks/.
#[test]
fn every_alert_has_its_runbook() {
    let text = std::fs::read_to_string(repo(RULES)).unwrap();
    let base = "https://github.com/barman-cloud-exporter/barman-cloud-exporter/blob/main/";
    let mut current = None;
    let mut seen = BTreeSet::new();
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("- alert: ") {
            current = Some(name.to_string());
        } else if let Some(url) = line.strip_prefix("runbook_url: ") {
            let name = current.take().expect("runbook_url after its alert");
            let path = url
                .strip_prefix(base)
                .unwrap_or_else(|| panic!("{name}: {url} outside {base}"));
            assert_eq!(path, format!("docs/runbooks/{name}.md"));
            assert!(repo(path).is_file(), "{path} is missing");
            seen.insert(name);
        }
    }
    assert!(current.is_none(), "{current:?} has no runbook_url");
    assert!(seen.len() >= 15, "{seen:?}");
}
