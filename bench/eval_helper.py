#!/usr/bin/env python3
"""Helper of bench/eval.sh: segment evaluation, Corral against DuckDB.

    run   --csv DIR --out FILE [--rounds N] [--corral URL SITE_UUID PK SK]
            loads DIR/{subscribers,subscriber_tags,events}.csv into an in-memory DuckDB
            database (not timed), creates the suite of segments in Corral (after
            discarding the segments an earlier run left), then for each segment: one cold
            Corral call (`GET /api/v1/stats/segment`), one warm-up DuckDB query, and N
            timed rounds of Corral then DuckDB. Writes every figure to FILE as JSON.
            Without --corral, DuckDB only.
    table FILE
            prints the Markdown report of FILE; exits 3 when an absolute-date segment's
            counts differ between the two engines.
    suite
            prints the suite: name, what it tests, query (JSON) and DuckDB SQL.

Runs under the venv's Python (it needs the `duckdb` package); the rest is the standard
library.

The suite is below: each segment is a Corral query and the SQL a person would write by
hand against the same rows in DuckDB, answering (user_count, subscriber_count,
unsubscriber_count) over subscribers, with Corral's semantics (docs in the brief,
src/query/ast.rs and src/query/parse.rs):

- text compares ignoring case (both sides lowercase), and typed operators only match
  values of their type: `more_than` only JSON numbers, `equals "pro"` only JSON text,
  `since` only text that is a date. The macros jnum/jtxt/jbool/jdate do this in SQL;
- tags by lowercase name (subscriber_tags.tag holds tags.name_key);
- an event test counts the events of its type inside its `when` window that pass every
  `where` test; count/sum/first/last test those (sum is 0 and count is 0 when none, so
  `count equals 0` and `sum less_than` match subscribers without any such event; first
  and last fail when there is none);
- `segment: {member_of}` is membership of the referenced segment's query, inlined in SQL
  as a CTE;
- subscribed = unsubscribed_at IS NULL.

Every date is absolute (since/before/between), so both engines answer the same question
whatever the instant, and the counts must be equal; the one `within_last` segment is
marked `relative`: its DuckDB bounds are computed from the instant taken right before
each Corral request, and a count difference there is only a warning (events at the edge
of the window may cross it between the two instants).
"""

import argparse
import base64
import calendar
import datetime
import http.client
import json
import os
import re
import resource
import statistics
import sys
import time

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
ONE_MS = datetime.timedelta(milliseconds=1)
# Names of the segments this benchmark creates; those of earlier runs are discarded.
NAME_PREFIX = "eval: "


def fail(message):
    print(f"eval_helper: {message}", file=sys.stderr)
    sys.exit(1)


def T(day):
    """`YYYY-MM-DD` (midnight UTC, as Corral reads it) as a SQL literal of Unix ms."""
    dt = datetime.datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=datetime.timezone.utc)
    return f"{(dt - EPOCH) // ONE_MS} /* {day} */"


def months_before(at_ms, n):
    """at_ms minus n calendar months, the day clamped to the month's length, the time of
    day kept: chrono's `checked_sub_months`, which Corral's `within_last` uses."""
    t = EPOCH + datetime.timedelta(milliseconds=at_ms)
    months = t.year * 12 + (t.month - 1) - n
    year, month = divmod(months, 12)
    month += 1
    day = min(t.day, calendar.monthrange(year, month)[1])
    return (t.replace(year=year, month=month, day=day) - EPOCH) // ONE_MS


# ---------------------------------------------------------------------------------
# The suite.

# Helpers of the SQL below: one value of a JSON document, only when it has the type the
# Corral operator needs (NULL otherwise, so every comparison with it fails, as in Corral).
MACROS = [
    # A JSON number, as a 64-bit float.
    """CREATE MACRO jnum(j, p) AS CASE WHEN json_type(j, p) IN ('BIGINT', 'UBIGINT', 'DOUBLE')
       THEN CAST(json_extract_string(j, p) AS DOUBLE) END""",
    # JSON text, lowercase (every text test ignores case).
    """CREATE MACRO jtxt(j, p) AS CASE WHEN json_type(j, p) = 'VARCHAR'
       THEN lower(json_extract_string(j, p)) END""",
    # JSON true/false.
    """CREATE MACRO jbool(j, p) AS CASE WHEN json_type(j, p) = 'BOOLEAN'
       THEN json_extract_string(j, p) = 'true' END""",
    # JSON text that is a date, YYYY-MM-DD, as Unix ms of its midnight UTC.
    """CREATE MACRO jdate(j, p) AS CASE WHEN json_type(j, p) = 'VARCHAR'
       THEN epoch_ms(try_strptime(json_extract_string(j, p), '%Y-%m-%d')) END""",
]

# SELECT list of every segment: members, members subscribed, members unsubscribed.
COUNTS = """SELECT count(*) AS user_count,
       count(*) FILTER (WHERE s.unsubscribed_at IS NULL) AS subscriber_count,
       count(*) FILTER (WHERE s.unsubscribed_at IS NOT NULL) AS unsubscriber_count
FROM subscribers s"""

# Members of big-spenders-h2, reused by the segment that references it.
BIG_SPENDERS = f"""SELECT subscriber_id FROM events
    WHERE type = '$purchase' AND occurred_at >= {T('2026-05-01')} AND occurred_at < {T('2026-11-01')}
    GROUP BY subscriber_id
    HAVING coalesce(sum(jnum(details, '$.value.amount')), 0) > 50000"""

# Each segment: name (Corral's is NAME_PREFIX + name), what it tests, the Corral query
# ("@name" in member_of/not_member_of stands for the id of the suite's segment of that
# name), the DuckDB SQL, and whether it is relative to now (within_last/older_than).
SUITE = [
    {
        "name": "everyone",
        "what": "`{}`: no conditions, every subscriber (the fixed cost of a call)",
        "query": {},
        "sql": COUNTS,
    },
    {
        "name": "customers",
        "what": "tag has",
        "query": {"tag": {"has": "customer"}},
        "sql": f"""{COUNTS}
WHERE s.id IN (SELECT subscriber_id FROM subscriber_tags WHERE tag = 'customer')""",
    },
    {
        "name": "engaged-leads",
        "what": "tag all_of + any_of + none_of in one test",
        "query": {"tag": {"all_of": ["lead", "Newsletter"],
                          "any_of": ["mql", "product-updates", "webinar-attendee"],
                          "none_of": ["customer", "churn-risk"]}},
        "sql": f"""{COUNTS}
WHERE s.id IN (
    SELECT subscriber_id FROM subscriber_tags GROUP BY subscriber_id
    HAVING count(*) FILTER (WHERE tag IN ('lead', 'newsletter')) = 2
       AND bool_or(tag IN ('mql', 'product-updates', 'webinar-attendee'))
       AND NOT bool_or(tag IN ('customer', 'churn-risk')))""",
    },
    {
        "name": "pro-plan",
        "what": "field equals text (key \"Plan\" normalised, value \"Pro\" ignoring case)",
        "query": {"field": {"key": "Plan", "equals": "Pro"}},
        "sql": f"""{COUNTS}
WHERE jtxt(s.fields, '$.plan') = 'pro'""",
    },
    {
        "name": "companies-64-plus",
        "what": "field number at_least (absent for half)",
        "query": {"field": {"key": "company_size", "at_least": 64}},
        "sql": f"""{COUNTS}
WHERE jnum(s.fields, '$.company_size') >= 64""",
    },
    {
        "name": "signed-up-2026",
        "what": "field date since (text YYYY-MM-DD)",
        "query": {"field": {"key": "signed_up_on", "since": "2026-01-01"}},
        "sql": f"""{COUNTS}
WHERE jdate(s.fields, '$.signed_up_on') >= {T('2026-01-01')}""",
    },
    {
        "name": "gmail",
        "what": "email domain (\"Gmail.com\" ignoring case)",
        "query": {"email": {"domain": "Gmail.com"}},
        "sql": f"""{COUNTS}
WHERE s.email_key LIKE '%@gmail.com'""",
    },
    {
        "name": "unsubscribed",
        "what": "subscribed false",
        "query": {"subscribed": False},
        "sql": f"""{COUNTS}
WHERE s.unsubscribed_at IS NOT NULL""",
    },
    {
        "name": "frequent-logins-q3",
        "what": "event count at_least 5 in a window (between)",
        "query": {"event": {"type": "$login", "when": {"between": ["2026-07-01", "2026-10-01"]},
                            "count": {"at_least": 5}}},
        "sql": f"""{COUNTS}
WHERE s.id IN (
    SELECT subscriber_id FROM events
    WHERE type = '$login' AND occurred_at >= {T('2026-07-01')} AND occurred_at < {T('2026-10-01')}
    GROUP BY subscriber_id HAVING count(*) >= 5)""",
    },
    {
        "name": "no-login-since-august",
        "what": "event not performed (`not` event, since)",
        "query": {"not": {"event": {"type": "$login", "when": {"since": "2026-08-01"}}}},
        "sql": f"""{COUNTS}
WHERE s.id NOT IN (
    SELECT subscriber_id FROM events WHERE type = '$login' AND occurred_at >= {T('2026-08-01')})""",
    },
    {
        "name": "repeat-buyers",
        "what": "purchase count at_least 3 (all time)",
        "query": {"event": {"type": "$purchase", "count": {"at_least": 3}}},
        "sql": f"""{COUNTS}
WHERE s.id IN (
    SELECT subscriber_id FROM events WHERE type = '$purchase'
    GROUP BY subscriber_id HAVING count(*) >= 3)""",
    },
    {
        "name": "big-spenders-h2",
        "what": "purchase sum of value.amount more_than 50000 over a window",
        "query": {"event": {"type": "$purchase", "when": {"between": ["2026-05-01", "2026-11-01"]},
                            "sum": {"of": "value.amount", "more_than": 50000}}},
        "sql": f"""{COUNTS}
WHERE s.id IN ({BIG_SPENDERS})""",
    },
    {
        "name": "large-usd-order",
        "what": "event `where` on two details (number more_than, text equals ignoring case)",
        "query": {"event": {"type": "$purchase",
                            "where": {"value.amount": {"more_than": 10000},
                                      "value.currency": {"equals": "usd"}}}},
        "sql": f"""{COUNTS}
WHERE s.id IN (
    SELECT subscriber_id FROM events
    WHERE type = '$purchase' AND jnum(details, '$.value.amount') > 10000
      AND jtxt(details, '$.value.currency') = 'usd')""",
    },
    {
        "name": "first-purchase-since-sept",
        "what": "event first since (new buyers)",
        "query": {"event": {"type": "$purchase", "first": {"since": "2026-09-01"}}},
        "sql": f"""{COUNTS}
WHERE s.id IN (
    SELECT subscriber_id FROM events WHERE type = '$purchase'
    GROUP BY subscriber_id HAVING min(occurred_at) >= {T('2026-09-01')})""",
    },
    {
        "name": "low-spending-customers",
        "what": "tag + sum less_than (0 when no purchase: matches non-buyers too)",
        "query": {"all": [
            {"tag": {"has": "customer"}},
            {"event": {"type": "$purchase", "when": {"since": "2026-05-01"},
                       "sum": {"of": "value.amount", "less_than": 2000}}}]},
        "sql": f"""{COUNTS}
LEFT JOIN (
    SELECT subscriber_id, sum(jnum(details, '$.value.amount')) AS spent FROM events
    WHERE type = '$purchase' AND occurred_at >= {T('2026-05-01')}
    GROUP BY subscriber_id) p ON p.subscriber_id = s.id
WHERE s.id IN (SELECT subscriber_id FROM subscriber_tags WHERE tag = 'customer')
  AND coalesce(p.spent, 0) < 2000""",
    },
    {
        "name": "trials-or-lapsed-teams",
        "what": "nesting: any of (all of tag + count equals 0) and (all of field in + last before + not any)",
        "query": {"any": [
            {"all": [{"tag": {"has": "trial"}},
                     {"event": {"type": "$purchase", "count": {"equals": 0}}}]},
            {"all": [{"field": {"key": "plan", "in": ["team", "enterprise"]}},
                     {"event": {"type": "$login", "last": {"before": "2026-09-01"}}},
                     {"not": {"any": [{"subscribed": False},
                                      {"tag": {"has": "churn-risk"}}]}}]}]},
        "sql": f"""{COUNTS}
WHERE (s.id IN (SELECT subscriber_id FROM subscriber_tags WHERE tag = 'trial')
       AND s.id NOT IN (SELECT subscriber_id FROM events WHERE type = '$purchase'))
   OR (jtxt(s.fields, '$.plan') IN ('team', 'enterprise')
       AND s.id IN (SELECT subscriber_id FROM events WHERE type = '$login'
                    GROUP BY subscriber_id HAVING max(occurred_at) < {T('2026-09-01')})
       AND NOT (s.unsubscribed_at IS NOT NULL
                OR s.id IN (SELECT subscriber_id FROM subscriber_tags WHERE tag = 'churn-risk')))""",
    },
    {
        "name": "bento-groups",
        "what": "groups (Bento's shape): tag + event count; field bool + subscribed + event last",
        "query": {"groups": [
            {"filters": [{"tag": {"has": "lead"}},
                         {"event": {"type": "$view_product", "when": {"since": "2026-08-01"},
                                    "count": {"at_least": 3}}}]},
            {"filters": [{"field": {"key": "beta", "equals": True}},
                         {"subscribed": True},
                         {"event": {"type": "$feature_used", "last": {"since": "2026-10-01"}}}]}]},
        "sql": f"""{COUNTS}
WHERE (s.id IN (SELECT subscriber_id FROM subscriber_tags WHERE tag = 'lead')
       AND s.id IN (SELECT subscriber_id FROM events
                    WHERE type = '$view_product' AND occurred_at >= {T('2026-08-01')}
                    GROUP BY subscriber_id HAVING count(*) >= 3))
   OR (jbool(s.fields, '$.beta')
       AND s.unsubscribed_at IS NULL
       AND s.id IN (SELECT subscriber_id FROM events WHERE type = '$feature_used'
                    GROUP BY subscriber_id HAVING max(occurred_at) >= {T('2026-10-01')}))""",
    },
    {
        "name": "big-spenders-not-vip",
        "what": "segment member_of (big-spenders-h2) + tag has_not + subscribed",
        "query": {"all": [{"segment": {"member_of": "@big-spenders-h2"}},
                          {"tag": {"has_not": "vip"}},
                          {"subscribed": True}]},
        "sql": f"""WITH big_spenders AS ({BIG_SPENDERS})
{COUNTS}
WHERE s.id IN (SELECT subscriber_id FROM big_spenders)
  AND s.id NOT IN (SELECT subscriber_id FROM subscriber_tags WHERE tag = 'vip')
  AND s.unsubscribed_at IS NULL""",
    },
    {
        "name": "logins-last-2-months",
        "what": "event within_last 2 months (relative to now: a count difference only warns)",
        "query": {"event": {"type": "$login", "when": {"within_last": {"months": 2}}}},
        "sql": f"""{COUNTS}
WHERE s.id IN (
    SELECT subscriber_id FROM events
    WHERE type = '$login' AND occurred_at >= $since AND occurred_at <= $now)""",
        "relative": True,
        # The SQL's parameters at the instant at_ms: 2 calendar months before it, and it.
        "params": lambda at_ms: {"since": months_before(at_ms, 2), "now": at_ms},
    },
]


def resolve(query, ids):
    """The query with "@name" in member_of/not_member_of replaced by that segment's id."""
    if isinstance(query, dict):
        out = {}
        for key, value in query.items():
            if (key in ("member_of", "not_member_of") and isinstance(value, str)
                    and value.startswith("@")):
                if value[1:] not in ids:
                    fail(f"segment reference {value}: no such segment earlier in the suite")
                value = ids[value[1:]]
            else:
                value = resolve(value, ids)
            out[key] = value
        return out
    if isinstance(query, list):
        return [resolve(v, ids) for v in query]
    return query


def now_ms():
    return time.time_ns() // 1_000_000


# ---------------------------------------------------------------------------------
# DuckDB.

def load_duckdb(csv_dir):
    """An in-memory DuckDB database holding the three tables, read from the CSV files
    the sqlite3 shell exported from Corral's database; fields and details as JSON."""
    import duckdb

    con = duckdb.connect(":memory:")
    started = time.perf_counter()

    def csv(name, columns):
        path = os.path.join(csv_dir, name)
        if not os.path.isfile(path):
            fail(f"{path} is missing")
        spec = ", ".join(f"'{c}': '{t}'" for c, t in columns)
        # RFC 4180 as the sqlite3 shell's .mode csv writes it; an empty unquoted cell is
        # NULL (unsubscribed_at); no type detection: the columns are given.
        return (f"read_csv('{path}', header = true, auto_detect = false, delim = ',', "
                f"quote = '\"', escape = '\"', columns = {{{spec}}})")

    con.execute(f"""CREATE TABLE subscribers AS
        SELECT id, email_key, CAST(fields AS JSON) AS fields, unsubscribed_at, created_at
        FROM {csv('subscribers.csv', [('id', 'BIGINT'), ('email_key', 'VARCHAR'),
                                      ('fields', 'VARCHAR'), ('unsubscribed_at', 'BIGINT'),
                                      ('created_at', 'BIGINT')])}""")
    con.execute(f"""CREATE TABLE subscriber_tags AS
        SELECT subscriber_id, tag
        FROM {csv('subscriber_tags.csv', [('subscriber_id', 'BIGINT'), ('tag', 'VARCHAR')])}""")
    con.execute(f"""CREATE TABLE events AS
        SELECT subscriber_id, type, occurred_at, CAST(details AS JSON) AS details
        FROM {csv('events.csv', [('subscriber_id', 'BIGINT'), ('type', 'VARCHAR'),
                                 ('occurred_at', 'BIGINT'), ('details', 'VARCHAR')])}""")
    for macro in MACROS:
        con.execute(macro)
    seconds = time.perf_counter() - started
    rows = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("subscribers", "subscriber_tags", "events")}
    settings = dict(con.execute(
        "SELECT name, value FROM duckdb_settings() WHERE name IN ('threads', 'memory_limit')"
    ).fetchall())
    return con, {"load_seconds": round(seconds, 3), "rows": rows,
                 "version": duckdb.__version__, "database": "in-memory",
                 "threads": settings.get("threads"),
                 "memory_limit": settings.get("memory_limit")}


def duck_run(con, segment, at_ms):
    """(counts, seconds) of one run of the segment's SQL; relative SQL is bound at at_ms."""
    params = segment["params"](at_ms) if segment.get("params") else None
    started = time.perf_counter_ns()
    if params:
        rows = con.execute(segment["sql"], params).fetchall()
    else:
        rows = con.execute(segment["sql"]).fetchall()
    elapsed = time.perf_counter_ns() - started
    if len(rows) != 1 or len(rows[0]) != 3:
        fail(f"{segment['name']}: the SQL must answer one row of three counts, got {rows!r}")
    return [int(x) for x in rows[0]], elapsed / 1e9


# ---------------------------------------------------------------------------------
# Corral over HTTP, on one kept-alive connection.

class Corral:
    def __init__(self, url, site, pk, sk):
        target = re.match(r"^http://([^/:]+):(\d+)$", url)
        if not target:
            fail(f"URL must be http://HOST:PORT, not {url}")
        self.conn = http.client.HTTPConnection(target.group(1), int(target.group(2)), timeout=300)
        self.site = site
        self.auth = "Basic " + base64.b64encode(f"{pk}:{sk}".encode()).decode()

    def call(self, method, path, body=None):
        """(status, body bytes, seconds) of one request; the time is from sending the
        request to having read the whole answer."""
        sep = "&" if "?" in path else "?"
        headers = {"Authorization": self.auth}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        started = time.perf_counter_ns()
        self.conn.request(method, f"/api/v1{path}{sep}site_uuid={self.site}", body=data,
                          headers=headers)
        response = self.conn.getresponse()
        text = response.read()
        elapsed = time.perf_counter_ns() - started
        return response.status, text, elapsed / 1e9

    def json_call(self, method, path, body=None, ok=(200,)):
        status, text, _ = self.call(method, path, body)
        if status not in ok:
            fail(f"{method} /api/v1{path} answered {status}: {text[:500]!r}")
        return json.loads(text) if text else None

    def discard_earlier_runs(self):
        """Discards the kept segments of earlier runs (names starting with NAME_PREFIX),
        newest first, so a segment is gone before the one it references."""
        listing = self.json_call("GET", "/fetch/segments")["data"]
        ours = [s for s in listing if s["attributes"]["name"].startswith(NAME_PREFIX)]
        for s in sorted(ours, key=lambda s: int(s["id"]), reverse=True):
            self.json_call("DELETE", f"/fetch/segments/{s['id']}")
        return len(ours)

    def create(self, name, query):
        answer = self.json_call("POST", "/fetch/segments", {"segment": {
            "name": NAME_PREFIX + name, "visitor_event_query": query}}, ok=(200, 201))
        return str(answer["data"]["id"])

    def stats(self, segment_id):
        """(counts, seconds) of GET /stats/segment."""
        status, text, seconds = self.call("GET", f"/stats/segment?segment_id={segment_id}")
        if status != 200:
            hint = (" (does this build have the stats endpoint? DUCKDB_ONLY=1 skips Corral)"
                    if status == 404 else "")
            fail(f"GET /api/v1/stats/segment?segment_id={segment_id} answered {status}{hint}: "
                 f"{text[:500]!r}")
        try:
            answer = json.loads(text)
            counts = [int(answer[k]) for k in ("user_count", "subscriber_count",
                                                "unsubscriber_count")]
        except (ValueError, KeyError, TypeError):
            fail(f"GET /api/v1/stats/segment: not the three counts: {text[:500]!r}")
        return counts, seconds


# ---------------------------------------------------------------------------------
# The run.

def cmd_run(args):
    con, duck_info = load_duckdb(args.csv)
    print(f"duckdb {duck_info['version']}: loaded {duck_info['rows']} in "
          f"{duck_info['load_seconds']} s ({duck_info['database']}, {duck_info['threads']} threads)",
          file=sys.stderr)

    corral = None
    ids = {}
    discarded = 0
    if args.corral:
        corral = Corral(*args.corral)
        discarded = corral.discard_earlier_runs()
        for segment in SUITE:
            ids[segment["name"]] = corral.create(segment["name"], resolve(segment["query"], ids))
        print(f"corral: discarded {discarded} segments of earlier runs, created {len(ids)}",
              file=sys.stderr)

    results = []
    for segment in SUITE:
        name = segment["name"]
        entry = {"name": name, "what": segment["what"], "relative": bool(segment.get("relative")),
                 "query": resolve(segment["query"], ids) if corral else segment["query"],
                 "sql": segment["sql"], "id": ids.get(name),
                 "corral_counts": [], "duckdb_counts": [], "corral_s": [], "duckdb_s": []}

        def corral_once():
            at = now_ms()
            counts, seconds = corral.stats(ids[name])
            return at, counts, seconds

        # Warm-up: Corral's first call (reported as "cold"), then DuckDB's first run,
        # bound at the same instant as Corral's call for a relative segment.
        at = now_ms()
        if corral:
            at, counts, entry["corral_cold_s"] = corral_once()
            entry["corral_counts"].append(counts)
        counts, entry["duckdb_first_s"] = duck_run(con, segment, at)
        entry["duckdb_counts"].append(counts)
        for _ in range(args.rounds):
            at = now_ms()
            if corral:
                at, counts, seconds = corral_once()
                entry["corral_counts"].append(counts)
                entry["corral_s"].append(seconds)
            counts, seconds = duck_run(con, segment, at)
            entry["duckdb_counts"].append(counts)
            entry["duckdb_s"].append(seconds)
        results.append(entry)
        line = f"{name}: duckdb {entry['duckdb_counts'][0]} {statistics.median(entry['duckdb_s']) * 1000:.2f} ms"
        if corral:
            line += (f"; corral {entry['corral_counts'][0]} "
                     f"{statistics.median(entry['corral_s']) * 1000:.2f} ms "
                     f"(cold {entry['corral_cold_s'] * 1000:.1f} ms)")
        print(line, file=sys.stderr)

    # ru_maxrss is in KiB on Linux: this process's peak, DuckDB's tables included.
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump({"duckdb": duck_info, "corral": bool(corral), "rounds": args.rounds,
                   "discarded": discarded, "python_peak_rss_kib": peak_kib,
                   "python": sys.version.split()[0], "segments": results}, out, indent=1)


# ---------------------------------------------------------------------------------
# The report.

def ms(seconds):
    return seconds * 1000


def fmt_ms(value):
    return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"


def fmt_ratio(value):
    return f"{value:.1f}×" if value >= 1 else f"{value:.2f}×"


def cmd_table(path, serve_rss_kib="?"):
    with open(path, encoding="utf-8") as src:
        run = json.load(src)
    rows = []
    problems = []
    warnings = []
    for s in run["segments"]:
        duck = s["duckdb_counts"][0]
        duck_med = ms(statistics.median(s["duckdb_s"]))
        # DuckDB's own answers must not move between runs (absolute segments).
        if not s["relative"] and any(c != duck for c in s["duckdb_counts"]):
            problems.append(f"`{s['name']}`: DuckDB's counts changed between runs: "
                            f"{s['duckdb_counts']}")
        if run["corral"]:
            corral = s["corral_counts"][0]
            corral_med = ms(statistics.median(s["corral_s"]))
            differing = [(c, d) for c, d in zip(s["corral_counts"], s["duckdb_counts"]) if c != d]
            if differing:
                c, d = differing[0]
                text = (f"`{s['name']}`: Corral {c} (user, subscriber, unsubscriber) vs DuckDB {d}"
                        f" in {len(differing)} of {len(s['corral_counts'])} calls")
                (warnings if s["relative"] else problems).append(text)
            members = f"{corral[0]:,}"
            if differing:
                members += " (differs, relative)" if s["relative"] else " (MISMATCH)"
            rows.append(f"| `{s['name']}` | {s['what']} | {members} | {fmt_ms(corral_med)} | "
                        f"{fmt_ms(duck_med)} | {fmt_ratio(duck_med / corral_med)} | "
                        f"{fmt_ms(ms(s['corral_cold_s']))} |")
        else:
            rows.append(f"| `{s['name']}` | {s['what']} | {duck[0]:,} | — | {fmt_ms(duck_med)} | "
                        f"— | — |")
    print("| segment | what it tests | members | Corral median ms | DuckDB median ms "
          "| ratio (DuckDB / Corral) | Corral cold ms |")
    print("|---|---|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    print()
    if run["corral"]:
        c_total = sum(statistics.median(s["corral_s"]) for s in run["segments"])
        d_total = sum(statistics.median(s["duckdb_s"]) for s in run["segments"])
        print(f"- whole suite (sum of medians): Corral {fmt_ms(ms(c_total))} ms, DuckDB "
              f"{fmt_ms(ms(d_total))} ms, ratio {fmt_ratio(d_total / c_total)}")
    else:
        print("- DUCKDB_ONLY: Corral was not run; members are DuckDB's counts")
    info = run["duckdb"]
    print(f"- DuckDB {info['version']} (Python {run['python']}), {info['database']} database, "
          f"threads {info['threads']}, memory_limit {info['memory_limit']}; tables "
          + ", ".join(f"{t} {n:,}" for t, n in info["rows"].items())
          + f" (loaded from CSV in {info['load_seconds']} s, not timed)")
    if run["corral"]:
        rss = f"{int(serve_rss_kib) // 1024} MiB" if serve_rss_kib.isdigit() else "?"
        print(f"- peak RSS of `corral serve` (VmHWM, after the runs): {rss}")
    print(f"- peak RSS of the Python + DuckDB process (ru_maxrss, DuckDB's tables included): "
          f"{run['python_peak_rss_kib'] // 1024} MiB")
    print(f"- {run['rounds']} timed rounds a segment (Corral then DuckDB), after one warm-up "
          "call each; ms are medians, Corral's from request sent to answer read over a "
          "kept-alive connection, DuckDB's of `execute(sql).fetchall()`")
    print(f"- counts (user, subscriber, unsubscriber): "
          + "; ".join(f"{s['name']} {tuple(s['duckdb_counts'][0])}" for s in run["segments"]))
    for w in warnings:
        print(f"- WARNING (relative to now, not an error): {w}")
    if problems:
        print("- MISMATCHES (Corral and DuckDB disagree; the segment's figures are not "
              "comparable):")
        for p in problems:
            print(f"  - {p}")
        sys.exit(3)


def cmd_suite():
    for s in SUITE:
        print(f"## {s['name']}{' (relative)' if s.get('relative') else ''}: {s['what']}")
        print(json.dumps(s["query"]))
        print(s["sql"])
        print()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--csv", required=True, help="directory of the three CSV files")
    run.add_argument("--out", required=True, help="JSON file of the results")
    run.add_argument("--rounds", type=int, default=7)
    run.add_argument("--corral", nargs=4, metavar=("URL", "SITE_UUID", "PK", "SK"))
    table = sub.add_parser("table")
    table.add_argument("file")
    table.add_argument("--serve-rss-kib", default="?", help="VmHWM of corral serve, in KiB")
    sub.add_parser("suite")
    args = parser.parse_args()
    if args.command == "run":
        if args.rounds < 1:
            fail("--rounds must be 1 or more")
        cmd_run(args)
    elif args.command == "table":
        cmd_table(args.file, args.serve_rss_kib)
    else:
        cmd_suite()


if __name__ == "__main__":
    main()
