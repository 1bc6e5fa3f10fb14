#!/usr/bin/env python3
"""Helper of bench/abuse.sh: heavy queries against a live server, and what cheap
requests of the same and of another site pay meanwhile.

    run URL SITE_UUID PK SK OTHER_SITE_UUID OTHER_PK OTHER_SK --pid PID --out FILE
        1. saves the issue's abusive query (all/not alternating around 469 event tests
           with `where`, as deep as the nesting limit allows): must be refused with a
           422;
        2. saves the heaviest query the limits let through (64 event tests, no type, a
           `where` each) and a cheap one on each site;
        3. measures the cheap queries' latency at rest (ROUNDS calls each);
        4. sends PARALLEL stats calls of the heavy query at once, each on its own
           connection, and while they run measures the cheap queries of both sites
           again, call after call;
        5. after the last heavy answer, samples the server's CPU time (utime + stime of
           /proc/PID/stat) every 50 ms until it stops moving: how long the server stayed
           busy after its last answer.

Standard library only; the HTTP client is bench/eval_helper.py's.
"""

import argparse
import json
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no __pycache__ left in bench/
# eval_helper imports duckdb and chdb only when it runs them.
from eval_helper import Corral  # noqa: E402

PARALLEL = 12
ROUNDS = 40


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


class Client(Corral):
    """eval_helper's client (one kept-alive connection). Its answers are returned, not
    checked: refusals are what this benchmark looks for."""

    def __init__(self, url, site, pk, sk, timeout=120):
        super().__init__(url, site, pk, sk)
        self.conn.timeout = timeout

    def save(self, name, query):
        """(status, parsed answer) of saving a segment."""
        status, text, _ = self.call("POST", "/fetch/segments",
                                    {"segment": {"name": name, "visitor_event_query": query}})
        return status, json.loads(text)

    def timed_stats(self, segment_id):
        """(status, seconds) of GET /stats/segment."""
        status, _, seconds = self.call("GET", f"/stats/segment?segment_id={segment_id}")
        return status, seconds


def abusive():
    tests = [{"event": {"where": {"url": {"contains": f"zz{i}"}}}} for i in range(469)]
    query = {"any": tests}
    # 30 levels: with `any` and the event tests, the deepest the limit allows.
    for level in range(30):
        query = {"all": [query]} if level % 2 == 0 else {"not": query}
    return query


def heaviest():
    return {"any": [{"event": {"where": {"url": {"contains": f"zz{i}"}}}} for i in range(64)]}


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / 100.0


def summary(values):
    values = sorted(values)
    p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
    return {"calls": len(values), "median_ms": statistics.median(values) * 1e3,
            "p99_ms": p99 * 1e3, "max_ms": values[-1] * 1e3}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("cmd", choices=["run"])
    parser.add_argument("url")
    parser.add_argument("site")
    parser.add_argument("pk")
    parser.add_argument("sk")
    parser.add_argument("other_site")
    parser.add_argument("other_pk")
    parser.add_argument("other_sk")
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    mine = Client(args.url, args.site, args.pk, args.sk)
    other = Client(args.url, args.other_site, args.other_pk, args.other_sk)
    stamp = str(int(time.time()))
    result = {}

    status, body = mine.save(f"abuse: the issue's query {stamp}", abusive())
    result["abusive_query"] = {"status": status, "answer": body}
    if status != 422:
        fail(f"the abusive query was not refused: {status} {body}")

    status, body = mine.save(f"abuse: heaviest allowed {stamp}", heaviest())
    if status != 201:
        fail(f"the heaviest allowed query was refused: {status} {body}")
    heavy_id = body["data"]["id"]
    cheap_ids = {}
    for name, client in (("same site", mine), ("other site", other)):
        status, body = client.save(f"abuse: cheap {stamp}", {"subscribed": True})
        if status != 201:
            fail(f"a cheap query was refused: {status} {body}")
        cheap_ids[name] = (client, body["data"]["id"])

    # Warm: both audiences read, the heavy query's detail column loaded.
    for client, cid in cheap_ids.values():
        client.timed_stats(cid)
    status, seconds = mine.timed_stats(heavy_id)
    result["heavy_alone_s"] = seconds
    result["heavy_alone_status"] = status

    at_rest = {name: [] for name in cheap_ids}
    for _ in range(ROUNDS):
        for name, (client, cid) in cheap_ids.items():
            status, seconds = client.timed_stats(cid)
            if status != 200:
                fail(f"cheap call answered {status}")
            at_rest[name].append(seconds)
    result["cheap_at_rest"] = {name: summary(v) for name, v in at_rest.items()}

    answers = []
    lock = threading.Lock()

    def heavy_call():
        client = Client(args.url, args.site, args.pk, args.sk, timeout=300)
        status, seconds = client.timed_stats(heavy_id)
        with lock:
            answers.append((status, seconds, time.perf_counter()))

    started = time.perf_counter()
    threads = [threading.Thread(target=heavy_call) for _ in range(PARALLEL)]
    for t in threads:
        t.start()
    during = {name: [] for name in cheap_ids}
    while any(t.is_alive() for t in threads):
        for name, (client, cid) in cheap_ids.items():
            status, seconds = client.timed_stats(cid)
            if status != 200:
                fail(f"cheap call answered {status} while heavy ones ran")
            during[name].append(seconds)
    for t in threads:
        t.join()
    last_answer = max(at for _, _, at in answers)
    # Busy after the last answer: CPU time still moving.
    before = cpu_seconds(args.pid)
    busy_until = last_answer
    quiet = 0
    while quiet < 10:
        time.sleep(0.05)
        now_cpu = cpu_seconds(args.pid)
        if now_cpu - before > 0.02:
            busy_until = time.perf_counter()
            quiet = 0
        else:
            quiet += 1
        before = now_cpu
    result["parallel_heavy"] = {
        "calls": PARALLEL,
        "statuses": sorted(s for s, _, _ in answers),
        "seconds": sorted(round(s, 3) for _, s, _ in answers),
        "wall_s": last_answer - started,
        "busy_after_last_answer_s": max(0.0, busy_until - last_answer),
    }
    result["cheap_during"] = {name: summary(v) for name, v in during.items()}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)

    print("| cheap query | at rest: median ms | p99 ms | during 12 heavy: median ms | p99 ms | calls |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in cheap_ids:
        r, d = result["cheap_at_rest"][name], result["cheap_during"][name]
        print(f"| {name} | {r['median_ms']:.2f} | {r['p99_ms']:.2f} | {d['median_ms']:.2f} | "
              f"{d['p99_ms']:.2f} | {d['calls']} |")
    print()
    heavy = result["parallel_heavy"]
    print(f"- the issue's query (469 event tests under 30 levels of all/not): "
          f"{result['abusive_query']['status']} "
          f"{json.dumps(result['abusive_query']['answer'])[:300]}")
    print(f"- the heaviest query the limits let through (64 event tests, no type, a `where` "
          f"each): {result['heavy_alone_s']:.2f} s alone; {PARALLEL} at once: answers "
          f"{heavy['statuses']} after {heavy['seconds']} s, all within {heavy['wall_s']:.1f} s")
    print(f"- the server was busy {heavy['busy_after_last_answer_s']:.2f} s after its last answer")


if __name__ == "__main__":
    main()
