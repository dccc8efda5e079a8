#!/usr/bin/env bash
# Build a REAL barman-cloud layout on loopback: SeaweedFS (S3) plus throwaway
# PostgreSQL 15 clusters that archive WAL with barman-cloud-wal-archive and
# take base backups with barman-cloud-backup.
#
# usage: scenario.sh up [DIR]     build the default scenario in DIR (new,
#                                 empty, or holding an older scenario, which
#                                 is stopped and wiped first; a fresh temp
#                                 dir when omitted), write DIR/scenario.json
#                                 and print DIR on stdout
#        scenario.sh extra DIR    after `up DIR`: build more layouts (FAILED
#                                 and STARTED backups, keep annotation,
#                                 bzip2/zstd/snappy WAL, 64 MiB segments)
#                                 under s3://backups/extra/..., write
#                                 DIR/extra.json (see scenario-extra.sh)
#        scenario.sh cloud DIR    after `up DIR`: the same kind of layout on
#                                 Azure Blob Storage (Azurite) and Google
#                                 Cloud Storage (fake-gcs-server), servers
#                                 az-main/az-old and gcs-main/gcs-old, write
#                                 DIR/cloud.json (see scenario-cloud.sh)
#        scenario.sh down DIR     stop the clusters, SeaweedFS and the
#                                 emulators started in DIR by up, extra and
#                                 cloud (idempotent; keeps the files)
#        scenario.sh purge DIR    down, then delete DIR
#
# The default scenario (scenario_default):
#   * SeaweedFS in DIR/s3, bucket `backups`, destination
#     s3://backups/barman/backup;
#   * cluster "old" (server pg-old): WAL, one base backup, then STOPPED;
#   * cluster "main" (server pg-main): WAL, base backup on timeline 1, promote
#     to timeline 2 (00000002.history and a real .partial of timeline 1 are
#     archived), WAL, base backup on timeline 2, WAL; left RUNNING with an
#     idle, fully archived WAL stream. Role `exporter` (pg_monitor, password
#     over TCP) for the exporter; `postgres` is trusted on the socket and on
#     127.0.0.1.
#
# Cluster helpers work on any of barman-cloud's providers: SCN_PROVIDER
# (aws-s3, azure-blob-storage, google-cloud-storage) selects the environment
# and options (cloud_env, cloud_args) and the listing tool (s3tool.py or
# cloudtool.py) they use; scenario-cloud.sh sets it per provider.
#
# Output in DIR: scenario.json (see write_scenario_json), barman.env (AWS_*
# variables + S3_ENDPOINT for running barman-cloud-* by hand), s3/s3.env,
# pg/<name>/{data,run,postgres.log,cluster.env,archive-wal.sh,barman-*.log}.
#
# Building other scenarios: `source scripts/scenario.sh` defines the functions
# without running anything (scn_init, start_seaweed, make_cluster, psql_c,
# generate_wal, switch_wal, base_backup, promote, wait_archive_quiet,
# settle_archive, stop_cluster, start_cluster, barman_cloud, bucket_keys,
# write_scenario_json, ...). See scenario_default for how they fit together.
#
# Env knobs:
#   SCN_DEST                destination (default s3://backups/barman/backup;
#                           the bucket is its netloc)
#   BCE_KEEP_ON_FAILURE=1   leave processes running when `up` fails
#   BCE_TIMEOUT_ARCHIVE     seconds to wait for the archiver (default 120)
#   BCE_TIMEOUT_BACKUP      seconds for one barman-cloud-backup (default 300)
# plus those of lib.sh (BCE_TOOLS_DIR, BCE_PG_BIN, ...).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Never let the caller's libpq or AWS settings leak into what we run.
unset PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGPASSWORD PGPASSFILE PGSERVICE PGSERVICEFILE \
  PGOPTIONS PGSSLMODE PGDATA PGAPPNAME PGTZ PGCONNECT_TIMEOUT
unset AWS_PROFILE AWS_SESSION_TOKEN AWS_CONFIG_FILE AWS_SHARED_CREDENTIALS_FILE

SCN_BUCKET="${SCN_BUCKET:-backups}"
SCN_DEST="${SCN_DEST:-s3://$SCN_BUCKET/barman/backup}"
# The bucket is always the destination's netloc.
SCN_BUCKET="${SCN_DEST#s3://}"
SCN_BUCKET="${SCN_BUCKET%%/*}"
BCE_TIMEOUT_ARCHIVE="${BCE_TIMEOUT_ARCHIVE:-120}"
BCE_TIMEOUT_BACKUP="${BCE_TIMEOUT_BACKUP:-300}"

# ------------------------------------------------------------- basics --

# scn_init DIR: create (or adopt an empty) scenario directory, make it
# traversable by the postgres user, and remember it in SCN_DIR.
scn_init() {
  local dir
  dir="$(abspath "$1")"
  if [[ -e "$dir" ]]; then
    [[ -d "$dir" ]] || die "$dir exists and is not a directory"
    if [[ -n "$(ls -A "$dir")" ]]; then
      [[ -f "$dir/.bce-scenario" ]] ||
        die "$dir is not empty and holds no previous scenario (.bce-scenario); use a new or empty directory"
      log "$dir holds a previous scenario: stopping it and starting from scratch"
      scn_down "$dir"
      find "$dir" -mindepth 1 -delete
    fi
  fi
  mkdir -p "$dir"
  chmod 755 "$dir"
  SCN_DIR="$dir"
  echo "barman-cloud-exporter scenario, created $(date -Is)" >"$SCN_DIR/.bce-scenario"
  mkdir -p "$SCN_DIR/pg"
  chmod 755 "$SCN_DIR/pg"
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u "$BCE_PG_OS_USER" -- test -x "$SCN_DIR/pg" ||
      die "user $BCE_PG_OS_USER cannot reach $SCN_DIR (a parent directory is not world-traversable); use a directory under /tmp or /var/tmp"
  fi
}

# scn_load DIR: set SCN_DIR and load the S3 settings of an existing scenario.
scn_load() {
  SCN_DIR="$(abspath "$1")"
  [[ -f "$SCN_DIR/.bce-scenario" ]] || die "$SCN_DIR is not a scenario directory (no .bce-scenario)"
  if [[ -f "$SCN_DIR/s3/s3.env" ]]; then
    # shellcheck disable=SC1091
    source "$SCN_DIR/s3/s3.env"
  fi
}

# as_pg CMD...: run CMD as the PostgreSQL OS user with a clean environment.
# Extra VAR=value words may precede CMD (they are passed to env).
as_pg() {
  local envv=(PATH="$BCE_PG_BIN:/usr/local/bin:/usr/bin:/bin" LANG=C.UTF-8 LC_ALL=C.UTF-8 PYTHONDONTWRITEBYTECODE=1)
  [[ -n "${TZ:-}" ]] && envv+=(TZ="$TZ")
  if [[ $(id -u) -eq 0 ]]; then
    envv+=(HOME="$(getent passwd "$BCE_PG_OS_USER" | cut -d: -f6)" USER="$BCE_PG_OS_USER")
    runuser -u "$BCE_PG_OS_USER" -- env -i "${envv[@]}" "$@" </dev/null
  else
    env -i "${envv[@]}" HOME="$HOME" USER="$(id -un)" "$@" </dev/null
  fi
}

# pg_owned PATH...: hand files/dirs to the PostgreSQL OS user (when root).
pg_owned() {
  if [[ $(id -u) -eq 0 ]]; then
    chown "$BCE_PG_OS_USER:" "$@"
  fi
}

# aws_env: the environment barman-cloud-* needs, as VAR=value words.
aws_env() {
  printf '%s\n' "AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY" "AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY" "AWS_DEFAULT_REGION=$S3_REGION"
}

# The storage the cluster helpers talk to. SCN_PROVIDER is barman's
# --cloud-provider: aws-s3 (SeaweedFS, S3_* from s3/s3.env; the default),
# azure-blob-storage (Azurite: AZURE_STORAGE_CONNECTION_STRING) or
# google-cloud-storage (fake-gcs-server: STORAGE_EMULATOR_HOST,
# GOOGLE_CLOUD_PROJECT); for the last two SCN_CLOUD_ENV names the env file
# of the emulator (azure.env / gcs.env) that cloudtool.py reads.
SCN_PROVIDER="${SCN_PROVIDER:-aws-s3}"

# cloud_env: the environment barman-cloud-* needs for SCN_PROVIDER, as
# VAR=value lines (no value holds whitespace).
cloud_env() {
  case "$SCN_PROVIDER" in
    aws-s3) aws_env ;;
    azure-blob-storage) printf '%s\n' "AZURE_STORAGE_CONNECTION_STRING=$AZURE_STORAGE_CONNECTION_STRING" ;;
    google-cloud-storage) printf '%s\n' "STORAGE_EMULATOR_HOST=$STORAGE_EMULATOR_HOST" "GOOGLE_CLOUD_PROJECT=$GOOGLE_CLOUD_PROJECT" ;;
    *) die "unknown SCN_PROVIDER '$SCN_PROVIDER'" ;;
  esac
}

# cloud_args: barman-cloud-* options for SCN_PROVIDER, one a line.
cloud_args() {
  case "$SCN_PROVIDER" in
    aws-s3) printf '%s\n' --endpoint-url "$S3_ENDPOINT" --cloud-provider aws-s3 ;;
    azure-blob-storage | google-cloud-storage) printf '%s\n' --cloud-provider "$SCN_PROVIDER" ;;
    *) die "unknown SCN_PROVIDER '$SCN_PROVIDER'" ;;
  esac
}

# cloud_kind: cloudtool.py's name of SCN_PROVIDER (azure | gcs).
cloud_kind() { [[ "$SCN_PROVIDER" == azure-blob-storage ]] && echo azure || echo gcs; }

# barman_cloud TOOL ARGS...: run $BCE_VENV_BIN/barman-cloud-TOOL as root with
# our endpoint and credentials, e.g.
#   barman_cloud backup-list --format json "$SCN_DEST" pg-main
barman_cloud() {
  local tool=$1
  shift
  local envv cargs
  mapfile -t envv < <(cloud_env)
  mapfile -t cargs < <(cloud_args)
  env "${envv[@]}" timeout 120 "$BCE_VENV_BIN/barman-cloud-$tool" "${cargs[@]}" "$@"
}

# s3tool ARGS...: scripts/s3tool.py with this scenario's credentials.
s3tool() {
  timeout 180 "$BCE_VENV_BIN/python" "$BCE_SCRIPTS_DIR/s3tool.py" --env "$SCN_DIR/s3/s3.env" "$@"
}

# cloudtool ARGS...: scripts/cloudtool.py on the emulator of SCN_PROVIDER.
cloudtool() {
  timeout 180 "$BCE_VENV_BIN/python" "$BCE_SCRIPTS_DIR/cloudtool.py" --env "$SCN_CLOUD_ENV" "$(cloud_kind)" "$@"
}

# bucket_keys [PREFIX]: "<size>\t<key>" for every object of the bucket
# (container), sorted by key.
bucket_keys() {
  if [[ "$SCN_PROVIDER" == aws-s3 ]]; then
    s3tool ls "$SCN_BUCKET" "${1:-}"
  else
    cloudtool ls "${1:-}"
  fi
}

# store_cat KEY: an object's body on stdout.
store_cat() {
  if [[ "$SCN_PROVIDER" == aws-s3 ]]; then
    s3tool cat "$SCN_BUCKET" "$1"
  else
    cloudtool cat "$1"
  fi
}

# store_wait_keys TIMEOUT REGEX...: wait until every REGEX matches a key.
store_wait_keys() {
  if [[ "$SCN_PROVIDER" == aws-s3 ]]; then
    s3tool wait-keys "$SCN_BUCKET" "$@"
  else
    cloudtool wait-keys "$@"
  fi
}

# dest_root [DEST]: the key prefix of barman's destination (no trailing
# slash; empty for the bucket's root): the path of s3://bucket/path and
# gs://bucket/path, the part after /<account>/<container>/ of an emulated
# Azure URL http://host:port/<account>/<container>/path, and the part after
# /<container>/ of https://<account>.blob.core.windows.net/<container>/path.
dest_root() {
  local d=${1:-$SCN_DEST} rest account container path
  rest="${d#*://}"
  [[ "$rest" == */* ]] || return 0
  rest="${rest#*/}"
  case "$d" in
    http://* | https://*)
      if [[ "$d" == *.blob.core.windows.net/* ]]; then
        IFS=/ read -r container path <<<"$rest"
      else
        # shellcheck disable=SC2034 # account is only skipped
        IFS=/ read -r account container path <<<"$rest"
      fi
      echo "${path%/}"
      ;;
    *) echo "${rest%/}" ;;
  esac
}

# server_prefix SERVER: the key prefix of SERVER (barman's server root + "/").
server_prefix() {
  local path
  path="$(dest_root "$SCN_DEST")"
  echo "${path:+$path/}$1/"
}

# ---------------------------------------------------------------- S3 --

# start_seaweed: start SeaweedFS in $SCN_DIR/s3, create the bucket, write
# $SCN_DIR/barman.env.
start_seaweed() {
  "$BCE_SCRIPTS_DIR/seaweedfs.sh" start "$SCN_DIR/s3"
  # shellcheck disable=SC1091
  source "$SCN_DIR/s3/s3.env"
  local i
  for i in 1 2 3 4 5 6 7 8 9 10; do
    s3tool create-bucket "$SCN_BUCKET" 2>"$SCN_DIR/s3/create-bucket.err" && break
    ((i == 10)) && {
      cat "$SCN_DIR/s3/create-bucket.err" >&2
      die "could not create bucket $SCN_BUCKET"
    }
    sleep 1
  done
  rm -f "$SCN_DIR/s3/create-bucket.err"
  {
    aws_env
    echo "S3_ENDPOINT=$S3_ENDPOINT"
    echo "BARMAN_DESTINATION=$SCN_DEST"
  } >"$SCN_DIR/barman.env"
  chmod 644 "$SCN_DIR/barman.env"
  log "bucket $SCN_BUCKET ready at $S3_ENDPOINT"
}

# Clusters, WAL and backups (make_cluster ... promote).
# shellcheck source=scenario-clusters.sh
source "$BCE_SCRIPTS_DIR/scenario-clusters.sh"

# ---------------------------------------------------------- checks --

# backup_list_json SERVER: barman-cloud-backup-list --format json.
backup_list_json() { barman_cloud backup-list --format json "$SCN_DEST" "$1"; }

# verify_default: assert the default scenario produced what it should.
verify_default() {
  local keys main old
  keys="$(bucket_keys | cut -f2)"
  main="$(server_prefix pg-main)"
  old="$(server_prefix pg-old)"
  local re missing=()
  for re in \
    "^${main}wals/00000002\\.history\\.gz\$" \
    "^${main}wals/0000000100000000/000000010000000000000[0-9A-F]{3}\\.partial\\.gz\$" \
    "^${main}wals/0000000100000000/000000010000000000000[0-9A-F]{3}\\.[0-9A-F]{8}\\.backup\\.gz\$" \
    "^${main}wals/0000000200000000/000000020000000000000[0-9A-F]{3}\\.[0-9A-F]{8}\\.backup\\.gz\$" \
    "^${main}wals/0000000100000000/000000010000000000000[0-9A-F]{3}\\.gz\$" \
    "^${main}wals/0000000200000000/000000020000000000000[0-9A-F]{3}\\.gz\$" \
    "^${main}base/[0-9]{8}T[0-9]{6}/data\\.tar\\.gz\$" \
    "^${old}base/[0-9]{8}T[0-9]{6}/backup\\.info\$" \
    "^${old}wals/0000000100000000/000000010000000000000[0-9A-F]{3}\\.gz\$"; do
    grep -Eq "$re" <<<"$keys" || missing+=("$re")
  done
  ((${#missing[@]} == 0)) || die "bucket is missing objects matching: ${missing[*]}"
  local summary
  summary="$(backup_list_json pg-main | "$BCE_SYSTEM_PYTHON" -c 'import json,sys
b = json.load(sys.stdin)["backups_list"]
print(" ".join("%s:%s:%s" % (x["status"], x["timeline"], x["backup_id"]) for x in b))')"
  [[ "$summary" =~ ^DONE:1:[0-9T]+\ DONE:2:[0-9T]+$ ]] || die "pg-main backups are not [DONE on TL1, DONE on TL2]: $summary"
  summary="$(backup_list_json pg-old | "$BCE_SYSTEM_PYTHON" -c 'import json,sys
b = json.load(sys.stdin)["backups_list"]
print(" ".join("%s:%s" % (x["status"], x["timeline"]) for x in b))')"
  [[ "$summary" == "DONE:1" ]] || die "pg-old backups are not [DONE on TL1]: $summary"
  log "verified: bucket layout and barman-cloud-backup-list output as expected"
}

# ---------------------------------------------------------- output --

# write_scenario_json SERVERS ORPHANS PRIMARY_CLUSTER: write
# $SCN_DIR/scenario.json. SERVERS/ORPHANS are space-separated server names,
# PRIMARY_CLUSTER the cluster described under "postgres".
write_scenario_json() {
  local servers=$1 orphans=$2 primary=$3 c
  for c in "$SCN_DIR"/pg/*/cluster.env; do
    [[ -f "$c" ]] || continue
    (
      # shellcheck disable=SC1090
      source "$c"
      local running=false
      if [[ -f "$CL_DATA/postmaster.pid" ]] && as_pg "$BCE_PG_BIN/pg_ctl" -D "$CL_DATA" status >/dev/null 2>&1; then
        running=true
      fi
      printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$CL_NAME" "$CL_SERVER" "$CL_PORT" "$CL_SOCK" "$CL_DATA" "$CL_EXPORTER_PASSWORD" "$running" "$CL_WAL_COMPRESSION"
    )
  done >"$SCN_DIR/.clusters.tsv"
  local s
  for s in $servers $orphans; do
    backup_list_json "$s" >"$SCN_DIR/.backups-$s.json"
  done
  SCN_DIR="$SCN_DIR" SCN_BUCKET="$SCN_BUCKET" SCN_DEST="$SCN_DEST" SERVERS="$servers" ORPHANS="$orphans" \
    PRIMARY="$primary" BARMAN_BIN="$BCE_VENV_BIN" SCRIPTS_DIR="$BCE_SCRIPTS_DIR" PG_BIN="$BCE_PG_BIN" \
    S3_ENDPOINT="$S3_ENDPOINT" S3_ACCESS_KEY="$S3_ACCESS_KEY" S3_SECRET_KEY="$S3_SECRET_KEY" S3_REGION="$S3_REGION" \
    S3_RO_ACCESS_KEY="$S3_RO_ACCESS_KEY" S3_RO_SECRET_KEY="$S3_RO_SECRET_KEY" \
    "$BCE_SYSTEM_PYTHON" - <<'PY'
import json, os
e = os.environ
d = e["SCN_DIR"]
clusters = {}
for line in open(os.path.join(d, ".clusters.tsv"), encoding="utf-8"):
    name, server, port, sock, data, pw, running, walc = line.rstrip("\n").split("\t")
    port = int(port)
    clusters[name] = {
        "server": server,
        "port": port,
        "socket_dir": sock,
        "data_dir": data,
        "running": running == "true",
        "wal_compression": walc,
        "url": "postgresql://exporter:%s@127.0.0.1:%d/postgres" % (pw, port),
        "superuser_url": "postgresql://postgres@127.0.0.1:%d/postgres" % port,
        "superuser_socket_url": "postgresql://postgres@/postgres?host=%s&port=%d" % (sock, port),
        "exporter_user": "exporter",
        "exporter_password": pw,
    }
backups = {}
for s in e["SERVERS"].split() + e["ORPHANS"].split():
    with open(os.path.join(d, ".backups-%s.json" % s), encoding="utf-8") as f:
        lst = json.load(f)["backups_list"]
    backups[s] = [
        {k: b.get(k) for k in ("backup_id", "status", "timeline", "begin_wal", "end_wal", "begin_time_iso", "end_time_iso", "systemid")}
        for b in lst
    ]
p = dict(clusters[e["PRIMARY"]])
p["cluster"] = e["PRIMARY"]
out = {
    "dir": d,
    "bucket": e["SCN_BUCKET"],
    "destination_path": e["SCN_DEST"],
    "s3": {
        "endpoint": e["S3_ENDPOINT"],
        "access_key": e["S3_ACCESS_KEY"],
        "secret_key": e["S3_SECRET_KEY"],
        "region": e["S3_REGION"],
        "ro_access_key": e["S3_RO_ACCESS_KEY"],
        "ro_secret_key": e["S3_RO_SECRET_KEY"],
        "dir": os.path.join(d, "s3"),
        "env_file": os.path.join(d, "s3", "s3.env"),
    },
    "servers": e["SERVERS"].split(),
    "orphan_servers": e["ORPHANS"].split(),
    "postgres": p,
    "clusters": clusters,
    "backups": backups,
    "barman_bin": e["BARMAN_BIN"],
    "barman_env_file": os.path.join(d, "barman.env"),
    "scripts_dir": e["SCRIPTS_DIR"],
    "pg_bin": e["PG_BIN"],
}
tmp = os.path.join(d, "scenario.json.tmp")
with open(tmp, "w", encoding="utf-8") as f:
    json.dump(out, f, indent=2)
    f.write("\n")
os.replace(tmp, os.path.join(d, "scenario.json"))
PY
  rm -f "$SCN_DIR/.clusters.tsv" "$SCN_DIR"/.backups-*.json
  log "wrote $SCN_DIR/scenario.json"
}

# ------------------------------------------------------- scenarios --

# scenario_default: the layout described at the top of this file.
scenario_default() {
  start_seaweed

  # An old (renamed/decommissioned) cluster whose leftovers stay in the bucket.
  make_cluster old pg-old
  generate_wal old 2000
  switch_wal old 2
  base_backup old >/dev/null
  switch_wal old 1
  wait_archive_quiet old
  stop_cluster old
  log "cluster old: stopped (pg-old leftovers stay in the bucket)"

  # The live cluster: backup on timeline 1, failover to timeline 2, backup.
  make_cluster main pg-main
  generate_wal main 5000
  switch_wal main 3
  base_backup main >/dev/null
  generate_wal main 1000
  switch_wal main 2
  promote main
  generate_wal main 2000
  switch_wal main 2
  base_backup main >/dev/null
  generate_wal main 500
  switch_wal main 2
  settle_archive main

  verify_default
  write_scenario_json "pg-main" "pg-old" main
}

# scn_down DIR: stop every cluster and the SeaweedFS of the scenario.
scn_down() {
  local dir
  dir="$(abspath "$1")"
  if [[ ! -d "$dir" ]]; then
    log "$dir does not exist, nothing to stop"
    return 0
  fi
  SCN_DIR="$dir"
  local c name
  for c in "$dir"/pg/*/barman-bg.pid; do
    [[ -f "$c" ]] || continue
    kill_bg_backup "$c"
  done
  for c in "$dir"/pg/*/cluster.env; do
    [[ -f "$c" ]] || continue
    name="$(basename "$(dirname "$c")")"
    cl_load "$name"
    if [[ -f "$CL_DATA/postmaster.pid" ]]; then
      log "stopping cluster $name"
      stop_cluster "$name" fast
    fi
  done
  if [[ -d "$dir/s3" ]]; then
    "$BCE_SCRIPTS_DIR/seaweedfs.sh" stop "$dir/s3"
  fi
  # The emulators of `cloud`.
  cloud_stop_emulators
  log "scenario in $dir is down"
}

scn_up() {
  local dir=${1:-}
  need_tools
  need_cmd curl jq runuser setsid timeout
  if [[ -z "$dir" ]]; then
    dir="$(mktemp -d /tmp/bce-scenario.XXXXXX)"
  fi
  local t0=$SECONDS
  scn_init "$dir"
  _SCN_UP_OK=0
  trap '_scn_up_exit' EXIT
  log "building the default scenario in $SCN_DIR"
  scenario_default
  _SCN_UP_OK=1
  log "scenario up in $((SECONDS - t0))s: $SCN_DIR/scenario.json"
  echo "$SCN_DIR"
}

_scn_up_exit() {
  local rc=$?
  if [[ "${_SCN_UP_OK:-0}" != 1 ]]; then
    # What the S3 server said (an InternalError from PutObject is explained
    # only in its log), and how much disk was left.
    if [[ -f "$SCN_DIR/s3/weed.log" ]]; then
      log "---- SeaweedFS errors and warnings (last 40) in $SCN_DIR/s3/weed.log ----"
      grep -E '^[EW][0-9]{4} ' "$SCN_DIR/s3/weed.log" | tail -n 40 >&2 || true
    fi
    df -h "$SCN_DIR" >&2 || true
    if [[ "${BCE_KEEP_ON_FAILURE:-0}" == 1 ]]; then
      log "scenario failed; BCE_KEEP_ON_FAILURE=1, leaving everything running in $SCN_DIR"
    else
      log "scenario failed; stopping what was started (set BCE_KEEP_ON_FAILURE=1 to keep it)"
      scn_down "$SCN_DIR" || true
    fi
    ((rc == 0)) && rc=1
  fi
  exit "$rc"
}

scn_main() {
  case "${1:-}" in
    up)
      (($# <= 2)) || die "usage: scenario.sh up [DIR]"
      scn_up "${2:-}"
      ;;
    extra)
      (($# == 2)) || die "usage: scenario.sh extra DIR"
      scn_extra "$2"
      ;;
    cloud)
      (($# == 2)) || die "usage: scenario.sh cloud DIR"
      scn_cloud "$2"
      ;;
    down)
      (($# == 2)) || die "usage: scenario.sh down DIR"
      scn_down "$2"
      ;;
    purge)
      (($# == 2)) || die "usage: scenario.sh purge DIR"
      local d
      d="$(abspath "$2")"
      [[ -d "$d" ]] || return 0
      [[ -f "$d/.bce-scenario" ]] || die "$d has no .bce-scenario marker; refusing to delete it"
      scn_down "$d"
      rm -rf -- "$d"
      log "deleted $d"
      ;;
    *)
      sed -n '2,24p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
      exit 2
      ;;
  esac
}

# The `extra` layouts (scn_extra and its helpers).
# shellcheck source=scenario-extra.sh
source "$BCE_SCRIPTS_DIR/scenario-extra.sh"
# The `cloud` layouts (scn_cloud and its helpers).
# shellcheck source=scenario-cloud.sh
source "$BCE_SCRIPTS_DIR/scenario-cloud.sh"

# Run only when executed, not when sourced for its functions.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  scn_main "$@"
fi
