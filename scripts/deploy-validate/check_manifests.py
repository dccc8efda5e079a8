"""Checks a rendered kustomization (scripts/check-deploy.sh runs it with the venv's python).

usage: check_manifests.py RENDERED.yaml OUT_DIR

Asserts the rules of issue #5 on the rendered objects (security context,
probes, port names, ServiceMonitor knobs, NetworkPolicy, dashboard and
PrometheusRule equal to their sources), then writes into OUT_DIR:

  core.yaml       the core kinds, for `kubernetes-validate --strict`;
  operator.json   the prometheus-operator kinds, for validate-prometheus-operator.mjs;
  config.yaml     the exporter configuration from the rendered ConfigMap, every
                  *_file path moved into OUT_DIR/files/ (created with dummy
                  content), for `barman-cloud-exporter check-config`.

Every *_file of the configuration must lie under a Secret volume mounted into
the exporter container. Exits 1 with one line per problem.
"""

import json
import os
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RULES = os.path.join(ROOT, "alerts", "barman-cloud-exporter.rules.yaml")
DASHBOARDS = os.path.join(ROOT, "dashboards")
APP = {"app.kubernetes.io/name": "barman-cloud-exporter"}
CORE = {"ServiceAccount", "ConfigMap", "Deployment", "StatefulSet", "Service", "NetworkPolicy"}
OPERATOR = {"ServiceMonitor", "PrometheusRule"}
FILE_KEYS = ("access_key_id_file", "secret_access_key_file", "session_token_file")

problems = []


def check(cond, msg):
    if not cond:
        problems.append(msg)
    return cond


def one(objs, kind, name=None):
    found = [o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    check(len(found) == 1, f"exactly one {kind} {name or ''}: found {len(found)}")
    return found[0] if found else {}


def labels(o):
    return o.get("metadata", {}).get("labels") or {}


def matches(selector, lbls):
    return bool(selector) and all(lbls.get(k) == v for k, v in selector.items())


def check_deployment(dep):
    spec = dep["spec"]["template"]["spec"]
    pod_sc = spec.get("securityContext", {})
    check(pod_sc.get("runAsNonRoot") is True, "Deployment: pod runAsNonRoot: true")
    check(pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", "Deployment: seccompProfile RuntimeDefault")
    check(spec.get("automountServiceAccountToken") is False, "Deployment: automountServiceAccountToken false")
    containers = spec["containers"]
    check(len(containers) == 1, "Deployment: one container")
    c = containers[0]
    sc = c.get("securityContext", {})
    check(sc.get("allowPrivilegeEscalation") is False, "container: allowPrivilegeEscalation false")
    check(sc.get("readOnlyRootFilesystem") is True, "container: readOnlyRootFilesystem true")
    check(sc.get("capabilities", {}).get("drop") == ["ALL"], "container: capabilities drop [ALL]")
    ports = {p["name"]: p for p in c.get("ports", [])}
    check(ports.get("metrics", {}).get("containerPort") == 9875, "container: port 9875 named metrics")
    check(any(a == "--web.listen-address=:9875" for a in c.get("args", [])), "container: listens on :9875")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = c.get(probe, {}).get("httpGet", {})
        check(get.get("path") == path and get.get("port") == "metrics", f"container: {probe} GET {path} on metrics")
    res = c.get("resources", {})
    check(res.get("requests", {}).get("memory") and res.get("limits", {}).get("memory"), "container: memory request and limit")
    check(res.get("requests", {}).get("cpu"), "container: cpu request")
    check(matches(dep["spec"]["selector"]["matchLabels"], labels(dep["spec"]["template"])), "Deployment: selector matches the pod")
    return spec, c


def check_statefulset(sts, svc):
    """The sharded form: each pod one shard, from its ordinal."""
    spec = sts["spec"]
    c = spec["template"]["spec"]["containers"][0]
    args = c.get("args", [])
    replicas = spec.get("replicas", 1)
    check(spec.get("serviceName") == svc["metadata"]["name"], "StatefulSet: serviceName is the Service")
    check(svc["spec"].get("clusterIP") == "None", "StatefulSet: its Service is headless (clusterIP: None)")
    check(spec.get("podManagementPolicy") == "Parallel", "StatefulSet: podManagementPolicy Parallel")
    check("--shard-from-pod-name" in args, "StatefulSet: --shard-from-pod-name")
    check(f"--total-shards={replicas}" in args, f"StatefulSet: --total-shards={replicas} (= replicas)")
    env = {e["name"]: e for e in c.get("env", [])}
    field = env.get("POD_NAME", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
    check(field == "metadata.name", "StatefulSet: POD_NAME from the downward API (metadata.name)")


def check_service(svc, dep):
    ports = {p.get("name"): p for p in svc["spec"]["ports"]}
    check(ports.get("metrics", {}).get("targetPort") == "metrics", "Service: port named metrics -> targetPort metrics")
    check(matches(svc["spec"]["selector"], labels(dep["spec"]["template"])), "Service: selector matches the pod")
    check(svc["metadata"]["name"] == "barman-cloud-exporter", "Service: named barman-cloud-exporter (the alerts' job label)")


def seconds(d):
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for u in ("ms", "s", "m", "h"):
        if d.endswith(u) and d[: -len(u)].isdigit():
            return int(d[: -len(u)]) * units[u]
    raise ValueError(d)


def check_servicemonitor(sm, svc):
    check("release" in labels(sm), "ServiceMonitor: the `release` selector label (knob) is set")
    check(matches(sm["spec"]["selector"].get("matchLabels"), labels(svc)), "ServiceMonitor: selects the Service")
    eps = sm["spec"]["endpoints"]
    check(len(eps) == 1, "ServiceMonitor: one endpoint")
    ep = eps[0]
    check(ep.get("port") == "metrics", "ServiceMonitor: port metrics")
    check(ep.get("honorLabels") is True, "ServiceMonitor: honorLabels true")
    try:
        check(seconds(ep["scrapeTimeout"]) <= seconds(ep["interval"]), "ServiceMonitor: scrapeTimeout <= interval")
    except (KeyError, ValueError) as e:
        check(False, f"ServiceMonitor: interval and scrapeTimeout set ({e})")


def check_rule(rule):
    check("release" in labels(rule), "PrometheusRule: the `release` selector label (knob) is set")
    with open(RULES) as f:
        source = yaml.safe_load(f)
    check(rule.get("spec") == source, f"PrometheusRule: spec differs from {os.path.relpath(RULES, ROOT)} (run scripts/sync-deploy.sh)")
    check(len(source.get("groups", [])) > 0, "PrometheusRule: has rule groups")


def check_dashboards(objs):
    cms = [o for o in objs if o["kind"] == "ConfigMap" and labels(o).get("grafana_dashboard") == "1"]
    check(len(cms) == 1, f"one ConfigMap labelled grafana_dashboard: \"1\": found {len(cms)}")
    for cm in cms:
        check(cm["metadata"]["name"] == "barman-cloud-exporter-dashboard", "dashboard ConfigMap: fixed name (no hash suffix)")
        want = sorted(f for f in os.listdir(DASHBOARDS) if f.endswith(".json"))
        check(sorted(cm.get("data", {})) == want, f"dashboard ConfigMap: keys {sorted(cm.get('data', {}))} == {want}")
        for name in want:
            with open(os.path.join(DASHBOARDS, name)) as f:
                check(cm["data"].get(name) == f.read(), f"dashboard ConfigMap: {name} equals dashboards/{name}")


def check_networkpolicy(np, pod_labels):
    spec = np["spec"]
    check(matches(spec["podSelector"].get("matchLabels"), pod_labels), "NetworkPolicy: selects the exporter pod")
    check(sorted(spec.get("policyTypes", [])) == ["Egress", "Ingress"], "NetworkPolicy: Ingress and Egress")
    ingress_ports = [p.get("port") for r in spec.get("ingress", []) for p in r.get("ports", [])]
    check(ingress_ports == ["metrics"], f"NetworkPolicy: ingress only on metrics: {ingress_ports}")
    check(all(r.get("from") for r in spec.get("ingress", [])), "NetworkPolicy: ingress restricted to a source")
    egress_ports = {p.get("port") for r in spec.get("egress", []) for p in r.get("ports", [])}
    for port in (53, 443, 9000, 5432):
        check(port in egress_ports, f"NetworkPolicy: egress port {port}")


def extract_config(objs, pod, container, out_dir):
    vols = {v["name"]: v for v in pod.get("volumes", [])}
    cfg_cm_name = None
    secret_dirs = []
    for m in container.get("volumeMounts", []):
        v = vols.get(m["name"], {})
        if "configMap" in v and m["mountPath"].endswith("/config.yaml"):
            cfg_cm_name = v["configMap"]["name"]
            check(m.get("subPath") == "config.yaml", "config mount: subPath config.yaml")
            check(f"--config.file={m['mountPath']}" in container.get("args", []), "--config.file points at the config mount")
        elif "secret" in v:
            secret_dirs.append(m["mountPath"].rstrip("/") + "/")
    if not check(cfg_cm_name, "Deployment: mounts the config ConfigMap at .../config.yaml"):
        return
    cm = one(objs, "ConfigMap", cfg_cm_name)
    text = cm.get("data", {}).get("config.yaml")
    if not check(text, f"ConfigMap {cfg_cm_name}: has config.yaml"):
        return
    check(labels(cm).get("app.kubernetes.io/name") == "barman-cloud-exporter", f"ConfigMap {cfg_cm_name}: app label")
    config = yaml.safe_load(text)
    files_dir = os.path.join(out_dir, "files")
    os.makedirs(files_dir, exist_ok=True)

    def relocate(path, where):
        check(any(path.startswith(d) for d in secret_dirs), f"{where}: {path} is not under a mounted Secret {secret_dirs}")
        local = os.path.join(files_dir, path.lstrip("/").replace("/", "_"))
        with open(local, "w") as f:
            f.write("dummy-for-check-config\n")
        return local

    for i, t in enumerate(config.get("targets", [])):
        where = f"targets[{i}] ({t.get('name')})"
        lbls = t.get("labels") or {}
        check("namespace" in lbls, f"{where}: label namespace (the dashboard's variable)")
        if len(t.get("servers") or []) == 1:
            check("cluster" in lbls, f"{where}: one server, so label cluster (the dashboard's variable)")
        for k in FILE_KEYS:
            if k in t:
                t[k] = relocate(t[k], f"{where}.{k}")
        pg = t.get("postgres") or {}
        if "url_file" in pg:
            pg["url_file"] = relocate(pg["url_file"], f"{where}.postgres.url_file")
    with open(os.path.join(out_dir, "config.yaml"), "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)


def main():
    rendered, out_dir = sys.argv[1], sys.argv[2]
    with open(rendered) as f:
        objs = [o for o in yaml.safe_load_all(f) if o]
    kinds = sorted(o["kind"] for o in objs)
    # The workload: the base's Deployment, or a StatefulSet of shards.
    workload = "StatefulSet" if "StatefulSet" in kinds else "Deployment"
    want = sorted(["ServiceAccount", "ConfigMap", "ConfigMap", workload, "Service", "ServiceMonitor", "PrometheusRule", "NetworkPolicy"])
    check(kinds == want, f"kinds {kinds} == {want}")
    for o in objs:
        check(labels(o).get("app.kubernetes.io/name") == APP["app.kubernetes.io/name"], f"{o['kind']} {o['metadata']['name']}: app label")
    dep = one(objs, workload)
    svc = one(objs, "Service")
    if dep and svc and workload == "StatefulSet":
        check_statefulset(dep, svc)
    if dep and svc:
        pod, container = check_deployment(dep)
        sa = one(objs, "ServiceAccount")
        check(pod.get("serviceAccountName") == sa.get("metadata", {}).get("name"), "Deployment: uses the ServiceAccount")
        check_service(svc, dep)
        check_servicemonitor(one(objs, "ServiceMonitor"), svc)
        check_networkpolicy(one(objs, "NetworkPolicy"), labels(dep["spec"]["template"]))
        extract_config(objs, pod, container, out_dir)
    check_rule(one(objs, "PrometheusRule"))
    check_dashboards(objs)

    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "core.yaml"), "w") as f:
        yaml.safe_dump_all([o for o in objs if o["kind"] in CORE], f, sort_keys=False)
    with open(os.path.join(out_dir, "operator.json"), "w") as f:
        json.dump([o for o in objs if o["kind"] in OPERATOR], f)
    check(all(o["kind"] in CORE | OPERATOR for o in objs), "every kind is validated by one of the two validators")

    if problems:
        for p in problems:
            print(f"{rendered}: {p}", file=sys.stderr)
        sys.exit(1)
    print(f"{rendered}: {len(objs)} objects pass the policy checks", file=sys.stderr)


if __name__ == "__main__":
    main()
