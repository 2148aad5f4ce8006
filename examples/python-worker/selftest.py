#!/usr/bin/env python3
"""Checks worker.py against a real RabbitMQ, in a throwaway namespace it deletes afterwards.

    PY=$(scripts/python-env | tail -n1); $PY examples/python-worker/selftest.py

Plays the platform's part: starts the worker before the pool queue exists (it must wait for it),
declares the topology, publishes dispatches, reads the worker's reports, then stops the worker
with SIGTERM and checks that every dispatch was acked or dead-lettered. Exits 1 on failure.
"""
import json, os, queue, signal, subprocess, sys, threading, time, uuid
from datetime import datetime

import pika

URL = os.environ.get("TASKMESH_AMQP__URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
NS = f"pytest-{uuid.uuid4().hex[:8]}"
POOL = "py"
EXCHANGE, JOBS = f"{NS}.events", f"{NS}.jobs.{POOL}"
DLQ, REPORTS = f"{JOBS}.dlq", f"{NS}.job-reports"
WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "worker.py")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"FAIL: {what}", file=sys.stderr)


def lines_of(stream):
    """A queue fed with the lines of a pipe by a thread, so reads can have deadlines."""
    q = queue.Queue()
    threading.Thread(target=lambda: [q.put(l.rstrip("\n")) for l in stream], daemon=True).start()
    return q


def wait_line(q, want, seen, timeout=30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = q.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        seen.append(line)
        if want in line:
            return True
    raise SystemExit(f"FAIL: worker did not print {want!r} in {timeout}s; got {seen}")


def rfc3339(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).tzinfo is not None


def dispatch(ch, kind, payload, type_="job.dispatch", version=1, raw=None):
    task_id = str(uuid.uuid4())
    event = {"specversion": "1.0", "id": str(uuid.uuid4()), "source": "/taskmesh/selftest",
             "type": type_, "subject": task_id, "time": "2024-01-01T00:00:00Z",
             "datacontenttype": "application/json", "dataversion": version,
             "data": {"task_id": task_id, "dispatch_id": str(uuid.uuid4()), "kind": kind,
                      "payload": payload, "pool": POOL, "attempt": 1, "max_attempts": 3,
                      "timeout_ms": 30000, "idempotency_key": f"key-{task_id}",
                      "priority": "normal"}}
    props = pika.BasicProperties(content_type="application/cloudevents+json", delivery_mode=2,
                                 message_id=event["id"], priority=4)
    body = raw if raw is not None else json.dumps(event).encode()
    ch.basic_publish(EXCHANGE, f"job.dispatch.{POOL}", body, props, mandatory=True)
    return task_id


def main():
    conn = pika.BlockingConnection(pika.URLParameters(URL))
    ch = conn.channel()
    ch.confirm_delivery()
    env = {**os.environ, "TASKMESH_AMQP__URL": URL, "TASKMESH_AMQP__NAMESPACE": NS}
    worker = subprocess.Popen([sys.executable, WORKER, "--pool", POOL, "--worker-id", "selftest-w"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err, out_seen, err_seen = lines_of(worker.stdout), lines_of(worker.stderr), [], []
    try:
        ch.exchange_declare(EXCHANGE, "topic", durable=True)
        ch.queue_declare(REPORTS, durable=True)
        for key in ("job.started", "job.progress", "job.finished"):
            ch.queue_bind(REPORTS, EXCHANGE, key)
        # The worker must wait for the pool queue rather than declare it.
        wait_line(err, f"waiting for queue {JOBS}", err_seen)
        ch.queue_declare(DLQ, durable=True)
        # Arguments the worker does not know about (a dead-letter target so that rejected
        # dispatches can be seen): its passive declare must not care.
        ch.queue_declare(JOBS, durable=True, arguments={
            "x-queue-type": "classic", "x-max-priority": 9,
            "x-dead-letter-exchange": "", "x-dead-letter-routing-key": DLQ})
        ch.queue_bind(JOBS, EXCHANGE, f"job.dispatch.{POOL}")
        wait_line(out, f"python worker ready on {JOBS}", out_seen)

        expect = {  # task_id -> (kind, outcome, result, error, retryable)
            dispatch(ch, "py.add", {"a": 2, "b": 3.5}): ("py.add", "succeeded", {"sum": 5.5}, None, True),
            dispatch(ch, "py.add", {"a": "x"}): ("py.add", "failed", None, "*", False),
            dispatch(ch, "noop", None): ("noop", "succeeded", {}, None, True),
            dispatch(ch, "resize", {}): ("resize", "failed", None,
                                         "no handler for kind resize in the Python worker", False),
        }
        dispatch(ch, "noop", None, version=2)           # unknown dataversion: rejected
        dispatch(ch, "noop", None, type_="job.other")   # wrong type: rejected
        dispatch(ch, "noop", None, raw=b"not json")     # unreadable: rejected

        reports, deadline = [], time.monotonic() + 30
        while time.monotonic() < deadline and sum(r[1]["type"] == "job.finished" for r in reports) < 4:
            method, props, body = ch.basic_get(REPORTS, auto_ack=True)
            if method is None:
                conn.sleep(0.05)
                continue
            reports.append((method, json.loads(body), props))
        for method, ev, props in reports:
            check(method.routing_key == ev["type"], f"routing key {method.routing_key} != type")
            check(props.content_type == "application/cloudevents+json", "content_type")
            check(props.delivery_mode == 2 and props.message_id == ev["id"], "delivery_mode/message_id")
            check(ev["specversion"] == "1.0" and ev["source"] == "/taskmesh/python-worker"
                  and ev["datacontenttype"] == "application/json" and ev["dataversion"] == 1
                  and rfc3339(ev["time"]) and ev["subject"] == ev["data"]["task_id"], f"envelope {ev}")
        by_task = {}
        for _, ev, _ in reports:
            by_task.setdefault(ev["data"]["task_id"], []).append(ev)
        for task_id, (kind, outcome, result, error, retryable) in expect.items():
            evs = by_task.get(task_id, [])
            types = [e["type"] for e in evs]
            want_types = ["job.started"] + ["job.progress"] * (outcome == "succeeded" and kind == "py.add") + ["job.finished"]
            check(types == want_types, f"{kind}: reports {types}, want {want_types}")
            if types != want_types:
                continue
            started, fin = evs[0]["data"], evs[-1]["data"]
            check(started["worker_id"] == fin["worker_id"] == "selftest-w", "worker_id")
            check(started["attempt"] == fin["attempt"] == 1, "attempt")
            check(len({e["data"]["run_id"] for e in evs}) == 1, "one run_id per run")
            check(started["started_at"] == fin["started_at"] and rfc3339(fin["ended_at"]), "times")
            if kind == "py.add" and outcome == "succeeded":
                check(evs[1]["data"]["seq"] == 1 and evs[1]["data"]["percent"] == 100, "progress")
            check((fin["outcome"], fin["result"], fin["retryable"]) == (outcome, result, retryable),
                  f"{kind}: finished {fin}")
            check(fin["error"] == error if error != "*" else bool(fin["error"]), f"{kind}: error {fin['error']}")
            wait_line(out, f"task {task_id} kind {kind} -> {outcome}", out_seen, timeout=5)

        # The bad dispatches were published last: wait until all three are dead-lettered.
        deadline = time.monotonic() + 10
        while ch.queue_declare(DLQ, passive=True).method.message_count < 3 and time.monotonic() < deadline:
            conn.sleep(0.05)
        worker.send_signal(signal.SIGTERM)
        check(worker.wait(timeout=15) == 0, f"worker exit code {worker.returncode} after SIGTERM")
        # Every dispatch is gone from the pool queue: acked (unacked ones would be back after the
        # worker's connection closed), and the three bad ones dead-lettered, not requeued.
        check(ch.queue_declare(JOBS, passive=True).method.message_count == 0, "pool queue not empty")
        check(ch.queue_declare(DLQ, passive=True).method.message_count == 3, "3 dispatches in the DLQ")
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        # A fresh connection: the test's channel may have been closed by an error.
        with pika.BlockingConnection(pika.URLParameters(URL)) as clean:
            cch = clean.channel()
            for q in (JOBS, DLQ, REPORTS):
                cch.queue_delete(q)
            cch.exchange_delete(EXCHANGE)
        if conn.is_open:
            conn.close()
    if failures:
        while not err.empty():
            err_seen.append(err.get())
        print(f"selftest FAILED ({len(failures)} checks); worker stderr: {err_seen}", file=sys.stderr)
        sys.exit(1)
    print(f"selftest passed: {len(expect)} jobs reported and acked, 3 bad dispatches dead-lettered")


if __name__ == "__main__":
    main()
