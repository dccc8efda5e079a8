# shellcheck shell=bash
# `scenario.sh cloud DIR`: REAL barman-cloud layouts on the two other
# providers barman-cloud 3.19.1 supports, written by barman-cloud-wal-archive
# and barman-cloud-backup themselves to emulators on 127.0.0.1, built after
# `scenario.sh up DIR`:
#
#   azure  Azurite (scripts/azurite.sh) in DIR/azure, account devstoreaccount1,
#          container backups, destination
#          http://127.0.0.1:<port>/devstoreaccount1/backups/barman/azure
#          (barman's emulator URL form; barman authenticates with
#          AZURE_STORAGE_CONNECTION_STRING), servers az-main and az-old
#   gcs    fake-gcs-server (scripts/fakegcs.sh) in DIR/gcs, bucket backups,
#          destination gs://backups/barman/gcs (barman's google-cloud-storage
#          client finds the emulator through STORAGE_EMULATOR_HOST and uses
#          anonymous credentials; GOOGLE_CLOUD_PROJECT=test), servers gcs-main
#          and gcs-old
#
# Per provider, like the default scenario: <p>-old (cluster pg/c-<p>-old):
# uncompressed WAL, one uncompressed base backup, then STOPPED (an orphaned
# server); <p>-main (cluster pg/c-<p>-main): WAL (gzip on azure, snappy on
# gcs), gzip base backup on timeline 1, promote to timeline 2 (.history and
# the timeline-1 .partial archived), WAL, base backup on timeline 2, WAL;
# left RUNNING, fully archived, with the role `exporter`.
#
# The two providers are built concurrently, each logged to
# DIR/cloud-work/<provider>.log as well as stderr. The result is checked
# and DIR/cloud.json written by scripts/cloud_json.py; list the layouts with
# `scripts/cloudtool.py --cloud DIR/cloud.json {azure|gcs} list PREFIX`.
# Running `cloud` again first stops and removes what a previous run left
# (clusters pg/c-*, DIR/azure, DIR/gcs). On failure, what `cloud` started
# is stopped (BCE_KEEP_ON_FAILURE=1 keeps it); `scenario.sh down DIR` stops
# the emulators and clusters as well.
#
# Env knobs: BCE_TIMEOUT_CLOUD  overall limit in seconds (default 600)
#
# Sourced by scenario.sh (needs its functions); not meant to be run alone.
# shellcheck disable=SC2153,SC2154 # AZURE_*, GCS_* come from the emulators' env files

CLOUD_KINDS=(azure gcs)
declare -gA CLOUD_PID=() CLOUD_T0=()

# cloud_short KIND: the server/cluster name part of KIND (az | gcs).
cloud_short() { [[ "$1" == azure ]] && echo az || echo gcs; }

# cloud_use KIND: point the cluster helpers at the emulator of KIND (sets
# SCN_PROVIDER, SCN_CLOUD_ENV, SCN_DEST, SCN_BUCKET and the emulator's env).
cloud_use() {
  case "$1" in
    azure)
      SCN_PROVIDER=azure-blob-storage
      SCN_CLOUD_ENV="$SCN_DIR/azure/azure.env"
      # shellcheck disable=SC1090
      source "$SCN_CLOUD_ENV"
      # shellcheck disable=SC2034 # read by the helpers of scenario.sh
      SCN_BUCKET="$AZURE_CONTAINER"
      SCN_DEST="$AZURE_ENDPOINT/$AZURE_CONTAINER/barman/azure"
      ;;
    gcs)
      SCN_PROVIDER=google-cloud-storage
      SCN_CLOUD_ENV="$SCN_DIR/gcs/gcs.env"
      # shellcheck disable=SC1090
      source "$SCN_CLOUD_ENV"
      # shellcheck disable=SC2034
      SCN_BUCKET="$GCS_BUCKET"
      SCN_DEST="gs://$GCS_BUCKET/barman/gcs"
      ;;
    *) die "unknown cloud provider '$1'" ;;
  esac
}

# cloud_fact KIND KEY=VALUE...: record facts for cloud_json.py.
cloud_fact() {
  local f="$CW/$1.env"
  shift
  printf '%s\n' "$@" >>"$f"
}

# cloud_job KIND OLD_PORT MAIN_PORT: build both servers of KIND.
cloud_job() {
  local kind=$1 old_port=$2 main_port=$3 s comp
  s="$(cloud_short "$kind")"
  cloud_use "$kind"
  comp=gzip
  [[ "$kind" == gcs ]] && comp=snappy

  local old="c-$s-old" main="c-$s-main" ob m1 m2
  # The orphan: uncompressed WAL and base backup, then stopped.
  PG_PORT=$old_port WAL_COMPRESSION=none make_cluster "$old" "$s-old"
  generate_wal "$old" 2000
  switch_wal "$old" 2
  ob="$(BACKUP_COMPRESSION=none base_backup "$old")"
  switch_wal "$old" 1
  wait_archive_quiet "$old"
  stop_cluster "$old"
  log "cluster $old: stopped ($s-old leftovers stay in the $kind storage)"

  PG_PORT=$main_port WAL_COMPRESSION=$comp make_cluster "$main" "$s-main"
  generate_wal "$main" 5000
  switch_wal "$main" 3
  m1="$(base_backup "$main")"
  generate_wal "$main" 1000
  switch_wal "$main" 2
  promote "$main"
  generate_wal "$main" 2000
  switch_wal "$main" 2
  m2="$(base_backup "$main")"
  generate_wal "$main" 500
  switch_wal "$main" 2
  settle_archive "$main"
  cloud_fact "$kind" "kind=$kind" "provider=$SCN_PROVIDER" "destination_path=$SCN_DEST" \
    "servers=$s-main $s-old" "orphans=$s-old" "primary=$main" "clusters=$main $old" \
    "main_wal_compression=$comp" "old_wal_compression=none" "main_ids=$m1 $m2" "old_ids=$ob"
  log "provider $kind: $s-old DONE $ob (stopped); $s-main DONE $m1 (timeline 1), DONE $m2 (timeline 2), running"
}

# cloud_stop: stop the clusters and the emulators of `cloud` (idempotent).
cloud_stop() {
  local f name
  for f in "$SCN_DIR"/pg/c-*/barman-bg.pid; do
    [[ -f "$f" ]] && kill_bg_backup "$f"
  done
  for f in "$SCN_DIR"/pg/c-*/cluster.env; do
    [[ -f "$f" ]] || continue
    name="$(basename "$(dirname "$f")")"
    (
      cl_load "$name"
      if [[ -f "$CL_DATA/postmaster.pid" ]]; then
        log "stopping cluster $name"
        stop_cluster "$name" fast
      fi
    ) || true
  done
  cloud_stop_emulators
}

cloud_stop_emulators() {
  [[ -d "$SCN_DIR/azure" ]] && { "$BCE_SCRIPTS_DIR/azurite.sh" stop "$SCN_DIR/azure" || true; }
  [[ -d "$SCN_DIR/gcs" ]] && { "$BCE_SCRIPTS_DIR/fakegcs.sh" stop "$SCN_DIR/gcs" || true; }
  return 0
}

# cloud_reset: remove what a previous `cloud` run left behind.
cloud_reset() {
  rm -f "$SCN_DIR/cloud.json"
  if compgen -G "$SCN_DIR/pg/c-*" >/dev/null || [[ -d "$CW" || -d "$SCN_DIR/azure" || -d "$SCN_DIR/gcs" ]]; then
    log "removing the leftovers of a previous 'cloud' run"
    cloud_stop
    rm -rf "$SCN_DIR"/pg/c-* "$CW" "$SCN_DIR/azure" "$SCN_DIR/gcs"
    rm -f "$SCN_DIR"/.last-backup-end.{az,gcs}-{main,old}
  fi
}

# _cloud_launch KIND OLD_PORT MAIN_PORT: cloud_job in the background; exit
# status in $CW/KIND.rc, output in $CW/KIND.log + stderr.
_cloud_launch() {
  local k=$1
  (
    set +e
    (
      set -euo pipefail
      # shellcheck disable=SC2034 # read by log()
      BCE_LOG_TAG="cloud:$k"
      cloud_job "$@"
    )
    echo $? >"$CW/$k.rc"
  ) 2>&1 </dev/null | tee "$CW/$k.log" >&2 &
  CLOUD_PID[$k]=$!
  CLOUD_T0[$k]=$SECONDS
}

# cloud_collect KIND: what cloud_json.py checks and describes.
cloud_collect() {
  local kind=$1 s c servers clusters
  read -r -a servers <<<"$(sed -n 's/^servers=//p' "$CW/$kind.env")"
  read -r -a clusters <<<"$(sed -n 's/^clusters=//p' "$CW/$kind.env")"
  (
    cloud_use "$kind"
    bucket_keys "" >"$CW/keys-$kind.tsv"
    cloudtool list "" >"$CW/list-$kind.jsonl"
    for s in "${servers[@]}"; do
      backup_list_json "$s" >"$CW/backups-$s.json"
    done
    for c in "${clusters[@]}"; do
      (
        cl_load "$c"
        local running=false
        if [[ -f "$CL_DATA/postmaster.pid" ]] && as_pg "$BCE_PG_BIN/pg_ctl" -D "$CL_DATA" status >/dev/null 2>&1; then
          running=true
        fi
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$CL_NAME" "$CL_SERVER" "$CL_PORT" "$CL_SOCK" "$CL_DATA" \
          "$CL_EXPORTER_PASSWORD" "$running" "$CL_WAL_COMPRESSION"
      )
    done >"$CW/clusters-$kind.tsv"
  )
  local d="$SCN_DIR/$kind"
  if [[ "$kind" == azure ]]; then
    cloud_fact azure "dir=$d" "endpoint=$(sed -n 's/^AZURE_ENDPOINT=//p' "$d/azure.env")" \
      "account=$(sed -n 's/^AZURE_ACCOUNT=//p' "$d/azure.env")" "container=$(sed -n 's/^AZURE_CONTAINER=//p' "$d/azure.env")" \
      "key_file=$d/account.key" "connection_string_file=$d/connection-string" "sas_token_file=$d/sas-token" \
      "env_file=$d/azure.env" "pid=$(head -n1 "$d/azurite.pid")" "pid_file=$d/azurite.pid" "log=$d/azurite.log"
  else
    cloud_fact gcs "dir=$d" "endpoint=$(sed -n 's/^GCS_ENDPOINT=//p' "$d/gcs.env")" \
      "bucket=$(sed -n 's/^GCS_BUCKET=//p' "$d/gcs.env")" "project=$(sed -n 's/^GOOGLE_CLOUD_PROJECT=//p' "$d/gcs.env")" \
      "env_file=$d/gcs.env" "pid=$(head -n1 "$d/fakegcs.pid")" "pid_file=$d/fakegcs.pid" "log=$d/fakegcs.log"
  fi
}

scn_cloud() {
  local dir=$1
  need_tools
  need_cmd runuser setsid timeout tee curl
  scn_load "$dir"
  [[ -f "$SCN_DIR/scenario.json" ]] || die "$SCN_DIR has no complete scenario (run 'scenario.sh up $SCN_DIR' first)"
  [[ -x "$BCE_AZURITE_BIN" && -n "$(fake_gcs_bin)" ]] || die "Azurite or fake-gcs-server missing (run scripts/install-deps.sh)"
  CW="$SCN_DIR/cloud-work"
  local t0=$SECONDS limit=${BCE_TIMEOUT_CLOUD:-600}
  _SCN_CLOUD_OK=0
  trap '_scn_cloud_exit' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  cloud_reset
  mkdir -p "$CW"
  "$BCE_SCRIPTS_DIR/azurite.sh" start "$SCN_DIR/azure"
  "$BCE_SCRIPTS_DIR/fakegcs.sh" start "$SCN_DIR/gcs"

  local ports
  mapfile -t ports < <(free_ports 4)
  ((${#ports[@]} == 4)) || die "could not pick free ports"
  log "building the cloud layouts (${CLOUD_KINDS[*]}) in $SCN_DIR, concurrently"
  _cloud_launch azure "${ports[0]}" "${ports[1]}"
  _cloud_launch gcs "${ports[2]}" "${ports[3]}"
  local k rc failed=() pending=1
  while ((pending)); do
    pending=0
    for k in "${CLOUD_KINDS[@]}"; do
      kill -0 "${CLOUD_PID[$k]}" 2>/dev/null && pending=1
    done
    if ((pending && SECONDS - t0 > limit)); then
      log "cloud layouts not done after ${limit}s (BCE_TIMEOUT_CLOUD); stopping them"
      failed+=(timeout)
      cloud_stop
      break
    fi
    ((pending)) && sleep 0.3
  done
  for k in "${CLOUD_KINDS[@]}"; do
    wait "${CLOUD_PID[$k]}" 2>/dev/null || true
    rc="$(cat "$CW/$k.rc" 2>/dev/null || true)"
    if [[ "$rc" == 0 ]]; then
      log "provider $k done in $((SECONDS - CLOUD_T0[$k]))s"
    else
      failed+=("$k")
      log "provider $k FAILED (exit ${rc:-?}); its log: $CW/$k.log"
    fi
  done
  ((${#failed[@]} == 0)) || die "cloud layouts failed: ${failed[*]}"

  log "checking the cloud layouts"
  for k in "${CLOUD_KINDS[@]}"; do cloud_collect "$k"; done
  "$BCE_SYSTEM_PYTHON" "$BCE_SCRIPTS_DIR/cloud_json.py" "$CW" "$SCN_DIR/cloud.json" ||
    die "the cloud layouts are not what they should be (see above)"
  _SCN_CLOUD_OK=1
  log "cloud layouts built in $((SECONDS - t0))s: $SCN_DIR/cloud.json"
  echo "$SCN_DIR/cloud.json"
}

_scn_cloud_exit() {
  local rc=$?
  trap - INT TERM
  if [[ "${_SCN_CLOUD_OK:-0}" != 1 ]]; then
    if [[ "${BCE_KEEP_ON_FAILURE:-0}" == 1 ]]; then
      log "cloud failed; BCE_KEEP_ON_FAILURE=1, leaving its clusters and emulators running"
    else
      log "cloud failed; stopping what it started (the default scenario keeps running)"
      cloud_stop || true
      local k deadline=$((SECONDS + 60))
      for k in "${!CLOUD_PID[@]}"; do
        while kill -0 "${CLOUD_PID[$k]}" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
      done
      cloud_stop || true
    fi
    ((rc == 0)) && rc=1
  fi
  exit "$rc"
}
