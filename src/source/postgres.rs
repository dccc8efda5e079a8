//! PostgreSQL source: `pg_stat_archiver` and the current WAL position.
//!
//! Works with a non-superuser role (`pg_monitor` is enough; `pg_stat_archiver`
//! and `pg_current_wal_lsn()` are readable by any role). TLS follows libpq's
//! `sslmode` from the URL, implemented with rustls:
//!
//! | sslmode | encryption | certificate check |
//! |---|---|---|
//! | `disable` | no | – |
//! | `allow`, `prefer` (default) | if the server offers it | none |
//! | `require` | yes | none (chain only if `sslrootcert` is given, as libpq) |
//! | `verify-ca` | yes | chain against `sslrootcert`, else the Mozilla roots |
//! | `verify-full` | yes | chain and host name |

use std::sync::Arc;
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use thiserror::Error;
use tokio_postgres::config::SslMode;
use tokio_postgres::error::SqlState;

use crate::catalog::wal::parse_lsn;

/// `pg_stat_archiver`, read as epoch seconds.
const ARCHIVER_SQL: &str = "SELECT archived_count, last_archived_wal, \
     extract(epoch FROM last_archived_time)::float8, failed_count, last_failed_wal, \
     extract(epoch FROM last_failed_time)::float8, extract(epoch FROM stats_reset)::float8 \
     FROM pg_stat_archiver";
/// Whether the server is a standby.
const IN_RECOVERY_SQL: &str = "SELECT pg_is_in_recovery()";
/// The server's WAL segment size in bytes (`wal_segment_size` has unit `B` since PostgreSQL 11).
const SEGMENT_SIZE_SQL: &str = "SELECT setting::bigint FROM pg_settings WHERE name = 'wal_segment_size'";
/// Current WAL write position and its segment file (primary only).
const CURRENT_WAL_SQL: &str = "SELECT pg_current_wal_lsn()::text, pg_walfile_name(pg_current_wal_lsn())";

/// Why a PostgreSQL collection failed: the bounded `reason` label of
/// `barman_cloud_collector_errors_total{collector="postgres"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgErrorReason {
    /// The URL or `url_file` is invalid or unreadable.
    Config,
    /// The server could not be reached.
    Connect,
    /// Authentication failed.
    Auth,
    /// The TLS handshake or certificate check failed.
    Tls,
    /// A query failed.
    Query,
    /// The collection did not finish before the target's `timeout`.
    Timeout,
}

impl PgErrorReason {
    /// Every reason, in label order: the bounded label set of
    /// `barman_cloud_collector_errors_total{collector="postgres"}`.
    pub const ALL: [Self; 6] = [
        Self::Config,
        Self::Connect,
        Self::Auth,
        Self::Tls,
        Self::Query,
        Self::Timeout,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Connect => "connect",
            Self::Auth => "auth",
            Self::Tls => "tls",
            Self::Query => "query",
            Self::Timeout => "timeout",
        }
    }
}

/// A PostgreSQL collection error. Never contains the password.
#[derive(Debug, Error)]
#[error("{message}")]
pub struct PgError {
    /// Classified reason.
    pub reason: PgErrorReason,
    /// Human-readable message (host and port, no credentials).
    pub message: String,
}

impl PgError {
    /// An error of `reason` with `message` (which must hold no credential).
    pub fn new(reason: PgErrorReason, message: impl Into<String>) -> Self {
        Self {
            reason,
            message: message.into(),
        }
    }

    fn from_pg(e: &tokio_postgres::Error, target: &str) -> Self {
        let detail = e
            .as_db_error()
            .map_or_else(|| source_chain(e), |db| db.message().to_string());
        Self::new(classify(e), format!("postgres {target}: {detail}"))
    }
}

/// The reason of a `tokio_postgres` error, from typed facts only:
///
/// 1. the server's SQLSTATE (`28P01` invalid password, `28000` no
///    `pg_hba.conf` entry: [`PgErrorReason::Auth`]; any other: a failed
///    [`PgErrorReason::Query`]);
/// 2. else a [`rustls::Error`] anywhere in the error's source chain (directly
///    or inside an `io::Error`, as tokio-rustls reports a failed handshake):
///    [`PgErrorReason::Tls`];
/// 3. else the error's kind, for the errors tokio-postgres raises with an
///    untyped message ("server does not support TLS", an invalid SNI name,
///    "password missing" when the server asks for one the URL lacks). The
///    kind is private to tokio-postgres; it is the fixed first part of its
///    `Display` (`error performing TLS handshake`: [`PgErrorReason::Tls`],
///    `authentication error`: [`PgErrorReason::Auth`], `invalid
///    configuration`: [`PgErrorReason::Config`], `timeout waiting for
///    server`: [`PgErrorReason::Timeout`]);
/// 4. else an `io::Error` of kind `TimedOut` in the chain (the connect
///    timeout) is [`PgErrorReason::Timeout`], anything else (refused, reset,
///    unreachable, closed) [`PgErrorReason::Connect`].
fn classify(e: &tokio_postgres::Error) -> PgErrorReason {
    if let Some(code) = e.code() {
        return if *code == SqlState::INVALID_PASSWORD || *code == SqlState::INVALID_AUTHORIZATION_SPECIFICATION {
            PgErrorReason::Auth
        } else {
            PgErrorReason::Query
        };
    }
    let mut io_kind = None;
    let mut cur = std::error::Error::source(e);
    while let Some(c) = cur {
        if c.is::<rustls::Error>() {
            return PgErrorReason::Tls;
        }
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            // `io::Error::source` skips the wrapped error itself: look at it.
            if io.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
                return PgErrorReason::Tls;
            }
            io_kind.get_or_insert(io.kind());
        }
        cur = c.source();
    }
    let text = e.to_string();
    if text.starts_with("error performing TLS handshake") {
        PgErrorReason::Tls
    } else if text.starts_with("authentication error") {
        PgErrorReason::Auth
    } else if text.starts_with("invalid configuration") {
        PgErrorReason::Config
    } else if text.starts_with("timeout waiting for server") || io_kind == Some(std::io::ErrorKind::TimedOut) {
        PgErrorReason::Timeout
    } else {
        PgErrorReason::Connect
    }
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// What `pg_stat_archiver` and the WAL position functions said.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ArchiverStatus {
    /// `archived_count`.
    pub archived_count: i64,
    /// `last_archived_wal` (a segment, `.history`, `.partial` or `.backup` name).
    pub last_archived_wal: Option<String>,
    /// `last_archived_time`, Unix seconds.
    pub last_archived_time: Option<f64>,
    /// `failed_count`.
    pub failed_count: i64,
    /// `last_failed_wal`.
    pub last_failed_wal: Option<String>,
    /// `last_failed_time`, Unix seconds.
    pub last_failed_time: Option<f64>,
    /// `stats_reset`, Unix seconds.
    pub stats_reset: Option<f64>,
    /// `pg_is_in_recovery()`.
    pub in_recovery: bool,
    /// `pg_current_wal_lsn()` in bytes (primary only).
    pub current_wal_lsn: Option<u64>,
    /// `pg_walfile_name(pg_current_wal_lsn())` (primary only).
    pub current_wal_file: Option<String>,
    /// `wal_segment_size` in bytes.
    pub wal_segment_size: Option<u64>,
}

impl ArchiverStatus {
    /// Full segments between the last archived one and the segment being
    /// written (primary only; `None` when the last archived file is not a
    /// plain segment on the current timeline); the arithmetic is
    /// [`crate::catalog::archiver::pending_segments`].
    pub fn pending_segments(&self) -> Option<u64> {
        crate::catalog::archiver::pending_segments(
            self.last_archived_wal.as_deref()?,
            self.current_wal_file.as_deref()?,
            self.wal_segment_size?,
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

/// A parsed connection URL plus libpq TLS settings.
#[derive(Clone)]
pub struct PgTarget {
    config: tokio_postgres::Config,
    tls: TlsMode,
    root_cert: Option<String>,
    statement_timeout: Option<Duration>,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl PgTarget {
    /// Parses a libpq URL (`postgresql://user:pass@host:port/db?sslmode=...`)
    /// or key/value string (`host=... user=... sslmode=...`).
    ///
    /// # Errors
    /// A [`PgError`] with reason `config` for an unknown option or bad value;
    /// the message never repeats the URL.
    pub fn parse(url: &str) -> Result<Self, PgError> {
        let mut tls = TlsMode::Prefer;
        let mut root_cert = None;
        let mut take = |key: &str, value: &str| -> Result<bool, PgError> {
            match key {
                "sslmode" => {
                    tls = match value {
                        "disable" => TlsMode::Disable,
                        "allow" | "prefer" => TlsMode::Prefer,
                        "require" => TlsMode::Require,
                        "verify-ca" => TlsMode::VerifyCa,
                        "verify-full" => TlsMode::VerifyFull,
                        _ => {
                            return Err(PgError::new(
                                PgErrorReason::Config,
                                format!("invalid sslmode {value:?}"),
                            ));
                        }
                    };
                    Ok(true)
                }
                "sslrootcert" => {
                    root_cert = Some(
                        percent_encoding::percent_decode_str(value)
                            .decode_utf8_lossy()
                            .into_owned(),
                    );
                    Ok(true)
                }
                _ => Ok(false),
            }
        };
        let rest = if let Some((base, query)) = url
            .split_once('?')
            .filter(|_| url.starts_with("postgres://") || url.starts_with("postgresql://"))
        {
            let mut kept = Vec::new();
            for pair in query.split('&').filter(|p| !p.is_empty()) {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                if !take(k, v)? {
                    kept.push(pair);
                }
            }
            if kept.is_empty() {
                base.to_string()
            } else {
                format!("{base}?{}", kept.join("&"))
            }
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            url.to_string()
        } else {
            let mut kept = Vec::new();
            for tok in url.split_whitespace() {
                let (k, v) = tok.split_once('=').unwrap_or((tok, ""));
                if !take(k.trim(), v.trim())? {
                    kept.push(tok);
                }
            }
            kept.join(" ")
        };
        let mut config: tokio_postgres::Config = rest
            .parse()
            .map_err(|e: tokio_postgres::Error| PgError::new(PgErrorReason::Config, format!("invalid URL: {e}")))?;
        config.ssl_mode(match tls {
            TlsMode::Disable => SslMode::Disable,
            TlsMode::Prefer => SslMode::Prefer,
            _ => SslMode::Require,
        });
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(10));
        }
        if config.get_application_name().is_none() {
            config.application_name("barman-cloud-exporter");
        }
        Ok(Self {
            config,
            tls,
            root_cert,
            statement_timeout: None,
        })
    }

    /// `user@host:port/dbname`, for logs and the landing page (no password).
    pub fn redacted(&self) -> String {
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .map(|h| match h {
                tokio_postgres::config::Host::Tcp(h) => h.clone(),
                #[cfg(unix)]
                tokio_postgres::config::Host::Unix(p) => p.display().to_string(),
            })
            .collect();
        let ports: Vec<String> = self.config.get_ports().iter().map(u16::to_string).collect();
        format!(
            "{}@{}:{}/{}",
            self.config.get_user().unwrap_or(""),
            hosts.join(","),
            if ports.is_empty() {
                "5432".into()
            } else {
                ports.join(",")
            },
            self.config.get_dbname().unwrap_or("")
        )
    }

    fn tls_config(&self) -> Result<ClientConfig, PgError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls_err = |e: rustls::Error| PgError::new(PgErrorReason::Tls, format!("TLS setup: {e}"));
        let mut roots = RootCertStore::empty();
        if let Some(path) = &self.root_cert {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| PgError::new(PgErrorReason::Config, format!("sslrootcert {path}: {e}")))?;
            for c in certs {
                roots
                    .add(c)
                    .map_err(|e| PgError::new(PgErrorReason::Config, format!("sslrootcert {path}: {e}")))?;
            }
        } else {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(tls_err)?;
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| PgError::new(PgErrorReason::Tls, format!("TLS setup: {e}")))?;
        let check = match (self.tls, &self.root_cert) {
            (TlsMode::VerifyFull, _) => CertCheck::Full,
            (TlsMode::VerifyCa, _) | (TlsMode::Require, Some(_)) => CertCheck::ChainOnly,
            _ => CertCheck::None,
        };
        let verifier = Arc::new(LibpqVerifier { webpki, check });
        Ok(builder
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth())
    }

    /// Makes the server cancel any of our statements still running after
    /// `limit` (`SET statement_timeout` first thing in the session). Dropping
    /// the connection at the collection deadline does not stop a backend busy
    /// in a query (it only notices the closed socket when it next writes), so
    /// without this a hung query would outlive the deadline on the server.
    pub fn with_statement_timeout(mut self, limit: Duration) -> Self {
        self.statement_timeout = Some(limit);
        self
    }

    /// Connects, reads `pg_stat_archiver`, `pg_is_in_recovery()` and, on a
    /// primary, the current WAL position; then disconnects.
    ///
    /// # Errors
    /// [`PgError`] classified as connect/auth/tls/query.
    pub async fn collect(&self) -> Result<ArchiverStatus, PgError> {
        let name = self.redacted();
        let client = if self.tls == TlsMode::Disable {
            let (client, conn) = self
                .config
                .connect(tokio_postgres::NoTls)
                .await
                .map_err(|e| PgError::from_pg(&e, &name))?;
            (client, AbortOnDrop(tokio::spawn(async move { drop(conn.await) })))
        } else {
            let tls = tokio_postgres_rustls::MakeRustlsConnect::new(self.tls_config()?);
            let (client, conn) = self
                .config
                .connect(tls)
                .await
                .map_err(|e| PgError::from_pg(&e, &name))?;
            (client, AbortOnDrop(tokio::spawn(async move { drop(conn.await) })))
        };
        let (client, _conn) = client;
        let q = |e: tokio_postgres::Error| PgError::from_pg(&e, &name);
        if let Some(limit) = self.statement_timeout {
            let ms = limit.as_millis().max(1);
            client
                .batch_execute(&format!("SET statement_timeout = {ms}"))
                .await
                .map_err(q)?;
        }
        let row = client.query_one(ARCHIVER_SQL, &[]).await.map_err(q)?;
        let in_recovery: bool = client.query_one(IN_RECOVERY_SQL, &[]).await.map_err(q)?.get(0);
        let wal_segment_size: Option<i64> = client.query_one(SEGMENT_SIZE_SQL, &[]).await.map_err(q)?.get(0);
        let (current_wal_lsn, current_wal_file) = if in_recovery {
            (None, None)
        } else {
            let r = client.query_one(CURRENT_WAL_SQL, &[]).await.map_err(q)?;
            (parse_lsn(r.get::<_, &str>(0)), Some(r.get::<_, String>(1)))
        };
        Ok(ArchiverStatus {
            archived_count: row.get(0),
            last_archived_wal: row.get(1),
            last_archived_time: row.get(2),
            failed_count: row.get(3),
            last_failed_wal: row.get(4),
            last_failed_time: row.get(5),
            stats_reset: row.get(6),
            in_recovery,
            current_wal_lsn,
            current_wal_file,
            wal_segment_size: wal_segment_size.and_then(|v| u64::try_from(v).ok()),
        })
    }
}

/// Aborts the connection task when the collection is dropped (e.g. by the
/// target's hard timeout), so no work outlives it.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// libpq's certificate checks on top of webpki: `Full` checks chain and host
/// name (`verify-full`), `ChainOnly` the chain (`verify-ca`, or `require` with
/// `sslrootcert`), `None` nothing (`prefer`/`require`: encryption without
/// authentication). Handshake signatures are always verified.
#[derive(Debug)]
struct LibpqVerifier {
    webpki: Arc<WebPkiServerVerifier>,
    check: CertCheck,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CertCheck {
    Full,
    ChainOnly,
    None,
}

impl ServerCertVerifier for LibpqVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self.check == CertCheck::None {
            return Ok(ServerCertVerified::assertion());
        }
        match self
            .webpki
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForName | rustls::CertificateError::NotValidForNameContext { .. },
            )) if self.check == CertCheck::ChainOnly => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_libpq_tls_options_and_redacts() {
        let t = PgTarget::parse("postgresql://exp:s3cret@db.example:6543/postgres?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem&application_name=x")
            .unwrap();
        assert_eq!(t.tls, TlsMode::VerifyFull);
        assert_eq!(t.root_cert.as_deref(), Some("/tmp/ca.pem"));
        assert_eq!(t.redacted(), "exp@db.example:6543/postgres");
        assert!(!format!("{t:?}").contains("s3cret"));
        let t =
            PgTarget::parse("host=127.0.0.1 port=5433 user=exp password=pw dbname=postgres sslmode=disable").unwrap();
        assert_eq!(t.tls, TlsMode::Disable);
        assert_eq!(t.redacted(), "exp@127.0.0.1:5433/postgres");
        assert_eq!(PgTarget::parse("postgresql://h/db").unwrap().tls, TlsMode::Prefer);
    }

    #[test]
    fn pending_segments_between_archived_and_current() {
        let mut a = ArchiverStatus {
            archived_count: 1,
            last_archived_wal: Some("0000000200000000000000FE".into()),
            last_archived_time: None,
            failed_count: 0,
            last_failed_wal: None,
            last_failed_time: None,
            stats_reset: None,
            in_recovery: false,
            current_wal_lsn: None,
            current_wal_file: Some("000000020000000100000002".into()),
            wal_segment_size: Some(16 << 20),
        };
        // FF, 1/00, 1/01 are complete but not archived; 1/02 is being written.
        assert_eq!(a.pending_segments(), Some(3));
        a.last_archived_wal = Some("000000020000000100000001".into());
        assert_eq!(a.pending_segments(), Some(0));
        a.last_archived_wal = Some("000000020000000100000001.00000028.backup".into());
        assert_eq!(a.pending_segments(), None);
    }

    #[test]
    fn bad_urls_are_config_errors_without_the_secret() {
        let e = PgTarget::parse("postgresql://u:topsecret@h/db?sslmode=sometimes").unwrap_err();
        assert_eq!(e.reason, PgErrorReason::Config);
        assert!(!e.message.contains("topsecret"));
        let e = PgTarget::parse("postgresql://u:topsecret@h/db?bogus_option=1").unwrap_err();
        assert_eq!(e.reason, PgErrorReason::Config);
        assert!(!e.message.contains("topsecret"), "{}", e.message);
    }
}
