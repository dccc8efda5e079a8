#!/usr/bin/env bash
# Check the bundled Prometheus rules with promtool (Debian's `prometheus`
# package, installed here if missing):
#   * `promtool check rules` on every rules file under alerts/;
#   * `promtool test rules` on every unit test under alerts/tests/;
#   * every alert of alerts/barman-cloud-exporter.rules.yaml has a unit test
#     in which it fires and one in which it does not (`exp_alerts: []`), and a
#     runbook docs/runbooks/<Alert>.md.
# Non-interactive; needs no scenario. Prints one summary line on stdout.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$BCE_REPO_ROOT"

if ! command -v promtool >/dev/null 2>&1; then
  log "promtool missing: installing Debian's prometheus package via scripts/install-deps.sh"
  scripts/install-deps.sh
fi
need_cmd promtool

rules=(alerts/*.rules.yaml)
tests=(alerts/tests/*.yaml)
if [[ ! -e ${rules[0]} ]]; then die "no rules files under alerts/"; fi
if [[ ! -e ${tests[0]} ]]; then die "no unit tests under alerts/tests/"; fi

log "promtool $(promtool --version 2>&1 | head -n1 | awk '{print $3}'): check rules ${rules[*]}"
promtool check rules "${rules[@]}" >&2
for t in "${tests[@]}"; do
  log "promtool test rules $t"
  promtool test rules "$t" >&2
done

# Coverage: for each alert, a firing case and a quiet case in the unit tests.
main=alerts/barman-cloud-exporter.rules.yaml
missing=()
mapfile -t alerts < <(sed -n 's/^ *- alert: *//p' "$main" | sort -u)
for a in "${alerts[@]}"; do
  cases="$(awk -v a="$a" '
    $1 == "alertname:" { cur = $2; next }
    $1 == "exp_alerts:" && cur == a { if ($2 == "[]") q = 1; else f = 1 }
    END { printf "%d%d", f, q }' "${tests[@]}")"
  [[ ${cases:0:1} == 1 ]] || missing+=("$a: no unit test where it fires")
  [[ ${cases:1:1} == 1 ]] || missing+=("$a: no unit test where it stays quiet")
  [[ -f docs/runbooks/$a.md ]] || missing+=("$a: docs/runbooks/$a.md missing")
done
if ((${#missing[@]} > 0)); then
  for m in "${missing[@]}"; do log "ERROR: $m"; done
  die "${#missing[@]} coverage problem(s)"
fi
echo "alert rules: ${#rules[@]} files checked, ${#tests[@]} unit test files passed, ${#alerts[@]} alerts each tested firing and quiet, with a runbook"
