"""Rules compose.yaml must keep, checked on its rendered form (`docker-compose config`) on stdin.

- Only the gateway and the consoles publish ports.
- Every long-running service has a health check; each Taskmesh service probes its own bind port.
- Every Taskmesh service waits for healthy dependencies.
- The services that sign and check assertions get the internal secret; workers never do.
- Only the four services with a database get its URL (not the gateway, never the workers).
- The worker can be scaled (no published port, no container name).
- Redis: the services that use it reach it as the services' user, the worker as its own
  (`taskmesh-worker`; run_rendered.py checks the rules its Redis gives that user).
- RabbitMQ: the services reach it as the services' user, the worker as its own
  (`taskmesh-worker`, on the same vhost), which the one-shot rabbitmq-worker-user makes with
  `taskmesh worker-amqp-user` (as the services' user, with the worker's password) before the
  worker starts (run_rendered.py runs it, and the worker as that user).
"""

import sys
import urllib.parse

import yaml

from services import SEALING, SERVICES, WITH_REDIS

TASKMESH = SERVICES
PUBLISHED = {"api-gateway": {8080}, "rabbitmq": {15672}, "mailpit": {8025}, "minio": {9001}}
ONE_SHOT = {"minio-bucket", "rabbitmq-worker-user"}
WORKER_USER = "taskmesh-worker"


def environment(service):
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return env

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
    env = environment(service)
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
    amqp_user = urllib.parse.urlsplit(env.get("TASKMESH_AMQP__URL", "")).username
    if name == "worker" and amqp_user != WORKER_USER:
        problems.append(f"the worker reaches RabbitMQ as {amqp_user!r}, not its own {WORKER_USER}")
    if name != "worker" and amqp_user == WORKER_USER:
        problems.append(f"{name} reaches RabbitMQ as the workers' user")
    for dependency, rule in service.get("depends_on", {}).items():
        if dependency in ONE_SHOT:
            if rule.get("condition") != "service_completed_successfully":
                problems.append(f"{name} does not wait for {dependency} to finish")
        elif rule.get("condition") != "service_healthy":
            problems.append(f"{name} does not wait for {dependency} to be healthy")
    if name == "worker" and ("container_name" in service or service.get("ports")):
        problems.append("the worker has a container name or published port: it cannot be scaled")
    for other, (_, other_port) in TASKMESH.items():
        url = env.get(f"TASKMESH_{TASKMESH[other][0]}__URL")
        if other not in ("api-gateway", "worker") and url != f"http://{other}:{other_port}":
            problems.append(f"{name} reaches {other} at {url!r}")

# The workers' RabbitMQ user: made before any worker starts, by the services' user, with the
# password in the worker's URL, on the vhost the services use.
worker_env = environment(services.get("worker", {}))
worker_url = urllib.parse.urlsplit(worker_env.get("TASKMESH_AMQP__URL", ""))
services_url = urllib.parse.urlsplit(environment(services.get("task-svc", {}))
                                     .get("TASKMESH_AMQP__URL", ""))
maker = services.get("rabbitmq-worker-user")
if maker is None:
    problems.append("no rabbitmq-worker-user service makes the workers' RabbitMQ user")
else:
    maker_env = environment(maker)
    maker_url = urllib.parse.urlsplit(maker_env.get("TASKMESH_AMQP__URL", ""))
    if maker.get("command") != ["worker-amqp-user", "--user", WORKER_USER]:
        problems.append(f"rabbitmq-worker-user runs {maker.get('command')}, "
                        f"not worker-amqp-user --user {WORKER_USER}")
    if maker_url.username != services_url.username or maker_url.path != services_url.path:
        problems.append("rabbitmq-worker-user does not sign in as the services' RabbitMQ user")
    if maker_env.get("RABBITMQ_WORKER_PASSWORD") != worker_url.password:
        problems.append("rabbitmq-worker-user gives the workers' user another password than "
                        "the worker's URL holds")
    if urllib.parse.urlsplit(maker_env.get("TASKMESH_AMQP__MANAGEMENT_URL", "")).hostname \
            != "rabbitmq":
        problems.append("rabbitmq-worker-user does not reach RabbitMQ's management API")
    if maker.get("restart") != "no":
        problems.append("rabbitmq-worker-user is restarted (it is a one-shot)")
    if (maker.get("depends_on") or {}).get("rabbitmq", {}).get("condition") != "service_healthy":
        problems.append("rabbitmq-worker-user does not wait for RabbitMQ to be healthy")
    if "rabbitmq-worker-user" not in (services.get("worker", {}).get("depends_on") or {}):
        problems.append("the worker does not wait for rabbitmq-worker-user")
if worker_url.path != services_url.path:
    problems.append(f"the worker's vhost {worker_url.path!r} is not the services' "
                    f"{services_url.path!r}")

if problems:
    print("compose.yaml breaks its rules:", *problems, sep="\n  ", file=sys.stderr)
    sys.exit(1)
print(f"compose.yaml keeps its rules ({len(services)} services)")
