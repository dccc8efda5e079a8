//! The fault cases on Azure (Azurite) and GCS (fake-gcs-server): the real
//! binary reads the layouts of `scripts/scenario.sh cloud` through a fault
//! proxy that answers 403, 404, 500, 503, never answers, or cuts a listing
//! mid-body; and a target whose endpoint is down. Each fault is counted
//! under its bounded reason (the same reasons as S3), the last good values
//! stay, and the target recovers when the fault ends.

mod common;

use std::time::{Duration, Instant};

use common::cloud::{Cloud, Kind, origin, via};
use common::fault_proxy::{FaultProxy, Mode};
use common::hostile::Daemon;
use common::{Sample, Scenario, samples, value};

async fn scrape(d: &Daemon) -> Vec<Sample> {
    samples(&d.get("/metrics").await)
}

fn errors(s: &[Sample], target: &str, reason: &str) -> f64 {
    value(
        s,
        "barman_cloud_collector_errors_total",
        &[("target", target), ("collector", "s3"), ("reason", reason)],
    )
    .unwrap_or(0.0)
}

fn up(s: &[Sample], target: &str) -> Option<f64> {
    value(
        s,
        "barman_cloud_collector_up",
        &[("target", target), ("collector", "s3")],
    )
}

async fn until(d: &Daemon, what: &str, within: Duration, ok: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
    let start = Instant::now();
    loop {
        let s = scrape(d).await;
        if ok(&s) {
            return s;
        }
        assert!(start.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn faults(kind: Kind) {
    let sc = Scenario::load();
    let cloud = Cloud::load(&sc);
    let l = cloud.layout(kind).clone();
    let proxy = FaultProxy::start_with(&origin(&l.endpoint), kind == Kind::Gcs).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let t = kind.tool();
    let main = &l.postgres.server;
    let (target, down, env) = match kind {
        Kind::Azure => {
            let key = l
                .key_file
                .as_ref()
                .expect("cloud.json azure.key_file")
                .display()
                .to_string();
            (
                format!(
                    "  - {{name: {t}, destination_path: \"{}\", azure_storage_key_file: \"{key}\"}}\n",
                    via(&l.destination_path, &proxy.url)
                ),
                format!(
                    "  - {{name: down, destination_path: \"{}\", azure_storage_key_file: \"{key}\"}}\n",
                    via(&l.destination_path, &format!("http://127.0.0.1:{closed}"))
                ),
                vec![],
            )
        }
        // One STORAGE_EMULATOR_HOST per process: the endpoint that is down
        // is given as endpoint_url to a second target.
        Kind::Gcs => (
            format!("  - {{name: {t}, destination_path: \"{}\"}}\n", l.destination_path),
            format!(
                "  - {{name: down, destination_path: \"{}\", endpoint_url: \"http://127.0.0.1:{closed}\"}}\n",
                l.destination_path
            ),
            vec![("STORAGE_EMULATOR_HOST", proxy.url.clone())],
        ),
    };
    let cfg = dir.path().join("config.yaml");
    std::fs::write(&cfg, format!("interval: 2s\ntimeout: 6s\ntargets:\n{target}{down}")).unwrap();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut d = Daemon::start_with_env(&cfg, &env);
    d.wait_ready(Duration::from_secs(60)).await;
    let good = until(&d, "first walk", Duration::from_secs(30), |s| up(s, t) == Some(1.0)).await;
    let done = [("target", t), ("server", main.as_str()), ("status", "done")];
    let baseline = value(&good, "barman_cloud_backups", &done);
    assert!(baseline.is_some_and(|n| n >= 2.0), "{t}: {baseline:?}");

    // The endpoint that is down, on the other target.
    let s = until(&d, "endpoint down", Duration::from_secs(30), |s| {
        errors(s, "down", "connect") >= 1.0
    })
    .await;
    assert_eq!(up(&s, "down"), Some(0.0));

    let cases = [
        (Mode::AccessDenied, "access_denied"),
        (Mode::NoSuchBucket, "no_such_bucket"),
        (Mode::InternalError, "server_error"),
        (Mode::SlowDown, "throttled"),
        (Mode::Hang, "timeout"),
        (Mode::CutEveryListing, "connect"),
    ];
    for (mode, reason) in cases {
        let before = errors(&scrape(&d).await, t, reason);
        proxy.set_mode(mode.clone());
        let s = until(&d, &format!("{t} {mode:?}"), Duration::from_secs(40), |s| {
            errors(s, t, reason) > before && up(s, t) == Some(0.0)
        })
        .await;
        assert_eq!(
            value(&s, "barman_cloud_backups", &done),
            baseline,
            "{t} {mode:?}: last good values kept"
        );
        proxy.set_mode(Mode::Pass);
        until(
            &d,
            &format!("{t} recovers from {mode:?}"),
            Duration::from_secs(40),
            |s| up(s, t) == Some(1.0),
        )
        .await;
    }
    assert!(d.child.try_wait().unwrap().is_none(), "the exporter is still running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn azure_faults_are_counted_and_recovered_from() {
    faults(Kind::Azure).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn gcs_faults_are_counted_and_recovered_from() {
    faults(Kind::Gcs).await;
}
