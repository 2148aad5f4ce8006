#!/usr/bin/env python3
"""A real SMTP server (aiosmtpd) that stores every accepted message as a file, for Taskmesh's
notification tests.

    python tests/notify/smtp_sink.py --port PORT --dir DIR [--auth USER:PASS] [--reject-first N]

Listens on 127.0.0.1:PORT (0 = a free port), prints exactly one line `ready <port>` on stdout once
it accepts connections, and serves until SIGTERM or SIGINT, then exits 0.

Each accepted message becomes DIR/<counter:06d>-<random hex>.eml, written to a .tmp name in DIR and
renamed into place before the server answers `250 OK`, so a reader that lists *.eml never sees a
partial file. The file is the message exactly as received (after SMTP dot-unstuffing), preceded by
two header lines:

    X-Sink-Mail-From: <envelope sender, empty for the null sender>
    X-Sink-Rcpt-To: <envelope recipients, comma-separated>

ending in CRLF, or LF if the message's first line ends in a bare LF. The counter goes on from the
highest one already in DIR, so files sort in acceptance order even across restarts.

--auth USER:PASS  AUTH PLAIN and LOGIN are advertised without TLS and required before MAIL
                  (`530 5.7.0 Authentication required` otherwise; wrong credentials get 535).
                  Without it AUTH is neither advertised nor required.
--reject-first N  the first N messages are refused with `451 4.3.0 try again later`, as the reply
                  to the end of DATA (the client has sent the body), then messages are accepted.
"""

import argparse
import asyncio
import concurrent.futures
import logging
import os
import re
import secrets
import signal
import sys
import warnings

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

# Messages of 10 MiB must pass; this is also what EHLO advertises as SIZE.
MAX_MESSAGE_BYTES = 32 * 1024 * 1024
COUNTER_RE = re.compile(r"^(\d{6,})-[0-9a-f]+\.eml$")


class SinkHandler:
    def __init__(self, directory, reject_first, executor):
        self.directory = directory
        self.reject_left = reject_first
        self.executor = executor
        self.counter = self._highest_counter()

    def _highest_counter(self):
        highest = 0
        for name in os.listdir(self.directory):
            m = COUNTER_RE.match(name)
            if m:
                highest = max(highest, int(m.group(1)))
        return highest

    async def handle_DATA(self, server, session, envelope):
        # Runs on the event loop thread only, so the counters need no lock.
        if self.reject_left > 0:
            self.reject_left -= 1
            return "451 4.3.0 try again later"
        self.counter += 1
        name = f"{self.counter:06d}-{secrets.token_hex(8)}"
        raw = envelope.original_content
        if raw is None:
            raw = envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", errors="surrogateescape")
        # aiosmtpd records the null sender (MAIL FROM:<>) as "<>".
        sender = "" if envelope.mail_from in (None, "<>") else envelope.mail_from
        first_nl = raw.find(b"\n")
        eol = b"\n" if first_nl >= 0 and (first_nl == 0 or raw[first_nl - 1 : first_nl] != b"\r") else b"\r\n"
        head = (
            b"X-Sink-Mail-From: " + sender.encode("utf-8", errors="surrogateescape") + eol
            + b"X-Sink-Rcpt-To: " + ",".join(envelope.rcpt_tos).encode("utf-8", errors="surrogateescape") + eol
        )
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self.executor, self._store, name, head, raw)
        except OSError as err:
            print(f"smtp_sink: cannot store {name}: {err}", file=sys.stderr, flush=True)
            return "451 4.3.0 sink could not store the message"
        return "250 OK"

    def _store(self, name, head, raw):
        tmp = os.path.join(self.directory, name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(head)
            f.write(raw)
        os.rename(tmp, os.path.join(self.directory, name + ".eml"))


def make_authenticator(user, password):
    want = LoginPassword(user.encode("utf-8"), password.encode("utf-8"))

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            mechanism in ("PLAIN", "LOGIN")
            and isinstance(auth_data, LoginPassword)
            and auth_data.login == want.login
            and auth_data.password == want.password
        )
        # handled=False: smtp_AUTH then answers 235 or 535 itself (the default, handled=True,
        # would leave the client waiting for a reply that never comes).
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

    return authenticator


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, required=True, help="port on 127.0.0.1, 0 = a free one")
    p.add_argument("--dir", required=True, help="where accepted messages are written")
    p.add_argument("--auth", metavar="USER:PASS", help="require AUTH PLAIN/LOGIN with these")
    p.add_argument("--reject-first", type=int, default=0, metavar="N",
                   help="answer 451 to the first N messages")
    args = p.parse_args()
    if args.auth is not None and ":" not in args.auth:
        p.error("--auth must be USER:PASS")
    if args.reject_first < 0:
        p.error("--reject-first must be >= 0")
    return args


async def serve(args):
    os.makedirs(args.dir, exist_ok=True)
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="store")
    handler = SinkHandler(args.dir, args.reject_first, executor)

    smtp_kwargs = dict(
        hostname="smtp-sink.localhost",
        data_size_limit=MAX_MESSAGE_BYTES,
        enable_SMTPUTF8=True,
    )
    if args.auth is not None:
        user, _, password = args.auth.partition(":")
        smtp_kwargs.update(
            auth_required=True,
            auth_require_tls=False,
            authenticator=make_authenticator(user, password),
        )

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, **smtp_kwargs), host="127.0.0.1", port=args.port,
        backlog=512, reuse_address=True,
    )
    port = server.sockets[0].getsockname()[1]

    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    sys.stdout.write(f"ready {port}\n")
    sys.stdout.flush()

    await stop.wait()
    server.close()
    # Files being written finish (renamed or not) before we exit; open sessions are dropped.
    executor.shutdown(wait=True)


def main():
    args = parse_args()
    # aiosmtpd warns (Python warning + log line) when AUTH is required without TLS: that is the point.
    warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    logging.getLogger("mail.log").setLevel(logging.ERROR)
    asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
