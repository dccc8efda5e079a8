//! Seeds a synthetic barman-cloud layout for `scripts/bench.sh`: `servers`
//! server prefixes under `<bucket>/<prefix>/` (or under each of `targets`
//! target prefixes `<prefix>/tNNN/`: the fleet shape), each with a run of WAL
//! segments on timeline 1 (valid names, 256 per `wals/<TLI><LOG>/` directory
//! as with 16 MiB segments, empty bodies so the server's disk is not the
//! bottleneck), a `.backup` label and a base backup (`backup.info` in barman's
//! real format plus a small `data.tar`) every `wal / backups` segments.
//! `wal` objects are written per server, with `concurrency` PUTs in flight.
//!
//! This is a benchmark tool, not part of the exporter (which never writes to
//! a bucket); it is built only with `--features bench-tools`:
//!
//! ```text
//! cargo run --release --features bench-tools --example bench_seed -- \
//!     --store s3 --endpoint URL --bucket B --prefix P --servers 4 --wal 250000
//! ```
//!
//! Stores: `s3` (`aws-sdk-s3`; credentials from `AWS_ACCESS_KEY_ID` /
//! `AWS_SECRET_ACCESS_KEY`), `azure` (`object_store`; `--endpoint` is the blob
//! endpoint, e.g. Azurite's `http://127.0.0.1:P/devstoreaccount1`, the
//! account its last path segment, the key from `AZURE_STORAGE_KEY`), and
//! `emit`: one JSON line per object (`{"key", "body"}`, body in base64) and
//! `{"done": MARKER}` after each server's objects, for a writer in another
//! language (`scripts/cloudtool.py gcs put-many`: fake-gcs-server does not
//! take `object_store`'s XML-API uploads).
//!
//! Resumable: with `--done DIR`, a marker file per finished server prefix is
//! written there, and servers that have one are skipped, so an interrupted
//! seed continues where it stopped. A server of more than 65,536 segments
//! (the 10,000,000-object single-server shape) is written in parts of 256
//! WAL directories, each marked when written (`<server>.part-K`), so it
//! resumes from its last finished part, not from its start.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use base64::Engine;
use clap::{Parser, ValueEnum};
use futures_util::{StreamExt, TryStreamExt, stream};
use object_store::azure::MicrosoftAzureBuilder;
use object_store::{ObjectStore, ObjectStoreExt};

/// One object to write.
struct Put {
    key: String,
    body: Vec<u8>,
}

/// A `backup.info` as barman-cloud 3.19.1 writes it, for a backup that starts
/// in segment `begin` (linear number on timeline 1, 16 MiB segments).
fn backup_info(begin: u64, unix: i64) -> String {
    let seg = |n: u64| format!("00000001{:08X}{:08X}", n / 256, n % 256);
    let t = chrono::DateTime::from_timestamp(unix, 0).unwrap_or_default();
    let ts = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M:%S%.6f+00:00").to_string();
    format!(
        "backup_label=None\nbegin_offset=40\nbegin_time={}\nbegin_wal={}\nbegin_xlog={:X}/{:X}\n\
         children_backup_ids=None\ncluster_size=24108745\ncompression=None\nconfig_file=/var/lib/postgresql/data/pgdata/postgresql.conf\n\
         copy_stats=None\ndata_checksums=on\ndeduplicated_size=None\nencryption=None\nend_offset=256\nend_time={}\n\
         end_wal={}\nend_xlog={:X}/{:X}\nerror=None\nhba_file=/var/lib/postgresql/data/pgdata/pg_hba.conf\n\
         ident_file=/var/lib/postgresql/data/pgdata/pg_ident.conf\nincluded_files=None\nmode=None\nparent_backup_id=None\n\
         pgdata=/var/lib/postgresql/data/pgdata\nserver_name=cloud\nsize=None\nstatus=DONE\nsummarize_wal=None\n\
         systemid=7310892682153273285\ntablespaces=None\ntimeline=1\nversion=150018\nxlog_segment_size=16777216\n",
        ts(t),
        seg(begin),
        begin / 256,
        ((begin % 256) << 24) | 0x28,
        ts(t + chrono::Duration::seconds(120)),
        seg(begin),
        begin / 256,
        ((begin % 256) << 24) | 0x100,
    )
}

/// WAL segments per resumable part of a server (256 directories of 256).
const PART: u64 = 65_536;

/// One resumable unit of a server's objects: its base backups and their
/// `.backup` labels (`part` 0), or a range of its WAL segments (linear
/// numbers on timeline 1, from 1).
#[derive(Debug, Clone)]
struct Unit {
    root: String,
    part: u64,
    /// Parts of this server in all.
    parts: u64,
    segments: std::ops::Range<u64>,
    backups: u64,
    every: u64,
}

impl Unit {
    /// The units of one server of `wal` objects with `backups` base backups
    /// (3 objects each: `backup.info`, a tar, a `.backup` label; the rest
    /// are segments).
    fn of_server(root: &str, wal: u64, backups: u64) -> Vec<Unit> {
        let every = (wal / backups.max(1)).max(1);
        let segments = wal.saturating_sub(3 * backups);
        let wal_parts = segments.div_ceil(PART);
        let unit = |part: u64, segments: std::ops::Range<u64>| Unit {
            root: root.to_string(),
            part,
            parts: wal_parts + 1,
            segments,
            backups,
            every,
        };
        let mut out = vec![unit(0, 0..0)];
        out.extend((0..wal_parts).map(|k| unit(k + 1, 1 + k * PART..1 + ((k + 1) * PART).min(segments))));
        out
    }

    /// Objects in this unit.
    fn len(&self) -> u64 {
        if self.part == 0 {
            3 * self.backups
        } else {
            self.segments.end - self.segments.start
        }
    }

    /// This unit's objects, made as they are written.
    fn objects(&self) -> Box<dyn Iterator<Item = Put> + Send + '_> {
        let root = &self.root;
        if self.part > 0 {
            return Box::new(self.segments.clone().map(move |n| {
                let (log, seg) = (n / 256, n % 256);
                Put {
                    key: format!("{root}/wals/00000001{log:08X}/00000001{log:08X}{seg:08X}"),
                    body: Vec::new(),
                }
            }));
        }
        let start = 1_700_000_000_i64;
        Box::new((0..self.backups).flat_map(move |b| {
            let begin = 1 + b * self.every;
            // One backup per "day" of WAL: backup ids are times.
            let unix = start + (b as i64) * 86_400;
            let id = chrono::DateTime::from_timestamp(unix, 0)
                .unwrap_or_default()
                .format("%Y%m%dT%H%M%S")
                .to_string();
            [
                Put {
                    key: format!("{root}/base/{id}/backup.info"),
                    body: backup_info(begin, unix).into_bytes(),
                },
                Put {
                    key: format!("{root}/base/{id}/data.tar"),
                    body: vec![0; 1024],
                },
                Put {
                    key: format!(
                        "{root}/wals/00000001{:08X}/00000001{:08X}{:08X}.00000028.backup",
                        begin / 256,
                        begin / 256,
                        begin % 256
                    ),
                    body: b"START WAL LOCATION: 0/28\n".to_vec(),
                },
            ]
        }))
    }
}

/// Where the objects go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum StoreKind {
    /// An S3 endpoint (path style).
    S3,
    /// An Azure Blob Storage endpoint (Azurite).
    Azure,
    /// JSON lines on stdout.
    Emit,
}

/// The command line.
#[derive(Debug, Parser)]
struct Args {
    /// Where the objects go.
    #[arg(long, value_enum)]
    store: StoreKind,
    /// S3 endpoint, or the Azure blob endpoint (`.../<account>`).
    #[arg(long, default_value = "")]
    endpoint: String,
    /// Bucket (S3) or container (Azure).
    #[arg(long, default_value = "")]
    bucket: String,
    /// Key prefix of the data set (no trailing slash).
    #[arg(long)]
    prefix: String,
    /// Server prefixes (per target prefix when `--targets` is given).
    #[arg(long)]
    servers: usize,
    /// Objects per server (WAL segments, labels and backups).
    #[arg(long)]
    wal: u64,
    /// Target prefixes `<prefix>/tNNN/`, each with `--servers` servers; 0:
    /// the servers directly under `<prefix>/`.
    #[arg(long, default_value_t = 0)]
    targets: usize,
    /// Base backups per server.
    #[arg(long, default_value_t = 8)]
    backups: u64,
    /// PUTs in flight.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Directory of per-server markers (resumable seeding).
    #[arg(long)]
    done: Option<PathBuf>,
}

/// The writer of one store.
enum Writer {
    S3 { client: Client, bucket: String },
    Azure(Arc<dyn ObjectStore>),
    Emit,
}

impl Writer {
    fn new(args: &Args) -> Result<Self, Box<dyn std::error::Error>> {
        Ok(match args.store {
            StoreKind::S3 => {
                let creds = Credentials::new(
                    std::env::var("AWS_ACCESS_KEY_ID")?,
                    std::env::var("AWS_SECRET_ACCESS_KEY")?,
                    None,
                    None,
                    "bench",
                );
                let conf = aws_sdk_s3::config::Builder::new()
                    .behavior_version(BehaviorVersion::latest())
                    .region(Region::new("us-east-1"))
                    .endpoint_url(&args.endpoint)
                    .force_path_style(true)
                    .credentials_provider(creds)
                    .build();
                Self::S3 {
                    client: Client::from_conf(conf),
                    bucket: args.bucket.clone(),
                }
            }
            StoreKind::Azure => {
                let account = args
                    .endpoint
                    .trim_end_matches('/')
                    .rsplit('/')
                    .next()
                    .unwrap_or_default();
                let store = MicrosoftAzureBuilder::new()
                    .with_account(account)
                    .with_access_key(std::env::var("AZURE_STORAGE_KEY")?)
                    .with_container_name(&args.bucket)
                    .with_endpoint(args.endpoint.clone())
                    .with_allow_http(true)
                    .build()?;
                Self::Azure(Arc::new(store))
            }
            StoreKind::Emit => Self::Emit,
        })
    }

    async fn put(&self, p: Put) -> Result<(), String> {
        match self {
            Self::S3 { client, bucket } => client
                .put_object()
                .bucket(bucket)
                .key(&p.key)
                .body(p.body.into())
                .send()
                .await
                .map(drop)
                .map_err(|e| format!("PUT {}: {}", p.key, aws_sdk_s3::error::DisplayErrorContext(&e))),
            Self::Azure(store) => store
                .put(&object_store::path::Path::from(p.key.as_str()), p.body.into())
                .await
                .map(drop)
                .map_err(|e| format!("PUT {}: {e}", p.key)),
            Self::Emit => {
                let line = serde_json::json!({
                    "key": p.key,
                    "body": base64::engine::general_purpose::STANDARD.encode(&p.body),
                });
                writeln!(std::io::stdout().lock(), "{line}").map_err(|e| e.to_string())
            }
        }
    }
}

/// The server prefixes of the data set, in key order.
fn roots(args: &Args) -> Vec<String> {
    let servers = |base: String| (0..args.servers).map(move |s| format!("{base}/bench-{s:03}"));
    if args.targets == 0 {
        servers(args.prefix.clone()).collect()
    } else {
        (0..args.targets)
            .flat_map(|t| servers(format!("{}/t{t:03}", args.prefix)))
            .collect()
    }
}

/// The marker of a finished server prefix, or of one part of it.
fn marker(done: &std::path::Path, root: &str, part: Option<u64>) -> PathBuf {
    let name = root.replace('/', "_");
    match part {
        None => done.join(name),
        Some(p) => done.join(format!("{name}.part-{p}")),
    }
}

/// Whether `unit` is already written (its server's marker, or its own).
fn is_done(done: Option<&std::path::Path>, u: &Unit) -> bool {
    done.is_some_and(|d| marker(d, &u.root, None).exists() || marker(d, &u.root, Some(u.part)).exists())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let writer = Writer::new(&args)?;
    if let Some(d) = &args.done {
        std::fs::create_dir_all(d)?;
    }
    let done = args.done.as_deref();
    let all: Vec<Unit> = roots(&args)
        .iter()
        .flat_map(|r| Unit::of_server(r, args.wal, args.backups))
        .collect();
    let todo: Vec<Unit> = all.iter().filter(|u| !is_done(done, u)).cloned().collect();
    if todo.len() < all.len() {
        let left: u64 = todo.iter().map(Unit::len).sum();
        eprintln!("bench_seed: resuming, {left} objects to go");
    }
    let started = Instant::now();
    let (mut written, mut reported) = (0u64, 0u64);
    // Units in batches of about `concurrency * 64` objects, each unit's
    // marker written once all its objects are: an interrupted seed loses at
    // most one batch (a server's parts are marked one by one when it has
    // more than one range of segments, its own marker after its last).
    let target = args.concurrency as u64 * 64;
    let mut i = 0;
    while i < todo.len() {
        let (mut j, mut size) = (i, 0);
        while j < todo.len() && (j == i || size + todo[j].len() <= target) {
            size += todo[j].len();
            j += 1;
        }
        let batch = &todo[i..j];
        written += stream::iter(batch.iter().flat_map(Unit::objects))
            .map(|p| writer.put(p))
            .buffer_unordered(args.concurrency)
            .try_fold(0u64, |n, _| async move { Ok(n + 1) })
            .await?;
        for u in batch {
            let Some(d) = done else { continue };
            let last = u.part + 1 == u.parts;
            let path = match (last, u.parts > 2) {
                (true, _) => marker(d, &u.root, None),
                (false, true) => marker(d, &u.root, Some(u.part)),
                (false, false) => continue,
            };
            if let Writer::Emit = writer {
                let line = serde_json::json!({"done": path});
                writeln!(std::io::stdout().lock(), "{line}")?;
            } else {
                std::fs::write(path, b"")?;
            }
        }
        if args.store != StoreKind::Emit && written / 100_000 > reported {
            reported = written / 100_000;
            eprintln!("bench_seed: {written} objects");
        }
        i = j;
    }
    let secs = started.elapsed().as_secs_f64();
    let summary = format!(
        "{{\"objects\": {written}, \"seconds\": {secs:.1}, \"per_second\": {:.0}}}",
        written as f64 / secs.max(1e-3)
    );
    if args.store == StoreKind::Emit {
        eprintln!("{summary}");
    } else {
        println!("{summary}");
    }
    Ok(())
}
