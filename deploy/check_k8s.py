"""Rules the Kubernetes manifests must keep, checked on one rendered overlay
(`kubectl kustomize k8s/overlays/<name>`), named on the command line, with
k8s/base/secret.example.yaml standing in for the Secret an overlay does not make.

Core resources are validated against the API's schemas by kubernetes-validate; this file checks
what a schema cannot: that the parts fit together and keep the platform's rules.

- Each service: a Deployment running `serve <service>` with startup, readiness and liveness
  probes on /healthz and /readyz at a declared container port that its bind address listens on,
  requests and limits, the restricted security context, a ServiceAccount without a token, a
  Service whose target port is the container's, and a PodDisruptionBudget.
- The worker gets neither the internal secret nor database credentials, reaches RabbitMQ and
  Redis as its own users (worker-amqp-url, worker-redis-url), and its grace period is longer than workers.shutdown_grace_secs. Only the gateway gets the internal secret; the other
  services get their own assertion keys (TASKMESH_INTERNAL__KEYS).
- A Job that makes the workers' RabbitMQ user (`taskmesh worker-amqp-user`, the dev overlay's)
  signs in as the services' user, not the workers', and keeps the restricted security context.
- Every secretKeyRef and configMapRef names something that exists, with that key (Jobs' too).
- Network policies: a default deny, and the reachability matrix below, evaluated on the pods.
- HPAs for the gateway and task-svc on CPU (where the overlay keeps them).
- The KEDA and operator resources have the fields their CRDs require and no unknown spec field
  (deploy/crd-schemas/validate.mjs also validates KEDA's and CloudNativePG's against their
  published schemas; the RabbitMQ operator's has no package to validate with), the scaler counts
  unacknowledged jobs, and the RabbitMQ operator's pods are overridden to pass the restricted Pod
  Security Standard.
"""

import os
import re
import sys

import yaml

from services import SEALING, SERVICES, WITH_DATABASE, WITH_REDIS

# Who may open a connection to whom (pod name → callers); "*" is anything, the ingress
# controller included. Pods not listed as a destination take no connections at all but from
# the monitoring namespace.
REACH = {
    "api-gateway": {"*"},
    "user-svc": {"api-gateway"},
    "task-svc": {"api-gateway", "media-svc"},
    "notify-svc": {"api-gateway"},
    "media-svc": {"api-gateway"},
    "worker": set(),
    "postgres": WITH_DATABASE,
    "rabbitmq": WITH_DATABASE | {"worker", "api-gateway"},
    "redis": {"api-gateway", "user-svc", "task-svc", "worker"},
    "mailpit": {"notify-svc"},
}
# Secrets an operator makes, and the keys they hold.
OPERATOR_SECRETS = {
    "taskmesh-postgres-app": {"uri", "username", "password", "host", "port", "dbname"},
    "taskmesh-rabbitmq-default-user": {"username", "password", "host", "port"},
}
WORKER_GRACE_SECS = 30  # workers.shutdown_grace_secs default
# Fields each custom resource's CRD requires, and the spec fields it knows (a typo is an error).
CRDS = {
    ("keda.sh/v1alpha1", "ScaledObject"): (
        ["spec.scaleTargetRef.name", "spec.triggers"],
        {"scaleTargetRef", "pollingInterval", "cooldownPeriod", "idleReplicaCount",
         "minReplicaCount", "maxReplicaCount", "fallback", "advanced", "triggers",
         "initialCooldownPeriod"},
    ),
    ("keda.sh/v1alpha1", "TriggerAuthentication"): (
        [],
        {"secretTargetRef", "env", "hashiCorpVault", "podIdentity", "azureKeyVault",
         "configMapTargetRef", "gcpSecretManager", "awsSecretManager", "boundServiceAccountToken"},
    ),
    ("postgresql.cnpg.io/v1", "Cluster"): (
        ["spec.instances", "spec.storage.size"],
        {"instances", "imageName", "imageCatalogRef", "primaryUpdateStrategy",
         "primaryUpdateMethod", "storage", "walStorage", "resources", "bootstrap", "backup",
         "postgresql", "superuserSecret", "enableSuperuserAccess", "affinity", "monitoring",
         "managed", "description", "inheritedMetadata", "externalClusters", "replica",
         "minSyncReplicas", "maxSyncReplicas", "startDelay", "stopDelay", "logLevel"},
    ),
    ("rabbitmq.com/v1beta1", "RabbitmqCluster"): (
        [],
        {"replicas", "image", "imagePullSecrets", "service", "persistence", "resources",
         "affinity", "tolerations", "rabbitmq", "tls", "override", "skipPostDeploySteps",
         "terminationGracePeriodSeconds", "delayStartSeconds", "secretBackend"},
    ),
}

problems = []


def problem(text):
    problems.append(text)


def get(doc, path):
    for part in path.split("."):
        if not isinstance(doc, dict) or part not in doc:
            return None
        doc = doc[part]
    return doc


def selects(selector, labels):
    """Whether a label selector (matchLabels, matchExpressions with In) selects `labels`."""
    if selector is None:
        return False
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        if expression["operator"] != "In":
            raise SystemExit(f"unsupported selector operator {expression['operator']}")
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def main():
    rendered, example_path = sys.argv[1], sys.argv[2]
    docs = [d for d in yaml.safe_load_all(open(rendered)) if d]
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], {})[doc["metadata"]["name"]] = doc
    config_maps = by_kind.get("ConfigMap", {})
    secrets = {name: set((s.get("data") or {}) | (s.get("stringData") or {}))
               for name, s in by_kind.get("Secret", {}).items()}
    if not any(name.startswith("taskmesh-secrets") for name in secrets):
        example = yaml.safe_load(open(example_path))
        secrets["taskmesh-secrets"] = set(example["stringData"])
    secrets.update(OPERATOR_SECRETS)
    deployments = by_kind.get("Deployment", {})
    workloads = deployments | by_kind.get("StatefulSet", {})

    for name, (section, port) in SERVICES.items():
        check_service(name, section, port, deployments.get(name), by_kind)

    jobs = by_kind.get("Job", {})
    for name, workload in (workloads | jobs).items():
        check_refs(name, workload, config_maps, secrets)
    for name, job in jobs.items():
        check_job(name, job)

    check_network(by_kind, workloads)
    check_autoscaling(by_kind, deployments)
    check_custom_resources(by_kind, deployments, secrets, workloads)

    if problems:
        print(f"{os.path.basename(rendered)} breaks its rules:", *problems, sep="\n  ",
              file=sys.stderr)
        sys.exit(1)
    print(f"{os.path.basename(rendered)} keeps its rules ({len(docs)} resources)")


def check_service(name, section, port, deployment, by_kind):
    if deployment is None:
        problem(f"no Deployment {name}")
        return
    pod = deployment["spec"]["template"]["spec"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    container = pod["containers"][0]
    if container.get("args") != ["serve", name]:
        problem(f"{name} runs {container.get('args')}, not serve {name}")
    ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
    env = {e["name"]: e for e in container.get("env", [])}
    bind = env.get(f"TASKMESH_{section}__BIND", {}).get("value", "")
    if not bind.endswith(f":{ports.get('http')}"):
        problem(f"{name} binds {bind!r} but declares port {ports.get('http')}")
    for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"),
                        ("readinessProbe", "/readyz")):
        http = (container.get(probe) or {}).get("httpGet") or {}
        target = ports.get(http.get("port"), http.get("port"))
        if http.get("path") != path or target != port:
            problem(f"{name} {probe} is {http}, not {path} on {port}")
    resources = container.get("resources", {})
    for kind in ("requests", "limits"):
        if not {"cpu", "memory"} <= set(resources.get(kind, {})):
            problem(f"{name} lacks cpu or memory {kind}")
    security = container.get("securityContext", {})
    pod_security = pod.get("securityContext", {})
    if not (pod_security.get("runAsNonRoot") and security.get("readOnlyRootFilesystem")
            and security.get("allowPrivilegeEscalation") is False
            and security.get("capabilities", {}).get("drop") == ["ALL"]
            and get(pod_security, "seccompProfile.type") == "RuntimeDefault"):
        problem(f"{name} lacks the restricted security context")
    if pod.get("automountServiceAccountToken") is not False:
        problem(f"{name} mounts a service-account token")
    account = by_kind.get("ServiceAccount", {}).get(pod.get("serviceAccountName"))
    if account is None or account.get("automountServiceAccountToken") is not False:
        problem(f"{name} has no ServiceAccount of its own without a token")
    service = by_kind.get("Service", {}).get(name)
    if service is None or not selects({"matchLabels": service["spec"]["selector"]}, labels):
        problem(f"{name} has no Service selecting it")
    elif any(p["port"] != port or p["targetPort"] not in ("http", port)
             for p in service["spec"]["ports"]):
        problem(f"{name}'s Service ports {service['spec']['ports']} do not reach {port}")
    if not any(selects(pdb["spec"]["selector"], labels)
               for pdb in by_kind.get("PodDisruptionBudget", {}).values()):
        problem(f"{name} has no PodDisruptionBudget")
    names = set(env)
    if name == "worker":
        for forbidden in ("TASKMESH_INTERNAL__SECRET", "TASKMESH_POSTGRES__URL"):
            if forbidden in names:
                problem(f"the worker is given {forbidden}")
        if get(env.get("TASKMESH_REDIS__URL", {}), "valueFrom.secretKeyRef.key") != "worker-redis-url":
            problem("the worker does not reach Redis as its own user (worker-redis-url)")
        if get(env.get("TASKMESH_AMQP__URL", {}), "valueFrom.secretKeyRef.key") != "worker-amqp-url":
            problem("the worker does not reach RabbitMQ as its own user (worker-amqp-url)")
        if pod.get("terminationGracePeriodSeconds", 30) <= WORKER_GRACE_SECS:
            problem("the worker's terminationGracePeriodSeconds is not longer than its grace")
        if not pod.get("shareProcessNamespace"):
            problem("the worker's pod does not share its process namespace (nothing reaps what a "
                    "command job left behind)")
    elif name == "api-gateway":
        if "TASKMESH_INTERNAL__SECRET" not in names:
            problem(f"{name} lacks TASKMESH_INTERNAL__SECRET")
    else:
        # A service holds its own assertion keys only, never the secret that signs for all.
        if "TASKMESH_INTERNAL__SECRET" in names:
            problem(f"{name} is given TASKMESH_INTERNAL__SECRET (give it TASKMESH_INTERNAL__KEYS)")
        if "TASKMESH_INTERNAL__KEYS" not in names:
            problem(f"{name} lacks TASKMESH_INTERNAL__KEYS")
    if name != "worker" and (name in WITH_DATABASE) != ("TASKMESH_POSTGRES__URL" in names):
        problem(f"{name} {'lacks' if name in WITH_DATABASE else 'is given'} the database")
    if name != "worker" and (name in WITH_REDIS) != ("TASKMESH_REDIS__URL" in names):
        problem(f"{name} {'lacks' if name in WITH_REDIS else 'is given'} the Redis URL")
    if name != "worker" and get(env.get("TASKMESH_REDIS__URL", {}),
                                "valueFrom.secretKeyRef.key") == "worker-redis-url":
        problem(f"{name} reaches Redis as the workers' user")
    if name != "worker" and get(env.get("TASKMESH_AMQP__URL", {}),
                                "valueFrom.secretKeyRef.key") == "worker-amqp-url":
        problem(f"{name} reaches RabbitMQ as the workers' user")
    if (name in SEALING) != ("TASKMESH_SEALING__KEY" in names):
        problem(f"{name} {'lacks' if name in SEALING else 'is given'} the sealing key")


def check_job(name, job):
    pod = job["spec"]["template"]["spec"]
    for container in pod["containers"]:
        security = container.get("securityContext", {})
        if not (get(pod, "securityContext.runAsNonRoot")
                and get(pod, "securityContext.seccompProfile.type") == "RuntimeDefault"
                and security.get("allowPrivilegeEscalation") is False
                and security.get("capabilities", {}).get("drop") == ["ALL"]
                and pod.get("automountServiceAccountToken") is False):
            problem(f"Job {name} lacks the restricted security context or mounts a token")
        if (container.get("args") or [None])[0] != "worker-amqp-user":
            continue
        env = {e["name"]: e for e in container.get("env", [])}
        if get(env.get("TASKMESH_AMQP__URL", {}), "valueFrom.secretKeyRef.key") == "worker-amqp-url" \
                or "TASKMESH_AMQP__URL" not in env:
            problem(f"Job {name} does not make the workers' user as the services' user")
        if "RABBITMQ_WORKER_PASSWORD" not in env:
            problem(f"Job {name} is not given the workers' password (RABBITMQ_WORKER_PASSWORD)")


def check_refs(name, workload, config_maps, secrets):
    for container in workload["spec"]["template"]["spec"]["containers"]:
        for source in container.get("envFrom", []):
            ref = source.get("configMapRef") or source.get("secretRef")
            known = config_maps if "configMapRef" in source else secrets
            if ref["name"] not in known and not ref.get("optional"):
                problem(f"{name} reads {ref['name']}, which does not exist")
        for entry in container.get("env", []):
            ref = get(entry, "valueFrom.secretKeyRef")
            if ref and not ref.get("optional"):
                keys = next((keys for secret, keys in secrets.items()
                             if secret == ref["name"]), None)
                if keys is None or ref["key"] not in keys:
                    problem(f"{name} {entry['name']} reads {ref['name']}/{ref['key']}: no such key")


def check_network(by_kind, workloads):
    policies = list(by_kind.get("NetworkPolicy", {}).values())
    if not any(p["spec"]["podSelector"] == {} and "ingress" not in p["spec"]
               and p["spec"]["policyTypes"] == ["Ingress"] for p in policies):
        problem("no default-deny ingress policy")
    pods = {name: w["spec"]["template"]["metadata"]["labels"] for name, w in workloads.items()}
    ports = {name: {value for p in c.get("ports", []) for value in (p.get("name"), p["containerPort"])}
             for name, w in workloads.items() for c in w["spec"]["template"]["spec"]["containers"][:1]}

    def allowed(source, destination):
        labels = pods[destination]
        for policy in policies:
            if not selects(policy["spec"]["podSelector"], labels) and \
                    policy["spec"]["podSelector"] != {}:
                continue
            for rule in policy["spec"].get("ingress", []):
                if "ports" in rule and not any(p["port"] in ports[destination]
                                               for p in rule["ports"]):
                    continue
                froms = rule.get("from")
                if froms is None:
                    return True
                for peer in froms:
                    if source != "*" and "podSelector" in peer and "namespaceSelector" not in peer \
                            and selects(peer["podSelector"], pods[source]):
                        return True
        return False

    for destination in pods:
        expected = REACH.get(destination)
        if expected is None:
            continue
        if ("*" in expected) != allowed("*", destination):
            problem(f"{destination} {'is not' if '*' in expected else 'is'} reachable from outside")
        for source in pods:
            if source == destination:
                continue
            want = "*" in expected or source in expected
            if want != allowed(source, destination):
                problem(f"{source} {'cannot' if want else 'can'} reach {destination}")


def check_autoscaling(by_kind, deployments):
    for name, hpa in by_kind.get("HorizontalPodAutoscaler", {}).items():
        target = hpa["spec"]["scaleTargetRef"]["name"]
        if target not in deployments:
            problem(f"HPA {name} scales {target}, which does not exist")
        if not any(get(m, "resource.name") == "cpu" for m in hpa["spec"].get("metrics", [])):
            problem(f"HPA {name} does not scale on CPU")
    scaled = {h["spec"]["scaleTargetRef"]["name"]
              for h in by_kind.get("HorizontalPodAutoscaler", {}).values()}
    if scaled and scaled != {"api-gateway", "task-svc"}:
        problem(f"HPAs scale {sorted(scaled)}, not the gateway and task-svc")


def check_custom_resources(by_kind, deployments, secrets, workloads):
    for (api, kind), (required, known) in CRDS.items():
        for name, doc in by_kind.get(kind, {}).items():
            if doc["apiVersion"] != api:
                problem(f"{kind} {name} is {doc['apiVersion']}, not {api}")
            for path in required:
                if get(doc, path) in (None, [], ""):
                    problem(f"{kind} {name} lacks {path}")
            unknown = set(doc.get("spec", {})) - known
            if unknown:
                problem(f"{kind} {name} has unknown spec fields {sorted(unknown)}")
    auths = by_kind.get("TriggerAuthentication", {})
    for name, auth in auths.items():
        for ref in auth["spec"].get("secretTargetRef", []):
            if not {"parameter", "name", "key"} <= set(ref):
                problem(f"TriggerAuthentication {name} has a secretTargetRef without "
                        "parameter, name and key")
            elif ref["key"] not in secrets.get(ref["name"], set()):
                problem(f"TriggerAuthentication {name} reads {ref['name']}/{ref['key']}: no such key")
    for name, scaled in by_kind.get("ScaledObject", {}).items():
        if scaled["spec"]["scaleTargetRef"]["name"] not in deployments:
            problem(f"ScaledObject {name} scales a Deployment that does not exist")
        for trigger in scaled["spec"].get("triggers", []):
            metadata = trigger.get("metadata") or {}
            if not all(isinstance(v, str) for v in metadata.values()):
                problem(f"ScaledObject {name}: trigger metadata values must be strings")
            if trigger.get("authenticationRef", {}).get("name") not in auths:
                problem(f"ScaledObject {name} authenticates with a missing TriggerAuthentication")
            if trigger["type"] == "rabbitmq":
                if metadata.get("protocol") != "http" or \
                        metadata.get("excludeUnacknowledged", "false") != "false":
                    problem(f"ScaledObject {name} does not count unacknowledged jobs (needs http)")
                if metadata.get("mode") != "QueueLength" or not metadata.get("value"):
                    problem(f"ScaledObject {name} lacks mode QueueLength and a value")
                if not re.fullmatch(r"taskmesh\.jobs\.[a-z0-9_-]+", metadata.get("queueName", "")):
                    problem(f"ScaledObject {name} watches {metadata.get('queueName')!r}, "
                            "not a job queue")
    for name, cluster in by_kind.get("RabbitmqCluster", {}).items():
        # The operator's default pods fail the restricted Pod Security Standard.
        pod = get(cluster, "spec.override.statefulSet.spec.template.spec") or {}
        containers = {c["name"]: c for c in pod.get("containers", []) + pod.get("initContainers", [])}
        if not (get(pod, "securityContext.runAsNonRoot")
                and get(pod, "securityContext.seccompProfile.type") == "RuntimeDefault"
                and all(get(containers.get(c, {}), "securityContext.capabilities.drop") == ["ALL"]
                        for c in ("rabbitmq", "setup-container"))):
            problem(f"RabbitmqCluster {name} does not override its pods to the restricted standard")
    for name, cluster in by_kind.get("Cluster", {}).items():
        statements = " ".join(get(cluster, "spec.bootstrap.initdb.postInitSQL") or [])
        for database in ("taskmesh_users", "taskmesh_tasks", "taskmesh_notify", "taskmesh_media"):
            if f"CREATE DATABASE {database}" not in statements:
                problem(f"Cluster {name} does not create {database}")


main()
