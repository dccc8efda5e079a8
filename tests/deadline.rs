//! The hard `timeout`: a server that accepts connections and never answers
//! must not keep a collection (or its connections) alive past the deadline,
//! and must not delay another target. Uses only loopback listeners.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Exporter, samples, value};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

/// Accepts connections, never writes; counts connections still open.
async fn black_hole() -> (u16, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (accepted, open) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (a, o) = (accepted.clone(), open.clone());
    tokio::spawn(async move {
        loop {
            let (mut sock, _) = listener.accept().await.unwrap();
            a.fetch_add(1, Ordering::SeqCst);
            o.fetch_add(1, Ordering::SeqCst);
            let o = o.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while matches!(sock.read(&mut buf).await, Ok(n) if n > 0) {}
                o.fetch_sub(1, Ordering::SeqCst);
            });
        }
    });
    (port, accepted, open)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hung_endpoints_hit_the_deadline_and_are_disconnected() {
    let (s3_port, s3_accepted, s3_open) = black_hole().await;
    let (pg_port, pg_accepted, pg_open) = black_hole().await;
    let refused = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let exporter = Exporter::start(|dir| {
        std::fs::write(dir.join("ak"), "AKIDEXAMPLE").unwrap();
        std::fs::write(dir.join("sk"), "secretexample").unwrap();
        format!(
            r#"
interval: 1h
timeout: 5s
targets:
  - name: hung
    destination_path: s3://bucket/path
    endpoint_url: http://127.0.0.1:{s3_port}
    region: us-east-1
    force_path_style: true
    access_key_id_file: {d}/ak
    secret_access_key_file: {d}/sk
    postgres: {{url: "postgresql://u:p@127.0.0.1:{pg_port}/db?sslmode=disable&connect_timeout=60"}}
  - name: refused
    destination_path: s3://bucket/path
    endpoint_url: http://127.0.0.1:{refused}
    region: us-east-1
    force_path_style: true
    access_key_id_file: {d}/ak
    secret_access_key_file: {d}/sk
"#,
            d = dir.display()
        )
    })
    .await;
    let start = Instant::now();
    exporter.wait_ready(Duration::from_secs(20)).await;
    let ready_after = start.elapsed();
    let (_, body) = exporter.get("/metrics").await;
    let s = samples(&body);
    let hung = ("target", "hung");
    for collector in ["s3", "postgres"] {
        assert_eq!(
            value(&s, "barman_cloud_collector_up", &[hung, ("collector", collector)]),
            Some(0.0)
        );
        assert_eq!(
            value(
                &s,
                "barman_cloud_collector_errors_total",
                &[hung, ("collector", collector), ("reason", "timeout")]
            ),
            Some(1.0),
            "{collector}: {body}"
        );
        let took = value(
            &s,
            "barman_cloud_collector_duration_seconds",
            &[hung, ("collector", collector)],
        )
        .unwrap();
        assert!((4.9..6.0).contains(&took), "{collector} took {took}s with a 5s timeout");
    }
    assert!(ready_after < Duration::from_secs(8), "ready after {ready_after:?}");
    assert!(s3_accepted.load(Ordering::SeqCst) >= 1 && pg_accepted.load(Ordering::SeqCst) >= 1);
    // The aborted collections closed their connections: nothing was detached.
    let deadline = Instant::now() + Duration::from_secs(3);
    while s3_open.load(Ordering::SeqCst) + pg_open.load(Ordering::SeqCst) > 0 {
        assert!(
            Instant::now() < deadline,
            "connections still open after the deadline: s3 {} pg {}",
            s3_open.load(Ordering::SeqCst),
            pg_open.load(Ordering::SeqCst)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The other target failed fast on its own reason, not the hung one's.
    let refused_t = ("target", "refused");
    assert_eq!(
        value(
            &s,
            "barman_cloud_collector_errors_total",
            &[refused_t, ("collector", "s3"), ("reason", "connect")]
        ),
        Some(1.0),
        "{body}"
    );
    let took = value(
        &s,
        "barman_cloud_collector_duration_seconds",
        &[refused_t, ("collector", "s3")],
    )
    .unwrap();
    // It failed on its own (SDK retries with jittered backoff, 3 attempts:
    // at most ~3 s of sleeps, plus the client's first-use set-up, which a
    // loaded CI machine stretches), never by the hung target's 5 s deadline.
    assert_eq!(
        value(
            &s,
            "barman_cloud_collector_errors_total",
            &[refused_t, ("collector", "s3"), ("reason", "timeout")]
        ),
        Some(0.0),
        "{body}"
    );
    assert!(took < 5.0, "refused target took {took}s");
    // A scrape during all this is immediate.
    let t = Instant::now();
    exporter.get("/metrics").await;
    assert!(t.elapsed() < Duration::from_millis(200));
    exporter.stop().await;
}
