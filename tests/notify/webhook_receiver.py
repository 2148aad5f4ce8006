#!/usr/bin/env python3
"""An HTTP server that stands in for users' webhook endpoints in Taskmesh's notification tests.

    python tests/notify/webhook_receiver.py --port PORT --out FILE.jsonl

Listens on 127.0.0.1:PORT (0 = a free port), prints exactly one line `ready <port>` on stdout once
it accepts connections, and serves until SIGTERM or SIGINT, then exits 0.

Every request, any method and any path, is appended to FILE as one JSON line, written under a lock
and flushed before the answer is sent (so once a client has its answer, the line is in the file):

    {"n": 1, "path": "/plan/500,200/a?x=1", "method": "POST",
     "headers": {"content-type": "application/json", ...}, "body_b64": "...", "answered": 500}

n counts requests from 1 (going on from the last line already in FILE); path is the request target
as sent, query included; repeated headers are joined with ", ".

The answer depends on the path. /plan/<spec>[/<anything>], where spec is a comma-separated list:
the Nth request to that exact path (request target, query included) gets the Nth entry, and the
last entry repeats forever. Entries:
    CODE     that status (200..599) with the body {"ok": true} for 2xx, {"ok": false} otherwise
    CODE:S   the same, with the header Retry-After: S
    slow:S   sleeps S seconds (may be fractional), then answers 200 {"ok": true}; the line is
             written before the sleep, so it is there even if the client gave up
e.g. /plan/500,200/x  /plan/429:1,200/x  /plan/410/x  /plan/slow:5,200/x.
A spec that does not parse answers 400 {"ok": false, "error": "..."}. Any other path answers 200
{"ok": true}.
"""

import argparse
import base64
import json
import os
import re
import signal
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PLAN_RE = re.compile(r"^/plan/([^/?#]+)")
MAX_BODY = 64 * 1024 * 1024


class PlanError(ValueError):
    pass


def parse_plan(spec):
    """'429:1,200' -> [("status", 429, "1"), ("status", 200, None)]; 'slow:5' -> [("slow", 5.0)]."""
    entries = []
    for item in urllib.parse.unquote(spec).split(","):
        item = item.strip()
        if item.startswith("slow:"):
            try:
                seconds = float(item[len("slow:"):])
            except ValueError:
                raise PlanError(f"bad slow entry {item!r}")
            if not 0 <= seconds <= 3600:
                raise PlanError(f"bad slow entry {item!r}")
            entries.append(("slow", seconds))
            continue
        code, sep, retry_after = item.partition(":")
        if not code.isdigit() or not 200 <= int(code) <= 599:
            raise PlanError(f"bad plan entry {item!r}")
        if sep and not retry_after.isdigit():
            raise PlanError(f"bad Retry-After in {item!r}")
        entries.append(("status", int(code), retry_after if sep else None))
    if not entries:
        raise PlanError("empty plan")
    return entries


class Recorder:
    def __init__(self, path):
        self.lock = threading.Lock()
        self.n = self._last_n(path)
        self.per_path = {}
        self.out = open(path, "a", encoding="utf-8")

    @staticmethod
    def _last_n(path):
        last = 0
        try:
            with open(path, encoding="utf-8") as f:
                for line in f:
                    try:
                        last = max(last, int(json.loads(line)["n"]))
                    except (ValueError, KeyError, TypeError):
                        pass
        except FileNotFoundError:
            pass
        return last

    def next_for_path(self, path):
        """0-based index of this request among those to `path`."""
        with self.lock:
            i = self.per_path.get(path, 0)
            self.per_path[path] = i + 1
            return i

    def record(self, entry):
        with self.lock:
            if self.out.closed:  # shutting down
                return
            self.n += 1
            entry = {"n": self.n, **entry}
            self.out.write(json.dumps(entry, separators=(",", ":")) + "\n")
            self.out.flush()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as webhook clients pool connections
    server_version = "webhook-receiver/1"
    sys_version = ""

    def __getattr__(self, name):
        # BaseHTTPRequestHandler dispatches to do_<METHOD>: answer every method.
        if name.startswith("do_"):
            return self._serve
        raise AttributeError(name)

    def log_message(self, format, *args):
        pass

    def _read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            total = 0
            while True:
                size_line = self.rfile.readline(65537)
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    # trailers up to the empty line
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY:
                    raise ValueError("body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)  # CRLF after the chunk
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > MAX_BODY:
            raise ValueError("bad Content-Length")
        return self.rfile.read(length) if length else b""

    def _decide(self):
        """(status, extra headers, body, seconds to sleep first)."""
        m = PLAN_RE.match(self.path)
        if not m:
            return 200, {}, {"ok": True}, 0
        try:
            plan = parse_plan(m.group(1))
        except PlanError as err:
            return 400, {}, {"ok": False, "error": str(err)}, 0
        i = self.server.recorder.next_for_path(self.path)
        entry = plan[min(i, len(plan) - 1)]
        if entry[0] == "slow":
            return 200, {}, {"ok": True}, entry[1]
        _, code, retry_after = entry
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        return code, headers, {"ok": 200 <= code < 300}, 0

    def _serve(self):
        try:
            body = self._read_body()
        except (ValueError, OSError) as err:
            self.close_connection = True
            self.send_error(400, f"bad request body: {err}")
            return
        status, extra, answer, sleep_s = self._decide()
        headers = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        self.server.recorder.record({
            "path": self.path,
            "method": self.command,
            "headers": headers,
            "body_b64": base64.b64encode(body).decode("ascii"),
            "answered": status,
        })
        if sleep_s:
            time.sleep(sleep_s)
        payload = json.dumps(answer).encode() if status not in (204, 304) else b""
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, value)
        if payload:
            self.send_header("Content-Type", "application/json")
        if status not in (204, 304):
            self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD" and payload:
            self.wfile.write(payload)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, required=True, help="port on 127.0.0.1, 0 = a free one")
    p.add_argument("--out", required=True, help="JSON lines file the requests are appended to")
    args = p.parse_args()

    server = Server(("127.0.0.1", args.port), Handler)
    server.recorder = Recorder(args.out)

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())

    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    sys.stdout.write(f"ready {server.server_address[1]}\n")
    sys.stdout.flush()

    while not stop.wait(1):
        pass
    server.shutdown()
    server.server_close()
    with server.recorder.lock:
        server.recorder.out.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
