#!/usr/bin/env python3
"""A Taskmesh worker in Python: joins a job pool over AMQP with pika (contract: docs/asyncapi.yaml).

Config: TASKMESH_AMQP__URL, TASKMESH_AMQP__NAMESPACE (default taskmesh).
"""
import argparse, json, os, signal, socket, sys, time, uuid
from datetime import datetime, timezone

import pika
from pika.exceptions import ChannelClosedByBroker, NackError, UnroutableError


class Permanent(Exception):
    """Retrying cannot help: the job is reported failed with retryable=false (dead-lettered)."""


def py_add(payload, progress):
    def number(x):
        return isinstance(x, (int, float)) and not isinstance(x, bool)
    if not (isinstance(payload, dict) and number(payload.get("a")) and number(payload.get("b"))):
        raise Permanent('py.add wants a payload {"a": number, "b": number}')
    progress(100, "added")  # optional; here to show job.progress
    return {"sum": payload["a"] + payload["b"]}


HANDLERS = {"py.add": py_add, "noop": lambda payload, progress: {}}


def now():
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def log(*args):
    print(*args, file=sys.stderr, flush=True)


class Worker:
    def __init__(self, url, ns, pool, prefetch, worker_id):
        self.url, self.prefetch, self.worker_id = url, prefetch, worker_id
        self.exchange, self.queue = f"{ns}.events", f"{ns}.jobs.{pool}"
        self.stopping = False  # set by SIGTERM/SIGINT

    def wait_for_queue(self, limit=60.0):
        # The platform declares the pool queue, with arguments that differ per deployment;
        # declaring it here with other ones would fail (PRECONDITION_FAILED). Only check it exists.
        deadline = time.monotonic() + limit
        while not self.stopping:
            ch = self.conn.channel()  # a failed passive declare closes its channel: use a fresh one
            try:
                ch.queue_declare(self.queue, passive=True)
                ch.close()
                return True
            except ChannelClosedByBroker as e:
                if e.reply_code != 404 or time.monotonic() >= deadline:
                    raise
            log(f"waiting for queue {self.queue}")
            self.conn.sleep(1.0)  # unlike time.sleep, keeps the connection's heartbeats going
        return False

    def publish(self, event_type, task_id, data):
        """Publishes a report; returns once the broker confirms, raises if it is unroutable."""
        event_id = str(uuid.uuid4())
        event = {"specversion": "1.0", "id": event_id, "source": "/taskmesh/python-worker",
                 "type": event_type, "subject": task_id, "time": now(),
                 "datacontenttype": "application/json", "dataversion": 1, "data": data}
        props = pika.BasicProperties(content_type="application/cloudevents+json",
                                     delivery_mode=2, message_id=event_id)
        self.ch.basic_publish(self.exchange, event_type, json.dumps(event).encode(), props,
                              mandatory=True)

    def handle(self, tag, body):
        try:
            event = json.loads(body)
            job = event["data"]
            task_id, kind, attempt = job["task_id"], job["kind"], job["attempt"]
            ids = {"task_id": task_id, "dispatch_id": job["dispatch_id"], "run_id": str(uuid.uuid4())}
            valid = event["type"] == "job.dispatch" and event["dataversion"] == 1
        except (ValueError, KeyError, TypeError):
            valid = False
        if not valid:  # unknown type, version or shape: dead-letter it rather than guess
            log(f"rejecting delivery {tag}: not a job.dispatch of dataversion 1")
            return self.ch.basic_nack(tag, requeue=False)

        seq = 0

        def progress(percent=None, message=None):  # handed to handlers; seq orders the reports
            nonlocal seq
            seq += 1
            self.publish("job.progress", task_id,
                         {**ids, "seq": seq, "percent": percent, "message": message})

        started_at = now()
        run = {**ids, "worker_id": self.worker_id, "attempt": attempt}
        try:
            self.publish("job.started", task_id, {**run, "started_at": started_at})
            outcome, result, error, retryable = "succeeded", None, None, True
            try:
                handler = HANDLERS.get(kind)
                if handler is None:
                    raise Permanent(f"no handler for kind {kind} in the Python worker")
                result = handler(job.get("payload"), progress)
            except Permanent as e:
                outcome, error, retryable = "failed", str(e), False
            except (UnroutableError, NackError):
                raise
            except Exception as e:  # a bug or a passing fault: the platform may retry
                outcome, error = "failed", f"{type(e).__name__}: {e}"
            self.publish("job.finished", task_id, {
                **run, "outcome": outcome, "result": result, "error": error,
                "retryable": retryable, "started_at": started_at, "ended_at": now()})
        except (UnroutableError, NackError) as e:
            # No queue took the report (or the broker refused it): hand the job back, after a
            # pause so that a missing report queue does not become a busy loop.
            log(f"task {task_id}: report not delivered ({e!r}); requeueing the dispatch")
            self.conn.sleep(1.0)
            return self.ch.basic_nack(tag, requeue=True)
        # Ack only now that job.finished is confirmed: a crash before this line means the
        # dispatch is redelivered and runs again (at-least-once; idempotency_key dedups effects).
        self.ch.basic_ack(tag)
        print(f"task {task_id} kind {kind} -> {outcome}", flush=True)

    def run(self):
        self.conn = pika.BlockingConnection(pika.URLParameters(self.url))
        if not self.wait_for_queue():
            return self.conn.close()
        self.ch = self.conn.channel()
        self.ch.exchange_declare(self.exchange, "topic", durable=True)
        self.ch.confirm_delivery()  # from now on basic_publish waits for the broker's confirm
        self.ch.basic_qos(prefetch_count=self.prefetch)
        # inactivity_timeout makes the generator yield (None, None, None) every second, so a
        # stop request is noticed between jobs and never interrupts one.
        deliveries = self.ch.consume(self.queue, inactivity_timeout=1.0)
        print(f"python worker ready on {self.queue}", flush=True)
        for method, _props, body in deliveries:
            if self.stopping:
                break  # a delivery not started is returned to the queue when the channel closes
            if method is not None:
                self.handle(method.delivery_tag, body)
        self.ch.cancel()  # requeues what was prefetched but not started
        self.conn.close()


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--pool", default="default")
    p.add_argument("--prefetch", type=int, default=1, help="unacked dispatches held at once")
    p.add_argument("--worker-id", default=f"python-{socket.gethostname()}-{os.getpid()}")
    args = p.parse_args()
    worker = Worker(os.environ.get("TASKMESH_AMQP__URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
                    os.environ.get("TASKMESH_AMQP__NAMESPACE", "taskmesh"),
                    args.pool, args.prefetch, args.worker_id)

    def on_signal(_signum, _frame):  # only a flag: the job in hand runs to its end
        worker.stopping = True
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    worker.run()
    log("python worker stopped")


if __name__ == "__main__":
    main()
