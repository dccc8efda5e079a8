//! Hostile and malformed input against the real SeaweedFS of the scenario:
//! malformed and oversized `backup.info` files (with the daemon's peak memory),
//! odd characters in object names, 10,000 junk keys under `wals/`, `X` and
//! `X.gz` side by side, an empty bucket and a destination that does not exist.
//! Compression bombs are in `compression_bombs.rs`, an invalid configuration
//! for each field in `config_errors.rs`.
//!
//! Every object is written under the test's own prefix `hostile/<case>/` of
//! the scenario's bucket (or a bucket of its own), never under another prefix.
//! Setup is idempotent: reruns rewrite the small objects and reuse the big ones.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::{Duration, Instant};

use aws_sdk_s3::primitives::ByteStream;
use common::hostile::*;
use common::{Exporter, Sample, Scenario, copy_server, samples, value};
use futures_util::{StreamExt, TryStreamExt, stream};
use serde_json::Value;

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
