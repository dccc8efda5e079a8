//! Azure Blob Storage and Google Cloud Storage: a read-only [`CloudSource`]
//! per target, implementing the [`ObjectStore`] seam the catalog walk runs
//! on, so both get the same catalogue, analysis, metrics and incremental walk
//! as S3.
//!
//! Built on Apache Arrow's `object_store` crate, which signs (Azure shared
//! key, SAS, OAuth; GCS service accounts and the metadata server), retries
//! and pages; its `PaginatedListStore` gives listings page by page with a
//! prefix, a delimiter and an offset. The listing bodies are parsed here
//! ([`xml`]) so that tiers are seen and a junk key cannot fail a page.
//! Only two operations are ever sent: a listing and an object GET (counted
//! per operation by [`http`], `barman_cloud_s3_requests_total`).
//!
//! * `client`: endpoint and credentials in barman's order;
//! * `credentials`: connection strings, key and SAS files re-read on expiry;
//! * `http`: the counting, capturing HTTP layer;
//! * `xml`: listing responses into seam pages (pure);
//! * `error`: [`CloudError`] and its classification.

mod client;
mod credentials;
mod error;
mod http;
mod xml;

use std::sync::Arc;

use futures_util::StreamExt;
use object_store::list::{PaginatedListOptions, PaginatedListStore};
use object_store::path::Path;

pub use client::{AZURE_ENV, STORAGE_EMULATOR_HOST};
pub use credentials::{ConnectionString, CredentialFileError};
pub use error::CloudError;
pub use http::LIST_BODY_LIMIT;

use crate::config::Provider;
use crate::source::store::{ErrorReason, Listing, ObjectStore, Page, Unusable};
use crate::source::walk::{Walk, WalkCache, WalkOptions};

/// What the walk needs of an `object_store` client: object GETs and
/// paginated listings.
pub trait Backend: object_store::ObjectStore + PaginatedListStore {}

impl<T: object_store::ObjectStore + PaginatedListStore> Backend for T {}

/// A read-only view of one Azure or GCS target: its client, container or
/// bucket, and the prefix of its `destination_path` (empty, or ending `/`).
#[derive(Debug, Clone)]
pub struct CloudSource {
    store: Arc<dyn Backend>,
    provider: Provider,
    bucket: String,
    prefix: String,
    endpoint: String,
}

impl CloudSource {
    /// Which provider.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// The container (Azure) or bucket (GCS).
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The prefix of the server roots.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The storage endpoint requests go to (no credentials in it).
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Walks the whole destination path like [`crate::source::s3::S3Source::walk`].
    ///
    /// # Errors
    /// A failed listing, or a GET failing for network or server reasons.
    pub async fn walk(&self, opts: WalkOptions, prev: &WalkCache) -> Result<Walk, CloudError> {
        crate::source::walk::walk(self, &self.prefix, opts, prev).await
    }

    fn list_error(&self, prefix: &str, reason: ErrorReason, message: String) -> CloudError {
        CloudError::List {
            provider: self.provider,
            bucket: self.bucket.clone(),
            prefix: prefix.to_string(),
            reason,
            message: error::scrub(&message),
        }
    }

    fn parse(&self, body: &[u8]) -> Result<xml::ListPage, quick_xml::DeError> {
        match self.provider {
            Provider::Azure => xml::azure(body),
            _ => xml::gcs(body),
        }
    }
}

impl ObjectStore for CloudSource {
    type Error = CloudError;

    /// Pages through `List Blobs` (Azure, up to 5,000 a page) or the XML
    /// API's object listing (GCS, up to 1,000), parsing each body itself.
    /// The offset is sent (`startFrom`, `start-after`) and also applied here,
    /// since emulators ignore it.
    async fn list<F>(&self, listing: Listing<'_>, mut on_page: F) -> Result<(), CloudError>
    where
        F: FnMut(Page) -> bool + Send,
    {
        let mut token: Option<String> = None;
        loop {
            let capture = http::Capture::new(true);
            let opts = PaginatedListOptions {
                offset: listing.start_after.map(str::to_string),
                delimiter: listing.delimiter.map(|d| d.to_string().into()),
                max_keys: None,
                page_token: token.clone(),
                extensions: capture.extensions(),
            };
            let prefix = (!listing.prefix.is_empty()).then_some(listing.prefix);
            let result = self.store.list_paginated(prefix, opts).await;
            let seen = capture.seen();
            let page = match (&result, seen.body.clone()) {
                // object_store's own parse may have refused a key it cannot
                // represent; ours keeps every key.
                (_, Some(body)) => self.parse(&body).map_err(|e| {
                    self.list_error(
                        listing.prefix,
                        ErrorReason::InvalidResponse,
                        format!("listing response: {e}"),
                    )
                })?,
                (Err(e), None) => {
                    let reason = error::classify(e, &seen, true);
                    return Err(self.list_error(listing.prefix, reason, e.to_string()));
                }
                (Ok(_), None) => {
                    return Err(self.list_error(
                        listing.prefix,
                        ErrorReason::InvalidResponse,
                        "no listing body seen".to_string(),
                    ));
                }
            };
            if !on_page(xml::after(page.page, listing.start_after)) {
                return Ok(());
            }
            match page.next {
                Some(next) if token.as_deref() != Some(next.as_str()) => token = Some(next),
                _ => return Ok(()),
            }
        }
    }

    /// An object GET, refused on the object's size when that is over the
    /// bound, else streamed until the bound is passed. A 403 or another 4xx
    /// (404 included) makes the object [`Unusable::Refused`]; so does a key
    /// `object_store` cannot address (a `.` segment, a control character).
    async fn get(&self, key: &str, max_bytes: u64) -> Result<Result<Vec<u8>, Unusable>, CloudError> {
        let get_err = |reason, message: String| CloudError::Get {
            provider: self.provider,
            bucket: self.bucket.clone(),
            key: key.to_string(),
            reason,
            message: error::scrub(&message),
        };
        let path = match Path::parse(key) {
            Ok(p) if p.as_ref() == key => p,
            _ => {
                return Ok(Err(Unusable::Refused {
                    reason: ErrorReason::ClientError,
                    message: "the key cannot be addressed (empty, '.' or '..' segment, or a control character)"
                        .to_string(),
                }));
            }
        };
        let capture = http::Capture::new(false);
        let opts = object_store::GetOptions {
            extensions: capture.extensions(),
            ..Default::default()
        };
        let resp = match self.store.get_opts(&path, opts).await {
            Ok(r) => r,
            Err(e) => {
                let seen = capture.seen();
                let reason = error::classify(&e, &seen, false);
                return match reason {
                    ErrorReason::AccessDenied | ErrorReason::ClientError => Ok(Err(Unusable::Refused {
                        reason,
                        message: error::scrub(&e.to_string()),
                    })),
                    _ => Err(get_err(reason, e.to_string())),
                };
            }
        };
        let too_large = Unusable::TooLarge { limit: max_bytes };
        if resp.meta.size > max_bytes {
            return Ok(Err(too_large));
        }
        let mut body = resp.into_stream();
        let mut buf = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| get_err(ErrorReason::Connect, e.to_string()))?;
            buf.extend_from_slice(&chunk);
            if buf.len() as u64 > max_bytes {
                return Ok(Err(too_large));
            }
        }
        Ok(Ok(buf))
    }
}
