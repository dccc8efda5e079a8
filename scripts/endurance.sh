#!/usr/bin/env bash
# Endurance run (not in CI; its figures are in docs/reliability.md): the
# release exporter collects the real scenario every second for SECONDS while
# its RSS, open file descriptors, OS threads and tokio tasks are sampled every
# 10 s from /proc and /metrics. Prints a JSON summary (first, last and max
# of each, and RSS every 60 s) and exits 1 if any of them grew beyond a small
# tolerance.
#
# usage: scripts/endurance.sh [SECONDS] [SCENARIO_DIR]
#   SECONDS       default 600 (10 minutes)
#   SCENARIO_DIR  an existing scenario (scenario.sh up DIR [+ extra DIR]);
#                 default: build one in a temp dir and purge it afterwards
# Env: BCE_EXPORTER_BIN (default: cargo build --release).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BCE_LOG_TAG=endurance
source scripts/lib.sh

SECONDS_TO_RUN="${1:-600}"
SCENARIO_DIR="${2:-}"
scripts/install-deps.sh
export AWS_EC2_METADATA_DISABLED=true
if [[ -z "${BCE_EXPORTER_BIN:-}" ]]; then
  cargo build --locked --release --bin barman-cloud-exporter >&2
  BCE_EXPORTER_BIN="$BCE_REPO_ROOT/target/release/barman-cloud-exporter"
fi
own=""
if [[ -z "$SCENARIO_DIR" ]]; then
  SCENARIO_DIR="$(mktemp -d /tmp/bce-endurance.XXXXXX)"
  own=1
  scripts/scenario.sh up "$SCENARIO_DIR" >/dev/null
  scripts/scenario.sh extra "$SCENARIO_DIR" >/dev/null
fi
cleanup() { [[ -z "$own" ]] || scripts/scenario.sh purge "$SCENARIO_DIR" || true; }
trap cleanup EXIT

"$BCE_SYSTEM_PYTHON" - "$BCE_EXPORTER_BIN" "$SCENARIO_DIR/scenario.json" "$SECONDS_TO_RUN" <<'PY'
import json, os, re, socket, subprocess, sys, tempfile, time, urllib.request

exporter, scenario_path, duration = sys.argv[1], sys.argv[2], int(sys.argv[3])
sc = json.load(open(scenario_path))
extra = {}
try:
    extra = json.load(open(os.path.join(os.path.dirname(scenario_path), "extra.json")))
except OSError:
    pass
d = tempfile.mkdtemp(prefix="bce-endurance-exporter.")
open(f"{d}/ak", "w").write(sc["s3"]["access_key"])
open(f"{d}/sk", "w").write(sc["s3"]["secret_key"])
def target(name, dest, pg=None):
    t = (f"  - name: {name}\n    destination_path: \"{dest}\"\n    endpoint_url: \"{sc['s3']['endpoint']}\"\n"
         f"    force_path_style: true\n    access_key_id_file: \"{d}/ak\"\n    secret_access_key_file: \"{d}/sk\"\n")
    if pg:
        t += f"    postgres:\n      url: \"{pg}\"\n      server: \"{sc['postgres']['server']}\"\n"
    return t
config = "interval: 1s\ntimeout: 30s\ntargets:\n" + target("scenario", sc["destination_path"], sc["postgres"]["url"])
for name, layout in extra.items():
    for i, l in enumerate(layout if isinstance(layout, list) else [layout]):
        if isinstance(l, dict) and "destination_path" in l:
            config += target(f"extra-{name}-{i}", l["destination_path"])
open(f"{d}/config.yaml", "w").write(config)
with socket.socket() as s:
    s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
log = open(f"{d}/exporter.log", "w")
p = subprocess.Popen([exporter, "--config.file", f"{d}/config.yaml", "--web.listen-address", f"127.0.0.1:{port}",
                      "--log.level", "warn"], stdout=log, stderr=subprocess.STDOUT)

def metrics():
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return r.read().decode()

def value(text, name):
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
    return total

def sample(t0):
    status = open(f"/proc/{p.pid}/status").read()
    m = metrics()
    return {"t": round(time.monotonic() - t0), "rss_bytes": int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) * 1024,
            "fds": len(os.listdir(f"/proc/{p.pid}/fd")), "threads": int(re.search(r"Threads:\s+(\d+)", status).group(1)),
            "tasks": int(value(m, "barman_cloud_exporter_tasks")),
            "walks": int(value(m, "barman_cloud_s3_walks_total")),
            "errors": int(value(m, "barman_cloud_collector_errors_total"))}

try:
    for _ in range(100):
        try:
            metrics(); break
        except OSError:
            time.sleep(0.1)
    time.sleep(30)  # warm-up: first walks, caches filled, connection pools open
    t0 = time.monotonic()
    samples = [sample(t0)]
    while time.monotonic() - t0 < duration:
        time.sleep(10)
        samples.append(sample(t0))
finally:
    p.terminate(); p.wait(10); log.close()
first, last = samples[0], samples[-1]
summary = {k: {"first": first[k], "last": last[k], "max": max(s[k] for s in samples)}
           for k in ("rss_bytes", "fds", "threads", "tasks")}
summary["seconds"] = last["t"]
summary["rss_mib_every_60s"] = [round(x["rss_bytes"] / 2**20, 2) for x in samples[::6]]
summary["walks"] = last["walks"] - first["walks"]
summary["errors"] = last["errors"] - first["errors"]
summary["targets"] = config.count("- name:")
print(json.dumps(summary, indent=2))
grew = [k for k in ("fds", "threads", "tasks") if summary[k]["last"] > summary[k]["first"] + 2] + \
       (["rss_bytes"] if summary["rss_bytes"]["last"] > summary["rss_bytes"]["first"] * 1.2 + 2**20 else [])
if grew:
    print(f"grew: {grew}", file=sys.stderr); sys.exit(1)
PY
