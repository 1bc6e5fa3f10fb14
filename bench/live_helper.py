#!/usr/bin/env python3
"""Helper of bench/live.sh: segment evaluation while data is being written (Python
standard library only; the suite and the HTTP client are bench/eval_helper.py's).

    cold    URL SITE_UUID PK SK --started-ns NS --pid PID --ids FILE --out FILE [--create-suite]
            waits for `corral serve` (started at NS, Unix nanoseconds) to answer, then asks
            for the stats of COLD_SEGMENT until the first successful answer and writes the
            time from the process's start to that answer. With --create-suite it first
            discards the segments of earlier runs and creates the suite (as eval_helper
            does), writing their ids to FILE; otherwise it reads them from FILE.
    measure URL SITE_UUID PK SK --ids FILE --db PATH --out FILE [--rounds N]
            [--write-rate R] [--phase-seconds S] [--seed N] --import-events N -- IMPORT...
            one warm-up call of each segment, then the three phases: ROUNDS rounds with no
            writes; ROUNDS rounds (or as many as fit in S seconds, at least one) while a
            writer posts R events a second; as many rounds as fit while the command IMPORT
            (`corral import events …`) runs. A round is one `GET /api/v1/stats/segment`
            of every segment, in the suite's order. PATH is the database the server
            serves: read (never written) for the audience's emails and to check that the
            writes landed. Writes every figure to FILE as JSON.
    table   --cold1 FILE --cold2 FILE --measure FILE --rss FILE [--stops TEXT] [--end TEXT]
            prints the Markdown report, the goals marked met / not met.

Any answer that is not 2xx, a batch item refused, a failed import or rows that did not
land makes `cold` and `measure` exit 1. `table` always exits 0 (goals not met are
reported, not errors).
"""

import argparse
import datetime
import http.client
import json
import math
import os
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no __pycache__ left in bench/
# The suite and the client; eval_helper imports duckdb only when it runs DuckDB.
from eval_helper import SUITE, Corral, fmt_ms, resolve  # noqa: E402

# The segment whose first answer ends a cold start: tags, a field, the subscription and
# two event types, so the whole audience must be in memory to answer it.
COLD_SEGMENT = "trials-or-lapsed-teams"
# The client waits this long for any answer: under writes a stats call may take seconds.
TIMEOUT_S = 600
# The writer: events a request, requests in flight at most (each on its own connection),
# and the share of `$purchase` among its events (the rest are `$pageview`).
PER_REQUEST = 100
WRITER_THREADS = 4
PURCHASE_SHARE = 0.03
# Goals.
GOAL_P99_S = 0.100
GOAL_COLD_S = 2.0
GOAL_RSS_KIB = 1024 * 1024


def fail(message):
    print(f"live_helper: {message}", file=sys.stderr)
    sys.exit(1)


def say(message):
    print(message, file=sys.stderr, flush=True)


def client(args):
    """eval_helper's client (one kept-alive connection), with a long timeout."""
    corral = Corral(args.url, args.site, args.pk, args.sk)
    corral.conn.timeout = TIMEOUT_S
    return corral


def p99(values):
    """The 99th percentile, nearest rank: with fewer than 100 values, the largest."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)]


def iso_now():
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


def process_alive(pid):
    """Whether the process runs (a zombie, exited but not yet waited for, does not)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            return not any(line.startswith("State:\tZ") for line in status)
    except OSError:
        return False


# ---------------------------------------------------------------------------------
# Cold start.

def cmd_cold(args):
    corral = client(args)
    deadline = time.monotonic() + 900  # start-up may run pending migrations first
    refused = 0
    unavailable = 0

    def wait_a_little():
        if not process_alive(args.pid):
            fail("corral serve exited during start-up")
        if time.monotonic() > deadline:
            fail("corral serve did not answer within 15 minutes")
        time.sleep(0.01)

    result = {"segment": COLD_SEGMENT}
    if args.create_suite:
        # Not listening yet: try /healthz until it answers.
        host, port = re.match(r"^http://([^/:]+):(\d+)$", args.url).groups()
        while True:
            try:
                conn = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT_S)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    conn.close()
                    break
                conn.close()
            except OSError:
                refused += 1
            wait_a_little()
        # The suite, as eval_helper creates it (its code), timed: it is part of this start.
        started = time.perf_counter()
        result["discarded"] = corral.discard_earlier_runs()
        ids = {}
        for segment in SUITE:
            ids[segment["name"]] = corral.create(segment["name"], resolve(segment["query"], ids))
        result["create_suite_s"] = time.perf_counter() - started
        with open(args.ids, "w", encoding="utf-8") as out:
            json.dump(ids, out, indent=1)
    else:
        with open(args.ids, encoding="utf-8") as src:
            ids = json.load(src)

    while True:
        try:
            status, text, seconds = corral.call(
                "GET", f"/stats/segment?segment_id={ids[COLD_SEGMENT]}")
        except OSError:
            # Not listening yet (refused), or the connection went away: a new one.
            corral.conn.close()
            refused += 1
            wait_a_little()
            continue
        if status == 503:
            # Not ready (or timed out): a successful answer is what is waited for.
            unavailable += 1
            wait_a_little()
            continue
        if status != 200:
            fail(f"GET /api/v1/stats/segment of {COLD_SEGMENT} answered {status}: {text[:500]!r}")
        break
    answered_ns = time.time_ns()
    counts = json.loads(text)
    result.update({"seconds": (answered_ns - args.started_ns) / 1e9, "last_call_s": seconds,
                   "refused": refused, "unavailable": unavailable,
                   "user_count": counts["user_count"]})
    say(f"cold: first answer of {COLD_SEGMENT} {result['seconds']:.3f} s after the start "
        f"(the call itself {seconds * 1000:.0f} ms; {refused} tries before it listened, "
        f"{unavailable} answers 503)")
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump(result, out, indent=1)


# ---------------------------------------------------------------------------------
# The writer.

class Writer:
    """POST /api/v1/batch/events at `rate` events a second, in requests of PER_REQUEST
    events, evenly paced: request k is due at start + k × PER_REQUEST / rate. Up to
    WRITER_THREADS threads, each with its own kept-alive connection, take the requests in
    turn, so one slow answer delays no other request; a request is sent at its due time,
    or at once when it is late. Each event is for an existing subscriber, dated now."""

    def __init__(self, args, emails, rate, seed):
        self.args = args
        self.emails = emails
        self.interval = PER_REQUEST / rate
        self.seed = seed
        self.lock = threading.Lock()
        self.next_slot = 0
        self.stopping = threading.Event()
        self.answered = threading.Event()
        self.requests = []  # [due offset s, lateness s, seconds, events stored]
        self.errors = []
        self.threads = []

    def start(self):
        self.t0 = time.perf_counter()
        self.started = time.time()
        for n in range(WRITER_THREADS):
            thread = threading.Thread(target=self.run, args=(n,), daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self):
        """Stops sending; waits for the requests in flight. Returns the summary."""
        self.stopping.set()
        stopped = time.perf_counter()
        for thread in self.threads:
            thread.join()
        # Each request stands for one interval of the schedule: on pace, n requests in
        # n intervals; behind it, fewer in the time that passed.
        elapsed = max(stopped - self.t0, len(self.requests) * self.interval)
        stored = sum(r[3] for r in self.requests)
        latencies = [r[2] for r in self.requests]
        late = [r[1] for r in self.requests]
        return {"rate": PER_REQUEST / self.interval, "per_request": PER_REQUEST,
                "threads": WRITER_THREADS, "started": self.started, "seconds": elapsed,
                "requests": len(self.requests), "events": stored,
                "achieved_rate": stored / elapsed if elapsed > 0 else 0.0,
                "median_s": statistics.median(latencies) if latencies else None,
                "p99_s": p99(latencies) if latencies else None,
                "max_s": max(latencies) if latencies else None,
                "late_p99_s": p99(late) if late else None,
                "late_max_s": max(late) if late else None,
                "errors": self.errors[:20], "error_count": len(self.errors),
                "requests_raw": [[round(x, 6) for x in r[:3]] + [r[3]] for r in self.requests]}

    def body(self, slot, rng):
        now = iso_now()
        events = []
        for i in range(PER_REQUEST):
            email = rng.choice(self.emails)
            if rng.random() < PURCHASE_SHARE:
                events.append({"type": "$purchase", "email": email, "date": now, "details": {
                    "unique": {"key": f"live-{slot}-{i}"},
                    "value": {"currency": "USD", "amount": rng.randrange(500, 50_000)}}})
            else:
                events.append({"type": "$pageview", "email": email, "date": now,
                               "details": {"url": f"/live/page-{rng.randrange(100)}"}})
        return {"events": events}

    def run(self, n):
        corral = client(self.args)
        rng = random.Random(self.seed * 1000 + n)
        while True:
            with self.lock:
                slot = self.next_slot
                self.next_slot += 1
            due = self.t0 + slot * self.interval
            wait = due - time.perf_counter()
            if self.stopping.wait(max(0.0, wait)):
                return
            body = self.body(slot, rng)
            sent = time.perf_counter()
            try:
                status, text, seconds = corral.call("POST", "/batch/events", body)
            except (OSError, http.client.HTTPException) as e:
                self.errors.append(f"request {slot}: {e!r}")
                corral.conn.close()
                continue
            try:
                answer = json.loads(text)
                stored, failed = int(answer["results"]), int(answer["failed"])
            except (ValueError, KeyError, TypeError):
                stored, failed = 0, None
            if status // 100 != 2 or failed != 0 or stored != PER_REQUEST:
                self.errors.append(f"request {slot}: {status} {text[:300]!r}")
            with self.lock:
                self.requests.append([due - self.t0, sent - due, seconds, stored])
            self.answered.set()


# ---------------------------------------------------------------------------------
# The measurements.

def rounds(corral, ids, max_rounds=None, deadline=None, running=None, at_least=None):
    """Rounds of one stats call per segment: max_rounds, or more while fewer than
    at_least seconds have passed; none begun after the deadline (perf_counter) once one
    is complete, and no call begun once running() is false. Each call: [offset from the
    phase's start s, seconds, counts]."""
    calls = {s["name"]: [] for s in SUITE}
    done = 0
    started = time.time()
    t0 = time.perf_counter()
    while (max_rounds is None or done < max_rounds
           or (at_least is not None and time.perf_counter() - t0 < at_least)):
        if deadline is not None and done > 0 and time.perf_counter() >= deadline:
            break
        if running is not None and not running():
            break
        for segment in SUITE:
            if running is not None and not running():
                break
            at = time.perf_counter() - t0
            counts, seconds = corral.stats(ids[segment["name"]])
            calls[segment["name"]].append([round(at, 3), seconds, counts])
        done += 1
    return {"started": started, "ended": time.time(), "seconds": time.perf_counter() - t0,
            "rounds": done, "calls": calls}


def summary_line(name, phase):
    times = [c[1] for calls in phase["calls"].values() for c in calls]
    if not times:
        return f"{name}: no calls in {phase['seconds']:.1f} s"
    return (f"{name}: {len(times)} calls in {phase['seconds']:.1f} s, median "
            f"{statistics.median(times) * 1000:.2f} ms, p99 {p99(times) * 1000:.2f} ms, "
            f"max {max(times) * 1000:.2f} ms")


class Database:
    """The served database, read over its own connection (reads only)."""

    def __init__(self, path, site_uuid):
        self.con = sqlite3.connect(path, timeout=60)
        row = self.con.execute("SELECT id FROM sites WHERE uuid = ?", (site_uuid,)).fetchone()
        if not row:
            fail(f"no site {site_uuid} in {path}")
        self.site_id = row[0]

    def count(self, table):
        return self.con.execute(f"SELECT count(*) FROM {table} WHERE site_id = ?",
                                (self.site_id,)).fetchone()[0]

    def emails(self):
        return [r[0] for r in self.con.execute(
            "SELECT email FROM subscribers WHERE site_id = ? ORDER BY id", (self.site_id,))]


def cmd_measure(args):
    with open(args.ids, encoding="utf-8") as src:
        ids = json.load(src)
    if [s["name"] for s in SUITE if s["name"] not in ids]:
        fail(f"{args.ids} does not hold the whole suite")
    db = Database(args.db, args.site)
    emails = db.emails()
    subscribers = len(emails)
    events_before = db.count("events")
    say(f"audience: {subscribers:,} subscribers, {events_before:,} events")
    corral = client(args)
    result = {"rounds": args.rounds, "phase_seconds": args.phase_seconds,
              "subscribers": subscribers, "events_before": events_before}
    writer = None
    importer = None
    try:
        # One warm-up call of each segment (the first call for a segment reads the detail
        # columns it needs), kept apart.
        warm = {}
        for segment in SUITE:
            counts, seconds = corral.stats(ids[segment["name"]])
            warm[segment["name"]] = {"seconds": seconds, "counts": counts}
        result["warm_up"] = warm

        # 1. No writes.
        say(f"no writes: {args.rounds} rounds of {len(SUITE)} segments")
        result["idle"] = rounds(corral, ids, max_rounds=args.rounds)
        say(summary_line("no writes", result["idle"]))

        # 2. Under the writer: measuring starts once its first request is answered.
        say(f"writer: {args.write_rate:g} events/s; {args.rounds} rounds "
            f"(none begun after {args.phase_seconds:g} s)")
        writer = Writer(args, emails, args.write_rate, args.seed)
        writer.start()
        if not writer.answered.wait(TIMEOUT_S):
            fail("the writer's first request got no answer")
        phase = rounds(corral, ids, max_rounds=args.rounds,
                       deadline=time.perf_counter() + args.phase_seconds,
                       at_least=args.min_phase_seconds)
        w = phase["writer"] = writer.stop()
        writer = None
        result["writing"] = phase
        say(summary_line("under the writer", phase))
        say(f"writer: {w['events']:,} events in {w['requests']:,} requests over "
            f"{w['seconds']:.1f} s = {w['achieved_rate']:,.0f} events/s; request median "
            f"{w['median_s'] * 1000:.1f} ms, p99 {w['p99_s'] * 1000:.1f} ms; "
            f"{w['error_count']} errors")
        if w["error_count"]:
            fail("the writer's requests failed: " + "; ".join(w["errors"][:5]))
        events_written = db.count("events")
        if events_written != events_before + w["events"]:
            fail(f"{w['events']} events acknowledged, but the database went from "
                 f"{events_before} to {events_written} events")

        # 3. While `corral import events` runs in another process.
        say(f"import: {' '.join(args.import_cmd)}")
        ended = {}
        with open(args.import_log, "w", encoding="utf-8") as log:
            started = time.perf_counter()
            importer = subprocess.Popen(args.import_cmd, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)

            def wait_for_import():
                # Its end, to the moment, whatever call is in flight.
                importer.wait()
                ended["at"] = time.perf_counter()

            waiter = threading.Thread(target=wait_for_import, daemon=True)
            waiter.start()
            phase = rounds(corral, ids, running=lambda: "at" not in ended)
            waiter.join()
        rc = importer.returncode
        importer = None
        with open(args.import_log, encoding="utf-8") as src:
            output = src.read()
        phase["import"] = {"seconds": ended["at"] - started, "exit": rc,
                           "output": output[-2000:]}
        result["importing"] = phase
        say(summary_line("during the import", phase))
        say(f"import: exit {rc} after {ended['at'] - started:.1f} s: {output.strip()[-300:]}")
        if rc != 0:
            fail(f"the import failed (exit {rc}): {output[-1000:]}")
        want = f"imported {args.import_events} events, skipped 0 bad lines"
        if want not in output:
            fail(f"the import did not report '{want}': {output[-1000:]}")
        events_after = db.count("events")
        if events_after != events_written + args.import_events:
            fail(f"{args.import_events} events imported, but the database went from "
                 f"{events_written} to {events_after} events")
        subscribers_after = db.count("subscribers")
        if subscribers_after != subscribers:
            fail(f"the writes were to be for existing subscribers, but there are now "
                 f"{subscribers_after} subscribers, not {subscribers}")
        result["events_after"] = events_after
    finally:
        if writer is not None:
            writer.stopping.set()
        if importer is not None and importer.poll() is None:
            importer.kill()
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump(result, out, indent=1)


# ---------------------------------------------------------------------------------
# The report.

def ms(seconds):
    return fmt_ms(seconds * 1000)


def mib(kib):
    return f"{kib / 1024:,.0f} MiB"


def met(ok):
    return "met" if ok else "**not met**"


def cmd_table(args):
    with open(args.cold1, encoding="utf-8") as src:
        cold1 = json.load(src)
    with open(args.cold2, encoding="utf-8") as src:
        cold2 = json.load(src)
    with open(args.measure, encoding="utf-8") as src:
        run = json.load(src)
    idle, writing, importing = run["idle"], run["writing"], run["importing"]
    writer, imp = writing["writer"], importing["import"]

    def times(phase, name):
        return [c[1] for c in phase["calls"][name]]

    rows = []
    slow_medians = []
    writer_p99 = []
    for s in SUITE:
        name = s["name"]
        i, w, m = times(idle, name), times(writing, name), times(importing, name)
        i_med, w_med = statistics.median(i), statistics.median(w)
        limit = 2 * i_med + 0.002
        ok = w_med <= limit and p99(w) <= GOAL_P99_S
        if w_med > limit:
            slow_medians.append((w_med / limit, name, w_med, limit))
        writer_p99.append((p99(w), name))
        members = run["warm_up"][name]["counts"][0]
        imp_cells = (f"{ms(statistics.median(m))} | {ms(p99(m))} | {len(m)}" if m
                     else "— | — | 0")
        rows.append(f"| `{name}` | {members:,} | {ms(i_med)} | {ms(p99(i))} | {ms(w_med)} | "
                    f"{ms(p99(w))} | {ms(limit)} | {met(ok)} | {imp_cells} |")
    print(f"| segment | members | no writes: median ms | p99 ms | under "
          f"{writer['rate']:,.0f} events/s: median ms | p99 ms | median limit ms "
          f"(2× + 2) | goal | during import: median ms | p99 ms | calls |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|")
    print("\n".join(rows))
    print()

    # Memory: samples "<unix s> <pid> <RssAnon kB>" of every `corral serve` of the run.
    samples = []
    with open(args.rss, encoding="utf-8") as src:
        for line in src:
            parts = line.split()
            if len(parts) == 3:
                samples.append((float(parts[0]), int(parts[1]), int(parts[2])))
    peak = max((s[2] for s in samples), default=None)

    def peak_in(start, end):
        # Widened by one sampling interval, so a phase shorter than it has its samples.
        inside = [s[2] for s in samples if start - 0.1 <= s[0] <= end + 0.1]
        return mib(max(inside)) if inside else "no sample"

    stats_p99, p99_name = max(writer_p99)
    worst = max(slow_medians) if slow_medians else None
    all_calls = {ph: [c[1] for calls in run[ph]["calls"].values() for c in calls]
                 for ph in ("idle", "writing", "importing")}
    goals = [
        ("under the writer, each segment's median ≤ 2× its no-write median + 2 ms",
         f"{len(SUITE) - len(slow_medians)} of {len(SUITE)} segments within"
         + (f"; furthest: `{worst[1]}` {ms(worst[2])} ms against {ms(worst[3])} ms"
            if worst else ""),
         not slow_medians),
        ("under the writer, p99 of every request ≤ 100 ms",
         f"stats calls: slowest p99 {ms(stats_p99)} ms (`{p99_name}`); the writer's "
         f"requests: p99 {ms(writer['p99_s'])} ms",
         stats_p99 <= GOAL_P99_S and writer["p99_s"] <= GOAL_P99_S),
        ("cold start ≤ 2 s (first answer after the process starts, a server that has "
         "run before: from its checkpoint)",
         f"second start {cold2['seconds']:,.2f} s; the very first start on a database "
         f"never served (no checkpoint yet, a whole read) {cold1['seconds']:,.2f} s",
         cold2["seconds"] <= GOAL_COLD_S),
        ("`RssAnon` of `corral serve` ≤ 1 GiB at all times",
         f"peak {mib(peak)}" if peak is not None else "no sample",
         peak is not None and peak <= GOAL_RSS_KIB),
    ]
    print("| goal | figures | |")
    print("|---|---|---|")
    for goal, figures, ok in goals:
        print(f"| {goal} | {figures} | {met(ok)} |")
    print()

    print(f"- no writes: {idle['rounds']} rounds of the {len(SUITE)} segments after one "
          f"warm-up call each; all calls: median {ms(statistics.median(all_calls['idle']))} ms, "
          f"p99 {ms(p99(all_calls['idle']))} ms")
    print(f"- under the writer: {writing['rounds']} rounds in {writing['seconds']:,.1f} s "
          f"(none begun after {run['phase_seconds']:g} s); all calls: median "
          f"{ms(statistics.median(all_calls['writing']))} ms, p99 "
          f"{ms(p99(all_calls['writing']))} ms")
    print(f"- the writer: `POST /api/v1/batch/events`, {writer['per_request']} events a "
          f"request (`$pageview`, {PURCHASE_SHARE:.0%} `$purchase`), evenly paced for "
          f"{writer['rate']:,.0f} events/s over up to {writer['threads']} connections: "
          f"{writer['events']:,} events stored in {writer['requests']:,} requests over "
          f"{writer['seconds']:,.1f} s, **{writer['achieved_rate']:,.0f} events/s** achieved; "
          f"request median {ms(writer['median_s'])} ms, p99 {ms(writer['p99_s'])} ms, max "
          f"{ms(writer['max_s'])} ms; sent late by up to {ms(writer['late_max_s'])} ms "
          f"(p99 {ms(writer['late_p99_s'])} ms)")
    events = run["events_after"] - run["events_before"] - writer["events"]
    print(f"- `corral import events` of {events:,} events (generated by `corral gen` for the "
          f"same subscribers) in another process: **{imp['seconds']:,.1f} s** "
          f"({events / imp['seconds']:,.0f} events/s), during which "
          f"{len(all_calls['importing'])} stats calls "
          f"({importing['rounds']} round{'' if importing['rounds'] == 1 else 's'} begun): "
          + (f"median {ms(statistics.median(all_calls['importing']))} ms, p99 "
             f"{ms(p99(all_calls['importing']))} ms" if all_calls["importing"] else "none"))
    print(f"- cold start (from starting `corral serve` to the first answer of "
          f"`{cold1['segment']}`): first start on the copied database "
          f"**{cold1['seconds']:,.2f} s** (of which creating the suite over the API "
          f"{ms(cold1.get('create_suite_s', 0))} ms; the stats call itself "
          f"{ms(cold1['last_call_s'])} ms); after a graceful stop, second start "
          f"**{cold2['seconds']:,.2f} s** (the stats call {ms(cold2['last_call_s'])} ms)"
          + (f"; graceful stops: {args.stops}" if args.stops else ""))
    if samples:
        first_pid = samples[0][1]
        first = [s[2] for s in samples if s[1] == first_pid]
        print(f"- `RssAnon` of `corral serve` (sampled every 100 ms, {len(samples):,} samples): "
              f"peak **{mib(peak)}**; first start {mib(max(first))}; second start: no writes "
              f"{peak_in(idle['started'], idle['ended'])}, under the writer "
              f"{peak_in(writing['started'], writing['ended'])}, during the import "
              f"{peak_in(importing['started'], importing['ended'])}"
              + (f"; at the end {args.end}" if args.end else ""))
    print(f"- audience: {run['subscribers']:,} subscribers, {run['events_before']:,} events "
          f"before the writes, {run['events_after']:,} after (every write checked in the "
          "database; no subscriber created)")
    print("- times from sending the request to having read the whole answer, over one "
          "kept-alive connection; p99 by nearest rank (with fewer than 100 calls, the "
          "slowest); the warm-up calls are not counted")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def target(p):
        p.add_argument("url")
        p.add_argument("site")
        p.add_argument("pk")
        p.add_argument("sk")

    cold = sub.add_parser("cold")
    target(cold)
    cold.add_argument("--started-ns", type=int, required=True)
    cold.add_argument("--pid", type=int, required=True)
    cold.add_argument("--ids", required=True)
    cold.add_argument("--out", required=True)
    cold.add_argument("--create-suite", action="store_true")
    measure = sub.add_parser("measure")
    target(measure)
    measure.add_argument("--ids", required=True)
    measure.add_argument("--db", required=True)
    measure.add_argument("--out", required=True)
    measure.add_argument("--rounds", type=int, default=30)
    measure.add_argument("--min-phase-seconds", type=float, default=60)
    measure.add_argument("--write-rate", type=float, default=1000)
    measure.add_argument("--phase-seconds", type=float, default=600)
    measure.add_argument("--seed", type=int, default=42)
    measure.add_argument("--import-events", type=int, required=True)
    measure.add_argument("--import-log", required=True)
    measure.add_argument("import_cmd", nargs="+", help="the import command, after --")
    table = sub.add_parser("table")
    table.add_argument("--cold1", required=True)
    table.add_argument("--cold2", required=True)
    table.add_argument("--measure", required=True)
    table.add_argument("--rss", required=True)
    table.add_argument("--stops", default="")
    table.add_argument("--end", default="")
    args = parser.parse_args()
    if args.command == "cold":
        cmd_cold(args)
    elif args.command == "measure":
        if args.rounds < 1 or args.write_rate <= 0 or args.phase_seconds <= 0:
            fail("--rounds must be 1 or more, --write-rate and --phase-seconds above 0")
        cmd_measure(args)
    else:
        cmd_table(args)


if __name__ == "__main__":
    main()
