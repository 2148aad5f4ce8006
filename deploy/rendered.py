"""The rendered deployment files read as the containers they run (run_rendered.py): each
Taskmesh service's arguments, environment (Kubernetes' ConfigMap and Secret references and
`$(VAR)` expansion resolved), probes and volumes, and the one-shots that run before them; and the
users they name on RabbitMQ and Redis, the workers' own among them."""

import base64
import os
import re
import subprocess
import urllib.parse

import yaml

from machine import Failed
from services import SERVICES

EXAMPLE_SECRET = "k8s/base/secret.example.yaml"
# Stand-ins for what the operators of components/operators make.
OPERATOR_SECRETS = {
    "taskmesh-postgres-app": {
        "uri": "postgresql://app:operator-made@taskmesh-postgres-rw.taskmesh:5432/app",
        "username": "app", "password": "operator-made",
    },
    "taskmesh-rabbitmq-default-user": {"username": "operator-user", "password": "operator-made"},
}


# ---------------------------------------------------------------- reading the rendered files

class Container:
    def __init__(self, name, args, env, probes, volumes, service=None, one_shot=False):
        self.name, self.args, self.env = name, args, env
        self.service = service or name  # which of SERVICES it runs (a replica has its own name)
        self.probes = probes  # [(kind, port, path)]
        self.volumes = volumes  # container paths on volumes
        self.one_shot = one_shot  # runs to its end before the services start (no probes)


# What a deployment's one-shot containers may run (the first argument): making the workers'
# RabbitMQ user.
ONE_SHOT_COMMANDS = {"worker-amqp-user"}
DEFAULT_WORKER_USER = "taskmesh-worker"  # `taskmesh worker-amqp-user` without --user


def from_compose(path):
    doc = yaml.safe_load(open(path))
    out = []
    for name in SERVICES:
        service = doc["services"][name]
        env = service.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.split("=", 1) for item in env)
        test = service["healthcheck"]["test"]
        url = urllib.parse.urlsplit(test[-1])
        if test[:3] != ["CMD", "/usr/local/bin/taskmesh", "probe"]:
            raise Failed(f"compose {name}: health check {test} is not `taskmesh probe <url>`")
        volumes = [v.split(":")[1] if isinstance(v, str) else v["target"]
                   for v in service.get("volumes", [])]
        out.append(Container(name, service["command"], {k: str(v) for k, v in env.items()},
                             [("healthcheck", url.port, url.path)], volumes))
    for name, service in doc["services"].items():
        command = service.get("command") or []
        if name not in SERVICES and command[:1] and command[0] in ONE_SHOT_COMMANDS:
            env = service.get("environment") or {}
            if isinstance(env, list):
                env = dict(item.split("=", 1) for item in env)
            out.append(Container(name, command, {k: str(v) for k, v in env.items()}, [], [],
                                 one_shot=True))
    return out


def from_k8s(path):
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    maps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    secrets = {}
    for d in docs:
        if d["kind"] == "Secret":
            data = {k: base64.b64decode(v).decode() for k, v in
                    (d.get("data") or {}).items()}
            secrets[d["metadata"]["name"]] = data | (d.get("stringData") or {})
    if "taskmesh-secrets" not in secrets and not any(
            s.startswith("taskmesh-secrets-") for s in secrets):
        secrets["taskmesh-secrets"] = yaml.safe_load(open(EXAMPLE_SECRET))["stringData"]
    secrets |= OPERATOR_SECRETS
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    out = []
    for name in SERVICES:
        pod = deployments[name]["spec"]["template"]["spec"]
        container = pod["containers"][0]
        env = container_env(path, name, container, maps, secrets)
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        probes = []
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            http = container[kind]["httpGet"]
            probes.append((kind, ports.get(http["port"], http["port"]), http["path"]))
        volumes = [m["mountPath"] for m in container.get("volumeMounts", [])]
        if container.get("command"):
            raise Failed(f"{path} {name} overrides the image's entrypoint")
        out.append(Container(name, container["args"], env, probes, volumes))
    for job in (d for d in docs if d["kind"] == "Job"):
        name = job["metadata"]["name"]
        container = job["spec"]["template"]["spec"]["containers"][0]
        if (container.get("args") or [None])[0] not in ONE_SHOT_COMMANDS:
            continue
        if container.get("command"):
            raise Failed(f"{path} Job {name} overrides the image's entrypoint")
        out.append(Container(name, container["args"],
                             container_env(path, name, container, maps, secrets), [], [],
                             one_shot=True))
    return out


def container_env(path, name, container, maps, secrets):
    """A container's environment, its ConfigMap and Secret references resolved."""
    env = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env |= maps[source["configMapRef"]["name"]]
        else:
            env |= secrets[source["secretRef"]["name"]]
    for entry in container.get("env", []):
        if "value" in entry:
            # $(VAR) refers to a variable defined before it; $$ is a literal $.
            value = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)",
                           lambda m: env.get(m.group(1), m.group(0)), entry["value"])
            env[entry["name"]] = value.replace("$$", "$")
        else:
            ref = entry["valueFrom"].get("secretKeyRef") or entry["valueFrom"]["configMapKeyRef"]
            source = secrets if "secretKeyRef" in entry["valueFrom"] else maps
            value = source.get(ref["name"], {}).get(ref["key"])
            if value is None and not ref.get("optional"):
                raise Failed(f"{path} {name}: {entry['name']} reads a missing "
                             f"{ref['name']}/{ref['key']}")
            if value is not None:
                env[entry["name"]] = value
    return env


def url_users(containers, variable, store, default=""):
    """The users the containers' `variable` URLs name for `store`: name → (whether it is the
    workers', password); a URL without a user or password stands for `default`. The workers must
    have a user of their own: the services' user reaches what the workers may not (keys they
    trust, events they may not publish)."""
    users = {}
    for c in containers:
        url = urllib.parse.urlsplit(c.env.get(variable, ""))
        if not url.scheme:
            continue
        worker = c.service == "worker"
        if worker and not url.username:
            raise Failed(f"the worker reaches {store} without a user of its own")
        name = urllib.parse.unquote(url.username or default)
        if name in users and users[name][0] != worker:
            raise Failed(f"the worker and the services share the {store} user {name!r}")
        users[name] = (worker, urllib.parse.unquote(url.password or default))
    return {name: user for name, user in users.items() if name}


def redis_users(containers):
    """The Redis users the containers' URLs name (Redis's default user left out)."""
    return url_users(containers, "TASKMESH_REDIS__URL", "Redis")


def amqp_users(containers):
    """The RabbitMQ users the containers' URLs name (`guest` where a URL names none)."""
    return url_users(containers, "TASKMESH_AMQP__URL", "RabbitMQ", default="guest")


def worker_acl(binary, prefix):
    """The workers' Redis ACL rules for `prefix`, as the binary gives them."""
    done = subprocess.run([binary, "worker-acl"], capture_output=True, text=True,
                          env={"PATH": os.environ.get("PATH", ""),
                               "TASKMESH_REDIS__KEY_PREFIX": prefix})
    if done.returncode != 0:
        raise Failed(f"{binary} worker-acl: {done.stdout}{done.stderr}")
    return done.stdout.split()


def declared_worker_acl(label, path, containers):
    """The rules a deployment that runs its own Redis gives the workers' user (its `--user`
    arguments, without `on` and the password), or None when it runs no Redis."""
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    if label == "compose":
        redis = docs[0]["services"].get("redis")
        args = redis and redis.get("command")
    else:
        redis = next((d for d in docs if d["kind"] == "Deployment"
                      and d["metadata"]["name"] == "redis"), None)
        args = redis and redis["spec"]["template"]["spec"]["containers"][0].get("args")
    if not args:
        return None
    worker = next(c for c in containers if c.service == "worker")
    user = urllib.parse.unquote(urllib.parse.urlsplit(worker.env["TASKMESH_REDIS__URL"]).username)
    groups, current = {}, None
    for arg in map(str, args):
        if arg == "--user":
            current = None
            continue
        if arg.startswith("--"):
            current = ""
            continue
        if current is None:
            current = arg
            groups[current] = []
        elif current:
            groups[current].append(arg)
    if user not in groups:
        raise Failed(f"{label}: its Redis declares no user {user!r} for the worker")
    return [r for r in groups[user] if r != "on" and not r.startswith(">")]
