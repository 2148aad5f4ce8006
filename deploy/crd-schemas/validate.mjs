// Validates the custom resources of one rendered overlay against their projects' published CRD
// schemas: KEDA's ScaledObject and TriggerAuthentication, CloudNativePG's Cluster, the
// Prometheus Operator's PrometheusRule and PodMonitor (the
// kubernetes-models packages compile each project's CRD openAPIV3Schema into a validator).
// RabbitmqCluster has no such package; deploy/check_k8s.py checks its required and known fields.
//
//   node deploy/crd-schemas/validate.mjs rendered.yaml
//
// Then each kind found is validated once more with a field of the wrong type, which must be
// refused: a validator that accepts anything would otherwise pass unnoticed.
import fs from "node:fs";
import path from "node:path";
import YAML from "yaml";
import { ScaledObject, TriggerAuthentication } from "@kubernetes-models/keda/keda.sh/v1alpha1";
import { Cluster } from "@kubernetes-models/cloudnative-pg/postgresql.cnpg.io/v1";
import { PodMonitor } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor";
import { PrometheusRule } from "@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule";

// apiVersion/kind → the model, and a change its schema must refuse.
const MODELS = {
  "keda.sh/v1alpha1/ScaledObject": [ScaledObject, (o) => { o.spec.maxReplicaCount = "twenty"; }],
  "keda.sh/v1alpha1/TriggerAuthentication": [TriggerAuthentication, (o) => { o.spec.secretTargetRef = "x"; }],
  "postgresql.cnpg.io/v1/Cluster": [Cluster, (o) => { o.spec.instances = "three"; }],
  "monitoring.coreos.com/v1/PrometheusRule": [PrometheusRule, (o) => { o.spec.groups = "none"; }],
  "monitoring.coreos.com/v1/PodMonitor": [PodMonitor, (o) => { o.spec.podMetricsEndpoints = "http"; }],
};
// Custom resources checked elsewhere (deploy/check_k8s.py).
const ELSEWHERE = new Set(["rabbitmq.com/v1beta1/RabbitmqCluster"]);
const CORE = /^(v1|(apps|batch|policy|autoscaling|networking\.k8s\.io|rbac\.authorization\.k8s\.io)\/v\d+)$/;

const file = process.argv[2];
const problems = [];
const seen = new Map();

function refusal(Model, doc) {
  try {
    new Model(doc).validate();
    return null;
  } catch (error) {
    return error.message.split("\n")[0];
  }
}

for (const parsed of YAML.parseAllDocuments(fs.readFileSync(file, "utf8"))) {
  const doc = parsed.toJS();
  if (!doc) continue;
  const key = `${doc.apiVersion}/${doc.kind}`;
  const name = `${doc.kind} ${doc.metadata?.name}`;
  if (MODELS[key]) {
    const [Model, breakIt] = MODELS[key];
    const why = refusal(Model, doc);
    if (why) problems.push(`${name}: ${why}`);
    seen.set(key, (seen.get(key) || 0) + 1);
    const broken = structuredClone(doc);
    breakIt(broken);
    if (!refusal(Model, broken)) problems.push(`${name}: its schema accepted a field of the wrong type`);
  } else if (!CORE.test(doc.apiVersion) && !ELSEWHERE.has(key)) {
    problems.push(`${name}: ${key} has no schema here`);
  }
}

const base = path.basename(file);
if (problems.length) {
  console.error(`${base}: custom resources refused by their CRD schemas:\n  ${problems.join("\n  ")}`);
  process.exit(1);
}
const counts = [...seen].map(([key, n]) => `${n} ${key.split("/").pop()}`).join(", ");
console.log(`${base}: custom resources valid against their CRD schemas (${counts || "none"})`);
