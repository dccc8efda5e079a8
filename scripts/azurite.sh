#!/usr/bin/env bash
# Run one throwaway Azurite (Azure Blob Storage emulator, blob service only)
# on 127.0.0.1, for the integration tests.
#
# usage: azurite.sh start DIR    start (or restart on existing data) in DIR
#        azurite.sh stop DIR     stop the instance started in DIR (idempotent)
#        azurite.sh status DIR   exit 0 when running and the blob service answers
#
# DIR layout:
#   data/              Azurite's --location (metadata in __azurite_db_blob*,
#                      blob bodies in __blobstorage__); kept across restarts
#   azure.env          AZURE_STORAGE_CONNECTION_STRING (quoted: it holds ';'),
#                      AZURITE_PORT, AZURE_ENDPOINT, AZURE_ACCOUNT,
#                      AZURE_CONTAINER (sourceable by bash, readable by cloudtool.py)
#   account.key        the account key (Azurite's well-known dev key)
#   connection-string  the connection string alone
#   sas-token          a container SAS token (read + list only, 1 year)
#   azurite.pid        PID of the node process; azurite.log its output
#
# The account is Azurite's well-known development account devstoreaccount1;
# the container `backups` is created at start (cloudtool.py create-container).
# `start` on a DIR that already has azure.env reuses its port (and fails if
# it has been taken meanwhile). --disableTelemetry keeps Azurite from calling
# applicationinsights.azure.com; --loose and --skipApiVersionCheck accept the
# headers and API versions of newer SDKs.
#
# Env: BCE_AZURITE_START_TIMEOUT (default 60 s), BCE_AZURITE_STOP_TIMEOUT (30 s).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

AZ_ACCOUNT=devstoreaccount1
# The public, documented Azurite development key (not a secret).
AZ_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
AZ_CONTAINER=backups

usage() {
  sed -n '5,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

marker() { echo "--location $1/data "; }

cloudtool() { timeout 60 "$BCE_VENV_BIN/python" "$BCE_SCRIPTS_DIR/cloudtool.py" --env "$1/azure.env" azure "${@:2}"; }

az_start() {
  local dir
  dir="$(abspath "$1")"
  mkdir -p "$dir/data"
  chmod 700 "$dir"
  local pidfile="$dir/azurite.pid" logfile="$dir/azurite.log" mk
  mk="$(marker "$dir")"
  [[ -x "$BCE_AZURITE_BIN" ]] || die "Azurite not found at $BCE_AZURITE_BIN (run scripts/install-deps.sh)"
  need_cmd node curl
  if pidfile_alive "$pidfile" "$mk"; then
    log "already running (PID $(head -n1 "$pidfile")) in $dir"
    wait_ready "$dir"
    return 0
  fi
  rm -f "$pidfile"
  local port
  if [[ -f "$dir/azure.env" ]]; then
    port="$(sed -n 's/^AZURITE_PORT=//p' "$dir/azure.env")"
    [[ "$port" =~ ^[0-9]+$ ]] || die "no AZURITE_PORT in $dir/azure.env"
    BCE_POLL_INTERVAL=0.5 wait_for 15 "port $port to be free" port_is_free "$port" ||
      die "port $port recorded in $dir/azure.env is in use by another process; cannot restart with the same endpoint"
    log "restarting Azurite in $dir on the recorded port $port"
  else
    port="$(free_port)"
    log "starting a new Azurite in $dir on port $port"
  fi
  local endpoint="http://127.0.0.1:$port/$AZ_ACCOUNT"
  local cs="DefaultEndpointsProtocol=http;AccountName=$AZ_ACCOUNT;AccountKey=$AZ_KEY;BlobEndpoint=$endpoint;"
  (
    umask 077
    cat >"$dir/azure.env" <<EOF
AZURE_STORAGE_CONNECTION_STRING="$cs"
AZURITE_PORT=$port
AZURE_ENDPOINT=$endpoint
AZURE_ACCOUNT=$AZ_ACCOUNT
AZURE_CONTAINER=$AZ_CONTAINER
EOF
    printf '%s\n' "$AZ_KEY" >"$dir/account.key"
    printf '%s\n' "$cs" >"$dir/connection-string"
  )
  local args=(
    --blobHost 127.0.0.1 --blobPort "$port" --location "$dir/data"
    --skipApiVersionCheck --loose --disableTelemetry
  )
  {
    echo
    echo "==== $(date -Is) starting: $BCE_AZURITE_BIN ${args[*]}"
  } >>"$logfile"
  # HOME in DIR: node/npm never touch anyone's dotfiles.
  start_daemon "$pidfile" "$logfile" env "HOME=$dir" "PATH=$PATH" "$BCE_AZURITE_BIN" "${args[@]}"
  wait_ready "$dir"
  cloudtool "$dir" create-container || die "could not create container $AZ_CONTAINER in Azurite"
  if [[ ! -s "$dir/sas-token" ]]; then
    (
      umask 077
      cloudtool "$dir" sas-token 365 >"$dir/sas-token.tmp"
      mv -f "$dir/sas-token.tmp" "$dir/sas-token"
    ) || die "could not make a SAS token"
  fi
  log "Azurite ready: $endpoint, container $AZ_CONTAINER (PID $(head -n1 "$pidfile"), log $logfile)"
}

wait_ready() {
  local dir=$1 timeout=${BCE_AZURITE_START_TIMEOUT:-60} port mk
  mk="$(marker "$dir")"
  port="$(sed -n 's/^AZURITE_PORT=//p' "$dir/azure.env")"
  local deadline=$((SECONDS + timeout))
  while :; do
    # (Checked twice: while the process execs, its cmdline can read empty.)
    if ! pidfile_alive "$dir/azurite.pid" "$mk" && ! { sleep 0.5 && pidfile_alive "$dir/azurite.pid" "$mk"; }; then
      tail_log "$dir/azurite.log" 40
      die "Azurite exited during start-up (see $dir/azurite.log)"
    fi
    if curl -s -o /dev/null -m 2 "http://127.0.0.1:$port/" && cloudtool "$dir" ping >/dev/null 2>&1; then
      return 0
    fi
    if ((SECONDS >= deadline)); then
      tail_log "$dir/azurite.log" 40
      die "Azurite on 127.0.0.1:$port did not answer within ${timeout}s"
    fi
    sleep 0.3
  done
}

az_stop() {
  local dir mk
  dir="$(abspath "$1")"
  mk="$(marker "$dir")"
  if [[ ! -s "$dir/azurite.pid" ]]; then
    log "not running in $dir (no azurite.pid)"
    return 0
  fi
  if pidfile_alive "$dir/azurite.pid" "$mk"; then
    log "stopping Azurite PID $(head -n1 "$dir/azurite.pid") in $dir"
  else
    log "Azurite PID $(head -n1 "$dir/azurite.pid") from $dir is already gone"
  fi
  stop_daemon "$dir/azurite.pid" "$mk" "${BCE_AZURITE_STOP_TIMEOUT:-30}"
  local port
  port="$(sed -n 's/^AZURITE_PORT=//p' "$dir/azure.env" 2>/dev/null)"
  if [[ -n "$port" ]]; then
    # shellcheck disable=SC2016 # $1 is expanded by the child bash
    wait_for 15 "port $port to close" bash -c '! curl -s -o /dev/null -m 1 "http://127.0.0.1:$1/"' _ "$port" ||
      warn "something still answers on port $port"
  fi
}

az_status() {
  local dir
  dir="$(abspath "$1")"
  if pidfile_alive "$dir/azurite.pid" "$(marker "$dir")" && cloudtool "$dir" ping >/dev/null 2>&1; then
    log "running: PID $(head -n1 "$dir/azurite.pid"), $(grep '^AZURE_ENDPOINT=' "$dir/azure.env")"
    return 0
  fi
  log "not running in $dir"
  return 1
}

main() {
  (($# == 2)) || usage
  case "$1" in
    start) az_start "$2" ;;
    stop) az_stop "$2" ;;
    status) az_status "$2" ;;
    *) usage ;;
  esac
}

main "$@"
