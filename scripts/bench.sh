#!/usr/bin/env bash
# The benchmark behind docs/benchmarks.md: the exporter vs the two Python jobs
# it replaces, against one local SeaweedFS on loopback, in one run.
#
# usage: scripts/bench.sh [N]      N WAL objects in the big data set
#                                  (default 1000000; the published run)
#
# What it does:
#   1. installs what is missing (scripts/install-deps.sh), builds the release
#      exporter and the seeding tool (examples/bench_seed.rs);
#   2. starts SeaweedFS in $BCE_BENCH_DIR/s3 (kept between runs);
#   3. seeds, once per size (remembered in $BCE_BENCH_DIR/seeded-*), three
#      synthetic barman-cloud layouts of $BCE_BENCH_SERVERS servers each:
#      the big set (N WAL objects), the small set (N/10, for memory
#      flatness) and a tiny set walked by the 49 extra targets of the load
#      test;
#   4. runs scripts/bench.py (the measurements; see its docstring), writes
#      the JSON to $BCE_BENCH_DIR/results-N.json and prints the table of
#      docs/benchmarks.md on stdout;
#   5. stops SeaweedFS (its data stays for the next run; delete
#      $BCE_BENCH_DIR to start over).
#
# Env: BCE_BENCH_DIR (default /var/tmp/barman-cloud-exporter-bench),
#      BCE_BENCH_SERVERS (4), BCE_BENCH_LOAD_SECONDS (60),
#      BCE_BENCH_LOAD_CONNECTIONS (2: concurrent scrapers on /metrics),
#      BCE_BENCH_SEED_CONCURRENCY (64), BCE_BENCH_INTERVAL (10s),
#      BCE_BENCH_PROFILE (release; debug for the CI smoke run, which only
#      checks that everything runs: its figures mean nothing).
# The published figures are from a release build on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BCE_LOG_TAG=bench
source scripts/lib.sh

N="${1:-1000000}"
[[ "$N" =~ ^[0-9]+$ && "$N" -ge 1000 ]] || die "N must be a number >= 1000"
DIR="${BCE_BENCH_DIR:-/var/tmp/barman-cloud-exporter-bench}"
SERVERS="${BCE_BENCH_SERVERS:-4}"
LOAD_SECONDS="${BCE_BENCH_LOAD_SECONDS:-60}"
SEED_CONCURRENCY="${BCE_BENCH_SEED_CONCURRENCY:-64}"
BASELINE="$BCE_REPO_ROOT/bench/baseline"
for job in backup_health_check.py storage_usage_report.py; do
  if [[ -f "$BCE_REPO_ROOT/../shared/baseline/$job" ]]; then
    cmp -s "$BASELINE/$job" "$BCE_REPO_ROOT/../shared/baseline/$job" ||
      die "bench/baseline/$job differs from ../shared/baseline/$job"
  fi
done
BUCKET=bench
SMALL=$((N / 10))
TINY=2000
started=$(date +%s)

log "installing dependencies"
scripts/install-deps.sh
need_cmd wrk /usr/bin/time
export CARGO_TERM_COLOR=never AWS_EC2_METADATA_DISABLED=true
PROFILE="${BCE_BENCH_PROFILE:-release}"
[[ "$PROFILE" == release || "$PROFILE" == debug ]] || die "BCE_BENCH_PROFILE must be release or debug"
flags=(--locked)
[[ "$PROFILE" == debug ]] || flags+=(--release)
log "building the $PROFILE exporter and the seeding tool"
cargo build "${flags[@]}" --bin barman-cloud-exporter >&2
cargo build "${flags[@]}" --features bench-tools --example bench_seed >&2
EXPORTER="$BCE_REPO_ROOT/target/$PROFILE/barman-cloud-exporter"
SEED="$BCE_REPO_ROOT/target/$PROFILE/examples/bench_seed"

mkdir -p "$DIR"
scripts/seaweedfs.sh start "$DIR/s3" >&2
trap 'scripts/seaweedfs.sh stop "$DIR/s3" >&2 || true' EXIT
S3_ENV="$DIR/s3/s3.env"
"$BCE_VENV_BIN/python" scripts/s3tool.py --env "$S3_ENV" create-bucket "$BUCKET" >&2
# shellcheck disable=SC1090
source "$S3_ENV"

# seed PREFIX WAL_OBJECTS: the layout under s3://bench/PREFIX, once.
seed() {
  local prefix=$1 n=$2 marker="$DIR/seeded-$1"
  if [[ -f "$marker" ]]; then
    log "reusing $prefix ($(cat "$marker"))"
    return
  fi
  log "seeding s3://$BUCKET/$prefix: $n WAL objects over $SERVERS servers"
  AWS_ACCESS_KEY_ID="$S3_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$S3_SECRET_KEY" \
    "$SEED" "$S3_ENDPOINT" "$BUCKET" "$prefix" "$SERVERS" "$n" 8 "$SEED_CONCURRENCY" >"$marker.tmp"
  mv "$marker.tmp" "$marker"
  log "seeded $prefix: $(cat "$marker")"
}
seed "n$N-s$SERVERS" "$N"
seed "n$SMALL-s$SERVERS" "$SMALL"
seed "n$TINY-s$SERVERS" "$TINY"

log "measuring"
results="$DIR/results-$N.json"
"$BCE_SYSTEM_PYTHON" scripts/bench.py \
  --exporter "$EXPORTER" --s3-env "$S3_ENV" --bucket "$BUCKET" \
  --big "n$N-s$SERVERS" --small "n$SMALL-s$SERVERS" --tiny "n$TINY-s$SERVERS" \
  --servers "$SERVERS" --baseline "$BASELINE" --python "$BCE_VENV_BIN/python" \
  --interval "${BCE_BENCH_INTERVAL:-10s}" --load-seconds "$LOAD_SECONDS" \
  --load-connections "${BCE_BENCH_LOAD_CONNECTIONS:-2}" >"$results.tmp"
mv "$results.tmp" "$results"
log "results in $results ($(($(date +%s) - started)) s in all)"
"$BCE_SYSTEM_PYTHON" scripts/bench_table.py "$results" "$N" "$SMALL" "$SERVERS"
