"""Starts the real binary the way each rendered deployment would, and waits for every service to
be ready on the probes that deployment declares.

    run_rendered.py BINARY compose=<rendered compose> k8s:<name>=<rendered overlay> ...

For each target, every Taskmesh container becomes one process: the image's entrypoint (the
binary) with the container's arguments and exactly its environment, resolved as the platform
would (compose's interpolation is already done by `docker-compose config`; Kubernetes' ConfigMap
and Secret references and `$(VAR)` expansion are done here, with k8s/base/secret.example.yaml,
or stand-ins for the operators' Secrets, where the overlay does not make the Secret). Only two
things change, as a container's surroundings would: dependency host names point at this
machine (127.0.0.1: its PostgreSQL, RabbitMQ and Redis, and a local S3 server where the store
is S3), and a path on a mounted volume becomes a temporary folder. The credentials in the
rendered URLs are made to work: a PostgreSQL role, a RabbitMQ user and vhost, a Redis ACL user,
each removed afterwards with the databases the services made.

Then every probe (compose's health check; Kubernetes' startup, liveness and readiness probes)
must answer 200 on the declared port and path within the deadline, and a job created through the
gateway must be run by the worker: the internal secret, the service URLs and the broker agree.
A process that exits, a probe that answers anything else, or a deadline passed fails the run.

Finally the check is shown to fail when it should: task-svc started with a misspelt variable
exits, and a wrong probe path or port is refused.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

import yaml

from services import SERVICES

DEADLINE = 120
DATABASES = ["taskmesh_users", "taskmesh_tasks", "taskmesh_notify", "taskmesh_media"]
EXAMPLE_SECRET = "k8s/base/secret.example.yaml"
# Stand-ins for what the operators of components/operators make.
OPERATOR_SECRETS = {
    "taskmesh-postgres-app": {
        "uri": "postgresql://app:operator-made@taskmesh-postgres-rw.taskmesh:5432/app",
        "username": "app", "password": "operator-made",
    },
    "taskmesh-rabbitmq-default-user": {"username": "operator-user", "password": "operator-made"},
}
URL_SCHEMES = {"postgres", "postgresql", "amqp", "amqps", "redis", "rediss", "http", "https",
               "smtp", "smtps"}
MANAGEMENT = "http://127.0.0.1:15672/api"


def log(*parts):
    print("run-rendered:", *parts, flush=True)


class Failed(Exception):
    pass


# ---------------------------------------------------------------- reading the rendered files

class Container:
    def __init__(self, name, args, env, probes, volumes):
        self.name, self.args, self.env = name, args, env
        self.probes = probes  # [(kind, port, path)]
        self.volumes = volumes  # container paths on volumes


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
    return out


def from_k8s(path):
    docs = [d for d in yaml.safe_load_all(open(path)) if d]
    maps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
    secrets = {}
    for d in docs:
        if d["kind"] == "Secret":
            data = {k: __import__("base64").b64decode(v).decode() for k, v in
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
        ports = {p["name"]: p["containerPort"] for p in container.get("ports", [])}
        probes = []
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            http = container[kind]["httpGet"]
            probes.append((kind, ports.get(http["port"], http["port"]), http["path"]))
        volumes = [m["mountPath"] for m in container.get("volumeMounts", [])]
        if container.get("command"):
            raise Failed(f"{path} {name} overrides the image's entrypoint")
        out.append(Container(name, container["args"], env, probes, volumes))
    return out


# ---------------------------------------------------------------- this machine as the surroundings

def run(*command, check=True):
    done = subprocess.run(command, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise Failed(f"{' '.join(command)}: {done.stdout}{done.stderr}")
    return done.stdout


def psql(sql):
    return run("psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-tAc", sql)


def management(method, path, body=None):
    request = urllib.request.Request(
        MANAGEMENT + path, method=method, data=None if body is None else json.dumps(body).encode(),
        headers={"content-type": "application/json",
                 "authorization": "Basic Z3Vlc3Q6Z3Vlc3Q="})  # guest:guest
    try:
        return json.loads(urllib.request.urlopen(request, timeout=10).read() or b"null")
    except urllib.error.HTTPError as e:
        if not (method == "DELETE" and e.code == 404):
            raise Failed(f"RabbitMQ management {method} {path}: {e.code} {e.read()[:200]}")
    except OSError as e:
        raise Failed(f"RabbitMQ management API at {MANAGEMENT}: {e} (scripts/test enables it)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Surroundings:
    """The dependencies the rendered URLs name, made to accept their credentials."""

    def __init__(self, containers, workdir):
        self.undo = []
        self.s3 = None
        values = {k: v for c in containers for k, v in c.env.items()}
        pg = urllib.parse.urlsplit(values["TASKMESH_POSTGRES__URL"])
        self.pg_role = urllib.parse.unquote(pg.username)
        for database in DATABASES:
            owner = psql(f"SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = '{database}'").strip()
            if owner and owner != self.pg_role:
                raise Failed(f"database {database} exists, owned by {owner}: this check makes its "
                             "own (drop it, or run the check where `taskmesh up` has not run)")
        psql(f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{self.pg_role}') "
             f"THEN CREATE ROLE \"{self.pg_role}\" LOGIN CREATEDB; END IF; END $$")
        self.drop_databases()
        self.undo.append(self.drop_databases)

        amqp = urllib.parse.urlsplit(values["TASKMESH_AMQP__URL"])
        user, password = urllib.parse.unquote(amqp.username), urllib.parse.unquote(amqp.password)
        vhost = urllib.parse.unquote(amqp.path[1:] or "/")
        quoted_vhost = urllib.parse.quote(vhost, safe="")
        if vhost != "/":
            management("PUT", f"/vhosts/{quoted_vhost}", {})
            self.undo.append(lambda: management("DELETE", f"/vhosts/{quoted_vhost}"))
        else:
            # The shared default vhost: only what this run declares is removed afterwards, so
            # nothing of the default namespace may be there already.
            if self.ours("queues") or self.ours("exchanges"):
                raise Failed("vhost / already holds taskmesh.* queues or exchanges (has "
                             "`taskmesh up` run here?): this check declares and removes its own")
            self.undo.append(self.remove_declared)
        management("PUT", f"/users/{user}", {"password": password, "tags": ""})
        self.undo.append(lambda: management("DELETE", f"/users/{user}"))
        management("PUT", f"/permissions/{quoted_vhost}/{user}",
                   {"configure": ".*", "write": ".*", "read": ".*"})

        redis = urllib.parse.urlsplit(values["TASKMESH_REDIS__URL"])
        if redis.username:
            name = urllib.parse.unquote(redis.username)
            run("redis-cli", "-h", "127.0.0.1", "ACL", "SETUSER", name, "reset", "on",
                ">" + urllib.parse.unquote(redis.password or ""), "~*", "&*", "+@all")
            self.undo.append(lambda: run("redis-cli", "-h", "127.0.0.1", "ACL", "DELUSER", name))

        if values.get("TASKMESH_FILES__STORE") == "s3":
            root = os.path.join(workdir, "s3")
            os.makedirs(os.path.join(root, values["TASKMESH_FILES__S3_BUCKET"]))
            port = free_port()
            self.s3 = subprocess.Popen(
                ["s3s-fs", "--host", "127.0.0.1", "--port", str(port),
                 "--access-key", values["TASKMESH_FILES__S3_ACCESS_KEY_ID"],
                 "--secret-key", values["TASKMESH_FILES__S3_SECRET_ACCESS_KEY"], root],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.s3_endpoint = f"http://127.0.0.1:{port}"
            self.undo.append(self.s3.terminate)

    @staticmethod
    def ours(kind):
        return [item["name"] for item in management("GET", f"/{kind}/%2F") or []
                if item["name"].startswith("taskmesh.")]

    def remove_declared(self):
        for kind in ("queues", "exchanges"):
            for name in self.ours(kind):
                management("DELETE", f"/{kind}/%2F/{urllib.parse.quote(name, safe='')}")

    def drop_databases(self):
        for database in DATABASES:
            psql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    def close(self):
        for step in reversed(self.undo):
            try:
                step()
            except Exception as e:  # keep undoing the rest
                log(f"cleanup step failed: {e}")


def localise(container, surroundings, workdir):
    """The container's environment with host names pointed here and volume paths made real."""
    env = {}
    for key, value in container.env.items():
        url = urllib.parse.urlsplit(value)
        if key == "TASKMESH_FILES__S3_ENDPOINT" and surroundings.s3:
            value = surroundings.s3_endpoint
        elif url.scheme in URL_SCHEMES and url.hostname and not key.endswith("PUBLIC_URL") \
                and not re.fullmatch(r"[\d.]+", url.hostname):
            netloc = url.netloc.rsplit("@", 1)
            host = "127.0.0.1" + (f":{url.port}" if url.port else "")
            netloc = f"{netloc[0]}@{host}" if len(netloc) == 2 else host
            value = urllib.parse.urlunsplit(url._replace(netloc=netloc))
        for volume in container.volumes:
            if value == volume or value.startswith(volume + "/"):
                value = os.path.join(workdir, "volumes", container.name) + value
                os.makedirs(value, exist_ok=True)
        env[key] = value
    return env


# ---------------------------------------------------------------- running and probing

def probe(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as answer:
            return answer.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def call(method, path, body=None, token=None):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"http://127.0.0.1:8080{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.read()[:300]


class Processes:
    def __init__(self, binary, workdir):
        self.binary, self.workdir, self.running = binary, workdir, {}

    def start(self, container, env):
        out = open(os.path.join(self.workdir, f"{container.name}.log"), "w")
        self.running[container.name] = (subprocess.Popen(
            [self.binary, *container.args], env=env, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, cwd=self.workdir), out.name)

    def exited(self):
        return {n: p.returncode for n, (p, _) in self.running.items() if p.poll() is not None}

    def tail(self, name):
        with open(self.running[name][1]) as f:
            return "".join(f.readlines()[-15:])

    def stop(self):
        for process, _ in self.running.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 50
        for process, _ in self.running.values():
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_ready(processes, containers, deadline):
    pending = {(c.name, kind, port, path) for c in containers for kind, port, path in c.probes}
    while pending:
        exited = processes.exited()
        if exited:
            name, code = next(iter(exited.items()))
            raise Failed(f"{name} exited with {code}:\n{processes.tail(name)}")
        for item in sorted(pending):
            name, kind, port, path = item
            status = probe(port, path)
            if status == 200:
                pending.discard(item)
            elif status is not None and status != 503:
                raise Failed(f"{name} {kind} http://127.0.0.1:{port}{path} answered {status}")
        if time.monotonic() > deadline:
            raise Failed("not ready in time: " + ", ".join(
                f"{n} {k} :{p}{path}" for n, k, p, path in sorted(pending)))
        time.sleep(0.5)


def smoke(deadline):
    """A job created through the gateway and run by the worker."""
    email = f"deploy-check-{os.getpid()}@example.com"
    password = "deploy check password"
    status, body = call("POST", "/api/v1/auth/register",
                        {"email": email, "password": password, "display_name": "Deploy check"})
    if status != 201:
        raise Failed(f"register answered {status}: {body}")
    status, body = call("POST", "/api/v1/auth/login", {"email": email, "password": password})
    if status != 200:
        raise Failed(f"login answered {status}: {body}")
    token = body["access_token"]
    status, body = call("POST", "/api/v1/tasks",
                        {"title": "deploy check", "job": {"kind": "sleep", "payload": {"ms": 10}}},
                        token)
    if status != 201:
        raise Failed(f"creating a job answered {status}: {body}")
    job = body["id"]
    while True:
        status, body = call("GET", f"/api/v1/tasks/{job}", token=token)
        if status == 200 and body.get("status") == "completed":
            return
        if time.monotonic() > deadline:
            raise Failed(f"the job did not complete in time: {status} {body}")
        time.sleep(0.5)


def run_target(binary, label, containers, only=None, deadline=DEADLINE):
    workdir = tempfile.mkdtemp(prefix=f"taskmesh-deploy-{label.replace(':', '-')}-")
    started = time.monotonic()
    for port in {port for _, port in SERVICES.values()}:
        if probe(port, "/healthz") is not None:
            raise Failed(f"port {port} is in use (is `taskmesh up` running?)")
    surroundings = Surroundings(containers, workdir)
    processes = Processes(binary, workdir)
    try:
        chosen = [c for c in containers if only is None or c.name in only]
        for container in chosen:
            processes.start(container, localise(container, surroundings, workdir))
        wait_ready(processes, chosen, started + deadline)
        if only is None:
            smoke(time.monotonic() + 60)
        log(f"{label}: {len(chosen)} services ready on their declared probes"
            f"{'' if only else ', a job ran through the gateway'} "
            f"({time.monotonic() - started:.1f} s)")
        return processes
    finally:
        processes.stop()
        surroundings.close()
        shutil.rmtree(workdir, ignore_errors=True)


def replicas(binary, label, containers, count=3):
    """`count` task-svc replicas started at once on a fresh database, as a Deployment's pods
    would be (each on its own address; here, its own port): every one becomes ready, the
    migrations are applied once (the migrator's advisory lock), and none had to retry."""
    task = next(c for c in containers if c.name == "task-svc")
    copies = []
    for index in range(count):
        port = 8082 + 10 * index
        copy = Container(f"task-svc-{index}", list(task.args), dict(task.env),
                         [(kind, port, path) for kind, _, path in task.probes], task.volumes)
        copy.env["TASKMESH_TASK__BIND"] = f"0.0.0.0:{port}"
        copies.append(copy)
    workdir = tempfile.mkdtemp(prefix="taskmesh-deploy-replicas-")
    surroundings = Surroundings(containers, workdir)
    processes = Processes(binary, workdir)
    started = time.monotonic()
    try:
        for copy in copies:
            processes.start(copy, localise(copy, surroundings, workdir))
        wait_ready(processes, copies, started + DEADLINE)
        applied = run("psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "taskmesh_tasks", "-tAc",
                      "SELECT count(*) || ' ' || count(*) FILTER (WHERE success) "
                      "FROM _sqlx_migrations").split()
        expected = sum(len([f for f in os.listdir(os.path.join("migrations", d))
                            if f.endswith(".sql")]) for d in ("platform", "tasks"))
        if applied != [str(expected)] * 2:
            raise Failed(f"{label}: _sqlx_migrations holds {applied} (total, succeeded), "
                         f"not {expected} applied once")
        retried = [c.name for c in copies if "waiting for a dependency" in open(
            os.path.join(workdir, f"{c.name}.log")).read()]
        if retried:
            raise Failed(f"{label}: {retried} had to retry while migrating:\n"
                         + processes.tail(retried[0]))
        log(f"{label}: {count} task-svc replicas started at once on a fresh database: all ready, "
            f"{expected} migrations applied once, no retries ({time.monotonic() - started:.1f} s)")
    finally:
        processes.stop()
        surroundings.close()
        shutil.rmtree(workdir, ignore_errors=True)


def must_fail(binary, label, containers, change, expect):
    """Runs task-svc alone with `change` applied; the run must fail, saying `expect`."""
    task = next(c for c in containers if c.name == "task-svc")
    changed = Container(task.name, list(task.args), dict(task.env), list(task.probes),
                        task.volumes)
    change(changed)
    try:
        run_target(binary, label, [c if c.name != "task-svc" else changed for c in containers],
                   only={"task-svc"}, deadline=30)
    except Failed as e:
        if expect not in str(e):
            raise Failed(f"{label}: failed, but not with {expect!r}: {e}")
        log(f"{label}: refused as it should be ({expect})")
        return
    raise Failed(f"{label}: the broken deployment was reported ready")


def main():
    binary, targets = sys.argv[1], sys.argv[2:]
    failures = []
    for target in targets:
        label, path = target.split("=", 1)
        try:
            containers = from_compose(path) if label == "compose" else from_k8s(path)
            run_target(binary, label, containers)
        except Failed as e:
            failures.append(f"{label}: {e}")
            log(f"{label}: FAILED: {e}")
    kubernetes = next(t for t in targets if t.startswith("k8s:")).split("=", 1)
    try:
        replicas(binary, f"{kubernetes[0]} task-svc ×3", from_k8s(kubernetes[1]))
    except Failed as e:
        failures.append(str(e))
        log(f"FAILED: {e}")
    first = targets[0].split("=", 1)
    containers = from_compose(first[1]) if first[0] == "compose" else from_k8s(first[1])

    def misspell(c):
        c.env["TASKMESH_TASK__BIDN"] = c.env.pop("TASKMESH_TASK__BIND")

    def wrong_path(c):
        c.probes = [(k, port, path.replace("/readyz", "/ready")) for k, port, path in c.probes]

    def wrong_port(c):
        c.env["TASKMESH_TASK__BIND"] = "0.0.0.0:8086"

    for name, change, expect in [("a misspelt variable", misspell, "exited"),
                                 ("a wrong probe path", wrong_path, "ready answered 401"),
                                 ("a wrong port", wrong_port, "not ready in time")]:
        try:
            must_fail(binary, f"{first[0]} with {name}", containers, change, expect)
        except Failed as e:
            failures.append(str(e))
            log(f"FAILED: {e}")
    if failures:
        print("run-rendered: FAILED:", *failures, sep="\n  ", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
