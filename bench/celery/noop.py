"""The Celery baseline of the benchmark: one no-op task, on a queue of its own.

Broker RabbitMQ, result backend Redis: a finished task's state is written to a store, as Taskmesh
writes a job's outcome to its database. Run by bench/celery/run.py, which sets BENCH_CELERY_QUEUE
so that the producer and its worker agree on the (random, throwaway) queue name.
"""
import logging
import os
import uuid

from celery import Celery
from celery.signals import worker_ready

# setdefault: a worker started by run.py inherits the name run.py picked on import.
QUEUE = os.environ.setdefault("BENCH_CELERY_QUEUE", f"bench-noop-{uuid.uuid4().hex[:8]}")
READY_LINE = "bench worker ready"

app = Celery(
    "bench_noop",
    broker=os.environ.get("CELERY_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672//"),
    backend=os.environ.get("CELERY_RESULT_BACKEND", "redis://127.0.0.1:6379/15"),
)
app.conf.update(
    task_default_queue=QUEUE,
    # Ack after the task ran (and its result was stored), as Taskmesh acks a dispatch only after
    # the job.finished report: a worker crash re-runs the job rather than losing it.
    task_acks_late=True,
    # worker_prefetch_multiplier stays at Celery's default (4 per pool process): the baseline is
    # Celery as its users get it.
    # Keep the worker to its queue: no remote-control (pidbox) queues, no events.
    worker_enable_remote_control=False,
    worker_send_task_events=False,
    task_send_sent_event=False,
    broker_connection_retry_on_startup=True,
)


@app.task(name="bench.noop")
def noop():
    return None


@app.task(name="bench.join")
def join(results):
    """A chord's body: how many of its header's results it received."""
    return len(results)


@worker_ready.connect
def _announce_ready(**_kwargs):
    # run.py starts the worker with --loglevel=WARNING (INFO would log two lines per task and slow
    # the worker down), so readiness is announced at WARNING for it to wait on.
    logging.getLogger("bench").warning(READY_LINE)
