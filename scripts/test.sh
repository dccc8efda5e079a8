#!/usr/bin/env bash
# The whole test suite (README command 2; `.ci/run` runs exactly this).
#
# Installs what is missing (Debian packages, the barman/SeaweedFS venv,
# Azurite, Rust components), checks formatting, lints (clippy, shellcheck), the alert rules
# and the manifests, then runs the tests in three tiers:
#   1. plain `cargo test`: unit, fixture, docs and golden tests (no services);
#   2. the tests marked `#[ignore = "needs the real stack: scripts/test.sh"]`,
#      against the real scenario (SeaweedFS + PostgreSQL 15 + barman-cloud
#      3.19.1 on loopback), its extra layouts (scenario.sh extra) and the
#      same kind of layout on Azurite and fake-gcs-server (scenario.sh cloud,
#      DIR/cloud.json next to scenario.json);
#   3. the disruptive ones among them (they stop and restart SeaweedFS), one
#      at a time;
# then a benchmark smoke run, and always tears the scenario down.
#
# Env: BCE_TEST_DIR  where to build the scenario (default: a fresh directory
#                    in $TMPDIR or, when too full for SeaweedFS, /dev/shm)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BCE_LOG_TAG="test"
source scripts/lib.sh

started=$(date +%s)
step() {
  log "=== $* ($(( $(date +%s) - started ))s; $(df -h --output=avail /tmp | tail -n1 | tr -d ' ') free in /tmp)"
}

step "installing dependencies"
scripts/install-deps.sh

export CARGO_TERM_COLOR=never
# Tests must never reach an instance metadata service.
export AWS_EC2_METADATA_DISABLED=true

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
step "alert rules (promtool)"
scripts/check-alerts.sh
step "shellcheck"
shellcheck -x -P SCRIPTDIR scripts/*.sh .ci/run
step "manifests and dashboard packaging"
scripts/check-deploy.sh
step "building tests"
cargo test --locked --no-run

results="$(mktemp /tmp/bce-test-results.XXXXXX)"
rc=0
step "tier 1: cargo test (unit, fixture, docs and golden tests; no services)"
cargo test --locked 2>&1 | tee -a "$results"

# The scenario, its extra and cloud layouts and the benchmark smoke write
# about 2.5 GiB; SeaweedFS needs 1% of its filesystem free on top
# (scratch_dir: /dev/shm when /tmp is too full).
dir="${BCE_TEST_DIR:-$(scratch_dir 4 bce-test)}"
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
  local rc=$?
  scripts/scenario.sh down "$dir" || true
  if [[ -z "${BCE_TEST_DIR:-}" && $rc -eq 0 ]]; then rm -rf "$dir"; fi
  exit "$rc"
}
trap cleanup EXIT
step "building the real scenario in $dir"
scripts/scenario.sh up "$dir" >/dev/null
step "building the extra layouts (FAILED/STARTED, keep, bzip2/zstd/snappy WAL, 64 MiB segments, tablespace and split tar)"
scripts/scenario.sh extra "$dir" >/dev/null
step "building the cloud layouts (barman-cloud on Azurite and fake-gcs-server: Azure Blob Storage and Google Cloud Storage)"
scripts/scenario.sh cloud "$dir" >/dev/null
export BCE_SCENARIO="$dir/scenario.json"

step "tier 2: the real-stack tests (cargo test -- --ignored)"
cargo test --locked -- --ignored --skip disruptive_ 2>&1 | tee -a "$results"
step "tier 3: the disruptive real-stack tests (stop and restart SeaweedFS)"
cargo test --locked --tests -- --ignored disruptive_ --test-threads=1 2>&1 | tee -a "$results"
step "benchmark smoke run (scripts/bench.sh at small N, debug build; figures not meaningful)"
BCE_BENCH_PROFILE=debug BCE_BENCH_DIR="$dir/bench" BCE_BENCH_LOAD_SECONDS=3 BCE_BENCH_ASSERT=1 BCE_BENCH_SINGLE=10000 \
  scripts/bench.sh 2000 >"$dir/bench.md" || { rc=1; log "benchmark smoke run failed"; }
step "tearing down the scenario"
trap - EXIT
scripts/scenario.sh down "$dir"
[[ -n "${BCE_TEST_DIR:-}" ]] || rm -rf "$dir"
# One closing line over every test binary: "N passed, N failed".
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "tests: %d passed, %d failed\n", p, f; exit (f > 0 || p == 0) }' "$results" || rc=$?
rm -f "$results"
exit "$rc"
