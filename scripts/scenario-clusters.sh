# shellcheck shell=bash
# The PostgreSQL side of scripts/scenario.sh, sourced by it: throwaway
# clusters made with initdb as the postgres user, archiving with
# barman-cloud-wal-archive; WAL generation and archive waits; base backups
# with barman-cloud-backup, including interrupted ones (FAILED, STARTED);
# promote. Uses the SCN_* settings and helpers of scenario.sh and lib.sh.
# shellcheck disable=SC2154 # SCN_*, BCE_* and S3_* are set by scenario.sh and lib.sh
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
# in pg/NAME as the postgres OS user, archiving to $SCN_DEST as SERVER (on
# SCN_PROVIDER's storage, with cloud_env/cloud_args), start
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

  local exports="" cargs="" line
  while IFS= read -r line; do
    exports+="export ${line%%=*}='${line#*=}'"$'\n'
  done < <(cloud_env)
  while IFS= read -r line; do
    cargs+="'$line' "
  done < <(cloud_args)
  cat >"$wrapper" <<EOF
#!/bin/sh
# archive_command of cluster $name (server $server); written by scenario.sh.
# Throwaway credentials for the loopback $SCN_PROVIDER storage of this scenario.
if [ -e '$cdir/archive.fail' ]; then
  echo "archive-wal.sh: failing on purpose ($cdir/archive.fail exists)" >&2
  exit 1
fi
${exports}export PYTHONDONTWRITEBYTECODE=1
exec '$BCE_VENV_BIN/barman-cloud-wal-archive' $cargs$compflag ${ARCHIVE_EXTRA_ARGS:-} '$SCN_DEST' '$server' "\$1"
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
CL_PROVIDER=$SCN_PROVIDER
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
  store_cat "$(server_prefix "$1")base/$2/backup.info" 2>/dev/null |
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
  local cargs
  mapfile -t cargs < <(cloud_args)
  # shellcheck disable=SC2046
  as_pg $(cloud_env) timeout "$BCE_TIMEOUT_BACKUP" "$BCE_VENV_BIN/barman-cloud-backup" \
    "${cargs[@]}" $comp --immediate-checkpoint \
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
  local cargs
  mapfile -t cargs < <(cloud_args)
  # shellcheck disable=SC2046,SC2016
  as_pg $(cloud_env) timeout "$BCE_TIMEOUT_BACKUP" sh -c 'echo $$ >"$0" && exec "$@"' "$BG_PIDFILE" \
    "$BCE_VENV_BIN/barman-cloud-backup" "${cargs[@]}" --immediate-checkpoint \
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
  store_wait_keys "$BCE_TIMEOUT_ARCHIVE" \
    "^${p}wals/${hist}(\\.[a-z0-9]+)?\$" \
    "^${p}wals/$(printf '%08X' "$old_tli")[0-9A-F]{8}/$(printf '%08X' "$old_tli")[0-9A-F]{16}\\.partial(\\.[a-z0-9]+)?\$" ||
    die "cluster $name: $hist or the timeline $old_tli .partial did not reach the bucket"
  log "cluster $name: now on timeline $new_tli; $hist and a timeline-$old_tli .partial are archived"
}

