//! I/O: one module per source. Each returns raw facts; analysis lives in [`crate::catalog`].
//!
//! * [`store`]: the object-store seam (paged listings, bounded GETs) the walk runs on;
//! * [`walk`]: the provider-neutral catalog walk of a destination path;
//! * [`s3`]: the seam on S3 (client, credentials, request counting, errors);
//! * [`cloud`]: the seam on Azure Blob Storage and GCS (`object_store`);
//! * [`postgres`]: `pg_stat_archiver` and WAL positions;
//! * [`tls`]: the CA bundle of a `ca_file` for the S3 client.

pub mod cloud;
pub mod postgres;
pub mod s3;
pub mod store;
pub mod tls;
pub mod walk;
