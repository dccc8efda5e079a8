//! `--web.config.file`: TLS, mutual TLS and bcrypt basic auth on a real
//! listener, with a test CA generated here; the example web config loads; a
//! broken web config stops the binary with a message naming the key.
//!
//! Needs no scenario: the exporter's one target points at a closed port, so
//! collections fail fast while the HTTP side is exercised.

#[path = "support/pki.rs"]
mod pki;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use barman_cloud_exporter::config::Config;
use barman_cloud_exporter::web_config::WebConfig;
use figment::providers::{Format, Yaml};
use tokio_util::sync::CancellationToken;

const PASSWORD: &str = "correct horse battery staple";

/// An exporter config whose only target is a closed port on loopback.
fn exporter_config(dir: &Path) -> Config {
    std::fs::write(dir.join("ak"), "AKIDEXAMPLE").unwrap();
    std::fs::write(dir.join("sk"), "secret").unwrap();
    let yaml = format!(
        "interval: 1h\ntimeout: 5s\ntargets:\n  - name: t\n    destination_path: s3://b/p\n    \
         endpoint_url: http://127.0.0.1:1\n    force_path_style: true\n    access_key_id_file: {}\n    \
         secret_access_key_file: {}\n",
        dir.join("ak").display(),
        dir.join("sk").display()
    );
    Config::from_figment(figment::Figment::new().merge(Yaml::string(&yaml))).unwrap()
}

struct Running {
    addr: std::net::SocketAddr,
    shutdown: CancellationToken,
    handle: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    async fn start(dir: &Path, web: WebConfig) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(barman_cloud_exporter::run_with_web_config(
            exporter_config(dir),
            listener,
            "/metrics".into(),
            web,
            shutdown.clone(),
        ));
        Self { addr, shutdown, handle }
    }

    async fn stop(self) {
        self.shutdown.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.handle)
            .await
            .expect("exporter did not stop within 10 s after shutdown")
            .unwrap()
            .unwrap();
    }
}

/// A client that trusts only `ca` (and presents `identity`, if any).
fn client(ca: &pki::Ca, identity: Option<&pki::Leaf>) -> reqwest::Client {
    let mut b = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.cert_pem.as_bytes()).unwrap()])
        .timeout(Duration::from_secs(10));
    if let Some(id) = identity {
        b = b.identity(reqwest::Identity::from_pem(format!("{}{}", id.cert_pem, id.key_pem).as_bytes()).unwrap());
    }
    b.build().unwrap()
}

async fn status(req: reqwest::RequestBuilder) -> Result<(u16, Option<String>, String), reqwest::Error> {
    let resp = req.send().await?;
    let code = resp.status().as_u16();
    let www = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    Ok((code, www, resp.text().await?))
}

#[tokio::test]
async fn tls_and_basic_auth_protect_every_path() {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::Ca::new("web test CA");
    ca.server(&["localhost", "127.0.0.1"]).write(dir.path(), "server");
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    // Relative paths: resolved against the web config file's directory.
    let web_file = dir.path().join("web.yaml");
    std::fs::write(
        &web_file,
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS12\n\
             basic_auth_users:\n  prometheus: '{hash}'\n"
        ),
    )
    .unwrap();
    let web = WebConfig::load(&web_file).unwrap();
    assert!(web.tls().is_some() && web.requires_auth());
    let running = Running::start(dir.path(), web).await;
    let base = format!("https://localhost:{}", running.addr.port());
    let c = client(&ca, None);

    for path in ["/metrics", "/", "/api/status", "/healthz", "/readyz", "/no-such-path"] {
        let (code, www, _) = status(c.get(format!("{base}{path}"))).await.unwrap();
        assert_eq!(code, 401, "{path} without credentials");
        assert!(
            www.as_deref().is_some_and(|w| w.starts_with("Basic")),
            "{path}: {www:?}"
        );
        let (code, _, _) = status(c.get(format!("{base}{path}")).basic_auth("prometheus", Some("wrong")))
            .await
            .unwrap();
        assert_eq!(code, 401, "{path} with a wrong password");
        let (code, _, _) = status(c.get(format!("{base}{path}")).basic_auth("nobody", Some(PASSWORD)))
            .await
            .unwrap();
        assert_eq!(code, 401, "{path} with an unknown user");
    }
    let (code, _, body) = status(
        c.get(format!("{base}/metrics"))
            .basic_auth("prometheus", Some(PASSWORD)),
    )
    .await
    .unwrap();
    assert_eq!(code, 200);
    assert!(body.contains("barman_cloud_collector_up"), "{body}");
    for path in ["/", "/api/status", "/healthz"] {
        let (code, _, _) = status(c.get(format!("{base}{path}")).basic_auth("prometheus", Some(PASSWORD)))
            .await
            .unwrap();
        assert_eq!(code, 200, "{path} with the right password");
    }
    // By IP too (the certificate names 127.0.0.1).
    let (code, _, _) = status(
        c.get(format!("https://127.0.0.1:{}/metrics", running.addr.port()))
            .basic_auth("prometheus", Some(PASSWORD)),
    )
    .await
    .unwrap();
    assert_eq!(code, 200);

    // Plain HTTP to the TLS port gets no HTTP answer.
    let plain = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let r = plain
        .get(format!("http://127.0.0.1:{}/metrics", running.addr.port()))
        .basic_auth("prometheus", Some(PASSWORD))
        .send()
        .await;
    assert!(r.is_err(), "plain HTTP to the TLS port answered: {r:?}");
    // A client that does not trust the test CA refuses the server.
    let other = client(&pki::Ca::new("another CA"), None);
    let r = other.get(format!("{base}/healthz")).send().await;
    assert!(r.is_err(), "a client with another CA connected: {r:?}");
    // The server still serves after failed handshakes.
    let (code, _, _) = status(
        c.get(format!("{base}/healthz"))
            .basic_auth("prometheus", Some(PASSWORD)),
    )
    .await
    .unwrap();
    assert_eq!(code, 200);
    running.stop().await;
}

#[tokio::test]
async fn basic_auth_without_tls() {
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    let web = WebConfig::from_yaml(&format!("basic_auth_users:\n  prom: '{hash}'\n"), dir.path()).unwrap();
    let running = Running::start(dir.path(), web).await;
    let c = reqwest::Client::new();
    let url = format!("http://{}/metrics", running.addr);
    assert_eq!(status(c.get(&url)).await.unwrap().0, 401);
    assert_eq!(
        status(c.get(&url).basic_auth("prom", Some("nope"))).await.unwrap().0,
        401
    );
    assert_eq!(
        status(c.get(&url).basic_auth("prom", Some(PASSWORD))).await.unwrap().0,
        200
    );
    // The second scrape hits the verification cache: far below a bcrypt.
    let start = std::time::Instant::now();
    for _ in 0..20 {
        assert_eq!(
            status(c.get(&url).basic_auth("prom", Some(PASSWORD))).await.unwrap().0,
            200
        );
    }
    eprintln!("20 authenticated scrapes: {:?}", start.elapsed());
    running.stop().await;
}

#[tokio::test]
async fn mutual_tls_requires_a_client_certificate_from_the_client_ca() {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki::Ca::new("server CA");
    ca.server(&["localhost"]).write(dir.path(), "server");
    let client_ca = pki::Ca::new("client CA");
    client_ca.write(dir.path(), "client-ca.crt");
    let good = client_ca.client("prometheus");
    let stranger = pki::Ca::new("stranger CA").client("prometheus");
    let web_file = dir.path().join("web.yaml");
    std::fs::write(
        &web_file,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
         client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: client-ca.crt\n  min_version: TLS13\n",
    )
    .unwrap();
    let running = Running::start(dir.path(), WebConfig::load(&web_file).unwrap()).await;
    let url = format!("https://localhost:{}/metrics", running.addr.port());
    let (code, _, body) = status(client(&ca, Some(&good)).get(&url)).await.unwrap();
    assert_eq!(code, 200);
    assert!(body.contains("barman_cloud_collector_up"));
    assert!(
        status(client(&ca, None).get(&url)).await.is_err(),
        "no client certificate must be refused"
    );
    assert!(
        status(client(&ca, Some(&stranger)).get(&url)).await.is_err(),
        "a certificate from another CA must be refused"
    );
    // TLS 1.2 is below min_version.
    let tls12 = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca.cert_pem.as_bytes()).unwrap()])
        .identity(reqwest::Identity::from_pem(format!("{}{}", good.cert_pem, good.key_pem).as_bytes()).unwrap())
        .tls_version_max(reqwest::tls::Version::TLS_1_2)
        .build()
        .unwrap();
    assert!(tls12.get(&url).send().await.is_err(), "TLS 1.2 must be refused");
    running.stop().await;

    // VerifyClientCertIfGiven: no certificate is fine, a bad one is not.
    std::fs::write(
        &web_file,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
         client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: client-ca.crt\n",
    )
    .unwrap();
    let running = Running::start(dir.path(), WebConfig::load(&web_file).unwrap()).await;
    let url = format!("https://localhost:{}/metrics", running.addr.port());
    assert_eq!(status(client(&ca, None).get(&url)).await.unwrap().0, 200);
    assert_eq!(status(client(&ca, Some(&good)).get(&url)).await.unwrap().0, 200);
    assert!(status(client(&ca, Some(&stranger)).get(&url)).await.is_err());
    running.stop().await;
}

#[test]
fn the_example_web_config_loads() {
    let text =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/web-config.example.yaml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    pki::Ca::new("example CA")
        .server(&["localhost"])
        .write(dir.path(), "tls");
    let text = text.replace("/etc/barman-cloud-exporter/tls/", &format!("{}/", dir.path().display()));
    let web = WebConfig::from_yaml(&text, dir.path()).unwrap();
    assert!(web.tls().is_some() && web.requires_auth());
    // The commented-out mutual TLS lines are valid too.
    let mtls = text
        .replace("# client_auth_type:", "client_auth_type:")
        .replace("# client_ca_file:", "client_ca_file:")
        .replace("client-ca.crt", "tls.crt");
    WebConfig::from_yaml(&mtls, dir.path()).unwrap();
}

fn exporter() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_barman-cloud-exporter"));
    c.env("AWS_EC2_METADATA_DISABLED", "true");
    c
}

#[test]
fn the_binary_checks_the_web_config_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, "targets: [{name: t, destination_path: 's3://b/p'}]\n").unwrap();
    let ca = pki::Ca::new("check CA");
    ca.server(&["localhost"]).write(dir.path(), "server");
    let hash = bcrypt::hash(PASSWORD, 4).unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(
        &good,
        format!(
            "tls_server_config: {{cert_file: server.crt, key_file: server.key}}\nbasic_auth_users: {{p: '{hash}'}}\n"
        ),
    )
    .unwrap();
    let out = exporter()
        .args(["check-config", "--config.file"])
        .arg(&config)
        .arg("--web.config.file")
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("good.yaml: valid"));

    let cases = [
        ("missing.yaml", None, "missing.yaml"),
        ("typo.yaml", Some("tls_server_config: {cert_fil: x}\n"), "cert_fil"),
        (
            "nokey.yaml",
            Some("tls_server_config: {cert_file: server.crt, key_file: nope.key}\n"),
            "tls_server_config.key_file",
        ),
        (
            "badhash.yaml",
            Some("basic_auth_users: {p: letmein}\n"),
            "basic_auth_users.p: not a bcrypt hash",
        ),
        (
            "swapped.yaml",
            Some("tls_server_config: {cert_file: server.key, key_file: server.crt}\n"),
            "tls_server_config",
        ),
    ];
    for (name, content, needle) in cases {
        let path = dir.path().join(name);
        if let Some(c) = content {
            std::fs::write(&path, c).unwrap();
        }
        // Both check-config and the server refuse it, before listening.
        for args in [vec!["check-config"], vec!["--web.listen-address", "127.0.0.1:0"]] {
            let out = exporter()
                .args(&args)
                .arg("--config.file")
                .arg(&config)
                .arg("--web.config.file")
                .arg(&path)
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{name} {args:?} was accepted");
            assert!(
                stderr.contains(needle),
                "{name} {args:?}: missing {needle:?} in {stderr}"
            );
            assert!(!stderr.contains(&hash), "{stderr}");
        }
    }
}
