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
#        scenario.sh down DIR     stop the clusters and SeaweedFS started in
#                                 DIR by up and extra (idempotent; keeps
#                                 the files)
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

# barman_cloud TOOL ARGS...: run $BCE_VENV_BIN/barman-cloud-TOOL as root with
# our endpoint and credentials, e.g.
#   barman_cloud backup-list --format json "$SCN_DEST" pg-main
barman_cloud() {
  local tool=$1
  shift
  local envv
  mapfile -t envv < <(aws_env)
  env "${envv[@]}" timeout 120 "$BCE_VENV_BIN/barman-cloud-$tool" --endpoint-url "$S3_ENDPOINT" --cloud-provider aws-s3 "$@"
}

# s3tool ARGS...: scripts/s3tool.py with this scenario's credentials.
s3tool() {
  timeout 180 "$BCE_VENV_BIN/python" "$BCE_SCRIPTS_DIR/s3tool.py" --env "$SCN_DIR/s3/s3.env" "$@"
}

# bucket_keys [PREFIX]: "<size>\t<key>" for every object of the bucket.
bucket_keys() { s3tool ls "$SCN_BUCKET" "${1:-}"; }

# server_prefix SERVER: the key prefix of SERVER (barman's server root + "/").
server_prefix() {
  local path="${SCN_DEST#s3://*/}"
  [[ "$path" == "$SCN_DEST" ]] && path=""
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

# ---------------------------------------------------------- clusters --

# cl_load NAME: load pg/NAME/cluster.env into CL_* variables.
cl_load() {
  local f="$SCN_DIR/pg/$1/cluster.env"
  [[ -f "$f" ]] || die "no cluster '$1' in $SCN_DIR"
  # shellcheck disable=SC1090
  source "$f"
}

# wal_compression_flag NAME: barman-cloud-wal-archive flag for a compression.
wal_compression_flag() {
  case "$1" in
    gzip) echo -z ;;
    bzip2) echo -j ;;
    xz) echo --xz ;;
    snappy) echo --snappy ;;
    zstd) echo --zstd ;;
    lz4) echo --lz4 ;;
    none | "") echo "" ;;
    *) die "unknown WAL compression '$1' (gzip|bzip2|xz|snappy|zstd|lz4|none)" ;;
  esac
}

# make_cluster NAME SERVER [INITDB_ARGS...]: initdb a PostgreSQL 15 cluster
# in pg/NAME as the postgres OS user, archiving to $SCN_DEST as SERVER, start
# it and create the `exporter` role. Knobs (environment, per call):
#   WAL_COMPRESSION  gzip (default)|bzip2|xz|snappy|zstd|lz4|none
#   ARCHIVE_EXTRA_ARGS  extra words for barman-cloud-wal-archive
#   PG_EXTRA_CONF    extra postgresql.conf lines
#   PG_PORT          port to listen on (default: a free one; pass pre-picked
#                    distinct ports when creating clusters concurrently)
#   PG_START_WALFILE run `pg_resetwal -l PG_START_WALFILE` right after initdb,
#                    so the WAL stream starts at that segment (e.g. near a
#                    log boundary) instead of segment 1
# e.g. WAL_COMPRESSION=zstd make_cluster big pg-big --wal-segsize=64
# archive_command runs pg/NAME/archive-wal.sh; while pg/NAME/archive.fail
# exists it fails on purpose (to simulate a broken archiver).
make_cluster() {
  local name=$1 server=$2
  shift 2
  local cdir="$SCN_DIR/pg/$name"
  [[ ! -e "$cdir" ]] || die "cluster $name already exists in $SCN_DIR"
  local data="$cdir/data" sock="$cdir/run" logf="$cdir/postgres.log" wrapper="$cdir/archive-wal.sh"
  ((${#sock} < 95)) || die "socket directory path too long for a unix socket: $sock (use a shorter DIR)"
  local port password compflag
  port="${PG_PORT:-$(free_port)}"
  password="$(random_secret 24)"
  compflag="$(wal_compression_flag "${WAL_COMPRESSION:-gzip}")"
  mkdir -p "$cdir" "$sock"
  chmod 755 "$cdir" "$sock"
  pg_owned "$cdir" "$sock"
  log "cluster $name ($server): initdb, port $port"
  as_pg timeout 120 "$BCE_PG_BIN/initdb" -D "$data" -U postgres -A trust -E UTF8 --locale=C "$@" >"$cdir/initdb.log" 2>&1 || {
    tail_log "$cdir/initdb.log"
    die "initdb failed for cluster $name"
  }
  if [[ -n "${PG_START_WALFILE:-}" ]]; then
    [[ "$PG_START_WALFILE" =~ ^[0-9A-F]{24}$ ]] || die "PG_START_WALFILE must be a WAL file name (24 hex digits), not '$PG_START_WALFILE'"
    as_pg timeout 60 "$BCE_PG_BIN/pg_resetwal" -l "$PG_START_WALFILE" -D "$data" >>"$cdir/initdb.log" 2>&1 || {
      tail_log "$cdir/initdb.log"
      die "pg_resetwal -l $PG_START_WALFILE failed for cluster $name"
    }
  fi

  cat >"$wrapper" <<EOF
#!/bin/sh
# archive_command of cluster $name (server $server); written by scenario.sh.
# Throwaway credentials for the loopback SeaweedFS of this scenario.
if [ -e '$cdir/archive.fail' ]; then
  echo "archive-wal.sh: failing on purpose ($cdir/archive.fail exists)" >&2
  exit 1
fi
export AWS_ACCESS_KEY_ID='$S3_ACCESS_KEY'
export AWS_SECRET_ACCESS_KEY='$S3_SECRET_KEY'
export AWS_DEFAULT_REGION='$S3_REGION'
export PYTHONDONTWRITEBYTECODE=1
exec '$BCE_VENV_BIN/barman-cloud-wal-archive' --endpoint-url '$S3_ENDPOINT' --cloud-provider aws-s3 $compflag ${ARCHIVE_EXTRA_ARGS:-} '$SCN_DEST' '$server' "\$1"
EOF
  chmod 700 "$wrapper"
  pg_owned "$wrapper"

  cat >>"$data/postgresql.conf" <<EOF

# ---- scenario.sh ($name / $server) ----
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$sock'
max_connections = 40
shared_buffers = 32MB
wal_level = replica
archive_mode = on
archive_command = '"$wrapper" "%p"'
# Keep the archive quiet once the scenario is built: no forced segment
# switches, no timed checkpoints, no autovacuum.
archive_timeout = 0
checkpoint_timeout = 1d
max_wal_size = 1GB
autovacuum = off
# Throwaway cluster: durability is not needed, speed is.
fsync = off
synchronous_commit = off
max_wal_senders = 4
hot_standby = on
password_encryption = 'scram-sha-256'
logging_collector = off
log_line_prefix = '%m [%p] %q%u@%d '
log_checkpoints = on
${PG_EXTRA_CONF:-}
EOF
  cat >"$data/pg_hba.conf" <<EOF
# scenario.sh: superuser trusted locally, exporter with a password over TCP.
local   all          all                      trust
local   replication  all                      trust
host    all          postgres  127.0.0.1/32   trust
host    replication  postgres  127.0.0.1/32   trust
host    all          all       127.0.0.1/32   scram-sha-256
EOF
  pg_owned "$data/postgresql.conf" "$data/pg_hba.conf"

  cat >"$cdir/cluster.env" <<EOF
CL_NAME=$name
CL_SERVER=$server
CL_PORT=$port
CL_SOCK=$sock
CL_DATA=$data
CL_LOG=$logf
CL_DIR=$cdir
CL_EXPORTER_PASSWORD=$password
CL_WAL_COMPRESSION=${WAL_COMPRESSION:-gzip}
CL_DEST=$SCN_DEST
EOF
  start_cluster "$name"
  psql_c "$name" "CREATE ROLE exporter LOGIN NOSUPERUSER PASSWORD '$password' IN ROLE pg_monitor" >/dev/null
  log "cluster $name running on 127.0.0.1:$port (socket $sock)"
}

# start_cluster NAME: pg_ctl start (waits until it accepts connections).
start_cluster() {
  cl_load "$1"
  as_pg "$BCE_PG_BIN/pg_ctl" -D "$CL_DATA" -l "$CL_LOG" -s -w -t 60 start >&2 || {
    tail_log "$CL_LOG"
    die "cluster $1 did not start (see $CL_LOG)"
  }
}

# stop_cluster NAME [MODE]: pg_ctl stop (fast by default); no-op if stopped.
stop_cluster() {
  cl_load "$1"
  local mode=${2:-fast}
  if [[ ! -f "$CL_DATA/postmaster.pid" ]]; then
    return 0
  fi
  if ! as_pg "$BCE_PG_BIN/pg_ctl" -D "$CL_DATA" -m "$mode" -s -w -t 60 stop >&2; then
    warn "cluster $1 did not stop in $mode mode, trying immediate"
    as_pg "$BCE_PG_BIN/pg_ctl" -D "$CL_DATA" -m immediate -s -w -t 30 stop >&2 || true
  fi
}

# psql_c NAME SQL...: run SQL (each argument one -c, i.e. one transaction)
# as superuser over the unix socket; unaligned tuples-only output.
psql_c() {
  cl_load "$1"
  shift
  local args=() s
  for s in "$@"; do args+=(-c "$s"); done
  PGCONNECT_TIMEOUT=10 PGOPTIONS="-c client_min_messages=warning" timeout 120 "$BCE_PG_BIN/psql" -X -w -q -At -v ON_ERROR_STOP=1 \
    -h "$CL_SOCK" -p "$CL_PORT" -U postgres -d postgres "${args[@]}"
}

# generate_wal NAME [ROWS]: write some WAL (a table plus ROWS rows).
generate_wal() {
  psql_c "$1" "CREATE TABLE IF NOT EXISTS bce_data (id bigserial PRIMARY KEY, created timestamptz NOT NULL DEFAULT now(), payload text)" \
    "INSERT INTO bce_data (payload) SELECT md5(i::text) FROM generate_series(1, ${2:-5000}) AS i" >/dev/null
}

# switch_wal NAME [N]: N times, write a row and complete the current segment
# (pg_switch_wal is a no-op when nothing was written since the last switch).
switch_wal() {
  local i sql=()
  for ((i = 0; i < ${2:-1}; i++)); do
    sql+=("INSERT INTO bce_data (payload) VALUES ('switch')" "SELECT pg_switch_wal()")
  done
  psql_c "$1" "CREATE TABLE IF NOT EXISTS bce_data (id bigserial PRIMARY KEY, created timestamptz NOT NULL DEFAULT now(), payload text)" \
    "${sql[@]}" >/dev/null
}

# current_timeline NAME: timeline of the current WAL insert position.
current_timeline() {
  local f
  f="$(psql_c "$1" "SELECT pg_walfile_name(pg_current_wal_lsn())")"
  echo $((16#${f:0:8}))
}

# archive_state NAME: "ready|last_archived_wal|failed_count|last_failed_wal|predecessor"
# where predecessor is the segment just before the one holding the current
# insert position (i.e. the newest segment that can be complete).
archive_state() {
  psql_c "$1" "SELECT (SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready')
      || '|' || coalesce(a.last_archived_wal, '') || '|' || a.failed_count || '|' || coalesce(a.last_failed_wal, '')
      || '|' || pg_walfile_name(l - ((l - '0/0'::pg_lsn) % s.seg))
    FROM pg_stat_archiver a,
         (SELECT pg_current_wal_lsn() AS l) c,
         (SELECT setting::numeric AS seg FROM pg_settings WHERE name = 'wal_segment_size') s"
}

# wait_archive_quiet NAME [TIMEOUT] [strict]: wait until no .ready file is
# left in pg_wal/archive_status (everything archived). With "strict", also
# wait until pg_stat_archiver.last_archived_wal is the segment just before
# the current one, or that segment's .backup label (use it right after
# switch_wal or base_backup).
wait_archive_quiet() {
  local name=$1 timeout=${2:-$BCE_TIMEOUT_ARCHIVE} strict=${3:-}
  local deadline=$((SECONDS + timeout)) st ready last failed lastfailed pred
  while :; do
    st="$(archive_state "$name")"
    IFS='|' read -r ready last failed lastfailed pred <<<"$st"
    # ${last:0:24}: after a base backup the archiver ends with the
    # <segment>.<offset>.backup label file, which sorts after <segment>.
    if [[ "$ready" == 0 ]] && { [[ -z "$strict" ]] || [[ "${last:0:24}" == "$pred" ]]; }; then
      log "cluster $name: archive quiet (last_archived_wal=$last, failed_count=$failed)"
      return 0
    fi
    if ((SECONDS >= deadline)); then
      cl_load "$name"
      tail_log "$CL_LOG" 30
      die "cluster $name: archiver not quiet after ${timeout}s (pending .ready=$ready last_archived_wal=$last expected=$pred failed_count=$failed last_failed_wal=$lastfailed)"
    fi
    sleep 0.3
  done
}

# settle_archive NAME: leave cluster NAME idle with a fully archived WAL
# stream. Call it right after switch_wal. The CHECKPOINT puts the insert
# position inside the new segment, so pg_walfile_name(pg_current_wal_lsn())
# is reliably the segment after pg_stat_archiver.last_archived_wal (right
# after a switch the position sits exactly on the boundary, where
# pg_walfile_name returns the previous segment, until the bgwriter logs a
# running-xacts record up to 15 s later). Only a few more bytes of WAL
# (running-xacts) may follow; no segment is completed.
settle_archive() {
  psql_c "$1" "CHECKPOINT" >/dev/null
  wait_archive_quiet "$1" "$BCE_TIMEOUT_ARCHIVE" strict
}

# backup_stamp_wait SERVER: wait until the wall clock has left the second
# in which the previous backup of SERVER ended (barman's backup_id is the
# start time with 1 s resolution, so two backups of one server must not
# start in the same second). backup_stamp_set SERVER records "now".
backup_stamp_wait() {
  local stamp="$SCN_DIR/.last-backup-end.$1" last=""
  [[ -f "$stamp" ]] && last="$(cat "$stamp" 2>/dev/null || true)"
  [[ "$last" =~ ^[0-9]+$ ]] || return 0
  while (($(date +%s) <= last)); do sleep 0.1; done
}
backup_stamp_set() {
  date +%s >"$SCN_DIR/.last-backup-end.$1.tmp"
  mv -f "$SCN_DIR/.last-backup-end.$1.tmp" "$SCN_DIR/.last-backup-end.$1"
}

# backup_info_keys PREFIX: the backup.info keys under PREFIX (one a line).
backup_info_keys() { bucket_keys "$1" | awk -F'\t' '$2 ~ /\/backup\.info$/ {print $2}'; }

# new_backup_id BEFORE AFTER: the backup id whose backup.info key is in the
# AFTER list (newline-separated keys) but not in BEFORE (empty if none).
new_backup_id() {
  comm -13 <(sort <<<"$1") <(sort <<<"$2") | sed -n 's#.*/base/\([^/]*\)/backup\.info$#\1#p' | tail -n1
}

# backup_info_field SERVER ID FIELD: one field of a backup.info in the bucket
# (empty when the field or the object is missing).
backup_info_field() {
  s3tool cat "$SCN_BUCKET" "$(server_prefix "$1")base/$2/backup.info" 2>/dev/null |
    sed -n "s/^$3=//p" | head -n1
}

# base_backup NAME [BARMAN_ARGS...]: run barman-cloud-backup (as postgres,
# --gzip unless BACKUP_COMPRESSION says otherwise: gzip|bzip2|snappy|lz4|none)
# against cluster NAME and print the new backup id. Never starts two backups
# of the same server in the same second (barman's backup_id has 1 s
# resolution; see backup_stamp_wait).
# Returns barman's exit status (after printing the id, if a backup.info
# appeared), so a deliberately failing backup can be tested with `|| true`.
base_backup() {
  local name=$1
  shift
  cl_load "$name"
  local comp
  case "${BACKUP_COMPRESSION:-gzip}" in
    gzip) comp=--gzip ;; bzip2) comp=--bzip2 ;; snappy) comp=--snappy ;; lz4) comp=--lz4 ;; none) comp= ;;
    *) die "unknown BACKUP_COMPRESSION '$BACKUP_COMPRESSION'" ;;
  esac
  backup_stamp_wait "$CL_SERVER"
  local prefix before after id rc=0
  prefix="$(server_prefix "$CL_SERVER")base/"
  before="$(backup_info_keys "$prefix")"
  log "cluster $name: barman-cloud-backup $CL_SERVER"
  local logf="$CL_DIR/barman-backup.log"
  echo "==== $(date -Is) barman-cloud-backup $comp $* $SCN_DEST $CL_SERVER" >>"$logf"
  pg_owned "$logf"
  # shellcheck disable=SC2046
  as_pg $(aws_env) timeout "$BCE_TIMEOUT_BACKUP" "$BCE_VENV_BIN/barman-cloud-backup" \
    --endpoint-url "$S3_ENDPOINT" --cloud-provider aws-s3 $comp --immediate-checkpoint \
    -h "$CL_SOCK" -p "$CL_PORT" -U postgres "$@" "$SCN_DEST" "$CL_SERVER" >>"$logf" 2>&1 || rc=$?
  backup_stamp_set "$CL_SERVER"
  after="$(backup_info_keys "$prefix")"
  id="$(new_backup_id "$before" "$after")"
  if ((rc != 0)); then
    tail_log "$logf" 20
    warn "cluster $name: barman-cloud-backup exited with $rc${id:+ (backup $id)}"
  else
    [[ -n "$id" ]] || die "cluster $name: barman-cloud-backup succeeded but no new backup.info appeared under $prefix"
    log "cluster $name: backup $id done"
  fi
  [[ -n "$id" ]] && echo "$id"
  return "$rc"
}

# ------------------------------------------- interrupted backups --
#
# Backups that do not end DONE, made by really interrupting barman-cloud-backup:
#   failed_backup NAME   -> status FAILED (PostgreSQL stopped under it)
#   killed_backup NAME   -> status STARTED (barman SIGKILLed mid-upload)
# Both print the backup id on stdout and leave cluster NAME running with
# archiving working again (call switch_wal + wait_archive_quiet afterwards).
# While one runs, pg/NAME/barman-bg.pid holds the barman-cloud-backup PID;
# scn_down kills that process group (kill_bg_backup) if it is still alive.

# _bg_backup_start NAME ARGS...: start barman-cloud-backup (as postgres,
# ARGS before the positional arguments) in the background. Sets BG_JOB (the
# bash job), BG_PIDFILE, BG_LOG, BG_PREFIX and BG_BEFORE (backup.info keys
# before the start).
_bg_backup_start() {
  local name=$1
  shift
  cl_load "$name"
  backup_stamp_wait "$CL_SERVER"
  BG_PREFIX="$(server_prefix "$CL_SERVER")base/"
  BG_BEFORE="$(backup_info_keys "$BG_PREFIX")"
  BG_PIDFILE="$CL_DIR/barman-bg.pid"
  BG_LOG="$CL_DIR/barman-backup.log"
  rm -f "$BG_PIDFILE"
  echo "==== $(date -Is) (background) barman-cloud-backup $* $SCN_DEST $CL_SERVER" >>"$BG_LOG"
  pg_owned "$BG_LOG"
  # `timeout` puts itself and barman (with its upload workers) in a process
  # group of their own; the inner sh records barman's PID, then execs it.
  # shellcheck disable=SC2046,SC2016
  as_pg $(aws_env) timeout "$BCE_TIMEOUT_BACKUP" sh -c 'echo $$ >"$0" && exec "$@"' "$BG_PIDFILE" \
    "$BCE_VENV_BIN/barman-cloud-backup" --endpoint-url "$S3_ENDPOINT" --cloud-provider aws-s3 --immediate-checkpoint \
    -h "$CL_SOCK" -p "$CL_PORT" -U postgres "$@" "$SCN_DEST" "$CL_SERVER" >>"$BG_LOG" 2>&1 &
  BG_JOB=$!
  wait_for 30 "barman-cloud-backup to record its PID in $BG_PIDFILE" test -s "$BG_PIDFILE" ||
    die "cluster $name: background barman-cloud-backup did not start (see $BG_LOG)"
}

# _bg_backup_reap TIMEOUT: wait up to TIMEOUT s for the background job to
# exit (SIGKILLing its process group after that); sets BG_RC.
_bg_backup_reap() {
  local deadline=$((SECONDS + $1))
  while kill -0 "$BG_JOB" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  if kill -0 "$BG_JOB" 2>/dev/null; then
    warn "background barman-cloud-backup still running after $1s, killing it"
    kill_bg_backup "$BG_PIDFILE"
  fi
  BG_RC=0
  wait "$BG_JOB" || BG_RC=$?
  rm -f "$BG_PIDFILE"
}

# _bg_backup_id: the id of the backup the background job created (dies when
# no new backup.info appeared).
_bg_backup_id() {
  local id
  id="$(new_backup_id "$BG_BEFORE" "$(backup_info_keys "$BG_PREFIX")")"
  [[ -n "$id" ]] || die "no new backup.info under $BG_PREFIX (see $BG_LOG)"
  echo "$id"
}

# kill_bg_backup PIDFILE: SIGKILL the barman-cloud-backup recorded in
# PIDFILE together with its process group (the `timeout` wrapping it and its
# upload workers), if it is still alive. Removes PIDFILE.
kill_bg_backup() {
  local pidfile=$1 pid pgid stat
  [[ -s "$pidfile" ]] || {
    rm -f "$pidfile"
    return 0
  }
  pid="$(head -n1 "$pidfile")"
  if pid_matches "$pid" barman-cloud-backup; then
    stat="$(cat "/proc/$pid/stat" 2>/dev/null || true)"
    stat="${stat##*) }"
    pgid="$(awk '{print $3}' <<<"$stat")"
    if [[ "$pgid" =~ ^[0-9]+$ ]] && ((pgid > 1)) && [[ "$pgid" != "$(ps -o pgid= $$ | tr -d ' ')" ]] &&
      { [[ "$pgid" == "$pid" ]] || pid_matches "$pgid" "timeout"; }; then
      log "killing barman-cloud-backup PID $pid and its process group $pgid (SIGKILL)"
      kill -KILL -- "-$pgid" 2>/dev/null || true
    else
      log "killing barman-cloud-backup PID $pid (SIGKILL)"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    local deadline=$((SECONDS + 10))
    while pid_matches "$pid" barman-cloud-backup && ((SECONDS < deadline)); do sleep 0.1; done
  fi
  rm -f "$pidfile"
}

# failed_backup NAME: a backup that ends FAILED after its STARTED
# backup.info was uploaded. The archiver fails on purpose (archive.fail), so
# barman, once the data is copied, blocks in pg_backup_stop(), which waits
# for the end-of-backup segment to be archived; then PostgreSQL is stopped
# (fast), barman loses its session, records status=FAILED with an error and
# exits non-zero. PostgreSQL is restarted with a working archiver.
failed_backup() {
  local name=$1
  cl_load "$name"
  as_pg touch "$CL_DIR/archive.fail"
  log "cluster $name: background barman-cloud-backup (archiver failing on purpose, will stop PostgreSQL under it)"
  # Uncompressed: cheaper, and the data.tar is never completed anyway.
  _bg_backup_start "$name"
  _wait_backup_stop_blocked "$name"
  local id
  id="$(_bg_backup_id)"
  [[ "$(backup_info_field "$CL_SERVER" "$id" status)" == STARTED ]] ||
    die "cluster $name: backup $id is not STARTED in the bucket while barman waits in pg_backup_stop"
  log "cluster $name: backup $id is STARTED and waiting in pg_backup_stop(); stopping PostgreSQL (fast)"
  stop_cluster "$name" fast
  _bg_backup_reap 120
  rm -f "$CL_DIR/archive.fail"
  backup_stamp_set "$CL_SERVER"
  ((BG_RC != 0)) || die "cluster $name: barman-cloud-backup $id succeeded although PostgreSQL was stopped under it"
  start_cluster "$name"
  local st
  st="$(backup_info_field "$CL_SERVER" "$id" status)"
  [[ "$st" == FAILED ]] || die "cluster $name: backup $id has status '$st', expected FAILED (see $BG_LOG)"
  log "cluster $name: backup $id FAILED as intended (barman exit $BG_RC: $(backup_info_field "$CL_SERVER" "$id" error))"
  echo "$id"
}

# _wait_backup_stop_blocked NAME: wait until barman's session waits in
# pg_backup_stop() for WAL archiving (wait event BackupWaitWalArchive).
_wait_backup_stop_blocked() {
  local name=$1 deadline=$((SECONDS + BCE_TIMEOUT_BACKUP)) n
  while :; do
    n="$(psql_c "$name" "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'barman_cloud_backup' AND wait_event = 'BackupWaitWalArchive'")"
    [[ "$n" == 0 ]] || return 0
    if ! kill -0 "$BG_JOB" 2>/dev/null; then
      tail_log "$BG_LOG" 20
      die "cluster $name: barman-cloud-backup exited before reaching pg_backup_stop()"
    fi
    if ((SECONDS >= deadline)); then
      kill_bg_backup "$BG_PIDFILE"
      die "cluster $name: barman-cloud-backup did not reach pg_backup_stop() within ${BCE_TIMEOUT_BACKUP}s"
    fi
    sleep 0.2
  done
}

# killed_backup NAME: a backup left STARTED, as when barman-cloud-backup is
# killed (OOM, pod eviction) mid-upload. The upload is throttled while
# barman is still copying PGDATA: uncompressed, -S 1GB (so parts are 5 MiB;
# with the default 100GB they are 20 MiB and the second one is only flushed
# after pg_backup_stop) and --max-bandwidth 1MB (barman sleeps ~5 s before
# each part after the first). As soon as its STARTED backup.info is in the
# bucket, the barman process group gets SIGKILL. PostgreSQL ends the orphaned session (and with
# it the backup) when it sees the closed connection; no .backup history file
# and no data.tar is written (the multipart upload is never completed).
killed_backup() {
  local name=$1
  cl_load "$name"
  log "cluster $name: background barman-cloud-backup (throttled; will SIGKILL it mid-upload)"
  _bg_backup_start "$name" -S 1GB --max-bandwidth 1MB
  local deadline=$((SECONDS + BCE_TIMEOUT_BACKUP)) id=""
  while :; do
    id="$(new_backup_id "$BG_BEFORE" "$(backup_info_keys "$BG_PREFIX")")"
    [[ -z "$id" ]] || break
    if ! kill -0 "$BG_JOB" 2>/dev/null; then
      tail_log "$BG_LOG" 20
      die "cluster $name: barman-cloud-backup exited before its STARTED backup.info appeared"
    fi
    if ((SECONDS >= deadline)); then
      kill_bg_backup "$BG_PIDFILE"
      die "cluster $name: no STARTED backup.info within ${BCE_TIMEOUT_BACKUP}s"
    fi
    sleep 0.2
  done
  kill_bg_backup "$BG_PIDFILE"
  _bg_backup_reap 30
  backup_stamp_set "$CL_SERVER"
  local st
  st="$(backup_info_field "$CL_SERVER" "$id" status)"
  [[ "$st" == STARTED ]] || die "cluster $name: backup $id has status '$st' after SIGKILL, expected STARTED (barman finished too early? see $BG_LOG)"
  # The session of the killed barman goes away by itself (EOF on an idle
  # connection); make sure no backup is left in progress on the server.
  local n i
  for ((i = 0; i < 100; i++)); do
    n="$(psql_c "$name" "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'barman_cloud_backup'")"
    [[ "$n" == 0 ]] && break
    sleep 0.1
  done
  if [[ "$n" != 0 ]]; then
    warn "cluster $name: the killed barman's session is still there; terminating it"
    psql_c "$name" "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'barman_cloud_backup'" >/dev/null
  fi
  log "cluster $name: backup $id left STARTED (barman-cloud-backup SIGKILLed, exit $BG_RC)"
  echo "$id"
}

# promote NAME: move cluster NAME to the next timeline the way a failover
# does, so that PostgreSQL itself archives <TLI>.history and the old
# timeline's last, unfinished segment as <segment>.partial: wait until the
# archive is quiet, stop (fast), restart as a standby (standby.signal; it
# replays its own pg_wal), `pg_ctl promote`, wait for the end of recovery,
# CHECKPOINT (so pg_control, and hence barman's backup.info, shows the new
# timeline), and wait until the history file and the .partial are in the
# bucket.
promote() {
  local name=$1
  cl_load "$name"
  local old_tli new_tli seg
  wait_archive_quiet "$name"
  old_tli="$(current_timeline "$name")"
  seg="$(psql_c "$name" "SELECT pg_walfile_name(pg_current_wal_lsn())")"
  log "cluster $name: promoting from timeline $old_tli (current segment $seg)"
  stop_cluster "$name" fast
  as_pg touch "$CL_DATA/standby.signal"
  start_cluster "$name"
  [[ "$(psql_c "$name" "SELECT pg_is_in_recovery()")" == t ]] || die "cluster $name did not come back as a standby"
  as_pg "$BCE_PG_BIN/pg_ctl" -D "$CL_DATA" -s -w -t 60 promote >&2 || die "pg_ctl promote failed for cluster $name"
  local deadline=$((SECONDS + 60))
  until [[ "$(psql_c "$name" "SELECT pg_is_in_recovery()")" == f ]]; do
    ((SECONDS < deadline)) || die "cluster $name still in recovery 60s after promote"
    sleep 0.2
  done
  psql_c "$name" "CHECKPOINT" >/dev/null
  new_tli="$(psql_c "$name" "SELECT timeline_id FROM pg_control_checkpoint()")"
  ((new_tli == old_tli + 1)) || die "cluster $name: expected timeline $((old_tli + 1)) after promote, pg_control says $new_tli"
  local p hist
  p="$(server_prefix "$CL_SERVER")"
  hist="$(printf '%08X' "$new_tli").history"
  s3tool wait-keys "$SCN_BUCKET" "$BCE_TIMEOUT_ARCHIVE" \
    "^${p}wals/${hist}(\\.[a-z0-9]+)?\$" \
    "^${p}wals/$(printf '%08X' "$old_tli")[0-9A-F]{8}/$(printf '%08X' "$old_tli")[0-9A-F]{16}\\.partial(\\.[a-z0-9]+)?\$" ||
    die "cluster $name: $hist or the timeline $old_tli .partial did not reach the bucket"
  log "cluster $name: now on timeline $new_tli; $hist and a timeline-$old_tli .partial are archived"
}

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
      sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
      exit 2
      ;;
  esac
}

# The `extra` layouts (scn_extra and its helpers).
# shellcheck source=scenario-extra.sh
source "$BCE_SCRIPTS_DIR/scenario-extra.sh"

# Run only when executed, not when sourced for its functions.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  scn_main "$@"
fi
