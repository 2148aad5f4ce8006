#!/usr/bin/env python3
"""Celery baseline: N no-op jobs through RabbitMQ + a Redis result backend, timed end to end.

    PY=$(scripts/python-env | tail -n1); $PY bench/celery/run.py --jobs 2000 [--concurrency 2]

Starts a prefork Celery worker, enqueues N jobs from one producer as fast as it can, waits until
the result backend holds all N results, and prints one JSON line (the last line of stdout):
throughput = N / (last completion - first enqueue), latency = completion - enqueue per job.

Completion time is the result's `date_done`: Celery sets it (UTC, microsecond resolution) just
before it stores the result in Redis, i.e. when the completion is recorded, which is what Taskmesh's
figures measure too. Recording our own timestamp from inside the task would be earlier than that
(before the result is stored) and add a Redis write of our own, so date_done is used.
Everything else is logged to stderr.
"""
import argparse, json, math, os, signal, subprocess, sys, threading, time
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True  # no __pycache__ left in the source tree
os.environ["PYTHONDONTWRITEBYTECODE"] = "1"  # nor by the worker
import celery  # noqa: E402
from noop import QUEUE, READY_LINE, app, noop  # noqa: E402  (also fixes BENCH_CELERY_QUEUE)


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def percentile(sorted_values, p):
    """Nearest-rank percentile."""
    return sorted_values[max(0, math.ceil(p / 100 * len(sorted_values)) - 1)]


def start_worker(concurrency, timeout=60.0):
    cmd = [sys.executable, "-m", "celery", "-A", "noop", "worker", "-Q", QUEUE,
           "-P", "prefork", "-c", str(concurrency), "-n", f"{QUEUE}@%h", "--loglevel=WARNING",
           # Gossip, mingle and heartbeats talk to other workers on the broker: not ours to touch.
           "--without-gossip", "--without-mingle", "--without-heartbeat"]
    # Its own process group, so that the pool's children can be stopped with it if need be.
    worker = subprocess.Popen(cmd, cwd=HERE, stderr=subprocess.PIPE, text=True,
                              stdout=sys.stderr, start_new_session=True)
    ready = threading.Event()

    def pump():  # forward the worker's log to our stderr, and spot its ready line
        for line in worker.stderr:
            sys.stderr.write("  worker: " + line)
            if READY_LINE in line:
                ready.set()

    threading.Thread(target=pump, daemon=True).start()
    deadline = time.monotonic() + timeout
    while not ready.wait(0.1):
        if worker.poll() is not None or time.monotonic() > deadline:
            stop_worker(worker)
            raise SystemExit(f"celery worker did not become ready (exit {worker.returncode})")
    return worker


def stop_worker(worker):
    if worker.poll() is None:
        worker.send_signal(signal.SIGTERM)  # warm shutdown
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait()


def wait_for_results(task_ids, deadline):
    """Polls the result keys in Redis (batched MGET) until every task has a result or time is up.

    Returns {task_id: completion time (epoch s)}; exits if a task failed."""
    client, key = app.backend.client, app.backend.get_key_for_task
    pending, done = list(task_ids), {}
    while pending and time.monotonic() < deadline:
        still = []
        for i in range(0, len(pending), 1000):
            batch = pending[i:i + 1000]
            for task_id, raw in zip(batch, client.mget([key(t) for t in batch])):
                if raw is None:
                    still.append(task_id)
                    continue
                meta = json.loads(raw)
                if meta["status"] != "SUCCESS":
                    raise SystemExit(f"task {task_id} ended {meta['status']}: {meta['result']}")
                done[task_id] = datetime.fromisoformat(meta["date_done"]).timestamp()
        pending = still
        if pending:
            time.sleep(0.1)  # poll interval, not synchronisation: the loop re-checks the keys
    return done


def cleanup(task_ids):
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        channel.queue_delete(QUEUE)
        channel.exchange_delete(QUEUE)  # Celery declares a direct exchange named like the queue
    client, key = app.backend.client, app.backend.get_key_for_task
    for i in range(0, len(task_ids), 1000):  # only our keys: DB 15 may be shared
        client.delete(*[key(t) for t in task_ids[i:i + 1000]])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--jobs", type=int, required=True)
    p.add_argument("--concurrency", type=int, default=2, help="prefork processes (2 = this machine's cores)")
    p.add_argument("--deadline", type=float, help="seconds to wait for completion (default 60 + jobs/50)")
    args = p.parse_args()
    deadline_s = args.deadline or 60 + args.jobs / 50

    log(f"celery {celery.__version__}, queue {QUEUE}, {args.jobs} jobs, concurrency {args.concurrency}")
    worker, task_ids = start_worker(args.concurrency), []
    try:
        enqueued = {}
        for _ in range(args.jobs):
            t = time.time()  # wall clock, comparable with date_done (same machine)
            task_id = noop.apply_async().id
            enqueued[task_id] = t
            task_ids.append(task_id)
        log(f"enqueued {args.jobs} in {time.time() - enqueued[task_ids[0]]:.2f}s")
        done = wait_for_results(task_ids, time.monotonic() + deadline_s)
    finally:
        stop_worker(worker)
        cleanup(task_ids)
    if len(done) < args.jobs:
        log(f"only {len(done)} of {args.jobs} jobs completed within {deadline_s:g}s")
        sys.exit(1)

    first, last = min(enqueued.values()), max(done.values())
    latencies = sorted((done[t] - enqueued[t]) * 1000 for t in task_ids)
    print(json.dumps({
        "system": "celery", "version": celery.__version__, "jobs": args.jobs,
        "seconds": round(last - first, 3), "jobs_per_sec": round(args.jobs / (last - first), 1),
        "p50_ms": round(percentile(latencies, 50), 2), "p99_ms": round(percentile(latencies, 99), 2),
        "concurrency": args.concurrency}), flush=True)


if __name__ == "__main__":
    main()
