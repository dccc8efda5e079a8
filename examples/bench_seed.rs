//! Seeds a synthetic barman-cloud layout for `scripts/bench.sh`: `servers`
//! server prefixes under `s3://<bucket>/<prefix>/`, each with a run of WAL
//! segments on timeline 1 (valid names, 256 per `wals/<TLI><LOG>/` directory
//! as with 16 MiB segments, empty bodies so the S3 server's disk is not the
//! bottleneck), a `.backup` label and a base backup (`backup.info` in barman's
//! real format plus a small `data.tar`) every `wal / servers / backups`
//! segments. `wal` objects are written in all, with `concurrency` PUTs in
//! flight.
//!
//! This is a benchmark tool, not part of the exporter (which never writes to
//! a bucket); it is built only with `--features bench-tools`:
//!
//! ```text
//! cargo run --release --features bench-tools --example bench_seed -- \
//!     ENDPOINT BUCKET PREFIX SERVERS WAL BACKUPS CONCURRENCY
//! ```
//!
//! Credentials come from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`.

use std::time::Instant;

use aws_sdk_s3::Client;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use futures_util::{StreamExt, TryStreamExt, stream};

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

/// Every object of one server, in key order.
fn server_objects(prefix: &str, server: usize, wal: u64, backups: u64) -> Vec<Put> {
    let root = format!("{prefix}/bench-{server:03}");
    let every = (wal / backups.max(1)).max(1);
    let start = 1_700_000_000_i64;
    let mut out = Vec::with_capacity(wal as usize + 3 * backups as usize);
    for b in 0..backups {
        let begin = 1 + b * every;
        // One backup per "day" of WAL: backup ids are times.
        let unix = start + (b as i64) * 86_400;
        let id = chrono::DateTime::from_timestamp(unix, 0)
            .unwrap_or_default()
            .format("%Y%m%dT%H%M%S")
            .to_string();
        out.push(Put {
            key: format!("{root}/base/{id}/backup.info"),
            body: backup_info(begin, unix).into_bytes(),
        });
        out.push(Put {
            key: format!("{root}/base/{id}/data.tar"),
            body: vec![0; 1024],
        });
        out.push(Put {
            key: format!(
                "{root}/wals/00000001{:08X}/00000001{:08X}{:08X}.00000028.backup",
                begin / 256,
                begin / 256,
                begin % 256
            ),
            body: b"START WAL LOCATION: 0/28\n".to_vec(),
        });
    }
    let labels = out.len() as u64 / 3;
    for n in 1..=wal.saturating_sub(3 * labels) {
        let (log, seg) = (n / 256, n % 256);
        out.push(Put {
            key: format!("{root}/wals/00000001{log:08X}/00000001{log:08X}{seg:08X}"),
            body: Vec::new(),
        });
    }
    out
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [endpoint, bucket, prefix, servers, wal, backups, concurrency] = args.as_slice() else {
        return Err("usage: bench_seed ENDPOINT BUCKET PREFIX SERVERS WAL BACKUPS CONCURRENCY".into());
    };
    let (servers, wal, backups, concurrency): (usize, u64, u64, usize) =
        (servers.parse()?, wal.parse()?, backups.parse()?, concurrency.parse()?);
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
        .endpoint_url(endpoint)
        .force_path_style(true)
        .credentials_provider(creds)
        .build();
    let client = Client::from_conf(conf);
    let started = Instant::now();
    let per_server = wal / servers as u64;
    let puts = (0..servers).flat_map(|s| server_objects(prefix, s, per_server, backups));
    let written = stream::iter(puts)
        .map(|p| {
            let client = &client;
            async move {
                client
                    .put_object()
                    .bucket(bucket)
                    .key(&p.key)
                    .body(p.body.into())
                    .send()
                    .await
                    .map_err(|e| format!("PUT {}: {}", p.key, aws_sdk_s3::error::DisplayErrorContext(&e)))
            }
        })
        .buffer_unordered(concurrency)
        .try_fold(0u64, |n, _| async move {
            if (n + 1) % 100_000 == 0 {
                eprintln!("bench_seed: {} objects", n + 1);
            }
            Ok(n + 1)
        })
        .await?;
    let secs = started.elapsed().as_secs_f64();
    println!(
        "{{\"objects\": {written}, \"seconds\": {secs:.1}, \"per_second\": {:.0}}}",
        written as f64 / secs
    );
    Ok(())
}
