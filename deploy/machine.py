"""What the deployment check says to this machine: its PostgreSQL, RabbitMQ (management API)
and Redis, and a Taskmesh gateway on a port."""

import json
import os
import subprocess
import time
import urllib.error
import urllib.request

MANAGEMENT = "http://127.0.0.1:15672/api"


def log(*parts):
    print("run-rendered:", *parts, flush=True)


class Failed(Exception):
    pass


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


def probe(port, path):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as answer:
            return answer.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def call(port, method, path, body=None, token=None):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, e.read()[:300]


def smoke(port, deadline):
    """A job created through the gateway (on `port`) and run by the worker."""
    email = f"deploy-check-{os.getpid()}@example.com"
    password = "deploy check password"
    status, body = call(port, "POST", "/api/v1/auth/register",
                        {"email": email, "password": password, "display_name": "Deploy check"})
    if status != 201:
        raise Failed(f"register answered {status}: {body}")
    status, body = call(port, "POST", "/api/v1/auth/login", {"email": email, "password": password})
    if status != 200:
        raise Failed(f"login answered {status}: {body}")
    token = body["access_token"]
    status, body = call(port, "POST", "/api/v1/tasks",
                        {"title": "deploy check", "job": {"kind": "sleep", "payload": {"ms": 10}}},
                        token)
    if status != 201:
        raise Failed(f"creating a job answered {status}: {body}")
    job = body["id"]
    while True:
        status, body = call(port, "GET", f"/api/v1/tasks/{job}", token=token)
        if status == 200 and body.get("status") == "completed":
            return
        if time.monotonic() > deadline:
            raise Failed(f"the job did not complete in time: {status} {body}")
        time.sleep(0.5)
