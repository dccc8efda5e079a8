//! The real binary against the real scenario: S3 stops mid-run and comes back.
//! The exporter must keep serving the last good values, mark S3 down, count
//! the error, recover without a restart, and stop cleanly on SIGTERM.
//!
//! This test stops the scenario's SeaweedFS, so `scripts/test.sh` runs it on
//! its own after the other integration tests.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Scenario, samples, value};

const BIN: &str = env!("CARGO_BIN_EXE_barman-cloud-exporter");

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn metrics(base: &str) -> (Duration, Vec<common::Sample>) {
    let start = Instant::now();
    let body = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    (start.elapsed(), samples(&body))
}

async fn wait_for(base: &str, within: Duration, what: &str, cond: impl Fn(&[common::Sample]) -> bool) {
    let start = Instant::now();
    loop {
        if let Ok(resp) = reqwest::get(format!("{base}/metrics")).await
            && let Ok(body) = resp.text().await
            && cond(&samples(&body))
        {
            return;
        }
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn seaweed(sc: &Scenario, action: &str) {
    let status = Command::new("bash")
        .arg(sc.scripts_dir.join("seaweedfs.sh"))
        .arg(action)
        .arg(&sc.s3.dir)
        .status()
        .unwrap();
    assert!(status.success(), "seaweedfs.sh {action} failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn disruptive_s3_outage_keeps_last_good_values_and_recovers() {
    let sc = Scenario::load();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, sc.config_yaml(dir.path(), "1s", "3s", false)).unwrap();
    let log_path = dir.path().join("exporter.log");
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = Running(
        Command::new(BIN)
            .args(["--config.file", config.to_str().unwrap()])
            .args(["--web.listen-address", &format!("127.0.0.1:{port}")])
            .args(["--log.format", "json", "--log.level", "debug"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log_path).unwrap())
            .spawn()
            .unwrap(),
    );
    let t = ("target", "scenario");
    let s3 = ("collector", "s3");
    wait_for(&base, Duration::from_secs(60), "S3 up", |s| {
        value(s, "barman_cloud_collector_up", &[t, s3]) == Some(1.0)
    })
    .await;
    let (_, before) = metrics(&base).await;
    let done = value(&before, "barman_cloud_backups", &[t, ("status", "done")]).unwrap();
    let segments = value(&before, "barman_cloud_wal_objects", &[t, ("kind", "segment")]).unwrap();
    assert!(done >= 1.0);

    seaweed(&sc, "stop");
    let stopped = Instant::now();
    let outage = async {
        wait_for(&base, Duration::from_secs(30), "S3 down", |s| {
            value(s, "barman_cloud_collector_up", &[t, s3]) == Some(0.0)
        })
        .await;
        // keep scraping through a few failed cycles: fast answers, last good values
        let mut slowest = Duration::ZERO;
        while stopped.elapsed() < Duration::from_secs(6) {
            let (took, s) = metrics(&base).await;
            slowest = slowest.max(took);
            assert_eq!(value(&s, "barman_cloud_collector_up", &[t, s3]), Some(0.0));
            assert_eq!(value(&s, "barman_cloud_backups", &[t, ("status", "done")]), Some(done));
            assert_eq!(
                value(&s, "barman_cloud_wal_objects", &[t, ("kind", "segment")]),
                Some(segments)
            );
            let errors: f64 = s
                .iter()
                .filter(|x| x.name == "barman_cloud_collector_errors_total" && x.labels["collector"] == "s3")
                .map(|x| x.value)
                .sum();
            assert!(errors >= 1.0, "S3 errors are counted");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            slowest < Duration::from_millis(500),
            "a scrape took {slowest:?} during the outage"
        );
    };
    let result = futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(outage)).await;
    seaweed(&sc, "start"); // always restart: later tests and `down` need it
    if let Err(panic) = result {
        std::panic::resume_unwind(panic);
    }
    wait_for(&base, Duration::from_secs(60), "S3 recovered", |s| {
        value(s, "barman_cloud_collector_up", &[t, s3]) == Some(1.0)
    })
    .await;
    let (_, after) = metrics(&base).await;
    assert_eq!(
        value(&after, "barman_cloud_backups", &[t, ("status", "done")]),
        Some(done)
    );

    // SIGTERM: graceful stop within a few seconds, exit code 0.
    let pid = child.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let start = Instant::now();
    let code = loop {
        if let Some(code) = child.0.try_wait().unwrap() {
            break code;
        }
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "no exit within 8 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(code.success(), "exit status {code}");
    let logs = std::fs::read_to_string(&log_path).unwrap();
    assert!(logs.contains("keeping the last good values"), "the outage is logged");
    assert!(!logs.contains(&sc.s3.secret_key), "no secret in the logs");
}

#[test]
fn check_config_validates_without_serving() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, "targets: [{name: a, destination_path: 's3://bucket/path'}]\n").unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config.file", good.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid, 1 target"));

    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "interval: 0s\ntargets: [{name: a, destination_path: 'ftp://bucket'}]\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config.file", bad.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("interval: must be greater than zero"), "{err}");
    assert!(err.contains("targets[0].destination_path"), "{err}");

    // Serving with a bad config exits non-zero too, before listening.
    let out = Command::new(BIN)
        .args([
            "--config.file",
            bad.to_str().unwrap(),
            "--web.listen-address",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
}
