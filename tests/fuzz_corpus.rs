//! Replays the fuzz corpora on the stable toolchain: every file of
//! `fuzz/seeds/<target>/` (real files from the scenario), `fuzz/corpus/<target>/`
//! (what libFuzzer found, minimized) and `fuzz/regressions/<target>/` (inputs
//! that crashed before a fix) goes through the same checks as the fuzz targets
//! (`fuzz/src/checks.rs`): no panic, and every invariant they assert.
//! Rerun the fuzzing itself with `scripts/fuzz.sh`.

#[path = "../fuzz/src/checks.rs"]
mod checks;

use std::path::Path;

/// Runs every seed, corpus and regression file of `target`; returns how many
/// ran from each of the three directories.
fn replay(target: &str) -> [usize; 3] {
    let check = checks::TARGETS
        .iter()
        .find(|(name, _)| *name == target)
        .unwrap_or_else(|| panic!("no fuzz target {target}"))
        .1;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut ran = [0; 3];
    let mut failures = Vec::new();
    for (i, dir) in ["seeds", "corpus", "regressions"].into_iter().enumerate() {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        for entry in entries {
            let path = entry.unwrap().path();
            let data = std::fs::read(&path).unwrap();
            ran[i] += 1;
            if let Err(e) = std::panic::catch_unwind(|| check(&data)) {
                let why = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{}: {why}", path.display()));
            }
        }
    }
    assert!(failures.is_empty(), "{target}:\n{}", failures.join("\n"));
    ran
}

#[test]
fn backup_info_corpus() {
    let [seeds, corpus, regressions] = replay("backup_info");
    // The scenario's real files: DONE, FAILED, STARTED, keep, compressions, 64 MiB segments.
    assert!(seeds >= 18 && corpus >= 1 && regressions >= 1);
}

#[test]
fn key_corpus() {
    let [seeds, corpus, _] = replay("key");
    assert!(
        seeds >= 100 && corpus >= 1,
        "every key of the scenario's bucket is a seed"
    );
}

#[test]
fn history_corpus() {
    let [seeds, corpus, _] = replay("history");
    assert!(seeds >= 4 && corpus >= 1);
}

#[test]
fn history_file_corpus() {
    let [seeds, corpus, _] = replay("history_file");
    // The scenario's history in every barman compression, and small bombs.
    assert!(seeds >= 14, "{seeds} seeds");
    let _ = corpus;
    // The seeds were written by barman's own Python libraries (gzip, bz2,
    // lzma, python-snappy, zstandard, lz4): each real file reads, each bomb
    // (2 MiB of zeros) is refused.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/history_file");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let data = std::fs::read(&path).unwrap();
        let suffix = checks::HISTORY_SUFFIXES[usize::from(data[0]) % checks::HISTORY_SUFFIXES.len()];
        let read = barman_cloud_exporter::catalog::history::read(&format!("00000002.history{suffix}"), &data[1..]);
        assert_eq!(read.is_some(), !name.contains("bomb"), "{name}");
    }
}

#[test]
fn config_corpus() {
    let [seeds, corpus, _] = replay("config");
    assert!(seeds >= 3 && corpus >= 1);
}

#[test]
fn wal_arith_corpus() {
    let [seeds, corpus, regressions] = replay("wal_arith");
    assert!(seeds >= 3 && corpus >= 1 && regressions >= 1);
}

#[test]
fn every_target_is_replayed() {
    let names: Vec<&str> = checks::TARGETS.iter().map(|(n, _)| *n).collect();
    let dirs: Vec<String> = std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_targets"))
        .unwrap()
        .map(|e| e.unwrap().path().file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    for d in &dirs {
        assert!(names.contains(&d.as_str()), "fuzz target {d} has no check in TARGETS");
    }
    assert_eq!(dirs.len(), names.len());
}
