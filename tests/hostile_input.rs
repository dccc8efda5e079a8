//! Hostile and malformed input against the real SeaweedFS of the scenario:
//! malformed and oversized `backup.info` files (with the daemon's peak memory),
//! odd characters in object names, 10,000 junk keys under `wals/`, `X` and
//! `X.gz` side by side, an empty bucket, a destination that does not exist, and
//! an invalid configuration for each field (the real binary's exit code).
//!
//! Every object is written under the test's own prefix `hostile/<case>/` of
//! the scenario's bucket (or a bucket of its own), never under another prefix.
//! Setup is idempotent: reruns rewrite the small objects and reuse the big ones.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_s3::Client;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use common::{Exporter, Sample, Scenario, copy_server, samples, value};
use futures_util::{StreamExt, TryStreamExt, stream};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_barman-cloud-exporter");
const MIB: usize = 1024 * 1024;

/// Config YAML with one target per `(name, destination_path)`, using the
/// scenario's endpoint and credentials; `interval` 1h so one collection runs.
fn config_yaml(sc: &Scenario, dir: &Path, targets: &[(&str, &str)]) -> String {
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
async fn list(client: &Client, bucket: &str, prefix: &str) -> BTreeMap<String, i64> {
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

async fn put(client: &Client, bucket: &str, key: &str, body: Vec<u8>) {
    client
        .put_object()
        .bucket(bucket)
        .key(key)
        .body(body.into())
        .send()
        .await
        .unwrap_or_else(|e| panic!("PUT {key}: {e:?}"));
}

async fn get(client: &Client, bucket: &str, key: &str) -> Vec<u8> {
    let o = client.get_object().bucket(bucket).key(key).send().await.unwrap();
    o.body.collect().await.unwrap().into_bytes().to_vec()
}

/// Deletes the keys under `prefix` (which must be one of this test's own,
/// `hostile/...`) for which `drop` is true.
async fn delete_where(client: &Client, bucket: &str, prefix: &str, drop: impl Fn(&str) -> bool) {
    assert!(
        prefix.starts_with("hostile/"),
        "only the test's own prefix is ever cleaned"
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

/// The newest real `backup.info` of the scenario's first server (read-only use).
async fn real_backup_info(sc: &Scenario, client: &Client) -> String {
    let base = format!("{}base/", sc.server_prefix(&sc.servers[0]));
    let key = list(client, &sc.bucket, &base)
        .await
        .into_keys()
        .rfind(|k| k.ends_with("/backup.info"))
        .expect("the scenario has a backup");
    String::from_utf8(get(client, &sc.bucket, &key).await).unwrap()
}

/// Replaces (or appends) `key=value` lines of a backup.info.
fn with_fields(info: &str, fields: &[(&str, &str)]) -> String {
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
fn backups_of(status: &Value, target: &str, server: &str) -> BTreeMap<String, (String, Option<String>)> {
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
struct Daemon {
    child: Child,
    base: String,
}

impl Daemon {
    fn start(config: &Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = Command::new(BIN);
        cmd.args(["--config.file", config.to_str().unwrap()])
            .args(["--web.listen-address", &format!("127.0.0.1:{port}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("BARMAN_CLOUD_EXPORTER_")) {
            cmd.env_remove(k);
        }
        let child = cmd.spawn().unwrap();
        Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    }

    async fn wait_ready(&mut self, within: Duration) {
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

    async fn get(&self, path: &str) -> String {
        reqwest::get(format!("{}{path}", self.base))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// A field of `/proc/<pid>/status` in KiB (`VmHWM`: peak resident set).
    fn proc_kib(&self, field: &str) -> u64 {
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

fn unix(y: i32, m: u32, d: u32, h: u32) -> f64 {
    chrono::NaiveDate::from_ymd_opt(y, m, d)
        .unwrap()
        .and_hms_opt(h, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp() as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn malformed_and_oversized_backup_info_are_unreadable_with_bounded_memory() {
    let sc = Scenario::load();
    let client = sc.s3_client().await;
    let root = "hostile/info/";
    let base = format!("{root}pg-h/base/");
    let real = real_backup_info(&sc, &client).await;

    // Unknown keys (with spaces, unicode), a duplicate key (the last wins, as
    // in barman's dict): DONE.
    let mut tolerated = String::from("status=FAILED\n");
    tolerated.push_str(&with_fields(
        &real,
        &[("future_field", "1"), ("weird key ", "x"), ("ключ", "значение")],
    ));
    // Timestamps without an offset are read as UTC.
    let naive = with_fields(
        &real,
        &[
            ("begin_time", "2030-01-01 00:00:00"),
            ("end_time", "2030-01-01 01:00:00"),
        ],
    );
    // Exactly the 1 MiB bound: still read. A FAILED backup padded with a comment.
    let failed = with_fields(
        &real,
        &[
            ("status", "FAILED"),
            ("error", "boom"),
            ("begin_time", "2026-01-02 00:00:00+00:00"),
            ("end_time", "None"),
        ],
    );
    let pad = |text: &str, total: usize| {
        let mut b = text.as_bytes().to_vec();
        b.extend_from_slice(b"#");
        b.resize(total - 1, b'x');
        b.push(b'\n');
        b
    };
    let at_limit = pad(&failed, MIB);
    assert_eq!(at_limit.len(), MIB);
    let mut gzipped = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzipped.write_all(real.as_bytes()).unwrap();
    let mut not_utf8 = b"status=DONE\nbackup_name=".to_vec();
    not_utf8.extend_from_slice(b"caf\xe9\n"); // Latin-1, as a misconfigured writer would
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("20260101T000001", tolerated.into_bytes()),
        ("20300101T000000", naive.into_bytes()),
        ("20260102T000000", at_limit),
        ("20260103T000000", not_utf8),
        ("20260104T000000", gzipped.finish().unwrap()),
        ("20260105T000000", b"status DONE\n".to_vec()),
        ("20260107T000000", pad(&real, MIB + 1)),
    ];
    let big_key = format!("{base}20260106T000000/backup.info");
    const BIG: usize = 100 * MIB;
    delete_where(&client, &sc.bucket, root, |k| k != big_key).await;
    for (id, body) in &cases {
        put(&client, &sc.bucket, &format!("{base}{id}/backup.info"), body.clone()).await;
        put(&client, &sc.bucket, &format!("{base}{id}/data.tar"), b"tar".to_vec()).await;
    }
    if list(&client, &sc.bucket, &big_key).await.get(&big_key) != Some(&(BIG as i64)) {
        // Streamed from a file so the test itself does not hold 100 MB.
        let file = tempfile::NamedTempFile::new().unwrap();
        let mut w = std::io::BufWriter::new(file.reopen().unwrap());
        let line = format!("{}\n", "#".repeat(1023));
        for _ in 0..BIG / 1024 {
            w.write_all(line.as_bytes()).unwrap();
        }
        w.flush().unwrap();
        drop(w);
        client
            .put_object()
            .bucket(&sc.bucket)
            .key(&big_key)
            .body(ByteStream::from_path(file.path()).await.unwrap())
            .send()
            .await
            .unwrap();
    }

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    let dest = format!("s3://{}/{}", sc.bucket, root.trim_end_matches('/'));
    std::fs::write(&config, config_yaml(&sc, dir.path(), &[("hostile", &dest)])).unwrap();
    let mut daemon = Daemon::start(&config);
    daemon.wait_ready(Duration::from_secs(60)).await;
    let body = daemon.get("/metrics").await;
    let peak_kib = daemon.proc_kib("VmHWM:");
    let s = samples(&body);
    let l = |status| [("target", "hostile"), ("server", "pg-h"), ("status", status)];
    assert_eq!(
        value(&s, "barman_cloud_collector_up", &[("collector", "s3")]),
        Some(1.0)
    );
    assert_eq!(value(&s, "barman_cloud_backups", &l("done")), Some(2.0), "{body}");
    assert_eq!(value(&s, "barman_cloud_backups", &l("failed")), Some(1.0));
    assert_eq!(value(&s, "barman_cloud_backups", &l("unreadable")), Some(5.0));
    assert_eq!(value(&s, "barman_cloud_backups", &l("started")), Some(0.0));
    assert_eq!(value(&s, "barman_cloud_backups", &l("other")), Some(0.0));
    let server = [("target", "hostile"), ("server", "pg-h")];
    // The naive timestamps, read as UTC, make the newest DONE backup.
    assert_eq!(
        value(&s, "barman_cloud_backup_last_success_timestamp_seconds", &server),
        Some(unix(2030, 1, 1, 1))
    );
    assert_eq!(
        value(&s, "barman_cloud_backup_last_duration_seconds", &server),
        Some(3600.0)
    );
    assert_eq!(
        value(&s, "barman_cloud_backup_last_failure_timestamp_seconds", &server),
        Some(unix(2026, 1, 2, 0))
    );
    // base/ counts every object, the 100 MB one included.
    let expected_bytes: usize = cases.iter().map(|(_, b)| b.len() + 3).sum::<usize>() + BIG;
    assert_eq!(value(&s, "barman_cloud_base_objects", &server), Some(15.0));
    assert_eq!(
        value(&s, "barman_cloud_base_bytes", &server),
        Some(expected_bytes as f64)
    );

    let status: Value = serde_json::from_str(&daemon.get("/api/status").await).unwrap();
    let backups = backups_of(&status, "hostile", "pg-h");
    let why = |id: &str| backups[id].1.clone().unwrap_or_default();
    assert_eq!(backups["20260101T000001"].0, "DONE");
    assert_eq!(backups["20300101T000000"].0, "DONE");
    assert_eq!(backups["20260102T000000"], ("FAILED".into(), Some("boom".into())));
    for id in ["20260103T000000", "20260104T000000"] {
        assert_eq!(backups[id].0, "UNREADABLE");
        assert_eq!(why(id), "backup.info is not valid UTF-8");
    }
    assert_eq!(why("20260105T000000"), "backup.info line 1: no '=' in line");
    for id in ["20260106T000000", "20260107T000000"] {
        assert_eq!(backups[id].0, "UNREADABLE");
        assert_eq!(why(id), "larger than 1048576 bytes");
    }
    // The 100 MB object was never read: the daemon's peak RSS stays far below it.
    eprintln!("daemon peak RSS (VmHWM) after the walk: {peak_kib} KiB");
    assert!(
        peak_kib < 80 * 1024,
        "peak RSS {peak_kib} KiB: the oversized backup.info was read"
    );
}

/// The kind a key under `wals/` should have, for the real barman files the
/// scenario holds (an independent, simpler rule than the exporter's).
fn real_kind(rest: &str) -> &'static str {
    let base = rest.rsplit('/').next().unwrap();
    let base = base.strip_suffix(".gz").unwrap_or(base);
    if base.ends_with(".history") {
        "history"
    } else if base.ends_with(".partial") {
        "partial"
    } else if base.ends_with(".backup") {
        "backup_label"
    } else if base.len() == 24 && base.chars().all(|c| c.is_ascii_hexdigit()) && rest.contains('/') {
        "segment"
    } else {
        "other"
    }
}

/// 10,000 junk names of ten shapes that look almost like WAL files.
fn junk_key(i: usize) -> String {
    match i % 10 {
        0 => format!("0000000100000000/junk-{i}"),
        1 => format!("0000000100000000/{i:023X}"),
        2 => format!("0000000100000000/{i:024X}.tmp"),
        3 => format!("0000000100000000/{i:024X}.gz.gz"),
        4 => format!("junkdir/{i}/x"),
        5 => format!("0000000100000000/{i:024X}.partial.backup"),
        6 => format!("0000000100000000/{i:024X}.0000028.backup"),
        7 => format!("0000000G{i:016X}/{i:024X}x"),
        8 => format!("{i}/ü+% name"),
        _ => format!("{i:08X}.histories"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn ten_thousand_junk_wal_keys_are_counted_as_other() {
    let sc = Scenario::load();
    let client = sc.s3_client().await;
    let root = "hostile/junk/";
    let server = sc.servers[0].clone();
    let wals = format!("{root}{server}/wals/");
    let junk: BTreeMap<String, Vec<u8>> = (0..10_000)
        .map(|i| (format!("{wals}{}", junk_key(i)), i.to_string().into_bytes()))
        .collect();
    let mut present = list(&client, &sc.bucket, root).await;
    if !present.keys().any(|k| k.contains("/base/")) {
        copy_server(&sc, &server, root, |_| false, |_, t| t).await;
    }
    let missing: Vec<(String, Vec<u8>)> = junk
        .iter()
        .filter(|(k, b)| present.get(*k) != Some(&(b.len() as i64)))
        .map(|(k, b)| (k.clone(), b.clone()))
        .collect();
    let started = Instant::now();
    stream::iter(missing.clone())
        .map(|(k, b)| {
            let client = &client;
            let bucket = &sc.bucket;
            async move {
                put(client, bucket, &k, b).await;
                Ok::<_, ()>(())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await
        .unwrap();
    eprintln!(
        "put {} junk keys concurrently in {:?}",
        missing.len(),
        started.elapsed()
    );
    present = list(&client, &sc.bucket, root).await;

    // Expected per kind, from the listing: junk is other, the copy of the real
    // server keeps its kinds.
    let mut expected: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for (k, sz) in present.iter().filter(|(k, _)| k.starts_with(&wals)) {
        let kind = if junk.contains_key(k) {
            "other"
        } else {
            real_kind(&k[wals.len()..])
        };
        let e = expected.entry(kind).or_default();
        e.0 += 1.0;
        e.1 += *sz as f64;
    }
    assert_eq!(expected["other"].0, 10_000.0, "only the junk is other");
    assert!(expected["segment"].0 >= 3.0);

    let exporter = Exporter::start(|dir| {
        config_yaml(
            &sc,
            dir,
            &[("junk", &format!("s3://{}/{}", sc.bucket, root.trim_end_matches('/')))],
        )
    })
    .await;
    exporter.wait_ready(Duration::from_secs(120)).await;
    let (_, body) = exporter.get("/metrics").await;
    let s = samples(&body);
    let l = |kind| [("target", "junk"), ("server", server.as_str()), ("kind", kind)];
    assert_eq!(
        value(&s, "barman_cloud_collector_up", &[("collector", "s3")]),
        Some(1.0)
    );
    let kinds: BTreeSet<&str> = s
        .iter()
        .filter(|x| x.name == "barman_cloud_wal_objects")
        .map(|x| x.labels["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["backup_label", "history", "other", "partial", "segment"])
    );
    for kind in kinds {
        let (n, b) = expected.get(kind).copied().unwrap_or_default();
        assert_eq!(value(&s, "barman_cloud_wal_objects", &l(kind)), Some(n), "{kind}");
        assert_eq!(value(&s, "barman_cloud_wal_bytes", &l(kind)), Some(b), "{kind}");
    }
    // The junk breaks nothing: the copy's WAL is continuous and both backups restorable.
    let srv = [("target", "junk"), ("server", server.as_str())];
    assert_eq!(
        value(&s, "barman_cloud_wal_missing_segments", &srv),
        Some(0.0),
        "{body}"
    );
    assert_eq!(
        value(&s, "barman_cloud_backups_restorable", &srv),
        value(&s, "barman_cloud_backups", &[srv[0], srv[1], ("status", "done")])
    );
    // 10,000+ keys take more than ten listing pages of 1,000.
    let lists = value(
        &s,
        "barman_cloud_s3_requests_total",
        &[("target", "junk"), ("operation", "ListObjectsV2")],
    )
    .unwrap();
    assert!(lists >= 11.0, "{lists} listings");
    exporter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn odd_characters_in_server_backup_and_wal_names() {
    let sc = Scenario::load();
    let client = sc.s3_client().await;
    // The destination path itself has a space, '+', '%' and unicode.
    let root = "hostile/odd dest+%é/";
    let real = real_backup_info(&sc, &client).await;
    let servers = ["pg main", "pg+plus", "pg-ünïcødé", "pg%41%2F", "pg+ +%20"];
    let ids = ["2026 01+%é", "20260101T000000", "id%2Fslash", "ünï", "a+b"];
    delete_where(&client, &sc.bucket, root, |_| true).await;
    for (server, id) in servers.iter().zip(ids) {
        let p = format!("{root}{server}/");
        put(
            &client,
            &sc.bucket,
            &format!("{p}base/{id}/backup.info"),
            real.clone().into_bytes(),
        )
        .await;
        put(&client, &sc.bucket, &format!("{p}base/{id}/data.tar"), vec![0; 10]).await;
        put(
            &client,
            &sc.bucket,
            &format!("{p}wals/0000000100000000/000000010000000000000004.gz"),
            vec![1; 100],
        )
        .await;
        put(
            &client,
            &sc.bucket,
            &format!("{p}wals/0000000100000000/junk name+%ü.gz"),
            vec![2; 7],
        )
        .await;
        put(&client, &sc.bucket, &format!("{p}wals/ a b/%41+.partial"), vec![3; 5]).await;
    }
    let exporter = Exporter::start(|dir| {
        config_yaml(
            &sc,
            dir,
            &[("odd", &format!("s3://{}/{}", sc.bucket, root.trim_end_matches('/')))],
        )
    })
    .await;
    exporter.wait_ready(Duration::from_secs(60)).await;
    let (_, body) = exporter.get("/metrics").await;
    let s = samples(&body);
    assert_eq!(
        value(&s, "barman_cloud_collector_up", &[("collector", "s3")]),
        Some(1.0)
    );
    let seen: BTreeSet<&str> = s
        .iter()
        .filter(|x| x.name == "barman_cloud_backups")
        .map(|x| x.labels["server"].as_str())
        .collect();
    assert_eq!(seen, servers.iter().copied().collect::<BTreeSet<_>>(), "{body}");
    for server in servers {
        let l = |k: &'static str, v: &'static str| [("target", "odd"), ("server", server), (k, v)];
        let srv = [("target", "odd"), ("server", server)];
        assert_eq!(
            value(&s, "barman_cloud_backups", &l("status", "done")),
            Some(1.0),
            "{server}"
        );
        assert_eq!(value(&s, "barman_cloud_backups", &l("status", "unreadable")), Some(0.0));
        assert_eq!(value(&s, "barman_cloud_base_objects", &srv), Some(2.0));
        assert_eq!(
            value(&s, "barman_cloud_base_bytes", &srv),
            Some((real.len() + 10) as f64)
        );
        assert_eq!(value(&s, "barman_cloud_wal_objects", &l("kind", "segment")), Some(1.0));
        assert_eq!(value(&s, "barman_cloud_wal_bytes", &l("kind", "segment")), Some(100.0));
        assert_eq!(value(&s, "barman_cloud_wal_objects", &l("kind", "other")), Some(2.0));
        assert_eq!(value(&s, "barman_cloud_wal_bytes", &l("kind", "other")), Some(12.0));
    }
    let (_, json) = exporter.get("/api/status").await;
    let status: Value = serde_json::from_str(&json).unwrap();
    for (server, id) in servers.iter().zip(ids) {
        let b = backups_of(&status, "odd", server);
        assert_eq!(b.keys().collect::<Vec<_>>(), vec![id], "{server}");
        assert_eq!(b[id].0, "DONE");
    }
    assert_eq!(
        value(&s, "barman_cloud_storage_objects", &[("target", "odd")]),
        Some(25.0)
    );
    exporter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn a_segment_stored_both_plain_and_gzipped_counts_twice() {
    let sc = Scenario::load();
    let client = sc.s3_client().await;
    let root = "hostile/both/";
    let server = sc.servers[0].clone();
    delete_where(&client, &sc.bucket, root, |_| true).await;
    copy_server(&sc, &server, root, |_| false, |_, t| t).await;
    let wals = format!("{root}{server}/wals/");
    let copied = list(&client, &sc.bucket, &wals).await;
    let gz = copied
        .keys()
        .find(|k| real_kind(&k[wals.len()..]) == "segment" && k.ends_with(".gz"))
        .expect("a gzipped segment")
        .clone();
    let mut plain = Vec::new();
    std::io::copy(
        &mut flate2::read::GzDecoder::new(get(&client, &sc.bucket, &gz).await.as_slice()),
        &mut plain,
    )
    .unwrap();
    assert_eq!(plain.len(), 16 * MIB, "a whole segment");
    let bare = gz.strip_suffix(".gz").unwrap().to_string();
    put(&client, &sc.bucket, &bare, plain).await;
    let listing = list(&client, &sc.bucket, &wals).await;
    let segs: Vec<(&String, &i64)> = listing
        .iter()
        .filter(|(k, _)| real_kind(&k[wals.len()..]) == "segment")
        .collect();

    let dest = format!("s3://{}/{}", sc.bucket, root.trim_end_matches('/'));
    let exporter = Exporter::start(|dir| config_yaml(&sc, dir, &[("both", &dest)])).await;
    exporter.wait_ready(Duration::from_secs(60)).await;
    let (_, body) = exporter.get("/metrics").await;
    let s = samples(&body);
    let srv = [("target", "both"), ("server", server.as_str())];
    let seg = [srv[0], srv[1], ("kind", "segment")];
    assert_eq!(value(&s, "barman_cloud_wal_objects", &seg), Some(segs.len() as f64));
    assert_eq!(
        value(&s, "barman_cloud_wal_bytes", &seg),
        Some(segs.iter().map(|(_, sz)| **sz).sum::<i64>() as f64)
    );
    // One segment, two objects: continuity is unchanged.
    assert_eq!(
        value(&s, "barman_cloud_wal_missing_segments", &srv),
        Some(0.0),
        "{body}"
    );
    assert_eq!(
        value(&s, "barman_cloud_backups_restorable", &srv),
        value(&s, "barman_cloud_backups", &[srv[0], srv[1], ("status", "done")])
    );
    exporter.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn empty_bucket_missing_path_and_missing_bucket() {
    let sc = Scenario::load();
    let client = sc.s3_client().await;
    let empty = "hostile-empty";
    if let Err(e) = client.create_bucket().bucket(empty).send().await {
        let code = aws_sdk_s3::error::ProvideErrorMetadata::code(&e).map(str::to_string);
        assert!(
            matches!(code.as_deref(), Some("BucketAlreadyOwnedByYou" | "BucketAlreadyExists")),
            "CreateBucket: {e:?}"
        );
    }
    assert!(list(&client, empty, "").await.is_empty(), "{empty} must stay empty");
    let missing_path = format!("s3://{}/hostile/does/not/exist", sc.bucket);
    let exporter = Exporter::start(|dir| {
        config_yaml(
            &sc,
            dir,
            &[
                ("empty", "s3://hostile-empty"),
                ("nopath", &missing_path),
                ("nobucket", "s3://hostile-no-such-bucket/x"),
            ],
        )
    })
    .await;
    exporter.wait_ready(Duration::from_secs(60)).await;
    let (_, body) = exporter.get("/metrics").await;
    let s = samples(&body);
    let of = |target: &str| -> Vec<&Sample> {
        s.iter()
            .filter(|x| x.labels.get("target").map(String::as_str) == Some(target))
            .collect()
    };
    for target in ["empty", "nopath"] {
        let t = [("target", target)];
        let up = [("target", target), ("collector", "s3")];
        assert_eq!(value(&s, "barman_cloud_collector_up", &up), Some(1.0), "{target}");
        assert_eq!(value(&s, "barman_cloud_storage_objects", &t), Some(0.0));
        assert_eq!(value(&s, "barman_cloud_storage_bytes", &t), Some(0.0));
        assert_eq!(value(&s, "barman_cloud_orphan_servers", &t), Some(0.0));
        assert!(
            of(target).iter().all(|x| !x.labels.contains_key("server")),
            "{target}: no server series"
        );
    }
    let up = [("target", "nobucket"), ("collector", "s3")];
    assert_eq!(value(&s, "barman_cloud_collector_up", &up), Some(0.0));
    assert_eq!(
        value(
            &s,
            "barman_cloud_collector_errors_total",
            &[up[0], up[1], ("reason", "no_such_bucket")]
        ),
        Some(1.0),
        "{body}"
    );
    let (_, json) = exporter.get("/api/status").await;
    let status: Value = serde_json::from_str(&json).unwrap();
    let t = status["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "nobucket")
        .unwrap();
    let err = t["s3"]["last_error"].as_str().unwrap();
    assert!(err.contains("hostile-no-such-bucket"), "{err}");
    exporter.stop().await;
}

/// Runs the real binary; returns (exit code, stdout, stderr).
fn run_bin(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
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

#[test]
fn invalid_config_fails_check_config_and_daemon_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let good_target = "{name: a, destination_path: 's3://b/p'}";
    let t = |extra: &str| format!("targets: [{{name: a, destination_path: 's3://b', {extra}}}]");
    let g = |top: &str| format!("{top}\ntargets: [{good_target}]");
    // (what is wrong, YAML, text the error must contain)
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "interval zero",
            g("interval: 0s"),
            "interval: must be greater than zero",
        ),
        (
            "interval text",
            g("interval: soon"),
            r#"invalid duration "soon": expected number at 0 (use e.g. 30s, 5m, 1h) for key "default.interval""#,
        ),
        (
            "interval negative",
            g("interval: -5"),
            r#"invalid duration -5: must not be negative (use e.g. 30s, 5m, 1h) for key "default.interval""#,
        ),
        ("timeout zero", g("timeout: 0"), "timeout: must be greater than zero"),
        (
            "timeout text",
            g("timeout: 2 minutes please"),
            r#"invalid duration "2 minutes please": expected number at 10 (use e.g. 30s, 5m, 1h) for key "default.timeout""#,
        ),
        (
            "timeout not a duration",
            g("timeout: 1.5"),
            r#"expected a duration such as 30s, 5m or 1h, or a whole number of seconds for key "default.timeout""#,
        ),
        (
            "full_walk_interval text",
            g("full_walk_interval: daily"),
            r#"invalid duration "daily": expected number at 0 (use e.g. 30s, 5m, 1h) for key "default.full_walk_interval""#,
        ),
        (
            "full_walk_interval negative",
            g("full_walk_interval: -1"),
            r#"invalid duration -1: must not be negative (use e.g. 30s, 5m, 1h) for key "default.full_walk_interval""#,
        ),
        (
            "list_concurrency zero",
            g("list_concurrency: 0"),
            "list_concurrency: must be between 1 and 256, got 0",
        ),
        (
            "list_concurrency too high",
            g("list_concurrency: 300"),
            "list_concurrency: must be between 1 and 256, got 300",
        ),
        (
            "list_concurrency text",
            g("list_concurrency: many"),
            r#"invalid type: found string "many", expected usize for key "default.list_concurrency""#,
        ),
        (
            "ca_file missing",
            t("ca_file: /nonexistent/ca.pem"),
            "targets[0].ca_file: /nonexistent/ca.pem",
        ),
        ("no targets key", "interval: 1m\n".into(), "missing field `targets`"),
        (
            "empty targets",
            "targets: []\n".into(),
            "targets: at least one target is required",
        ),
        (
            "targets not a list",
            "targets: {name: a}\n".into(),
            r#"invalid type: found map, expected a sequence for key "default.targets""#,
        ),
        (
            "unknown top-level key",
            g("intervall: 1m"),
            r#"unknown field: found `intervall`"#,
        ),
        (
            "unknown target key",
            t("bucket: x"),
            r#"for key "default.targets.0.bucket""#,
        ),
        (
            "missing name",
            "targets: [{destination_path: 's3://b'}]".into(),
            r#"missing field `name` for key "default.targets.0""#,
        ),
        (
            "empty name",
            "targets: [{name: ' ', destination_path: 's3://b'}]".into(),
            "targets[0].name: must not be empty",
        ),
        (
            "duplicate name",
            format!("targets: [{good_target}, {good_target}]"),
            r#"targets[1].name: duplicate target name "a""#,
        ),
        (
            "missing destination",
            "targets: [{name: a}]".into(),
            r#"missing field `destination_path` for key "default.targets.0""#,
        ),
        (
            "destination not s3",
            "targets: [{name: a, destination_path: 'http://b/p'}]".into(),
            r#"targets[0].destination_path: "http://b/p" is not of the form s3://bucket[/path]"#,
        ),
        (
            "destination without bucket",
            "targets: [{name: a, destination_path: 's3://'}]".into(),
            r#"targets[0].destination_path: "s3://" is not of the form s3://bucket[/path]"#,
        ),
        (
            "bad label name",
            t("labels: {'bad-name': x}"),
            "targets[0].labels.bad-name: not a valid Prometheus label name",
        ),
        (
            "reserved label",
            t("labels: {server: x}"),
            "targets[0].labels.server: reserved",
        ),
        (
            "labels not a map",
            t("labels: [x]"),
            r#"expected a map for key "default.targets.0.labels""#,
        ),
        (
            "endpoint scheme",
            t("endpoint_url: 'ftp://h'"),
            r#"targets[0].endpoint_url: "ftp://h" must start with http:// or https://"#,
        ),
        (
            "region not a string",
            t("region: [eu]"),
            r#"expected a string for key "default.targets.0.region""#,
        ),
        (
            "force_path_style not a bool",
            t("force_path_style: maybe"),
            r#"found string "maybe", expected a boolean for key "default.targets.0.force_path_style""#,
        ),
        (
            "servers with a slash",
            t("servers: ['a/b']"),
            "targets[0].servers: a serverName must be non-empty and contain no '/'",
        ),
        (
            "servers empty name",
            t("servers: ['']"),
            "targets[0].servers: a serverName must be non-empty and contain no '/'",
        ),
        (
            "access key without secret",
            t("access_key_id_file: /k"),
            "targets[0]: access_key_id_file and secret_access_key_file must be given together",
        ),
        (
            "secret without access key",
            t("secret_access_key_file: /s"),
            "targets[0]: access_key_id_file and secret_access_key_file must be given together",
        ),
        (
            "session token not a path",
            t("session_token_file: {x: 1}"),
            r#"expected path string for key "default.targets.0.session_token_file""#,
        ),
        (
            "retention policy",
            t("retention_policy: 3 days"),
            r#"targets[0].retention_policy: "3 days" must match ^[1-9][0-9]*[dwm]$"#,
        ),
        (
            "orphan_after",
            t("orphan_after: forever"),
            r#"invalid duration "forever": expected number at 0 (use e.g. 30s, 5m, 1h) for key "default.targets.0.orphan_after""#,
        ),
        (
            "stuck_after",
            t("stuck_after: '1 fortnight'"),
            r#"unknown time unit "fortnight""#,
        ),
        (
            "postgres without url",
            t("postgres: {server: x}"),
            "targets[0].postgres: one of url or url_file is required",
        ),
        (
            "postgres url and url_file",
            t("postgres: {url: 'postgresql://h/db', url_file: /u}"),
            "targets[0].postgres: url and url_file are mutually exclusive",
        ),
        (
            "postgres bad sslmode",
            t("postgres: {url: 'postgresql://h/db?sslmode=bogus'}"),
            r#"targets[0].postgres.url: invalid sslmode "bogus""#,
        ),
        (
            "postgres unknown key",
            t("postgres: {host: h}"),
            r#"unknown field: found `host`, expected `one of `url`, `url_file`, `server`` for key "default.targets.0.postgres.host""#,
        ),
        (
            "yaml syntax",
            "targets: [{name: a,\n  - ]".into(),
            "did not find expected node content at line 2 column 3",
        ),
        (
            "not a mapping",
            "- just\n- a list\n".into(),
            "invalid type: sequence, expected a map",
        ),
    ];
    let mut failures = Vec::new();
    for (i, (what, yaml, needle)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("c{i}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        let p = path.to_str().unwrap();
        let (code, out, err) = run_bin(&["--config.file", p, "check-config"], &[]);
        if code == 0 || !err.contains(needle) || !out.is_empty() {
            failures.push(format!(
                "check-config, {what}: exit {code}, stdout {out:?}, stderr {err:?}"
            ));
        }
        // The daemon refuses to start with the same message, before listening.
        let (code, _, err) = run_bin(&["--config.file", p, "--web.listen-address", "127.0.0.1:0"], &[]);
        if code == 0 || !err.contains(needle) {
            failures.push(format!("daemon, {what}: exit {code}, stderr {err:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // Environment overrides are validated the same way and named.
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, format!("targets: [{good_target}]\n")).unwrap();
    let g = good.to_str().unwrap();
    let (code, out, err) = run_bin(&["--config.file", g, "check-config"], &[]);
    assert_eq!(
        (code, out.trim()),
        (0, format!("{g}: valid, 1 target(s)").as_str()),
        "{err}"
    );
    let (code, _, err) = run_bin(
        &["--config.file", g, "check-config"],
        &[("BARMAN_CLOUD_EXPORTER_INTERVAL", "bogus")],
    );
    // figment names the variable: key "INTERVAL" in `BARMAN_CLOUD_EXPORTER_` environment variable(s).
    assert!(
        code != 0 && err.contains("\"INTERVAL\"") && err.contains("BARMAN_CLOUD_EXPORTER_") && err.contains("bogus"),
        "{err}"
    );
    // A missing file and a directory instead of a file.
    for bad in ["/nonexistent/config.yaml", dir.path().to_str().unwrap()] {
        let (code, _, err) = run_bin(&["--config.file", bad, "check-config"], &[]);
        assert!(
            code != 0 && err.contains(bad) && err.contains("not found or not a file"),
            "{err}"
        );
    }
}

/// A compression bomb of `codec`: `size` bytes of zeros compressed, written
/// through a streaming encoder so the test never holds the content.
fn bomb(codec: &str, size: usize) -> Vec<u8> {
    let zeros = vec![0u8; MIB];
    let feed = |w: &mut dyn Write| {
        for _ in 0..size / MIB {
            w.write_all(&zeros).unwrap();
        }
    };
    match codec {
        "gz" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            feed(&mut e);
            e.finish().unwrap()
        }
        "bz2" => {
            let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::best());
            feed(&mut e);
            e.finish().unwrap()
        }
        "xz" => {
            let mut e = lzma_rust2::XzWriter::new(Vec::new(), lzma_rust2::XzOptions::with_preset(6)).unwrap();
            feed(&mut e);
            e.finish().unwrap()
        }
        "snappy" => {
            let mut e = snap::write::FrameEncoder::new(Vec::new());
            feed(&mut e);
            e.into_inner().unwrap()
        }
        "zst" => {
            let mut out = Vec::new();
            let mut e = ruzstd::encoding::FrameCompressor::new(ruzstd::encoding::CompressionLevel::Fastest);
            let reader = std::io::Read::take(std::io::repeat(0), size as u64);
            e.set_source(reader);
            e.set_drain(&mut out);
            e.compress();
            out
        }
        "lz4" => {
            let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
            feed(&mut e);
            e.finish().unwrap()
        }
        other => panic!("no codec {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn compression_bombs_under_wals_are_unreadable_with_bounded_memory() {
    let sc = Scenario::load();
    let client = sc.s3_client().await;
    let root = "hostile/bombs/";
    let wals = format!("{root}pg-bomb/wals/");
    // Built once (first run ~1 min), reused by reruns.
    // One timeline per codec (a server keeps one .history per timeline).
    // Each bomb is far larger than 64 MiB once decompressed where the format
    // allows it within the 1 MiB fetch bound; snappy's ratio is at most ~21:1,
    // so its bomb is 16 MiB, still 16 times the 1 MiB decompression bound.
    let cases = [
        ("gz", 0x11, 512 * MIB),
        ("bz2", 0x12, 1024 * MIB),
        ("xz", 0x13, 256 * MIB),
        ("snappy", 0x14, 16 * MIB),
        ("zst", 0x15, 1024 * MIB),
        ("lz4", 0x16, 128 * MIB),
    ];
    let present = list(&client, &sc.bucket, root).await;
    for (codec, tli, size) in cases {
        let key = format!("{wals}{tli:08X}.history.{codec}");
        if present.contains_key(&key) {
            continue;
        }
        let started = Instant::now();
        let body = bomb(codec, size);
        eprintln!(
            "{codec} bomb: {} MiB of zeros in {} bytes ({:?})",
            size / MIB,
            body.len(),
            started.elapsed()
        );
        assert!(
            body.len() < MIB,
            "{codec}: {} bytes is over the fetch bound",
            body.len()
        );
        put(&client, &sc.bucket, &key, body).await;
    }
    put(
        &client,
        &sc.bucket,
        &format!("{wals}0000000100000000/000000010000000000000001"),
        b"segment".to_vec(),
    )
    .await;

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    let dest = format!("s3://{}/{}", sc.bucket, root.trim_end_matches('/'));
    std::fs::write(&config, config_yaml(&sc, dir.path(), &[("bombs", &dest)])).unwrap();
    let mut daemon = Daemon::start(&config);
    daemon.wait_ready(Duration::from_secs(120)).await;
    let body = daemon.get("/metrics").await;
    let peak_kib = daemon.proc_kib("VmHWM:");
    let s = samples(&body);
    assert_eq!(
        value(
            &s,
            "barman_cloud_collector_up",
            &[("target", "bombs"), ("collector", "s3")]
        ),
        Some(1.0),
        "{body}"
    );
    let status: Value = serde_json::from_str(&daemon.get("/api/status").await).unwrap();
    let target = status["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "bombs")
        .unwrap();
    let server = target["s3"]["data"]["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "pg-bomb")
        .unwrap_or_else(|| panic!("no pg-bomb in {target}"));
    assert_eq!(server["histories_unreadable"], cases.len(), "{server}");
    eprintln!("daemon peak RSS (VmHWM) after walking the bombs: {peak_kib} KiB");
    assert!(
        peak_kib < 64 * 1024,
        "peak RSS {peak_kib} KiB: a bomb was decompressed past its bound"
    );
}
