//! The S3 client of a target (endpoint, region, path style, retries,
//! timeouts, CA bundle, credentials, request counting) and the
//! [`ObjectStore`] seam on it: `ListObjectsV2` pages and bounded `GetObject`s.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::Region;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_smithy_runtime_api::client::http::SharedHttpClient;

use super::S3Source;
use super::credentials::FileCredentials;
use super::error::{S3Error, S3ErrorReason, classify, status_of};
use super::requests::{CountRequests, RequestCounter};
use crate::config::Target;
use crate::source::store::{Listing, ObjectInfo, ObjectStore, Page, Unusable};

impl S3Source {
    /// Builds the client for `target`: its endpoint, region, path style and
    /// credentials (files if configured, else the AWS default chain). Every
    /// request the client sends is counted in `requests`.
    ///
    /// # Errors
    /// [`S3Error::Destination`] when `destination_path` does not parse,
    /// [`S3Error::CaFile`] when `ca_file` cannot be read or holds no
    /// certificate (both are caught by config validation first; the scheduler
    /// counts them with their reason and tries again at the next cycle).
    pub async fn new(target: &Target, requests: Arc<RequestCounter>) -> Result<Self, S3Error> {
        Self::with_http_client(target, requests, None).await
    }

    /// As [`S3Source::new`], sending through `http` (a client shared by
    /// several targets: [`crate::source::tls::shared_http_client`]) unless
    /// the target has a `ca_file`, which needs a client of its own.
    ///
    /// # Errors
    /// As [`S3Source::new`].
    pub async fn with_http_client(
        target: &Target,
        requests: Arc<RequestCounter>,
        http: Option<SharedHttpClient>,
    ) -> Result<Self, S3Error> {
        let (bucket, prefix) = target
            .bucket_and_prefix()
            .ok_or_else(|| S3Error::Destination(target.destination_path.clone()))?;
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
        let http = http.filter(|_| target.ca_file.is_none());
        if let Some(http) = &http {
            loader = loader.http_client(http.clone());
        }
        if let Some(region) = &target.region {
            loader = loader.region(Region::new(region.clone()));
        }
        let shared = loader.load().await;
        let mut b = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(target.force_path_style)
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::standard().with_max_attempts(3))
            .timeout_config(
                aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .operation_attempt_timeout(Duration::from_secs(60))
                    .build(),
            )
            .interceptor(CountRequests(requests));
        if shared.region().is_none() {
            b = b.region(Region::new("us-east-1"));
        }
        if let Some(endpoint) = &target.endpoint_url {
            b = b.endpoint_url(endpoint);
        }
        if let Some(ca) = &target.ca_file {
            b = b.http_client(crate::source::tls::http_client_with_ca(ca).map_err(S3Error::CaFile)?);
        }
        if let (Some(ak), Some(sk)) = (&target.access_key_id_file, &target.secret_access_key_file) {
            b = b.credentials_provider(FileCredentials {
                access_key_id: ak.clone(),
                secret_access_key: sk.clone(),
                session_token: target.session_token_file.clone(),
            });
        }
        Ok(Self {
            client: Client::from_conf(b.build()),
            bucket,
            prefix,
        })
    }
}

/// A listed S3 object as the seam describes it.
fn object_info(o: aws_sdk_s3::types::Object) -> ObjectInfo {
    ObjectInfo {
        size: o.size().unwrap_or(0).max(0) as u64,
        last_modified: o.last_modified().map(|t| t.as_secs_f64()),
        storage_class: o.storage_class().map(|c| c.as_str().to_string()),
        etag: o.e_tag,
        key: o.key.unwrap_or_default(),
    }
}

/// A `ListObjectsV2` page as the seam describes it.
fn page(out: aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output) -> Page {
    Page {
        objects: out.contents.unwrap_or_default().into_iter().map(object_info).collect(),
        prefixes: out
            .common_prefixes
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| p.prefix)
            .collect(),
    }
}

impl ObjectStore for S3Source {
    type Error = S3Error;

    /// Pages through `ListObjectsV2(prefix, delimiter, start_after)` (up to
    /// 1,000 keys a page, the S3 default).
    async fn list<F>(&self, listing: Listing<'_>, mut on_page: F) -> Result<(), S3Error>
    where
        F: FnMut(Page) -> bool + Send,
    {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(listing.prefix)
            .set_delimiter(listing.delimiter.map(str::to_string))
            .set_start_after(listing.start_after.map(str::to_string))
            .into_paginator()
            .send();
        while let Some(out) = pages.next().await {
            let out = out.map_err(|e| {
                let message = DisplayErrorContext(&e).to_string();
                S3Error::List {
                    bucket: self.bucket.clone(),
                    prefix: listing.prefix.to_string(),
                    reason: classify(&e, status_of(&e), &message),
                    message,
                }
            })?;
            if !on_page(page(out)) {
                break;
            }
        }
        Ok(())
    }

    /// `GetObject`, refused on its `Content-Length` when that is over the
    /// bound, else streamed until the bound is passed. A 403 or another 4xx
    /// (404 `NoSuchKey` included) makes the object [`Unusable::Refused`].
    async fn get(&self, key: &str, max_bytes: u64) -> Result<Result<Vec<u8>, Unusable>, S3Error> {
        let get_err = |reason, message| S3Error::Get {
            bucket: self.bucket.clone(),
            key: key.to_string(),
            reason,
            message,
        };
        let resp = match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(r) => r,
            Err(e) => {
                let message = DisplayErrorContext(&e).to_string();
                let reason = classify(&e, status_of(&e), &message);
                return match reason {
                    S3ErrorReason::AccessDenied | S3ErrorReason::ClientError => {
                        Ok(Err(Unusable::Refused { reason, message }))
                    }
                    _ => Err(get_err(reason, message)),
                };
            }
        };
        let too_large = Unusable::TooLarge { limit: max_bytes };
        if resp.content_length().is_some_and(|l| l as u64 > max_bytes) {
            return Ok(Err(too_large));
        }
        let mut body = resp.body;
        let mut buf = Vec::new();
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| get_err(S3ErrorReason::Connect, e.to_string()))?
        {
            buf.extend_from_slice(&chunk);
            if buf.len() as u64 > max_bytes {
                return Ok(Err(too_large));
            }
        }
        Ok(Ok(buf))
    }
}
