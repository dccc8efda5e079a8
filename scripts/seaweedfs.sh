#!/usr/bin/env bash
# Run one throwaway SeaweedFS (`weed mini`: master + volume + filer + S3) on
# 127.0.0.1, with SigV4 credentials, for the integration tests and the demo.
#
# usage: seaweedfs.sh start DIR    start (or restart on existing data) in DIR
#        seaweedfs.sh stop DIR     stop the instance started in DIR (idempotent)
#        seaweedfs.sh status DIR   exit 0 when running and S3 answers
#
# DIR layout:
#   data/       weed's data (volumes, filer metadata, weed's own mini.options)
#   s3.env      S3_ENDPOINT S3_PORT S3_ACCESS_KEY S3_SECRET_KEY S3_REGION
#               S3_RO_ACCESS_KEY S3_RO_SECRET_KEY (KEY=VALUE lines, no quotes;
#               the RO pair may only Read/List)
#   ports.env   every port weed listens on (all pinned, all on 127.0.0.1)
#   s3.json     the identities file passed as -s3.config
#   weed.pid    PID of the weed process; weed.log its output
#
# `start` on a DIR that already has s3.env reuses the credentials and every
# port, in particular the S3 port (tests stop and restart S3 mid-run to
# simulate an outage; clients keep the same endpoint). It fails if the S3
# port has been taken in the meantime; another busy port is re-picked.
# Buckets are never auto-created (-s3.autoCreateBucket=false): create them
# with `s3tool.py create-bucket` (scenario.sh does).
#
# Env: BCE_S3_START_TIMEOUT (default 60 s), BCE_S3_STOP_TIMEOUT (default 30 s).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage() {
  sed -n '5,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# weed's port flags, in the order ports.env lists them. The admin server
# cannot be switched off in `weed mini` (-admin.ui=false only hides the UI) and
# its embedded worker dials admin.port+10000 whatever -admin.port.grpc says,
# so the admin gRPC port is always admin.port+10000.
PORT_FLAGS=(master.port master.port.grpc volume.port volume.port.grpc filer.port filer.port.grpc s3.port s3.port.grpc)

port_var() { local v=${1//./_}; echo "WEED_${v^^}"; }

weed_start() {
  local dir data
  dir="$(abspath "$1")"
  data="$dir/data"
  mkdir -p "$data"
  chmod 700 "$dir"
  local pidfile="$dir/weed.pid" logfile="$dir/weed.log" marker="-dir=$data "
  need_tools

  if pidfile_alive "$pidfile" "$marker"; then
    log "already running (PID $(head -n1 "$pidfile")) in $dir"
    wait_ready "$dir"
    return 0
  fi
  rm -f "$pidfile"

  local f var p
  if [[ -f "$dir/s3.env" && -f "$dir/ports.env" ]]; then
    # Restart on existing data: same credentials, same ports.
    # shellcheck disable=SC1091
    source "$dir/ports.env"
    # shellcheck disable=SC1091
    source "$dir/s3.env"
    # A weed we just stopped may hold the port for a moment longer.
    BCE_POLL_INTERVAL=0.5 wait_for 15 "S3 port $WEED_S3_PORT to be free" port_is_free "$WEED_S3_PORT" ||
      die "S3 port $WEED_S3_PORT recorded in $dir/ports.env is in use by another process; cannot restart with the same endpoint"
    local used=()
    for f in "${PORT_FLAGS[@]}" admin.port; do
      var="$(port_var "$f")"
      used+=("${!var}")
    done
    used+=($((WEED_ADMIN_PORT + 10000)))
    for f in "${PORT_FLAGS[@]}" admin.port; do
      var="$(port_var "$f")"
      [[ $f == s3.port ]] && continue
      if ! port_is_free "${!var}" || { [[ $f == admin.port ]] && ! port_is_free $((WEED_ADMIN_PORT + 10000)); }; then
        if [[ $f == admin.port ]]; then
          p="$(free_ports 1 10000 "${used[@]}")"
        else
          p="$(free_ports 1 0 "${used[@]}")"
        fi
        warn "$f ${!var} is busy, using $p instead"
        printf -v "$var" '%s' "$p"
        used+=("$p" $((p + 10000)))
      fi
    done
    log "restarting SeaweedFS in $dir on the recorded S3 port $WEED_S3_PORT"
  else
    local ports
    mapfile -t ports < <(free_ports "${#PORT_FLAGS[@]}")
    ((${#ports[@]} == ${#PORT_FLAGS[@]})) || die "could not pick free ports"
    local i
    for i in "${!PORT_FLAGS[@]}"; do
      printf -v "$(port_var "${PORT_FLAGS[$i]}")" '%s' "${ports[$i]}"
    done
    WEED_ADMIN_PORT="$(free_ports 1 10000 "${ports[@]}")"
    S3_ACCESS_KEY="AK$(random_secret 18)"
    S3_SECRET_KEY="$(random_secret 40)"
    S3_RO_ACCESS_KEY="RO$(random_secret 18)"
    S3_RO_SECRET_KEY="$(random_secret 40)"
    S3_REGION=us-east-1
    log "starting a new SeaweedFS in $dir on S3 port $WEED_S3_PORT"
  fi

  # Identities (SigV4). Written every time so both files stay consistent.
  (
    umask 077
    cat >"$dir/s3.json" <<EOF
{
  "identities": [
    {
      "name": "admin",
      "credentials": [{"accessKey": "$S3_ACCESS_KEY", "secretKey": "$S3_SECRET_KEY"}],
      "actions": ["Admin", "Read", "Write", "List", "Tagging"]
    },
    {
      "name": "readonly",
      "credentials": [{"accessKey": "$S3_RO_ACCESS_KEY", "secretKey": "$S3_RO_SECRET_KEY"}],
      "actions": ["Read", "List"]
    }
  ]
}
EOF
    {
      echo "# ports of the weed mini in $dir (all on 127.0.0.1)"
      for f in "${PORT_FLAGS[@]}" admin.port; do
        var="$(port_var "$f")"
        echo "$var=${!var}"
      done
      echo "WEED_ADMIN_PORT_GRPC=$((WEED_ADMIN_PORT + 10000))"
    } >"$dir/ports.env"
    cat >"$dir/s3.env" <<EOF
S3_ENDPOINT=http://127.0.0.1:$WEED_S3_PORT
S3_PORT=$WEED_S3_PORT
S3_ACCESS_KEY=$S3_ACCESS_KEY
S3_SECRET_KEY=$S3_SECRET_KEY
S3_REGION=$S3_REGION
S3_RO_ACCESS_KEY=$S3_RO_ACCESS_KEY
S3_RO_SECRET_KEY=$S3_RO_SECRET_KEY
EOF
  )

  local args=(
    mini "-dir=$data" -ip=127.0.0.1 -ip.bind=127.0.0.1
    -master.telemetry=false -s3.autoCreateBucket=false "-s3.config=$dir/s3.json"
    -admin.ui=false "-admin.port=$WEED_ADMIN_PORT" "-admin.port.grpc=$((WEED_ADMIN_PORT + 10000))"
    -webdav=false -s3.port.iceberg=0 -s3.port.lance=0
    # weed mini sizes volumes from the free disk space at start (1 GiB each
    # on a roomy disk, max = free GiB), and every bucket grows 7 of them: on a
    # disk with a few GiB free, PutObject then answers InternalError ("no
    # free volumes"). Fixed values instead; volumes are not preallocated.
    -master.volumeSizeLimitMB=64 -volume.max=400
  )
  for f in "${PORT_FLAGS[@]}"; do
    var="$(port_var "$f")"
    args+=("-$f=${!var}")
  done
  # The HTTP-side unix sockets default to /tmp/seaweedfs-{filer,s3}-<port>.sock;
  # keep them in DIR when the path fits in sun_path (108 bytes). The gRPC
  # ones are always /tmp/seaweedfs-<component>-grpc-<port>.sock (see
  # remove_stale_sockets).
  if ((${#dir} < 90)); then
    args+=("-filer.localSocket=$dir/filer.sock" "-s3.localSocket=$dir/s3.sock")
  fi

  {
    echo
    echo "==== $(date -Is) starting: weed -logtostderr=true ${args[*]}"
  } >>"$logfile"
  # weed must not see AWS_* from our environment; HOME points into DIR so it
  # never reads or writes anyone's dotfiles.
  # -logtostderr: glog output goes to weed.log instead of weed.* files in /tmp.
  start_daemon "$pidfile" "$logfile" env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN \
    -u AWS_PROFILE "HOME=$dir" "$BCE_VENV_BIN/weed" -logtostderr=true "${args[@]}"
  wait_ready "$dir"
  log "SeaweedFS ready: S3 http://127.0.0.1:$WEED_S3_PORT (PID $(head -n1 "$pidfile"), log $logfile)"
}

# volumes_registered DIR: true when the master knows at least as many volumes
# as there are volume files on disk. After a restart S3 answers listings
# before the volume server has re-registered, and GETs then fail with
# InternalError for a moment.
volumes_registered() {
  local dir=$1 on_disk known master_port
  on_disk="$(find "$dir/data" -maxdepth 1 -name '*.dat' | wc -l)"
  ((on_disk > 0)) || return 0
  master_port="$(sed -n 's/^WEED_MASTER_PORT=//p' "$dir/ports.env")"
  known="$(curl -s -m 2 "http://127.0.0.1:$master_port/dir/status" |
    jq '[.Topology.DataCenters[]?.Racks[]?.DataNodes[]?.Volumes] | add // 0' 2>/dev/null)" || return 1
  [[ "$known" =~ ^[0-9]+$ ]] && ((known >= on_disk))
}

# wait_ready DIR: wait until weed answers S3 requests with our credentials.
wait_ready() {
  local dir=$1 timeout=${BCE_S3_START_TIMEOUT:-60}
  local pidfile="$dir/weed.pid" marker="-dir=$dir/data " port
  port="$(sed -n 's/^S3_PORT=//p' "$dir/s3.env")"
  local deadline=$((SECONDS + timeout))
  while :; do
    if ! pidfile_alive "$pidfile" "$marker"; then
      tail_log "$dir/weed.log" 40
      die "weed exited during start-up (see $dir/weed.log)"
    fi
    if curl -s -o /dev/null -m 2 "http://127.0.0.1:$port/" &&
      volumes_registered "$dir" &&
      "$BCE_VENV_BIN/python" "$BCE_SCRIPTS_DIR/s3tool.py" --env "$dir/s3.env" ping >/dev/null 2>&1; then
      return 0
    fi
    if ((SECONDS >= deadline)); then
      tail_log "$dir/weed.log" 40
      die "S3 on 127.0.0.1:$port did not answer within ${timeout}s"
    fi
    sleep 0.3
  done
}

weed_stop() {
  local dir
  dir="$(abspath "$1")"
  local pidfile="$dir/weed.pid"
  if [[ ! -s "$pidfile" ]]; then
    log "not running in $dir (no weed.pid)"
    return 0
  fi
  local pid
  pid="$(head -n1 "$pidfile")"
  if pidfile_alive "$pidfile" "-dir=$dir/data "; then
    log "stopping SeaweedFS PID $pid in $dir"
  else
    log "weed PID $pid from $dir is already gone"
  fi
  stop_daemon "$pidfile" "-dir=$dir/data " "${BCE_S3_STOP_TIMEOUT:-30}"
  remove_stale_sockets "$dir"
  # Return only once the S3 port is closed, so that a caller simulating an
  # outage really gets "connection refused" from now on.
  local port
  port="$(sed -n 's/^S3_PORT=//p' "$dir/s3.env" 2>/dev/null)"
  if [[ -n "$port" ]]; then
    # shellcheck disable=SC2016 # $1 is expanded by the child bash
    wait_for 15 "S3 port $port to close" bash -c '! curl -s -o /dev/null -m 1 "http://127.0.0.1:$1/"' _ "$port" ||
      warn "something still answers on S3 port $port"
  fi
}

# remove_stale_sockets DIR: weed creates /tmp/seaweedfs-<component>-grpc-<port>.sock
# for its gRPC ports and leaves some behind on exit. Remove those of our
# recorded ports, unless something listens on them again.
remove_stale_sockets() {
  local dir=$1 port sock
  [[ -f "$dir/ports.env" ]] || return 0
  while read -r port; do
    for sock in /tmp/seaweedfs-*-grpc-"$port".sock; do
      [[ -S "$sock" ]] || continue
      if ! "$BCE_SYSTEM_PYTHON" -c 'import socket,sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(1)
s.connect(sys.argv[1])' "$sock" 2>/dev/null; then
        rm -f -- "$sock"
      fi
    done
  done < <(sed -n 's/^WEED_[A-Z0-9_]*_PORT_GRPC=\([0-9]*\)$/\1/p' "$dir/ports.env")
}

weed_status() {
  local dir
  dir="$(abspath "$1")"
  if pidfile_alive "$dir/weed.pid" "-dir=$dir/data " &&
    "$BCE_VENV_BIN/python" "$BCE_SCRIPTS_DIR/s3tool.py" --env "$dir/s3.env" ping >/dev/null 2>&1; then
    log "running: PID $(head -n1 "$dir/weed.pid"), $(grep '^S3_ENDPOINT=' "$dir/s3.env")"
    return 0
  fi
  log "not running in $dir"
  return 1
}

main() {
  (($# == 2)) || usage
  case "$1" in
    start) weed_start "$2" ;;
    stop) weed_stop "$2" ;;
    status) weed_status "$2" ;;
    *) usage ;;
  esac
}

main "$@"
