#!/usr/bin/env python3
"""Helper of bench/history.sh: what the membership journal costs and how fast its history
reads (Python standard library only; the suite and the HTTP client are
bench/eval_helper.py's, the writer bench/live_helper.py's, the CPU sampler
bench/webhooks_helper.py's).

Every subcommand that reads or writes the database directly takes --db-kind sqlite|postgres
and --db PATH|URL (and --psql PATH for PostgreSQL, which is driven through psql).

    setup   URL SITE_UUID PK SK --ids FILE
            discards the segments of earlier runs, creates the 20 kept segments (the
            eval suite's 19 and LAG_SEGMENT, a tag the lag tagger alone moves), evaluates
            each once (which brings the audience into memory) and checks that each has a
            history (its baseline, taken when it was created). Writes their ids to FILE.
    year    --db-kind K --db D [--psql P] --site SITE_UUID --segment ID --transitions N
            --out FILE
            with the server stopped: writes a year of history of segment ID straight into
            the journal's tables, as the journal would have written it (consistent
            segment_transitions, journal_days, segment_journals and journal_members; see
            make_year). The segment's members now are left as they are; its history then
            begins a year and a day before now. Writes the instants and the expected
            answers to FILE.
    routes  URL SITE_UUID PK SK --year FILE --rounds N --out FILE [--walk]
            times the history reads over HTTP against the year written: the 365-point daily
            series, the first page of members at the instant with TARGET members and at
            the history's beginning, the whole membership at that instant (every page,
            with --walk) and the first page of the changes feed; every answer checked
            against what was written.
    measure URL SITE_UUID PK SK --pid PID --without URL2 --without-pid PID2 --ids FILE
            --db-kind K --db D [--psql P] --out FILE [--rounds N] [--phase-seconds S]
            [--write-rate R] [--lag-rate R] [--poll-interval S] [--settle-seconds S]
            [--seed N]
            the writer (live_helper's: POST /batch/events at R events a second) in phases,
            to URL, whose site keeps the 20 segments ("with": the journal evaluates them
            for every write), or to URL2, a second server on a copy of the same database
            made before any segment was created ("without": no kept segment, the journal
            does nothing), in the order with, without, without, with, … (N rounds of two),
            S seconds each and --settle-seconds between. In both, a tagger adds and removes
            the tag of LAG_SEGMENT (--lag-rate commands a second) on the server of the
            phase, and a poller follows LAG_SEGMENT's changes feed on URL (`?after=`): the
            lag of each transition a tag command of a "with" phase made is the time from
            the command's 2xx to the poller's answer holding it, and each must be seen
            once. Then one huge write, timed: DISCARDED discarded on URL, which records a
            leave of each of its members.
    sizes   --db-kind K --db D [--psql P] --label TEXT --out FILE
            appends to FILE (JSON lines) the transitions stored and the bytes of
            segment_transitions with its indexes (SQLite: dbstat; PostgreSQL:
            pg_table_size and pg_indexes_size).
    table   --routes FILE --measure FILE --sizes FILE [--postgres-routes FILE
            --postgres-measure FILE --postgres-sizes FILE]
            prints the Markdown report, the goals marked met / not met.

A request that fails (not 2xx, an item refused), an answer that differs from what was
written, or a transition the feed shows twice or never makes setup, year, routes and
measure exit 1. `table` always exits 0 (goals not met are reported, not errors).
"""

import argparse
import datetime
import http.client
import json
import math
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no __pycache__ left in bench/
from eval_helper import SUITE, Corral, fmt_ms, resolve  # noqa: E402
from live_helper import Writer, client, p99  # noqa: E402
from webhooks_helper import Sampler  # noqa: E402

NAME_PREFIX = "history: "
# The segment whose changes feed is polled: only the tagger moves it.
LAG_SEGMENT = "lag-tagged"
LAG_TAG = "bench-lag"
LAG_POOL = 2000
# The segment given a year of history: a tag held by about half the audience.
YEAR_SEGMENT = "customers"
# The segment discarded at the end, timed (no segment refers to it).
DISCARDED = "unsubscribed"
DAY_MS = 86_400_000
# Goals.
GOAL_WRITER_RATIO = 1.2
GOAL_LAG_P99_S = 1.0
GOAL_SERIES_S = 0.050
GOAL_MEMBERS_S = 0.300
GOAL_FIRST_PAGE_S = 0.020


def fail(message):
    print(f"history_helper: {message}", file=sys.stderr)
    sys.exit(1)


def say(message):
    print(message, file=sys.stderr, flush=True)


def iso(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc) \
        .isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text):
    return round(datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def dist(values):
    if not values:
        return None
    return {"n": len(values), "p50": statistics.median(values), "p99": p99(values),
            "min": min(values), "max": max(values)}


# ---------------------------------------------------------------------------------
# The database, read and written directly (SQLite through Python's sqlite3, PostgreSQL
# through psql).

class Db:
    def __init__(self, args):
        self.kind = args.db_kind
        self.target = args.db
        self.psql = getattr(args, "psql", None)
        if self.kind == "sqlite":
            self.con = sqlite3.connect(self.target, timeout=600, isolation_level=None)
        elif not self.psql:
            fail("--psql is needed with --db-kind postgres")

    def rows(self, sql, params=()):
        """Rows as tuples (PostgreSQL: every value as text; params inlined, numbers only)."""
        if self.kind == "sqlite":
            return self.con.execute(sql, params).fetchall()
        for p in params:
            if not isinstance(p, int):
                fail(f"only whole numbers are inlined into psql, not {p!r}")
        text = sql.replace("?", "{}").format(*params)
        out = subprocess.run([self.psql, "-X", "-q", "-A", "-t", "-F", "\t", "-v",
                              "ON_ERROR_STOP=1", "-d", self.target, "-c", text],
                             capture_output=True, text=True, check=False)
        if out.returncode != 0:
            fail(f"psql failed on {text[:200]!r}: {out.stderr[-1000:]}")
        return [tuple(line.split("\t")) for line in out.stdout.splitlines() if line]

    def script(self, text):
        """Runs a psql script (PostgreSQL only), in one session."""
        with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
            f.write(text)
            path = f.name
        try:
            out = subprocess.run([self.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d",
                                  self.target, "-f", path], capture_output=True, text=True,
                                 check=False)
        finally:
            os.unlink(path)
        if out.returncode != 0:
            fail(f"psql script failed: {out.stderr[-1000:]}")

    def site_id(self, uuid):
        if self.kind == "sqlite":
            rows = self.rows("SELECT id FROM sites WHERE uuid = ?", (uuid,))
        else:
            rows = self.rows(f"SELECT id FROM sites WHERE uuid = '{uuid}'")
        if not rows:
            fail(f"no site {uuid}")
        return int(rows[0][0])

    def emails(self, site_id):
        return [r[0] for r in self.rows(
            "SELECT email FROM subscribers WHERE site_id = ? ORDER BY id", (site_id,))]

    def last_transition(self, site_id):
        rows = self.rows("SELECT COALESCE(max(id), 0) FROM segment_transitions "
                         "WHERE site_id = ?", (site_id,))
        return int(rows[0][0])

    def sizes(self):
        """(transitions, table bytes, index bytes) of segment_transitions."""
        count = int(self.rows("SELECT count(*) FROM segment_transitions")[0][0])
        if self.kind == "sqlite":
            def btree(name):
                rows = self.rows("SELECT pgsize FROM dbstat WHERE name = ? AND aggregate = 1",
                                 (name,))
                return int(rows[0][0]) if rows else 0
            table = btree("segment_transitions")
            indexes = [r[0] for r in self.rows(
                "SELECT name FROM sqlite_master WHERE type = 'index' "
                "AND tbl_name = 'segment_transitions'")]
            index = sum(btree(name) for name in indexes)
        else:
            self.rows("VACUUM (ANALYZE) segment_transitions")
            table, index = (int(v) for v in self.rows(
                "SELECT pg_table_size('segment_transitions'), "
                "pg_indexes_size('segment_transitions')")[0])
        return count, table, index


def cmd_sizes(args):
    db = Db(args)
    count, table, index = db.sizes()
    with open(args.out, "a", encoding="utf-8") as out:
        out.write(json.dumps({"label": args.label, "transitions": count, "table": table,
                              "indexes": index}) + "\n")
    say(f"{args.label}: {count:,} transitions, table {table:,} bytes, indexes {index:,} bytes")


def cmd_checkpoints(args):
    """Waits for the server's sweep to take the segment's membership checkpoints (the
    year was written straight into the tables, so it has none before), and records how
    many there are, their bytes and the wait."""
    db = Db(args)
    started = time.perf_counter()
    length = "length(ids)" if db.kind == "sqlite" else "octet_length(ids)"
    while True:
        row = db.rows(f"SELECT COUNT(*), COALESCE(SUM({length}), 0), COALESCE(SUM(members), 0) "
                      "FROM journal_checkpoints WHERE segment_id = ?", (args.segment,))[0]
        count, size, members = (int(x) for x in row)
        if count > 0:
            break
        if time.perf_counter() - started > 900:
            fail("the server took no checkpoint of the segment within 15 minutes")
        time.sleep(0.2)
    waited = time.perf_counter() - started
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump({"count": count, "bytes": size, "members": members, "waited_s": waited}, out)
    say(f"checkpoints of segment {args.segment}: {count} ({size:,} bytes for {members:,} "
        f"memberships), taken within {waited:.1f} s of the reads' start")


# ---------------------------------------------------------------------------------
# The segments.

def ok_call(corral, method, path, body=None, ok=(200,)):
    status, text, seconds = corral.call(method, path, body)
    if status not in ok:
        fail(f"{method} /api/v1{path} answered {status}: {text[:500]!r}")
    return (json.loads(text) if text else None), seconds


def cmd_setup(args):
    corral = client(args)
    listing, _ = ok_call(corral, "GET", "/fetch/segments")
    ours = [s for s in listing["data"] if s["attributes"]["name"].startswith(NAME_PREFIX)]
    for s in sorted(ours, key=lambda s: int(s["id"]), reverse=True):
        ok_call(corral, "DELETE", f"/fetch/segments/{s['id']}")
    # The audience in memory first: a segment created on a site whose snapshot is not
    # resident leaves its baseline to the next sweep.
    load_s = corral.first_load()
    say(f"audience in memory in {load_s:.1f} s")
    ids = {}
    segments = [(s["name"], s["query"]) for s in SUITE] + [
        (LAG_SEGMENT, {"tag": {"has": LAG_TAG}})]
    started = time.perf_counter()
    each = {}
    for name, query in segments:
        answer, seconds = ok_call(corral, "POST", "/fetch/segments", {"segment": {
            "name": NAME_PREFIX + name, "visitor_event_query": resolve(query, ids)}},
            ok=(200, 201))
        ids[name] = str(answer["data"]["id"])
        each[name] = seconds
    created_s = time.perf_counter() - started
    counts = {}
    for name, segment_id in ids.items():
        counts[name] = corral.stats(segment_id)[0][0]
        history, _ = ok_call(corral, "GET", f"/stats/segment/history?segment_id={segment_id}")
        if history["meta"]["history_begins_at"] is None:
            fail(f"segment {name} has no history after it was created (no baseline)")
    if counts[LAG_SEGMENT] != 0:
        fail(f"{counts[LAG_SEGMENT]} subscribers already hold the tag {LAG_TAG}")
    say(f"{len(ids)} segments created in {created_s:.1f} s (baselines with them); members: "
        + ", ".join(f"{n} {c:,}" for n, c in counts.items()))
    with open(args.ids, "w", encoding="utf-8") as out:
        json.dump({"ids": ids, "members": counts, "created_s": created_s, "each_s": each},
                  out, indent=1)


# ---------------------------------------------------------------------------------
# A year of history, written straight into the journal's tables.

def make_year(members, others, transitions, begins, end, target, rng):
    """A year of joins and leaves of one segment that ends with its members now.

    `transitions` / 2 subscribers each move twice between `begins` and `end`: a member
    now leaves and comes back, anyone else joins and leaves; so the members now are
    untouched and at `begins` the members were the same. The instant T (mid-year) is
    given `target` members: of the member pairs, half are out at T; of the others, as many
    in as that leaves short of `target`. Returns the transitions, sorted
    ((at, subscriber, added)), T and the members at T (ascending ids)."""
    pairs = transitions // 2
    everyone = len(members) + len(others)
    if pairs > everyone:
        fail(f"{transitions} transitions need {pairs} subscribers; the site has {everyone}")
    # Members and others among the pairs in their proportion.
    from_members = round(pairs * len(members) / everyone)
    from_members = max(pairs - len(others), min(from_members, len(members)))
    mover_members = rng.sample(members, from_members)
    mover_others = rng.sample(others, pairs - from_members)
    t_mid = begins + (end - begins) // 2
    out_at_t = from_members // 2
    in_at_t = max(0, min(len(mover_others), target - len(members) + out_at_t))
    out_at_t = max(0, min(from_members, in_at_t + len(members) - target))

    def two(spanning):
        while True:
            if spanning:
                a, b = rng.randrange(begins + 1, t_mid), rng.randrange(t_mid + 1, end)
            else:
                lo, hi = ((begins + 1, t_mid) if rng.random() < 0.5 else (t_mid + 1, end))
                a, b = sorted((rng.randrange(lo, hi), rng.randrange(lo, hi)))
            if a < b:
                return a, b

    rows = []
    for k, s in enumerate(mover_members):
        a, b = two(k < out_at_t)
        rows += [(a, s, 0), (b, s, 1)]
    for k, s in enumerate(mover_others):
        a, b = two(k < in_at_t)
        rows += [(a, s, 1), (b, s, 0)]
    rows.sort()
    at_t = sorted(set(members) - set(mover_members[:out_at_t]) | set(mover_others[:in_at_t]))
    return rows, t_mid, at_t


def expected_series(rows, now_members, first_day, days, to):
    """Per day from first_day: (members at the day's end, or at `to` for the last; joins;
    leaves)."""
    added = [0] * days
    removed = [0] * days
    after_to = 0
    for at, _, joined in rows:
        if at >= to:
            after_to += 1 if joined else -1
            continue
        k = (at - first_day) // DAY_MS
        if 0 <= k < days:
            if joined:
                added[k] += 1
            else:
                removed[k] += 1
    members = now_members - after_to
    points = []
    for k in reversed(range(days)):
        points.append((members, added[k], removed[k]))
        members -= added[k] - removed[k]
    points.reverse()
    return points


def cmd_year(args):
    db = Db(args)
    site_id = db.site_id(args.site)
    segment = int(args.segment)
    rng = random.Random(args.seed)
    now = int(time.time() * 1000)
    # The journal's members of the segment now, and everyone else.
    if db.kind == "sqlite":
        member_rows = db.rows(
            "SELECT m.subscriber_id FROM journal_members m, json_each(m.segments) j "
            "WHERE m.site_id = ? AND j.value = ?", (site_id, segment))
    else:
        member_rows = db.rows(
            "SELECT subscriber_id FROM journal_members "
            "WHERE site_id = ? AND segments::jsonb @> '[?]'::jsonb", (site_id, segment))
    members = sorted(int(r[0]) for r in member_rows)
    info = db.rows("SELECT begins_at, members FROM segment_journals "
                   "WHERE site_id = ? AND segment_id = ?", (site_id, segment))
    if not info or info[0][0] in (None, ""):
        fail(f"segment {segment} has no baseline")
    if int(info[0][1]) != len(members):
        fail(f"segment_journals.members says {info[0][1]}, journal_members {len(members)}")
    baseline = int(info[0][0])
    before = db.rows("SELECT count(*) FROM segment_transitions WHERE site_id = ?", (site_id,))
    if int(before[0][0]) != 0:
        fail("the year is written into a journal without transitions; this one has "
             f"{before[0][0]}")
    member_set = set(members)
    others = [int(r[0]) for r in db.rows(
        "SELECT id FROM subscribers WHERE site_id = ? ORDER BY id", (site_id,))
        if int(r[0]) not in member_set]
    everyone = len(members) + len(others)
    target = args.target if args.target else everyone // 2
    # The history: from a year and a day before today's start, to a minute before the
    # baseline the server took when the segment was created.
    today = now // DAY_MS * DAY_MS
    begins = today - 366 * DAY_MS
    end = min(now, baseline) - 60_000
    say(f"year: segment {segment}, {len(members):,} members now of {everyone:,}; "
        f"{args.transitions:,} transitions from {iso(begins)} to {iso(end)}")
    started = time.perf_counter()
    rows, t_mid, at_t = make_year(members, others, args.transitions, begins, end, target, rng)
    made_s = time.perf_counter() - started
    started = time.perf_counter()
    if db.kind == "sqlite":
        con = db.con
        con.execute("BEGIN IMMEDIATE")
        con.executemany(
            "INSERT INTO segment_transitions (site_id, segment_id, subscriber_id, at, added, "
            "reason) VALUES (?, ?, ?, ?, ?, 0)",
            ((site_id, segment, s, at, joined) for at, s, joined in rows))
        con.execute(
            "INSERT INTO journal_days (site_id, segment_id, day, added, removed) "
            "SELECT site_id, segment_id, at / 86400000 * 86400000, sum(added), "
            "sum(1 - added) FROM segment_transitions WHERE site_id = ? AND segment_id = ? "
            "GROUP BY 1, 2, 3", (site_id, segment))
        con.execute("UPDATE segment_journals SET begins_at = ? "
                    "WHERE site_id = ? AND segment_id = ?", (begins, site_id, segment))
        con.execute(
            "INSERT INTO journal_sites (site_id, last_at, baselines) VALUES (?, ?, 1) "
            "ON CONFLICT (site_id) DO UPDATE SET last_at = max(last_at, excluded.last_at), "
            "baselines = baselines + 1", (site_id, rows[-1][0]))
        con.execute("COMMIT")
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    else:
        with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as f:
            for n, (at, s, joined) in enumerate(rows):
                f.write(f"{n},{s},{at},{'t' if joined else 'f'}\n")
            path = f.name
        try:
            db.script(f"""
BEGIN;
CREATE TEMP TABLE year (n bigint, subscriber_id bigint, at bigint, added boolean);
\\copy year FROM '{path}' WITH (FORMAT csv)
INSERT INTO segment_transitions (site_id, segment_id, subscriber_id, at, added, reason)
SELECT {site_id}, {segment}, subscriber_id, at, added, 0 FROM year ORDER BY n;
INSERT INTO journal_days (site_id, segment_id, day, added, removed)
SELECT {site_id}, {segment}, at / 86400000 * 86400000,
       sum(CASE WHEN added THEN 1 ELSE 0 END), sum(CASE WHEN added THEN 0 ELSE 1 END)
FROM year GROUP BY 3;
UPDATE segment_journals SET begins_at = {begins}
WHERE site_id = {site_id} AND segment_id = {segment};
INSERT INTO journal_sites (site_id, last_at, baselines) VALUES ({site_id}, {rows[-1][0]}, 1)
ON CONFLICT (site_id) DO UPDATE SET last_at = GREATEST(journal_sites.last_at,
    excluded.last_at), baselines = journal_sites.baselines + 1;
COMMIT;
VACUUM (ANALYZE) segment_transitions;
VACUUM (ANALYZE) journal_days;
""")
        finally:
            os.unlink(path)
    written_s = time.perf_counter() - started
    days_rows = db.rows("SELECT count(*), sum(added), sum(removed) FROM journal_days "
                        "WHERE site_id = ? AND segment_id = ?", (site_id, segment))
    n_days, d_added, d_removed = (int(v) for v in days_rows[0])
    joins = sum(1 for r in rows if r[2])
    if (d_added, d_removed) != (joins, len(rows) - joins):
        fail(f"journal_days holds {d_added} joins and {d_removed} leaves, not "
             f"{joins} and {len(rows) - joins}")
    # The series the routes are asked for: 365 days ending today, up to `to`.
    first_day = today - 364 * DAY_MS
    to = now
    series = expected_series(rows, len(members), first_day, 365, to)
    say(f"year: {len(rows):,} transitions over {n_days} days made in {made_s:.1f} s, written "
        f"in {written_s:.1f} s; {len(at_t):,} members at {iso(t_mid)}")
    result = {"segment": str(segment), "transitions": len(rows), "members_now": len(members),
              "subscribers": everyone, "begins_at": begins, "end": end, "t_mid": t_mid,
              "members_at_t": len(at_t), "member_ids_at_t": at_t, "first_day": first_day, "to": to, "series": series,
              "days": n_days, "made_s": made_s, "written_s": written_s,
              "members_at_begin": len(members)}
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump(result, out)


# ---------------------------------------------------------------------------------
# The history routes.

def timed(corral, path, rounds):
    """The first call's (answer, seconds), then `rounds` more calls' seconds."""
    first, first_s = ok_call(corral, "GET", path)
    times = []
    for _ in range(rounds):
        _, seconds = ok_call(corral, "GET", path)
        times.append(seconds)
    return first, first_s, times


def cmd_routes(args):
    with open(args.year, encoding="utf-8") as src:
        year = json.load(src)
    corral = client(args)
    segment = year["segment"]
    out = {"rounds": args.rounds}

    # The daily series: 365 points.
    path = (f"/stats/segment/history?segment_id={segment}&interval=day"
            f"&from={urllib.parse.quote(iso(year['first_day']))}"
            f"&to={urllib.parse.quote(iso(year['to']))}")
    answer, first_s, times = timed(corral, path, args.rounds)
    got = [(p["members"], p["added"], p["removed"]) for p in answer["data"]]
    want = [tuple(p) for p in year["series"]]
    if got != want:
        bad = next(k for k in range(min(len(got), len(want))) if got[k] != want[k]) \
            if len(got) == len(want) else None
        fail(f"the series differs from the year written: {len(got)} points, {len(want)} "
             f"expected; first difference at point {bad}: "
             f"{got[bad] if bad is not None else ''} against {want[bad] if bad is not None else ''}")
    if parse_iso(answer["meta"]["history_begins_at"]) != year["begins_at"]:
        fail(f"history_begins_at {answer['meta']['history_begins_at']}, not "
             f"{iso(year['begins_at'])}")
    out["series"] = {"points": len(got), "first_s": first_s, "times": times,
                     "joins": sum(p[1] for p in got), "leaves": sum(p[2] for p in got)}
    say(f"series: {len(got)} points; first call {first_s * 1000:.1f} ms, then median "
        f"{statistics.median(times) * 1000:.1f} ms, slowest {max(times) * 1000:.1f} ms")

    # Members at mid-year (TARGET members): the first page, 100 and 1,000.
    at = urllib.parse.quote(iso(year["t_mid"]))
    for limit in (100, 1000):
        page, first_s, times = timed(
            corral, f"/fetch/segments/{segment}/members?at={at}&limit={limit}", args.rounds)
        ids = [int(m["id"]) for m in page["data"]]
        if page["meta"]["count"] != year["members_at_t"] or ids != year["member_ids_at_t"][:limit]:
            fail(f"members at {iso(year['t_mid'])}: count {page['meta']['count']} and "
                 f"{len(ids)} on the page, expected {year['members_at_t']} and the first "
                 f"{limit} of them")
        out[f"members_at_t_{limit}"] = {"count": page["meta"]["count"], "first_s": first_s,
                                        "times": times}
        say(f"members at {iso(year['t_mid'])} ({page['meta']['count']:,}), first page of "
            f"{limit}: first call {first_s * 1000:.1f} ms, then median "
            f"{statistics.median(times) * 1000:.1f} ms")

    # Members at instants not asked before: the end of days spread over the year, each
    # asked once (nothing held from an earlier call), checked against the series.
    days = len(year["series"])
    picks = sorted({1 + (k * (days - 3)) // (args.instants - 1) for k in range(args.instants)})
    fresh = []
    counts = []
    for k in picks:
        end = year["first_day"] + (k + 1) * 86_400_000 - 1
        when = urllib.parse.quote(iso(end))
        page, seconds = ok_call(corral, "GET",
                                f"/fetch/segments/{segment}/members?at={when}&limit=100")
        if page["meta"]["count"] != year["series"][k][0]:
            fail(f"members at {iso(end)}: {page['meta']['count']}, expected "
                 f"{year['series'][k][0]} (the series' day {k})")
        fresh.append(seconds)
        counts.append(page["meta"]["count"])
    out["members_at_fresh"] = {"times": fresh, "instants": len(fresh),
                               "members_min": min(counts), "members_max": max(counts)}
    say(f"members at {len(fresh)} instants not asked before ({min(counts):,} to "
        f"{max(counts):,} members), first page of 100: median "
        f"{statistics.median(fresh) * 1000:.1f} ms, slowest {max(fresh) * 1000:.1f} ms")

    # At the history's beginning: every transition undone.
    at_begin = urllib.parse.quote(iso(year["begins_at"]))
    page, first_s, times = timed(
        corral, f"/fetch/segments/{segment}/members?at={at_begin}&limit=100",
        max(3, args.rounds // 4))
    if page["meta"]["count"] != year["members_at_begin"]:
        fail(f"members at the beginning: {page['meta']['count']}, expected "
             f"{year['members_at_begin']}")
    out["members_at_begin"] = {"count": page["meta"]["count"], "first_s": first_s,
                               "times": times}
    say(f"members at the history's beginning ({page['meta']['count']:,}), first page: "
        f"median {statistics.median(times) * 1000:.1f} ms")

    # The whole membership at T, page after page.
    if args.walk:
        cursor = None
        pages = 0
        seen = []
        page_times = []
        started = time.perf_counter()
        while True:
            path = f"/fetch/segments/{segment}/members?at={at}&limit=1000"
            if cursor:
                path += f"&cursor={cursor}"
            page, seconds = ok_call(corral, "GET", path)
            page_times.append(seconds)
            pages += 1
            seen += [int(m["id"]) for m in page["data"]]
            cursor = page["meta"]["next_cursor"]
            if not cursor:
                break
        walk_s = time.perf_counter() - started
        if seen != year["member_ids_at_t"]:
            fail(f"walking the members at {iso(year['t_mid'])}: {len(seen)} members, not the "
                 f"{year['members_at_t']} written")
        out["walk"] = {"pages": pages, "members": len(seen), "seconds": walk_s,
                       "page": dist(page_times)}
        say(f"every member at {iso(year['t_mid'])}: {len(seen):,} in {pages} pages of 1,000, "
            f"{walk_s:.1f} s")

    # The changes feed from the history's beginning: the first page of 1,000.
    since = urllib.parse.quote(iso(year["begins_at"]))
    page, first_s, times = timed(
        corral, f"/fetch/segments/{segment}/changes?since={since}&limit=1000", args.rounds)
    if len(page["data"]) != 1000 or not page["meta"]["next_cursor"]:
        fail(f"the changes feed's first page holds {len(page['data'])} transitions")
    out["changes_page"] = {"first_s": first_s, "times": times}
    with open(args.out, "w", encoding="utf-8") as dst:
        json.dump(out, dst, indent=1)


# ---------------------------------------------------------------------------------
# The writer's cost and the changes feed's lag.

class Tagger:
    """Adds LAG_TAG to a subscriber of the pool who lacks it, or removes it from one who
    has it (half the time, when there is one), `rate` commands a second, one command a
    request, on its own connection. When `expect` is set, each command's expected
    transition (email, type) is recorded with the time its 2xx was read."""

    def __init__(self, args, pool, tagged, rate, expect, seed):
        self.args = args
        self.pool = pool
        self.tagged = tagged  # emails holding the tag, shared by every phase
        self.interval = 1.0 / rate
        self.expect = expect
        self.rng = random.Random(seed)
        self.stopping = threading.Event()
        self.expected = []  # [email, type, answered at (time.time())]
        self.seconds = []
        self.errors = []
        self.thread = threading.Thread(target=self.run, daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.stopping.set()
        self.thread.join()
        return {"commands": len(self.seconds), "errors": self.errors[:10],
                "error_count": len(self.errors), "seconds": dist(self.seconds)}

    def run(self):
        corral = client(self.args)
        t0 = time.perf_counter()
        k = 0
        while not self.stopping.wait(max(0.0, t0 + k * self.interval - time.perf_counter())):
            k += 1
            if self.tagged and self.rng.random() < 0.5:
                email = self.rng.choice(sorted(self.tagged))
                command, kind = "remove_tag", "segment.member_removed"
            else:
                email = self.rng.choice(self.pool)
                if email in self.tagged:
                    continue
                command, kind = "add_tag", "segment.member_added"
            body = {"command": [{"command": command, "email": email, "query": LAG_TAG}]}
            try:
                status, text, seconds = corral.call("POST", "/fetch/commands", body)
            except (OSError, http.client.HTTPException) as e:
                self.errors.append(repr(e))
                corral.conn.close()
                continue
            answered = time.time()
            try:
                answer = json.loads(text)
                good = status // 100 == 2 and int(answer["failed"]) == 0
            except (ValueError, KeyError, TypeError):
                good = False
            if not good:
                self.errors.append(f"{command} {email}: {status} {text[:300]!r}")
                continue
            self.seconds.append(seconds)
            if command == "add_tag":
                self.tagged.add(email)
            else:
                self.tagged.discard(email)
            if self.expect:
                self.expected.append([email.lower(), kind, answered])


class Poller:
    """Follows a segment's changes feed from where it stands: a page (`?after=`, up to
    1,000), then, when the page was not full, a pause of `interval` seconds. Records each
    transition with the time the answer holding it was read."""

    def __init__(self, args, segment_id, interval):
        self.args = args
        self.segment_id = segment_id
        self.interval = interval
        self.stopping = threading.Event()
        self.seen = []  # [read at (time.time()), transition]
        self.polls = []  # seconds of each poll
        self.errors = []
        self.lock = threading.Lock()
        self.corral = client(args)
        # Where the feed stands now: nothing before this is followed.
        first, _ = ok_call(self.corral, "GET",
                           f"/fetch/segments/{segment_id}/changes?since="
                           f"{urllib.parse.quote(iso(int(time.time() * 1000) - 1000))}&limit=1000")
        self.cursor = first["meta"]["next_cursor"]
        self.before = len(first["data"])
        self.thread = threading.Thread(target=self.run, daemon=True)

    def start(self):
        self.thread.start()

    def stop(self):
        self.stopping.set()
        self.thread.join()

    def count(self, reason):
        with self.lock:
            return sum(1 for _, t in self.seen if t["reason"] == reason)

    def run(self):
        corral = self.corral
        while not self.stopping.is_set():
            path = f"/fetch/segments/{self.segment_id}/changes?limit=1000"
            if self.cursor:
                path += f"&after={self.cursor}"
            try:
                status, text, seconds = corral.call("GET", path)
            except (OSError, http.client.HTTPException) as e:
                self.errors.append(repr(e))
                corral.conn.close()
                continue
            read = time.time()
            if status != 200:
                self.errors.append(f"{status} {text[:300]!r}")
                self.stopping.wait(self.interval)
                continue
            page = json.loads(text)
            with self.lock:
                self.polls.append(seconds)
                self.seen += [[read, t] for t in page["data"]]
            self.cursor = page["meta"]["next_cursor"] or self.cursor
            if len(page["data"]) < 1000:
                self.stopping.wait(self.interval)


def match_lag(expected, seen):
    """Each expected transition matched, per subscriber in order, with the feed's `data`
    transitions of the same type; (lags, missing, unexpected, duplicates, out of order)."""
    by_email = {}
    for email, kind, answered in sorted(expected, key=lambda e: e[2]):
        by_email.setdefault(email, []).append([kind, answered])
    ids = set()
    duplicates = 0
    lags = []
    unexpected = []
    for read, t in seen:
        if t["event_id"] in ids:
            duplicates += 1
            continue
        ids.add(t["event_id"])
        if t["reason"] != "data":
            continue
        email = t["subscriber"]["email"].lower()
        queue = by_email.get(email)
        if not queue or queue[0][0] != t["type"]:
            unexpected.append(f"{t['type']} {email} at {t['occurred_at']}")
            continue
        kind, answered = queue.pop(0)
        lags.append(read - answered)
    missing = [f"{q[0]} {email}" for email, queue in by_email.items() for q in queue]
    order = [t["event_id"] for _, t in seen]
    numbers = [int(e.removeprefix("evt_t")) for e in order if e.startswith("evt_t")]
    out_of_order = sum(1 for a, b in zip(numbers, numbers[1:]) if b <= a)
    return lags, missing, unexpected, duplicates, out_of_order


def cmd_measure(args):
    with open(args.ids, encoding="utf-8") as src:
        ids = json.load(src)["ids"]
    db = Db(args)
    site_id = db.site_id(args.site)
    emails = db.emails(site_id)
    rng = random.Random(args.seed)
    pool = rng.sample(emails, min(LAG_POOL, len(emails)))
    # The server without kept segments: a copy of the same database, the same site and keys.
    without = argparse.Namespace(**vars(args))
    without.url = args.without
    with_corral = client(args)
    if ok_call(client(without), "GET", "/fetch/segments")[0]["data"]:
        fail(f"the server of {args.without} has segments: it is to have none")
    samplers = {"with": Sampler(args.pid), "without": Sampler(args.without_pid)}
    order = []
    for r in range(args.rounds):
        order += ["with", "without"] if r % 2 == 0 else ["without", "with"]
    say(f"phases: {', '.join(order)}; {args.phase_seconds:g} s each; writer "
        f"{args.write_rate:g} events/s, tagger {args.lag_rate:g} commands/s, poller every "
        f"{args.poll_interval:g} s when idle")
    poller = Poller(args, ids[LAG_SEGMENT], args.poll_interval)
    poller.start()
    tagged = {"with": set(), "without": set()}
    phases = []
    expected = []
    try:
        for k, phase in enumerate(order):
            target = args if phase == "with" else without
            writer = Writer(target, emails, args.write_rate, args.seed + k)
            tagger = Tagger(target, pool, tagged[phase], args.lag_rate, phase == "with",
                            args.seed * 100 + k)
            start = time.time()
            writer.start()
            tagger.start()
            if not writer.answered.wait(600):
                fail("the writer's first request got no answer")
            time.sleep(max(0.0, start + args.phase_seconds - time.time()))
            w = writer.stop()
            t = tagger.stop()
            end = time.time()
            if w["error_count"] or t["error_count"]:
                fail("requests failed: " + "; ".join((w["errors"] + t["errors"])[:5]))
            expected += tagger.expected
            latencies = [r[2] for r in w.pop("requests_raw")]
            w["latencies"] = latencies
            _, cpu = samplers[phase].between(start, end)
            phases.append({"phase": phase, "writer": w, "tagger": t, "cpu_s": cpu,
                           "seconds": end - start, "expected": len(tagger.expected)})
            say(f"{k + 1}/{len(order)} {phase}: {w['achieved_rate']:,.0f} events/s, writer "
                f"p50 {w['median_s'] * 1000:.2f} ms, p99 {w['p99_s'] * 1000:.2f} ms; "
                f"{t['commands']} tag commands; server CPU "
                f"{(cpu or 0) / (end - start):.0%} of a core")
            time.sleep(args.settle_seconds)
        # The feed catches up with the last phase's commands (at most 60 s).
        wanted = len(expected)
        deadline = time.time() + 60
        while poller.count("data") < wanted and time.time() < deadline:
            time.sleep(0.2)
        time.sleep(2 * args.poll_interval)
    finally:
        poller.stop()
        for sampler in samplers.values():
            sampler.stop()
    lags, missing, unexpected, duplicates, out_of_order = match_lag(expected, poller.seen)
    result = {"rounds": args.rounds, "phase_seconds": args.phase_seconds,
              "write_rate": args.write_rate, "lag_rate": args.lag_rate,
              "poll_interval": args.poll_interval, "settle_seconds": args.settle_seconds,
              "subscribers": len(emails), "phases": phases,
              "lag": dist(lags), "lags": lags, "expected": len(expected),
              "missing": len(missing), "missing_examples": missing[:10],
              "unexpected": len(unexpected), "unexpected_examples": unexpected[:10],
              "duplicates": duplicates, "out_of_order": out_of_order,
              "seen": len(poller.seen), "poll": dist(poller.polls),
              "poll_errors": poller.errors[:10],
              "reasons": {r: sum(1 for _, t in poller.seen if t["reason"] == r)
                          for r in {t["reason"] for _, t in poller.seen}}}
    if lags:
        say(f"lag (2xx of a tag command to the poller's answer holding its transition): "
            f"{len(lags)} transitions, p50 {statistics.median(lags) * 1000:.0f} ms, p99 "
            f"{p99(lags) * 1000:.0f} ms; missing {len(missing)}, unexpected "
            f"{len(unexpected)}, repeated {duplicates}")
    if missing or unexpected or duplicates or poller.errors:
        with open(args.out, "w", encoding="utf-8") as out:
            json.dump(result, out)
        fail(f"the changes feed did not match the tag commands: {len(missing)} missing "
             f"({missing[:3]}), {len(unexpected)} unexpected ({unexpected[:3]}), "
             f"{duplicates} repeated, poll errors {poller.errors[:3]}")

    # One huge write: discarding a segment records a leave of each of its members, in the
    # discard's transaction.
    with_corral.conn.close()  # idle while the writer ran
    segment_id = ids[DISCARDED]
    members = with_corral.stats(segment_id)[0][0]
    before = db.last_transition(site_id)
    _, seconds = ok_call(with_corral, "DELETE", f"/fetch/segments/{segment_id}")
    wrote = db.last_transition(site_id) - before
    if wrote != members:
        fail(f"discarding {DISCARDED} ({members} members) recorded {wrote} transitions")
    result["discard"] = {"segment": DISCARDED, "members": members, "seconds": seconds,
                         "transitions": wrote}
    say(f"discarding {DISCARDED}: {wrote:,} transitions in {seconds:.1f} s")
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump(result, out)


# ---------------------------------------------------------------------------------
# The report.

def ms(seconds):
    return fmt_ms(seconds * 1000)


def met(ok):
    return "met" if ok else "**not met**"


def load(path):
    with open(path, encoding="utf-8") as src:
        return json.load(src)


def load_sizes(path):
    with open(path, encoding="utf-8") as src:
        return {s["label"]: s for s in map(json.loads, src) if s}


def per_transition(sizes, a, b):
    """Bytes a transition between two size readings: (table, indexes, total, count)."""
    x, y = sizes[a], sizes[b]
    n = y["transitions"] - x["transitions"]
    if n <= 0:
        return None
    t = (y["table"] - x["table"]) / n
    i = (y["indexes"] - x["indexes"]) / n
    return t, i, t + i, n


def writer_figures(run):
    side = {"with": [], "without": []}
    rounds = {"with": [], "without": []}
    cpu = {"with": [0.0, 0.0], "without": [0.0, 0.0]}
    rate = {"with": [0, 0.0], "without": [0, 0.0]}
    for p in run["phases"]:
        side[p["phase"]] += p["writer"]["latencies"]
        rounds[p["phase"]].append(p["writer"]["p99_s"])
        cpu[p["phase"]][0] += p["cpu_s"] or 0
        cpu[p["phase"]][1] += p["seconds"]
        rate[p["phase"]][0] += p["writer"]["events"]
        rate[p["phase"]][1] += p["writer"]["seconds"]
    return side, rounds, cpu, rate


def backend_rows(label, ids, routes, run, sizes):
    """(goal rows, detail lines) of one backend."""
    side, rounds, cpu, rate = writer_figures(run)
    w, n = side["with"], side["without"]
    ratio99 = p99(w) / p99(n)
    ratio50 = statistics.median(w) / statistics.median(n)
    lag = run["lag"]
    series = routes["series"]["times"]
    first100 = routes["members_at_t_100"]["times"]
    walk = routes.get("walk")
    goals = [
        (f"{label}: the writer's p99 with the journal on 20 kept segments ≤ "
         f"{GOAL_WRITER_RATIO}× its p99 with none",
         f"{ms(p99(w))} ms against {ms(p99(n))} ms: **{ratio99:.2f}×** (p50 "
         f"{ms(statistics.median(w))} against {ms(statistics.median(n))} ms, "
         f"{ratio50:.2f}×)", ratio99 <= GOAL_WRITER_RATIO),
        (f"{label}: a transition in the changes feed within 1 s of its write at p99",
         f"p50 {ms(lag['p50'])} ms, p99 {ms(lag['p99'])} ms, max {ms(lag['max'])} ms "
         f"({lag['n']:,} transitions; none missing, none repeated)",
         lag["p99"] <= GOAL_LAG_P99_S),
        (f"{label}: a 365-point daily series of a segment with "
         f"{routes['series']['joins'] + routes['series']['leaves']:,} transitions ≤ 50 ms",
         f"median {ms(statistics.median(series))} ms, slowest {ms(max(series))} ms "
         f"(first call after a start {ms(routes['series']['first_s'])} ms)",
         statistics.median(series) <= GOAL_SERIES_S),
        (f"{label}: members at an instant, first page ≤ 20 ms",
         f"{routes['members_at_t_100']['count']:,} members: first page of 100, median "
         f"{ms(statistics.median(first100))} ms, slowest {ms(max(first100))} ms (first call "
         f"after a start {ms(routes['members_at_t_100']['first_s'])} ms)",
         statistics.median(first100) <= GOAL_FIRST_PAGE_S),
    ]
    lines = []
    fresh = routes["members_at_fresh"]
    goals.append((
        f"{label}: members at an instant not asked before ≤ 300 ms",
        f"{fresh['instants']} instants over the year ({fresh['members_min']:,} to "
        f"{fresh['members_max']:,} members), each asked once: median "
        f"**{ms(statistics.median(fresh['times']))} ms**, slowest "
        f"{ms(max(fresh['times']))} ms",
        max(fresh["times"]) <= GOAL_MEMBERS_S))
    if walk:
        lines.append(
            f"- {label}, every member at mid-year page after page: {walk['members']:,} "
            f"members in {walk['pages']} pages of 1,000, {walk['seconds']:,.1f} s (a page: "
            f"median {ms(walk['page']['p50'])} ms, the subscribers' records of 1,000 "
            f"members)")
    rows = []
    for name in ("with", "without"):
        seconds = cpu[name][1]
        rows.append(f"| {label} | {'20' if name == 'with' else 'none'} | "
                    f"{sum(1 for p in run['phases'] if p['phase'] == name)} | "
                    f"{rate[name][0] / rate[name][1]:,.0f} | {len(side[name]):,} | "
                    f"{ms(statistics.median(side[name]))} | {ms(p99(side[name]))} | "
                    f"{ms(max(side[name]))} | "
                    f"{', '.join(ms(x) for x in rounds[name])} | "
                    f"{cpu[name][0] / seconds:.0%} |")
    setup, discard = ids, run["discard"]
    slow = max(setup["each_s"].items(), key=lambda kv: kv[1])
    lines.append(
        f"- {label}, creating the 20 segments (each takes its baseline: the journal's "
        f"members of every member written in the creation's transaction): "
        f"{setup['created_s']:,.1f} s in all for {sum(setup['members'].values()):,} "
        f"memberships; the slowest `{slow[0]}` ({setup['members'][slow[0]]:,} members) "
        f"{slow[1]:,.1f} s. Discarding `{discard['segment']}` ({discard['members']:,} "
        f"members, a leave recorded for each in one transaction): **{discard['seconds']:,.1f} s**")
    lines.append(
        f"- {label}, the changes feed: {run['expected']:,} tag commands of the \"with\" "
        f"phases, each transition seen once by the poller; a poll: median "
        f"{ms(run['poll']['p50'])} ms, p99 {ms(run['poll']['p99'])} ms; the poller "
        f"pauses {run['poll_interval']:g} s after a page that was not full. Lag from the "
        f"command's 2xx to the poller's answer: min {ms(run['lag']['min'])} ms"
        + (" (below 0: the poller read it before the tagger had read its own answer)"
           if run["lag"]["min"] < 0 else ""))
    r = routes
    lines.append(
        f"- {label}, other reads of the year: members at mid-year, first page of 1,000: "
        f"median {ms(statistics.median(r['members_at_t_1000']['times']))} ms; members at "
        f"the history's beginning ({r['members_at_begin']['count']:,}, every transition "
        f"undone), first page: median {ms(statistics.median(r['members_at_begin']['times']))}"
        f" ms; the changes feed's first page of 1,000: median "
        f"{ms(statistics.median(r['changes_page']['times']))} ms")
    year = per_transition(sizes, "after setup", "after the year")
    server = per_transition(sizes, "after the year", "after the writer")
    size_cells = []
    for what, v in (("a year written straight into the table, in time order", year),
                    ("written by the server (the writer's phases and the discard)", server)):
        if v:
            size_cells.append(f"| {label} | {what} | {v[3]:,} | {v[0]:.1f} | {v[1]:.1f} | "
                              f"**{v[2]:.1f}** |")
    return goals, rows, lines, size_cells


def cmd_table(args):
    backends = [("SQLite", load(args.ids), load(args.routes), load(args.measure),
                  load_sizes(args.sizes))]
    if args.postgres_routes:
        backends.append(("PostgreSQL", load(args.postgres_ids), load(args.postgres_routes),
                         load(args.postgres_measure), load_sizes(args.postgres_sizes)))
    goals, rows, lines, sizes = [], [], [], []
    for label, ids, routes, run, size in backends:
        g, r, li, s = backend_rows(label, ids, routes, run, size)
        goals += g
        rows += r
        lines += li
        sizes += s
    print("| goal | figures | |")
    print("|---|---|---|")
    for goal, figures, ok in goals:
        print(f"| {goal} | {figures} | {met(ok)} |")
    print()
    print("| backend | kept segments | phases | events/s | requests | writer p50 ms | "
          "p99 ms | max ms | p99 per phase ms | corral serve CPU (of a core) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---|---:|")
    print("\n".join(rows))
    print()
    print("| backend | transitions | count | table bytes each | index bytes each | "
          "bytes a transition |")
    print("|---|---|---:|---:|---:|---:|")
    print("\n".join(sizes))
    print()
    print("\n".join(lines))
    run = backends[0][3]
    print(f"- the writer: `POST /api/v1/batch/events`, 100 events a request (`$pageview`, 3% "
          f"`$purchase`), {run['write_rate']:,.0f} events/s over up to 4 connections, "
          f"{run['phase_seconds']:g} s a phase, phases in the order "
          f"{', '.join(p['phase'] for p in run['phases'])} (\"without\": a second server on a "
          f"copy of the database made before the segments were created); beside it in "
          f"every phase a tagger ({run['lag_rate']:g} `add_tag`/`remove_tag` commands a "
          "second) and the poller. p99 by nearest rank over every request of a side")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def target(p):
        p.add_argument("url")
        p.add_argument("site")
        p.add_argument("pk")
        p.add_argument("sk")

    def database(p):
        p.add_argument("--db-kind", choices=("sqlite", "postgres"), required=True)
        p.add_argument("--db", required=True)
        p.add_argument("--psql")

    setup = sub.add_parser("setup")
    target(setup)
    setup.add_argument("--ids", required=True)
    year = sub.add_parser("year")
    database(year)
    year.add_argument("--site", required=True)
    year.add_argument("--segment", required=True)
    year.add_argument("--transitions", type=int, required=True)
    year.add_argument("--target", type=int, default=0)
    year.add_argument("--seed", type=int, default=42)
    year.add_argument("--out", required=True)
    routes = sub.add_parser("routes")
    target(routes)
    routes.add_argument("--year", required=True)
    routes.add_argument("--rounds", type=int, default=20)
    routes.add_argument("--walk", action="store_true")
    routes.add_argument("--instants", type=int, default=24)
    routes.add_argument("--out", required=True)
    measure = sub.add_parser("measure")
    target(measure)
    database(measure)
    measure.add_argument("--pid", type=int, required=True)
    measure.add_argument("--without", required=True)
    measure.add_argument("--without-pid", type=int, required=True)
    measure.add_argument("--ids", required=True)
    measure.add_argument("--out", required=True)
    measure.add_argument("--rounds", type=int, default=3)
    measure.add_argument("--phase-seconds", type=float, default=60)
    measure.add_argument("--write-rate", type=float, default=1000)
    measure.add_argument("--lag-rate", type=float, default=10)
    measure.add_argument("--poll-interval", type=float, default=0.1)
    measure.add_argument("--settle-seconds", type=float, default=2)
    measure.add_argument("--seed", type=int, default=42)
    checkpoints = sub.add_parser("checkpoints")
    database(checkpoints)
    checkpoints.add_argument("--segment", type=int, required=True)
    checkpoints.add_argument("--out", required=True)
    sizes = sub.add_parser("sizes")
    database(sizes)
    sizes.add_argument("--label", required=True)
    sizes.add_argument("--out", required=True)
    table = sub.add_parser("table")
    for name in ("ids", "routes", "measure", "sizes"):
        table.add_argument(f"--{name}", required=True)
        table.add_argument(f"--postgres-{name}")
    args = parser.parse_args()
    {"setup": cmd_setup, "year": cmd_year, "routes": cmd_routes, "measure": cmd_measure,
     "sizes": cmd_sizes, "table": cmd_table, "checkpoints": cmd_checkpoints}[args.command](args)


if __name__ == "__main__":
    main()
