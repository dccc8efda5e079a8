#!/usr/bin/env bash
# The benchmark behind docs/benchmarks.md: the exporter vs the two Python jobs
# it replaces, against one local SeaweedFS on loopback, in one run; the cold
# walk on Azure (Azurite) and GCS (fake-gcs-server) at the same N; and the
# fleet shape (many servers over many targets in one bucket).
#
# usage: scripts/bench.sh [N]      N WAL objects in the big data set
#                                  (default 1000000; the published run)
#
# What it does:
#   1. installs what is missing (scripts/install-deps.sh), builds the release
#      exporter as shipped (profile dist: LTO) and the seeding tool
#      (examples/bench_seed.rs), and copies both
#      to $BCE_BENCH_DIR/bin-PROFILE (what is measured);
#   2. starts SeaweedFS in $BCE_BENCH_DIR/s3, and Azurite and fake-gcs-server
#      in $BCE_BENCH_DIR/azure and $BCE_BENCH_DIR/gcs (all kept between runs);
#   3. seeds, once per size (remembered in $BCE_BENCH_DIR/seeded-*; a marker
#      per finished server in $BCE_BENCH_DIR/done-*, so an interrupted seed
#      continues), synthetic barman-cloud layouts of $BCE_BENCH_SERVERS
#      servers each: the big set (N WAL objects), the small set (N/10, for
#      memory flatness), a tiny set (2,000) walked by the 49 extra targets of
#      the load test, the cloud set (min(N, BCE_BENCH_CLOUD_MAX) objects) in all three
#      stores, the fleet (TARGETS x SERVERS x WAL) with its 4-server
#      counterpart of as many objects, and the single-server shape;
#   4. runs scripts/bench.py (the S3 measurements) and scripts/bench_shapes.py
#      (cloud and fleet; see their docstrings), writes the JSON to
#      $BCE_BENCH_DIR/results-N.json and results-N-shapes.json and prints the
#      tables of docs/benchmarks.md on stdout;
#   5. stops the three stores (their data stays for the next run; delete
#      $BCE_BENCH_DIR to start over).
#
# Env: BCE_BENCH_DIR (default /var/tmp/barman-cloud-exporter-bench),
#      BCE_BENCH_SERVERS (4), BCE_BENCH_LOAD_SECONDS (60),
#      BCE_BENCH_LOAD_CONNECTIONS (2: concurrent scrapers on /metrics),
#      BCE_BENCH_SEED_CONCURRENCY (64), BCE_BENCH_INTERVAL (10s; 3s with
#      the debug profile),
#      BCE_BENCH_CLOUD (1; 0 skips Azurite and fake-gcs-server),
#      BCE_BENCH_CLOUD_MAX (25000: the emulators' set is min(N, this);
#      Azurite slows down as its database grows: about 170 PUT/s up to
#      25,000 blobs, under 50/s past 35,000),
#      BCE_BENCH_FLEET (4:5:50 = TARGETS:SERVERS_PER_TARGET:WAL_PER_SERVER,
#      a small fleet; 1 = 100:10:1000, the issue's 1,000 servers; 0 skips it),
#      BCE_BENCH_SINGLE (20000: one server of this many WAL objects, and
#      one of a tenth of it, for the per-server memory flatness; 1 =
#      10000000, the issue's 10M shape, seeded in resumable parts of 256 WAL
#      directories; 0 skips it),
#      BCE_BENCH_SEED_ONLY (1: stop after seeding, to seed ahead of a run),
#      BCE_BENCH_PROFILE (release; debug for the CI smoke run, which only
#      checks that everything runs: its figures mean nothing).
# The published figures are from a release build on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BCE_LOG_TAG=bench
source scripts/lib.sh

N="${1:-1000000}"
[[ "$N" =~ ^[0-9]+$ && "$N" -ge 1000 ]] || die "N must be a number >= 1000"
DIR="$(abspath "${BCE_BENCH_DIR:-/var/tmp/barman-cloud-exporter-bench}")"
SERVERS="${BCE_BENCH_SERVERS:-4}"
LOAD_SECONDS="${BCE_BENCH_LOAD_SECONDS:-60}"
SEED_CONCURRENCY="${BCE_BENCH_SEED_CONCURRENCY:-64}"
CLOUD="${BCE_BENCH_CLOUD:-1}"
CLOUD_N="${BCE_BENCH_CLOUD_MAX:-25000}"
((CLOUD_N > N)) && CLOUD_N=$N
FLEET="${BCE_BENCH_FLEET:-4:5:50}"
[[ "$FLEET" == 1 ]] && FLEET=100:10:1000
if [[ "$FLEET" != 0 ]]; then
  [[ "$FLEET" =~ ^([0-9]+):([0-9]+):([0-9]+)$ ]] || die "BCE_BENCH_FLEET must be 0, 1 or TARGETS:SERVERS:WAL"
  FLEET_T=${BASH_REMATCH[1]} FLEET_S=${BASH_REMATCH[2]} FLEET_W=${BASH_REMATCH[3]}
  FLEET_N=$((FLEET_T * FLEET_S * FLEET_W))
fi
SINGLE="${BCE_BENCH_SINGLE:-20000}"
[[ "$SINGLE" == 1 ]] && SINGLE=10000000
[[ "$SINGLE" =~ ^[0-9]+$ && ("$SINGLE" == 0 || "$SINGLE" -ge 1000) ]] ||
  die "BCE_BENCH_SINGLE must be 0, 1 or a number >= 1000"
BASELINE="$BCE_REPO_ROOT/bench/baseline"
for job in backup_health_check.py storage_usage_report.py; do
  if [[ -f "$BCE_REPO_ROOT/../shared/baseline/$job" ]]; then
    cmp -s "$BASELINE/$job" "$BCE_REPO_ROOT/../shared/baseline/$job" ||
      die "bench/baseline/$job differs from ../shared/baseline/$job"
  fi
done
BUCKET=bench
SMALL=$((N / 10))
# The 49 extra load targets' set; below N = 20,000 (the smoke run) the
# small set, so a debug build publishes them in seconds.
TINY=2000
((N < 20000)) && TINY=$SMALL
started=$(date +%s)

log "installing dependencies"
scripts/install-deps.sh
need_cmd wrk /usr/bin/time
export CARGO_TERM_COLOR=never AWS_EC2_METADATA_DISABLED=true
PROFILE="${BCE_BENCH_PROFILE:-release}"
[[ "$PROFILE" == release || "$PROFILE" == debug ]] || die "BCE_BENCH_PROFILE must be release or debug"
INTERVAL="${BCE_BENCH_INTERVAL:-10s}"
[[ "$PROFILE" == debug && -z "${BCE_BENCH_INTERVAL:-}" ]] && INTERVAL=3s
flags=(--locked)
[[ "$PROFILE" == debug ]] || flags+=(--release)
log "building the $PROFILE exporter and the seeding tool"
# Two builds: one of both would unify the example's dev-dependency features
# (tokio's test-util, ...) into the exporter, which is then not the binary
# as deployed.
# What is measured is a copy, taken right after each build: a build in
# another worktree sharing CARGO_TARGET_DIR (cargo waits for its lock
# between our two builds) would replace target/PROFILE/barman-cloud-exporter.
mkdir -p "$DIR/bin-$PROFILE"
TARGET_DIR="${CARGO_TARGET_DIR:-$BCE_REPO_ROOT/target}"
# The exporter as shipped: profile `dist` (release with LTO, the container
# image's); the seeding tool in plain release.
if [[ "$PROFILE" == debug ]]; then
  cargo build --locked --bin barman-cloud-exporter >&2
  cp -f "$TARGET_DIR/debug/barman-cloud-exporter" "$DIR/bin-$PROFILE/"
else
  cargo build --locked --profile dist --bin barman-cloud-exporter >&2
  cp -f "$TARGET_DIR/dist/barman-cloud-exporter" "$DIR/bin-$PROFILE/"
fi
cargo build "${flags[@]}" --features bench-tools --example bench_seed >&2
cp -f "$TARGET_DIR/$PROFILE/examples/bench_seed" "$DIR/bin-$PROFILE/"
EXPORTER="$DIR/bin-$PROFILE/barman-cloud-exporter"
SEED="$DIR/bin-$PROFILE/bench_seed"

# shellcheck disable=SC2317 # called by the EXIT trap
stop_stores() {
  # At once: SeaweedFS alone takes seconds to stop.
  scripts/seaweedfs.sh stop "$DIR/s3" >&2 &
  if [[ "$CLOUD" != 0 ]]; then
    scripts/azurite.sh stop "$DIR/azure" >&2 &
    scripts/fakegcs.sh stop "$DIR/gcs" >&2 &
  fi
  wait || true
}
trap stop_stores EXIT
scripts/seaweedfs.sh start "$DIR/s3" >&2
S3_ENV="$DIR/s3/s3.env"
"$BCE_VENV_BIN/python" scripts/s3tool.py --env "$S3_ENV" create-bucket "$BUCKET" >&2
# shellcheck disable=SC1090
source "$S3_ENV"
if [[ "$CLOUD" != 0 ]]; then
  scripts/azurite.sh start "$DIR/azure" >&2
  scripts/fakegcs.sh start "$DIR/gcs" >&2
  AZURE_ENDPOINT="$(sed -n 's/^AZURE_ENDPOINT=//p' "$DIR/azure/azure.env")"
fi

# seed STORE PREFIX SERVERS WAL_PER_SERVER [TARGETS]: the layout under
# PREFIX in STORE (s3, azure or gcs), once; resumable per server.
seed() {
  local store=$1 prefix=$2 servers=$3 wal=$4 targets=${5:-0}
  local marker="$DIR/seeded-$prefix" done="$DIR/done-$store"
  [[ "$store" == s3 ]] || marker="$DIR/seeded-$store-$prefix"
  if [[ -f "$marker" ]]; then
    log "reusing $store $prefix ($(cat "$marker"))"
    return
  fi
  local what="$((servers * wal)) objects over $servers servers"
  ((targets == 0)) || what="$((targets * servers * wal)) objects over $targets targets x $servers servers"
  log "seeding $store $prefix: $what"
  local args=(--prefix "$prefix" --servers "$servers" --wal "$wal" --targets "$targets"
    --concurrency "$SEED_CONCURRENCY" --done "$done")
  case "$store" in
    s3)
      AWS_ACCESS_KEY_ID="$S3_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$S3_SECRET_KEY" \
        "$SEED" --store s3 --endpoint "$S3_ENDPOINT" --bucket "$BUCKET" "${args[@]}" >"$marker.tmp"
      ;;
    azure)
      AZURE_STORAGE_KEY="$(cat "$DIR/azure/account.key")" \
        "$SEED" --store azure --endpoint "$AZURE_ENDPOINT" --bucket backups "${args[@]}" >"$marker.tmp"
      ;;
    gcs)
      # fake-gcs-server takes the JSON API's uploads, not object_store's
      # XML-API PUTs: the seeder emits the objects, google-cloud-storage writes.
      "$SEED" --store emit "${args[@]}" 2>"$marker.tmp" |
        "$BCE_VENV_BIN/python" scripts/cloudtool.py --env "$DIR/gcs/gcs.env" gcs put-many 8
      ;;
  esac
  mv "$marker.tmp" "$marker"
  log "seeded $store $prefix: $(cat "$marker")"
}
seed s3 "n$N-s$SERVERS" "$SERVERS" $((N / SERVERS))
seed s3 "n$SMALL-s$SERVERS" "$SERVERS" $((SMALL / SERVERS))
seed s3 "n$TINY-s$SERVERS" "$SERVERS" $((TINY / SERVERS))
shapes=()
if [[ "$CLOUD" != 0 ]]; then
  for store in s3 azure gcs; do
    seed "$store" "n$CLOUD_N-s$SERVERS" "$SERVERS" $((CLOUD_N / SERVERS))
  done
  shapes+=(--cloud "n$CLOUD_N-s$SERVERS" --azure-env "$DIR/azure/azure.env"
    --azure-sas "$DIR/azure/sas-token" --gcs-env "$DIR/gcs/gcs.env")
fi
if [[ "$FLEET" != 0 ]]; then
  FLEET_PREFIX="fleet-t$FLEET_T-s$FLEET_S-w$FLEET_W"
  seed s3 "$FLEET_PREFIX" "$FLEET_S" "$FLEET_W" "$FLEET_T"
  seed s3 "n$FLEET_N-s4" 4 $((FLEET_N / 4))
  shapes+=(--fleet "$FLEET_PREFIX" --fleet-targets "$FLEET_T" --fleet-servers "$FLEET_S"
    --fleet-four "n$FLEET_N-s4")
fi
if [[ "$SINGLE" != 0 ]]; then
  seed s3 "single-n$SINGLE" 1 "$SINGLE"
  seed s3 "single-n$((SINGLE / 10))" 1 $((SINGLE / 10))
  shapes+=(--single "single-n$SINGLE" --single-small "single-n$((SINGLE / 10))")
fi
if [[ "${BCE_BENCH_SEED_ONLY:-0}" == 1 ]]; then
  log "seeded ($(($(date +%s) - started)) s); BCE_BENCH_SEED_ONLY=1: not measuring"
  exit 0
fi

log "measuring (load average $(cut -d' ' -f1-3 /proc/loadavg))"
results="$DIR/results-$N.json"
common=(--exporter "$EXPORTER" --s3-env "$S3_ENV" --bucket "$BUCKET" --interval "$INTERVAL"
  --load-seconds "$LOAD_SECONDS" --load-connections "${BCE_BENCH_LOAD_CONNECTIONS:-2}")
"$BCE_SYSTEM_PYTHON" scripts/bench.py "${common[@]}" \
  --big "n$N-s$SERVERS" --small "n$SMALL-s$SERVERS" --tiny "n$TINY-s$SERVERS" \
  --servers "$SERVERS" --baseline "$BASELINE" --python "$BCE_VENV_BIN/python" >"$results.tmp"
mv "$results.tmp" "$results"
shaped="$DIR/results-$N-shapes.json"
rm -f "$shaped"
if ((${#shapes[@]})); then
  "$BCE_SYSTEM_PYTHON" scripts/bench_shapes.py "${common[@]}" --servers "$SERVERS" "${shapes[@]}" >"$shaped.tmp"
  mv "$shaped.tmp" "$shaped"
fi
log "results in $results ($(($(date +%s) - started)) s in all; load average $(cut -d' ' -f1-3 /proc/loadavg))"
"$BCE_SYSTEM_PYTHON" scripts/bench_table.py "$results" "$N" "$SMALL" "$SERVERS"
if [[ -f "$shaped" ]]; then
  "$BCE_SYSTEM_PYTHON" scripts/bench_table.py --shapes "$shaped" "$N" "$SERVERS"
fi
