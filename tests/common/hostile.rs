//! Helpers of the hostile-input tests (`tests/hostile_input.rs`,
//! `tests/compression_bombs.rs`, `tests/config_errors.rs`): objects written
//! under the test's own prefixes of the scenario's bucket, and the real daemon
//! as a child process with its peak memory.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use serde_json::Value;

use super::Scenario;

pub const BIN: &str = env!("CARGO_BIN_EXE_barman-cloud-exporter");
pub const MIB: usize = 1024 * 1024;

/// Config YAML with one target per `(name, destination_path)`, using the
/// scenario's endpoint and credentials; `interval` 1h so one collection runs.
pub fn config_yaml(sc: &Scenario, dir: &Path, targets: &[(&str, &str)]) -> String {
    let ak = dir.join("access_key_id");
    let sk = dir.join("secret_access_key");
    std::fs::write(&ak, &sc.s3.access_key).unwrap();
    std::fs::write(&sk, &sc.s3.secret_key).unwrap();
    let q = |s: &str| serde_json::to_string(s).unwrap();
    let mut y = String::from("interval: 1h\ntimeout: 2m\ntargets:\n");
    for (name, dest) in targets {
        y.push_str(&format!(
            "  - name: {}\n    destination_path: {}\n    endpoint_url: {}\n    region: {}\n    \
             force_path_style: true\n    access_key_id_file: {}\n    secret_access_key_file: {}\n",
            q(name),
            q(dest),
            q(&sc.s3.endpoint),
            q(&sc.s3.region),
            q(&ak.display().to_string()),
            q(&sk.display().to_string()),
        ));
    }
    y
}

/// Every `(key, size)` under `prefix` of `bucket`.
pub async fn list(client: &Client, bucket: &str, prefix: &str) -> BTreeMap<String, i64> {
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .into_paginator()
        .send();
    let mut out = BTreeMap::new();
    while let Some(page) = pages.next().await {
        for o in page.unwrap().contents() {
            out.insert(o.key().unwrap().to_string(), o.size().unwrap_or(0));
        }
    }
    out
}

pub async fn put(client: &Client, bucket: &str, key: &str, body: Vec<u8>) {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(body.into())
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT {key}: {e:?}"));
}

pub async fn get(client: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let o = client.get_object().bucket(bucket).key(key).send().await.unwrap();
    o.body.collect().await.unwrap().into_bytes().to_vec()
}

/// Deletes the keys under `prefix` (which must be one of the tests' own,
/// `hostile/...` or `copies/...`) for which `drop` is true.
pub async fn delete_where(client: &Client, bucket: &str, prefix: &str, drop: impl Fn(&str) -> bool) {
    assert!(
        prefix.starts_with("hostile/") || prefix.starts_with("copies/"),
        "only the tests' own prefixes are ever cleaned"
    );
    let doomed: Vec<String> = list(client, bucket, prefix)
        .await
        .into_keys()
        .filter(|k| drop(k))
        .collect();
    for chunk in doomed.chunks(1000) {
        let ids = chunk
            .iter()
            .map(|k| ObjectIdentifier::builder().key(k).build().unwrap())
            .collect();
        client
            .delete_objects()
            .bucket(bucket)
            .delete(Delete::builder().set_objects(Some(ids)).build().unwrap())
            .send()
            .await
            .unwrap();
    }
}

/// Rewrites `key` onto itself in storage class `class` (as a lifecycle
/// transition leaves it; SeaweedFS keeps and lists the class).
pub async fn set_storage_class(client: &Client, bucket: &str, key: &str, class: aws_sdk_s3::types::StorageClass) {
    let body = get(client, bucket, key).await;
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .storage_class(class)
        .body(body.into())
        .send()
        .await
        .unwrap();
}

/// The newest real `backup.info` of the scenario's first server (read-only use).
pub async fn real_backup_info(sc: &Scenario, client: &Client) -> String {
    let base = format!("{}base/", sc.server_prefix(&sc.servers[0]));
    let key = list(client, &sc.bucket, &base)
        .await
        .into_keys()
        .rfind(|k| k.ends_with("/backup.info"))
        .expect("the scenario has a backup");
    String::from_utf8(get(client, &sc.bucket, &key).await).unwrap()
}

/// Replaces (or appends) `key=value` lines of a backup.info.
pub fn with_fields(info: &str, fields: &[(&str, &str)]) -> String {
    let mut out: Vec<String> = info
        .lines()
        .filter(|l| {
            !fields
                .iter()
                .any(|(k, _)| l.split_once('=').is_some_and(|(lk, _)| lk == *k))
        })
        .map(str::to_string)
        .collect();
    out.extend(fields.iter().map(|(k, v)| format!("{k}={v}")));
    out.join("\n") + "\n"
}

/// `/api/status` backups of `server` in target `target`: id → (status, error).
pub fn backups_of(status: &Value, target: &str, server: &str) -> BTreeMap<String, (String, Option<String>)> {
    let t = status["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == target)
        .unwrap();
    let s = t["s3"]["data"]["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == server)
        .unwrap_or_else(|| panic!("no server {server:?} in {t}"));
    s["backup_list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["id"].as_str().unwrap().to_string(),
                (
                    b["status"].as_str().unwrap().to_string(),
                    b["error"].as_str().map(str::to_string),
                ),
            )
        })
        .collect()
}

/// The real daemon as a child process, killed (by its own handle) on drop.
pub struct Daemon {
    pub child: Child,
    pub base: String,
}

/// Runs the binary with `args` (and `env`, without the caller's
/// `BARMAN_CLOUD_EXPORTER_*`) to its exit, at most 20 s: (exit code, stdout, stderr).
pub fn run_bin(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = Command::new(BIN);
    cmd.args(args).stdin(Stdio::null());
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("BARMAN_CLOUD_EXPORTER_")) {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied());
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            panic!("{args:?} did not exit within 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

impl Daemon {
    pub fn start(config: &Path) -> Self {
        Self::start_with_env(config, &[])
    }

    /// As [`Daemon::start`], with `env` set (and nothing else of the
    /// caller's `AZURE_*`, `GOOGLE_*` or `STORAGE_EMULATOR_HOST`).
    pub fn start_with_env(config: &Path, env: &[(&str, &str)]) -> Self {
        Self::start_with_args(config, &[], env)
    }

    /// As [`Daemon::start_with_env`], with more command-line `args`.
    pub fn start_with_args(config: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = Command::new(BIN);
        cmd.args(["--config.file", config.to_str().unwrap()])
            .args(["--web.listen-address", &format!("127.0.0.1:{port}")])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, _) in std::env::vars().filter(|(k, _)| {
            ["BARMAN_CLOUD_EXPORTER_", "AZURE_", "GOOGLE_", "STORAGE_EMULATOR_HOST"]
                .iter()
                .any(|p| k.starts_with(p))
        }) {
            cmd.env_remove(k);
        }
        cmd.envs(env.iter().copied());
        let child = cmd.spawn().unwrap();
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    pub async fn wait_ready(&mut self, within: Duration) {
        let start = Instant::now();
        loop {
            if let Ok(r) = reqwest::get(format!("{}/readyz", self.base)).await
                && r.status().as_u16() == 200
            {
                return;
            }
            assert!(self.child.try_wait().unwrap().is_none(), "daemon exited");
            assert!(start.elapsed() < within, "daemon not ready within {within:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn get(&self, path: &str) -> String {
        reqwest::get(format!("{}{path}", self.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// A field of `/proc/<pid>/status` in KiB (`VmHWM`: peak resident set).
    pub fn proc_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn unix(y: i32, m: u32, d: u32, h: u32) -> f64 {
    chrono::NaiveDate::from_ymd_opt(y, m, d)
        .unwrap()
        .and_hms_opt(h, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp() as f64
}
