//! TLS for the S3 client: a target's `ca_file` (a PEM bundle, like the
//! ObjectStore's `endpointCA`).
//!
//! With `ca_file`, the bundle **replaces** the system roots for that target,
//! as barman-cloud does with `endpointCA` (botocore's `verify=<bundle>` /
//! `AWS_CA_BUNDLE`): the endpoint must present a chain to one of the bundle's
//! certificates, and the host name is always checked. To trust a public CA as
//! well, append it to the bundle. Without `ca_file`, the SDK's default HTTPS
//! client and the system roots are used.

use std::error::Error as StdError;
use std::path::Path;

use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use rustls::RootCertStore;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Reads a PEM bundle and checks that it holds at least one certificate and
/// that every certificate is usable as a trust anchor. Returns the file's bytes.
///
/// # Errors
/// A message (without the path, which the caller names) when the file cannot
/// be read, is not PEM, holds no certificate, or holds a certificate that does
/// not parse.
pub fn read_ca_bundle(path: &Path) -> Result<Vec<u8>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{}: not a PEM certificate bundle: {e:?}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{}: no PEM certificate (-----BEGIN CERTIFICATE-----) found",
            path.display()
        ));
    }
    let mut roots = RootCertStore::empty();
    for (i, c) in certs.into_iter().enumerate() {
        roots
            .add(c)
            .map_err(|e| format!("{}: certificate #{}: {e}", path.display(), i + 1))?;
    }
    Ok(pem)
}

/// An HTTPS client (rustls with aws-lc) that trusts only the certificates of
/// the PEM bundle at `ca_file`, for `aws_sdk_s3::config::Builder::http_client`.
///
/// # Errors
/// As [`read_ca_bundle`]: the bundle is checked again here, so a file changed
/// since start-up fails this target cleanly instead of the connector panicking.
pub fn http_client_with_ca(ca_file: &Path) -> Result<SharedHttpClient, String> {
    let pem = read_ca_bundle(ca_file)?;
    let context = TlsContext::builder()
        .with_trust_store(TrustStore::empty().with_pem_certificate(pem))
        .build()
        .map_err(|e| format!("{}: {e}", ca_file.display()))?;
    Ok(aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
        .tls_context(context)
        .build_https())
}

/// Idle connections kept per host by [`shared_http_client`].
pub const MAX_IDLE_PER_HOST: usize = 32;

/// The HTTP client S3 targets without a `ca_file` share (rustls with
/// aws-lc, the system's and Mozilla's roots as the SDK's default): one
/// connection pool for the whole exporter, so that connections (and their
/// read buffers, up to a listing page each) are reused across targets instead
/// of each target keeping its own. Idle connections are closed after
/// `idle` (a collection interval apart, a kept connection only holds memory),
/// and at most [`MAX_IDLE_PER_HOST`] are kept per host: a cold walk of many
/// targets has hundreds of requests in flight, and every connection left
/// idle after it would keep its read buffer (heaptrack on the 1,000-server
/// fleet: 58 MB of heap at the peak without the cap, 40 MB with it).
pub fn shared_http_client(idle: std::time::Duration) -> SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .pool_idle_timeout(idle)
        .pool_max_idle_per_host(MAX_IDLE_PER_HOST)
        .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::AwsLc))
        .build_https()
}

/// Whether `err` or one of its sources is a TLS failure (a rustls error:
/// unknown issuer, name mismatch, expired certificate, handshake failure).
pub fn is_tls_failure(err: &(dyn StdError + 'static)) -> bool {
    if err.downcast_ref::<rustls::Error>().is_some() {
        return true;
    }
    // `io::Error::source` skips the wrapped error itself (it returns the
    // wrapped error's source), and hyper-rustls nests io errors: look inside.
    if let Some(inner) = err.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref())
        && is_tls_failure(inner)
    {
        return true;
    }
    err.source().is_some_and(is_tls_failure)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_files_without_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        assert!(read_ca_bundle(&missing).unwrap_err().contains("missing.pem"));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no pem here\n").unwrap();
        assert!(read_ca_bundle(&empty).unwrap_err().contains("no PEM certificate"));
        let bad = dir.path().join("bad.pem");
        std::fs::write(&bad, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").unwrap();
        assert!(read_ca_bundle(&bad).is_err());
        assert!(http_client_with_ca(&bad).is_err());
    }

    #[test]
    fn finds_rustls_errors_in_io_errors() {
        let tls = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        assert!(is_tls_failure(&tls));
        // As hyper-rustls reports it: an io error wrapping an io error wrapping rustls's.
        let nested = std::io::Error::other(tls);
        assert!(is_tls_failure(&nested));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(!is_tls_failure(&refused));
    }
}
