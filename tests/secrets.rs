//! No secret anywhere: the real binary, with `--log.level debug` and `trace`
//! (every crate; the AWS SDK is capped at info by `log_filter`) and JSON logs too, collects the shared
//! scenario plus targets that fail (a closed S3 port, a rejected session
//! token, a wrong PostgreSQL password, an unreachable PostgreSQL). Neither the logs nor `/metrics`, `/`,
//! `/api/status`, `/healthz`, `/readyz` may contain an access key id, a secret
//! key, a session token or a PostgreSQL password; URLs appear with their
//! credentials redacted. Configuration errors (check-config) do not echo a
//! PostgreSQL password or credentials put in an `endpoint_url`, which is refused.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Scenario;

/// A random-looking marker that cannot appear by chance.
fn marker(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{tag}{nanos:09}Zq7")
}

struct Secrets {
    /// (what, value) of every secret the config holds.
    all: Vec<(&'static str, String)>,
    /// The exporter's PostgreSQL password in the scenario.
    pg_password: String,
}

/// Writes the config: the scenario (good S3 + good PostgreSQL), and failing
/// targets, each with its own secrets.
fn write_config(sc: &Scenario, dir: &Path) -> (std::path::PathBuf, Secrets) {
    let w = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let ak = w("ak", &sc.s3.access_key);
    let sk = w("sk", &sc.s3.secret_key);
    let token = marker("FQoGZXIvYXdzE");
    let tok = w("token", &token);
    let down_ak = marker("AKIADOWN");
    let down_sk = marker("downSecretKey");
    let (down_ak_p, down_sk_p) = (w("down_ak", &down_ak), w("down_sk", &down_sk));
    let wrong_pg = marker("wrongPgPass");
    let unreachable_pg = marker("unreachablePgPass");
    let pg_password = sc
        .postgres
        .url
        .split(':')
        .nth(2)
        .unwrap()
        .split('@')
        .next()
        .unwrap()
        .to_string();
    assert!(sc.postgres.url.contains(&format!(":{pg_password}@")));
    let wrong_url = sc.postgres.url.replace(&pg_password, &wrong_pg);
    let pg_url_file = w(
        "pg_url",
        &sc.postgres.url.replace("/postgres", "/postgres?sslmode=disable"),
    );
    let yaml = format!(
        r#"interval: 2s
timeout: 20s
targets:
  - name: good
    destination_path: "{dest}"
    endpoint_url: "{ep}"
    region: "{region}"
    force_path_style: true
    servers: ["{server}"]
    access_key_id_file: "{ak}"
    secret_access_key_file: "{sk}"
    postgres:
      url: "{pg}"
      server: "{server}"
  - name: session-token
    destination_path: "{dest}"
    endpoint_url: "{ep}"
    force_path_style: true
    access_key_id_file: "{ak}"
    secret_access_key_file: "{sk}"
    session_token_file: "{tok}"
    postgres:
      url_file: "{pg_url_file}"
      server: "{server}"
  - name: down
    destination_path: "s3://nowhere/p"
    endpoint_url: "http://127.0.0.1:1"
    force_path_style: true
    access_key_id_file: "{down_ak_p}"
    secret_access_key_file: "{down_sk_p}"
    session_token_file: "{tok}"
    postgres:
      url: "{wrong_url}"
      server: x
  - name: unreachable
    destination_path: "s3://nowhere/p"
    endpoint_url: "http://127.0.0.1:1"
    force_path_style: true
    access_key_id_file: "{down_ak_p}"
    secret_access_key_file: "{down_sk_p}"
    postgres:
      url: "postgresql://exporter:{unreachable_pg}@127.0.0.1:1/postgres?connect_timeout=2"
      server: x
"#,
        dest = sc.destination_path,
        ep = sc.s3.endpoint,
        region = sc.s3.region,
        server = sc.postgres.server,
        ak = ak.display(),
        sk = sk.display(),
        tok = tok.display(),
        pg = sc.postgres.url,
        pg_url_file = pg_url_file.display(),
        down_ak_p = down_ak_p.display(),
        down_sk_p = down_sk_p.display(),
    );
    let config = w("config.yaml", &yaml);
    let all = vec![
        ("S3 access key id", sc.s3.access_key.clone()),
        ("S3 secret key", sc.s3.secret_key.clone()),
        ("S3 session token", token),
        ("S3 access key id (failing target)", down_ak),
        ("S3 secret key (failing target)", down_sk),
        ("PostgreSQL password", pg_password.clone()),
        ("PostgreSQL password (wrong)", wrong_pg),
        ("PostgreSQL password (unreachable)", unreachable_pg),
    ];
    (config, Secrets { all, pg_password })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs the binary until every target has been collected at least twice;
/// returns (stdout + stderr, the HTTP pages).
async fn run_exporter(config: &Path, extra: &[&str]) -> (String, Vec<(String, String)>) {
    let port = free_port();
    let mut child: Child = Command::new(env!("CARGO_BIN_EXE_barman-cloud-exporter"))
        .arg("--config.file")
        .arg(config)
        .args(["--web.listen-address", &format!("127.0.0.1:{port}")])
        .args(extra)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drain the pipes while it runs.
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let out_t = std::thread::spawn(move || {
        let mut s = String::new();
        out.read_to_string(&mut s).unwrap();
        s
    });
    let err_t = std::thread::spawn(move || {
        let mut s = String::new();
        err.read_to_string(&mut s).unwrap();
        s
    });
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let start = Instant::now();
    // Ready, then at least two more cycles (2 s interval) for repeated errors.
    loop {
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status() == 200
        {
            break;
        }
        if let Some(exit) = child.try_wait().unwrap() {
            panic!(
                "exporter exited with {exit} before being ready: {}",
                err_t.join().unwrap()
            );
        }
        assert!(start.elapsed() < Duration::from_secs(90), "exporter not ready in 90 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut pages = Vec::new();
    for path in ["/metrics", "/", "/api/status", "/healthz", "/readyz"] {
        let body = client
            .get(format!("{base}{path}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        pages.push((path.to_string(), body));
    }
    // Stop it as Kubernetes does (SIGTERM) and collect the logs.
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert!(status.success(), "exporter exited with {status}");
    let logs = format!("{}{}", out_t.join().unwrap(), err_t.join().unwrap());
    (logs, pages)
}

fn assert_no_secret(secrets: &Secrets, what: &str, text: &str) {
    for (name, value) in &secrets.all {
        assert!(!value.is_empty());
        // Raw, and percent-encoded as in a URL.
        let encoded = value.replace('/', "%2F").replace('+', "%2B");
        assert!(
            !text.contains(value.as_str()) && !text.contains(&encoded),
            "{name} appears in {what}:\n{}",
            text.lines()
                .filter(|l| l.contains(value.as_str()))
                .take(3)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn no_secret_in_logs_pages_or_errors() {
    let sc = Scenario::load();
    let dir = tempfile::tempdir().unwrap();
    let (config, secrets) = write_config(&sc, dir.path());
    for (format, level) in [("text", "debug"), ("json", "debug"), ("text", "trace")] {
        let (logs, pages) = run_exporter(&config, &["--log.format", format, "--log.level", level]).await;
        // The run did what it should: debug logs, errors of each kind.
        assert!(
            logs.contains("DEBUG") || logs.contains("\"level\":\"DEBUG\""),
            "no debug logs"
        );
        let status = &pages.iter().find(|(p, _)| p == "/api/status").unwrap().1;
        let status: serde_json::Value = serde_json::from_str(status).unwrap();
        let target = |name: &str| {
            status["targets"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["name"] == name)
                .unwrap_or_else(|| panic!("no target {name}"))
                .clone()
        };
        assert_eq!(target("good")["s3"]["up"], true, "{}", target("good"));
        assert_eq!(target("good")["postgres"]["up"], true, "{}", target("good"));
        assert_eq!(target("down")["s3"]["up"], false);
        let pg_err = target("down")["postgres"]["last_error"].as_str().unwrap().to_string();
        assert!(pg_err.contains("password authentication failed"), "{pg_err}");
        let unreachable = target("unreachable")["postgres"]["last_error"]
            .as_str()
            .unwrap()
            .to_string();
        // URLs are shown as user@host:port/db, never with the password.
        assert!(unreachable.contains("exporter@127.0.0.1:1/postgres"), "{unreachable}");
        assert!(
            logs.contains("password authentication failed"),
            "the wrong-password error is logged"
        );
        for (path, body) in &pages {
            assert_no_secret(&secrets, path, body);
        }
        assert_no_secret(&secrets, &format!("the {format} {level} logs"), &logs);
        // The scenario's password really is in the config, so the check has teeth.
        assert!(std::fs::read_to_string(&config).unwrap().contains(&secrets.pg_password));
        eprintln!(
            "{format} {level}: {} log lines, {} bytes of pages scanned for {} secrets",
            logs.lines().count(),
            pages.iter().map(|(_, b)| b.len()).sum::<usize>(),
            secrets.all.len()
        );
    }
}

#[test]
fn check_config_errors_do_not_echo_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let pw = marker("checkConfigPw");
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "targets:\n  - name: t\n    destination_path: s3://b\n    \
             postgres: {{url: 'postgresql://u:{pw}@h/db?sslmode=sometimes&bogus=1'}}\n  \
             - name: u\n    destination_path: s3://b\n    endpoint_url: 'https://admin:{pw}@s3.example'\n  \
             - name: v\n    destination_path: s3://b\n    endpoint_url: 'ftp://{pw}@s3.example'\n"
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_barman-cloud-exporter"))
        .args(["check-config", "--log.level", "debug", "--config.file"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "targets[0].postgres.url",
        "targets[1].endpoint_url: \"https://***@s3.example/\" must not carry credentials",
        "targets[2].endpoint_url: \"ftp://***@s3.example/\" must start with http",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in {text}");
    }
    assert!(!text.contains(&pw), "{text}");
}
