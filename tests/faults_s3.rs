//! S3 faults against the real SeaweedFS, injected by a proxy on loopback
//! (`tests/common/fault_proxy.rs`). Two targets: `proxied` reads a copy of a
//! server through the proxy, `direct` the scenario straight from SeaweedFS. For
//! each fault: no panic; `proxied` keeps its last good values with
//! `barman_cloud_collector_up{collector="s3"} 0` and the expected `reason`;
//! the hard `timeout` ends every request the proxy holds; `direct` keeps its
//! schedule; `/metrics` answers within 100 ms; after the fault the next cycle
//! recovers without a restart, with the same values.
//!
//! The copy has more than 1,000 objects directly under the destination path,
//! so the listing of the destination needs two pages (SeaweedFS's page is
//! 1,000 keys): a reset on page 2 must not publish a partial count.
//!
//! SeaweedFS stopped and restarted is `tests/s3_outage.rs` (disruptive).

mod common;

use std::time::{Duration, Instant};

use common::fault_proxy::{FaultProxy, Mode};
use common::faults::{Row, Scraper, count_task_panics, errors, last_success, task_panics, unix_now, up, values};
use common::{Exporter, Scenario};
use futures_util::StreamExt;

const INTERVAL: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_secs(5);
/// Objects directly under the fixture's destination path (two listing pages).
const PADDING: usize = 1100;
/// The fixture: a copy of the scenario's `pg-old` plus `PADDING` loose objects.
const FIXTURE: &str = "faults/fixture-v1/";

/// Creates the fixture once (idempotent: complete copies are left alone).
async fn fixture(sc: &Scenario) -> String {
    let listed = sc.list(FIXTURE).await;
    let server_objects = sc.list(&sc.server_prefix("pg-old")).await.len();
    if listed.len() != PADDING + server_objects {
        common::copy_server(sc, "pg-old", FIXTURE, |_| false, |_, s| s).await;
        let client = sc.s3_client().await;
        futures_util::stream::iter(0..PADDING)
            .map(|i| {
                let client = client.clone();
                async move {
                    client
                        .put_object()
                        .bucket(&sc.bucket)
                        .key(format!("{FIXTURE}loose-{i:05}"))
                        .body(format!("padding {i}\n").into_bytes().into())
                        .send()
                        .await
                        .unwrap();
                }
            })
            .buffer_unordered(16)
            .collect::<Vec<()>>()
            .await;
        assert_eq!(sc.list(FIXTURE).await.len(), PADDING + server_objects);
    }
    format!("s3://{}/{}", sc.bucket, FIXTURE.trim_end_matches('/'))
}

async fn start(sc: &Scenario, proxy: &FaultProxy) -> Exporter {
    let destination = fixture(sc).await;
    Exporter::start(|dir| {
        std::fs::write(dir.join("ak"), &sc.s3.access_key).unwrap();
        std::fs::write(dir.join("sk"), &sc.s3.secret_key).unwrap();
        let target = |name: &str, endpoint: &str, destination: &str, server: &str| {
            format!(
                r#"  - name: {name}
    destination_path: "{destination}"
    endpoint_url: "{endpoint}"
    region: "{region}"
    force_path_style: true
    servers: ["{server}"]
    access_key_id_file: "{d}/ak"
    secret_access_key_file: "{d}/sk"
"#,
                region = sc.s3.region,
                d = dir.display()
            )
        };
        format!(
            "interval: {}s\ntimeout: {}s\ntargets:\n{}{}",
            INTERVAL.as_secs(),
            TIMEOUT.as_secs(),
            target("proxied", &proxy.url, &destination, "pg-old"),
            target("direct", &sc.s3.endpoint, &sc.destination_path, &sc.servers[0])
        )
    })
    .await
}

const P: &str = "proxied";
const D: &str = "direct";

/// One fault: switch it on, watch it be detected and survived, switch it off,
/// watch the recovery. Returns the report row.
async fn fault(
    proxy: &FaultProxy,
    scraper: &mut Scraper<'_>,
    baseline: &std::collections::BTreeMap<String, f64>,
    name: &str,
    mode: Mode,
    reason: &str,
) -> Row {
    let all = |_: &str| true;
    let s = scraper.scrape().await;
    assert_eq!(up(&s, P, "s3"), Some(1.0), "{name}: starts from a good cycle");
    let errors_before = errors(&s, P, "s3");
    let direct_before = last_success(&s, D, "s3").unwrap();
    scraper.take_max();
    let first_request = proxy.requests().len();

    // On: detected with the expected reason; last good values stay throughout.
    proxy.set_mode(mode.clone());
    let on = Instant::now();
    let check = |s: &[common::Sample]| {
        assert_eq!(&values(s, P, all), baseline, "{name}: the last good values stay");
        assert_eq!(up(s, D, "s3"), Some(1.0), "{name}: the direct target is unaffected");
    };
    let detected_at = scraper
        .until(TIMEOUT + INTERVAL * 4, &format!("{name} detected"), check, |s| {
            errors(s, P, "s3").values().sum::<f64>() > errors_before.values().sum::<f64>()
        })
        .await;
    let detected = on.elapsed();
    assert_eq!(up(&detected_at, P, "s3"), Some(0.0), "{name}: collector_up drops to 0");
    let mut expected = errors_before.clone();
    *expected.entry(reason.to_string()).or_default() += 1.0;
    let message = scraper.last_error(P, "s3").await;
    assert_eq!(
        errors(&detected_at, P, "s3"),
        expected,
        "{name}: one error, reason {reason}: {message}"
    );
    // A few more failed cycles: still 0, still the last good values, only this reason counts.
    scraper
        .hold(Duration::from_millis(1500), |s| {
            check(s);
            assert_eq!(up(s, P, "s3"), Some(0.0));
            for (r, n) in errors(s, P, "s3") {
                assert!(
                    r == reason || errors_before.get(&r) == Some(&n),
                    "{name}: unexpected reason {r}"
                );
            }
        })
        .await;
    let s = scraper.scrape().await;
    let direct_during = last_success(&s, D, "s3").unwrap();
    // It collected during the fault and its last success is at most ~2 intervals old.
    assert!(
        direct_during > direct_before && unix_now() - direct_during < 2.5 * INTERVAL.as_secs_f64(),
        "{name}: the direct target kept its schedule ({direct_before} → {direct_during})"
    );

    // Off: the next good cycle recovers, without a restart, with the same values.
    proxy.set_mode(Mode::Pass);
    let off = Instant::now();
    let off_unix = unix_now();
    let recovered_at = scraper
        .until(TIMEOUT + INTERVAL * 4, &format!("{name} recovered"), check, |s| {
            up(s, P, "s3") == Some(1.0) && last_success(s, P, "s3").is_some_and(|t| t > off_unix)
        })
        .await;
    let recovered = off.elapsed();
    assert_eq!(
        &values(&recovered_at, P, all),
        baseline,
        "{name}: same values after recovery"
    );
    let (max_scrape, p95_scrape, scrapes) = scraper.take_max();

    // The deadline ended every request the fault held: none outlived timeout + 1 s.
    let faulted: Vec<_> = proxy.requests()[first_request..]
        .iter()
        .filter(|r| r.mode == mode)
        .filter(|r| {
            !matches!(mode, Mode::ResetOnContinuation | Mode::CutBodyOnContinuation)
                || r.query.contains("continuation-token=")
        })
        .cloned()
        .collect();
    assert!(!faulted.is_empty(), "{name}: the fault was exercised");
    let longest = faulted
        .iter()
        .map(|r| {
            let ended = r
                .ended
                .unwrap_or_else(|| panic!("{name}: request {} {}?{} still open", r.method, r.path, r.query));
            ended - r.at
        })
        .max()
        .unwrap();
    assert!(
        longest <= TIMEOUT + Duration::from_secs(1),
        "{name}: a request lived {longest:?}"
    );
    Row {
        fault: name.to_string(),
        reason: reason.to_string(),
        detected,
        recovered,
        max_scrape,
        p95_scrape,
        scrapes,
        note: format!(
            "{} faulted requests, longest held {:.1} s; error: {}",
            faulted.len(),
            longest.as_secs_f64(),
            message.chars().take(160).collect::<String>()
        ),
    }
}

/// Starts the proxy and the exporter and waits for a good first cycle of both
/// targets; returns the proxied target's values as the baseline.
async fn setup(sc: &Scenario) -> (FaultProxy, Exporter) {
    count_task_panics();
    let proxy = FaultProxy::start(&sc.s3.endpoint).await;
    let exporter = start(sc, &proxy).await;
    exporter.wait_ready(Duration::from_secs(30)).await;
    (proxy, exporter)
}

async fn run(cases: Vec<(&str, Mode, &str)>) {
    let sc = Scenario::load();
    let (proxy, exporter) = setup(&sc).await;
    let mut scraper = Scraper::new(&exporter);
    let s = scraper.scrape().await;
    assert_eq!(up(&s, P, "s3"), Some(1.0));
    let baseline = values(&s, P, |_| true);
    let objects = s
        .iter()
        .find(|x| x.name == "barman_cloud_storage_objects" && x.labels["target"] == P)
        .unwrap()
        .value;
    assert!(
        objects > PADDING as f64,
        "{objects} objects: the listing needs two pages"
    );
    let mut rows = Vec::new();
    for (name, mode, reason) in cases {
        rows.push(fault(&proxy, &mut scraper, &baseline, name, mode, reason).await);
    }
    assert_eq!(task_panics(), 0, "no panic in the exporter's tasks");
    assert!(!exporter.handle.is_finished());
    exporter.stop().await;
    println!("| fault | reason | detected after | recovered | slowest /metrics | notes |");
    for r in rows {
        r.print();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn s3_error_answers_keep_the_last_good_values() {
    run(vec![
        ("HTTP 500 InternalError", Mode::InternalError, "server_error"),
        ("HTTP 503 SlowDown", Mode::SlowDown, "throttled"),
        ("HTTP 403 AccessDenied", Mode::AccessDenied, "access_denied"),
        ("HTTP 404 NoSuchBucket", Mode::NoSuchBucket, "no_such_bucket"),
        (
            "HTTP 301 PermanentRedirect (x-amz-bucket-region: eu-west-1)",
            Mode::Redirect("eu-west-1".into()),
            "client_error",
        ),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn s3_broken_transport_keeps_the_last_good_values() {
    run(vec![
        (
            "connection reset on listing page 2",
            Mode::ResetOnContinuation,
            "connect",
        ),
        ("listing page 2 cut mid-body", Mode::CutBodyOnContinuation, "connect"),
        ("response that never comes", Mode::Hang, "timeout"),
        (
            "slow drip (1 byte / 100 ms)",
            Mode::Drip(Duration::from_millis(100)),
            "timeout",
        ),
    ])
    .await;
}
