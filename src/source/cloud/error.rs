//! The Azure/GCS error taxonomy: [`CloudError`] by phase, classified into
//! the same bounded reasons as S3 ([`ErrorReason`]) from what the HTTP layer
//! saw (status, Azure's `x-ms-error-code`) and from the error's source chain
//! (`object_store`'s `HttpError` kind, rustls, our credential files).

use thiserror::Error;

use super::credentials::CredentialFileError;
use super::http::Seen;
use crate::config::Provider;
use crate::source::store::{ErrorReason, StoreError};

/// An Azure or GCS collection error. Carries the container/bucket and the
/// prefix or key, never a credential (SAS signatures are scrubbed).
#[derive(Debug, Error)]
pub enum CloudError {
    /// A listing failed.
    #[error("listing {provider} {bucket}/{prefix}: {message}")]
    List {
        /// Which store.
        provider: Provider,
        /// Container or bucket.
        bucket: String,
        /// Prefix listed.
        prefix: String,
        /// Classified reason.
        reason: ErrorReason,
        /// What went wrong.
        message: String,
    },
    /// A GET failed in a way that makes the walk unreliable (network, 5xx).
    #[error("reading {provider} {bucket}/{key}: {message}")]
    Get {
        /// Which store.
        provider: Provider,
        /// Container or bucket.
        bucket: String,
        /// Key.
        key: String,
        /// Classified reason.
        reason: ErrorReason,
        /// What went wrong.
        message: String,
    },
    /// The client could not be built (a credential file, a bad CA bundle,
    /// a destination the config check should have refused).
    #[error("{provider} client: {message}")]
    Build {
        /// Which store.
        provider: Provider,
        /// Classified reason.
        reason: ErrorReason,
        /// What went wrong.
        message: String,
    },
}

impl CloudError {
    /// The bounded reason label.
    pub fn reason(&self) -> ErrorReason {
        match self {
            Self::List { reason, .. } | Self::Get { reason, .. } | Self::Build { reason, .. } => *reason,
        }
    }
}

impl StoreError for CloudError {
    fn reason(&self) -> ErrorReason {
        CloudError::reason(self)
    }
}

/// The reason of a failed request from the status the HTTP layer saw:
/// 403 access denied; 404 on a listing, or Azure's `ContainerNotFound`, a
/// missing bucket/container; 429 and 503 throttled; other 5xx server error;
/// other 4xx and 3xx client error; a 2xx whose body failed, invalid response.
pub fn from_status(status: u16, error_code: Option<&str>, listing: bool) -> ErrorReason {
    match (status, error_code) {
        (_, Some("ContainerNotFound")) => ErrorReason::NoSuchBucket,
        (403, _) | (401, _) => ErrorReason::AccessDenied,
        (404, _) if listing => ErrorReason::NoSuchBucket,
        (429 | 503, _) => ErrorReason::Throttled,
        (500.., _) => ErrorReason::ServerError,
        (300..=499, _) => ErrorReason::ClientError,
        _ => ErrorReason::InvalidResponse,
    }
}

/// Classifies a failed `object_store` call given what the HTTP layer saw of
/// its last attempt.
pub fn classify(err: &object_store::Error, seen: &Seen, listing: bool) -> ErrorReason {
    if let Some(status) = seen.status {
        return from_status(status, seen.error_code.as_deref(), listing);
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if e.downcast_ref::<CredentialFileError>().is_some() {
            return ErrorReason::Credentials;
        }
        if crate::source::tls::is_tls_failure(e) {
            return ErrorReason::Tls;
        }
        if let Some(h) = e.downcast_ref::<object_store::client::HttpError>() {
            use object_store::client::HttpErrorKind as K;
            return match h.kind() {
                K::Timeout => ErrorReason::Timeout,
                K::Decode => ErrorReason::InvalidResponse,
                _ if std::error::Error::source(h).is_some_and(crate::source::tls::is_tls_failure) => ErrorReason::Tls,
                _ => ErrorReason::Connect,
            };
        }
        cur = e.source();
    }
    match err {
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
            ErrorReason::AccessDenied
        }
        _ => ErrorReason::Other,
    }
}

/// `message` with every SAS signature and token value replaced by `***`
/// (`sig=…`, `se=`… stay readable; only secrets go).
pub fn scrub(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(i) = rest.find("sig=") {
        let boundary = i == 0 || matches!(rest.as_bytes()[i - 1], b'?' | b'&' | b' ' | b';');
        out.push_str(&rest[..i + 4]);
        rest = &rest[i + 4..];
        if boundary {
            let end = rest.find(['&', ' ', ';', '"', '\'', ')']).unwrap_or(rest.len());
            out.push_str("***");
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_the_s3_reasons() {
        assert_eq!(
            from_status(403, Some("AuthenticationFailed"), true),
            ErrorReason::AccessDenied
        );
        assert_eq!(
            from_status(404, Some("ContainerNotFound"), true),
            ErrorReason::NoSuchBucket
        );
        assert_eq!(from_status(404, None, true), ErrorReason::NoSuchBucket);
        assert_eq!(from_status(404, Some("BlobNotFound"), false), ErrorReason::ClientError);
        assert_eq!(from_status(503, Some("ServerBusy"), true), ErrorReason::Throttled);
        assert_eq!(from_status(429, None, false), ErrorReason::Throttled);
        assert_eq!(from_status(500, None, true), ErrorReason::ServerError);
        assert_eq!(from_status(301, None, true), ErrorReason::ClientError);
        assert_eq!(from_status(200, None, true), ErrorReason::InvalidResponse);
    }

    #[test]
    fn credential_file_errors_are_credentials() {
        let e = object_store::Error::Generic {
            store: "MicrosoftAzure",
            source: Box::new(CredentialFileError {
                path: "/k".into(),
                message: "gone".into(),
            }),
        };
        assert_eq!(classify(&e, &Seen::default(), true), ErrorReason::Credentials);
    }

    #[test]
    fn signatures_are_scrubbed() {
        assert_eq!(
            scrub("GET http://h/c?sv=1&sig=abc%2Bdef&se=2 failed"),
            "GET http://h/c?sv=1&sig=***&se=2 failed"
        );
        assert_eq!(scrub("no secrets; design=ok"), "no secrets; design=ok");
        assert_eq!(scrub("sig=x y sig=z"), "sig=*** y sig=***");
    }
}
