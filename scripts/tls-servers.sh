#!/usr/bin/env bash
# Throwaway TLS servers for tests/tls_sources.rs, on 127.0.0.1 only: an S3
# HTTPS endpoint (SeaweedFS's own S3 server, `weed s3`, in front of the filer
# of a SeaweedFS started by seaweedfs.sh) and a PostgreSQL 15 cluster with
# ssl=on that accepts TCP connections over TLS only (hostssl).
#
# usage: tls-servers.sh s3-start DIR S3DIR   HTTPS S3 gateway with DIR/s3.crt
#                                            and DIR/s3.key (PEM) in front of
#                                            the SeaweedFS of S3DIR (its
#                                            identities, so the same keys work)
#        tls-servers.sh pg-start DIR         cluster DIR/pg/tls with
#                                            DIR/pg.crt, DIR/pg.key, ssl=on
#        tls-servers.sh stop DIR             stop both (idempotent)
#
# The caller makes the certificates (a test CA); DIR must be traversable by
# the postgres OS user (mode 755 up to /). Output: DIR/s3-tls.env
# (S3_TLS_PORT=https port, S3_TLS_HTTP_PORT), DIR/pg/tls/cluster.env (see
# scenario.sh make_cluster: CL_PORT, CL_EXPORTER_PASSWORD, ...), and
# weed-s3.pid / weed-s3.log in DIR. Processes are stopped by recorded PID
# (weed) or by pg_ctl on the data directory, never by name.
set -euo pipefail
# scenario.sh (sourced, not run) brings lib.sh and make_cluster, stop_cluster.
# shellcheck source=scripts/scenario.sh
source "$(dirname "${BASH_SOURCE[0]}")/scenario.sh"

usage() {
  sed -n '7,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

s3_start() {
  local dir s3dir
  dir="$(abspath "$1")"
  s3dir="$(abspath "$2")"
  [[ -f "$dir/s3.crt" && -f "$dir/s3.key" ]] || die "$dir/s3.crt and $dir/s3.key are required"
  [[ -f "$s3dir/ports.env" && -f "$s3dir/s3.json" ]] || die "$s3dir holds no SeaweedFS started by seaweedfs.sh"
  need_tools
  local pidfile="$dir/weed-s3.pid" marker="-cert.file=$dir/s3.crt"
  if pidfile_alive "$pidfile" "$marker"; then
    log "S3 TLS gateway already running (PID $(head -n1 "$pidfile"))"
    return 0
  fi
  # shellcheck disable=SC1091
  source "$s3dir/ports.env"
  local ports
  mapfile -t ports < <(free_ports 3)
  local http=${ports[0]} https=${ports[1]} grpc=${ports[2]}
  local args=(
    s3 "-filer=127.0.0.1:$WEED_FILER_PORT.$WEED_FILER_PORT_GRPC" -ip=127.0.0.1 -ip.bind=127.0.0.1
    "-port=$http" "-port.https=$https" "-port.grpc=$grpc" -port.iceberg=0 -port.lance=0
    "-cert.file=$dir/s3.crt" "-key.file=$dir/s3.key" "-config=$s3dir/s3.json"
  )
  if ((${#dir} < 90)); then
    args+=("-localSocket=$dir/s3.sock")
  fi
  echo "==== $(date -Is) starting: weed ${args[*]}" >>"$dir/weed-s3.log"
  start_daemon "$pidfile" "$dir/weed-s3.log" env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY \
    -u AWS_SESSION_TOKEN -u AWS_PROFILE "HOME=$dir" "$BCE_VENV_BIN/weed" -logtostderr=true "${args[@]}"
  local deadline=$((SECONDS + ${BCE_S3_START_TIMEOUT:-60}))
  # Any HTTP answer over TLS (AccessDenied without credentials) means ready.
  until curl -sk -o /dev/null -m 2 "https://127.0.0.1:$https/"; do
    if ! pidfile_alive "$pidfile" "$marker"; then
      tail_log "$dir/weed-s3.log" 40
      die "weed s3 exited during start-up"
    fi
    ((SECONDS < deadline)) || die "the S3 TLS gateway did not answer on $https"
    sleep 0.3
  done
  printf 'S3_TLS_PORT=%s\nS3_TLS_HTTP_PORT=%s\n' "$https" "$http" >"$dir/s3-tls.env"
  log "S3 TLS gateway: https://127.0.0.1:$https (PID $(head -n1 "$pidfile"))"
}

pg_start() {
  local dir
  dir="$(abspath "$1")"
  [[ -f "$dir/pg.crt" && -f "$dir/pg.key" ]] || die "$dir/pg.crt and $dir/pg.key are required"
  need_tools
  SCN_DIR="$dir"
  mkdir -p "$dir/pg" "$dir/pg-tls"
  chmod 755 "$dir" "$dir/pg"
  # PostgreSQL refuses a key readable by others; both files belong to it.
  install -m 0644 "$dir/pg.crt" "$dir/pg-tls/server.crt"
  install -m 0600 "$dir/pg.key" "$dir/pg-tls/server.key"
  chmod 700 "$dir/pg-tls"
  pg_owned "$dir/pg-tls" "$dir/pg-tls/server.crt" "$dir/pg-tls/server.key"
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u "$BCE_PG_OS_USER" -- test -r "$dir/pg-tls/server.key" ||
      die "user $BCE_PG_OS_USER cannot read $dir/pg-tls/server.key (is $dir traversable?)"
  fi
  # No archiving here: make_cluster's archive wrapper is written but unused.
  S3_ACCESS_KEY=unused S3_SECRET_KEY=unused S3_REGION=us-east-1 S3_ENDPOINT=http://127.0.0.1:1 \
    PG_EXTRA_CONF="archive_mode = off
ssl = on
ssl_cert_file = '$dir/pg-tls/server.crt'
ssl_key_file = '$dir/pg-tls/server.key'" \
    make_cluster tls pg-tls
  cl_load tls
  # TCP only over TLS; the superuser keeps the unix socket.
  cat >"$CL_DATA/pg_hba.conf" <<EOF
# tls-servers.sh: TCP only with TLS.
local      all  all                 trust
hostssl    all  all   127.0.0.1/32  scram-sha-256
hostnossl  all  all   127.0.0.1/32  reject
EOF
  pg_owned "$CL_DATA/pg_hba.conf"
  as_pg "$BCE_PG_BIN/pg_ctl" -D "$CL_DATA" -s reload >&2
  [[ "$(psql_c tls "SHOW ssl")" == on ]] || die "ssl is not on in cluster tls"
  log "PostgreSQL with ssl=on on 127.0.0.1:$CL_PORT ($CL_DIR/cluster.env)"
}

tls_stop() {
  local dir
  dir="$(abspath "$1")"
  stop_daemon "$dir/weed-s3.pid" "-cert.file=$dir/s3.crt" "${BCE_S3_STOP_TIMEOUT:-30}"
  if [[ -f "$dir/pg/tls/cluster.env" ]]; then
    SCN_DIR="$dir"
    stop_cluster tls
  fi
}

case "${1:-}" in
  s3-start) (($# == 3)) || usage; s3_start "$2" "$3" ;;
  pg-start) (($# == 2)) || usage; pg_start "$2" ;;
  stop) (($# == 2)) || usage; tls_stop "$2" ;;
  *) usage ;;
esac
