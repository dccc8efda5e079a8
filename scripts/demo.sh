#!/usr/bin/env bash
# The demo (README command 1): builds a real barman-cloud setup on loopback
# (SeaweedFS, PostgreSQL 15 archiving with barman-cloud 3.19.1: two base
# backups, a promote to timeline 2 with its .history and .partial, and an
# orphaned second server), runs the exporter against it and shows what it
# reports. Installs what is missing first.
#
# Interactive: keeps running until Ctrl-C, then stops everything it started.
# Without a terminal (CI=true, no stdin): shows the metrics and stops.
#
# Env: BCE_DEMO_DIR   where to build the setup (default: a fresh directory
#                     in $TMPDIR or, when too full for SeaweedFS, /dev/shm)
#      BCE_DEMO_PORT  exporter port (default: 9875 if free, else a free one)
#      BCE_DEMO_CLOUD=1  also build the Azure (Azurite) and GCS
#                     (fake-gcs-server) layouts (scenario.sh cloud, about
#                     a minute more) and watch one target of each provider
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BCE_LOG_TAG=demo
source scripts/lib.sh

scripts/install-deps.sh
log "building the exporter (release)"
cargo build --release --locked --quiet
bin="$PWD/target/release/barman-cloud-exporter"

# The scenario writes about 1.5 GiB; SeaweedFS needs 1% of its filesystem
# free on top (scratch_dir: /dev/shm when /tmp is too full).
dir="${BCE_DEMO_DIR:-$(scratch_dir 2 bce-demo)}"
exporter_pid=""
cleanup() {
  local rc=$?
  if [[ -n "$exporter_pid" ]] && kill -0 "$exporter_pid" 2>/dev/null; then
    kill -TERM "$exporter_pid" 2>/dev/null || true
    wait "$exporter_pid" 2>/dev/null || true
  fi
  scripts/scenario.sh down "$dir" >/dev/null 2>&1 || true
  log "stopped everything the demo started (files kept in $dir)"
  exit $rc
}
trap cleanup EXIT INT TERM

log "building the real scenario in $dir (about a minute)"
scripts/scenario.sh up "$dir" >/dev/null

# Exporter config from the scenario.
read_json() { "$BCE_SYSTEM_PYTHON" -c "import json,sys; d=json.load(open('$dir/scenario.json')); print(eval(sys.argv[1]))" "$1"; }
mkdir -p "$dir/exporter"
read_json 'd["s3"]["access_key"]' > "$dir/exporter/access_key_id"
read_json 'd["s3"]["secret_key"]' > "$dir/exporter/secret_access_key"
read_json 'd["postgres"]["url"]' > "$dir/exporter/pg-url"
chmod 600 "$dir/exporter/"*
cat > "$dir/exporter/config.yaml" <<YAML
interval: 30s
timeout: 20s
targets:
  - name: demo
    labels: {namespace: demo, cluster: pg-main}
    destination_path: $(read_json 'd["destination_path"]')
    endpoint_url: $(read_json 'd["s3"]["endpoint"]')
    region: $(read_json 'd["s3"]["region"]')
    force_path_style: true
    servers: [$(read_json '",".join(d["servers"])')]
    access_key_id_file: $dir/exporter/access_key_id
    secret_access_key_file: $dir/exporter/secret_access_key
    postgres:
      url_file: $dir/exporter/pg-url
      server: $(read_json 'd["postgres"]["server"]')
YAML

exporter_env=()
if [[ "${BCE_DEMO_CLOUD:-}" == 1 ]]; then
  log "building the Azure and GCS layouts in $dir (about a minute)"
  scripts/scenario.sh cloud "$dir" >/dev/null
  read_cloud() { "$BCE_SYSTEM_PYTHON" -c "import json,sys; d=json.load(open('$dir/cloud.json')); print(eval(sys.argv[1]))" "$1"; }
  cat >> "$dir/exporter/config.yaml" <<YAML
  - name: demo-azure
    labels: {namespace: demo, cluster: az-main}
    destination_path: $(read_cloud 'd["azure"]["destination_path"]')
    servers: [$(read_cloud 'd["azure"]["postgres"]["server"]')]
    azure_storage_key_file: $(read_cloud 'd["azure"]["key_file"]')
  - name: demo-gcs
    labels: {namespace: demo, cluster: gcs-main}
    destination_path: $(read_cloud 'd["gcs"]["destination_path"]')
    servers: [$(read_cloud 'd["gcs"]["postgres"]["server"]')]
YAML
  exporter_env=("STORAGE_EMULATOR_HOST=$(read_cloud 'd["gcs"]["endpoint"]')")
fi

port="${BCE_DEMO_PORT:-9875}"
port_is_free "$port" || port="$(free_port)"
base="http://127.0.0.1:$port"
"$bin" check-config --config.file "$dir/exporter/config.yaml" >&2
env "${exporter_env[@]}" "$bin" --config.file "$dir/exporter/config.yaml" --web.listen-address "127.0.0.1:$port" \
  2> "$dir/exporter/exporter.log" &
exporter_pid=$!
wait_for 60 "exporter ready" curl -fsS -o /dev/null "$base/readyz"

echo
echo "barman-cloud-exporter is running against a real barman-cloud bucket:"
echo "  landing page  $base/"
echo "  metrics       $base/metrics"
echo "  JSON status   $base/api/status"
echo "  exporter log  $dir/exporter/exporter.log"
echo "  barman tools  source $dir/barman.env; $BCE_VENV_BIN/barman-cloud-backup-list --endpoint-url \$S3_ENDPOINT --cloud-provider aws-s3 $(read_json 'd["destination_path"]') pg-main"
echo
echo "What it reports (per server):"
curl -fsS "$base/metrics" | grep -E '^barman_cloud_(backups|backup_last_success_timestamp_seconds|first_recoverability_point_timestamp_seconds|recovery_window_end_timestamp_seconds|wal_missing_segments|backups_restorable|wal_timeline|wal_objects|wal_before_first_backup_objects|server_orphaned|orphan_bytes|storage_bytes|pg_archiver_archived_total|pg_archiver_last_archived_wal_in_storage|collector_up|target_info)[{ ]' \
  | grep -v 'status="other"\|kind="other"' | sed 's/^/  /'
echo
if [[ -t 0 && "${CI:-}" != "true" ]]; then
  echo "Press Ctrl-C to stop the exporter, PostgreSQL and SeaweedFS."
  wait "$exporter_pid"
fi
