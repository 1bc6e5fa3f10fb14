#!/usr/bin/env python3
"""Helper of bench/webhooks.sh: membership-change webhooks under a writer (Python
standard library only; the writer's pacing and the HTTP client are bench/live_helper.py's
and bench/eval_helper.py's).

    run   URL SITE_UUID PK SK --db PATH --pid PID --out FILE [--write-rate R]
          [--duration S] [--baseline-seconds S] [--seed N] [--pool N] [--ping-share F]
          [--commands N] [--webhooks N] [--quiet-seconds S] [--drain-seconds S]
          in one process, so that every time below is read from the same clock
          (time.time()):
          1. a baseline: the writer alone for S seconds, with no segment watched;
          2. the 10 segments of SEGMENTS created over HTTP, a receiver started on a free
             loopback port, --webhooks webhooks (1 by default) watching the 10 (dealt out in
          turn) pointed at it, and each
             segment's members read (members.csv);
          3. the writer again for --duration seconds while the receiver records every
             notification (signature checked) with its arrival time;
          4. after the writer stops: waits until the webhook's newest delivery is
             delivered and no notification arrived for --quiet-seconds (at most
             --drain-seconds), then reads each segment's members again.
          RssAnon and CPU time of the process PID are sampled every 100 ms throughout.
          PATH is the database the server serves, read for the audience's emails.
          Writes every figure to FILE as JSON.
    table --run FILE
          prints the Markdown report, the goals marked met / not met.

A request of the writer that fails, a bad signature or a receiver that got nothing make
`run` exit 1. `table` always exits 0 (goals not met are reported, not errors).
"""

import argparse
import bisect
import datetime
import hashlib
import hmac
import http.client
import http.server
import json
import os
import random
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no __pycache__ left in bench/
from live_helper import (  # noqa: E402
    PER_REQUEST, PURCHASE_SHARE, Database, Writer, client, fmt_ms, iso_now, p99)

NAME_PREFIX = "webhooks: "
PING = "bench_ping"
TAGS = ["bench-a", "bench-b", "bench-c"]
# The share of pings that are "gold" (the rest "silver"), and their amounts.
GOLD_SHARE = 0.2
AMOUNTS = (100, 501)


def _pinged(**more):
    return {"event": {"type": PING, **more}}


# The watched segments: each moves with the writer's pings and tag commands, some only
# ever gaining members, some gaining and losing, one holding nearly the whole audience.
SEGMENTS = [
    ("pinged-last-hour", _pinged(when={"within_last": {"hours": 1}})),
    ("pinged-3-times", _pinged(count={"at_least": 3})),
    ("pinged-once", _pinged(count={"equals": 1})),
    ("pinged-fewer-than-2", _pinged(count={"less_than": 2})),
    ("gold-pinged", _pinged(where={"tier": {"equals": "gold"}})),
    ("ping-amount-1000", _pinged(sum={"of": "amount", "at_least": 1000})),
    ("tagged-a", {"tag": {"has": "bench-a"}}),
    ("tagged-any", {"tag": {"any_of": TAGS}}),
    ("tagged-b-not-pinged", {"all": [{"tag": {"has": "bench-b"}},
                                     {"not": _pinged(when={"within_last": {"hours": 1}})}]}),
    ("subscribed-gold-or-c", {"all": [{"subscribed": True},
                                      {"any": [_pinged(where={"tier": {"equals": "gold"}}),
                                               {"tag": {"has": "bench-c"}}]}]}),
]

# A notification whose subscriber was touched by more than one write answered in this
# many seconds before it arrived is counted as ambiguous (see check()).
AMBIGUOUS_S = 10.0
# Goals.
GOAL_P50_S = 1.0
GOAL_P99_S = 5.0


def fail(message):
    print(f"webhooks_helper: {message}", file=sys.stderr)
    sys.exit(1)


def say(message):
    print(message, file=sys.stderr, flush=True)


def parse_ms(text):
    """Seconds since the epoch of an RFC 3339 time as Corral writes it."""
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


# ---------------------------------------------------------------------------------
# The writer: live_helper's pacing, with pings and tag commands for a pool of
# subscribers, and each answer's time and the emails it touched recorded.

class WebhookWriter(Writer):
    """Request k (due at start + k × PER_REQUEST / rate) is PER_REQUEST events (a share
    `ping_share` of them `bench_ping` for a subscriber of the pool, the rest as
    live_helper's writer sends them: `$pageview` and `$purchase` for anyone), followed on
    the same connection by `commands` tag commands for the pool: `add_tag` of one of
    TAGS, or (half the time, when there is one) `remove_tag` of a tag this writer added.
    Only pings and tag commands can move a watched segment: they are the writes a
    notification is matched with."""

    def __init__(self, args, emails, pool, tagged, rate, seed):
        super().__init__(args, emails, rate, seed)
        self.pool = pool
        self.tagged = tagged  # (email, tag) added and not removed yet, shared by phases
        self.ping_share = args.ping_share
        self.commands = args.commands
        self.acks = []  # [answered at (time.time()), kind, emails]
        self.command_seconds = []
        self.pings = 0
        self.tag_commands = {"add_tag": 0, "remove_tag": 0}

    def event_body(self, slot, rng):
        now = iso_now()
        events, touched = [], []
        for i in range(PER_REQUEST):
            r = rng.random()
            if r < self.ping_share:
                email = rng.choice(self.pool)
                touched.append(email)
                events.append({"type": PING, "email": email, "date": now, "details": {
                    "tier": "gold" if rng.random() < GOLD_SHARE else "silver",
                    "amount": rng.randrange(*AMOUNTS)}})
            elif r < self.ping_share + PURCHASE_SHARE:
                events.append({"type": "$purchase", "email": rng.choice(self.emails),
                               "date": now, "details": {
                                   "unique": {"key": f"webhooks-{self.seed}-{slot}-{i}"},
                                   "value": {"currency": "USD",
                                             "amount": rng.randrange(500, 50_000)}}})
            else:
                events.append({"type": "$pageview", "email": rng.choice(self.emails),
                               "date": now,
                               "details": {"url": f"/live/page-{rng.randrange(100)}"}})
        return {"events": events}, touched

    def command_body(self, rng):
        commands, touched = [], []
        with self.lock:
            for _ in range(self.commands):
                if self.tagged and rng.random() < 0.5:
                    k = rng.randrange(len(self.tagged))
                    email, tag = self.tagged[k]
                    self.tagged[k] = self.tagged[-1]
                    self.tagged.pop()
                    command = "remove_tag"
                else:
                    email, tag = rng.choice(self.pool), rng.choice(TAGS)
                    self.tagged.append((email, tag))
                    command = "add_tag"
                self.tag_commands[command] += 1
                commands.append({"command": command, "email": email, "query": tag})
                touched.append(email)
        return {"command": commands}, touched

    def post(self, corral, slot, path, body, expect):
        """Sends one request; its (answered at, seconds), or None when it failed."""
        try:
            status, text, seconds = corral.call("POST", path, body)
        except (OSError, http.client.HTTPException) as e:
            self.errors.append(f"request {slot} {path}: {e!r}")
            corral.conn.close()
            return None
        answered = time.time()
        try:
            answer = json.loads(text)
            stored, failed = int(answer["results"]), int(answer["failed"])
        except (ValueError, KeyError, TypeError):
            stored, failed = 0, None
        if status // 100 != 2 or failed != 0 or stored != expect:
            self.errors.append(f"request {slot} {path}: {status} {text[:300]!r}")
        return answered, seconds, stored

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
            body, pinged = self.event_body(slot, rng)
            sent = time.perf_counter()
            done = self.post(corral, slot, "/batch/events", body, PER_REQUEST)
            if done is None:
                continue
            answered, seconds, stored = done
            with self.lock:
                self.requests.append([due - self.t0, sent - due, seconds, stored])
                self.acks.append([answered, "events", pinged])
                self.pings += len(pinged)
            self.answered.set()
            if self.commands:
                body, tagged = self.command_body(rng)
                done = self.post(corral, slot, "/fetch/commands", body, len(tagged))
                if done is not None:
                    with self.lock:
                        self.command_seconds.append(done[1])
                        self.acks.append([done[0], "commands", tagged])

    def summary(self):
        s = self.stop()
        del s["requests_raw"]
        s.update({"pings": self.pings, "tag_commands": dict(self.tag_commands),
                  "commands_per_request": self.commands,
                  "command_requests": len(self.command_seconds),
                  "command_median_s": (statistics.median(self.command_seconds)
                                       if self.command_seconds else None),
                  "command_p99_s": p99(self.command_seconds) if self.command_seconds else None,
                  "ended": time.time()})
        return s


# ---------------------------------------------------------------------------------
# The receiver.

class Receiver:
    """An HTTP server on a free loopback port that answers 200 to every POST, checks
    its signature (as docs/webhooks.md shows) and records each notification with the
    time its request arrived."""

    def __init__(self):
        self.secrets = {}  # webhook id → its secret
        self.lock = threading.Lock()
        self.received = []  # [arrived at, notification, request number]
        self.requests = 0
        self.bad = []
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                arrived = time.time()
                receiver.take(raw, self.headers.get("Corral-Webhook-Id", ""),
                             self.headers.get("Corral-Signature", ""), arrived)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/corral"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def take(self, raw, webhook_id, header, arrived):
        with self.lock:
            self.requests += 1
            number = self.requests
            secret = self.secrets.get(webhook_id)
            if secret is None or not verify_corral_signature(secret, header, raw):
                self.bad.append(f"request {number}: webhook {webhook_id!r}, bad signature "
                                f"{header!r}")
                return
            try:
                data = json.loads(raw)["data"]
            except (ValueError, KeyError, TypeError):
                self.bad.append(f"request {number}: not {{\"data\": […]}}: {raw[:200]!r}")
                return
            for notification in data:
                self.received.append([arrived, notification, number])

    def last_arrival(self):
        with self.lock:
            return self.received[-1][0] if self.received else None

    def close(self):
        self.server.shutdown()


def verify_corral_signature(secret, header, raw_body, tolerance_seconds=300):
    """docs/webhooks.md's check, as a receiver would write it."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        t = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError):
        return False
    if abs(time.time() - t) > tolerance_seconds:
        return False
    expected = hmac.new(secret.encode(), f"{t}.".encode() + raw_body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(given, expected)


# ---------------------------------------------------------------------------------
# The server's memory and CPU time.

class Sampler:
    """RssAnon (kB) and CPU seconds (user + system) of a process, every 100 ms."""

    def __init__(self, pid):
        self.pid = pid
        self.samples = []  # [time.time(), RssAnon kB, CPU s]
        self.stopping = threading.Event()
        self.tick = os.sysconf("SC_CLK_TCK")
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def read(self):
        try:
            with open(f"/proc/{self.pid}/status", encoding="ascii") as status:
                rss = next((int(line.split()[1]) for line in status
                            if line.startswith("RssAnon:")), None)
            with open(f"/proc/{self.pid}/stat", encoding="ascii") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
            cpu = (int(fields[11]) + int(fields[12])) / self.tick
        except (OSError, ValueError, IndexError):
            return None
        return [time.time(), rss, cpu]

    def run(self):
        while not self.stopping.wait(0.1):
            sample = self.read()
            if sample is not None:
                self.samples.append(sample)

    def between(self, start, end):
        """(peak RssAnon kB, CPU seconds used) between two times."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2:
            return None, None
        return max(s[1] for s in inside), inside[-1][2] - inside[0][2]

    def stop(self):
        self.stopping.set()
        self.thread.join()


# ---------------------------------------------------------------------------------
# The run.

def members(corral, segment_id):
    """The emails of a segment's members now (members.csv: uuid,email,…)."""
    status, text, seconds = corral.call("GET", f"/fetch/segments/{segment_id}/members.csv")
    if status != 200:
        fail(f"GET members.csv of segment {segment_id} answered {status}: {text[:300]!r}")
    lines = text.decode().splitlines()[1:]
    return {line.split(",", 2)[1].lower() for line in lines if line}, seconds


def writer_phase(args, emails, pool, tagged, seconds, label):
    say(f"{label}: the writer at {args.write_rate:g} events/s for {seconds:g} s "
        f"({args.ping_share:.0%} pings, {args.commands} tag commands a request)")
    writer = WebhookWriter(args, emails, pool, tagged, args.write_rate, args.seed)
    writer.start()
    if not writer.answered.wait(60):
        fail("the writer's first request got no answer")
    time.sleep(seconds)
    summary = writer.summary()
    say(f"{label}: {summary['events']:,} events in {summary['requests']:,} requests over "
        f"{summary['seconds']:.1f} s = {summary['achieved_rate']:,.0f} events/s; request "
        f"median {summary['median_s'] * 1000:.1f} ms, p99 {summary['p99_s'] * 1000:.1f} ms; "
        f"commands p99 {(summary['command_p99_s'] or 0) * 1000:.1f} ms; "
        f"{summary['error_count']} errors")
    if summary["error_count"]:
        fail("the writer's requests failed: " + "; ".join(summary["errors"][:5]))
    return writer, summary


def cmd_run(args):
    db = Database(args.db, args.site)
    emails = db.emails()
    if not emails:
        fail("the site has no subscribers")
    rng = random.Random(args.seed)
    pool = rng.sample(emails, min(args.pool, len(emails)))
    say(f"audience: {len(emails):,} subscribers; a pool of {len(pool):,} pinged and tagged")
    corral = client(args)
    sampler = Sampler(args.pid)
    result = {"subscribers": len(emails), "pool": len(pool), "write_rate": args.write_rate,
              "ping_share": args.ping_share, "commands": args.commands,
              "duration": args.duration, "baseline_seconds": args.baseline_seconds,
              "quiet_seconds": args.quiet_seconds}
    tagged = []
    receiver = None
    try:
        # Segments of an earlier run on this database (none on a fresh copy) go first.
        listing = corral.json_call("GET", "/fetch/segments")["data"]
        for s in listing:
            if s["attributes"]["name"].startswith(NAME_PREFIX):
                corral.json_call("DELETE", f"/fetch/segments/{s['id']}")

        # The segments, each evaluated once (which also brings the audience into memory):
        # the baseline then differs from the watched phase by the webhook alone.
        ids = {}
        for name, query in SEGMENTS:
            answer = corral.json_call("POST", "/fetch/segments", {"segment": {
                "name": NAME_PREFIX + name, "visitor_event_query": query}}, ok=(200, 201))
            ids[name] = str(answer["data"]["id"])
            corral.stats(ids[name])

        # 1. The baseline: the same segments, not watched.
        start = time.time()
        _, base = writer_phase(args, emails, pool, tagged, args.baseline_seconds,
                               "baseline (nothing watched)")
        base["rss_peak_kib"], base["cpu_s"] = sampler.between(start, base["ended"])
        result["baseline"] = base

        # 2. The receiver, the webhook, the members before.
        corral.conn.close()  # idle while the writer ran
        receiver = Receiver()
        # WEBHOOKS webhooks, the segments dealt out among them in turn.
        created = time.time()
        segment_ids = list(ids.values())
        webhook_ids = []
        for k in range(args.webhooks):
            answer = corral.json_call("POST", "/fetch/webhooks", {"webhook": {
                "url": receiver.url, "segment_ids": segment_ids[k::args.webhooks]}},
                ok=(201,))
            webhook_ids.append(answer["data"]["id"])
            receiver.secrets[answer["data"]["id"]] = answer["data"]["attributes"]["secret"]
        result["webhook_create_s"] = time.time() - created
        result["webhooks"] = args.webhooks
        say(f"{args.webhooks} webhook(s) -> {receiver.url} watching {len(ids)} segments "
            f"(created in {result['webhook_create_s']:.2f} s)")
        before = {}
        read_s = []
        for name, segment_id in ids.items():
            before[name], seconds = members(corral, segment_id)
            read_s.append(seconds)
        result["members_before"] = {name: len(m) for name, m in before.items()}
        result["members_read_s"] = sum(read_s)
        say("members before: " + ", ".join(f"{n} {len(m):,}" for n, m in before.items()))
        # The watches have their baselines: settle a second so that the sampler's idle
        # figures are not the reading's.
        time.sleep(1)
        idle_start = time.time()
        time.sleep(args.baseline_seconds / 4)
        result["idle_rss_peak_kib"], result["idle_cpu_s"] = sampler.between(
            idle_start, time.time())
        result["idle_seconds"] = time.time() - idle_start

        # 3. The writer, watched.
        start = time.time()
        writer, run = writer_phase(args, emails, pool, tagged, args.duration,
                                   f"watched ({args.webhooks} webhook(s), 10 segments)")
        run["rss_peak_kib"], run["cpu_s"] = sampler.between(start, run["ended"])
        result["watched"] = run
        received_by_stop = len(receiver.received)

        # 4. The drain: each webhook's newest delivery delivered and a quiet spell.
        say(f"draining: {received_by_stop:,} notifications so far")
        # The connection sat idle while the writer ran: the server may have closed it.
        corral.conn.close()
        drain_from = time.time()
        drained = False
        polls = 0
        while time.time() - drain_from < args.drain_seconds:
            polls += 1
            delivered = True
            for webhook_id in webhook_ids:
                page = corral.json_call(
                    "GET", f"/fetch/webhooks/{webhook_id}/deliveries?limit=1")
                if page["data"] and page["data"][0]["attributes"]["status"] != "delivered":
                    delivered = False
            last = receiver.last_arrival() or drain_from
            if delivered and time.time() - max(last, drain_from) >= args.quiet_seconds:
                drained = True
                break
            time.sleep(0.5)
        result["drained"] = drained
        result["drain_s"] = time.time() - drain_from
        result["rss_peak_kib"] = max((s[1] for s in sampler.samples), default=None)
        end_rss = sampler.read()
        result["rss_end_kib"] = end_rss[1] if end_rss else None
        say(f"drained: {drained} after {result['drain_s']:.1f} s; "
            f"{len(receiver.received):,} notifications in {receiver.requests:,} requests")

        after = {}
        for name, segment_id in ids.items():
            after[name], _ = members(corral, segment_id)
        result["members_after"] = {name: len(m) for name, m in after.items()}

        with receiver.lock:
            received = list(receiver.received)
            result["receiver_requests"] = receiver.requests
            result["bad"] = receiver.bad[:20]
            result["bad_count"] = len(receiver.bad)
        receiver.close()
        receiver = None
        result.update(check(received, ids, before, after, writer.acks, run["started"]))
        result["received_by_writer_stop"] = received_by_stop
    finally:
        if receiver is not None:
            receiver.close()
        sampler.stop()
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump(result, out, indent=1)
    if result["bad_count"]:
        fail("the receiver got requests it could not verify: " + "; ".join(result["bad"][:3]))
    if not received:
        fail("the receiver got no notification")


def check(received, ids, before, after, acks, writer_started):
    """The notifications against the members before and after, and their latencies."""
    names = {segment_id: name for name, segment_id in ids.items()}
    # Each email's write answers, in time order.
    touched = {}
    for answered, _, emails in sorted(acks, key=lambda a: a[0]):
        for email in emails:
            times = touched.setdefault(email.lower(), [])
            if not times or times[-1] != answered:
                times.append(answered)
    state = {name: set(m) for name, m in before.items()}
    seen = set()
    duplicates = 0
    inconsistent = []  # an add of a member, a removal of a non-member
    reasons = {}
    types = {}
    per_segment = {name: {"added": 0, "removed": 0} for name in ids}
    latest, earliest, tracker_part, delivery_part = [], [], [], []
    early = 0
    unexplained = 0
    ambiguous = 0
    other = {}  # segment → its notifications with another reason than `data`
    for arrived, n, _ in received:
        if n["event_id"] in seen:
            duplicates += 1
            continue
        seen.add(n["event_id"])
        name = names.get(n["segment"]["id"])
        email = n["subscriber"]["email"].lower()
        reasons[n["reason"]] = reasons.get(n["reason"], 0) + 1
        types[n["type"]] = types.get(n["type"], 0) + 1
        if name is None:
            inconsistent.append(f"a notification for segment {n['segment']['id']}, not watched")
            continue
        members_now = state[name]
        if n["type"] == "segment.member_added":
            per_segment[name]["added"] += 1
            if email in members_now:
                inconsistent.append(f"{name}: {email} added while a member")
            members_now.add(email)
        else:
            per_segment[name]["removed"] += 1
            if email not in members_now:
                inconsistent.append(f"{name}: {email} removed while not a member")
            members_now.discard(email)
        times = touched.get(email, [])
        if n["reason"] != "data":
            # Not caused by a write, says Corral: which segment, and how far from the
            # tracker's tick the subscriber's latest write was answered.
            k = bisect.bisect_right(times, arrived)
            other.setdefault(name, []).append({
                "type": n["type"], "reason": n["reason"], "email": email,
                "write_answered_minus_occurred_at_s":
                    times[k - 1] - parse_ms(n["occurred_at"]) if k else None})
            continue
        k = bisect.bisect_right(times, arrived)
        if k == 0:
            # No write touching this email was answered before the notification came:
            # the writer had not read its answer yet (or nothing of ours touched it).
            if times:
                early += 1
            else:
                unexplained += 1
            continue
        latest.append(arrived - times[k - 1])
        # The earliest write touching this subscriber answered in the AMBIGUOUS_S before
        # the arrival: when there are several, the one that caused it may be an earlier one.
        j = bisect.bisect_left(times, arrived - AMBIGUOUS_S)
        earliest.append(arrived - times[min(j, k - 1)])
        if k - 1 > j:
            ambiguous += 1
        tracker_part.append(parse_ms(n["occurred_at"]) - times[k - 1])
        delivery_part.append(arrived - parse_ms(n["occurred_at"]))
    missing = {name: len(after[name] - state[name]) for name in ids}
    extra = {name: len(state[name] - after[name]) for name in ids}
    examples = []
    for name in ids:
        examples += [f"{name}: missing {e}" for e in sorted(after[name] - state[name])[:2]]
        examples += [f"{name}: extra {e}" for e in sorted(state[name] - after[name])[:2]]

    def dist(values):
        if not values:
            return None
        return {"n": len(values), "p50": statistics.median(values), "p99": p99(values),
                "max": max(values), "min": min(values)}

    arrivals = [r[0] for r in received]
    return {"notifications": len(received), "unique": len(seen), "duplicates": duplicates,
            "reasons": reasons, "types": types, "per_segment": per_segment,
            "missing": missing, "extra": extra, "examples": examples[:20],
            "inconsistent": len(inconsistent), "inconsistent_examples": inconsistent[:10],
            "latency": dist(latest), "latency_upper": dist(earliest),
            "tracker_part": dist(tracker_part), "delivery_part": dist(delivery_part),
            "ambiguous": ambiguous, "ambiguous_window_s": AMBIGUOUS_S,
            "not_data": {name: {"count": len(v), "examples": v[:5]} for name, v in other.items()},
            "before_answer": early, "unexplained": unexplained,
            "first_arrival": min(arrivals, default=None),
            "last_arrival": max(arrivals, default=None),
            "writer_started": writer_started}


# ---------------------------------------------------------------------------------
# The report.

def ms(seconds):
    return fmt_ms(seconds * 1000)


def sec(seconds):
    return f"{seconds:,.2f} s" if seconds >= 1 else f"{seconds * 1000:,.0f} ms"


def mib(kib):
    return f"{kib / 1024:,.0f} MiB" if kib is not None else "?"


def met(ok):
    return "met" if ok else "**not met**"


def cmd_table(args):
    with open(args.run, encoding="utf-8") as src:
        run = json.load(src)
    base, watched = run["baseline"], run["watched"]
    lat, upper = run["latency"], run["latency_upper"]
    trk, dlv = run["tracker_part"], run["delivery_part"]
    missing = sum(run["missing"].values())
    extra = sum(run["extra"].values())

    print("| segment | members before | after | added | removed | missing | extra |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, _ in SEGMENTS:
        ps = run["per_segment"][name]
        print(f"| `{name}` | {run['members_before'][name]:,} | {run['members_after'][name]:,} "
              f"| {ps['added']:,} | {ps['removed']:,} | {run['missing'][name]:,} "
              f"| {run['extra'][name]:,} |")
    print()

    window = run["last_arrival"] - run["writer_started"] if run["last_arrival"] else 0
    goals = [
        ("p50 from a write's answer to its notification ≤ 1 s",
         f"{sec(lat['p50'])} ({lat['n']:,} notifications)" if lat else "none",
         bool(lat) and lat["p50"] <= GOAL_P50_S),
        ("p99 ≤ 5 s", f"{sec(lat['p99'])} (max {sec(lat['max'])})" if lat else "none",
         bool(lat) and lat["p99"] <= GOAL_P99_S),
        ("nothing missing, nothing extra (members before + notifications = members after)",
         f"missing {missing:,}, extra {extra:,}; {run['unique']:,} distinct notifications"
         + (f"; {run['inconsistent']:,} out of step" if run["inconsistent"] else ""),
         run["drained"] and missing == 0 and extra == 0 and run["inconsistent"] == 0),
    ]
    print("| goal | figures | |")
    print("|---|---|---|")
    for goal, figures, ok in goals:
        print(f"| {goal} | {figures} | {met(ok)} |")
    print()

    ratio = watched["p99_s"] / base["p99_s"] if base["p99_s"] else float("nan")
    print("| phase | events/s achieved | writer p50 ms | writer p99 ms | commands p99 ms "
          "| server CPU (share of a core) | RssAnon peak |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label, ph in (("baseline: nothing watched", base),
                      (f"10 segments watched, {run.get('webhooks', 1)} webhook"
                       f"{'' if run.get('webhooks', 1) == 1 else 's'}", watched)):
        print(f"| {label} | {ph['achieved_rate']:,.0f} | {ms(ph['median_s'])} | "
              f"{ms(ph['p99_s'])} | {ms(ph['command_p99_s'] or 0)} | "
              f"{(ph['cpu_s'] or 0) / ph['seconds']:.0%} | {mib(ph['rss_peak_kib'])} |")
    print()
    rate = run["unique"] / window if window > 0 else 0
    print(f"- the writer: `POST /api/v1/batch/events`, {PER_REQUEST} events a request "
          f"({run['ping_share']:.0%} `{PING}` for a pool of {run['pool']:,} subscribers, "
          f"the rest `$pageview`/`$purchase` for anyone), each followed by "
          f"{run['commands']} tag commands (`POST /api/v1/fetch/commands`: `add_tag`, or "
          f"`remove_tag` of a tag it added); {watched['events']:,} events, "
          f"{watched['pings']:,} pings and {sum(watched['tag_commands'].values()):,} "
          f"commands over {watched['seconds']:,.1f} s watched; no errors")
    print(f"- writer p99 watched / baseline: **{ratio:.2f}×** "
          f"({ms(watched['p99_s'])} / {ms(base['p99_s'])} ms); at rest with the 10 watches "
          f"the server used {(run['idle_cpu_s'] or 0) / run['idle_seconds']:.0%} of a core")
    print(f"- notifications: {run['notifications']:,} received in "
          f"{run['receiver_requests']:,} requests ({run['unique']:,} distinct, "
          f"{run['duplicates']:,} repeated event ids), {rate:,.0f}/s from the writer's start "
          f"to the last arrival; {run['received_by_writer_stop']:,} had arrived when the "
          f"writer stopped; the outbox drained {sec(run['drain_s'])} after it stopped "
          f"(including a {run.get('quiet_seconds', 5):g} s quiet spell); reasons "
          + ", ".join(f"`{k}` {v:,}" for k, v in sorted(run["reasons"].items())))
    if lat:
        print(f"- latency (arrival − the answer of the latest write touching that subscriber "
              f"answered before it arrived; `data` notifications): p50 {sec(lat['p50'])}, "
              f"p99 {sec(lat['p99'])}, max {sec(lat['max'])}; "
              f"{run['ambiguous']:,} of them had more than one such write in the "
              f"{run['ambiguous_window_s']:g} s before arriving: counted from the earliest "
              f"of those instead, p50 {sec(upper['p50'])}, p99 {sec(upper['p99'])}, max "
              f"{sec(upper['max'])}")
        print(f"- of which answer → outbox (`occurred_at`, the tracker's clock): p50 "
              f"{sec(trk['p50'])}, p99 {sec(trk['p99'])}; outbox → arrival (the deliverer): "
              f"p50 {sec(dlv['p50'])}, p99 {sec(dlv['p99'])}, max {sec(dlv['max'])}")
    for name, found in sorted(run.get("not_data", {}).items()):
        gaps = [e["write_answered_minus_occurred_at_s"] for e in found["examples"]
                if e["write_answered_minus_occurred_at_s"] is not None]
        print(f"- `{name}`: {found['count']:,} notifications with a reason other than `data` ("
              + ", ".join(sorted({e["reason"] for e in found["examples"]}))
              + "); their subscriber's latest write was answered "
              + ", ".join(f"{g * 1000:+,.0f} ms" for g in gaps)
              + " from the tick that noticed it (first examples)")
    print(f"- {run['before_answer']:,} notifications arrived before the writer had read the "
          f"answer of any write touching that subscriber, {run['unexplained']:,} for a "
          f"subscriber no write touched (both left out of the latencies)")
    print(f"- webhook created (baselines of 10 segments) in {sec(run['webhook_create_s'])}; "
          f"RssAnon peak over the run {mib(run['rss_peak_kib'])}, at the end "
          f"{mib(run['rss_end_kib'])}")
    if run["examples"] or run["inconsistent_examples"]:
        print("- examples: " + "; ".join(run["examples"][:6] + run["inconsistent_examples"][:4]))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    for name in ("url", "site", "pk", "sk"):
        run.add_argument(name)
    run.add_argument("--db", required=True)
    run.add_argument("--pid", type=int, required=True)
    run.add_argument("--out", required=True)
    run.add_argument("--write-rate", type=float, default=1000)
    run.add_argument("--duration", type=float, default=60)
    run.add_argument("--baseline-seconds", type=float, default=20)
    run.add_argument("--seed", type=int, default=42)
    run.add_argument("--pool", type=int, default=10_000)
    run.add_argument("--ping-share", type=float, default=0.05)
    run.add_argument("--commands", type=int, default=2)
    run.add_argument("--quiet-seconds", type=float, default=5)
    run.add_argument("--drain-seconds", type=float, default=600)
    run.add_argument("--webhooks", type=int, default=1)
    table = sub.add_parser("table")
    table.add_argument("--run", required=True)
    args = parser.parse_args()
    if args.command == "run":
        if args.write_rate <= 0 or args.duration <= 0 or not 0 <= args.ping_share <= 1 \
                or not 1 <= args.webhooks <= len(SEGMENTS):
            fail("--write-rate and --duration above 0, --ping-share from 0 to 1, "
                 f"--webhooks from 1 to {len(SEGMENTS)}")
        cmd_run(args)
    else:
        cmd_table(args)


if __name__ == "__main__":
    main()
