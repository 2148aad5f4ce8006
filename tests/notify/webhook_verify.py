#!/usr/bin/env python3
"""Checks the webhook requests recorded by webhook_receiver.py with the reference Standard Webhooks
library (standardwebhooks), independently of Taskmesh's own signing code.

    python tests/notify/webhook_verify.py --in FILE.jsonl --secret whsec_... [--secret whsec_...]
                                          [--path-prefix /plan/...]

Each recorded request (only those whose path starts with --path-prefix, if given) is checked with
standardwebhooks.Webhook(secret).verify(body, headers) for every secret; it is verified if any
secret verifies it. Prints one JSON object on stdout and exits 0 whatever the outcome:

    {"checked": N, "verified": M,
     "failed": [{"n": <line's n>, "error": "<why, per distinct reason, '; '-joined>"}, ...],
     "per_secret": [<requests verified with secret 1>, <with secret 2>, ...],
     "ids": [<webhook-id header of each checked request, null if absent>, ...],
     "types": [<the JSON body's "type" of each checked request, null if none>, ...]}

The library also rejects a webhook-timestamp more than 5 minutes away from now ("Message timestamp
too old" / "too new"), so run it soon after the requests were made. Exits 2 on bad arguments
(missing file, a secret that is not base64).
"""

import argparse
import base64
import json
import sys

from standardwebhooks import Webhook, WebhookVerificationError


def describe(err):
    if isinstance(err, WebhookVerificationError):
        return str(err)
    return f"{type(err).__name__}: {err}"


def body_type(body):
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    return parsed.get("type") if isinstance(parsed, dict) else None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--in", dest="infile", required=True, help="JSON lines file of webhook_receiver.py")
    p.add_argument("--secret", action="append", required=True,
                   help="whsec_<base64> signing secret; repeat for several (e.g. during rotation)")
    p.add_argument("--path-prefix", default="", help="check only requests whose path starts with this")
    args = p.parse_args()

    hooks = []
    for secret in args.secret:
        try:
            hooks.append(Webhook(secret))
        except Exception as err:  # binascii.Error, EmptyWebhookSecretError
            p.error(f"bad secret {secret!r}: {describe(err)}")

    try:
        with open(args.infile, encoding="utf-8") as f:
            records = [json.loads(line) for line in f if line.strip()]
    except OSError as err:
        p.error(f"cannot read {args.infile}: {err}")

    result = {"checked": 0, "verified": 0, "failed": [], "per_secret": [0] * len(hooks),
              "ids": [], "types": []}
    for rec in records:
        if not rec.get("path", "").startswith(args.path_prefix):
            continue
        body = base64.b64decode(rec.get("body_b64", ""))
        headers = rec.get("headers", {})
        result["checked"] += 1
        result["ids"].append(headers.get("webhook-id"))
        result["types"].append(body_type(body))
        errors = []
        ok = False
        for i, hook in enumerate(hooks):
            try:
                # json_parse=False: a signature over a body that is not JSON still verifies.
                hook.verify(body, headers, json_parse=False)
            except Exception as err:  # the library raises ValueError etc. on malformed headers
                msg = describe(err)
                if msg not in errors:
                    errors.append(msg)
                continue
            ok = True
            result["per_secret"][i] += 1
        if ok:
            result["verified"] += 1
        else:
            result["failed"].append({"n": rec.get("n"), "error": "; ".join(errors)})

    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
