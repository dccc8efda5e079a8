//! `/metrics` protection: TLS (optionally mutual) and HTTP basic auth, set by a
//! web config file in the Prometheus [exporter-toolkit] format and passed with
//! `--web.config.file`, as every Prometheus exporter does.
//!
//! ```yaml
//! tls_server_config:
//!   cert_file: server.crt          # PEM chain, leaf first
//!   key_file: server.key           # PEM private key (PKCS#8, PKCS#1 or SEC1)
//!   client_auth_type: RequireAndVerifyClientCert   # optional
//!   client_ca_file: clients-ca.crt # required with a Verify* client_auth_type
//!   min_version: TLS12             # TLS12 (default) or TLS13
//!   max_version: TLS13             # optional
//! basic_auth_users:                # user → bcrypt hash
//!   prometheus: $2y$10$...
//! ```
//!
//! Relative paths are resolved against the web config file's directory. Keys
//! this exporter does not implement (`cipher_suites`, `curve_preferences`,
//! `client_allowed_sans`, `http_server_config`, inline `cert`/`key`, ...) are
//! rejected, so a setting is never silently ignored; so are the client auth
//! types that accept unverified client certificates (`RequestClientCert`,
//! `RequireAnyClientCert`) and TLS 1.0/1.1, which rustls does not speak.
//!
//! As in exporter-toolkit, basic auth protects every path, `/healthz` and
//! `/readyz` included (probes then need the credentials, or use a `tcpSocket`
//! probe); a request without valid credentials gets 401 with
//! `WWW-Authenticate: Basic`. A successful bcrypt verification is cached, keyed
//! by a SHA-256 of user, password and hash, so a scrape does not pay for a
//! bcrypt each time; unknown users are checked against a dummy hash so the
//! answer takes as long as for a known one. The file is read once at start-up;
//! an error in it stops the exporter with a message naming the key.
//!
//! [exporter-toolkit]: https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use figment::Figment;
use figment::providers::{Format, Yaml};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use thiserror::Error;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tracing::{debug, warn};

use crate::config::Secret;

/// How long a client gets to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this many successful credential checks are cached (the cache is
/// emptied when full).
const AUTH_CACHE_MAX: usize = 1024;
/// A valid bcrypt hash (of a random string) that unknown users are checked
/// against, so that their answer takes as long as a known user's.
const DUMMY_HASH: &str = "$2y$10$QOauhQNbBCuQDKes6eFzPeMqBSjb7Mr5DUmpZ/VcEd00UAV/LDeSi";

/// An error in the web config file. Messages name the file and the key.
#[derive(Debug, Error)]
pub enum WebConfigError {
    /// The file is missing, unreadable, not YAML, has an unknown key or a
    /// value of the wrong type.
    #[error("web config file {}: {message}", path.display())]
    Load {
        /// The web config file.
        path: PathBuf,
        /// What went wrong (figment names the key).
        message: String,
    },
    /// Values parsed but are not usable; one message per problem.
    #[error("web config file {}: invalid:\n  - {}", path.display(), problems.join("\n  - "))]
    Invalid {
        /// The web config file.
        path: PathBuf,
        /// Each problem as `key: problem`.
        problems: Vec<String>,
    },
}

/// The file as written: exporter-toolkit's keys (the supported subset).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebConfigFile {
    #[serde(default)]
    tls_server_config: Option<TlsServerConfigFile>,
    #[serde(default)]
    basic_auth_users: Option<BTreeMap<String, Secret>>,
}

/// `tls_server_config` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsServerConfigFile {
    #[serde(default)]
    cert_file: Option<PathBuf>,
    #[serde(default)]
    key_file: Option<PathBuf>,
    #[serde(default)]
    client_auth_type: Option<String>,
    #[serde(default)]
    client_ca_file: Option<PathBuf>,
    #[serde(default)]
    min_version: Option<String>,
    #[serde(default)]
    max_version: Option<String>,
}

/// The loaded web configuration: TLS for the listener and basic auth for
/// every route. The default serves plain HTTP without authentication.
#[derive(Clone, Default)]
pub struct WebConfig {
    tls: Option<Arc<ServerConfig>>,
    auth: Option<Arc<BasicAuth>>,
}

impl std::fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("basic_auth_users", &self.auth.as_ref().map_or(0, |a| a.users.len()))
            .finish()
    }
}

impl WebConfig {
    /// Reads and checks the web config file at `path`: parses the YAML, loads
    /// the certificate chain, key and client CA, and checks every bcrypt hash.
    ///
    /// # Errors
    /// [`WebConfigError::Load`] for a missing or malformed file, an unknown key
    /// or a wrong type; [`WebConfigError::Invalid`] listing every unusable value
    /// (unreadable or invalid PEM, a bad hash, an unsupported TLS version or
    /// client auth type, inconsistent client auth settings).
    pub fn load(path: &Path) -> Result<Self, WebConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| WebConfigError::Load {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::from_yaml(&text, base).map_err(|e| match e {
            WebConfigError::Load { message, .. } => WebConfigError::Load {
                path: path.to_path_buf(),
                message,
            },
            WebConfigError::Invalid { problems, .. } => WebConfigError::Invalid {
                path: path.to_path_buf(),
                problems,
            },
        })
    }

    /// As [`WebConfig::load`], from YAML text; relative paths are resolved
    /// against `base_dir`. Errors name the file as `<string>`.
    ///
    /// # Errors
    /// As [`WebConfig::load`].
    pub fn from_yaml(text: &str, base_dir: &Path) -> Result<Self, WebConfigError> {
        let path = PathBuf::from("<string>");
        // An empty document (or only comments) is a valid, empty config.
        let raw: WebConfigFile = if text
            .lines()
            .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#'))
        {
            WebConfigFile::default()
        } else {
            Figment::new()
                .merge(Yaml::string(text))
                .extract()
                .map_err(|e| WebConfigError::Load {
                    path: path.clone(),
                    message: e.to_string(),
                })?
        };
        let mut problems = Vec::new();
        let tls = raw
            .tls_server_config
            .and_then(|t| tls_config(&t, base_dir, &mut problems))
            .map(Arc::new);
        let auth = raw
            .basic_auth_users
            .filter(|u| !u.is_empty())
            .map(|users| {
                for (user, hash) in &users {
                    if user.contains(':') {
                        problems.push(format!("basic_auth_users.{user}: a user name may not contain ':'"));
                    }
                    if hash.expose().parse::<bcrypt::HashParts>().is_err() {
                        problems.push(format!(
                            "basic_auth_users.{user}: not a bcrypt hash (expected $2a$/$2b$/$2y$, e.g. from `htpasswd -nBC 10 {user}`)"
                        ));
                    }
                }
                Arc::new(BasicAuth {
                    users: users.into_iter().map(|(u, h)| (u, h.expose().to_string())).collect(),
                    cache: Mutex::new(HashSet::new()),
                })
            });
        if problems.is_empty() {
            Ok(Self { tls, auth })
        } else {
            Err(WebConfigError::Invalid { path, problems })
        }
    }

    /// The rustls server configuration when `tls_server_config` is set.
    pub fn tls(&self) -> Option<Arc<ServerConfig>> {
        self.tls.clone()
    }

    /// Whether basic auth is required.
    pub fn requires_auth(&self) -> bool {
        self.auth.is_some()
    }

    /// `https` or `http`, for log lines.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// Wraps every route of `router` (and its fallback) in the basic auth
    /// check, when users are configured; otherwise returns it unchanged.
    pub fn protect(&self, router: Router) -> Router {
        match &self.auth {
            None => router,
            Some(auth) => router.layer(axum::middleware::from_fn_with_state(auth.clone(), require_basic_auth)),
        }
    }
}

/// Builds the rustls server config, pushing each problem into `problems`.
fn tls_config(t: &TlsServerConfigFile, base: &Path, problems: &mut Vec<String>) -> Option<ServerConfig> {
    let k = "tls_server_config";
    let resolve = |p: &Path| if p.is_absolute() { p.to_path_buf() } else { base.join(p) };
    let before = problems.len();
    let certs = match &t.cert_file {
        None => {
            problems.push(format!("{k}.cert_file: required"));
            None
        }
        Some(p) => read_certs(&resolve(p), &format!("{k}.cert_file"), problems),
    };
    let key = match &t.key_file {
        None => {
            problems.push(format!("{k}.key_file: required"));
            None
        }
        Some(p) => {
            let p = resolve(p);
            PrivateKeyDer::from_pem_file(&p)
                .map_err(|e| problems.push(format!("{k}.key_file: {}: {}", p.display(), pem_error(&e))))
                .ok()
        }
    };
    let version = |v: &Option<String>, key: &str, problems: &mut Vec<String>| match v.as_deref() {
        None => None,
        Some("TLS12") => Some(&rustls::version::TLS12),
        Some("TLS13") => Some(&rustls::version::TLS13),
        Some(other @ ("TLS10" | "TLS11")) => {
            problems.push(format!(
                "{k}.{key}: {other} is not supported (rustls speaks TLS12 and TLS13)"
            ));
            None
        }
        Some(other) => {
            problems.push(format!("{k}.{key}: {other:?} is not one of TLS12, TLS13"));
            None
        }
    };
    let min = version(&t.min_version, "min_version", problems).unwrap_or(&rustls::version::TLS12);
    let max = version(&t.max_version, "max_version", problems).unwrap_or(&rustls::version::TLS13);
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = [&rustls::version::TLS12, &rustls::version::TLS13]
        .into_iter()
        .filter(|v| rank(v) >= rank(min) && rank(v) <= rank(max))
        .collect();
    if versions.is_empty() {
        problems.push(format!("{k}: min_version is above max_version"));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let client_ca = |problems: &mut Vec<String>| -> Option<Arc<RootCertStore>> {
        let Some(p) = &t.client_ca_file else {
            problems.push(format!(
                "{k}.client_ca_file: required by client_auth_type {:?}",
                t.client_auth_type.as_deref().unwrap_or("")
            ));
            return None;
        };
        let p = resolve(p);
        let certs = read_certs(&p, &format!("{k}.client_ca_file"), problems)?;
        let mut roots = RootCertStore::empty();
        for c in certs {
            if let Err(e) = roots.add(c) {
                problems.push(format!("{k}.client_ca_file: {}: {e}", p.display()));
                return None;
            }
        }
        Some(Arc::new(roots))
    };
    let verifier = match t.client_auth_type.as_deref().unwrap_or("") {
        "" | "NoClientCert" => {
            if t.client_ca_file.is_some() {
                problems.push(format!(
                    "{k}.client_ca_file: set without a client_auth_type that checks client certificates \
                     (VerifyClientCertIfGiven or RequireAndVerifyClientCert)"
                ));
            }
            None
        }
        kind @ ("VerifyClientCertIfGiven" | "RequireAndVerifyClientCert") => client_ca(problems).and_then(|roots| {
            let b = WebPkiClientVerifier::builder_with_provider(roots, provider.clone());
            let b = if kind == "VerifyClientCertIfGiven" {
                b.allow_unauthenticated()
            } else {
                b
            };
            b.build()
                .map_err(|e| problems.push(format!("{k}.client_ca_file: {e}")))
                .ok()
        }),
        kind @ ("RequestClientCert" | "RequireAnyClientCert" | "RequireClientCert") => {
            problems.push(format!(
                "{k}.client_auth_type: {kind} (accepting unverified client certificates) is not supported; \
                 use VerifyClientCertIfGiven or RequireAndVerifyClientCert with client_ca_file"
            ));
            None
        }
        other => {
            problems.push(format!(
                "{k}.client_auth_type: {other:?} is not one of NoClientCert, VerifyClientCertIfGiven, \
                 RequireAndVerifyClientCert"
            ));
            None
        }
    };
    if problems.len() > before {
        return None;
    }
    let builder = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&versions)
        .map_err(|e| problems.push(format!("{k}: {e}")))
        .ok()?;
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(certs?, key?)
        .map_err(|e| problems.push(format!("{k}: cert_file and key_file do not make a usable pair: {e}")))
        .ok()?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Some(config)
}

fn rank(v: &rustls::SupportedProtocolVersion) -> u8 {
    match v.version {
        rustls::ProtocolVersion::TLSv1_2 => 2,
        rustls::ProtocolVersion::TLSv1_3 => 3,
        _ => 0,
    }
}

/// Reads a PEM file holding at least one certificate.
fn read_certs(path: &Path, key: &str, problems: &mut Vec<String>) -> Option<Vec<CertificateDer<'static>>> {
    match CertificateDer::pem_file_iter(path).and_then(|it| it.collect::<Result<Vec<_>, _>>()) {
        Ok(certs) if certs.is_empty() => {
            problems.push(format!("{key}: {}: no PEM certificate found", path.display()));
            None
        }
        Ok(certs) => Some(certs),
        Err(e) => {
            problems.push(format!("{key}: {}: {}", path.display(), pem_error(&e)));
            None
        }
    }
}

fn pem_error(e: &rustls::pki_types::pem::Error) -> String {
    match e {
        rustls::pki_types::pem::Error::Io(io) => io.to_string(),
        rustls::pki_types::pem::Error::NoItemsFound => "no PEM item of the expected kind found".into(),
        other => format!("invalid PEM: {other:?}"),
    }
}

/// Users and their bcrypt hashes, and the cache of successful checks.
struct BasicAuth {
    users: HashMap<String, String>,
    /// SHA-256 of `user \0 password \0 hash` for credentials that verified.
    cache: Mutex<HashSet<[u8; 32]>>,
}

impl BasicAuth {
    /// Whether `Authorization` holds valid credentials.
    async fn check(self: Arc<Self>, authorization: Option<HeaderValue>) -> bool {
        let Some((user, password)) = authorization.as_ref().and_then(parse_basic) else {
            return false;
        };
        let hash = self.users.get(&user).cloned();
        let key: [u8; 32] = {
            let mut h = Sha256::new();
            h.update(user.as_bytes());
            h.update([0]);
            h.update(password.as_bytes());
            h.update([0]);
            h.update(hash.as_deref().unwrap_or("").as_bytes());
            h.finalize().into()
        };
        if hash.is_some() && self.cache.lock().is_ok_and(|c| c.contains(&key)) {
            return true;
        }
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| DUMMY_HASH.to_string());
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
            .await
            .unwrap_or(false)
            && known;
        if ok && let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= AUTH_CACHE_MAX {
                cache.clear();
            }
            cache.insert(key);
        }
        ok
    }
}

/// `Basic base64(user:password)` → `(user, password)`.
fn parse_basic(v: &HeaderValue) -> Option<(String, String)> {
    let v = v.to_str().ok()?;
    let (scheme, b64) = v.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD.decode(b64.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

async fn require_basic_auth(State(auth): State<Arc<BasicAuth>>, req: Request, next: Next) -> Response {
    if auth.check(req.headers().get(header::AUTHORIZATION).cloned()).await {
        next.run(req).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"barman-cloud-exporter\"")],
            "Unauthorized\n",
        )
            .into_response()
    }
}

/// A TLS listener for `axum::serve`: accepts TCP connections and runs each
/// handshake in its own task (bounded by [`HANDSHAKE_TIMEOUT`]), so a slow or
/// failing client never holds up the others. Failed handshakes are logged at
/// debug level and dropped. Dropping the listener stops accepting.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
    accept_task: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    /// Wraps a bound listener.
    ///
    /// # Errors
    /// If the listener's local address cannot be read.
    pub fn new(listener: TcpListener, config: Arc<ServerConfig>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (tx, ready) = mpsc::channel(64);
        let accept_task = tokio::spawn(async move {
            loop {
                let (tcp, addr) = match listener.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        warn!("accepting a connection failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => drop(tx.send((stream, addr)).await),
                        Ok(Err(e)) => debug!(%addr, "TLS handshake failed: {e}"),
                        Err(_) => debug!(%addr, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self {
            ready,
            local,
            accept_task,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accept_task.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The accept task ended (only when aborted): accept nothing more.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests;
