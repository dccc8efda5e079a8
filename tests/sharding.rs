//! Sharding (`--shard N --total-shards M`, `--shard-from-pod-name`): the
//! flags are checked, `check-config` names each target's shard, and three
//! real exporter processes over 60 targets on the real S3 server split them
//! disjointly, cover them all, report real data for their own, and keep
//! their share across a restart.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use common::hostile::{self, Daemon, run_bin};
use common::{Scenario, samples, value};

const TOTAL: u32 = 3;

/// Config YAML with the 60 target names `ns-NN/pg`, each on `destination`.
fn sixty_targets(sc: Option<&Scenario>, dir: &Path, destination: &str) -> (String, Vec<String>) {
    let names: Vec<String> = (0..60).map(|i| format!("ns-{i:02}/pg")).collect();
    let pairs: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), destination)).collect();
    let yaml = match sc {
        Some(sc) => hostile::config_yaml(sc, dir, &pairs),
        None => {
            let mut y = String::from("targets:\n");
            for n in &names {
                y.push_str(&format!("  - {{name: {n:?}, destination_path: {destination:?}}}\n"));
            }
            y
        }
    };
    (yaml, names)
}

/// The targets `check-config` assigns to each shard.
fn check_config_shards(config: &str) -> Vec<BTreeSet<String>> {
    let (code, out, err) = run_bin(
        &[
            "--config.file",
            config,
            "--total-shards",
            &TOTAL.to_string(),
            "check-config",
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}{err}");
    let mut shards = vec![BTreeSet::new(); TOTAL as usize];
    for line in out.lines().filter(|l| l.trim_start().starts_with("target ")) {
        let name = line.split('"').nth(1).unwrap().to_string();
        let shard: usize = line
            .rsplit("(shard ")
            .next()
            .unwrap()
            .trim_end_matches(')')
            .parse()
            .unwrap();
        shards[shard].insert(name);
    }
    shards
}

#[test]
fn sharding_flags_are_checked_and_check_config_names_each_targets_shard() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, sixty_targets(None, dir.path(), "s3://b/p").0).unwrap();
    let c = config.to_str().unwrap();
    let shards = check_config_shards(c);
    let all: BTreeSet<String> = shards.iter().flatten().cloned().collect();
    assert_eq!(all.len(), 60);
    assert_eq!(shards.iter().map(BTreeSet::len).sum::<usize>(), 60, "disjoint");
    assert!(shards.iter().all(|s| !s.is_empty()), "{shards:?}");
    let (code, out, _) = run_bin(
        &[
            "--config.file",
            c,
            "--shard",
            "1",
            "--total-shards",
            "3",
            "check-config",
        ],
        &[],
    );
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!(
            "shard 1 of 3 (0-based): collects {} of 60 target(s)",
            shards[1].len()
        )),
        "{out}"
    );
    // From a StatefulSet pod name: given, or from POD_NAME.
    let (code, out, _) = run_bin(
        &[
            "--config.file",
            c,
            "--shard-from-pod-name",
            "--total-shards",
            "3",
            "check-config",
        ],
        &[("POD_NAME", "barman-cloud-exporter-2")],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("shard 2 of 3 (0-based)"), "{out}");
    let given = [
        "--config.file",
        c,
        "--shard-from-pod-name=bce-0",
        "--total-shards",
        "3",
        "check-config",
    ];
    assert!(run_bin(&given, &[]).1.contains("shard 0 of 3 (0-based)"));
    // Wrong flags: a clear error, exit non-zero, nothing started.
    for (args, env, want) in [
        (
            vec!["--shard", "3", "--total-shards", "3"],
            vec![],
            "shard 3 is out of range: --total-shards is 3 (shards are numbered 0 to 2)",
        ),
        (
            vec!["--shard", "1"],
            vec![],
            "shard 1 is out of range: --total-shards is 1",
        ),
        (vec!["--total-shards", "0"], vec![], "--total-shards must be at least 1"),
        (
            vec!["--shard-from-pod-name", "--total-shards", "3"],
            vec![("POD_NAME", "barman-cloud-exporter-7f9c8d-x2kq")],
            "does not end in -<ordinal>",
        ),
        (
            vec!["--shard-from-pod-name", "--total-shards", "3"],
            vec![("POD_NAME", "barman-cloud-exporter-5")],
            "shard 5 is out of range",
        ),
        (
            vec!["--shard", "1", "--shard-from-pod-name=bce-1", "--total-shards", "3"],
            vec![],
            "cannot be used with",
        ),
    ] {
        let mut all_args = vec!["--config.file", c];
        all_args.extend(&args);
        all_args.push("check-config");
        let (code, out, err) = run_bin(&all_args, &env);
        assert_ne!(code, 0, "{args:?}: {out}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// One shard's view: the targets of `barman_cloud_target_info`, checked
/// against `/api/status`, the landing page and its shard series.
async fn own_targets(d: &Daemon, shard: u32, done_backups: f64) -> BTreeSet<String> {
    let text = d.get("/metrics").await;
    let s = samples(&text);
    let shard_label = shard.to_string();
    let total_label = TOTAL.to_string();
    let want = [("shard", shard_label.as_str()), ("total", total_label.as_str())];
    assert_eq!(value(&s, "barman_cloud_exporter_shard", &want), Some(1.0), "{text}");
    assert_eq!(s.iter().filter(|x| x.name == "barman_cloud_exporter_shard").count(), 1);
    assert_eq!(
        value(&s, "barman_cloud_exporter_total_shards", &[]),
        Some(f64::from(TOTAL))
    );
    let targets: BTreeSet<String> = s
        .iter()
        .filter(|x| x.name == "barman_cloud_target_info")
        .map(|x| x.labels["target"].clone())
        .collect();
    for t in &targets {
        // Real data of each own target: the DONE backups barman lists.
        let got = value(
            &s,
            "barman_cloud_backups",
            &[("target", t), ("server", "pg-main"), ("status", "done")],
        );
        assert_eq!(got, Some(done_backups), "{t}");
    }
    // Only its own targets anywhere: no series of another target.
    let labelled: BTreeSet<String> = s.iter().filter_map(|x| x.labels.get("target").cloned()).collect();
    assert_eq!(labelled, targets);
    let status: serde_json::Value = serde_json::from_str(&d.get("/api/status").await).unwrap();
    assert_eq!(status["shard"], serde_json::json!({"index": shard, "total": TOTAL}));
    assert_eq!(status["ready"], true);
    let listed: BTreeSet<String> = status["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(listed, targets);
    let page = d.get("/").await;
    assert!(
        page.contains(&format!("Shard {shard} of {TOTAL} (numbered from 0)")),
        "landing page"
    );
    assert_eq!(page.matches("Target ").count(), targets.len(), "landing page targets");
    targets
}

#[tokio::test]
#[ignore = "needs the real stack: scripts/test.sh"]
async fn three_shards_split_sixty_targets_on_real_s3_and_a_restart_moves_nothing() {
    let sc = Scenario::load();
    let dir = tempfile::tempdir().unwrap();
    let (yaml, names) = sixty_targets(Some(&sc), dir.path(), &sc.destination_path);
    let config = dir.path().join("config.yaml");
    std::fs::write(&config, yaml).unwrap();
    let done = sc
        .barman_backup_list("pg-main")
        .iter()
        .filter(|b| b["status"] == "DONE")
        .count() as f64;
    assert!(done >= 2.0);
    let start = |shard: u32| {
        let (s, t) = (shard.to_string(), TOTAL.to_string());
        Daemon::start_with_args(&config, &["--shard", &s, "--total-shards", &t], &[])
    };
    let mut daemons: Vec<Daemon> = (0..TOTAL).map(start).collect();
    for d in &mut daemons {
        d.wait_ready(Duration::from_secs(120)).await;
    }
    let mut shards = Vec::new();
    for (i, d) in daemons.iter().enumerate() {
        shards.push(own_targets(d, i as u32, done).await);
    }
    // Disjoint, every target, none empty, and as check-config says.
    let union: BTreeSet<String> = shards.iter().flatten().cloned().collect();
    assert_eq!(union, names.iter().cloned().collect::<BTreeSet<_>>());
    assert_eq!(shards.iter().map(BTreeSet::len).sum::<usize>(), names.len(), "disjoint");
    assert!(shards.iter().all(|s| !s.is_empty()), "{shards:?}");
    assert_eq!(shards, check_config_shards(config.to_str().unwrap()));

    // A restart of shard 1 (new process, new port) collects the same targets.
    drop(daemons.remove(1));
    let mut again = start(1);
    again.wait_ready(Duration::from_secs(120)).await;
    assert_eq!(own_targets(&again, 1, done).await, shards[1]);
    // Shard 2 replaced by a StatefulSet pod taking its shard from its name.
    drop(daemons.remove(1));
    let mut pod = Daemon::start_with_args(
        &config,
        &["--shard-from-pod-name", "--total-shards", &TOTAL.to_string()],
        &[("POD_NAME", "barman-cloud-exporter-2")],
    );
    pod.wait_ready(Duration::from_secs(120)).await;
    assert_eq!(own_targets(&pod, 2, done).await, shards[2]);
}
