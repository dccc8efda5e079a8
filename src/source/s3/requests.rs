//! Request counting: every HTTP request the SDK transmits (retries included),
//! by S3 operation and by HTTP method, counted by an SDK interceptor. The
//! counts are the read-only proof (`barman_cloud_s3_requests_total`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::client::orchestrator::Metadata;

/// The only S3 operations the exporter sends (the read-only proof): the
/// bounded `operation` label set of `barman_cloud_s3_requests_total`.
pub const OPERATIONS: [&str; 2] = ["GetObject", "ListObjectsV2"];

/// Counts every HTTP request the SDK transmits (retries included), by
/// operation name (`ListObjectsV2`, `GetObject`) and by HTTP method.
#[derive(Debug, Default)]
pub struct RequestCounter {
    inner: Mutex<RequestCounts>,
}

/// A copy of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestCounts {
    /// Requests per S3 operation name.
    pub by_operation: BTreeMap<String, u64>,
    /// Requests per HTTP method (`GET`, `HEAD`, ...): the read-only proof.
    pub by_method: BTreeMap<String, u64>,
}

impl RequestCounter {
    /// Counts one request of S3 operation `operation` sent with HTTP `method`.
    pub fn record(&self, operation: &str, method: &str) {
        if let Ok(mut c) = self.inner.lock() {
            *c.by_operation.entry(operation.to_string()).or_default() += 1;
            *c.by_method.entry(method.to_string()).or_default() += 1;
        }
    }

    /// The counts so far.
    pub fn snapshot(&self) -> RequestCounts {
        self.inner.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

/// The SDK interceptor that feeds a [`RequestCounter`].
#[derive(Debug)]
pub(super) struct CountRequests(pub(super) Arc<RequestCounter>);

impl Intercept for CountRequests {
    fn name(&self) -> &'static str {
        "CountRequests"
    }

    fn read_before_transmit(
        &self,
        ctx: &BeforeTransmitInterceptorContextRef<'_>,
        _rc: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), aws_smithy_runtime_api::box_error::BoxError> {
        let op = cfg.load::<Metadata>().map_or("unknown", |m| m.name()).to_string();
        let method = ctx.request().method().to_string();
        if let Ok(mut c) = self.0.inner.lock() {
            *c.by_operation.entry(op).or_default() += 1;
            *c.by_method.entry(method).or_default() += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_by_operation_and_method() {
        let c = RequestCounter::default();
        c.record("ListObjectsV2", "GET");
        c.record("GetObject", "GET");
        c.record("GetObject", "GET");
        let s = c.snapshot();
        assert_eq!(s.by_operation["GetObject"], 2);
        assert_eq!(s.by_operation["ListObjectsV2"], 1);
        assert_eq!(s.by_method["GET"], 3);
        assert!(s.by_operation.keys().all(|op| OPERATIONS.contains(&op.as_str())));
    }
}
