"""Checks requests as a receiver in Python would.

With the PyPI `standardwebhooks` package (pinned by requirements.txt, in the
venv scripts/standardwebhooks.sh makes), its Webhook(secret).verify(body,
headers), unchanged. The integration tests (tests/api/webhooks.rs) hand it what
their receiver got from Corral.

Reads from stdin a JSON array of {"secret", "headers", "body"}: a webhook's
secret, a request's headers and its raw body as received. Writes a JSON array
with one answer each: {"payload": what verify returned} when the request is
accepted, {"refused": "WebhookVerificationError: its message"} when not. Any
other error ends the script with a non-zero status.
"""

import json
import sys

from standardwebhooks import Webhook, WebhookVerificationError

answers = []
for case in json.load(sys.stdin):
    try:
        payload = Webhook(case["secret"]).verify(case["body"].encode(), case["headers"])
        answers.append({"payload": payload})
    except WebhookVerificationError as error:
        answers.append({"refused": f"WebhookVerificationError: {error}"})
json.dump(answers, sys.stdout)
