//! The S3 source: a read-only [`S3Source`] per target, implementing the
//! [`ObjectStore`](crate::source::store::ObjectStore) seam that the catalog
//! walk ([`crate::source::walk`]) runs on.
//!
//! Only `ListObjectsV2` and `GetObject` are ever sent. Every HTTP request,
//! retries included, is counted per operation by [`RequestCounter`].
//!
//! * `client`: the SDK client of a target and the seam on it;
//! * `credentials`: credentials from files (Secret mounts), re-read on expiry;
//! * `requests`: the request-counting interceptor ([`RequestCounter`], [`OPERATIONS`]);
//! * `error`: [`S3Error`] and the classification into [`S3ErrorReason`].

mod client;
mod credentials;
mod error;
mod requests;

use aws_sdk_s3::Client;

pub use error::{S3Error, S3ErrorReason};
pub use requests::{OPERATIONS, RequestCounter, RequestCounts};

pub use crate::source::walk::{ServerCache, Walk, WalkCache, WalkOptions, WalkStats};

/// A read-only S3 view of one target: its client, bucket and the prefix of
/// its `destination_path` (empty, or ending with `/`).
#[derive(Debug, Clone)]
pub struct S3Source {
    client: Client,
    bucket: String,
    prefix: String,
}

impl S3Source {
    /// The bucket of the target's `destination_path`.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The prefix of the target's `destination_path` inside the bucket.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Walks the whole destination path, reusing what `prev` (the previous
    /// successful walk's cache; empty for a cold start) says cannot have
    /// changed: [`crate::source::walk::walk`] on this bucket.
    ///
    /// # Errors
    /// Any failed listing, and GETs that fail for network or server reasons,
    /// fail the walk: a partial catalog is never returned. A `backup.info`
    /// that is refused (4xx), too large or malformed only marks that backup
    /// unreadable.
    pub async fn walk(&self, opts: WalkOptions, prev: &WalkCache) -> Result<Walk, S3Error> {
        crate::source::walk::walk(self, &self.prefix, opts, prev).await
    }
}
