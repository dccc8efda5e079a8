//! Compression bombs under `wals/` (one per codec barman writes or reads):
//! each is counted as unreadable while the daemon's peak memory stays under
//! 64 MiB and the target still publishes. Objects are written under the
//! test's own prefix of the scenario's bucket.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::hostile::*;
use common::{Scenario, samples, value};
use serde_json::Value;

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
