//! The collectors of a target behind one seam: the S3 catalog walk and the
//! PostgreSQL archiver query, each run once per cycle by the
//! [`crate::scheduler`], which owns the deadline, the last good values and the
//! publish. Their outcome is typed: data, or a [`Failure`] whose
//! [`Failure::reason`] is the bounded `reason` label of
//! `barman_cloud_collector_errors_total`.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use aws_smithy_runtime_api::client::http::SharedHttpClient;
use thiserror::Error;
use tracing::debug;

use crate::catalog::analysis::{AnalysisOptions, TargetSummary, summarize_target};
use crate::config::Provider;
use crate::config::{Postgres, Target};
use crate::source::cloud::{CloudError, CloudSource};
use crate::source::postgres::{ArchiverStatus, PgError, PgErrorReason, PgTarget};
use crate::source::s3::{RequestCounter, S3Error, S3ErrorReason, S3Source, WalkCache, WalkOptions, WalkStats};

/// Which collector: the `collector` label value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CollectorKind {
    /// The S3 catalog walk (`collector="s3"`).
    S3,
    /// The `pg_stat_archiver` query (`collector="postgres"`).
    Postgres,
}

impl CollectorKind {
    /// The `collector` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::S3 => "s3",
            Self::Postgres => "postgres",
        }
    }

    /// Every `reason` label value this collector can count, in label order
    /// (the bounded set `barman_cloud_collector_errors_total` exports at 0).
    pub fn reasons(self) -> Vec<&'static str> {
        match self {
            Self::S3 => S3ErrorReason::ALL.iter().map(|r| r.as_str()).collect(),
            Self::Postgres => PgErrorReason::ALL.iter().map(|r| r.as_str()).collect(),
        }
    }
}

/// Why one collection of one collector failed. Its message names the bucket,
/// key or host, never a credential.
#[derive(Debug, Error)]
pub enum Failure {
    /// The S3 walk (or building its client) failed.
    #[error(transparent)]
    S3(#[from] S3Error),
    /// The Azure or GCS walk (or building its client) failed; counted under
    /// `collector="s3"`, the object-store walk whatever the provider.
    #[error(transparent)]
    Cloud(#[from] CloudError),
    /// The PostgreSQL collection failed.
    #[error(transparent)]
    Postgres(#[from] PgError),
    /// The collection did not finish before the target's `timeout`; its
    /// future was dropped, which aborted all of its work.
    #[error("{} did not finish within {}", .collector.describe(), humantime::format_duration(*.after))]
    Deadline {
        /// The collector that ran out of time.
        collector: CollectorKind,
        /// The deadline (`timeout`).
        after: Duration,
    },
}

impl CollectorKind {
    fn describe(self) -> &'static str {
        match self {
            Self::S3 => "S3 walk",
            Self::Postgres => "PostgreSQL collection",
        }
    }
}

impl Failure {
    /// The bounded `reason` label: one of [`CollectorKind::reasons`] of the
    /// collector that failed (a deadline is `timeout` for both).
    pub fn reason(&self) -> &'static str {
        match self {
            Self::S3(e) => e.reason().as_str(),
            Self::Cloud(e) => e.reason().as_str(),
            Self::Postgres(e) => e.reason.as_str(),
            Self::Deadline { .. } => "timeout",
        }
    }
}

/// One collector of a target, run once per cycle under the scheduler's
/// deadline. The future may be dropped at any await point (deadline or
/// shutdown); it must hold nothing that outlives it.
pub trait Collector: Send {
    /// What a successful collection yields.
    type Data: Send + 'static;

    /// Which collector this is.
    fn kind(&self) -> CollectorKind;

    /// Collects once; `now` (Unix seconds) is the cycle's single "now",
    /// shared by the retention plan and the analysis.
    fn collect(&mut self, now: f64) -> impl Future<Output = Result<Self::Data, Failure>> + Send;
}

/// A successful S3 collection: the per-server analysis and the walk's work.
#[derive(Debug, Clone)]
pub struct S3Collection {
    /// What the analysis made of the walk.
    pub summary: TargetSummary,
    /// How much the walk listed, fetched and reused.
    pub stats: WalkStats,
}

/// The S3 catalog walk of one target. Keeps its client between cycles once
/// built (building again at the next cycle while it fails, e.g. a `ca_file`
/// not mounted yet) and the cache of the last successful walk (a failed or
/// aborted walk leaves it as is).
pub struct S3Collector {
    target: Target,
    requests: Arc<RequestCounter>,
    full_walk_interval: Duration,
    list_concurrency: usize,
    /// The HTTP client shared with other S3 targets, if any.
    http: Option<SharedHttpClient>,
    client: Option<Source>,
    cache: WalkCache,
}

/// The object-store client of a target, by provider.
enum Source {
    S3(S3Source),
    Cloud(CloudSource),
}

impl S3Collector {
    /// The collector of `target`, counting every request in `requests`;
    /// `full_walk_interval` and `list_concurrency` as in the configuration.
    pub fn new(
        target: Target,
        requests: Arc<RequestCounter>,
        full_walk_interval: Duration,
        list_concurrency: usize,
    ) -> Self {
        Self {
            target,
            requests,
            full_walk_interval,
            list_concurrency,
            http: None,
            client: None,
            cache: WalkCache::default(),
        }
    }

    /// Sends through `http`, a client shared with other targets
    /// ([`crate::source::tls::shared_http_client`]; S3 targets without a
    /// `ca_file` only).
    pub fn with_http_client(mut self, http: Option<SharedHttpClient>) -> Self {
        self.http = http;
        self
    }

    fn sent(&self) -> u64 {
        self.requests.snapshot().by_operation.values().sum()
    }
}

impl Collector for S3Collector {
    type Data = S3Collection;

    fn kind(&self) -> CollectorKind {
        CollectorKind::S3
    }

    async fn collect(&mut self, now: f64) -> Result<S3Collection, Failure> {
        if self.client.is_none() {
            self.client = Some(match self.target.provider() {
                Provider::S3 => Source::S3(
                    S3Source::with_http_client(&self.target, self.requests.clone(), self.http.clone()).await?,
                ),
                Provider::Azure | Provider::Gcs => {
                    Source::Cloud(CloudSource::new(&self.target, self.requests.clone())?)
                }
            });
        }
        let Some(source) = &self.client else {
            unreachable!("the client was just built");
        };
        let opts = WalkOptions {
            retention: self.target.retention(),
            now,
            full_walk_interval: self.full_walk_interval.as_secs_f64(),
            list_concurrency: self.list_concurrency,
        };
        let before = self.sent();
        let mut walk = match source {
            Source::S3(s) => s.walk(opts, &self.cache).await?,
            Source::Cloud(c) => c.walk(opts, &self.cache).await?,
        };
        walk.stats.requests = self.sent() - before;
        debug!(target_name = %self.target.name, stats = ?walk.stats, "walk finished");
        self.cache = walk.cache;
        Ok(S3Collection {
            summary: summarize_target(&walk.catalog, &analysis_options(&self.target, now)),
            stats: walk.stats,
        })
    }
}

fn analysis_options(target: &Target, now: f64) -> AnalysisOptions<'_> {
    AnalysisOptions {
        servers: target.servers.as_deref(),
        orphan_after: target.orphan_after.as_secs_f64(),
        stuck_after: target.stuck_after.as_secs_f64(),
        retention: target.retention_policy.is_some(),
        now,
    }
}

/// The `pg_stat_archiver` query of one target: connects, queries and
/// disconnects every cycle (the URL file is re-read each time, so a rotated
/// password needs no restart).
pub struct PgCollector {
    postgres: Postgres,
    statement_timeout: Duration,
}

impl PgCollector {
    /// The collector of `postgres`; the server cancels our statements after
    /// `statement_timeout` (the target's `timeout`), so a hung query does not
    /// outlive the deadline there.
    pub fn new(postgres: Postgres, statement_timeout: Duration) -> Self {
        Self {
            postgres,
            statement_timeout,
        }
    }

    async fn url(&self) -> Result<String, PgError> {
        match (&self.postgres.url, &self.postgres.url_file) {
            (Some(url), _) => Ok(url.expose().to_string()),
            (None, Some(path)) => Ok(tokio::fs::read_to_string(path)
                .await
                .map_err(|e| {
                    PgError::new(
                        PgErrorReason::Config,
                        format!("postgres url_file {}: {e}", path.display()),
                    )
                })?
                .trim()
                .to_string()),
            (None, None) => Err(PgError::new(
                PgErrorReason::Config,
                "postgres: neither url nor url_file",
            )),
        }
    }
}

impl Collector for PgCollector {
    type Data = ArchiverStatus;

    fn kind(&self) -> CollectorKind {
        CollectorKind::Postgres
    }

    async fn collect(&mut self, _now: f64) -> Result<ArchiverStatus, Failure> {
        let url = self.url().await?;
        Ok(PgTarget::parse(&url)?
            .with_statement_timeout(self.statement_timeout)
            .collect()
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_and_messages() {
        let d = Failure::Deadline {
            collector: CollectorKind::S3,
            after: Duration::from_secs(120),
        };
        assert_eq!(d.reason(), "timeout");
        assert_eq!(d.to_string(), "S3 walk did not finish within 2m");
        let d = Failure::Deadline {
            collector: CollectorKind::Postgres,
            after: Duration::from_secs(5),
        };
        assert_eq!(d.to_string(), "PostgreSQL collection did not finish within 5s");
        let pg = Failure::from(PgError::new(
            PgErrorReason::Auth,
            "postgres x: password authentication failed",
        ));
        assert_eq!(
            (pg.reason(), pg.to_string().as_str()),
            ("auth", "postgres x: password authentication failed")
        );
        let s3 = Failure::from(S3Error::Destination("nope".into()));
        assert_eq!(s3.reason(), "other");
        // Every reason a failure can carry is in its collector's bounded set.
        assert!(CollectorKind::S3.reasons().contains(&"timeout"));
        assert!(CollectorKind::Postgres.reasons().contains(&"timeout"));
        assert_eq!(CollectorKind::S3.reasons().len(), 11);
        assert_eq!(CollectorKind::Postgres.reasons().len(), 6);
    }

    #[tokio::test]
    async fn a_missing_url_file_is_a_config_failure_naming_the_file() {
        let pg = Postgres {
            url: None,
            url_file: Some("/nonexistent/bce-url".into()),
            server: None,
        };
        let err = PgCollector::new(pg, Duration::from_secs(1))
            .collect(0.0)
            .await
            .unwrap_err();
        assert_eq!(err.reason(), "config");
        assert!(err.to_string().contains("/nonexistent/bce-url"), "{err}");
    }
}
