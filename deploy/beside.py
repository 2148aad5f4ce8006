"""A Taskmesh platform with every default (`taskmesh up`: ports 8080 to 8085, the databases
taskmesh_users ..., vhost /, namespace taskmesh, Redis prefix taskmesh:) running while the
deployment check runs, and shown untouched afterwards: the check makes only names of its own
(run_rendered.py's Sandbox), so it may run where a user's platform runs.

If a platform already answers on 127.0.0.1:8080, that one is used, and only looked at: it must
still be ready afterwards, its databases the same ones (no database dropped or made anew), its
queues all still there. Otherwise `taskmesh up` is started here with the defaults; where its
databases are new it is also given an account, a task and a job before the check, which must
all be there and work afterwards; what it made that was not here before is removed when it
stops.
"""

import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse

from machine import Failed, call, log, management, probe, psql, run, smoke
from services import DATABASES, SERVICES

GATEWAY = SERVICES["api-gateway"][1]
DEADLINE = 120
PASSWORD = "beside the deployment check"


def queues():
    return {q["name"] for q in management("GET", "/queues/%2F") or []
            if q["name"].startswith("taskmesh.")}


def exchanges():
    return {e["name"] for e in management("GET", "/exchanges/%2F") or []
            if e["name"].startswith("taskmesh.")}


def databases():
    """The default databases that exist, with their oids (a database made anew has a new one)."""
    names = ",".join(f"'{d}'" for d in DATABASES.values())
    rows = psql(f"SELECT datname, oid FROM pg_database WHERE datname IN ({names})").split()
    return dict(row.split("|") for row in rows)


def redis_keys():
    return run("redis-cli", "-h", "127.0.0.1", "--scan", "--pattern", "taskmesh:*").split()


class DefaultPlatform:
    def __init__(self, binary):
        self.binary = binary
        self.process = None
        self.workdir = None
        self.seeded = None

    def __enter__(self):
        self.started_here = probe(GATEWAY, "/readyz") is None
        self.before = {"databases": databases(), "queues": queues(), "exchanges": exchanges(),
                       "keys": bool(redis_keys())}
        if self.started_here:
            self.start()
        else:
            log(f"a platform is running on :{GATEWAY} (`taskmesh up`?): the check runs beside it")
        self.during = {"databases": databases(), "queues": queues()}
        return self

    def start(self):
        self.workdir = tempfile.mkdtemp(prefix="taskmesh-deploy-beside-")
        output = open(os.path.join(self.workdir, "up.log"), "w")
        env = {k: v for k, v in os.environ.items() if not k.startswith("TASKMESH_")}
        self.process = subprocess.Popen([self.binary, "up"], cwd=self.workdir, env=env,
                                        stdout=output, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + DEADLINE
        while "Taskmesh is up." not in open(output.name).read():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise Failed(f"`taskmesh up` with the defaults did not come up:\n{self.tail()}")
            time.sleep(0.5)
        if not self.before["databases"]:
            self.seed()
        log(f"`taskmesh up` started with the defaults on :{GATEWAY}"
            f"{', with an account and a task' if self.seeded else ''}")

    def seed(self):
        email = f"beside-{os.getpid()}@example.com"
        status, body = call(GATEWAY, "POST", "/api/v1/auth/register",
                            {"email": email, "password": PASSWORD, "display_name": "Beside"})
        if status != 201:
            raise Failed(f"the default platform: register answered {status}: {body}")
        token = self.login(email)
        status, task = call(GATEWAY, "POST", "/api/v1/tasks", {"title": "kept"}, token)
        if status != 201:
            raise Failed(f"the default platform: creating a task answered {status}: {task}")
        self.seeded = (email, task["id"])

    @staticmethod
    def login(email):
        status, body = call(GATEWAY, "POST", "/api/v1/auth/login",
                            {"email": email, "password": PASSWORD})
        if status != 200:
            raise Failed(f"the default platform: its account's login answered {status}: {body}")
        return body["access_token"]

    def verify(self):
        """Fails unless the platform is as the check found it."""
        if probe(GATEWAY, "/readyz") != 200:
            raise Failed(f"the platform on :{GATEWAY} is no longer ready")
        now = databases()
        changed = {d for d, oid in self.during["databases"].items() if now.get(d) != oid}
        if changed:
            raise Failed(f"the platform's databases {sorted(changed)} were dropped or made anew")
        lost = self.during["queues"] - queues()
        if lost:
            raise Failed(f"the platform's queues {sorted(lost)} are gone")
        checked = f"ready, {len(now)} databases and {len(self.during['queues'])} queues kept"
        if self.seeded:
            email, task = self.seeded
            token = self.login(email)
            status, body = call(GATEWAY, "GET", f"/api/v1/tasks/{task}", token=token)
            if status != 200 or body.get("title") != "kept":
                raise Failed(f"the platform's task answered {status}: {body}")
            smoke(GATEWAY, time.monotonic() + 60)
            checked += "; its account signs in, its task is there, a new job ran"
        log(f"the platform on :{GATEWAY} is untouched by the check: {checked}")

    def tail(self):
        with open(os.path.join(self.workdir, "up.log")) as f:
            return "".join(f.readlines()[-15:])

    def __exit__(self, *_):
        if not self.started_here:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        # Remove what this platform made that was not here before it.
        for database in set(DATABASES.values()) - set(self.before["databases"]):
            psql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        for kind, names in (("queues", queues() - self.before["queues"]),
                            ("exchanges", exchanges() - self.before["exchanges"])):
            for name in names:
                management("DELETE", f"/{kind}/%2F/{urllib.parse.quote(name, safe='')}")
        if not self.before["keys"]:
            keys = redis_keys()
            for start in range(0, len(keys), 500):
                run("redis-cli", "-h", "127.0.0.1", "UNLINK", *keys[start:start + 500])
        shutil.rmtree(self.workdir, ignore_errors=True)
