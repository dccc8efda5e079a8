//! The HTTP layer under `object_store`'s Azure and GCS clients
//! (`object_store::client::HttpService`, its public extension point): it
//! counts every request sent to the storage endpoint (retries included) by
//! operation and method — the read-only proof — and, for the requests the
//! walk tags with a [`Capture`], keeps the response's status, error code and
//! (for a successful listing) its body, read with a bound.
//!
//! Requests to other hosts (OAuth token endpoints, the instance metadata
//! service) are credentials traffic, not storage requests: not counted.

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use object_store::ClientOptions;
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpErrorKind, HttpRequest, HttpResponse, HttpResponseBody, HttpService,
    ReqwestConnector,
};

use crate::config::Provider;
use crate::source::s3::RequestCounter;

/// The largest listing response body read, bytes (a page of 5,000 Azure
/// blobs is about 5 MB of XML).
pub const LIST_BODY_LIMIT: usize = 32 << 20;

/// What the HTTP layer saw of the last attempt of one tagged request.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    /// The HTTP status, when a response arrived.
    pub status: Option<u16>,
    /// Azure's `x-ms-error-code` header, when present.
    pub error_code: Option<String>,
    /// The body of a successful (2xx) listing response.
    pub body: Option<Bytes>,
}

/// A request extension: where the HTTP layer reports what it saw.
#[derive(Debug, Clone, Default)]
pub struct Capture {
    slot: Arc<Mutex<Seen>>,
    keep_body: bool,
}

impl Capture {
    /// A capture of the response status; `keep_body` also keeps a 2xx body
    /// (listings).
    pub fn new(keep_body: bool) -> Self {
        Self {
            slot: Arc::default(),
            keep_body,
        }
    }

    /// What was seen (empty when no response arrived).
    pub fn seen(&self) -> Seen {
        self.slot.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The request extensions carrying this capture.
    pub fn extensions(&self) -> http::Extensions {
        let mut e = http::Extensions::new();
        e.insert(self.clone());
        e
    }
}

/// The connector handed to the `object_store` builders.
#[derive(Debug)]
pub struct Connector {
    /// Whose operation names to count under.
    pub provider: Provider,
    /// The storage endpoint's `host[:port]`: only requests there are counted.
    pub authority: String,
    /// Where requests are counted.
    pub requests: Arc<RequestCounter>,
}

impl HttpConnector for Connector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(Service {
            inner: ReqwestConnector::default().connect(options)?,
            provider: self.provider,
            authority: self.authority.clone(),
            requests: self.requests.clone(),
        }))
    }
}

#[derive(Debug)]
struct Service {
    inner: HttpClient,
    provider: Provider,
    authority: String,
    requests: Arc<RequestCounter>,
}

/// The operation a storage request is, by method and query: a listing
/// (`comp=list` on Azure, `list-type` on GCS's XML API) or an object GET;
/// anything else is `other` (never sent by the walk: it would show in the
/// read-only proof).
pub fn operation(provider: Provider, method: &str, query: Option<&str>) -> &'static str {
    let has = |k: &str| query.is_some_and(|q| q.split('&').any(|p| p == k || p.starts_with(&format!("{k}="))));
    match (provider, method) {
        (Provider::Azure, "GET") if has("comp") && query.is_some_and(|q| q.contains("comp=list")) => "ListBlobs",
        (Provider::Azure, "GET") => "GetBlob",
        (Provider::Gcs, "GET") if has("list-type") => "ListObjects",
        (Provider::Gcs, "GET") => "GetObject",
        (Provider::S3, "GET") if has("list-type") => "ListObjectsV2",
        (Provider::S3, "GET") => "GetObject",
        _ => "other",
    }
}

#[async_trait::async_trait]
impl HttpService for Service {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let capture = req.extensions().get::<Capture>().cloned();
        if req.uri().authority().is_some_and(|a| a.as_str() == self.authority) {
            let method = req.method().as_str().to_string();
            self.requests
                .record(operation(self.provider, &method, req.uri().query()), &method);
        }
        let Some(capture) = capture else {
            return self.inner.execute(req).await;
        };
        let resp = self.inner.execute(req).await?;
        let status = resp.status();
        let mut seen = Seen {
            status: Some(status.as_u16()),
            error_code: resp
                .headers()
                .get("x-ms-error-code")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            body: None,
        };
        if !(capture.keep_body && status.is_success()) {
            if let Ok(mut s) = capture.slot.lock() {
                *s = seen;
            }
            return Ok(resp);
        }
        let (parts, body) = resp.into_parts();
        let bytes = Limited::new(body, LIST_BODY_LIMIT)
            .collect()
            .await
            .map_err(|e| match e.downcast::<HttpError>() {
                // The transport failed mid-body: keep its kind (retried, then `connect`).
                Ok(transport) => *transport,
                // Over LIST_BODY_LIMIT.
                Err(e) => HttpError::new_boxed(HttpErrorKind::Decode, e),
            })?
            .to_bytes();
        seen.body = Some(bytes.clone());
        if let Ok(mut s) = capture.slot.lock() {
            *s = seen;
        }
        Ok(HttpResponse::from_parts(parts, HttpResponseBody::from(bytes)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operations_by_provider_method_and_query() {
        let az = |m, q| operation(Provider::Azure, m, q);
        assert_eq!(az("GET", Some("restype=container&comp=list&prefix=a%2F")), "ListBlobs");
        assert_eq!(az("GET", None), "GetBlob");
        assert_eq!(az("PUT", None), "other");
        assert_eq!(az("DELETE", Some("comp=list")), "other");
        let gcs = |m, q| operation(Provider::Gcs, m, q);
        assert_eq!(gcs("GET", Some("list-type=2&prefix=a%2F")), "ListObjects");
        assert_eq!(gcs("GET", Some("generation=1")), "GetObject");
        assert_eq!(gcs("POST", Some("list-type=2")), "other");
        for p in [Provider::Azure, Provider::Gcs] {
            for (m, q) in [("GET", Some("comp=list&list-type=2")), ("GET", None)] {
                let op = operation(p, m, q);
                assert!(p.operations().contains(&op), "{p} {op}");
            }
        }
    }
}
