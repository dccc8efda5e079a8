//! Shared test helpers: the real scenario built by `scripts/scenario.sh`,
//! an in-process exporter on 127.0.0.1:0, exposition parsing and barman's own
//! tools as the reference.
#![allow(dead_code, missing_docs)]

pub mod cloud;
pub mod fault_proxy;
pub mod faults;
pub mod hostile;
pub mod monitoring;
pub mod pg_cluster;
pub mod restore;
pub mod retention;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use barman_cloud_exporter::config::Config;
use figment::providers::{Format, Yaml};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

/// One documented metric.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricDoc {
    pub kind: String,
    pub labels: BTreeSet<String>,
}

/// Rows of the table in docs/metrics.md: name → type and labels.
pub fn documented_metrics() -> BTreeMap<String, MetricDoc> {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/metrics.md")).unwrap();
    let mut out = BTreeMap::new();
    for line in text.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let name = cells[1].trim_matches('`').to_string();
        let labels = cells[3]
            .split(',')
            .map(str::trim)
            .filter(|l| !l.is_empty() && *l != "–")
            .map(str::to_string)
            .collect();
        out.insert(
            name,
            MetricDoc {
                kind: cells[2].to_string(),
                labels,
            },
        );
    }
    out
}

/// One sample of an exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Parses the samples of an exposition (simple label values only: no escaped quotes).
pub fn samples(text: &str) -> Vec<Sample> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (head, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match head.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (head, ""),
        };
        let mut map = BTreeMap::new();
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap();
            map.insert(k.to_string(), v.trim_matches('"').to_string());
        }
        out.push(Sample {
            name: name.to_string(),
            labels: map,
            value: value.parse().unwrap(),
        });
    }
    out
}

/// Families of an exposition: sample name → type and the union of label names.
pub fn exposition_families(om: &str) -> BTreeMap<String, MetricDoc> {
    let mut families = BTreeMap::new();
    for l in om.lines().filter_map(|l| l.strip_prefix("# TYPE ")) {
        let (name, kind) = l.split_once(' ').unwrap();
        let sample_name = match kind {
            "counter" => format!("{name}_total"),
            "info" => format!("{name}_info"),
            _ => name.to_string(),
        };
        families.insert(
            sample_name,
            MetricDoc {
                kind: kind.to_string(),
                labels: BTreeSet::new(),
            },
        );
    }
    for s in samples(om) {
        let fam = families
            .get_mut(&s.name)
            .unwrap_or_else(|| panic!("sample {} has no family", s.name));
        fam.labels.extend(s.labels.keys().cloned());
    }
    families
}

/// Value of the sample `name` whose labels include all of `want`.
pub fn value(samples: &[Sample], name: &str, want: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && want
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

/// The real scenario written by `scripts/scenario.sh up DIR` (`DIR/scenario.json`).
#[derive(Debug, Clone, Deserialize)]
pub struct Scenario {
    pub dir: PathBuf,
    pub bucket: String,
    pub destination_path: String,
    pub s3: S3Info,
    pub servers: Vec<String>,
    pub orphan_servers: Vec<String>,
    pub postgres: PgInfo,
    pub barman_bin: PathBuf,
    pub scripts_dir: PathBuf,
    /// PostgreSQL's binaries (`/usr/lib/postgresql/15/bin`).
    pub pg_bin: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
pub struct S3Info {
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    /// Credentials allowed only Read and List (SeaweedFS identity).
    pub ro_access_key: String,
    pub ro_secret_key: String,
    pub region: String,
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PgInfo {
    pub server: String,
    pub url: String,
    pub superuser_url: String,
    pub data_dir: PathBuf,
    pub port: u16,
}

impl Scenario {
    /// Loads the scenario named by `BCE_SCENARIO` (a `scenario.json`), which
    /// `scripts/test.sh` sets after building it. Panics with instructions otherwise.
    pub fn load() -> Self {
        let path = std::env::var("BCE_SCENARIO").unwrap_or_else(|_| {
            panic!(
                "BCE_SCENARIO is not set: these tests need the real scenario; run scripts/test.sh \
                 (or scripts/scenario.sh up DIR and BCE_SCENARIO=DIR/scenario.json cargo test)"
            )
        });
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// Writes the access key files and returns an exporter config YAML for the scenario.
    pub fn config_yaml(&self, dir: &Path, interval: &str, timeout: &str, with_postgres: bool) -> String {
        self.config_yaml_with_keys(
            dir,
            interval,
            timeout,
            with_postgres,
            &self.s3.access_key,
            &self.s3.secret_key,
        )
    }

    /// As [`Scenario::config_yaml`], with the given S3 key pair.
    pub fn config_yaml_with_keys(
        &self,
        dir: &Path,
        interval: &str,
        timeout: &str,
        with_postgres: bool,
        access_key: &str,
        secret_key: &str,
    ) -> String {
        let ak = dir.join("access_key_id");
        let sk = dir.join("secret_access_key");
        std::fs::write(&ak, access_key).unwrap();
        std::fs::write(&sk, secret_key).unwrap();
        let servers: Vec<String> = self.servers.iter().map(|s| format!("\"{s}\"")).collect();
        let mut yaml = format!(
            r#"interval: {interval}
timeout: {timeout}
targets:
  - name: scenario
    labels: {{namespace: demo, cluster: pg-main}}
    destination_path: "{}"
    endpoint_url: "{}"
    region: "{}"
    force_path_style: true
    servers: [{}]
    access_key_id_file: "{}"
    secret_access_key_file: "{}"
"#,
            self.destination_path,
            self.s3.endpoint,
            self.s3.region,
            servers.join(", "),
            ak.display(),
            sk.display()
        );
        if with_postgres {
            yaml.push_str(&format!(
                "    postgres:\n      url: \"{}\"\n      server: \"{}\"\n",
                self.postgres.url, self.postgres.server
            ));
        }
        yaml
    }

    /// Runs one of barman's cloud tools with the scenario's credentials and
    /// endpoint, returning stdout; panics with stderr on failure.
    pub fn barman(&self, tool: &str, args: &[&str]) -> String {
        let out = Command::new(self.barman_bin.join(tool))
            .args(["--endpoint-url", &self.s3.endpoint, "--cloud-provider", "aws-s3"])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", &self.s3.access_key)
            .env("AWS_SECRET_ACCESS_KEY", &self.s3.secret_key)
            .env("AWS_DEFAULT_REGION", &self.s3.region)
            .output()
            .unwrap_or_else(|e| panic!("{tool}: {e}"));
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `barman-cloud-backup-list --format json` for `server`: the `backups_list` array.
    pub fn barman_backup_list(&self, server: &str) -> Vec<serde_json::Value> {
        let out = self.barman(
            "barman-cloud-backup-list",
            &["--format", "json", &self.destination_path, server],
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
        v["backups_list"].as_array().cloned().unwrap_or_default()
    }

    /// An S3 client for direct listings with the scenario's credentials.
    pub async fn s3_client(&self) -> aws_sdk_s3::Client {
        let creds = aws_sdk_s3::config::Credentials::new(&self.s3.access_key, &self.s3.secret_key, None, None, "test");
        let conf = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(aws_sdk_s3::config::Region::new(self.s3.region.clone()))
            .endpoint_url(&self.s3.endpoint)
            .force_path_style(true)
            .credentials_provider(creds)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// Every key and size under `prefix` (a direct listing, for comparison).
    pub async fn list(&self, prefix: &str) -> Vec<(String, i64)> {
        self.list_full(prefix)
            .await
            .into_iter()
            .map(|(k, s, _)| (k, s))
            .collect()
    }

    /// Every key, size and LastModified (Unix seconds) under `prefix`.
    pub async fn list_full(&self, prefix: &str) -> Vec<(String, i64, f64)> {
        let client = self.s3_client().await;
        let mut pages = client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            for o in page.unwrap().contents() {
                out.push((
                    o.key().unwrap().to_string(),
                    o.size().unwrap_or(0),
                    o.last_modified().unwrap().as_secs_f64(),
                ));
            }
        }
        out
    }

    /// The key prefix (inside the bucket) of a server: `<path>/<server>/`.
    pub fn server_prefix(&self, server: &str) -> String {
        let (_, prefix) = barman_cloud_exporter::config::parse_destination(&self.destination_path).unwrap();
        format!("{prefix}{server}/")
    }
}

/// Parses and validates a configuration as the binary does.
pub fn parse_config(yaml: &str) -> Config {
    Config::from_figment(figment::Figment::new().merge(Yaml::string(yaml))).unwrap()
}

/// An exporter running in-process on 127.0.0.1:0.
pub struct Exporter {
    pub base: String,
    pub shutdown: CancellationToken,
    pub handle: tokio::task::JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Exporter {
    /// Starts the exporter with the config YAML produced by `yaml(dir)`.
    pub async fn start(yaml: impl FnOnce(&Path) -> String) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let text = yaml(dir.path());
        Self::with_config(parse_config(&text), dir).await
    }

    /// Starts the exporter with an already validated `config`; `dir` lives as
    /// long as the exporter.
    pub async fn with_config(config: Config, dir: tempfile::TempDir) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(barman_cloud_exporter::run(
            config,
            listener,
            "/metrics".into(),
            shutdown.clone(),
        ));
        Self {
            base,
            shutdown,
            handle,
            _dir: dir,
        }
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let resp = reqwest::get(format!("{}{path}", self.base)).await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    /// `/metrics` in the classic text format 0.0.4 (what `promtool check
    /// metrics` parses), asked for as a client that only accepts `text/plain`.
    pub async fn get_text(&self) -> String {
        let resp = reqwest::Client::new()
            .get(format!("{}/metrics", self.base))
            .header("Accept", "text/plain")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
        assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
        resp.text().await.unwrap()
    }

    /// Waits until `/readyz` answers 200 (first collection of every target done).
    pub async fn wait_ready(&self, within: Duration) {
        let start = Instant::now();
        while self.get("/readyz").await.0 != 200 {
            assert!(start.elapsed() < within, "exporter not ready within {within:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.handle)
            .await
            .expect("exporter did not stop within 10 s")
            .unwrap()
            .unwrap();
    }
}

/// Unix seconds of an ISO-8601 / barman time string.
pub fn unix(s: &str) -> f64 {
    let t = barman_cloud_exporter::catalog::backup_info::parse_time(s).unwrap_or_else(|| panic!("bad time {s}"));
    t.timestamp_micros() as f64 / 1e6
}

/// Linear segment number of a 24-hex WAL name (16 MiB segments).
pub fn segno(name: &str) -> (u32, u64) {
    let tli = u32::from_str_radix(&name[..8], 16).unwrap();
    let log = u64::from_str_radix(&name[8..16], 16).unwrap();
    let seg = u64::from_str_radix(&name[16..24], 16).unwrap();
    (tli, log * 256 + seg)
}

/// Full segment names (bare) of a listing under `<prefix>wals/`.
pub fn segments(listing: &[(String, i64, f64)], prefix: &str) -> Vec<(String, i64, f64)> {
    listing
        .iter()
        .filter_map(|(k, sz, t)| {
            let rest = k.strip_prefix(&format!("{prefix}wals/"))?;
            let (_, base) = rest.split_once('/')?;
            let bare = base.strip_suffix(".gz").unwrap_or(base);
            (bare.len() == 24).then(|| (bare.to_string(), *sz, *t))
        })
        .collect()
}

/// Copies every object of `server` from the scenario's destination to `dest_prefix<server>/`,
/// skipping keys for which `skip` is true and rewriting `backup.info` through `edit`.
pub async fn copy_server(
    sc: &Scenario,
    server: &str,
    dest_prefix: &str,
    skip: impl Fn(&str) -> bool,
    edit: impl Fn(&str, String) -> String,
) {
    copy_prefix(
        sc,
        &sc.server_prefix(server),
        &format!("{dest_prefix}{server}/"),
        skip,
        edit,
    )
    .await;
}

/// Copies every object under `src` to `dst` in the scenario's bucket, skipping
/// keys for which `skip` is true and rewriting each `backup.info` (key relative
/// to `src`) through `edit`.
pub async fn copy_prefix(
    sc: &Scenario,
    src: &str,
    dst: &str,
    skip: impl Fn(&str) -> bool,
    edit: impl Fn(&str, String) -> String,
) {
    let client = sc.s3_client().await;
    for (key, _) in sc.list(src).await {
        if skip(&key) {
            continue;
        }
        let rel = &key[src.len()..];
        let body = client.get_object().bucket(&sc.bucket).key(&key).send().await.unwrap();
        let mut bytes = body.body.collect().await.unwrap().into_bytes().to_vec();
        if rel.ends_with("backup.info") {
            bytes = edit(rel, String::from_utf8(bytes).unwrap()).into_bytes();
        }
        client
            .put_object()
            .bucket(&sc.bucket)
            .key(format!("{dst}{rel}"))
            .body(bytes.into())
            .send()
            .await
            .unwrap();
    }
}

/// Moves `begin_time`/`end_time` of a `backup.info` back by `days` days.
pub fn shift_backup_times(text: &str, days: i64) -> String {
    let moved = |v: &str| -> String {
        let t = chrono::DateTime::parse_from_str(v, "%Y-%m-%d %H:%M:%S%.f%:z").unwrap();
        (t - chrono::Duration::days(days))
            .format("%Y-%m-%d %H:%M:%S%.6f%:z")
            .to_string()
    };
    text.lines()
        .map(|l| match l.split_once('=') {
            Some((k @ ("begin_time" | "end_time"), v)) if v != "None" => format!("{k}={}", moved(v)),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// The key prefix inside the bucket of `server` under an `s3://bucket/path` destination.
pub fn prefix_of(destination: &str, server: &str) -> String {
    let (_, p) = barman_cloud_exporter::config::parse_destination(destination).unwrap();
    format!("{p}{server}/")
}

/// The scenario's exporter config pointed at another destination; `extra` replaces the `servers` line.
pub fn exporter_yaml(sc: &Scenario, dir: &std::path::Path, destination: &str, extra: &str) -> String {
    sc.config_yaml(dir, "1h", "1m", false)
        .replace(&sc.destination_path, destination)
        .replace("    servers: [\"pg-main\"]\n", extra)
}

/// Runs `barman-cloud-backup-delete --dry-run` and returns its output, the
/// existing keys it would delete (prefix deletions expanded from a listing of
/// `server_prefix`) and their total size.
pub async fn barman_dry_run(
    sc: &Scenario,
    dest: &str,
    server: &str,
    policy: &str,
    server_prefix: &str,
) -> (String, BTreeSet<String>, i64) {
    let out = sc.barman(
        "barman-cloud-backup-delete",
        &["--dry-run", "--retention-policy", policy, dest, server],
    );
    let listing = sc.list(server_prefix).await;
    let (doomed, bytes) = doomed_by_dry_run(&out, &listing);
    (out, doomed, bytes)
}

/// What a `barman-cloud-backup-delete --dry-run` output says it would
/// delete, among the objects of `listing` (key, size): the keys and their
/// bytes. Paths barman names that do not exist are dropped.
pub fn doomed_by_dry_run(out: &str, listing: &[(String, i64)]) -> (BTreeSet<String>, i64) {
    let mut doomed: BTreeSet<String> = BTreeSet::new();
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("Skipping deletion of objects [") {
            let list = rest.split(']').next().unwrap();
            doomed.extend(list.split(", ").map(|k| k.trim_matches('\'').to_string()));
        } else if let Some(rest) = line.strip_prefix("Skipping deletion of all objects under prefix ") {
            let p = rest.split(' ').next().unwrap();
            doomed.extend(listing.iter().filter(|(k, _)| k.starts_with(p)).map(|(k, _)| k.clone()));
        }
    }
    let existing: BTreeSet<&String> = listing.iter().map(|(k, _)| k).collect();
    doomed.retain(|k| existing.contains(k));
    let bytes = listing.iter().filter(|(k, _)| doomed.contains(k)).map(|(_, s)| s).sum();
    (doomed, bytes)
}

/// WAL objects older than the first valid backup, counted from a direct
/// listing by the layout doc's rule (independent of the exporter's code):
/// segments, `.partial` and `.backup` with `tli == F.timeline && name <
/// F.begin_wal` or `tli < F.timeline`, and `.history` of timelines <= F's.
/// Returns `(objects, bytes, history objects)`. `first_begin_wal` is F's.
pub async fn leftovers_from_listing(sc: &Scenario, wal_prefix: &str, first_begin_wal: &str) -> (f64, f64, f64) {
    let (ftli, fseg) = segno(first_begin_wal);
    let (mut objects, mut bytes, mut history) = (0.0, 0.0, 0.0);
    for (k, sz) in sc.list(wal_prefix).await {
        let rest = &k[wal_prefix.len()..];
        match rest.split_once('/') {
            Some((_, base)) => {
                let (tli, n) = segno(base);
                if (tli == ftli && n < fseg) || tli < ftli {
                    objects += 1.0;
                    bytes += sz as f64;
                }
            }
            None if rest.contains(".history") && u32::from_str_radix(&rest[..8], 16).unwrap() <= ftli => {
                history += 1.0;
            }
            None => {}
        }
    }
    (objects, bytes, history)
}

/// `promtool check metrics` (Debian `prometheus`: the real Prometheus parser
/// and its lint) on `text`, a text-format 0.0.4 exposition: whether it passed
/// and what promtool said.
pub fn promtool_check(text: &str) -> (bool, String) {
    use std::io::Write as _;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (Debian prometheus) on PATH");
    child.stdin.take().unwrap().write_all(text.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let msg = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), msg)
}

/// The backups of one server entry of `/api/status`
/// (`targets[].s3.data.servers[]`): id → status.
pub fn backup_statuses(server: &serde_json::Value) -> BTreeMap<String, String> {
    server["backup_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["id"].as_str().unwrap().to_string(),
                b["status"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}
