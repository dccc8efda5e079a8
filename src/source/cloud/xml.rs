//! The listing responses of Azure Blob Storage (`List Blobs`,
//! `EnumerationResults`) and of GCS's XML API (`ListBucketResult`, S3's
//! shape), parsed with quick-xml's serde support into a seam [`Page`]. Pure.
//!
//! Parsed here rather than taken from `object_store`'s own parse because
//! that drops what the walk needs (Azure's `AccessTier`, GCS's
//! `StorageClass`) and fails a whole page on a key it cannot represent as a
//! path (an empty segment `a//b`, a `.` segment, a control character), which
//! would let one junk key blind the exporter to a server.

use serde::Deserialize;

use crate::source::store::{ObjectInfo, Page};

/// A parsed listing page and the token of the next one (`None`: last page).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ListPage {
    /// Objects and common prefixes of the page.
    pub page: Page,
    /// Azure `NextMarker` / GCS `NextContinuationToken`, when non-empty.
    pub next: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct EnumerationResults {
    #[serde(default)]
    blobs: AzureBlobs,
    #[serde(default)]
    next_marker: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct AzureBlobs {
    #[serde(rename = "$value", default)]
    items: Vec<AzureItem>,
}

#[derive(Debug, Deserialize)]
enum AzureItem {
    Blob(AzureBlob),
    BlobPrefix(AzurePrefix),
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AzureBlob {
    name: AzureName,
    properties: AzureProperties,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AzurePrefix {
    name: AzureName,
}

/// `<Name>` or `<Name Encoded="true">` (percent-encoded: the name holds
/// characters XML 1.0 cannot carry).
#[derive(Debug, Deserialize)]
struct AzureName {
    #[serde(rename = "@Encoded", default)]
    encoded: Option<String>,
    #[serde(rename = "$text", default)]
    text: String,
}

impl AzureName {
    fn decoded(self) -> String {
        if self.encoded.as_deref() == Some("true") {
            percent_encoding::percent_decode_str(&self.text)
                .decode_utf8_lossy()
                .into_owned()
        } else {
            self.text
        }
    }
}

#[derive(Debug, Deserialize)]
struct AzureProperties {
    #[serde(rename = "Content-Length", default)]
    content_length: Option<u64>,
    #[serde(rename = "Last-Modified", default)]
    last_modified: Option<String>,
    #[serde(rename = "Etag", default)]
    etag: Option<String>,
    #[serde(rename = "AccessTier", default)]
    access_tier: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListBucketResult {
    #[serde(default)]
    contents: Vec<GcsObject>,
    #[serde(default)]
    common_prefixes: Vec<GcsPrefix>,
    #[serde(default)]
    next_continuation_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GcsObject {
    key: String,
    #[serde(default)]
    size: Option<u64>,
    #[serde(default)]
    last_modified: Option<String>,
    #[serde(rename = "ETag", default)]
    etag: Option<String>,
    #[serde(default)]
    storage_class: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct GcsPrefix {
    prefix: String,
}

/// Unix seconds of an RFC 1123 (`Thu, 01 Jul 2021 10:45:02 GMT`, Azure) or
/// RFC 3339 (`2026-12-03T14:12:28Z`, GCS) time.
fn unix_seconds(s: &str) -> Option<f64> {
    chrono::DateTime::parse_from_rfc2822(s)
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(s))
        .ok()
        .map(|t| t.timestamp_millis() as f64 / 1000.0)
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|s| !s.is_empty())
}

/// Parses an Azure `List Blobs` response body. `AccessTier` becomes the
/// object's storage class (`Hot`, `Cool`, `Cold`, `Archive`).
///
/// # Errors
/// The body is not an `EnumerationResults` document.
pub fn azure(body: &[u8]) -> Result<ListPage, quick_xml::DeError> {
    let r: EnumerationResults = quick_xml::de::from_reader(body)?;
    let mut page = Page::default();
    for item in r.blobs.items {
        match item {
            AzureItem::Blob(b) => page.objects.push(ObjectInfo {
                key: b.name.decoded(),
                size: b.properties.content_length.unwrap_or(0),
                etag: b.properties.etag,
                last_modified: b.properties.last_modified.as_deref().and_then(unix_seconds),
                storage_class: b.properties.access_tier,
            }),
            AzureItem::BlobPrefix(p) => page.prefixes.push(p.name.decoded()),
        }
    }
    Ok(ListPage {
        page,
        next: non_empty(r.next_marker),
    })
}

/// Parses a GCS XML API `ListBucketResult` (`list-type=2`) response body.
///
/// # Errors
/// The body is not a `ListBucketResult` document.
pub fn gcs(body: &[u8]) -> Result<ListPage, quick_xml::DeError> {
    let r: ListBucketResult = quick_xml::de::from_reader(body)?;
    let page = Page {
        objects: r
            .contents
            .into_iter()
            .map(|o| ObjectInfo {
                key: o.key,
                size: o.size.unwrap_or(0),
                etag: o.etag,
                last_modified: o.last_modified.as_deref().and_then(unix_seconds),
                storage_class: o.storage_class,
            })
            .collect(),
        prefixes: r.common_prefixes.into_iter().map(|p| p.prefix).collect(),
    };
    Ok(ListPage {
        page,
        next: non_empty(r.next_continuation_token),
    })
}

/// Keeps what a listing from `start_after` (exclusive) may hand over, for
/// servers that ignore the offset: Azurite ignores `startFrom`,
/// fake-gcs-server `start-after`, and Azure's `startFrom` is inclusive.
pub fn after(mut page: Page, start_after: Option<&str>) -> Page {
    if let Some(from) = start_after {
        page.objects.retain(|o| o.key.as_str() > from);
        page.prefixes.retain(|p| p.as_str() > from);
    }
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    const AZURE: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><EnumerationResults ServiceEndpoint="http://127.0.0.1:10000/devstoreaccount1" ContainerName="bkt"><Prefix>a/</Prefix><Marker/><MaxResults>5000</MaxResults><Delimiter>/</Delimiter><Blobs><Blob><Name>a//junk</Name><Properties><Creation-Time>Thu, 03 Dec 2026 14:13:02 GMT</Creation-Time><Last-Modified>Thu, 03 Dec 2026 14:13:02 GMT</Last-Modified><Etag>0x1F2A</Etag><Content-Length>5</Content-Length><Content-Type>application/octet-stream</Content-Type><BlobType>BlockBlob</BlobType><AccessTier>Hot</AccessTier><AccessTierInferred>true</AccessTierInferred></Properties></Blob><BlobPrefix><Name>a/y/</Name></BlobPrefix><Blob><Name>a/x2</Name><Properties><Last-Modified>Thu, 03 Dec 2026 14:13:03 GMT</Last-Modified><Etag>0x1F2B</Etag><Content-Length>7</Content-Length><AccessTier>Archive</AccessTier></Properties></Blob><Blob><Name Encoded="true">a/%01ctl</Name><Properties><Content-Length>0</Content-Length></Properties></Blob></Blobs><NextMarker>a/z</NextMarker></EnumerationResults>"#;

    #[test]
    fn azure_blobs_prefixes_tiers_and_marker() {
        let p = azure(AZURE.as_bytes()).unwrap();
        let keys: Vec<_> = p.page.objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["a//junk", "a/x2", "a/\u{1}ctl"], "junk and encoded names kept");
        assert_eq!(p.page.prefixes, ["a/y/"]);
        assert_eq!(p.next.as_deref(), Some("a/z"));
        let x2 = &p.page.objects[1];
        assert_eq!((x2.size, x2.storage_class.as_deref()), (7, Some("Archive")));
        assert_eq!(x2.etag.as_deref(), Some("0x1F2B"));
        assert_eq!(x2.last_modified, Some(1_796_307_183.0));
    }

    #[test]
    fn azure_last_page_and_empty_listing() {
        let last = r#"<EnumerationResults><Blobs/><NextMarker/></EnumerationResults>"#;
        let p = azure(last.as_bytes()).unwrap();
        assert_eq!(p, ListPage::default());
        assert!(azure(b"not xml at all <<<").is_err());
    }

    #[test]
    fn gcs_objects_prefixes_and_token() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult><Name>bkt</Name><CommonPrefixes><Prefix>a/y/</Prefix></CommonPrefixes><Delimiter>/</Delimiter><Prefix>a/</Prefix><KeyCount>2</KeyCount><Contents><Key>a/junk</Key><Generation>1796307148251048</Generation><LastModified>2026-12-03T14:12:28Z</LastModified><ETag>XUFAKrxLKna5cZ2REBfFkg==</ETag><Size>5</Size></Contents><Contents><Key>a/x1</Key><LastModified>2026-12-03T14:12:27Z</LastModified><Size>6</Size><StorageClass>ARCHIVE</StorageClass></Contents><NextContinuationToken>tok</NextContinuationToken></ListBucketResult>"#;
        let p = gcs(body.as_bytes()).unwrap();
        assert_eq!(p.page.prefixes, ["a/y/"]);
        assert_eq!(p.next.as_deref(), Some("tok"));
        assert_eq!(p.page.objects[0].last_modified, Some(1_796_307_148.0));
        assert_eq!(p.page.objects[1].storage_class.as_deref(), Some("ARCHIVE"));
        assert_eq!(p.page.objects[1].size, 6);
    }

    #[test]
    fn offsets_are_exclusive_whatever_the_server_did() {
        let p = gcs(b"<ListBucketResult><Contents><Key>a/1</Key></Contents><Contents><Key>a/2</Key></Contents><Contents><Key>a/3</Key></Contents></ListBucketResult>").unwrap();
        let kept = after(p.page.clone(), Some("a/2"));
        assert_eq!(kept.objects.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(), ["a/3"]);
        assert_eq!(after(p.page.clone(), None), p.page);
    }
}
