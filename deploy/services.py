"""The six Taskmesh services: each one's settings section (`TASKMESH_<SECTION>__BIND`) and port,
as every deployment file must give them."""

SERVICES = {
    "api-gateway": ("GATEWAY", 8080),
    "user-svc": ("USER", 8081),
    "task-svc": ("TASK", 8082),
    "notify-svc": ("NOTIFY", 8083),
    "media-svc": ("MEDIA", 8084),
    "worker": ("WORKER", 8085),
}
# The services with a database of their own, and its default name (`TASKMESH_<SECTION>__DATABASE`).
DATABASES = {
    "user-svc": "taskmesh_users",
    "task-svc": "taskmesh_tasks",
    "notify-svc": "taskmesh_notify",
    "media-svc": "taskmesh_media",
}
WITH_DATABASE = set(DATABASES)
# The services that use Redis (as the services' user; the workers have a user of their own).
WITH_REDIS = {"api-gateway", "user-svc", "task-svc"}
# The services that keep secrets in their database, sealed with `TASKMESH_SEALING__KEY`.
SEALING = {"user-svc", "notify-svc", "media-svc"}
