# shellcheck shell=bash
# `scenario.sh extra DIR`: more REAL barman-cloud layouts, built after
# `scenario.sh up DIR` in the same SeaweedFS and bucket, each under its own
# destination (never under the default scenario's destination):
#
#   states   s3://<bucket>/extra/states   pg-states  gzip WAL; backups DONE,
#            FAILED (PostgreSQL stopped while barman waits in pg_backup_stop),
#            STARTED (barman SIGKILLed mid-upload), DONE; all on timeline 1
#   keep     s3://<bucket>/extra/keep     pg-keep    three DONE backups (lz4
#            base backups, data.tar.lz4), the oldest kept with
#            barman-cloud-backup-keep --target standalone
#   bzip2, zstd, snappy
#            s3://<bucket>/extra/<comp>   pg-<comp>  WAL compressed with
#            barman-cloud-wal-archive --bzip2/--zstd/--snappy; DONE backup on
#            timeline 1, promote (compressed 00000002.history and .partial),
#            DONE backup on timeline 2 (base backups bzip2/gzip/snappy: barman-
#            cloud-backup has no zstd)
#   seg64    s3://<bucket>/extra/seg64    pg-seg64   initdb --wal-segsize=64,
#            gzip WAL, two DONE uncompressed backups (plain data.tar, barman-
#            cloud-backup's default), the WAL stream crosses the log
#            boundary ...0000003F -> ...00000001 00000000 (64 segments/log)
#   payload  s3://<bucket>/extra/payload  pg-payload one tablespace (its own
#            <oid>.tar), one DONE uncompressed backup split by
#            --max-archive-size 8MB into data.tar, data_0001.tar, ...
#
# The layouts are built concurrently (clusters pg/x-<layout>), each logged
# to DIR/extra-work/<layout>.log as well as stderr. Every cluster is left
# STOPPED with a fully archived WAL stream. The result is checked and
# DIR/extra.json written by scripts/extra_json.py. Running `extra` again
# first removes what a previous run left (clusters pg/x-*, keys under
# extra/). On failure, what `extra` started is stopped (the default
# scenario is left alone; BCE_KEEP_ON_FAILURE=1 keeps everything).
#
# Env knobs:
#   BCE_EXTRA_PARALLEL       layouts built at the same time (default 3)
#   BCE_TIMEOUT_EXTRA        overall limit in seconds (default 600)
#   BCE_SEG64_START_WALFILE  first WAL segment of pg-seg64, set with
#                            pg_resetwal -l right after initdb (default
#                            00000001000000000000003C, a few segments before
#                            the log boundary; empty: start at segment 1 and
#                            switch ~64 times, about 1 s per 64 MiB segment)
#
# Sourced by scenario.sh (needs its functions); not meant to be run alone.

EXTRA_LAYOUTS=(states keep bzip2 zstd snappy seg64 payload)
EXTRA_PREFIX="extra"
declare -gA EXTRA_PID=() EXTRA_T0=()

# extra_dest NAME: destination of layout NAME.
extra_dest() { echo "s3://$SCN_BUCKET/$EXTRA_PREFIX/$1"; }

# extra_result LAYOUT KEY=VALUE...: record facts for extra_json.py.
extra_result() {
  local f="$XW/$1.env"
  shift
  printf '%s\n' "$@" >>"$f"
}

# ------------------------------------------------------------ layouts --

extra_job_states() {
  SCN_DEST="$(extra_dest states)"
  local c=x-states d1 f k d2
  make_cluster "$c" pg-states
  generate_wal "$c" 5000
  switch_wal "$c" 1
  d1="$(base_backup "$c")"
  generate_wal "$c" 500
  switch_wal "$c" 1
  f="$(failed_backup "$c")"
  switch_wal "$c" 1
  wait_archive_quiet "$c"
  k="$(killed_backup "$c")"
  # Wake the archiver (it may be backing off) and let it catch up.
  switch_wal "$c" 1
  wait_archive_quiet "$c"
  generate_wal "$c" 500
  switch_wal "$c" 1
  d2="$(base_backup "$c")"
  generate_wal "$c" 200
  switch_wal "$c" 2
  settle_archive "$c"
  stop_cluster "$c"
  extra_result states "destination_path=$SCN_DEST" server=pg-states "done=$d1 $d2" "failed=$f" "started=$k" \
    backup_compression=gzip
  log "layout states: DONE $d1, FAILED $f, STARTED $k, DONE $d2; cluster stopped"
}

extra_job_keep() {
  SCN_DEST="$(extra_dest keep)"
  local c=x-keep b1 b2 b3
  make_cluster "$c" pg-keep
  generate_wal "$c" 2000
  switch_wal "$c" 1
  b1="$(BACKUP_COMPRESSION=lz4 base_backup "$c")"
  generate_wal "$c" 300
  switch_wal "$c" 2
  b2="$(BACKUP_COMPRESSION=lz4 base_backup "$c")"
  generate_wal "$c" 300
  switch_wal "$c" 2
  b3="$(BACKUP_COMPRESSION=lz4 base_backup "$c")"
  generate_wal "$c" 200
  switch_wal "$c" 2
  settle_archive "$c"
  stop_cluster "$c"
  log "layout keep: barman-cloud-backup-keep --target standalone $b1"
  barman_cloud backup-keep --target standalone "$SCN_DEST" pg-keep "$b1" >&2 ||
    die "barman-cloud-backup-keep --target standalone failed for pg-keep $b1"
  local st body
  st="$(barman_cloud backup-keep --status "$SCN_DEST" pg-keep "$b1")"
  [[ "$st" == *standalone* ]] || die "barman-cloud-backup-keep --status for $b1 says '$st', expected standalone"
  body="$(s3tool cat "$SCN_BUCKET" "$(server_prefix pg-keep)base/$b1/annotations/keep")"
  [[ "$body" == standalone ]] || die "annotation base/$b1/annotations/keep holds '$body', expected 'standalone'"
  extra_result keep "destination_path=$SCN_DEST" server=pg-keep "ids=$b1 $b2 $b3" "standalone=$b1" \
    backup_compression=lz4
  log "layout keep: DONE $b1 (keep: standalone), $b2, $b3; cluster stopped"
}

# extra_job_compression COMP: bzip2 | zstd | snappy.
extra_job_compression() {
  local comp=$1 suffix bcomp
  case "$comp" in
    bzip2) suffix=bz2 bcomp=bzip2 ;;
    zstd) suffix=zst bcomp=gzip ;;
    snappy) suffix=snappy bcomp=snappy ;;
    *) die "unknown compression layout '$comp'" ;;
  esac
  SCN_DEST="$(extra_dest "$comp")"
  local c="x-$comp" s="pg-$comp" b1 b2
  WAL_COMPRESSION=$comp make_cluster "$c" "$s"
  generate_wal "$c" 2000
  switch_wal "$c" 1
  b1="$(BACKUP_COMPRESSION=$bcomp base_backup "$c")"
  generate_wal "$c" 500
  switch_wal "$c" 1
  promote "$c"
  generate_wal "$c" 500
  switch_wal "$c" 1
  b2="$(BACKUP_COMPRESSION=$bcomp base_backup "$c")"
  generate_wal "$c" 200
  switch_wal "$c" 2
  settle_archive "$c"
  stop_cluster "$c"
  extra_result "$comp" "name=$comp" "suffix=$suffix" "destination_path=$SCN_DEST" "server=$s" \
    "backup_compression=$bcomp" "ids=$b1 $b2"
  log "layout $comp: DONE $b1 (timeline 1), DONE $b2 (timeline 2); cluster stopped"
}
extra_job_bzip2() { extra_job_compression bzip2; }
extra_job_zstd() { extra_job_compression zstd; }
extra_job_snappy() { extra_job_compression snappy; }

# _seg64_pos NAME: "<log> <seg>" (decimal) of the current WAL segment.
_seg64_pos() {
  local f
  f="$(psql_c "$1" "SELECT pg_walfile_name(pg_current_wal_lsn())")"
  echo "$((16#${f:8:8})) $((16#${f:16:8}))"
}

extra_job_seg64() {
  SCN_DEST="$(extra_dest seg64)"
  local c=x-seg64 b1 b2 start="${BCE_SEG64_START_WALFILE-00000001000000000000003C}"
  # wal_init_zero=off: new 64 MiB segments are not zero-filled first.
  PG_START_WALFILE="$start" PG_EXTRA_CONF="wal_init_zero = off" make_cluster "$c" pg-seg64 --wal-segsize=64
  local segsize
  segsize="$(psql_c "$c" "SELECT setting FROM pg_settings WHERE name = 'wal_segment_size'")"
  ((segsize == 67108864)) || die "cluster $c: wal_segment_size is $segsize, expected 67108864"
  generate_wal "$c" 1000
  switch_wal "$c" 1
  b1="$(BACKUP_COMPRESSION=none base_backup "$c")"
  # Cross into log 1 (segment names ...00000001 00000000, 00000001 ...).
  local lg seg n
  read -r lg seg <<<"$(_seg64_pos "$c")"
  if ((lg == 0)); then
    n=$((64 - seg + 1))
    log "cluster $c: at segment 0x$(printf '%02X' "$seg") of log 0; $n WAL switches to reach log 1"
    switch_wal "$c" "$n"
  fi
  read -r lg seg <<<"$(_seg64_pos "$c")"
  ((lg >= 1)) || die "cluster $c: still in log $lg after the switches"
  wait_archive_quiet "$c"
  b2="$(BACKUP_COMPRESSION=none base_backup "$c")"
  generate_wal "$c" 200
  switch_wal "$c" 2
  settle_archive "$c"
  stop_cluster "$c"
  extra_result seg64 "destination_path=$SCN_DEST" server=pg-seg64 "segment_size=$segsize" "ids=$b1 $b2" \
    "start_walfile=$start" backup_compression=none
  log "layout seg64: DONE $b1, DONE $b2; cluster stopped"
}

# A cluster with one tablespace, its backup split into parts by a small
# --max-archive-size (uncompressed tars, so the parts are predictable).
extra_job_payload() {
  SCN_DEST="$(extra_dest payload)"
  local c=x-payload b1 oid tbs
  make_cluster "$c" pg-payload
  cl_load "$c"
  tbs="$CL_DIR/tbs"
  mkdir -p "$tbs"
  chmod 700 "$tbs"
  pg_owned "$tbs"
  psql_c "$c" "CREATE TABLESPACE bce_tbs LOCATION '$tbs'" \
    "CREATE TABLE bce_tbs_data (id int, payload text) TABLESPACE bce_tbs" \
    "INSERT INTO bce_tbs_data SELECT g, md5(g::text) FROM generate_series(1, 20000) g" >/dev/null
  oid="$(psql_c "$c" "SELECT oid FROM pg_tablespace WHERE spcname = 'bce_tbs'")"
  generate_wal "$c" 500
  switch_wal "$c" 1
  b1="$(BACKUP_COMPRESSION=none base_backup "$c" --max-archive-size 8MB)"
  generate_wal "$c" 200
  switch_wal "$c" 2
  settle_archive "$c"
  stop_cluster "$c"
  extra_result payload "destination_path=$SCN_DEST" server=pg-payload "ids=$b1" "tablespace_oid=$oid" \
    backup_compression=none
  log "layout payload: DONE $b1 (tablespace $oid, data split by --max-archive-size 8MB); cluster stopped"
}

# ------------------------------------------------------------ driver --

# extra_stop: kill any background barman of the extra clusters and stop
# them (idempotent; the default scenario's clusters are not touched).
extra_stop() {
  local f name
  for f in "$SCN_DIR"/pg/x-*/barman-bg.pid; do
    [[ -f "$f" ]] && kill_bg_backup "$f"
  done
  for f in "$SCN_DIR"/pg/x-*/cluster.env; do
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
}

# extra_reset: remove what a previous `extra` run left behind.
extra_reset() {
  rm -f "$SCN_DIR/extra.json"
  if compgen -G "$SCN_DIR/pg/x-*" >/dev/null || [[ -d "$XW" ]] ||
    [[ -n "$(bucket_keys "$EXTRA_PREFIX/" | head -n1)" ]]; then
    log "removing the leftovers of a previous 'extra' run"
    extra_stop
    rm -rf "$SCN_DIR"/pg/x-* "$XW"
    rm -f "$SCN_DIR"/.last-backup-end.pg-{states,keep,bzip2,zstd,snappy,seg64,payload}
    s3tool delete-prefix "$SCN_BUCKET" "$EXTRA_PREFIX/"
  fi
}

# _extra_launch LAYOUT PORT: run extra_job_LAYOUT in the background; its
# exit status lands in $XW/LAYOUT.rc, its output in $XW/LAYOUT.log + stderr.
_extra_launch() {
  local j=$1 port=$2
  (
    set +e
    (
      set -euo pipefail
      # shellcheck disable=SC2034 # read by log() and make_cluster
      BCE_LOG_TAG="extra:$j" PG_PORT=$port
      "extra_job_$j"
    )
    echo $? >"$XW/$j.rc"
  ) 2>&1 </dev/null | tee "$XW/$j.log" >&2 &
  EXTRA_PID[$j]=$!
  EXTRA_T0[$j]=$SECONDS
}

scn_extra() {
  local dir=$1
  need_tools
  need_cmd runuser setsid timeout tee
  scn_load "$dir"
  [[ -f "$SCN_DIR/scenario.json" && -f "$SCN_DIR/s3/s3.env" ]] ||
    die "$SCN_DIR has no complete scenario (run 'scenario.sh up $SCN_DIR' first)"
  "$BCE_SCRIPTS_DIR/seaweedfs.sh" status "$SCN_DIR/s3" >/dev/null 2>&1 ||
    die "SeaweedFS of $SCN_DIR is not running (run 'scenario.sh up $SCN_DIR' first)"
  XW="$SCN_DIR/extra-work"
  local t0=$SECONDS par=${BCE_EXTRA_PARALLEL:-3} limit=${BCE_TIMEOUT_EXTRA:-600}
  [[ "$par" =~ ^[1-9][0-9]*$ ]] || die "BCE_EXTRA_PARALLEL must be a positive integer"
  _SCN_EXTRA_OK=0
  trap '_scn_extra_exit' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  extra_reset
  mkdir -p "$XW"
  log "building the extra layouts (${EXTRA_LAYOUTS[*]}) in $SCN_DIR, $par at a time"

  local ports
  mapfile -t ports < <(free_ports "${#EXTRA_LAYOUTS[@]}")
  ((${#ports[@]} == ${#EXTRA_LAYOUTS[@]})) || die "could not pick free ports"
  local queue=("${EXTRA_LAYOUTS[@]}") running=() failed=() still j rc i=0 aborted=0
  while ((${#queue[@]} > 0 || ${#running[@]} > 0)); do
    still=()
    for j in "${running[@]}"; do
      if kill -0 "${EXTRA_PID[$j]}" 2>/dev/null; then
        still+=("$j")
        continue
      fi
      wait "${EXTRA_PID[$j]}" 2>/dev/null || true
      rc="$(cat "$XW/$j.rc" 2>/dev/null || true)"
      if [[ "$rc" == 0 ]]; then
        log "layout $j done in $((SECONDS - EXTRA_T0[$j]))s"
      elif ((aborted)); then
        log "layout $j ended after the abort (exit ${rc:-?})"
      else
        failed+=("$j")
        log "layout $j FAILED (exit ${rc:-?}); its log: $XW/$j.log"
        if ((!aborted)); then
          aborted=1
          queue=()
          log "stopping the other extra clusters so that their layouts end quickly"
          extra_stop
        fi
      fi
    done
    running=("${still[@]}")
    # After an abort, keep stopping clusters that layouts still start.
    ((aborted)) && extra_stop
    while ((${#queue[@]} > 0 && ${#running[@]} < par)); do
      j=${queue[0]}
      queue=("${queue[@]:1}")
      _extra_launch "$j" "${ports[$i]}"
      i=$((i + 1))
      running+=("$j")
    done
    if ((!aborted && SECONDS - t0 > limit)); then
      aborted=1
      failed+=(timeout)
      queue=()
      log "extra layouts not done after ${limit}s (BCE_TIMEOUT_EXTRA); stopping them"
      extra_stop
    fi
    sleep 0.3
  done
  if ((${#failed[@]} > 0)); then
    extra_stop
    die "extra layouts failed: ${failed[*]}"
  fi

  log "checking the extra layouts"
  bucket_keys "$EXTRA_PREFIX/" >"$XW/keys.tsv"
  local s
  for j in "${EXTRA_LAYOUTS[@]}"; do
    s="$(sed -n 's/^server=//p' "$XW/$j.env")"
    SCN_DEST="$(extra_dest "$j")" backup_list_json "$s" >"$XW/list-$s.json"
  done
  s3tool cat "$SCN_BUCKET" "$EXTRA_PREFIX/keep/pg-keep/base/$(sed -n 's/^standalone=//p' "$XW/keep.env")/annotations/keep" \
    >"$XW/keep-annotation.txt"
  "$BCE_SYSTEM_PYTHON" "$BCE_SCRIPTS_DIR/extra_json.py" "$XW" "$SCN_DIR/extra.json" ||
    die "the extra layouts are not what they should be (see above)"
  _SCN_EXTRA_OK=1
  log "extra layouts built in $((SECONDS - t0))s: $SCN_DIR/extra.json"
  echo "$SCN_DIR/extra.json"
}

_scn_extra_exit() {
  local rc=$?
  trap - INT TERM
  if [[ "${_SCN_EXTRA_OK:-0}" != 1 ]]; then
    if [[ "${BCE_KEEP_ON_FAILURE:-0}" == 1 ]]; then
      log "extra failed; BCE_KEEP_ON_FAILURE=1, leaving its clusters as they are"
    else
      log "extra failed; stopping what it started (the default scenario keeps running)"
      # Let background layouts notice (their clusters stop) and end.
      extra_stop || true
      local j deadline=$((SECONDS + 60))
      for j in "${!EXTRA_PID[@]}"; do
        while kill -0 "${EXTRA_PID[$j]}" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
      done
      extra_stop || true
    fi
    ((rc == 0)) && rc=1
  fi
  exit "$rc"
}
