//! TLS towards the sources, against real servers with a test CA generated here
//! (started by `scripts/tls-servers.sh`, stopped by PID / pg_ctl on drop):
//!
//! * S3: SeaweedFS's S3 server over HTTPS in front of the shared scenario's
//!   filer. With `ca_file` the exporter walks the scenario exactly as over
//!   plain HTTP; without it, with another CA, or with a host name the
//!   certificate does not name, the walk fails with `reason="tls"`.
//! * PostgreSQL 15 with `ssl=on` and a `hostssl`-only pg_hba: every libpq
//!   `sslmode` against it (verify-full, verify-ca, require, prefer, disable).
//!
//! The S3 test needs `BCE_SCENARIO` (see `tests/common/mod.rs`); both need the
//! tools of `scripts/install-deps.sh`.

mod common;
#[path = "support/pki.rs"]
mod pki;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use barman_cloud_exporter::source::postgres::{PgErrorReason, PgTarget};
use common::{Exporter, Scenario, samples, value};

/// A directory with the TLS servers of `tls-servers.sh`; stops them on drop.
struct TlsServers {
    dir: tempfile::TempDir,
    ca: pki::Ca,
}

impl TlsServers {
    /// Makes a test CA, a server certificate for `s3_names` (S3) and one for
    /// localhost/127.0.0.1 (PostgreSQL), in a directory the postgres OS user
    /// can traverse.
    fn new(s3_names: &[&str]) -> Self {
        let dir = tempfile::Builder::new().prefix("bce-tls-").tempdir_in("/tmp").unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let ca = pki::Ca::new("barman-cloud-exporter test CA");
        ca.write(dir.path(), "ca.pem");
        ca.server(s3_names).write(dir.path(), "s3");
        ca.server(&["localhost", "127.0.0.1"]).write(dir.path(), "pg");
        Self { dir, ca }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn script(&self, args: &[&str]) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/tls-servers.sh");
        let out = Command::new(&script).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "tls-servers.sh {args:?} failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Starts the S3 HTTPS gateway in front of the scenario's SeaweedFS; returns its port.
    fn start_s3(&self, sc: &Scenario) -> u16 {
        let dir = self.path().to_str().unwrap().to_string();
        self.script(&["s3-start", &dir, sc.s3.dir.to_str().unwrap()]);
        env_value(&self.path().join("s3-tls.env"), "S3_TLS_PORT")
            .parse()
            .unwrap()
    }

    /// Starts the PostgreSQL cluster with ssl=on; returns (port, exporter password).
    fn start_pg(&self) -> (u16, String) {
        self.script(&["pg-start", self.path().to_str().unwrap()]);
        let env = self.path().join("pg/tls/cluster.env");
        (
            env_value(&env, "CL_PORT").parse().unwrap(),
            env_value(&env, "CL_EXPORTER_PASSWORD"),
        )
    }
}

impl Drop for TlsServers {
    fn drop(&mut self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/tls-servers.sh");
        let _ = Command::new(script).arg("stop").arg(self.dir.path()).status();
    }
}

fn env_value(file: &Path, key: &str) -> String {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{key} not in {}", file.display()))
        .to_string()
}

/// The scenario's exporter config pointed at `endpoint`, with `ca_file` if given.
fn yaml(sc: &Scenario, dir: &Path, endpoint: &str, ca_file: Option<&Path>) -> String {
    let mut y = sc
        .config_yaml_with_keys(dir, "1h", "60s", false, &sc.s3.ro_access_key, &sc.s3.ro_secret_key)
        .replace(&format!("\"{}\"", sc.s3.endpoint), &format!("\"{endpoint}\""));
    assert!(y.contains(endpoint), "endpoint not replaced in {y}");
    if let Some(ca) = ca_file {
        y.push_str(&format!("    ca_file: \"{}\"\n", ca.display()));
    }
    y
}

/// Runs one collection and returns the exposition's samples.
async fn one_collection(yaml_text: String) -> Vec<common::Sample> {
    let exp = Exporter::start(move |_| yaml_text).await;
    exp.wait_ready(Duration::from_secs(120)).await;
    let (code, body) = exp.get("/metrics").await;
    assert_eq!(code, 200);
    exp.stop().await;
    samples(&body)
}

/// The catalogue series of a server: name and labels → value, timings left out.
fn catalogue(s: &[common::Sample], server: &str) -> Vec<(String, String, f64)> {
    let mut out: Vec<(String, String, f64)> = s
        .iter()
        .filter(|x| x.labels.get("server").map(String::as_str) == Some(server))
        .filter(|x| !x.name.contains("duration") && !x.name.contains("age"))
        .map(|x| (x.name.clone(), format!("{:?}", x.labels), x.value))
        .collect();
    out.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    out
}

fn s3_up(s: &[common::Sample]) -> Option<f64> {
    value(s, "barman_cloud_collector_up", &[("collector", "s3")])
}

fn s3_errors(s: &[common::Sample], reason: &str) -> f64 {
    value(
        s,
        "barman_cloud_collector_errors_total",
        &[("collector", "s3"), ("reason", reason)],
    )
    .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn s3_over_https_needs_the_ca_file() {
    let sc = Scenario::load();
    // The S3 certificate names only "localhost", not 127.0.0.1.
    let servers = TlsServers::new(&["localhost"]);
    let port = servers.start_s3(&sc);
    let https = format!("https://localhost:{port}");
    let ca = servers.path().join("ca.pem");
    let work = tempfile::tempdir().unwrap();

    // Reference: the same layout over plain HTTP.
    let plain = one_collection(yaml(&sc, work.path(), &sc.s3.endpoint.clone(), None)).await;
    assert_eq!(s3_up(&plain), Some(1.0));
    let server = &sc.servers[0];
    let reference = catalogue(&plain, server);
    assert!(
        value(
            &plain,
            "barman_cloud_backups",
            &[("server", server), ("status", "done")]
        )
        .unwrap_or(0.0)
            >= 1.0,
        "the scenario has DONE backups"
    );

    // HTTPS with ca_file: the same catalogue.
    let tls = one_collection(yaml(&sc, work.path(), &https, Some(&ca))).await;
    assert_eq!(s3_up(&tls), Some(1.0), "walk over HTTPS with ca_file failed");
    assert_eq!(catalogue(&tls, server), reference);

    // Without ca_file (system roots only): a TLS error, nothing published.
    let no_ca = one_collection(yaml(&sc, work.path(), &https, None)).await;
    assert_eq!(s3_up(&no_ca), Some(0.0));
    assert_eq!(s3_errors(&no_ca, "tls"), 1.0, "{no_ca:?}");
    assert!(catalogue(&no_ca, server).is_empty());

    // A bundle from another CA: a TLS error.
    let other = pki::Ca::new("another CA").write(work.path(), "other-ca.pem");
    let wrong_ca = one_collection(yaml(&sc, work.path(), &https, Some(&other))).await;
    assert_eq!(s3_up(&wrong_ca), Some(0.0));
    assert_eq!(s3_errors(&wrong_ca, "tls"), 1.0);

    // The right CA but a host name the certificate does not name: a TLS error.
    let by_ip = one_collection(yaml(&sc, work.path(), &format!("https://127.0.0.1:{port}"), Some(&ca))).await;
    assert_eq!(s3_up(&by_ip), Some(0.0));
    assert_eq!(s3_errors(&by_ip, "tls"), 1.0);

    // The ca_file disappears after validation (a Secret not mounted yet):
    // counted as `tls` each cycle, then the client is built once it is back.
    let late = work.path().join("late-ca.pem");
    std::fs::copy(&ca, &late).unwrap();
    let text = yaml(&sc, work.path(), &https, Some(&late)).replace("interval: 1h", "interval: 1s");
    assert!(text.contains("interval: 1s"), "{text}");
    let config = common::parse_config(&text);
    std::fs::remove_file(&late).unwrap();
    let exp = Exporter::with_config(config, tempfile::tempdir().unwrap()).await;
    let until = |what: &'static str| {
        let exp = &exp;
        async move {
            let start = std::time::Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let s = samples(&exp.get("/metrics").await.1);
                let done = match what {
                    "failing" => s3_up(&s) == Some(0.0) && s3_errors(&s, "tls") >= 2.0 && s3_errors(&s, "other") == 0.0,
                    _ => s3_up(&s) == Some(1.0),
                };
                if done {
                    return s;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(60),
                    "not {what} within 60 s: {s:?}"
                );
            }
        }
    };
    let failing = until("failing").await;
    assert!(catalogue(&failing, server).is_empty());
    std::fs::copy(&ca, &late).unwrap();
    let recovered = until("recovered").await;
    assert_eq!(catalogue(&recovered, server), reference);
    exp.stop().await;
    drop(servers);
}

/// The libpq URL of the TLS cluster.
fn pg_url(host: &str, port: u16, password: &str, opts: &str) -> String {
    format!("postgresql://exporter:{password}@{host}:{port}/postgres?connect_timeout=10&{opts}")
}

async fn pg(url: &str) -> Result<(), (PgErrorReason, String)> {
    let t = PgTarget::parse(url).map_err(|e| (e.reason, e.message))?;
    t.collect().await.map(|_| ()).map_err(|e| (e.reason, e.message))
}

#[tokio::test]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn postgres_sslmodes_against_a_real_tls_server() {
    let servers = TlsServers::new(&["localhost"]);
    let (port, pw) = servers.start_pg();
    let ca = servers.path().join("ca.pem");
    let ca_q = ca.display().to_string().replace('/', "%2F");
    let other: PathBuf = pki::Ca::new("another CA").write(servers.path(), "other-ca.pem");
    let other_q = other.display().to_string().replace('/', "%2F");
    assert!(servers.ca.cert_pem.contains("BEGIN CERTIFICATE"));

    let ok = [
        (
            "verify-full, right CA, localhost",
            pg_url(
                "localhost",
                port,
                &pw,
                &format!("sslmode=verify-full&sslrootcert={ca_q}"),
            ),
        ),
        (
            "verify-full, right CA, 127.0.0.1 (IP SAN)",
            pg_url(
                "127.0.0.1",
                port,
                &pw,
                &format!("sslmode=verify-full&sslrootcert={ca_q}"),
            ),
        ),
        (
            "verify-ca, right CA, a name not in the certificate",
            pg_url(
                "db.not-in-cert.test",
                port,
                &pw,
                &format!("sslmode=verify-ca&sslrootcert={ca_q}&hostaddr=127.0.0.1"),
            ),
        ),
        ("require, no CA", pg_url("127.0.0.1", port, &pw, "sslmode=require")),
        ("prefer (default)", pg_url("127.0.0.1", port, &pw, "")),
    ];
    for (case, url) in &ok {
        if let Err(e) = pg(url).await {
            panic!("{case}: {e:?}");
        }
    }
    let failing = [
        (
            "verify-full, another CA",
            pg_url(
                "localhost",
                port,
                &pw,
                &format!("sslmode=verify-full&sslrootcert={other_q}"),
            ),
            PgErrorReason::Tls,
        ),
        (
            "verify-full, a name not in the certificate",
            pg_url(
                "db.not-in-cert.test",
                port,
                &pw,
                &format!("sslmode=verify-full&sslrootcert={ca_q}&hostaddr=127.0.0.1"),
            ),
            PgErrorReason::Tls,
        ),
        (
            "verify-ca, another CA",
            pg_url(
                "127.0.0.1",
                port,
                &pw,
                &format!("sslmode=verify-ca&sslrootcert={other_q}"),
            ),
            PgErrorReason::Tls,
        ),
        (
            "verify-full, system roots only",
            pg_url("localhost", port, &pw, "sslmode=verify-full"),
            PgErrorReason::Tls,
        ),
        (
            "require with the wrong sslrootcert (libpq checks the chain)",
            pg_url(
                "127.0.0.1",
                port,
                &pw,
                &format!("sslmode=require&sslrootcert={other_q}"),
            ),
            PgErrorReason::Tls,
        ),
        (
            "disable against hostssl-only",
            pg_url("127.0.0.1", port, &pw, "sslmode=disable"),
            PgErrorReason::Auth,
        ),
        (
            "verify-full, wrong password",
            pg_url(
                "localhost",
                port,
                "wrong",
                &format!("sslmode=verify-full&sslrootcert={ca_q}"),
            ),
            PgErrorReason::Auth,
        ),
        (
            "sslrootcert missing",
            pg_url(
                "localhost",
                port,
                &pw,
                "sslmode=verify-full&sslrootcert=%2Fnonexistent%2Fca.pem",
            ),
            PgErrorReason::Config,
        ),
    ];
    for (case, url, want) in &failing {
        match pg(url).await {
            Ok(()) => panic!("{case}: connected"),
            Err((reason, message)) => {
                assert_eq!(reason, *want, "{case}: {message}");
                assert!(!message.contains(&pw), "{case}: the password leaked: {message}");
                eprintln!("{case}: {} — {message}", reason.as_str());
            }
        }
    }
    drop(servers);
}
