//! The S3 error taxonomy: [`S3Error`] by phase (list, get, credentials,
//! configuration), and the classification of the SDK's errors into the
//! bounded [`S3ErrorReason`] label.

use std::path::PathBuf;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use thiserror::Error;

use crate::source::store::StoreError;

pub use crate::source::store::ErrorReason as S3ErrorReason;

/// An S3 collection error. Carries bucket and prefix, never credentials.
#[derive(Debug, Error)]
pub enum S3Error {
    /// A listing failed.
    #[error("listing s3://{bucket}/{prefix}: {message}")]
    List {
        /// Bucket.
        bucket: String,
        /// Prefix listed.
        prefix: String,
        /// Classified reason.
        reason: S3ErrorReason,
        /// The SDK's message.
        message: String,
    },
    /// A GET failed in a way that makes the whole walk unreliable (network, 5xx).
    #[error("reading s3://{bucket}/{key}: {message}")]
    Get {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// Classified reason.
        reason: S3ErrorReason,
        /// The SDK's message.
        message: String,
    },
    /// A credentials file could not be read.
    #[error("credentials file {}: {message}", path.display())]
    Credentials {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The target's `destination_path` is invalid (rejected by config validation first).
    #[error("invalid destination_path {0:?}")]
    Destination(String),
    /// The target's `ca_file` is unusable (rejected by config validation first).
    #[error("ca_file {0}")]
    CaFile(String),
}

impl S3Error {
    /// The bounded reason label.
    pub fn reason(&self) -> S3ErrorReason {
        match self {
            Self::List { reason, .. } | Self::Get { reason, .. } => *reason,
            Self::Credentials { .. } => S3ErrorReason::Credentials,
            Self::Destination(_) => S3ErrorReason::Other,
            Self::CaFile(_) => S3ErrorReason::Tls,
        }
    }
}

impl StoreError for S3Error {
    fn reason(&self) -> S3ErrorReason {
        S3Error::reason(self)
    }
}

/// Whether an I/O error (a connection reset or closed while a body was being
/// read) is anywhere in `err`'s source chain, and whether it was a timeout.
fn io_failure(err: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut cur = err.source();
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        cur = e.source();
    }
    None
}

/// Classifies an SDK error, given the HTTP status of its raw response (if
/// any) and its rendered message.
pub(super) fn classify<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug + 'static>(
    err: &SdkError<E, R>,
    status: Option<u16>,
    message: &str,
) -> S3ErrorReason {
    match err {
        SdkError::TimeoutError(_) => S3ErrorReason::Timeout,
        SdkError::DispatchFailure(d) if d.is_timeout() => S3ErrorReason::Timeout,
        SdkError::DispatchFailure(d)
            if d.as_connector_error()
                .is_some_and(|c| crate::source::tls::is_tls_failure(c)) =>
        {
            S3ErrorReason::Tls
        }
        SdkError::DispatchFailure(_) => S3ErrorReason::Connect,
        // The connection failed while the response was being read: transport, not content.
        SdkError::ResponseError(_) => match io_failure(err) {
            Some(std::io::ErrorKind::TimedOut) => S3ErrorReason::Timeout,
            Some(_) => S3ErrorReason::Connect,
            None => S3ErrorReason::InvalidResponse,
        },
        SdkError::ConstructionFailure(_) => {
            if message.contains("credentials") || message.contains("identity") {
                S3ErrorReason::Credentials
            } else {
                S3ErrorReason::Other
            }
        }
        SdkError::ServiceError(e) => match (e.err().code(), status) {
            (Some("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "AllAccessDisabled"), _) => {
                S3ErrorReason::AccessDenied
            }
            (Some("NoSuchBucket"), _) => S3ErrorReason::NoSuchBucket,
            (Some("SlowDown" | "Throttling" | "ThrottlingException"), _) | (_, Some(503)) => S3ErrorReason::Throttled,
            (_, Some(403)) => S3ErrorReason::AccessDenied,
            (_, Some(s)) if s >= 500 => S3ErrorReason::ServerError,
            (_, Some(s)) if s >= 400 => S3ErrorReason::ClientError,
            (Some("PermanentRedirect"), _) | (_, Some(300..=399)) => S3ErrorReason::ClientError,
            _ => S3ErrorReason::Other,
        },
        _ => S3ErrorReason::Other,
    }
}

/// The HTTP status of the raw response an SDK error came with, if any.
pub(super) fn status_of<E>(err: &SdkError<E, aws_smithy_runtime_api::http::Response>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}
