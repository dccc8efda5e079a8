// Validates the prometheus-operator objects of a rendered kustomization with
// the npm models of @kubernetes-models/prometheus-operator (JSON schemas
// generated from the operator's Go types): each object is constructed with
// its model class and `.validate()` throws on a schema violation.
//
// usage: node validate-prometheus-operator.mjs OPERATOR.json
//   OPERATOR.json: a JSON array of ServiceMonitor / PrometheusRule objects
//   (written by check_manifests.py). Runs offline from the directory where
//   scripts/check-deploy.sh installed the package (it copies this file there).
//
// Before trusting a pass, each object is also validated once with a known
// violation injected, which must fail: a validator that accepts anything
// would otherwise go unnoticed.
import { readFileSync } from "node:fs";
import { PrometheusRule, ServiceMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1";

const models = { ServiceMonitor, PrometheusRule };

// A copy of `obj` with one violation the schema must reject.
function broken(obj) {
  const copy = structuredClone(obj);
  if (obj.kind === "ServiceMonitor") {
    copy.spec.endpoints[0].interval = "one minute"; // not a Prometheus duration
  } else {
    delete copy.spec.groups[0].rules[0].expr; // expr is required
  }
  return copy;
}

const objects = JSON.parse(readFileSync(process.argv[2], "utf8"));
let failures = 0;
const kinds = new Set();
for (const obj of objects) {
  const Model = models[obj.kind];
  const id = `${obj.kind}/${obj.metadata?.name}`;
  if (!Model) {
    console.error(`${id}: no prometheus-operator model for this kind`);
    failures++;
    continue;
  }
  kinds.add(obj.kind);
  try {
    new Model(obj).validate();
  } catch (e) {
    console.error(`${id}: INVALID: ${e.message}`);
    failures++;
    continue;
  }
  let rejected = false;
  try {
    new Model(broken(obj)).validate();
  } catch {
    rejected = true;
  }
  if (!rejected) {
    console.error(`${id}: the validator accepted a deliberately broken copy`);
    failures++;
    continue;
  }
  const size =
    obj.kind === "PrometheusRule"
      ? `${obj.spec.groups.length} groups, ${obj.spec.groups.reduce((n, g) => n + g.rules.length, 0)} rules`
      : `${obj.spec.endpoints.length} endpoint(s)`;
  console.error(`${id}: valid (${size})`);
}
for (const kind of Object.keys(models)) {
  if (!kinds.has(kind)) {
    console.error(`no ${kind} found`);
    failures++;
  }
}
process.exit(failures ? 1 : 0);
