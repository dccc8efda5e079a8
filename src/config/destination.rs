//! `destination_path` as barman-cloud reads it, for each of its three cloud
//! providers: which provider, which bucket (container) and which key prefix
//! the server roots (`<prefix><serverName>/`) live under. Pure, no I/O.

use std::fmt;

/// The object store kind of a target, from its `destination_path` (the
/// `provider` label of `barman_cloud_target_info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Provider {
    /// `s3://bucket/path`: AWS S3 or an S3-compatible store (barman's
    /// `--cloud-provider aws-s3`).
    S3,
    /// `https://<account>.blob.core.windows.net/<container>/<path>`, or an
    /// emulator / private endpoint `http(s)://<host>:<port>/<account>/<container>/<path>`
    /// (barman's `--cloud-provider azure-blob-storage`).
    Azure,
    /// `gs://bucket/path` or `https://storage.googleapis.com/bucket/path`
    /// (barman's `--cloud-provider google-cloud-storage`).
    Gcs,
}

impl Provider {
    /// Every provider, in label order.
    pub const ALL: [Self; 3] = [Self::S3, Self::Azure, Self::Gcs];

    /// The label value: `s3`, `azure`, `gcs`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::S3 => "s3",
            Self::Azure => "azure",
            Self::Gcs => "gcs",
        }
    }

    /// The only operations the walk sends to this provider (the read-only
    /// proof): the bounded `operation` label set of
    /// `barman_cloud_s3_requests_total` for a target of this provider, in
    /// label order. S3 names its API operations; Azure's are the Blob
    /// service's `List Blobs` and `Get Blob`; GCS's the XML API's object
    /// listing and GET.
    pub fn operations(self) -> &'static [&'static str] {
        match self {
            Self::S3 => &["GetObject", "ListObjectsV2"],
            Self::Azure => &["GetBlob", "ListBlobs"],
            Self::Gcs => &["GetObject", "ListObjects"],
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed `destination_path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// Which store.
    pub provider: Provider,
    /// The bucket (S3, GCS) or container (Azure).
    pub bucket: String,
    /// The key prefix of the server roots: empty, or ending with `/`.
    pub prefix: String,
    /// Azure only: the storage account.
    pub account: Option<String>,
    /// Azure only: the Blob service endpoint the account lives at,
    /// `https://<account>.blob.core.windows.net`, or for an emulator or
    /// private endpoint `scheme://host[:port]/<account>` (path style).
    pub service_url: Option<String>,
}

/// The Azure Blob Storage domain barman tells apart from an emulator
/// (`AZURE_BLOB_STORAGE_DOMAIN` in `cloud_providers/azure_blob_storage.py`).
const AZURE_DOMAIN: &str = "blob.core.windows.net";

/// The GCS URL form barman rewrites to `gs://` (`BASE_URL` in
/// `cloud_providers/google_cloud_storage.py`).
const GCS_BASE_URL: &str = "https://storage.googleapis.com/";

/// `path` as the root of the server prefixes: `os.path.join(path, server)`
/// puts one `/` between them unless `path` is empty or ends with one.
fn join_prefix(path: &str) -> String {
    if path.is_empty() || path.ends_with('/') {
        path.to_string()
    } else {
        format!("{path}/")
    }
}

/// Splits `rest` (a URL after `scheme://`) into netloc and path the way
/// Python's `urlparse` does: the netloc ends at the first `/`, `?` or `#`,
/// the path at the first `?` or `#`; no percent-decoding.
fn netloc_and_path(rest: &str) -> (&str, &str) {
    let netloc_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (netloc, after) = rest.split_at(netloc_end);
    (netloc, &after[..after.find(['?', '#']).unwrap_or(after.len())])
}

impl Destination {
    /// Parses `url` exactly as barman-cloud 3.19.1 does for each provider:
    ///
    /// * `s3://bucket/path` (`aws_s3.py`): bucket = netloc, path
    ///   `lstrip("/")`;
    /// * `gs://bucket/path`, or `https://storage.googleapis.com/bucket/path`
    ///   (`google_cloud_storage.py::_parse_url`): bucket = netloc, path
    ///   `strip("/")`;
    /// * `http(s)://…` (`azure_blob_storage.py`): on `*.blob.core.windows.net`
    ///   the account is the host's first label, the container the first path
    ///   segment and the path the rest (`"/".join(path.split("/")[2:])`);
    ///   on any other host (an emulator such as Azurite, or a private
    ///   endpoint) the account is the first path segment, the container the
    ///   second, the path the rest.
    ///
    /// The server root is then `os.path.join(path, serverName)`, so the
    /// prefix gets one trailing `/` unless empty. A query or fragment is
    /// dropped (urlparse), nothing is percent-decoded.
    ///
    /// # Errors
    /// A message naming what is wrong (never the URL's userinfo): unknown
    /// scheme, no bucket/container, no account, a space in the bucket.
    pub fn parse(url: &str) -> Result<Self, String> {
        let plain = |provider, bucket: &str, path: String| {
            if bucket.is_empty() || bucket.contains(' ') {
                return Err("the bucket name is empty or holds a space".to_string());
            }
            Ok(Self {
                provider,
                bucket: bucket.to_string(),
                prefix: join_prefix(&path),
                account: None,
                service_url: None,
            })
        };
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, path) = netloc_and_path(rest);
            return plain(Provider::S3, bucket, path.trim_start_matches('/').to_string());
        }
        let gs = url.strip_prefix("gs://").or_else(|| url.strip_prefix(GCS_BASE_URL));
        if let Some(rest) = gs {
            let (bucket, path) = netloc_and_path(rest);
            return plain(Provider::Gcs, bucket, path.trim_matches('/').to_string());
        }
        let (scheme, rest) = match url.split_once("://") {
            Some((s @ ("http" | "https"), rest)) => (s, rest),
            _ => return Err("must start with s3://, gs://, or http(s):// (Azure Blob Storage)".to_string()),
        };
        let (netloc, path) = netloc_and_path(rest);
        if netloc.is_empty() || netloc.contains('@') {
            return Err("an Azure URL needs a host and no user information".to_string());
        }
        let segments: Vec<&str> = path.split('/').collect();
        let (account, service_url, container, rest_from) = if netloc.ends_with(AZURE_DOMAIN) {
            let account = netloc.split('.').next().unwrap_or_default();
            (account, format!("{scheme}://{netloc}"), segments.get(1), 2)
        } else {
            let account = segments.get(1).copied().unwrap_or_default();
            (account, format!("{scheme}://{netloc}/{account}"), segments.get(2), 3)
        };
        let Some(container) = container.filter(|c| !c.is_empty()) else {
            return Err(
                "an Azure URL needs a container: https://<account>.blob.core.windows.net/<container>/<path> \
                 or http(s)://<host>:<port>/<account>/<container>/<path>"
                    .to_string(),
            );
        };
        if account.is_empty() {
            return Err("an Azure URL needs a storage account".to_string());
        }
        let path = segments.get(rest_from..).map(|s| s.join("/")).unwrap_or_default();
        Ok(Self {
            provider: Provider::Azure,
            bucket: container.to_string(),
            prefix: join_prefix(&path),
            account: Some(account.to_string()),
            service_url: Some(service_url),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(url: &str) -> String {
        match Destination::parse(url) {
            Ok(d) => format!(
                "{} {}|{} {}",
                d.provider,
                d.bucket,
                d.prefix,
                d.service_url.unwrap_or_default()
            ),
            Err(e) => format!("error: {e}"),
        }
    }

    #[test]
    fn s3_as_barman_reads_it() {
        assert_eq!(show("s3://b/p/q"), "s3 b|p/q/ ");
        assert_eq!(show("s3://b//p/"), "s3 b|p/ ");
        assert_eq!(show("s3://b"), "s3 b| ");
        assert!(show("s3:///p").starts_with("error"));
    }

    #[test]
    fn gcs_strips_both_ends_and_takes_the_https_form() {
        assert_eq!(show("gs://bkt/barman/gcs"), "gcs bkt|barman/gcs/ ");
        assert_eq!(show("gs://bkt/barman/gcs/"), "gcs bkt|barman/gcs/ ");
        assert_eq!(show("gs://bkt"), "gcs bkt| ");
        assert_eq!(show("https://storage.googleapis.com/bkt/x?y"), "gcs bkt|x/ ");
        assert!(show("gs:///x").starts_with("error"));
    }

    #[test]
    fn azure_account_host_and_emulator_forms() {
        assert_eq!(
            show("https://acct.blob.core.windows.net/cont/barman/pg"),
            "azure cont|barman/pg/ https://acct.blob.core.windows.net"
        );
        assert_eq!(
            show("https://acct.blob.core.windows.net/cont"),
            "azure cont| https://acct.blob.core.windows.net"
        );
        assert_eq!(
            show("http://127.0.0.1:10000/devstoreaccount1/backups/barman/azure"),
            "azure backups|barman/azure/ http://127.0.0.1:10000/devstoreaccount1"
        );
        // barman joins path segments without stripping: an empty segment stays.
        assert_eq!(
            show("https://acct.blob.core.windows.net/cont//x/"),
            "azure cont|/x/ https://acct.blob.core.windows.net"
        );
        let d = Destination::parse("https://acct.blob.core.windows.net/c/p").unwrap();
        assert_eq!(d.account.as_deref(), Some("acct"));
    }

    #[test]
    fn azure_errors_name_the_part() {
        assert!(show("https://acct.blob.core.windows.net/").contains("container"));
        assert!(show("http://127.0.0.1:10000/devstoreaccount1").contains("container"));
        assert!(show("https://u:p@acct.blob.core.windows.net/c").contains("user information"));
        assert!(show("ftp://x/y").contains("must start with"));
        assert!(!show("https://u:secret@h/a/c").contains("secret"));
    }

    #[test]
    fn operations_are_sorted_label_sets() {
        for p in Provider::ALL {
            let ops = p.operations();
            assert!(ops.windows(2).all(|w| w[0] < w[1]), "{p}: {ops:?}");
        }
    }
}
