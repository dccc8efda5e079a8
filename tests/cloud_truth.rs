//! Azure Blob Storage (Azurite) and Google Cloud Storage (fake-gcs-server):
//! the layouts real barman-cloud 3.19.1 runs wrote there
//! (`scripts/scenario.sh cloud DIR`) read by the real exporter binary, and
//! checked against `barman-cloud-backup-list` and a direct listing with the
//! provider's own SDK (`scripts/cloudtool.py`): backups by status, end
//! times, the first recoverability point, WAL objects by kind, continuity
//! across the promote, leftovers, orphans, storage totals, the archiver
//! cross-check, the incremental walk, and the read-only proof (every request
//! the exporter sent, as a recording proxy saw it, is a listing or a GET).

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::cloud::{Cloud, Kind, Layout, origin, server_prefix, via};
use common::fault_proxy::FaultProxy;
use common::hostile::Daemon;
use common::{Sample, Scenario, samples, segno, unix, value};

/// The kind of a WAL-area object by its name, as barman names them.
fn wal_kind(name: &str) -> &'static str {
    let base = name.rsplit('/').next().unwrap_or(name);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase());
    let stem = base.split('.').next().unwrap_or("");
    let rest: Vec<&str> = base.split('.').skip(1).collect();
    match (hex(stem, 24), hex(stem, 8), rest.as_slice()) {
        (true, _, [] | ["gz" | "bz2" | "snappy" | "xz" | "zst" | "lz4"]) => "segment",
        (true, _, ["partial", ..]) => "partial",
        (true, _, [off, "backup", ..]) if hex(off, 8) => "backup_label",
        (_, true, ["history", ..]) => "history",
        _ => "other",
    }
}

/// Writes the exporter's config for `kind`'s layout, going through `proxy`.
fn config(cloud: &Cloud, kind: Kind, proxy: &FaultProxy, dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let l = cloud.layout(kind);
    let main = &l.postgres.server;
    let (destination, creds) = match kind {
        Kind::Azure => (
            via(&l.destination_path, &proxy.url),
            format!(
                "    azure_storage_key_file: \"{}\"\n",
                l.key_file.as_ref().expect("cloud.json azure.key_file").display()
            ),
        ),
        Kind::Gcs => (l.destination_path.clone(), String::new()),
    };
    let yaml = format!(
        "interval: 3s\ntimeout: 30s\ntargets:\n  - name: {t}\n    destination_path: \"{destination}\"\n    servers: [\"{main}\"]\n{creds}    postgres:\n      url: \"{}\"\n      server: \"{main}\"\n{extra}",
        l.postgres.url,
        t = kind.tool(),
    );
    let path = dir.join("config.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

fn env_for(kind: Kind, proxy: &FaultProxy) -> Vec<(&'static str, String)> {
    match kind {
        Kind::Azure => vec![],
        Kind::Gcs => vec![("STORAGE_EMULATOR_HOST", proxy.url.clone())],
    }
}

async fn scrape(d: &Daemon) -> Vec<Sample> {
    samples(&d.get("/metrics").await)
}

/// Every figure of one server against barman's list and the SDK listing.
fn check_server(cloud: &Cloud, sc: &Scenario, kind: Kind, s: &[Sample], server: &str, orphan: bool) {
    let l: &Layout = cloud.layout(kind);
    let t = kind.tool();
    let lab = |extra: &[(&'static str, &'static str)]| -> Vec<(&str, &str)> {
        let mut v = vec![("target", t), ("server", server)];
        v.extend_from_slice(extra);
        v
    };
    let barman = cloud.backup_list(sc, kind, &l.destination_path, server);
    assert!(!barman.is_empty(), "{t}: barman lists backups of {server}");
    let count = |st: &str| barman.iter().filter(|b| b["status"] == st).count() as f64;
    for (label, st) in [("done", "DONE"), ("failed", "FAILED"), ("started", "STARTED")] {
        assert_eq!(
            value(s, "barman_cloud_backups", &lab(&[("status", label)])),
            Some(count(st)),
            "{t} {server} {label}"
        );
    }
    let done: Vec<&serde_json::Value> = barman.iter().filter(|b| b["status"] == "DONE").collect();
    let ends: Vec<f64> = done.iter().map(|b| unix(b["end_time_iso"].as_str().unwrap())).collect();
    let close = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-3);
    assert!(
        close(
            value(s, "barman_cloud_backup_last_success_timestamp_seconds", &lab(&[])),
            ends.iter().cloned().fold(f64::MIN, f64::max)
        ),
        "{t} {server} last success"
    );
    assert!(
        close(
            value(
                s,
                "barman_cloud_first_recoverability_point_timestamp_seconds",
                &lab(&[])
            ),
            ends.iter().cloned().fold(f64::MAX, f64::min)
        ),
        "{t} {server} first recoverability point"
    );
    assert_eq!(
        value(s, "barman_cloud_server_orphaned", &lab(&[])),
        Some(if orphan { 1.0 } else { 0.0 }),
        "{t} {server}"
    );

    // WAL objects by kind and their bytes: the provider's own listing.
    let prefix = server_prefix(&l.destination_path, server);
    let listing = cloud.list(sc, kind, &prefix);
    let mut by_kind: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    let mut segments = Vec::new();
    for (key, (size, _)) in &listing {
        let Some(rest) = key.strip_prefix(&format!("{prefix}wals/")) else {
            continue;
        };
        let k = wal_kind(rest);
        let e = by_kind.entry(k).or_default();
        e.0 += 1.0;
        e.1 += *size as f64;
        if k == "segment" {
            segments.push(rest.rsplit('/').next().unwrap()[..24].to_string());
        }
    }
    for kind_label in ["segment", "partial", "backup_label", "history", "other"] {
        let (n, bytes) = by_kind.get(kind_label).copied().unwrap_or_default();
        assert_eq!(
            value(s, "barman_cloud_wal_objects", &lab(&[("kind", kind_label)])).unwrap_or(0.0),
            n,
            "{t} {server} wal kind {kind_label}"
        );
        assert_eq!(
            value(s, "barman_cloud_wal_bytes", &lab(&[("kind", kind_label)])).unwrap_or(0.0),
            bytes,
            "{t} {server} wal bytes {kind_label}"
        );
    }
    // Continuity: no gap, and the newest segment's timeline.
    assert_eq!(
        value(s, "barman_cloud_wal_missing_segments", &lab(&[])),
        Some(0.0),
        "{t} {server}"
    );
    let newest = segments.iter().max().unwrap();
    assert_eq!(
        value(s, "barman_cloud_wal_timeline", &lab(&[])),
        Some(f64::from(segno(newest).0)),
        "{t} {server}"
    );
    assert_eq!(
        value(s, "barman_cloud_backups_restorable", &lab(&[])),
        Some(done.len() as f64),
        "{t} {server}: every DONE backup restorable"
    );

    // Leftovers: WAL below the oldest DONE backup (nothing was ever deleted,
    // so all of it awaits barman's first deletion).
    let first = done
        .iter()
        .min_by_key(|b| b["backup_id"].as_str().unwrap().to_string())
        .unwrap();
    let (ftli, fseg) = segno(first["begin_wal"].as_str().unwrap());
    let mut below = (0.0, 0.0);
    for (key, (size, _)) in &listing {
        let Some(rest) = key.strip_prefix(&format!("{prefix}wals/")) else {
            continue;
        };
        let Some((_, name)) = rest.split_once('/') else {
            continue;
        };
        if !matches!(wal_kind(name), "segment" | "partial" | "backup_label") {
            continue;
        }
        let (tli, seg) = segno(name);
        if (tli == ftli && seg < fseg) || tli < ftli {
            below.0 += 1.0;
            below.1 += *size as f64;
        }
    }
    let r = |reason| lab(&[("reason", reason)]);
    assert_eq!(
        value(s, "barman_cloud_wal_before_first_backup_objects", &r("unprotected")),
        Some(0.0),
        "{t} {server}: nothing barman should have deleted"
    );
    assert_eq!(
        (
            value(
                s,
                "barman_cloud_wal_before_first_backup_objects",
                &r("awaiting_next_deletion")
            ),
            value(
                s,
                "barman_cloud_wal_before_first_backup_bytes",
                &r("awaiting_next_deletion")
            ),
        ),
        (Some(below.0), Some(below.1)),
        "{t} {server}: WAL below the first backup awaits barman's first deletion"
    );
}

async fn catalogue_is_barmans(kind: Kind) {
    let sc = Scenario::load();
    let cloud = Cloud::load(&sc);
    let l = cloud.layout(kind).clone();
    let proxy = FaultProxy::start_with(&origin(&l.endpoint), kind == Kind::Gcs).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(&cloud, kind, &proxy, dir.path(), "");
    let env = env_for(kind, &proxy);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut d = Daemon::start_with_env(&cfg, &env);
    d.wait_ready(Duration::from_secs(90)).await;
    let s = scrape(&d).await;
    let t = kind.tool();
    assert_eq!(
        value(&s, "barman_cloud_target_info", &[("target", t), ("provider", t)]),
        Some(1.0),
        "target_info names the provider"
    );
    for collector in ["s3", "postgres"] {
        assert_eq!(
            value(
                &s,
                "barman_cloud_collector_up",
                &[("target", t), ("collector", collector)]
            ),
            Some(1.0),
            "{t} {collector}: {:?}",
            d.get("/api/status").await
        );
    }
    for server in &l.servers {
        let orphan = l.orphan_servers.contains(server);
        check_server(&cloud, &sc, kind, &s, server, orphan);
    }
    // Totals: everything under the destination, by the provider's SDK.
    let root = barman_cloud_exporter::config::parse_destination(&l.destination_path)
        .unwrap()
        .1;
    let all = cloud.list(&sc, kind, &root);
    assert_eq!(
        value(&s, "barman_cloud_storage_objects", &[("target", t)]),
        Some(all.len() as f64)
    );
    assert_eq!(
        value(&s, "barman_cloud_storage_bytes", &[("target", t)]),
        Some(all.values().map(|(sz, _)| *sz as f64).sum())
    );
    let old_bytes: f64 = l
        .orphan_servers
        .iter()
        .flat_map(|o| cloud.list(&sc, kind, &server_prefix(&l.destination_path, o)))
        .map(|(_, (sz, _))| sz as f64)
        .sum();
    assert_eq!(
        value(&s, "barman_cloud_orphan_bytes", &[("target", t)]),
        Some(old_bytes)
    );
    assert_eq!(
        value(
            &s,
            "barman_cloud_pg_archiver_last_archived_wal_in_storage",
            &[("target", t), ("server", l.postgres.server.as_str())]
        ),
        Some(1.0),
        "the WAL PostgreSQL says it archived is in the {t} container"
    );

    // No secret on any page: the account key, the SAS signature.
    let mut secrets = Vec::new();
    if let Some(f) = &l.key_file {
        secrets.push(std::fs::read_to_string(f).unwrap().trim().to_string());
    }
    for f in [&l.sas_token_file, &l.connection_string_file].into_iter().flatten() {
        let text = std::fs::read_to_string(f).unwrap();
        secrets.extend(
            text.split([';', '&', '?', '\n'])
                .filter_map(|kv| kv.split_once('='))
                .filter(|(k, _)| matches!(k.trim(), "AccountKey" | "sig"))
                .map(|(_, v)| v.trim().to_string()),
        );
    }
    assert!(kind == Kind::Gcs || secrets.len() >= 2, "{secrets:?}");
    for page in ["/metrics", "/api/status", "/"] {
        let body = d.get(page).await;
        for secret in &secrets {
            assert!(!body.contains(secret.as_str()), "{t}: a secret on {page}");
        }
    }

    // The incremental walk: a later cycle lists less than the cold one.
    let cold = proxy.requests().len();
    let start = Instant::now();
    let incremental = loop {
        let s = scrape(&d).await;
        if let Some(n) = value(
            &s,
            "barman_cloud_s3_walks_total",
            &[("target", t), ("kind", "incremental")],
        ) && n >= 1.0
        {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no incremental walk");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let total = proxy.requests().len();
    assert!(
        total - cold < cold,
        "an incremental walk ({} requests) costs less than the cold one ({cold})",
        total - cold
    );
    for server in &l.servers {
        let lab = [("target", t), ("server", server.as_str()), ("status", "done")];
        assert_eq!(
            value(&incremental, "barman_cloud_backups", &lab),
            value(&s, "barman_cloud_backups", &lab)
        );
    }

    // The read-only proof: every request the proxy saw is a GET, a listing
    // or an object read, and the exporter counted each of them.
    let seen = proxy.requests();
    assert!(!seen.is_empty());
    for r in &seen {
        assert_eq!(r.method, "GET", "{t}: {r:?}");
    }
    let counted: f64 = incremental
        .iter()
        .filter(|x| x.name == "barman_cloud_s3_requests_total" && x.labels["target"] == t)
        .map(|x| {
            let op = x.labels["operation"].as_str();
            let ops = match kind {
                Kind::Azure => ["GetBlob", "ListBlobs"],
                Kind::Gcs => ["GetObject", "ListObjects"],
            };
            assert!(ops.contains(&op), "{t}: unexpected operation {op}");
            x.value
        })
        .sum();
    let listed = seen
        .iter()
        .filter(|r| r.query.contains("comp=list") || r.query.contains("list-type="))
        .count();
    assert!(
        listed > 0 && counted >= listed as f64,
        "{t}: {counted} counted, {listed} listings seen"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn azure_catalogue_is_barmans() {
    catalogue_is_barmans(Kind::Azure).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn gcs_catalogue_is_barmans() {
    catalogue_is_barmans(Kind::Gcs).await;
}

#[test]
fn wal_kinds_by_name() {
    assert_eq!(wal_kind("0000000100000000/000000010000000000000003"), "segment");
    assert_eq!(wal_kind("0000000100000000/000000010000000000000003.gz"), "segment");
    assert_eq!(wal_kind("0000000100000000/000000010000000000000004.partial"), "partial");
    assert_eq!(
        wal_kind("0000000100000000/000000010000000000000002.00000028.backup"),
        "backup_label"
    );
    assert_eq!(wal_kind("00000002.history"), "history");
    assert_eq!(wal_kind("0000000100000000/junk"), "other");
}

/// Azure: a WAL segment and a base backup's data tar moved to the `Archive`
/// tier (rehydration needed before barman-cloud-restore can read them), and
/// junk keys `object_store` cannot represent as a path, on a copy of az-main beside the destination (`<path>-hostile`).
/// GCS: the same junk keys. The walk still succeeds and counts them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn archive_tier_and_junk_keys_are_counted_not_fatal() {
    let sc = Scenario::load();
    let cloud = Cloud::load(&sc);
    for kind in [Kind::Azure, Kind::Gcs] {
        let l = cloud.layout(kind).clone();
        let server = l.postgres.server.clone();
        let root = barman_cloud_exporter::config::parse_destination(&l.destination_path)
            .unwrap()
            .1;
        // Beside the destination, not under it: the other tests of this binary
        // list the whole destination at the same time.
        let copy_root = format!("{}-hostile/", root.trim_end_matches('/'));
        let _ = cloud.tool(&sc, kind, &["delete-prefix", &copy_root]);
        let src = format!("{root}{server}/");
        let dst = format!("{copy_root}{server}/");
        cloud.tool(&sc, kind, &["copy-prefix", &src, &dst]);
        let junk = dir_with(&[("junk", b"not barman")]);
        // Azure: a key object_store cannot parse as a path (an empty
        // segment; its SDK folds a `.` segment before signing). GCS:
        // fake-gcs-server's filesystem backend folds `//` and `/./`, so a
        // plain junk name only.
        let junk_keys = match kind {
            Kind::Azure => vec![format!("{dst}wals//junk")],
            Kind::Gcs => vec![format!("{dst}wals/0000000100000000/not-a-wal")],
        };
        for k in &junk_keys {
            cloud.tool(&sc, kind, &["put", k, junk.path().join("junk").to_str().unwrap()]);
        }
        let listing = cloud.list(&sc, kind, &dst);
        let stored_junk = junk_keys.iter().filter(|k| listing.contains_key(*k)).count();
        assert!(
            stored_junk >= 1,
            "{kind:?}: the emulator kept a junk key: {junk_keys:?}"
        );
        let mut archived = Vec::new();
        if kind == Kind::Azure {
            let seg = listing
                .keys()
                .find(|k| k.contains("/wals/") && wal_kind(k) == "segment")
                .unwrap()
                .clone();
            let tar = listing
                .keys()
                .find(|k| k.contains("/base/") && k.contains("/data.tar"))
                .unwrap()
                .clone();
            for k in [&seg, &tar] {
                cloud.tool(&sc, kind, &["set-tier", k, "Archive"]);
            }
            archived = vec![seg, tar];
            let tiers = cloud.list(&sc, kind, &dst);
            for k in &archived {
                assert_eq!(tiers[k].1.as_deref(), Some("Archive"), "{k}");
            }
        }
        let dest = format!("{}-hostile", l.destination_path.trim_end_matches('/'));
        let dir = tempfile::tempdir().unwrap();
        let creds = match kind {
            Kind::Azure => format!(
                ", azure_sas_token_file: \"{}\"",
                l.sas_token_file.as_ref().unwrap().display()
            ),
            Kind::Gcs => String::new(),
        };
        let cfg = dir.path().join("c.yaml");
        std::fs::write(
            &cfg,
            format!("interval: 1h\ntimeout: 30s\ntargets:\n  - {{name: h, destination_path: \"{dest}\"{creds}}}\n"),
        )
        .unwrap();
        let emulator = origin(&l.endpoint);
        let env: Vec<(&str, &str)> = match kind {
            Kind::Azure => vec![],
            Kind::Gcs => vec![("STORAGE_EMULATOR_HOST", emulator.as_str())],
        };
        let mut d = Daemon::start_with_env(&cfg, &env);
        d.wait_ready(Duration::from_secs(60)).await;
        let s = scrape(&d).await;
        let lab = |extra: &[(&'static str, &'static str)]| -> Vec<(&str, &str)> {
            let mut v = vec![("target", "h"), ("server", server.as_str())];
            v.extend_from_slice(extra);
            v
        };
        assert_eq!(
            value(&s, "barman_cloud_collector_up", &[("target", "h"), ("collector", "s3")]),
            Some(1.0),
            "{kind:?}: junk keys do not fail the walk: {}",
            d.get("/api/status").await
        );
        assert_eq!(
            value(&s, "barman_cloud_wal_objects", &lab(&[("kind", "other")])),
            Some(stored_junk as f64),
            "{kind:?}: every junk key counted"
        );
        let tier = |area| value(&s, "barman_cloud_archive_tier_objects", &lab(&[("area", area)]));
        let expect = if kind == Kind::Azure { 1.0 } else { 0.0 };
        assert_eq!(
            (tier("wals"), tier("base")),
            (Some(expect), Some(expect)),
            "{kind:?}: {archived:?}"
        );
        if kind == Kind::Azure {
            let done = value(&s, "barman_cloud_backups", &lab(&[("status", "done")])).unwrap();
            assert_eq!(
                value(&s, "barman_cloud_backups_restorable", &lab(&[])),
                Some(done - 1.0),
                "the backup whose data tar is in Archive cannot be restored as it is"
            );
        }
        drop(d);
        cloud.tool(&sc, kind, &["delete-prefix", &copy_root]);
    }
}

/// A temporary directory holding `files`.
fn dir_with(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, body) in files {
        std::fs::write(dir.path().join(name), body).unwrap();
    }
    dir
}
