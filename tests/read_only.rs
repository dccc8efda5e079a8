//! Read-only by proof: every request the exporter sends to S3 during a full
//! cycle and a second (steady-state) cycle goes through a recording proxy on
//! loopback to the real SeaweedFS; all of them must be reads (GET or HEAD on
//! list/get/head operations), with the read-only credentials, and their
//! number must match the exporter's own `barman_cloud_s3_requests_total`.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::fault_proxy::{FaultProxy, Recorded};
use common::{Exporter, Scenario, samples, value};

/// Query parameters that name a write (or a sub-resource write) in the S3 API.
const WRITE_SUBRESOURCES: &[&str] = &[
    "delete",
    "uploads",
    "uploadId",
    "partNumber",
    "tagging",
    "acl",
    "policy",
    "lifecycle",
    "versioning",
    "restore",
    "retention",
    "legal-hold",
    "cors",
    "encryption",
    "replication",
    "website",
    "notification",
    "object-lock",
    "select",
];

/// The S3 operation a recorded request is, from its method and query.
fn operation(r: &Recorded) -> &'static str {
    let params: Vec<&str> = r.query.split('&').map(|p| p.split('=').next().unwrap()).collect();
    match r.method.as_str() {
        "GET" if params.contains(&"list-type") => "ListObjectsV2",
        "GET" if params.contains(&"location") => "GetBucketLocation",
        "GET" if r.path.trim_matches('/').is_empty() => "ListBuckets",
        "GET" if r.path.trim_start_matches('/').contains('/') => "GetObject",
        "GET" => "ListObjects",
        "HEAD" if r.path.trim_start_matches('/').contains('/') => "HeadObject",
        "HEAD" => "HeadBucket",
        _ => "write",
    }
}

fn last_success(body: &str) -> Option<f64> {
    value(
        &samples(body),
        "barman_cloud_collector_last_success_timestamp_seconds",
        &[("target", "scenario"), ("collector", "s3")],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn every_s3_request_is_a_read() {
    let sc = Scenario::load();
    let proxy = FaultProxy::start(&sc.s3.endpoint).await;
    let (ak, sk) = (sc.s3.ro_access_key.clone(), sc.s3.ro_secret_key.clone());
    // The whole destination (every server prefix, orphans included) every 3 s.
    let exporter = Exporter::start(|dir| {
        sc.config_yaml_with_keys(dir, "3s", "30s", false, &ak, &sk)
            .replace(&sc.s3.endpoint, &proxy.url)
    })
    .await;
    exporter.wait_ready(Duration::from_secs(30)).await;
    let (_, first) = exporter.get("/metrics").await;
    let first_success = last_success(&first).expect("first S3 collection succeeded");
    let after_first = proxy.requests().len();
    // Wait for the second cycle to publish, then read both counts at once (the
    // third cycle starts 3 s after the second did).
    let start = Instant::now();
    let body = loop {
        let (_, body) = exporter.get("/metrics").await;
        if last_success(&body).is_some_and(|t| t > first_success) {
            break body;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "no second cycle: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let recorded = proxy.requests();
    exporter.stop().await;

    assert!(
        after_first > 0 && recorded.len() > after_first,
        "two cycles went through the proxy"
    );
    let mut by_op: BTreeMap<&str, u64> = BTreeMap::new();
    for r in &recorded {
        assert!(
            r.method == "GET" || r.method == "HEAD",
            "non-read request {} {}?{}",
            r.method,
            r.path,
            r.query
        );
        for p in r.query.split('&').map(|p| p.split('=').next().unwrap()) {
            assert!(
                !WRITE_SUBRESOURCES.contains(&p),
                "write sub-resource in {} {}?{}",
                r.method,
                r.path,
                r.query
            );
        }
        let op = operation(r);
        assert_ne!(op, "write");
        *by_op.entry(op).or_default() += 1;
    }
    // The SDK-side counter agrees with what reached the wire.
    let s = samples(&body);
    let mut exported: BTreeMap<String, u64> = BTreeMap::new();
    for x in s.iter().filter(|x| x.name == "barman_cloud_s3_requests_total") {
        exported.insert(x.labels["operation"].clone(), x.value as u64);
    }
    let seen: BTreeMap<String, u64> = by_op.iter().map(|(k, v)| (k.to_string(), *v)).collect();
    assert_eq!(exported, seen, "barman_cloud_s3_requests_total vs the proxy's record");
    assert_eq!(
        value(
            &s,
            "barman_cloud_collector_up",
            &[("target", "scenario"), ("collector", "s3")]
        ),
        Some(1.0)
    );
    println!(
        "read-only proof: {} requests in 2 cycles ({} in the first), by operation {seen:?}; methods: {:?}",
        recorded.len(),
        after_first,
        recorded.iter().fold(BTreeMap::<&str, u64>::new(), |mut m, r| {
            *m.entry(r.method.as_str()).or_default() += 1;
            m
        })
    );
}
