#!/usr/bin/env python3
"""The client side of bench/load.sh: asks a site's preview of `{}` (everyone) until
Corral answers 200, as a client that honours 503s would, and says how long it took.

    load_helper.py first BASE SITE_JSON GIVE_UP_SECONDS

Sends POST /api/v1/fetch/segments/preview with the site's keys; on a 503 it waits for the
answer's Retry-After (at most POLL seconds, so that the figure is the read's, not the
client's pause) and asks again; any other status than 200 or 503 fails the run. Prints
one JSON object: seconds to the first 200 (null when none came within GIVE_UP_SECONDS),
how many 503s came before it, the largest Retry-After seen, the first 503's message, and
the counts answered.
"""

import base64
import json
import sys
import time
import urllib.error
import urllib.request

POLL = 1.0


def first(base, site_json, give_up):
    site = json.load(open(site_json))
    token = base64.b64encode(f"{site['publishable_key']}:{site['secret_key']}".encode()).decode()
    body = json.dumps({"visitor_event_query": {}, "sample": 0}).encode()
    url = f"{base}/api/v1/fetch/segments/preview?site_uuid={site['site_uuid']}"
    began = time.perf_counter()
    unavailable, retry_after_max, message = 0, 0, None
    while time.perf_counter() - began < give_up:
        request = urllib.request.Request(
            url,
            data=body,
            method="POST",
            headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
        )
        try:
            # Longer than any request timeout Corral is given: the server decides.
            with urllib.request.urlopen(request, timeout=3600) as answer:
                counts = json.loads(answer.read())["data"]
            return {
                "seconds": round(time.perf_counter() - began, 3),
                "unavailable": unavailable,
                "retry_after_max": retry_after_max,
                "message": message,
                "user_count": counts["user_count"],
            }
        except urllib.error.HTTPError as error:
            if error.code != 503:
                raise SystemExit(f"preview answered {error.code}: {error.read()[:300]!r}")
            unavailable += 1
            retry_after = int(error.headers.get("Retry-After") or 1)
            retry_after_max = max(retry_after_max, retry_after)
            text = json.loads(error.read() or b"{}").get("error")
            message = message or text
            time.sleep(min(retry_after, POLL))
    return {
        "seconds": None,
        "unavailable": unavailable,
        "retry_after_max": retry_after_max,
        "message": message,
        "user_count": None,
    }


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] != "first":
        raise SystemExit(__doc__)
    print(json.dumps(first(sys.argv[2], sys.argv[3], float(sys.argv[4]))))
