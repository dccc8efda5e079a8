//! Configuration: one struct tree, loaded by figment from a YAML file with
//! environment overrides, validated once at start-up.
//!
//! Environment overrides use the prefix [`ENV_PREFIX`] and `__` between nested
//! keys, e.g. `BARMAN_CLOUD_EXPORTER_INTERVAL=1m`. A whole list can be given
//! inline, e.g. `BARMAN_CLOUD_EXPORTER_TARGETS='[{name=a,destination_path="s3://b/p"}]'`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Yaml};
use serde::{Deserialize, Deserializer};
use thiserror::Error;

mod destination;

pub use destination::{Destination, Provider};

use crate::shard::Shard;

/// Prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "BARMAN_CLOUD_EXPORTER_";

/// Label names the exporter sets itself (and `job`, `instance`); static labels
/// may not reuse them. From the metric catalogue, where they are defined once.
pub const RESERVED_LABELS: &[&str] = crate::metrics::catalogue::RESERVED_LABELS;

/// A configuration error. Messages name the key and the problem.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// The file could not be read or parsed, or a key has the wrong type.
    #[error("{0}")]
    Load(Box<figment::Error>),
    /// Values parsed but are not valid; one message per problem.
    #[error("invalid configuration:\n  - {}", .0.join("\n  - "))]
    Invalid(Vec<String>),
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How often each target is collected (humantime, e.g. `5m`). Default 5m.
    #[serde(default = "default_interval", deserialize_with = "duration")]
    pub interval: Duration,
    /// Hard deadline for one target's collection (e.g. `2m`); work still
    /// running then is aborted and the target is marked down. Default 2m.
    #[serde(default = "default_timeout", deserialize_with = "duration")]
    pub timeout: Duration,
    /// How often a target's WAL directories are all re-listed even when nothing
    /// suggests they changed (the periodic full reconcile of the incremental
    /// walk, e.g. `24h`). `0s` makes every walk a full walk. Default 24h.
    #[serde(default = "default_full_walk_interval", deserialize_with = "duration")]
    pub full_walk_interval: Duration,
    /// How many `ListObjectsV2` paginations (WAL directories) run at once per
    /// target during a walk, all its server prefixes together, 1 to 256.
    /// Each holds one page (up to 1,000 keys) in memory. Default 16.
    #[serde(default = "default_list_concurrency")]
    pub list_concurrency: usize,
    /// How many targets are collected at once across the exporter, 1 to
    /// 1,024; a target's cycle waits for a slot before its `timeout` starts.
    /// Bounds the memory and connections of a fleet of targets (each walk in
    /// flight holds its listing pages and connection buffers). Default 8.
    #[serde(default = "default_max_concurrent_collections")]
    pub max_concurrent_collections: usize,
    /// The object stores to watch.
    pub targets: Vec<Target>,
    /// The share of `targets` this replica collects: set from the command
    /// line (`--shard`/`--total-shards`, `--shard-from-pod-name`) by
    /// [`Config::into_shard`], never from the file. Shard 0 of 1 (every
    /// target) by default.
    #[serde(skip)]
    pub shard: Shard,
}

fn default_interval() -> Duration {
    Duration::from_secs(300)
}

fn default_timeout() -> Duration {
    Duration::from_secs(120)
}

fn default_full_walk_interval() -> Duration {
    Duration::from_secs(86_400)
}

fn default_list_concurrency() -> usize {
    16
}

fn default_max_concurrent_collections() -> usize {
    8
}

/// One object store location (`destinationPath`) and optionally the
/// PostgreSQL cluster that archives into it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    /// Value of the `target` label; unique among targets.
    pub name: String,
    /// Static labels added to every series of this target (e.g. namespace, cluster).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Exactly as in the ObjectStore's `destinationPath`: `s3://bucket[/path]`,
    /// `gs://bucket[/path]`, or
    /// `https://<account>.blob.core.windows.net/<container>[/path]` (an Azure
    /// emulator or private endpoint: `http(s)://<host>:<port>/<account>/<container>[/path]`);
    /// see [`Destination::parse`].
    pub destination_path: String,
    /// S3 endpoint for non-AWS stores (MinIO, B2, Hetzner, SeaweedFS), AWS
    /// when absent; for GCS a private endpoint replacing
    /// `https://storage.googleapis.com`. Not for Azure (its endpoint is the
    /// `destination_path` host).
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Region; the AWS default chain (`AWS_REGION`, profile) when absent, else `us-east-1`.
    #[serde(default)]
    pub region: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`), needed by most non-AWS stores.
    #[serde(default)]
    pub force_path_style: bool,
    /// The serverNames in use; any other server prefix found is reported as orphaned.
    #[serde(default)]
    pub servers: Option<Vec<String>>,
    /// File holding the access key id (a Kubernetes secret mount); with
    /// `secret_access_key_file`. Without both, the AWS default credential chain is used.
    #[serde(default)]
    pub access_key_id_file: Option<PathBuf>,
    /// File holding the secret access key.
    #[serde(default)]
    pub secret_access_key_file: Option<PathBuf>,
    /// Optional file holding a session token.
    #[serde(default)]
    pub session_token_file: Option<PathBuf>,
    /// Azure: a file holding a connection string (the ObjectStore's
    /// `azureCredentials.connectionString`), re-read every 5 minutes. Its
    /// `BlobEndpoint` (else `AccountName` + `EndpointSuffix`) is the endpoint,
    /// as barman uses it; `AccountKey` or `SharedAccessSignature` the secret.
    #[serde(default)]
    pub azure_connection_string_file: Option<PathBuf>,
    /// Azure: the storage account (`azureCredentials.storageAccount`); must
    /// match the account of `destination_path` when given.
    #[serde(default)]
    pub azure_storage_account: Option<String>,
    /// Azure: a file holding the account's shared key
    /// (`azureCredentials.storageKey`), re-read every 5 minutes.
    #[serde(default)]
    pub azure_storage_key_file: Option<PathBuf>,
    /// Azure: a file holding a SAS token (`azureCredentials.storageSasToken`;
    /// read and list permissions suffice), re-read every 5 minutes.
    #[serde(default)]
    pub azure_sas_token_file: Option<PathBuf>,
    /// GCS: a service-account JSON key file (`googleCredentials.applicationCredentials`).
    /// Without it: `GOOGLE_APPLICATION_CREDENTIALS`, else the metadata server
    /// (GKE workload identity); `STORAGE_EMULATOR_HOST` selects an emulator,
    /// anonymously, as Google's client libraries do.
    #[serde(default)]
    pub google_application_credentials_file: Option<PathBuf>,
    /// PEM bundle of the CA(s) that signed the endpoint's certificate, like the
    /// ObjectStore's `endpointCA`. It replaces the system roots for this target
    /// (append a public CA to the bundle to trust that too); the host name is
    /// always checked. Read and checked at start-up (≥ 1 certificate).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// The PostgreSQL cluster archiving here, for `pg_stat_archiver`.
    #[serde(default)]
    pub postgres: Option<Postgres>,
    /// The ObjectStore's `retentionPolicy` (`^[1-9][0-9]*[dwm]$`, e.g. `3d`):
    /// enables the simulation of `barman-cloud-backup-delete --retention-policy
    /// "RECOVERY WINDOW OF …"` (obsolete backups, reclaimable bytes).
    #[serde(default)]
    pub retention_policy: Option<String>,
    /// A server prefix with no DONE backup and no WAL newer than this is
    /// orphaned even when `servers` is not given. Default 7d.
    #[serde(default = "default_orphan_after", deserialize_with = "duration")]
    pub orphan_after: Duration,
    /// A STARTED backup older than this counts as stuck. Default 24h.
    #[serde(default = "default_stuck_after", deserialize_with = "duration")]
    pub stuck_after: Duration,
}

fn default_orphan_after() -> Duration {
    Duration::from_secs(7 * 86_400)
}

fn default_stuck_after() -> Duration {
    Duration::from_secs(86_400)
}

impl Target {
    /// The bucket (container) and the key prefix (with a trailing `/` unless
    /// empty) parsed from `destination_path`, as barman does for its provider.
    pub fn bucket_and_prefix(&self) -> Option<(String, String)> {
        parse_destination(&self.destination_path)
    }

    /// The parsed `destination_path` (validated at load).
    ///
    /// # Errors
    /// What is wrong with it (see [`Destination::parse`]).
    pub fn destination(&self) -> Result<Destination, String> {
        Destination::parse(&self.destination_path)
    }

    /// The provider of `destination_path`; S3 when it does not parse
    /// (rejected by validation first).
    pub fn provider(&self) -> Provider {
        self.destination().map_or(Provider::S3, |d| d.provider)
    }

    /// The parsed `retention_policy` (validated at load).
    pub fn retention(&self) -> Option<crate::catalog::retention::RetentionPolicy> {
        self.retention_policy
            .as_deref()
            .and_then(crate::catalog::retention::RetentionPolicy::parse)
    }
}

/// Parses a `destination_path` into `(bucket, prefix)` the way barman does
/// for its provider ([`Destination::parse`]): for `s3://` the bucket is
/// `urlparse(url).netloc` and the path `urlparse(url).path.lstrip("/")`
/// (`cloud_providers/aws_s3.py`), the server root `os.path.join(path,
/// serverName)` (`cloud.py`); no percent-decoding or -encoding (urlparse does
/// neither; the `url` crate's WHATWG parsing would percent-encode spaces and
/// non-ASCII in the path, where barman's keys keep them raw); a query or
/// fragment is dropped.
///
/// `None` when it does not parse (no known scheme, an empty bucket or one
/// holding a space, an Azure URL without container).
pub fn parse_destination(url: &str) -> Option<(String, String)> {
    Destination::parse(url).ok().map(|d| (d.bucket, d.prefix))
}

/// Where to read `pg_stat_archiver`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Postgres {
    /// A libpq-style URL (`postgresql://user:pass@host:port/db?sslmode=verify-full`). Never logged.
    #[serde(default)]
    pub url: Option<Secret>,
    /// A file holding the URL (a Kubernetes secret mount); read at every collection.
    #[serde(default)]
    pub url_file: Option<PathBuf>,
    /// The serverName this cluster archives to. Defaults to the target's only
    /// configured server, when it has exactly one.
    #[serde(default)]
    pub server: Option<String>,
}

/// A string that is never printed (Debug and Display show `***`).
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret value; do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A duration key: humantime text (`30s`, `5m`, `1h`) or whole seconds. Every
/// other value is refused with a message saying what is expected (an untagged
/// enum here said only "data did not match any variant").
fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    struct Visitor;
    impl serde::de::Visitor<'_> for Visitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a duration such as 30s, 5m or 1h, or a whole number of seconds")
        }

        fn visit_u64<E: serde::de::Error>(self, s: u64) -> Result<Duration, E> {
            Ok(Duration::from_secs(s))
        }

        fn visit_i64<E: serde::de::Error>(self, s: i64) -> Result<Duration, E> {
            u64::try_from(s).map(Duration::from_secs).map_err(|_| {
                E::custom(format!(
                    "invalid duration {s}: must not be negative (use e.g. 30s, 5m, 1h)"
                ))
            })
        }

        fn visit_str<E: serde::de::Error>(self, t: &str) -> Result<Duration, E> {
            humantime::parse_duration(t.trim())
                .map_err(|e| E::custom(format!("invalid duration {t:?}: {e} (use e.g. 30s, 5m, 1h)")))
        }
    }
    d.deserialize_any(Visitor)
}

impl Config {
    /// Loads `path` (YAML) with [`ENV_PREFIX`] environment overrides and validates it.
    ///
    /// # Errors
    /// [`ConfigError::Load`] for unreadable files, YAML errors, unknown keys and
    /// wrong types (figment names the key); [`ConfigError::Invalid`] for values
    /// that fail [`Config::validate`].
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        if !path.is_file() {
            return Err(ConfigError::Invalid(vec![format!(
                "config file {}: not found or not a file",
                path.display()
            )]));
        }
        Self::from_figment(
            Figment::new()
                .merge(Yaml::file(path))
                .merge(Env::prefixed(ENV_PREFIX).split("__")),
        )
    }

    /// Extracts and validates a configuration from any figment (used by tests).
    ///
    /// # Errors
    /// As [`Config::load`].
    pub fn from_figment(figment: Figment) -> Result<Self, ConfigError> {
        let config: Config = figment.extract().map_err(|e| ConfigError::Load(Box::new(e)))?;
        config.validate()?;
        Ok(config)
    }

    /// This configuration for one shard: only the targets `shard` owns
    /// ([`Shard::owns`], by name), in file order, with `shard` recorded.
    /// Called after validation: the file is validated whole, so every
    /// replica accepts or refuses the same file. A shard may own no target.
    pub fn into_shard(mut self, shard: Shard) -> Self {
        self.targets.retain(|t| shard.owns(&t.name));
        self.shard = shard;
        self
    }

    /// Checks every value; collects all problems rather than stopping at the first.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] listing each problem as `key: problem`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let mut errs = Vec::new();
        if self.interval.is_zero() {
            errs.push("interval: must be greater than zero".to_string());
        }
        if self.timeout.is_zero() {
            errs.push("timeout: must be greater than zero".to_string());
        }
        if self.targets.is_empty() {
            errs.push("targets: at least one target is required".to_string());
        }
        if !(1..=1024).contains(&self.max_concurrent_collections) {
            errs.push(format!(
                "max_concurrent_collections: must be between 1 and 1024, got {}",
                self.max_concurrent_collections
            ));
        }
        if !(1..=256).contains(&self.list_concurrency) {
            errs.push(format!(
                "list_concurrency: must be between 1 and 256, got {}",
                self.list_concurrency
            ));
        }
        let mut names = std::collections::HashSet::new();
        for (i, t) in self.targets.iter().enumerate() {
            let k = format!("targets[{i}]");
            if t.name.trim().is_empty() {
                errs.push(format!("{k}.name: must not be empty"));
            } else if !names.insert(t.name.as_str()) {
                errs.push(format!("{k}.name: duplicate target name {:?}", t.name));
            }
            for label in t.labels.keys() {
                if !is_label_name(label) {
                    errs.push(format!(
                        "{k}.labels.{label}: not a valid Prometheus label name ([a-zA-Z_][a-zA-Z0-9_]*, not starting with __)"
                    ));
                } else if RESERVED_LABELS.contains(&label.as_str()) {
                    errs.push(format!(
                        "{k}.labels.{label}: reserved, the exporter sets this label itself"
                    ));
                }
            }
            match t.destination() {
                Err(e) => errs.push(format!(
                    "{k}.destination_path: {:?}: {e}",
                    redact_url(&t.destination_path)
                )),
                Ok(d) => provider_keys(&k, t, &d, &mut errs),
            }
            if let Some(raw) = &t.endpoint_url {
                match url::Url::parse(raw) {
                    // The parse error names what is wrong, never the input.
                    Err(e) => errs.push(format!("{k}.endpoint_url: not a valid URL ({e})")),
                    Ok(u) => {
                        let shown = redact_url(raw);
                        if !matches!(u.scheme(), "http" | "https") {
                            errs.push(format!(
                                "{k}.endpoint_url: {shown:?} must start with http:// or https://"
                            ));
                        }
                        if !u.username().is_empty() || u.password().is_some() {
                            errs.push(format!(
                                "{k}.endpoint_url: {shown:?} must not carry credentials \
                                 (use access_key_id_file and secret_access_key_file)"
                            ));
                        }
                    }
                }
            }
            if t.access_key_id_file.is_some() != t.secret_access_key_file.is_some() {
                errs.push(format!(
                    "{k}: access_key_id_file and secret_access_key_file must be given together"
                ));
            }
            if let Some(ca) = &t.ca_file
                && let Err(e) = crate::source::tls::read_ca_bundle(ca)
            {
                errs.push(format!("{k}.ca_file: {e}"));
            }
            if let Some(servers) = &t.servers
                && servers.iter().any(|s| s.is_empty() || s.contains('/'))
            {
                errs.push(format!(
                    "{k}.servers: a serverName must be non-empty and contain no '/'"
                ));
            }
            if let Some(p) = &t.retention_policy
                && crate::catalog::retention::RetentionPolicy::parse(p).is_none()
            {
                errs.push(format!(
                    "{k}.retention_policy: {p:?} must match ^[1-9][0-9]*[dwm]$ (e.g. 3d, 2w, 1m)"
                ));
            }
            if let Some(pg) = &t.postgres {
                match (&pg.url, &pg.url_file) {
                    (None, None) => errs.push(format!("{k}.postgres: one of url or url_file is required")),
                    (Some(_), Some(_)) => errs.push(format!("{k}.postgres: url and url_file are mutually exclusive")),
                    (Some(url), None) => {
                        if let Err(e) = crate::source::postgres::PgTarget::parse(url.expose()) {
                            errs.push(format!("{k}.postgres.url: {e}"));
                        }
                    }
                    (None, Some(_)) => {}
                }
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::Invalid(errs))
        }
    }
}

/// The credential keys of `t` that do not belong to its provider, and the
/// combinations that cannot work, as `key: problem` messages.
fn provider_keys(k: &str, t: &Target, d: &Destination, errs: &mut Vec<String>) {
    let given = |set: bool, key: &str| set.then(|| key.to_string());
    let s3_keys = [
        given(t.access_key_id_file.is_some(), "access_key_id_file"),
        given(t.secret_access_key_file.is_some(), "secret_access_key_file"),
        given(t.session_token_file.is_some(), "session_token_file"),
        given(t.region.is_some(), "region"),
        given(t.force_path_style, "force_path_style"),
    ];
    let azure_keys = [
        given(t.azure_connection_string_file.is_some(), "azure_connection_string_file"),
        given(t.azure_storage_account.is_some(), "azure_storage_account"),
        given(t.azure_storage_key_file.is_some(), "azure_storage_key_file"),
        given(t.azure_sas_token_file.is_some(), "azure_sas_token_file"),
    ];
    let gcs_keys = [given(
        t.google_application_credentials_file.is_some(),
        "google_application_credentials_file",
    )];
    let foreign: Vec<String> = match d.provider {
        Provider::S3 => azure_keys.into_iter().chain(gcs_keys).flatten().collect(),
        Provider::Azure => s3_keys
            .into_iter()
            .chain(gcs_keys)
            .chain([given(t.endpoint_url.is_some(), "endpoint_url")])
            .flatten()
            .collect(),
        Provider::Gcs => s3_keys.into_iter().chain(azure_keys).flatten().collect(),
    };
    for key in foreign {
        let kind = match d.provider {
            Provider::S3 => "S3 (s3://)",
            Provider::Azure => "Azure Blob Storage",
            Provider::Gcs => "GCS (gs://)",
        };
        errs.push(format!("{k}.{key}: not a key of {kind} targets"));
    }
    if d.provider == Provider::Azure {
        let secrets = [
            t.azure_connection_string_file.is_some(),
            t.azure_storage_key_file.is_some(),
            t.azure_sas_token_file.is_some(),
        ];
        if secrets.iter().filter(|s| **s).count() > 1 {
            errs.push(format!(
                "{k}: azure_connection_string_file, azure_storage_key_file and azure_sas_token_file are mutually exclusive"
            ));
        }
        if let (Some(a), Some(url_account)) = (&t.azure_storage_account, &d.account)
            && a != url_account
        {
            errs.push(format!(
                "{k}.azure_storage_account: {a:?} is not the account of destination_path ({url_account:?})"
            ));
        }
    }
}

impl Postgres {
    /// The serverName this cluster archives to: `server`, else the target's
    /// only configured server.
    pub fn server_name<'a>(&'a self, target: &'a Target) -> Option<&'a str> {
        self.server.as_deref().or(match target.servers.as_deref() {
            Some([only]) => Some(only.as_str()),
            _ => None,
        })
    }
}

/// `url` with its userinfo (user and password) replaced by `***`
/// (`https://***@host/`), for messages; parsed with the `url` crate, so the
/// result is its serialisation. Unchanged when it holds no userinfo; when it
/// is not a URL at all, `<not a URL>` (it could still hold a secret).
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            // Both fail only for URLs that cannot have userinfo, which these have.
            let _ = u.set_password(None);
            let _ = u.set_username("***");
            u.to_string()
        }
        Ok(_) => url.to_string(),
        Err(_) => "<not a URL>".to_string(),
    }
}

fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !s.starts_with("__")
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error
mod tests;
