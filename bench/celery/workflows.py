#!/usr/bin/env python3
"""Celery baseline for workflows: a chord (a fan-out of N no-op tasks and a join) and a chain of
M no-op links, through RabbitMQ with the Redis result backend, each timed from the first enqueue
to the completion of its last task.

    PY=$(scripts/python-env | tail -n1); $PY bench/celery/workflows.py --fanout 1000 --chain 100

The completion time is the last task's `date_done` (the join's, or the chain's last link's), as
run.py reads it: when Celery recorded the result. Starts a prefork worker (concurrency 2, this
machine's cores) and prints one JSON line (the last line of stdout); the rest goes to stderr.
"""
import argparse, json, os, sys, time
from datetime import datetime

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.dont_write_bytecode = True
os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
import celery  # noqa: E402
from celery import chain, chord  # noqa: E402
from noop import QUEUE, app, join, noop  # noqa: E402
from run import cleanup, log, start_worker, stop_worker  # noqa: E402


def finished_at(result, deadline):
    """Waits (polling the result backend) until `result` is ready; its `date_done` (epoch s)."""
    while not result.ready():
        if time.monotonic() > deadline:
            raise SystemExit(f"{result.id} not finished in time")
        time.sleep(0.01)  # poll interval, not synchronisation: the loop re-checks the result
    if not result.successful():
        raise SystemExit(f"{result.id} ended {result.state}: {result.result}")
    return result.date_done.timestamp()


def fanout(n, deadline):
    started = time.time()
    result = chord(noop.si() for _ in range(n))(join.s())
    done = finished_at(result, deadline)
    if result.get() != n:
        raise SystemExit(f"the join saw {result.get()} results, not {n}")
    children = [r.id for r in result.parent.results] if result.parent else []
    return done - started, [result.id, *children]


def linked(m, deadline):
    started = time.time()
    result = chain(noop.si() for _ in range(m)).apply_async()
    done = finished_at(result, deadline)
    ids, node = [], result
    while node is not None:
        ids.append(node.id)
        node = node.parent
    if len(ids) != m:
        raise SystemExit(f"the chain ran {len(ids)} links, not {m}")
    return done - started, ids


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--fanout", type=int, default=1000, help="tasks in the chord's header")
    p.add_argument("--chain", type=int, default=100, help="links in the chain")
    p.add_argument("--concurrency", type=int, default=2)
    args = p.parse_args()
    log(f"celery {celery.__version__}, queue {QUEUE}, a chord of {args.fanout}, a chain of "
        f"{args.chain}, concurrency {args.concurrency}")
    worker, ids = start_worker(args.concurrency), []
    try:
        deadline = time.monotonic() + 60 + args.fanout / 20
        fan_s, fan_ids = fanout(args.fanout, deadline)
        ids += fan_ids
        deadline = time.monotonic() + 60 + args.chain
        chain_s, chain_ids = linked(args.chain, deadline)
        ids += chain_ids
    finally:
        stop_worker(worker)
        cleanup(ids)
    print(json.dumps({
        "system": "celery", "version": celery.__version__, "concurrency": args.concurrency,
        "fanout": args.fanout, "fanout_seconds": round(fan_s, 3),
        "chain": args.chain, "chain_seconds": round(chain_s, 3)}), flush=True)


if __name__ == "__main__":
    main()
