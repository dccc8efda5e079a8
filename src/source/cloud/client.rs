//! Building the `object_store` client of an Azure or GCS target: endpoint,
//! credentials in barman's order, timeouts, retries, CA bundle, and the
//! counting HTTP layer ([`super::http::Connector`]).

use std::sync::Arc;
use std::time::Duration;

use object_store::azure::MicrosoftAzureBuilder;
use object_store::gcp::GoogleCloudStorageBuilder;
use object_store::{BackoffConfig, Certificate, ClientOptions, RetryConfig};

use super::credentials::{ConnectionString, FileCredential, FileKind, access_key, sas_token};
use super::error::CloudError;
use super::http::Connector;
use super::{Backend, CloudSource};
use crate::config::{Destination, Provider, Target};
use crate::source::s3::RequestCounter;
use crate::source::store::ErrorReason;

/// Environment variables barman and CloudNativePG use for Azure, in
/// barman's order of precedence (`azure_blob_storage.py::_reinit_session`).
pub const AZURE_ENV: [&str; 3] = [
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_KEY",
];

/// The emulator variable Google's client libraries honour: its value
/// (`host:port` or a URL) is the endpoint, used anonymously.
pub const STORAGE_EMULATOR_HOST: &str = "STORAGE_EMULATOR_HOST";

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// `host[:port]` of `url`, as an HTTP request's authority shows it.
fn authority(url: &str) -> Result<String, String> {
    let u = url::Url::parse(url).map_err(|e| format!("endpoint is not a URL ({e})"))?;
    let host = u.host_str().ok_or("endpoint has no host")?;
    Ok(match u.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_string(),
    })
}

fn options(target: &Target) -> Result<ClientOptions, CloudError> {
    let mut o = ClientOptions::new()
        .with_allow_http(true)
        .with_timeout(Duration::from_secs(60))
        .with_connect_timeout(Duration::from_secs(10));
    if let Some(ca) = &target.ca_file {
        let build = |message: String| CloudError::Build {
            provider: target.provider(),
            reason: ErrorReason::Tls,
            message,
        };
        let pem = crate::source::tls::read_ca_bundle(ca).map_err(build)?;
        for c in Certificate::from_pem_bundle(&pem).map_err(|e| build(format!("ca_file: {e}")))? {
            o = o.with_root_certificate(c);
        }
    }
    Ok(o)
}

/// Two more attempts after the first, within 60 s (like the S3 client's
/// three attempts).
fn retries() -> RetryConfig {
    RetryConfig {
        backoff: BackoffConfig::default(),
        max_retries: 2,
        retry_timeout: Duration::from_secs(60),
    }
}

impl CloudSource {
    /// Builds the client of an Azure or GCS `target`; every request sent to
    /// its storage endpoint is counted in `requests`.
    ///
    /// Azure credentials, in barman's order: `azure_connection_string_file`,
    /// `azure_storage_key_file`, `azure_sas_token_file` (files re-read every
    /// 5 minutes), then `AZURE_STORAGE_CONNECTION_STRING`,
    /// `AZURE_STORAGE_SAS_TOKEN`, `AZURE_STORAGE_KEY`, then the default chain
    /// (workload identity from `AZURE_CLIENT_ID`, `AZURE_TENANT_ID`,
    /// `AZURE_FEDERATED_TOKEN_FILE`; else managed identity). A connection
    /// string's endpoint replaces the URL's, as in barman.
    ///
    /// GCS: `endpoint_url`, else `STORAGE_EMULATOR_HOST`, else
    /// `https://storage.googleapis.com`; anonymous whenever
    /// `STORAGE_EMULATOR_HOST` is set; credentials from
    /// `google_application_credentials_file`, else
    /// `GOOGLE_APPLICATION_CREDENTIALS`, else the metadata server.
    ///
    /// # Errors
    /// [`CloudError::Build`]: a destination or endpoint that does not parse,
    /// an unreadable credential file or CA bundle.
    pub fn new(target: &Target, requests: Arc<RequestCounter>) -> Result<Self, CloudError> {
        let d = target.destination().map_err(|message| CloudError::Build {
            provider: target.provider(),
            reason: ErrorReason::Other,
            message,
        })?;
        let (store, endpoint) = match d.provider {
            Provider::Azure => azure(target, &d, requests)?,
            Provider::Gcs => gcs(target, &d, requests)?,
            Provider::S3 => {
                return Err(CloudError::Build {
                    provider: Provider::S3,
                    reason: ErrorReason::Other,
                    message: "an s3:// target is walked by the S3 client".into(),
                });
            }
        };
        Ok(Self {
            store,
            provider: d.provider,
            bucket: d.bucket,
            prefix: d.prefix,
            endpoint,
        })
    }
}

fn build_err(provider: Provider, reason: ErrorReason) -> impl Fn(String) -> CloudError {
    move |message| CloudError::Build {
        provider,
        reason,
        message,
    }
}

fn azure(
    target: &Target,
    d: &Destination,
    requests: Arc<RequestCounter>,
) -> Result<(Arc<dyn Backend>, String), CloudError> {
    let other = build_err(Provider::Azure, ErrorReason::Other);
    let creds = build_err(Provider::Azure, ErrorReason::Credentials);
    let account = d.account.clone().unwrap_or_default();
    let mut endpoint = d.service_url.clone().unwrap_or_default();
    let mut b = MicrosoftAzureBuilder::from_env()
        .with_account(account)
        .with_container_name(&d.bucket)
        .with_retry(retries())
        .with_client_options(options(target)?);
    let file = [
        (&target.azure_connection_string_file, FileKind::ConnectionString),
        (&target.azure_storage_key_file, FileKind::Key),
        (&target.azure_sas_token_file, FileKind::Sas),
    ]
    .into_iter()
    .find_map(|(p, kind)| p.clone().map(|p| (p, kind)));
    if let Some((path, kind)) = file {
        let provider = FileCredential::new(path, kind);
        // Read once now: a missing file is a clear build error, and a
        // connection string's endpoint is needed before the first request.
        provider.load().map_err(|e| creds(e.to_string()))?;
        if kind == FileKind::ConnectionString
            && let Some(e) = target
                .azure_connection_string_file
                .as_deref()
                .and_then(|p| std::fs::read_to_string(p).ok())
                .and_then(|t| ConnectionString::parse(&t).ok())
                .and_then(|c| c.blob_endpoint())
        {
            endpoint = e;
        }
        b = b.with_credentials(Arc::new(provider));
    } else if let Some(cs) = env(AZURE_ENV[0]) {
        let cs = ConnectionString::parse(&cs).map_err(|e| creds(format!("{}: {e}", AZURE_ENV[0])))?;
        if let Some(e) = cs.blob_endpoint() {
            endpoint = e;
        }
        let cred = cs.credential().map_err(|e| creds(format!("{}: {e}", AZURE_ENV[0])))?;
        b = b.with_credentials(Arc::new(object_store::StaticCredentialProvider::new(cred)));
    } else if let Some(sas) = env(AZURE_ENV[1]) {
        let cred = sas_token(&sas).map_err(|e| creds(format!("{}: {e}", AZURE_ENV[1])))?;
        b = b.with_credentials(Arc::new(object_store::StaticCredentialProvider::new(cred)));
    } else if let Some(key) = env(AZURE_ENV[2]) {
        let cred = access_key(&key).map_err(|e| creds(format!("{}: {e}", AZURE_ENV[2])))?;
        b = b.with_credentials(Arc::new(object_store::StaticCredentialProvider::new(cred)));
    }
    let auth = authority(&endpoint).map_err(&other)?;
    let store = b
        .with_endpoint(endpoint.clone())
        .with_http_connector(Connector {
            provider: Provider::Azure,
            authority: auth,
            requests,
        })
        .build()
        .map_err(|e| other(super::error::scrub(&e.to_string())))?;
    Ok((Arc::new(store), endpoint))
}

fn gcs(
    target: &Target,
    d: &Destination,
    requests: Arc<RequestCounter>,
) -> Result<(Arc<dyn Backend>, String), CloudError> {
    let other = build_err(Provider::Gcs, ErrorReason::Other);
    let mut b = GoogleCloudStorageBuilder::from_env()
        .with_bucket_name(&d.bucket)
        .with_retry(retries())
        .with_client_options(options(target)?);
    let emulator = env(STORAGE_EMULATOR_HOST).map(|h| {
        if h.contains("://") {
            h.trim_end_matches('/').to_string()
        } else {
            format!("http://{}", h.trim_end_matches('/'))
        }
    });
    // With an emulator, requests are anonymous (as Google's client libraries
    // do); endpoint_url still wins as the endpoint.
    if emulator.is_some() {
        b = b.with_skip_signature(true);
    }
    let endpoint = match (&target.endpoint_url, &emulator) {
        (Some(e), _) => e.trim_end_matches('/').to_string(),
        (None, Some(e)) => e.clone(),
        (None, None) => "https://storage.googleapis.com".to_string(),
    };
    if let Some(path) = &target.google_application_credentials_file {
        std::fs::metadata(path).map_err(|e| {
            build_err(Provider::Gcs, ErrorReason::Credentials)(format!(
                "google_application_credentials_file {}: {e}",
                path.display()
            ))
        })?;
        b = b.with_application_credentials(path.to_string_lossy());
    }
    let auth = authority(&endpoint).map_err(&other)?;
    let store = b
        .with_base_url(&endpoint)
        .with_http_connector(Connector {
            provider: Provider::Gcs,
            authority: auth,
            requests,
        })
        .build()
        .map_err(|e| other(e.to_string()))?;
    Ok((Arc::new(store), endpoint))
}
