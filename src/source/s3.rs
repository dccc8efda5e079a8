//! The S3 catalog walk: listings and `backup.info` GETs, read-only.
//!
//! Per target: one delimiter listing of the destination path finds the server
//! prefixes; per server, a recursive listing of `base/` (backup directories and
//! their sizes, whether each has a `backup.info`) and of `wals/` (every key
//! classified and aggregated as the pages stream by, so memory does not grow
//! with the number of WAL objects), then one bounded GET per `backup.info`.
//!
//! Only `ListObjectsV2` and `GetObject` are ever sent. Every HTTP request,
//! retries included, is counted per operation by [`RequestCounter`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, error::CredentialsError, future};
use aws_sdk_s3::Client;
use aws_sdk_s3::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_s3::config::{ConfigBag, Credentials, Intercept, Region, RuntimeComponents};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use futures_util::{StreamExt, TryStreamExt, stream};
use thiserror::Error;
use tokio::sync::Semaphore;

use crate::catalog::backup_info::{BackupInfo, BackupStatus, MAX_BACKUP_INFO_BYTES};
use crate::catalog::history::{self, HistoryEntry};
use crate::catalog::key::{BaseObject, classify_base, is_backup_tar};
use crate::catalog::retention::{BackupMeta, Keep, RetentionPolicy, WalRules};
use crate::catalog::{BackupDir, BackupInfoState, ServerCatalog, TargetCatalog, Usage, WalTotals};
use crate::config::Target;

/// What a walk needs besides the bucket: the retention policy to simulate, the
/// time to simulate it at, and how to list.
#[derive(Debug, Clone, Copy)]
pub struct WalkOptions {
    /// The target's `retention_policy`.
    pub retention: Option<RetentionPolicy>,
    /// Now, Unix seconds.
    pub now: f64,
    /// Seconds after which every WAL directory is re-listed anyway
    /// (`full_walk_interval`); 0 makes every walk full.
    pub full_walk_interval: f64,
    /// WAL directory listings in flight at once per target, all its server
    /// prefixes together (`list_concurrency`): each holds one page of up to
    /// 1,000 keys in memory, so this bounds the walk's peak memory.
    pub list_concurrency: usize,
}

/// The result of [`S3Source::walk`].
#[derive(Debug)]
pub struct Walk {
    /// What the bucket holds.
    pub catalog: TargetCatalog,
    /// What the next walk may reuse.
    pub cache: WalkCache,
    /// How much was listed, fetched and reused.
    pub stats: WalkStats,
}

/// Counts of one walk's work, summed over servers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct WalkStats {
    /// Servers whose WAL directories were all listed.
    pub full_servers: u64,
    /// Servers walked incrementally.
    pub incremental_servers: u64,
    /// WAL directories listed.
    pub listed_dirs: u64,
    /// WAL directories whose previous aggregates were reused unlisted.
    pub reused_dirs: u64,
    /// `backup.info`, keep annotations and `.history` objects not fetched
    /// again because their ETag and size were unchanged.
    pub reused_objects: u64,
    /// HTTP requests the walk sent to S3, retries included (filled in by the
    /// scheduler from the target's request counter).
    pub requests: u64,
}

impl WalkStats {
    fn add(&mut self, o: &WalkStats) {
        self.full_servers += o.full_servers;
        self.incremental_servers += o.incremental_servers;
        self.listed_dirs += o.listed_dirs;
        self.reused_dirs += o.reused_dirs;
        self.reused_objects += o.reused_objects;
        self.requests += o.requests;
    }

    /// True when every server's WAL directories were all listed (or there
    /// were no servers): the `kind="full"` of `barman_cloud_s3_walks_total`.
    pub fn is_full(&self) -> bool {
        self.incremental_servers == 0
    }
}

/// What one walk leaves for the next: per server, the objects already read
/// (by ETag) and the aggregates of each WAL directory. Memory grows with
/// servers, backups and WAL directories, never with WAL segments.
#[derive(Debug, Clone, Default)]
pub struct WalkCache {
    servers: BTreeMap<String, ServerCache>,
}

impl WalkCache {
    /// Number of servers and WAL directories remembered.
    pub fn size(&self) -> (usize, usize) {
        (self.servers.len(), self.servers.values().map(|s| s.dirs.len()).sum())
    }
}

/// One server's part of a [`WalkCache`].
#[derive(Debug, Clone, Default)]
pub struct ServerCache {
    /// Parsed `backup.info` by backup id (not STARTED ones).
    infos: BTreeMap<String, Cached<BackupInfoState>>,
    /// Keep annotations by backup id.
    keeps: BTreeMap<String, Cached<Option<Keep>>>,
    /// Parsed `.history` files by key after `wals/`.
    histories: BTreeMap<String, Cached<Option<Vec<HistoryEntry>>>>,
    /// The retention rules the directory aggregates were computed with.
    rules: WalRules,
    /// Aggregates per `wals/<dir>/` (the directory name without slashes).
    dirs: BTreeMap<String, Arc<WalTotals>>,
    /// When every directory was last listed, Unix seconds.
    full_at: f64,
    /// False when the last full walk found older directories changed, so the
    /// next walk is full too.
    settled: bool,
    /// The directories that were active then ([`WalListing::active`]): they
    /// may have been filled after they were listed, so they are listed again.
    active: BTreeSet<String>,
}

/// An object's identity as listed: a value derived from its bytes stays valid
/// while the ETag and size do.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ObjectId {
    etag: String,
    size: u64,
}

impl ObjectId {
    /// `None` when the listing gave no ETag (then nothing is cached).
    fn of(o: &aws_sdk_s3::types::Object) -> Option<Self> {
        Some(Self {
            etag: o.e_tag()?.to_string(),
            size: size(o),
        })
    }
}

/// A value derived from an object's bytes, with the object's identity.
#[derive(Debug, Clone)]
struct Cached<T> {
    id: ObjectId,
    value: T,
}

impl<T> Cached<T> {
    /// The cached value when the object is listed with the same identity.
    fn hit<'a>(cached: Option<&'a Cached<T>>, now: Option<&ObjectId>) -> Option<&'a T> {
        let c = cached?;
        (Some(&c.id) == now).then_some(&c.value)
    }
}

/// A backup directory as read, with what may be cached of its `backup.info`
/// and keep annotation, and how many objects were reused from the cache.
type FetchedBackup = (
    BackupDir,
    Option<Cached<BackupInfoState>>,
    Option<Cached<Option<Keep>>>,
    u64,
);

/// A `.history` file's timeline, its parsed entries, and what may be cached.
type FetchedHistory = (
    u32,
    Option<Vec<HistoryEntry>>,
    Option<Cached<Option<Vec<HistoryEntry>>>>,
);

/// One server's walk result.
struct ServerWalk {
    catalog: ServerCatalog,
    cache: ServerCache,
    stats: WalkStats,
}

/// Which WAL directories a walk lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalListing {
    /// Every directory is listed.
    pub full: bool,
    /// The directories to list (names under `wals/`, without slashes).
    pub list: Vec<String>,
    /// Directories PostgreSQL may still be writing into: the newest of the two
    /// newest timelines (a promote archives the old timeline's `.partial`).
    /// A change there is expected and does not unsettle a full walk.
    pub active: BTreeSet<String>,
    /// A directory of the previous walk is gone (retention ran).
    pub removed: bool,
}

/// A run of consecutive `wals/` directories listed together, and the
/// directory just before it in the delimiter listing (where its range
/// listing starts after).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The directory before the first one, `None` at the start of `wals/`.
    pub after: Option<String>,
    /// The directories, in listing order.
    pub dirs: Vec<String>,
}

/// Groups the directories to list into chunks for concurrent listings:
/// runs of directories consecutive in `all` (the `wals/` delimiter listing's
/// order), each cut into pieces of at most `ceil(list / concurrency)`
/// directories, so a cold walk makes about `concurrency` range listings of
/// full pages and an incremental one a listing per active directory.
pub fn listing_chunks(all: &[String], list: &[String], concurrency: usize) -> Vec<Chunk> {
    let wanted: BTreeSet<&String> = list.iter().collect();
    let size = list.len().div_ceil(concurrency.max(1)).max(1);
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut run: Vec<String> = Vec::new();
    let mut after: Option<&String> = None;
    for d in all {
        if wanted.contains(d) {
            run.push(d.clone());
            if run.len() == size {
                chunks.push(Chunk {
                    after: after.cloned(),
                    dirs: std::mem::take(&mut run),
                });
                after = Some(d);
            }
        } else {
            if !run.is_empty() {
                chunks.push(Chunk {
                    after: after.cloned(),
                    dirs: std::mem::take(&mut run),
                });
            }
            after = Some(d);
        }
    }
    if !run.is_empty() {
        chunks.push(Chunk {
            after: after.cloned(),
            dirs: run,
        });
    }
    chunks
}

/// Decides which WAL directories to list, given the previous walk of the
/// server (`None`: cold start), the directories listed now under `wals/` (in
/// listing order) and the retention rules planned now.
///
/// The walk is full (every directory) on a cold start, when the rules differ
/// from those the cached aggregates were computed with (the backup set
/// changed, or a RECOVERY WINDOW moved), when a directory disappeared
/// (retention deleted it), when the previous full walk was not settled, or
/// when `full_walk_interval` has passed since the last full walk. Otherwise it
/// lists the new directories, the active ones and those active in the
/// previous walk (which may have been filled since): WAL keys sort
/// lexicographically and PostgreSQL only appends, so a filled directory
/// changes only by retention, which changes the backup set first.
pub fn plan_wal_listing(
    prev: Option<&ServerCache>,
    dirs: &[String],
    rules: &WalRules,
    opts: WalkOptions,
) -> WalListing {
    let mut newest: BTreeMap<u32, &String> = BTreeMap::new();
    for d in dirs {
        if let Some((tli, _)) = crate::catalog::key::wal_dir(&format!("{d}/")) {
            let e = newest.entry(tli).or_insert(d);
            if d > *e {
                *e = d;
            }
        }
    }
    let active: BTreeSet<String> = newest.values().rev().take(2).map(|d| (*d).clone()).collect();
    let now: BTreeSet<&String> = dirs.iter().collect();
    let removed = prev.is_some_and(|p| p.dirs.keys().any(|d| !now.contains(d)));
    let full = match prev {
        None => true,
        Some(p) => p.rules != *rules || removed || !p.settled || opts.now - p.full_at >= opts.full_walk_interval,
    };
    let list = dirs
        .iter()
        .filter(|d| {
            full || active.contains(*d) || prev.is_none_or(|p| p.active.contains(*d) || !p.dirs.contains_key(*d))
        })
        .cloned()
        .collect();
    WalListing {
        full,
        list,
        active,
        removed,
    }
}

/// Decodes a `.history` object's body: plain, or compressed with any of
/// barman-cloud's `ALLOWED_COMPRESSIONS` (gzip, bzip2, xz, snappy framing,
/// zstd, lz4 frame). `None` when it does not decode.
fn decompress_history(key: &str, body: &[u8]) -> Option<String> {
    use std::io::Read;
    let suffix = key.rsplit('.').next().unwrap_or("");
    let mut out = Vec::new();
    let ok = match suffix {
        "history" => {
            out = body.to_vec();
            true
        }
        "gz" => flate2::read::GzDecoder::new(body).read_to_end(&mut out).is_ok(),
        "bz2" => bzip2::read::BzDecoder::new(body).read_to_end(&mut out).is_ok(),
        "xz" => lzma_rs::xz_decompress(&mut std::io::BufReader::new(body), &mut out).is_ok(),
        "snappy" => snap::read::FrameDecoder::new(body).read_to_end(&mut out).is_ok(),
        "zst" => ruzstd::decoding::StreamingDecoder::new(body).is_ok_and(|mut d| d.read_to_end(&mut out).is_ok()),
        "lz4" => lz4_flex::frame::FrameDecoder::new(body).read_to_end(&mut out).is_ok(),
        _ => false,
    };
    if !ok || out.len() as u64 > MAX_BACKUP_INFO_BYTES {
        return None;
    }
    String::from_utf8(out).ok()
}

/// How many server prefixes are walked at once per target.
const SERVER_CONCURRENCY: usize = 4;
/// How many `backup.info` GETs are in flight at once per server.
const GET_CONCURRENCY: usize = 8;

/// Why an S3 operation failed: the bounded `reason` label of
/// `barman_cloud_collector_errors_total{collector="s3"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum S3ErrorReason {
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

impl S3ErrorReason {
    /// Every reason: the bounded label set of
    /// `barman_cloud_collector_errors_total{collector="s3"}` (the scheduler's
    /// deadline counts as [`S3ErrorReason::Timeout`]).
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

/// An S3 collection error. Carries bucket and prefix, never credentials.
#[derive(Debug, Error)]
pub enum S3Error {
    /// A listing failed.
    #[error("listing s3://{bucket}/{prefix}: {message}")]
    List {
        /// Bucket.
        bucket: String,
        /// Prefix listed.
        prefix: String,
        /// Classified reason.
        reason: S3ErrorReason,
        /// The SDK's message.
        message: String,
    },
    /// A GET failed in a way that makes the whole walk unreliable (network, 5xx).
    #[error("reading s3://{bucket}/{key}: {message}")]
    Get {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// Classified reason.
        reason: S3ErrorReason,
        /// The SDK's message.
        message: String,
    },
    /// A credentials file could not be read.
    #[error("credentials file {}: {message}", path.display())]
    Credentials {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The target's `destination_path` is invalid (rejected by config validation first).
    #[error("invalid destination_path {0:?}")]
    Destination(String),
    /// The target's `ca_file` is unusable (rejected by config validation first).
    #[error("ca_file {0}")]
    CaFile(String),
}

impl S3Error {
    /// The bounded reason label.
    pub fn reason(&self) -> S3ErrorReason {
        match self {
            Self::List { reason, .. } | Self::Get { reason, .. } => *reason,
            Self::Credentials { .. } => S3ErrorReason::Credentials,
            Self::Destination(_) => S3ErrorReason::Other,
            Self::CaFile(_) => S3ErrorReason::Tls,
        }
    }
}

/// Whether an I/O error (a connection reset or closed while a body was being
/// read) is anywhere in `err`'s source chain, and whether it was a timeout.
fn io_failure(err: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut cur = err.source();
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        cur = e.source();
    }
    None
}

fn classify<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug + 'static>(
    err: &SdkError<E, R>,
    status: Option<u16>,
    message: &str,
) -> S3ErrorReason {
    match err {
        SdkError::TimeoutError(_) => S3ErrorReason::Timeout,
        SdkError::DispatchFailure(d) if d.is_timeout() => S3ErrorReason::Timeout,
        SdkError::DispatchFailure(d) if d.as_connector_error().is_some_and(|c| super::tls::is_tls_failure(c)) => {
            S3ErrorReason::Tls
        }
        SdkError::DispatchFailure(_) => S3ErrorReason::Connect,
        // The connection failed while the response was being read: transport, not content.
        SdkError::ResponseError(_) => match io_failure(err) {
            Some(std::io::ErrorKind::TimedOut) => S3ErrorReason::Timeout,
            Some(_) => S3ErrorReason::Connect,
            None => S3ErrorReason::InvalidResponse,
        },
        SdkError::ConstructionFailure(_) => {
            if message.contains("credentials") || message.contains("identity") {
                S3ErrorReason::Credentials
            } else {
                S3ErrorReason::Other
            }
        }
        SdkError::ServiceError(e) => match (e.err().code(), status) {
            (Some("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "AllAccessDisabled"), _) => {
                S3ErrorReason::AccessDenied
            }
            (Some("NoSuchBucket"), _) => S3ErrorReason::NoSuchBucket,
            (Some("SlowDown" | "Throttling" | "ThrottlingException"), _) | (_, Some(503)) => S3ErrorReason::Throttled,
            (_, Some(403)) => S3ErrorReason::AccessDenied,
            (_, Some(s)) if s >= 500 => S3ErrorReason::ServerError,
            (_, Some(s)) if s >= 400 => S3ErrorReason::ClientError,
            (Some("PermanentRedirect"), _) | (_, Some(300..=399)) => S3ErrorReason::ClientError,
            _ => S3ErrorReason::Other,
        },
        _ => S3ErrorReason::Other,
    }
}

fn status_of<E>(err: &SdkError<E, aws_smithy_runtime_api::http::Response>) -> Option<u16> {
    err.raw_response().map(|r| r.status().as_u16())
}

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

#[derive(Debug)]
struct CountRequests(Arc<RequestCounter>);

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

/// Credentials read from files (Kubernetes secret mounts), re-read whenever the
/// SDK's identity cache expires them (every 5 minutes), so rotation needs no restart.
#[derive(Debug, Clone)]
struct FileCredentials {
    access_key_id: PathBuf,
    secret_access_key: PathBuf,
    session_token: Option<PathBuf>,
}

impl FileCredentials {
    fn read(path: &Path) -> Result<String, S3Error> {
        let text = std::fs::read_to_string(path).map_err(|e| S3Error::Credentials {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(text.trim().to_string())
    }

    fn load(&self) -> Result<Credentials, S3Error> {
        let token = self.session_token.as_deref().map(Self::read).transpose()?;
        Ok(Credentials::new(
            Self::read(&self.access_key_id)?,
            Self::read(&self.secret_access_key)?,
            token,
            Some(SystemTime::now() + Duration::from_secs(300)),
            "barman-cloud-exporter-files",
        ))
    }
}

impl ProvideCredentials for FileCredentials {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::ready(self.load().map_err(CredentialsError::not_loaded))
    }
}

/// A read-only S3 view of one target.
#[derive(Debug, Clone)]
pub struct S3Source {
    client: Client,
    bucket: String,
    prefix: String,
}

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
        let (bucket, prefix) = target
            .bucket_and_prefix()
            .ok_or_else(|| S3Error::Destination(target.destination_path.clone()))?;
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
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
            b = b.http_client(super::tls::http_client_with_ca(ca).map_err(S3Error::CaFile)?);
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

    /// Walks the whole destination path, reusing what `prev` (the previous
    /// successful walk's cache; empty for a cold start) says cannot have
    /// changed. Returns the catalog and the cache for the next walk.
    ///
    /// Per server: `base/` is listed and only new or changed `backup.info`,
    /// keep annotations and `.history` files are fetched (an object whose ETag
    /// and size are unchanged is not fetched again; STARTED backups are always
    /// re-read). `wals/` is listed with a delimiter to find its directories;
    /// a full walk lists every directory, `opts.list_concurrency` at once
    /// across all servers of the target; an
    /// incremental walk lists only new directories and the newest directory of
    /// the two newest timelines, and reuses the previous aggregates of the rest.
    /// See [`plan_wal_listing`] for when a walk is full.
    ///
    /// # Errors
    /// Any failed listing, and GETs that fail for network or server reasons,
    /// fail the walk: a partial catalog is never returned. A `backup.info`
    /// that is refused (4xx), too large or malformed only marks that backup
    /// unreadable.
    pub async fn walk(&self, opts: WalkOptions, prev: &WalkCache) -> Result<Walk, S3Error> {
        let mut catalog = TargetCatalog::default();
        let mut candidates = Vec::new();
        self.list(&self.prefix, Some("/"), |page| {
            for cp in page.common_prefixes() {
                if let Some(p) = cp.prefix()
                    && let Some(name) = p.strip_prefix(&self.prefix).and_then(|n| n.strip_suffix('/'))
                    && !name.is_empty()
                {
                    candidates.push(name.to_string());
                }
            }
            for o in page.contents() {
                catalog.loose.add(size(o));
            }
        })
        .await?;
        // One bound for the target: in-flight listings hold a page each.
        let permits = Semaphore::new(opts.list_concurrency.max(1));
        let walked: Vec<Option<ServerWalk>> = stream::iter(candidates)
            .map(|name| {
                let prev = prev.servers.get(&name);
                self.walk_server(name, opts, prev, &permits)
            })
            .buffered(SERVER_CONCURRENCY)
            .try_collect()
            .await?;
        let mut walk = Walk {
            catalog,
            cache: WalkCache::default(),
            stats: WalkStats::default(),
        };
        for w in walked.into_iter().flatten() {
            walk.stats.add(&w.stats);
            walk.cache.servers.insert(w.catalog.name.clone(), w.cache);
            walk.catalog.servers.push(w.catalog);
        }
        Ok(walk)
    }

    /// Walks one server prefix; `None` when it holds neither `base/` nor `wals/`.
    ///
    /// Order matters for flat memory: `base/` is listed and every `backup.info`
    /// (and keep annotation) fetched first, so the retention rules are known
    /// before `wals/` streams by and each WAL object is accounted as it passes.
    async fn walk_server(
        &self,
        name: String,
        opts: WalkOptions,
        prev: Option<&ServerCache>,
        permits: &Semaphore,
    ) -> Result<Option<ServerWalk>, S3Error> {
        let root = format!("{}{}/", self.prefix, name);
        let mut server = ServerCatalog {
            name,
            ..Default::default()
        };
        let mut cache = ServerCache::default();
        let mut stats = WalkStats::default();
        let base = format!("{root}base/");
        #[derive(Default)]
        struct Dir {
            usage: Usage,
            barman_bytes: u64,
            info: Option<Option<ObjectId>>,
            keep: Option<Option<ObjectId>>,
        }
        let mut dirs: BTreeMap<String, Dir> = BTreeMap::new();
        let mut base_seen = false;
        self.list(&base, None, |page| {
            for o in page.contents() {
                base_seen = true;
                let Some(rest) = o.key().and_then(|k| k.strip_prefix(&base)) else {
                    continue;
                };
                let (id, file) = match classify_base(rest) {
                    BaseObject::BackupInfo { id } => (id, "backup.info"),
                    BaseObject::BackupFile { id } => (id, &rest[id.len() + 1..]),
                    BaseObject::Loose => {
                        server.base_loose.add(size(o));
                        continue;
                    }
                };
                let d = dirs.entry(id.to_string()).or_default();
                d.usage.add(size(o));
                match file {
                    "backup.info" => {
                        d.info = Some(ObjectId::of(o));
                        d.barman_bytes += size(o);
                    }
                    "annotations/keep" => d.keep = Some(ObjectId::of(o)),
                    f if is_backup_tar(f) => d.barman_bytes += size(o),
                    _ => {}
                }
            }
        })
        .await?;
        let fetched: Vec<FetchedBackup> = stream::iter(dirs)
            .map(|(id, d)| {
                let info_key = format!("{base}{id}/backup.info");
                let keep_key = format!("{base}{id}/annotations/keep");
                let prev_info = prev.and_then(|p| p.infos.get(&id));
                let prev_keep = prev.and_then(|p| p.keeps.get(&id));
                async move {
                    let mut reused = 0;
                    let (info, info_cache) = match d.info {
                        None => (BackupInfoState::Missing, None),
                        Some(oid) => match Cached::hit(prev_info, oid.as_ref()) {
                            Some(v) => {
                                reused += 1;
                                (v.clone(), prev_info.cloned())
                            }
                            None => {
                                let (state, stable) = self.fetch_backup_info(&info_key).await?;
                                let c = oid.filter(|_| stable).map(|id| Cached {
                                    id,
                                    value: state.clone(),
                                });
                                (state, c)
                            }
                        },
                    };
                    let (keep, keep_cache) = match d.keep {
                        None => (None, None),
                        Some(oid) => match Cached::hit(prev_keep, oid.as_ref()) {
                            Some(v) => {
                                reused += 1;
                                (*v, prev_keep.cloned())
                            }
                            None => match self.get_small(&keep_key).await? {
                                Some(body) => {
                                    let keep = Keep::from_body(&String::from_utf8_lossy(&body));
                                    (keep, oid.map(|id| Cached { id, value: keep }))
                                }
                                None => (None, None),
                            },
                        },
                    };
                    let dir = BackupDir {
                        id,
                        objects: d.usage.objects,
                        bytes: d.usage.bytes,
                        barman_bytes: d.barman_bytes,
                        keep,
                        info,
                    };
                    Ok::<_, S3Error>((dir, info_cache, keep_cache, reused))
                }
            })
            .buffered(GET_CONCURRENCY)
            .try_collect()
            .await?;
        for (dir, info, keep, reused) in fetched {
            stats.reused_objects += reused;
            if let Some(c) = info {
                cache.infos.insert(dir.id.clone(), c);
            }
            if let Some(c) = keep {
                cache.keeps.insert(dir.id.clone(), c);
            }
            server.backups.push(dir);
        }
        let metas: Vec<BackupMeta> = server.backups.iter().filter_map(BackupDir::retention_meta).collect();
        let unreadable = server
            .backups
            .iter()
            .any(|b| matches!(&b.info, BackupInfoState::Unreadable(_)) || b.blocks_barman());
        server.rules = WalRules::plan(&metas, opts.retention, opts.now, unreadable);

        // wals/: its root (history files, strays) and its directory names.
        let wals = format!("{root}wals/");
        let mut wal_seen = false;
        let mut wal_dirs: Vec<String> = Vec::new();
        let mut root_ids: BTreeMap<String, Option<ObjectId>> = BTreeMap::new();
        self.list(&wals, Some("/"), |page| {
            for cp in page.common_prefixes() {
                wal_seen = true;
                if let Some(d) = cp
                    .prefix()
                    .and_then(|p| p.strip_prefix(&wals))
                    .and_then(|d| d.strip_suffix('/'))
                {
                    wal_dirs.push(d.to_string());
                }
            }
            for o in page.contents() {
                wal_seen = true;
                if let Some(rest) = o.key().and_then(|k| k.strip_prefix(&wals)) {
                    let modified = o.last_modified().map(|t| t.as_secs_f64());
                    server.wal.add(rest, size(o), modified, &server.rules);
                    root_ids.insert(rest.to_string(), ObjectId::of(o));
                }
            }
        })
        .await?;
        if !base_seen && !wal_seen {
            return Ok(None);
        }
        let plan = plan_wal_listing(prev, &wal_dirs, &server.rules, opts);
        let chunks = listing_chunks(&wal_dirs, &plan.list, opts.list_concurrency);
        let mut listed: BTreeMap<String, WalTotals> = BTreeMap::new();
        let mut lists = stream::iter(chunks)
            .map(|chunk| async {
                // Never closed, so acquiring cannot fail.
                let _permit = permits.acquire().await.ok();
                self.list_wal_dirs(&wals, chunk, &server.rules).await
            })
            .buffer_unordered(opts.list_concurrency.max(1));
        while let Some(dirs) = lists.try_next().await? {
            listed.extend(dirs);
        }
        drop(lists);
        for d in &plan.list {
            // Emptied between the delimiter listing and its own listing.
            listed.entry(d.clone()).or_default();
        }
        stats.listed_dirs += listed.len() as u64;
        let mut changed = plan.removed;
        for d in wal_dirs {
            let totals = match listed.remove(&d) {
                Some(t) => {
                    let old = prev.and_then(|p| p.dirs.get(&d));
                    let expected = plan.active.contains(&d) || prev.is_some_and(|p| p.active.contains(&d));
                    if plan.full && !expected && old.is_some_and(|o| !o.same_objects(&t)) {
                        changed = true;
                    }
                    Arc::new(t)
                }
                None => match prev.and_then(|p| p.dirs.get(&d)) {
                    Some(t) => {
                        stats.reused_dirs += 1;
                        t.clone()
                    }
                    // Unreachable: a directory not listed now was in the previous cache.
                    None => Arc::new(WalTotals::default()),
                },
            };
            server.wal.merge(&totals);
            cache.dirs.insert(d, totals);
        }
        if plan.full {
            stats.full_servers += 1;
        } else {
            stats.incremental_servers += 1;
        }
        cache.rules = server.rules.clone();
        cache.active = plan.active;
        cache.full_at = if plan.full {
            opts.now
        } else {
            prev.map_or(opts.now, |p| p.full_at)
        };
        // A full walk that found old directories changed (retention deleting
        // WAL, or WAL written into an old directory) is repeated next cycle,
        // until the bucket is seen to be settled.
        cache.settled = !(plan.full && prev.is_some() && changed);

        let histories: Vec<(u32, String)> = server.wal.history_keys.iter().map(|(t, k)| (*t, k.clone())).collect();
        let gets_sent = AtomicUsize::new(0);
        let gets_sent = &gets_sent;
        let fetched: Vec<FetchedHistory> = stream::iter(histories)
            .map(|(tli, rest)| {
                let oid = root_ids.get(&rest).cloned().flatten();
                let prev_hist = prev.and_then(|p| p.histories.get(&rest));
                let key = format!("{wals}{rest}");
                async move {
                    if let Some(v) = Cached::hit(prev_hist, oid.as_ref()) {
                        return Ok::<_, S3Error>((tli, v.clone(), prev_hist.cloned()));
                    }
                    gets_sent.fetch_add(1, Ordering::Relaxed);
                    let body = self.get_small(&key).await?;
                    let fetched = body.is_some();
                    let parsed = body
                        .and_then(|b| decompress_history(&rest, &b))
                        .as_deref()
                        .and_then(history::parse);
                    let c = oid.filter(|_| fetched).map(|id| Cached {
                        id,
                        value: parsed.clone(),
                    });
                    Ok((tli, parsed, c))
                }
            })
            .buffered(GET_CONCURRENCY)
            .try_collect()
            .await?;
        stats.reused_objects += (server.wal.history_keys.len() - gets_sent.load(Ordering::Relaxed)) as u64;
        for (tli, entries, c) in fetched {
            match entries {
                Some(entries) => {
                    server.histories.insert(tli, entries);
                }
                None => server.histories_unreadable += 1,
            }
            if let (Some(c), Some(rest)) = (c, server.wal.history_keys.get(&tli)) {
                cache.histories.insert(rest.clone(), c);
            }
        }
        Ok(Some(ServerWalk {
            catalog: server,
            cache,
            stats,
        }))
    }

    /// Fetches and parses one `backup.info`; the flag says whether the result
    /// may be cached by ETag (a parsed DONE or FAILED backup, or a malformed
    /// file: both follow from the bytes alone; STARTED backups and refused
    /// GETs are read again next time).
    async fn fetch_backup_info(&self, key: &str) -> Result<(BackupInfoState, bool), S3Error> {
        Ok(match self.get_bounded(key).await? {
            Ok(buf) => match BackupInfo::parse(&buf) {
                Ok(info) => {
                    let stable = info.status != BackupStatus::Started;
                    (BackupInfoState::Parsed(Box::new(info)), stable)
                }
                Err(e) => (BackupInfoState::Unreadable(e.to_string()), true),
            },
            Err(why) => (BackupInfoState::Unreadable(why), false),
        })
    }

    /// GETs a small object (at most [`MAX_BACKUP_INFO_BYTES`]); `None` when it
    /// is missing, refused or too large.
    ///
    /// # Errors
    /// Network and server errors, which make the walk unreliable.
    async fn get_small(&self, key: &str) -> Result<Option<Vec<u8>>, S3Error> {
        match self.get_bounded(key).await? {
            Ok(bytes) => Ok(Some(bytes)),
            Err(_) => Ok(None),
        }
    }

    /// GETs at most [`MAX_BACKUP_INFO_BYTES`] + 1 bytes of `key`. The inner
    /// `Err` says why the object is unusable (refused, too large) without
    /// failing the walk.
    async fn get_bounded(&self, key: &str) -> Result<Result<Vec<u8>, String>, S3Error> {
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
                        Ok(Err(format!("GET refused ({}): {message}", reason.as_str())))
                    }
                    _ => Err(get_err(reason, message)),
                };
            }
        };
        if resp.content_length().is_some_and(|l| l as u64 > MAX_BACKUP_INFO_BYTES) {
            return Ok(Err(format!("larger than {MAX_BACKUP_INFO_BYTES} bytes")));
        }
        let mut body = resp.body;
        let mut buf = Vec::new();
        while let Some(chunk) = body
            .try_next()
            .await
            .map_err(|e| get_err(S3ErrorReason::Connect, e.to_string()))?
        {
            buf.extend_from_slice(&chunk);
            if buf.len() as u64 > MAX_BACKUP_INFO_BYTES {
                return Ok(Err(format!("larger than {MAX_BACKUP_INFO_BYTES} bytes")));
            }
        }
        Ok(Ok(buf))
    }

    /// Lists a run of consecutive `wals/` directories (names in listing
    /// order) and accounts each one's objects with `rules`. One directory is
    /// listed by its prefix; several by one range listing of `wals/` from
    /// just before the first (`StartAfter`) up to the end of the last, so
    /// pages are full whatever the directories hold. Objects at the `wals/`
    /// root (history files) and directories created since the delimiter
    /// listing are left to that listing and the next walk.
    ///
    /// The range starts after `<after>/` + U+10FFFF (past every key of the
    /// directory before), not after `<first>`: SeaweedFS skips a whole
    /// directory named like the `StartAfter` value, which AWS does not.
    async fn list_wal_dirs(
        &self,
        wals: &str,
        chunk: Chunk,
        rules: &WalRules,
    ) -> Result<Vec<(String, WalTotals)>, S3Error> {
        let dirs = chunk.dirs;
        let (Some(first), Some(last)) = (dirs.first(), dirs.last()) else {
            return Ok(Vec::new());
        };
        let wanted: BTreeSet<&str> = dirs.iter().map(String::as_str).collect();
        let (prefix, start_after) = if dirs.len() == 1 {
            (format!("{wals}{first}/"), None)
        } else {
            (wals.to_string(), chunk.after.map(|a| format!("{wals}{a}/\u{10FFFF}")))
        };
        let mut out: Vec<(String, WalTotals)> = Vec::new();
        self.list_from(&prefix, None, start_after.as_deref(), |page| {
            for o in page.contents() {
                let Some(rest) = o.key().and_then(|k| k.strip_prefix(wals)) else {
                    continue;
                };
                let Some((dir, _)) = rest.split_once('/') else {
                    continue; // a root object
                };
                if dir > last.as_str() {
                    return false;
                }
                if !wanted.contains(dir) {
                    continue;
                }
                if out.last().is_none_or(|(d, _)| d != dir) {
                    out.push((dir.to_string(), WalTotals::default()));
                }
                if let Some((_, totals)) = out.last_mut() {
                    let modified = o.last_modified().map(|t| t.as_secs_f64());
                    totals.add(rest, size(o), modified, rules);
                }
            }
            true
        })
        .await?;
        Ok(out)
    }

    /// Pages through `ListObjectsV2(prefix, delimiter)`, handing each page to `f`.
    async fn list(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        mut f: impl FnMut(&aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output),
    ) -> Result<(), S3Error> {
        self.list_from(prefix, delimiter, None, |page| {
            f(page);
            true
        })
        .await
    }

    /// Pages through `ListObjectsV2(prefix, delimiter, start_after)`, handing
    /// each page to `f` until it returns false (no further page is requested).
    async fn list_from(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
        start_after: Option<&str>,
        mut f: impl FnMut(&aws_sdk_s3::operation::list_objects_v2::ListObjectsV2Output) -> bool,
    ) -> Result<(), S3Error> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .set_delimiter(delimiter.map(str::to_string))
            .set_start_after(start_after.map(str::to_string))
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| {
                let message = DisplayErrorContext(&e).to_string();
                S3Error::List {
                    bucket: self.bucket.clone(),
                    prefix: prefix.to_string(),
                    reason: classify(&e, status_of(&e), &message),
                    message,
                }
            })?;
            if !f(&page) {
                break;
            }
        }
        Ok(())
    }
}

fn size(o: &aws_sdk_s3::types::Object) -> u64 {
    o.size().unwrap_or(0).max(0) as u64
}

#[cfg(test)]
mod plan_tests {
    use super::*;

    fn opts(now: f64) -> WalkOptions {
        WalkOptions {
            retention: None,
            now,
            full_walk_interval: 100.0,
            list_concurrency: 4,
        }
    }

    fn dirs(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn cache(names: &[&str], full_at: f64) -> ServerCache {
        ServerCache {
            dirs: names
                .iter()
                .map(|d| (d.to_string(), Arc::new(WalTotals::default())))
                .collect(),
            full_at,
            settled: true,
            // As the walk that listed `names` leaves it.
            active: plan_wal_listing(None, &dirs(names), &WalRules::default(), opts(0.0)).active,
            ..Default::default()
        }
    }

    const OLD: [&str; 5] = [
        "0000000100000000",
        "0000000100000001",
        "0000000200000001",
        "0000000300000001",
        "0000000300000002",
    ];

    #[test]
    fn chunks_are_runs_of_consecutive_directories() {
        let all = dirs(&["a", "b", "c", "d", "e", "f", "g"]);
        let chunk = |after: Option<&str>, d: &[&str]| Chunk {
            after: after.map(String::from),
            dirs: dirs(d),
        };
        assert_eq!(
            listing_chunks(&all, &all, 3),
            vec![
                chunk(None, &["a", "b", "c"]),
                chunk(Some("c"), &["d", "e", "f"]),
                chunk(Some("f"), &["g"])
            ]
        );
        assert_eq!(
            listing_chunks(&all, &dirs(&["a", "b", "d", "g"]), 2),
            vec![
                chunk(None, &["a", "b"]),
                chunk(Some("c"), &["d"]),
                chunk(Some("f"), &["g"])
            ]
        );
        assert_eq!(listing_chunks(&all, &all, 100).len(), 7);
        assert!(listing_chunks(&all, &[], 4).is_empty());
    }

    #[test]
    fn cold_start_lists_everything() {
        let p = plan_wal_listing(None, &dirs(&OLD), &WalRules::default(), opts(0.0));
        assert!(p.full);
        assert_eq!(p.list, dirs(&OLD));
    }

    #[test]
    fn steady_state_lists_the_newest_directory_of_the_two_newest_timelines() {
        let prev = cache(&OLD, 0.0);
        let p = plan_wal_listing(Some(&prev), &dirs(&OLD), &WalRules::default(), opts(50.0));
        assert!(!p.full);
        assert_eq!(p.list, dirs(&["0000000200000001", "0000000300000002"]));
        // A new directory is listed as well; junk directories only when new.
        let mut now = dirs(&OLD);
        now.extend(dirs(&["0000000300000003", "junk"]));
        let p = plan_wal_listing(Some(&prev), &now, &WalRules::default(), opts(50.0));
        assert_eq!(
            p.list,
            dirs(&["0000000200000001", "0000000300000002", "0000000300000003", "junk"])
        );
        assert_eq!(
            p.active,
            ["0000000200000001", "0000000300000003"].map(String::from).into()
        );
    }

    #[test]
    fn full_walk_when_anything_suggests_old_directories_changed() {
        let prev = cache(&OLD, 0.0);
        // The periodic reconcile.
        assert!(plan_wal_listing(Some(&prev), &dirs(&OLD), &WalRules::default(), opts(100.0)).full);
        // A directory disappeared (retention deleted it).
        let p = plan_wal_listing(Some(&prev), &dirs(&OLD[1..]), &WalRules::default(), opts(1.0));
        assert!(p.full && p.removed);
        // The retention plan changed (a backup was added, deleted or aged out).
        let meta = BackupMeta {
            id: "20250101T000000".into(),
            done: true,
            status_done: true,
            timeline: Some(1),
            begin_wal: crate::catalog::wal::SegmentName::parse("000000010000000000000004"),
            end_wal: crate::catalog::wal::SegmentName::parse("000000010000000000000004"),
            end_time: Some(0.0),
            keep: None,
        };
        let rules = WalRules::plan(&[meta], None, 1.0, false);
        assert!(plan_wal_listing(Some(&prev), &dirs(&OLD), &rules, opts(1.0)).full);
        // The last full walk was not settled.
        let unsettled = ServerCache {
            settled: false,
            ..cache(&OLD, 0.0)
        };
        assert!(plan_wal_listing(Some(&unsettled), &dirs(&OLD), &WalRules::default(), opts(1.0)).full);
        // full_walk_interval 0: every walk is full.
        let every = WalkOptions {
            full_walk_interval: 0.0,
            ..opts(0.0)
        };
        assert!(plan_wal_listing(Some(&prev), &dirs(&OLD), &WalRules::default(), every).full);
    }
}

#[cfg(test)]
mod tests {
    use super::decompress_history;
    use std::io::Write;

    const TEXT: &str = "1\t0/70000A0\tno recovery target specified\n";

    #[test]
    fn decodes_history_in_every_barman_compression() {
        let gz = {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(TEXT.as_bytes()).unwrap();
            e.finish().unwrap()
        };
        let bz = {
            let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::default());
            e.write_all(TEXT.as_bytes()).unwrap();
            e.finish().unwrap()
        };
        let sn = {
            let mut e = snap::write::FrameEncoder::new(Vec::new());
            e.write_all(TEXT.as_bytes()).unwrap();
            e.into_inner().unwrap()
        };
        let lz = {
            let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
            e.write_all(TEXT.as_bytes()).unwrap();
            e.finish().unwrap()
        };
        let xz = {
            let mut out = Vec::new();
            lzma_rs::xz_compress(&mut std::io::BufReader::new(TEXT.as_bytes()), &mut out).unwrap();
            out
        };
        let zst = ruzstd::encoding::compress_to_vec(TEXT.as_bytes(), ruzstd::encoding::CompressionLevel::Fastest);
        for (key, body) in [
            ("00000002.history", TEXT.as_bytes().to_vec()),
            ("00000002.history.gz", gz),
            ("00000002.history.bz2", bz),
            ("00000002.history.snappy", sn),
            ("00000002.history.lz4", lz),
            ("00000002.history.xz", xz),
            ("00000002.history.zst", zst),
        ] {
            assert_eq!(decompress_history(key, &body).as_deref(), Some(TEXT), "{key}");
        }
        assert_eq!(decompress_history("00000002.history.gz", b"not gzip"), None);
        assert_eq!(decompress_history("00000002.history.rar", TEXT.as_bytes()), None);
    }
}
