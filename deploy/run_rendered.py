"""Starts the real binary the way each rendered deployment would, and waits for every service to
be ready on the probes that deployment declares.

    run_rendered.py BINARY compose=<rendered compose> k8s:<name>=<rendered overlay> ...

For each target, every Taskmesh container becomes one process: the image's entrypoint (the
binary) with the container's arguments and exactly its environment, resolved as the platform
would (compose's interpolation is already done by `docker-compose config`; Kubernetes' ConfigMap
and Secret references and `$(VAR)` expansion are done by rendered.py, with
k8s/base/secret.example.yaml, or stand-ins for the operators' Secrets, where the overlay does not
make the Secret). Only what a container's surroundings would make different changes: dependency
host names point at this machine (127.0.0.1: its PostgreSQL, RabbitMQ and Redis, and a local S3
server where the store is S3), and a path on a mounted volume becomes a temporary folder.

Everything the check makes on this machine is its own, so it runs beside a platform that is
already here (`taskmesh up`, with its default ports, databases, vhost and key prefix) and never
touches it, as each container would in its own network namespace (see Sandbox): each service
listens on a free port instead of its declared one (probes, URLs and binds follow), and every
name on the shared servers carries this run's tag: the databases (`<tag>_taskmesh_users`,
...), the PostgreSQL role, the RabbitMQ vhost and users, the Redis key prefix and ACL users. The
rendered credentials are made to work under those names, and all of it is removed afterwards.
The workers' Redis user gets the rules `taskmesh worker-acl` prints (so the job below shows they
are enough), and a deployment that runs its own Redis must declare the same rules for it. The
workers' RabbitMQ user is made as the deployment makes it before any worker starts: by its
one-shot (compose's rabbitmq-worker-user, the dev overlay's Job: `taskmesh worker-amqp-user`),
or, where the broker is the operator's, by that command as docs/deploy.md tells the operator to
run it; so the worker runs the job below with the permissions the binary gives that user.

Then every probe (compose's health check; Kubernetes' startup, liveness and readiness probes)
must answer 200 on the declared port and path within the deadline, and a job created through the
gateway must be run by the worker: the internal secret, the service URLs and the broker agree.
A process that exits, a probe that answers anything else, or a deadline passed fails the run.

Finally the check is shown to fail when it should: task-svc started with a misspelt variable
exits, and a wrong probe path or port is refused.
"""

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

from beside import DefaultPlatform
from machine import Failed, log, management, probe, psql, run, smoke
from rendered import (DEFAULT_WORKER_USER, Container, amqp_users, declared_worker_acl,
                      from_compose, from_k8s, redis_users, worker_acl)
from services import DATABASES, SERVICES

DEADLINE = 120
URL_SCHEMES = {"postgres", "postgresql", "amqp", "amqps", "redis", "rediss", "http", "https",
               "smtp", "smtps"}


# ---------------------------------------------------------------- this machine as the surroundings

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Sandbox:
    """This run's own names and ports, so that nothing it makes meets what another Taskmesh on
    this machine uses: a free port for each declared one, and a tag before every name made on
    the shared PostgreSQL, RabbitMQ and Redis."""

    runs = 0

    def __init__(self):
        Sandbox.runs += 1
        self.tag = f"deploycheck{os.getpid()}r{Sandbox.runs}"
        self.ports = {port: free_port() for _, port in SERVICES.values()}

    def port(self, declared):
        return self.ports.get(int(declared), int(declared))

    def name(self, name):
        return f"{self.tag}_{name}"


class Surroundings:
    """The dependencies the rendered URLs name, made to accept their credentials under this
    run's own names (Sandbox), and removed afterwards."""

    def __init__(self, binary, containers, workdir, sandbox):
        self.undo = []
        self.s3 = None
        self.sandbox = sandbox
        values = {k: v for c in containers for k, v in c.env.items()}
        pg = urllib.parse.urlsplit(values["TASKMESH_POSTGRES__URL"])
        self.pg_role = sandbox.name(urllib.parse.unquote(pg.username))
        self.databases = [sandbox.name(d) for d in DATABASES.values()]
        psql(f'CREATE ROLE "{self.pg_role}" LOGIN CREATEDB')
        self.undo.append(lambda: psql(f'DROP ROLE IF EXISTS "{self.pg_role}"'))
        self.undo.append(self.drop_databases)

        amqp = urllib.parse.urlsplit(next(c.env["TASKMESH_AMQP__URL"] for c in containers
                                          if c.service in SERVICES and c.service != "worker"))
        self.vhost = sandbox.name(urllib.parse.unquote(amqp.path[1:]) or "default")
        quoted_vhost = urllib.parse.quote(self.vhost, safe="")
        management("PUT", f"/vhosts/{quoted_vhost}", {})
        self.undo.append(lambda: management("DELETE", f"/vhosts/{quoted_vhost}"))
        # Each RabbitMQ user the URLs name: the services' with every right on the vhost, and an
        # administrator, as a broker's default user is (it makes the workers' user); the
        # workers' is made by the binary before the worker starts (make_worker_user), and only
        # removed here.
        self.amqp_users = {}
        for name, (worker, password) in amqp_users(containers).items():
            user = sandbox.name(name)
            quoted = urllib.parse.quote(user, safe="")
            self.undo.append(lambda quoted=quoted: management("DELETE", f"/users/{quoted}"))
            self.amqp_users[name] = user
            if worker:
                continue
            management("PUT", f"/users/{quoted}", {"password": password, "tags": "administrator"})
            management("PUT", f"/permissions/{quoted_vhost}/{quoted}",
                       {"configure": ".*", "write": ".*", "read": ".*"})

        self.key_prefix = sandbox.tag + ":" + values.get("TASKMESH_REDIS__KEY_PREFIX", "taskmesh:")
        self.undo.append(self.delete_keys)
        # Each Redis user the URLs name: the services' with every key under the prefix, the
        # workers' with the rules the binary gives them (`taskmesh worker-acl`), so the job the
        # check runs shows those rules are enough.
        self.redis_users = {}
        for name, (worker, password) in redis_users(containers).items():
            user = sandbox.name(name)
            rules = (worker_acl(binary, self.key_prefix) if worker
                     else [f"~{self.key_prefix}*", "&*", "+@all"])
            run("redis-cli", "-h", "127.0.0.1", "ACL", "SETUSER", user, "reset", "on",
                ">" + password, *rules)
            self.undo.append(
                lambda user=user: run("redis-cli", "-h", "127.0.0.1", "ACL", "DELUSER", user))
            self.redis_users[name] = user

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

    def drop_databases(self):
        for database in self.databases:
            psql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    def delete_keys(self):
        keys = run("redis-cli", "-h", "127.0.0.1", "--scan", "--pattern",
                   self.key_prefix + "*").split()
        for start in range(0, len(keys), 500):
            run("redis-cli", "-h", "127.0.0.1", "UNLINK", *keys[start:start + 500])

    def rename(self, url):
        """A dependency's URL with this run's user, vhost and host (this machine)."""
        parts = urllib.parse.urlsplit(url)
        redis_user = self.redis_users.get(urllib.parse.unquote(parts.username or ""))
        amqp_user = self.amqp_users.get(urllib.parse.unquote(parts.username or ""))
        user = {"postgres": self.pg_role, "postgresql": self.pg_role, "amqp": amqp_user,
                "amqps": amqp_user, "redis": redis_user,
                "rediss": redis_user}.get(parts.scheme) if parts.username else None
        auth = ""
        if parts.username:
            auth = urllib.parse.quote(user or urllib.parse.unquote(parts.username), safe="")
            if parts.password is not None:
                auth += ":" + urllib.parse.quote(urllib.parse.unquote(parts.password), safe="")
            auth += "@"
        port = parts.port
        if parts.scheme in ("http", "https") and port:
            port = self.sandbox.port(port)
        path = parts.path
        if parts.scheme in ("amqp", "amqps"):
            path = "/" + urllib.parse.quote(self.vhost, safe="")
        host = "127.0.0.1" + (f":{port}" if port else "")
        return urllib.parse.urlunsplit(parts._replace(netloc=auth + host, path=path))

    def close(self):
        for step in reversed(self.undo):
            try:
                step()
            except Exception as e:  # keep undoing the rest
                log(f"cleanup step failed: {e}")


def localise(container, surroundings, workdir):
    """The container's environment with host names pointed here, this run's own names and
    ports (Sandbox), and volume paths made real."""
    sandbox = surroundings.sandbox
    env = {}
    for key, value in container.env.items():
        url = urllib.parse.urlsplit(value)
        if key == "TASKMESH_FILES__S3_ENDPOINT" and surroundings.s3:
            value = surroundings.s3_endpoint
        elif key.endswith("__BIND"):
            value = f"127.0.0.1:{sandbox.port(value.rsplit(':', 1)[1])}"
        elif url.scheme in URL_SCHEMES and url.hostname and not key.endswith("PUBLIC_URL") \
                and not re.fullmatch(r"[\d.]+", url.hostname):
            value = surroundings.rename(value)
        for volume in container.volumes:
            if value == volume or value.startswith(volume + "/"):
                value = os.path.join(workdir, "volumes", container.name) + value
                os.makedirs(value, exist_ok=True)
        env[key] = value
    env["TASKMESH_REDIS__KEY_PREFIX"] = surroundings.key_prefix
    if container.service in DATABASES:
        setting = f"TASKMESH_{SERVICES[container.service][0]}__DATABASE"
        env[setting] = sandbox.name(container.env.get(setting, DATABASES[container.service]))
    return env


# ---------------------------------------------------------------- running and probing

def make_worker_user(binary, containers, surroundings, workdir, deadline):
    """The workers' RabbitMQ user, made as the deployment makes it: by its one-shots (compose's
    rabbitmq-worker-user, the dev overlay's Job), run to their end; where it has none (the
    broker is the operator's), by `taskmesh worker-amqp-user` as docs/deploy.md tells the
    operator to run it: the services' URL, the worker's other broker settings, the password of
    the worker's URL."""
    one_shots = [c for c in containers if c.one_shot]
    if not one_shots:
        worker = next(c for c in containers if c.service == "worker")
        services = next(c for c in containers if c.service == "task-svc")
        url = urllib.parse.urlsplit(worker.env["TASKMESH_AMQP__URL"])
        env = {k: v for k, v in worker.env.items() if k.startswith("TASKMESH_AMQP__")}
        env["TASKMESH_AMQP__URL"] = services.env["TASKMESH_AMQP__URL"]
        env["RABBITMQ_WORKER_PASSWORD"] = urllib.parse.unquote(url.password or "")
        one_shots = [Container("worker-amqp-user (the operator's step)",
                               ["worker-amqp-user", "--user",
                                urllib.parse.unquote(url.username or "")],
                               env, [], [], one_shot=True)]
    for one_shot in one_shots:
        # The user it names (or the binary's default) is this run's own (Sandbox), as in the
        # worker's URL.
        args = [surroundings.amqp_users.get(arg, arg) if before == "--user" else arg
                for before, arg in zip([None, *one_shot.args], one_shot.args)]
        if "--user" not in args:
            args += ["--user", surroundings.sandbox.name(DEFAULT_WORKER_USER)]
        output = os.path.join(workdir, f"{one_shot.name.split()[0]}.log")
        with open(output, "w") as out:
            try:
                done = subprocess.run([binary, *args],
                                      env=localise(one_shot, surroundings, workdir), stdout=out,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      cwd=workdir, timeout=max(1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                raise Failed(f"{one_shot.name} did not finish in time")
        if done.returncode != 0:
            with open(output) as f:
                tail = "".join(f.readlines()[-15:])
            raise Failed(f"{one_shot.name} exited with {done.returncode}:\n{tail}")


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


def wait_ready(processes, containers, deadline, sandbox):
    pending = {(c.name, kind, sandbox.port(port), path)
               for c in containers for kind, port, path in c.probes}
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


def run_target(binary, label, containers, only=None, deadline=DEADLINE):
    workdir = tempfile.mkdtemp(prefix=f"taskmesh-deploy-{label.replace(':', '-')}-")
    started = time.monotonic()
    sandbox = Sandbox()
    surroundings = Surroundings(binary, containers, workdir, sandbox)
    processes = Processes(binary, workdir)
    try:
        chosen = [c for c in containers
                  if not c.one_shot and (only is None or c.name in only)]
        if any(c.service == "worker" for c in chosen):
            make_worker_user(binary, containers, surroundings, workdir, started + deadline)
        for container in chosen:
            processes.start(container, localise(container, surroundings, workdir))
        wait_ready(processes, chosen, started + deadline, sandbox)
        if only is None:
            smoke(sandbox.port(SERVICES["api-gateway"][1]), time.monotonic() + 60)
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
        port = free_port()  # each replica's own address, not one of the sandbox's
        copy = Container(f"task-svc-{index}", list(task.args), dict(task.env),
                         [(kind, port, path) for kind, _, path in task.probes], task.volumes,
                         service="task-svc")
        copy.env["TASKMESH_TASK__BIND"] = f"0.0.0.0:{port}"
        copies.append(copy)
    workdir = tempfile.mkdtemp(prefix="taskmesh-deploy-replicas-")
    sandbox = Sandbox()
    surroundings = Surroundings(binary, containers, workdir, sandbox)
    processes = Processes(binary, workdir)
    started = time.monotonic()
    try:
        for copy in copies:
            processes.start(copy, localise(copy, surroundings, workdir))
        wait_ready(processes, copies, started + DEADLINE, sandbox)
        database = sandbox.name(DATABASES["task-svc"])
        applied = run("psql", "-h", "127.0.0.1", "-U", "postgres", "-d", database, "-tAc",
                      "SELECT count(*) || ' ' || count(*) FILTER (WHERE success) "
                      "FROM _sqlx_migrations").split()
        expected = sum(len([f for f in os.listdir(os.path.join("migrations", d))
                            if f.endswith(".sql")]) for d in ("platform", "tasks"))
        if applied != [str(expected)] * 2:
            raise Failed(f"{label}: _sqlx_migrations holds {applied} (total, succeeded), "
                         f"not {expected} applied once")
        retried = [c.name for c in copies if "cannot be used yet" in open(
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


def checks(binary, targets):
    """Every run of the rendered files; yields (label, failure or None)."""
    for target in targets:
        label, path = target.split("=", 1)
        try:
            containers = from_compose(path) if label == "compose" else from_k8s(path)
            redis_users(containers)  # the worker has a Redis user of its own
            amqp_users(containers)  # and a RabbitMQ user
            declared = declared_worker_acl(label, path, containers)
            worker = next(c for c in containers if c.service == "worker")
            expected = worker_acl(binary, worker.env.get("TASKMESH_REDIS__KEY_PREFIX", "taskmesh:"))
            if declared is not None and declared != expected:
                raise Failed(f"its Redis gives the worker {declared}, not what "
                             f"`taskmesh worker-acl` prints: {expected}")
            run_target(binary, label, containers)
            yield label, None
        except Failed as e:
            yield label, f"{label}: {e}"
    kubernetes = next(t for t in targets if t.startswith("k8s:")).split("=", 1)
    label = f"{kubernetes[0]} task-svc ×3"
    try:
        replicas(binary, label, from_k8s(kubernetes[1]))
        yield label, None
    except Failed as e:
        yield label, str(e)
    first = targets[0].split("=", 1)
    containers = from_compose(first[1]) if first[0] == "compose" else from_k8s(first[1])

    def misspell(c):
        c.env["TASKMESH_TASK__BIDN"] = c.env.pop("TASKMESH_TASK__BIND")

    def wrong_path(c):
        c.probes = [(k, port, path.replace("/readyz", "/ready")) for k, port, path in c.probes]

    def wrong_port(c):
        c.env["TASKMESH_TASK__BIND"] = f"0.0.0.0:{free_port()}"  # not where its probes look

    for name, change, expect in [("a misspelt variable", misspell, "exited"),
                                 ("a wrong probe path", wrong_path, "ready answered 401"),
                                 ("a wrong port", wrong_port, "not ready in time")]:
        label = f"{first[0]} with {name}"
        try:
            must_fail(binary, label, containers, change, expect)
            yield label, None
        except Failed as e:
            yield label, str(e)


def main():
    binary, targets = sys.argv[1], sys.argv[2:]
    failures, passed = [], 0
    try:
        with DefaultPlatform(binary) as platform:
            for label, failure in checks(binary, targets):
                if failure:
                    failures.append(failure)
                    log(f"FAILED: {failure}")
                else:
                    passed += 1
            platform.verify()
            passed += 1
    except Failed as e:
        failures.append(f"beside the default platform: {e}")
        log(f"FAILED: beside the default platform: {e}")
    log(f"{passed} passed, {len(failures)} failed")
    if failures:
        print("run-rendered: FAILED:", *failures, sep="\n  ", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
