//! The object-store seam: the little the catalog walk ([`super::walk`]) needs
//! of a bucket, whatever the provider.
//!
//! Two operations, both read-only: a listing of a prefix (with or without a
//! delimiter, optionally starting after a key), handed over page by page so
//! memory stays at one page whatever the prefix holds; and a GET of at most N
//! bytes of one object. [`super::s3::S3Source`] implements it on
//! `ListObjectsV2` and `GetObject`; Azure Blob Storage and GCS fit the same
//! shape (`List Blobs` with `prefix`/`delimiter`/`marker`, `objects.list`
//! with `startOffset`).
//!
//! Errors come in two kinds. A GET whose object is unusable (refused,
//! missing, too large) is an [`Unusable`] value inside `Ok`: that object is
//! marked unreadable and the walk goes on. Anything else (a failed listing,
//! a network or server failure) is the store's [`ObjectStore::Error`], which
//! fails the whole walk and carries a bounded [`ErrorReason`].

use std::future::Future;

use thiserror::Error;

/// One object as listed.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectInfo {
    /// The full key (the bucket's, not relative to the listed prefix).
    pub key: String,
    /// Size in bytes (0 when the store does not say).
    pub size: u64,
    /// The entity tag as the store sends it (S3 quotes it), `None` when absent.
    pub etag: Option<String>,
    /// Last modification, Unix seconds.
    pub last_modified: Option<f64>,
    /// The storage class (`STANDARD`, `GLACIER`, ...), `None` when absent.
    pub storage_class: Option<String>,
}

/// One page of a listing: objects and, with a delimiter, the common prefixes
/// (each ending with the delimiter), both in key order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    /// Objects on this page.
    pub objects: Vec<ObjectInfo>,
    /// Common prefixes on this page (full, e.g. `path/server/`).
    pub prefixes: Vec<String>,
}

/// What to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Listing<'a> {
    /// Only keys starting with this.
    pub prefix: &'a str,
    /// Roll keys up to their first occurrence of this after the prefix
    /// (`Some("/")`: one level), or list recursively (`None`).
    pub delimiter: Option<&'a str>,
    /// Only keys sorting (bytewise) after this one (S3 `StartAfter`).
    pub start_after: Option<&'a str>,
}

impl<'a> Listing<'a> {
    /// A recursive listing of `prefix`.
    pub fn recursive(prefix: &'a str) -> Self {
        Self {
            prefix,
            delimiter: None,
            start_after: None,
        }
    }

    /// A one-level listing of `prefix` (delimiter `/`).
    pub fn one_level(prefix: &'a str) -> Self {
        Self {
            prefix,
            delimiter: Some("/"),
            start_after: None,
        }
    }
}

/// Why a fetched object cannot be used; the walk marks it unreadable and goes on.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Unusable {
    /// The store refused the GET with a client error: access denied, or the
    /// object is missing (deleted since it was listed: S3's 404 `NoSuchKey`
    /// is a [`ErrorReason::ClientError`]).
    #[error("GET refused ({}): {message}", reason.as_str())]
    Refused {
        /// The classified reason.
        reason: ErrorReason,
        /// The store's message.
        message: String,
    },
    /// The object is larger than the bound the caller gave, in bytes.
    #[error("larger than {limit} bytes")]
    TooLarge {
        /// The bound, bytes.
        limit: u64,
    },
}

/// The error of a store operation that fails the walk: it says why, as a
/// bounded label value.
pub trait StoreError: std::error::Error + Send + Sync + 'static {
    /// The bounded reason label.
    fn reason(&self) -> ErrorReason;
}

/// A read-only object store: a bucket (or container) seen through listings
/// and bounded GETs.
pub trait ObjectStore: Sync {
    /// A failure that makes the walk unreliable.
    type Error: StoreError;

    /// Lists `listing` page by page, handing each page to `on_page` until it
    /// returns false (no further page is requested) or the listing ends.
    ///
    /// # Errors
    /// A page could not be listed.
    fn list<F>(&self, listing: Listing<'_>, on_page: F) -> impl Future<Output = Result<(), Self::Error>> + Send
    where
        F: FnMut(Page) -> bool + Send;

    /// GETs at most `max_bytes` bytes of `key`: `Ok(Ok(bytes))`, or
    /// `Ok(Err(why))` when the object is unusable ([`Unusable`]), without
    /// reading more than `max_bytes` + 1 bytes of it.
    ///
    /// # Errors
    /// Network and server failures.
    fn get(
        &self,
        key: &str,
        max_bytes: u64,
    ) -> impl Future<Output = Result<Result<Vec<u8>, Unusable>, Self::Error>> + Send;
}

/// Why a store operation failed: the bounded `reason` label of
/// `barman_cloud_collector_errors_total{collector="s3"}` (also reachable as
/// [`super::s3::S3ErrorReason`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorReason {
    /// A request or connect timed out.
    Timeout,
    /// The endpoint could not be reached (DNS, refused, reset, TLS).
    Connect,
    /// 403: AccessDenied, InvalidAccessKeyId, SignatureDoesNotMatch.
    AccessDenied,
    /// The bucket does not exist.
    NoSuchBucket,
    /// 503 SlowDown after the SDK's retries.
    Throttled,
    /// Another 5xx after the SDK's retries.
    ServerError,
    /// Another 4xx, or a redirect (301 PermanentRedirect: the bucket is in
    /// the region the `x-amz-bucket-region` header in the message names).
    ClientError,
    /// The response could not be parsed.
    InvalidResponse,
    /// Credentials could not be loaded.
    Credentials,
    /// The TLS handshake or the certificate check failed (see `ca_file`).
    Tls,
    /// Anything else.
    Other,
}

impl ErrorReason {
    /// Every reason: the bounded label set of
    /// `barman_cloud_collector_errors_total{collector="s3"}` (the scheduler's
    /// deadline counts as [`ErrorReason::Timeout`]).
    pub const ALL: [Self; 11] = [
        Self::Timeout,
        Self::Connect,
        Self::AccessDenied,
        Self::NoSuchBucket,
        Self::Throttled,
        Self::ServerError,
        Self::ClientError,
        Self::InvalidResponse,
        Self::Credentials,
        Self::Tls,
        Self::Other,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::AccessDenied => "access_denied",
            Self::NoSuchBucket => "no_such_bucket",
            Self::Throttled => "throttled",
            Self::ServerError => "server_error",
            Self::ClientError => "client_error",
            Self::InvalidResponse => "invalid_response",
            Self::Credentials => "credentials",
            Self::Tls => "tls",
            Self::Other => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_distinct_snake_case_labels() {
        let labels: std::collections::BTreeSet<&str> = ErrorReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(labels.len(), ErrorReason::ALL.len());
        assert!(
            labels
                .iter()
                .all(|l| l.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        );
    }

    #[test]
    fn unusable_objects_say_why_as_before() {
        let refused = Unusable::Refused {
            reason: ErrorReason::AccessDenied,
            message: "denied".into(),
        };
        assert_eq!(refused.to_string(), "GET refused (access_denied): denied");
        assert_eq!(
            Unusable::TooLarge { limit: 1_048_576 }.to_string(),
            "larger than 1048576 bytes"
        );
    }
}
