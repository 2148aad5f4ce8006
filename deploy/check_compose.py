"""Rules compose.yaml must keep, checked on its rendered form (`docker-compose config`) on stdin.

- Only the gateway and the consoles publish ports.
- Every long-running service has a health check; each Taskmesh service probes its own bind port.
- Every Taskmesh service waits for healthy dependencies.
- The services that sign and check assertions get the internal secret; workers never do.
- Only the four services with a database get its URL (not the gateway, never the workers).
- The worker can be scaled (no published port, no container name).
- Redis: the services that use it reach it as the services' user, the worker as its own
  (`taskmesh-worker`; run_rendered.py checks the rules its Redis gives that user).
"""

import sys
import urllib.parse

import yaml

from services import SEALING, SERVICES, WITH_REDIS

TASKMESH = SERVICES
PUBLISHED = {"api-gateway": {8080}, "rabbitmq": {15672}, "mailpit": {8025}, "minio": {9001}}
ONE_SHOT = {"minio-bucket"}

doc = yaml.safe_load(sys.stdin)
services = doc["services"]
problems = []

missing = set(TASKMESH) - set(services)
if missing:
    problems.append(f"services missing: {sorted(missing)}")

for name, service in services.items():
    published = {int(p["published"]) if isinstance(p, dict) else int(str(p).split(":")[0])
                 for p in service.get("ports", [])}
    if published - PUBLISHED.get(name, set()):
        problems.append(f"{name} publishes {sorted(published)}; only the gateway and consoles may")
    if name not in ONE_SHOT and "healthcheck" not in service:
        problems.append(f"{name} has no health check")

for name, (section, port) in TASKMESH.items():
    service = services.get(name)
    if service is None:
        continue
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    if service.get("command") != ["serve", name]:
        problems.append(f"{name} runs {service.get('command')}, not serve {name}")
    bind = env.get(f"TASKMESH_{section}__BIND", "")
    if bind != f"0.0.0.0:{port}":
        problems.append(f"{name} binds {bind!r}, not 0.0.0.0:{port}")
    probe = " ".join(service.get("healthcheck", {}).get("test", []))
    if f"http://127.0.0.1:{port}/readyz" not in probe:
        problems.append(f"{name} probes {probe!r}, not its readiness on {port}")
    if "TASKMESH_AMQP__URL" not in env:
        problems.append(f"{name} lacks the broker URL")
    database = "TASKMESH_POSTGRES__URL" in env
    if database != (name not in ("api-gateway", "worker")):
        problems.append(f"{name} {'is given' if database else 'lacks'} the database URL")
    secret = "TASKMESH_INTERNAL__SECRET" in env
    if name == "worker" and secret:
        problems.append("the worker is given the internal secret")
    if name != "worker" and not secret:
        problems.append(f"{name} lacks TASKMESH_INTERNAL__SECRET")
    if (name in SEALING) != ("TASKMESH_SEALING__KEY" in env):
        problems.append(f"{name} {'lacks' if name in SEALING else 'is given'} the sealing key")
    redis_user = urllib.parse.urlsplit(env.get("TASKMESH_REDIS__URL", "")).username
    if name == "worker" and redis_user != "taskmesh-worker":
        problems.append(f"the worker reaches Redis as {redis_user!r}, not its own taskmesh-worker")
    if name != "worker" and (name in WITH_REDIS) != (redis_user is not None):
        problems.append(f"{name} {'lacks' if name in WITH_REDIS else 'is given'} the Redis URL")
    for dependency, rule in service.get("depends_on", {}).items():
        if rule.get("condition") != "service_healthy":
            problems.append(f"{name} does not wait for {dependency} to be healthy")
    if name == "worker" and ("container_name" in service or service.get("ports")):
        problems.append("the worker has a container name or published port: it cannot be scaled")
    for other, (_, other_port) in TASKMESH.items():
        url = env.get(f"TASKMESH_{TASKMESH[other][0]}__URL")
        if other not in ("api-gateway", "worker") and url != f"http://{other}:{other_port}":
            problems.append(f"{name} reaches {other} at {url!r}")

if problems:
    print("compose.yaml breaks its rules:", *problems, sep="\n  ", file=sys.stderr)
    sys.exit(1)
print(f"compose.yaml keeps its rules ({len(services)} services)")
