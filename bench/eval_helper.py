#!/usr/bin/env python3
"""Helper of bench/eval.sh: segment evaluation, Corral against DuckDB and chDB.

    run   --csv DIR --out FILE [--rounds N] [--engines LIST] [--chdb-dir DIR]
          [--corral URL SITE_UUID PK SK] [--postgres URL SITE_UUID PK SK]
            loads DIR/{subscribers,subscriber_tags,events}.csv into an in-memory DuckDB
            database and into chDB's MergeTree tables kept in DIR of --chdb-dir (neither
            timed), creates the suite of segments in Corral (after discarding the segments
            an earlier run left), then for each segment: one cold Corral call
            (`GET /api/v1/stats/segment`), one warm-up query of each reference engine, and
            N timed rounds of one call of each engine, the order turning each round.
            Writes every figure to FILE as JSON. --engines names the reference engines
            (`duckdb,chdb` by default); without --corral, the reference engines only.
            --postgres names a second Corral server, on PostgreSQL, holding the same
            audience: it runs in every round beside the first (the engine `postgres`), and
            before anything else each server's first load is timed (a preview of `{}`
            on a server just started without a checkpoint: the whole audience is read).
    table FILE
            prints the Markdown report of FILE; exits 3 when an absolute-date segment's
            counts differ between Corral and a reference engine (or, without Corral,
            between DuckDB and chDB).
    suite
            prints the suite: name, what it tests, query (JSON), DuckDB SQL, ClickHouse SQL.

Runs under the venv's Python (it needs the `duckdb` package, and `chdb` when chDB is one
of the engines); the rest is the standard library.

The suite is below: each segment is a Corral query and the SQL a person would write by
hand against the same rows, once for DuckDB and once for ClickHouse, answering
(user_count, subscriber_count, unsubscriber_count) over subscribers, with Corral's
semantics (docs/query-language.md, src/query/ast.rs and src/query/parse.rs):

- text compares ignoring case (both sides lowercase), and typed operators only match
  values of their type: `more_than` only JSON numbers, `equals "pro"` only JSON text,
  `since` only text that is a date (YYYY-MM-DD). The DuckDB macros jnum/jtxt/jbool/jdate
  and the ClickHouse expressions of ch_num/ch_txt/ch_bool/ch_date do this;
- tags by lowercase name (subscriber_tags.tag holds tags.name_key);
- an event test counts the events of its type inside its `when` window that pass every
  `where` test; count/sum/first/last test those (sum is 0 and count is 0 when none, so
  `count equals 0` and `sum less_than` match subscribers without any such event; first
  and last fail when there is none);
- `segment: {member_of}` is membership of the referenced segment's query, inlined in SQL
  as a CTE;
- subscribed = unsubscribed_at IS NULL.

DuckDB holds the rows as exported (fields and details as JSON text). ClickHouse gets the
layout a ClickHouse engineer would give these rows (load_chdb): MergeTree tables, events
ORDER BY (type, occurred_at) so that a type and a window read only their granules, times
as DateTime64(3, 'UTC'), ids as UInt32, LowCardinality(String) for the event type, the
email domain (extracted at load) and the tag names, each subscriber's tags as an array on
its row (no join), and fields and details in the native JSON type: every path a column of
its own, typed by its JSON value (Int64/UInt64/Float64, Bool, String; date inference is
off, since it would turn "2026-02-30" into a date and "2026-1-5" into "2026-01-05", so
text stays text and `since` parses it).

Every date is absolute (since/before/between), so all engines answer the same question
whatever the instant, and the counts must be equal; the one `within_last` segment is
marked `relative`: the reference engines' bounds are computed from the instant taken at
the start of each round, Corral's from the moment it answers, and a count difference
there is only a warning (events at the edge of the window may cross it in between).
"""

import argparse
import base64
import calendar
import datetime
import http.client
import json
import math
import os
import re
import resource
import shutil
import statistics
import sys
import tempfile
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


def D(day):
    """`YYYY-MM-DD` (midnight UTC) as a ClickHouse DateTime64(3, 'UTC') literal."""
    datetime.datetime.strptime(day, "%Y-%m-%d")  # a date, or ValueError
    return f"toDateTime64('{day}', 3, 'UTC')"


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

# The same helpers for ClickHouse, where fields and details are of the JSON type: each
# path is a Dynamic column whose typed subcolumns (`path.:Int64`) hold the values of that
# type, and NULL for the rows whose value has another type or is absent.
def _ch_path(column, path):
    """`s.fields` and `value.amount` -> s.fields.`value`.`amount`."""
    return column + "." + ".".join(f"`{key}`" for key in path.split("."))


def ch_num(column, path):
    """A JSON number, as a 64-bit float (JSON integers are Int64, or UInt64 above its
    range; the others Float64)."""
    p = _ch_path(column, path)
    return f"coalesce(toFloat64({p}.:Int64), toFloat64({p}.:UInt64), {p}.:Float64)"


def ch_txt(column, path):
    """JSON text, lowercase."""
    return f"lower({_ch_path(column, path)}.:String)"


def ch_bool(column, path):
    """JSON true/false."""
    return f"{_ch_path(column, path)}.:Bool"


def ch_date(column, path):
    """JSON text that is a date, YYYY-MM-DD, as the DateTime64 of its midnight UTC."""
    return f"parseDateTime64OrNull({_ch_path(column, path)}.:String, '%Y-%m-%d', 'UTC')"


# SELECT list of every segment: members, members subscribed, members unsubscribed.
COUNTS = """SELECT count(*) AS user_count,
       count(*) FILTER (WHERE s.unsubscribed_at IS NULL) AS subscriber_count,
       count(*) FILTER (WHERE s.unsubscribed_at IS NOT NULL) AS unsubscriber_count
FROM subscribers s"""

# ClickHouse's: count() and countIf, over the same table.
CH_COUNTS = """SELECT count() AS user_count,
       countIf(s.unsubscribed_at IS NULL) AS subscriber_count,
       countIf(s.unsubscribed_at IS NOT NULL) AS unsubscriber_count
FROM subscribers s"""

# Members of big-spenders-h2, reused by the segment that references it.
BIG_SPENDERS = f"""SELECT subscriber_id FROM events
    WHERE type = '$purchase' AND occurred_at >= {T('2026-05-01')} AND occurred_at < {T('2026-11-01')}
    GROUP BY subscriber_id
    HAVING coalesce(sum(jnum(details, '$.value.amount')), 0) > 50000"""
CH_BIG_SPENDERS = f"""SELECT subscriber_id FROM events
    WHERE type = '$purchase' AND occurred_at >= {D('2026-05-01')} AND occurred_at < {D('2026-11-01')}
    GROUP BY subscriber_id
    HAVING coalesce(sum({ch_num('details', 'value.amount')}), 0) > 50000"""

# Each segment: name (Corral's is NAME_PREFIX + name), what it tests, the Corral query
# ("@name" in member_of/not_member_of stands for the id of the suite's segment of that
# name), the DuckDB SQL, the ClickHouse SQL (`ch`), and whether it is relative to now
# (within_last/older_than). Tags: DuckDB's table subscriber_tags, ClickHouse's array
# s.tags.
SUITE = [
    {
        "name": "everyone",
        "what": "`{}`: no conditions, every subscriber (the fixed cost of a call)",
        "query": {},
        "sql": COUNTS,
        "ch": CH_COUNTS,
    },
    {
        "name": "customers",
        "what": "tag has",
        "query": {"tag": {"has": "customer"}},
        "sql": f"""{COUNTS}
WHERE s.id IN (SELECT subscriber_id FROM subscriber_tags WHERE tag = 'customer')""",
        "ch": f"""{CH_COUNTS}
WHERE has(s.tags, 'customer')""",
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
        "ch": f"""{CH_COUNTS}
WHERE hasAll(s.tags, ['lead', 'newsletter'])
  AND hasAny(s.tags, ['mql', 'product-updates', 'webinar-attendee'])
  AND NOT hasAny(s.tags, ['customer', 'churn-risk'])""",
    },
    {
        "name": "pro-plan",
        "what": "field equals text (key \"Plan\" normalised, value \"Pro\" ignoring case)",
        "query": {"field": {"key": "Plan", "equals": "Pro"}},
        "sql": f"""{COUNTS}
WHERE jtxt(s.fields, '$.plan') = 'pro'""",
        "ch": f"""{CH_COUNTS}
WHERE {ch_txt('s.fields', 'plan')} = 'pro'""",
    },
    {
        "name": "companies-64-plus",
        "what": "field number at_least (absent for half)",
        "query": {"field": {"key": "company_size", "at_least": 64}},
        "sql": f"""{COUNTS}
WHERE jnum(s.fields, '$.company_size') >= 64""",
        "ch": f"""{CH_COUNTS}
WHERE {ch_num('s.fields', 'company_size')} >= 64""",
    },
    {
        "name": "signed-up-2026",
        "what": "field date since (text YYYY-MM-DD)",
        "query": {"field": {"key": "signed_up_on", "since": "2026-01-01"}},
        "sql": f"""{COUNTS}
WHERE jdate(s.fields, '$.signed_up_on') >= {T('2026-01-01')}""",
        "ch": f"""{CH_COUNTS}
WHERE {ch_date('s.fields', 'signed_up_on')} >= {D('2026-01-01')}""",
    },
    {
        "name": "gmail",
        "what": "email domain (\"Gmail.com\" ignoring case)",
        "query": {"email": {"domain": "Gmail.com"}},
        "sql": f"""{COUNTS}
WHERE s.email_key LIKE '%@gmail.com'""",
        "ch": f"""{CH_COUNTS}
WHERE s.email_domain = 'gmail.com'""",
    },
    {
        "name": "unsubscribed",
        "what": "subscribed false",
        "query": {"subscribed": False},
        "sql": f"""{COUNTS}
WHERE s.unsubscribed_at IS NOT NULL""",
        "ch": f"""{CH_COUNTS}
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
        "ch": f"""{CH_COUNTS}
WHERE s.id IN (
    SELECT subscriber_id FROM events
    WHERE type = '$login' AND occurred_at >= {D('2026-07-01')} AND occurred_at < {D('2026-10-01')}
    GROUP BY subscriber_id HAVING count() >= 5)""",
    },
    {
        "name": "no-login-since-august",
        "what": "event not performed (`not` event, since)",
        "query": {"not": {"event": {"type": "$login", "when": {"since": "2026-08-01"}}}},
        "sql": f"""{COUNTS}
WHERE s.id NOT IN (
    SELECT subscriber_id FROM events WHERE type = '$login' AND occurred_at >= {T('2026-08-01')})""",
        "ch": f"""{CH_COUNTS}
WHERE s.id NOT IN (
    SELECT subscriber_id FROM events WHERE type = '$login' AND occurred_at >= {D('2026-08-01')})""",
    },
    {
        "name": "repeat-buyers",
        "what": "purchase count at_least 3 (all time)",
        "query": {"event": {"type": "$purchase", "count": {"at_least": 3}}},
        "sql": f"""{COUNTS}
WHERE s.id IN (
    SELECT subscriber_id FROM events WHERE type = '$purchase'
    GROUP BY subscriber_id HAVING count(*) >= 3)""",
        "ch": f"""{CH_COUNTS}
WHERE s.id IN (
    SELECT subscriber_id FROM events WHERE type = '$purchase'
    GROUP BY subscriber_id HAVING count() >= 3)""",
    },
    {
        "name": "big-spenders-h2",
        "what": "purchase sum of value.amount more_than 50000 over a window",
        "query": {"event": {"type": "$purchase", "when": {"between": ["2026-05-01", "2026-11-01"]},
                            "sum": {"of": "value.amount", "more_than": 50000}}},
        "sql": f"""{COUNTS}
WHERE s.id IN ({BIG_SPENDERS})""",
        "ch": f"""{CH_COUNTS}
WHERE s.id IN ({CH_BIG_SPENDERS})""",
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
        "ch": f"""{CH_COUNTS}
WHERE s.id IN (
    SELECT subscriber_id FROM events
    WHERE type = '$purchase' AND {ch_num('details', 'value.amount')} > 10000
      AND {ch_txt('details', 'value.currency')} = 'usd')""",
    },
    {
        "name": "first-purchase-since-sept",
        "what": "event first since (new buyers)",
        "query": {"event": {"type": "$purchase", "first": {"since": "2026-09-01"}}},
        "sql": f"""{COUNTS}
WHERE s.id IN (
    SELECT subscriber_id FROM events WHERE type = '$purchase'
    GROUP BY subscriber_id HAVING min(occurred_at) >= {T('2026-09-01')})""",
        "ch": f"""{CH_COUNTS}
WHERE s.id IN (
    SELECT subscriber_id FROM events WHERE type = '$purchase'
    GROUP BY subscriber_id HAVING min(occurred_at) >= {D('2026-09-01')})""",
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
        # sum < 2000, 0 without purchases: not among those whose sum is at least 2000.
        "ch": f"""{CH_COUNTS}
WHERE has(s.tags, 'customer')
  AND s.id NOT IN (
    SELECT subscriber_id FROM events
    WHERE type = '$purchase' AND occurred_at >= {D('2026-05-01')}
    GROUP BY subscriber_id
    HAVING coalesce(sum({ch_num('details', 'value.amount')}), 0) >= 2000)""",
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
        "ch": f"""{CH_COUNTS}
WHERE (has(s.tags, 'trial')
       AND s.id NOT IN (SELECT subscriber_id FROM events WHERE type = '$purchase'))
   OR ({ch_txt('s.fields', 'plan')} IN ('team', 'enterprise')
       AND s.id IN (SELECT subscriber_id FROM events WHERE type = '$login'
                    GROUP BY subscriber_id HAVING max(occurred_at) < {D('2026-09-01')})
       AND NOT (s.unsubscribed_at IS NOT NULL OR has(s.tags, 'churn-risk')))""",
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
        "ch": f"""{CH_COUNTS}
WHERE (has(s.tags, 'lead')
       AND s.id IN (SELECT subscriber_id FROM events
                    WHERE type = '$view_product' AND occurred_at >= {D('2026-08-01')}
                    GROUP BY subscriber_id HAVING count() >= 3))
   OR ({ch_bool('s.fields', 'beta')}
       AND s.unsubscribed_at IS NULL
       AND s.id IN (SELECT subscriber_id FROM events WHERE type = '$feature_used'
                    GROUP BY subscriber_id HAVING max(occurred_at) >= {D('2026-10-01')}))""",
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
        "ch": f"""WITH big_spenders AS ({CH_BIG_SPENDERS})
{CH_COUNTS}
WHERE s.id IN (SELECT subscriber_id FROM big_spenders)
  AND NOT has(s.tags, 'vip')
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
        "ch": f"""{CH_COUNTS}
WHERE s.id IN (
    SELECT subscriber_id FROM events
    WHERE type = '$login' AND occurred_at >= fromUnixTimestamp64Milli({{since:Int64}}, 'UTC')
      AND occurred_at <= fromUnixTimestamp64Milli({{now:Int64}}, 'UTC'))""",
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


def duckdb_memory_kib(con):
    """What DuckDB's buffer manager holds (its tables included), from duckdb_memory()."""
    return con.execute("SELECT sum(memory_usage_bytes) FROM duckdb_memory()").fetchone()[0] // 1024


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
# chDB: ClickHouse in-process.

# The tables, as a ClickHouse engineer would lay out these rows (see the docstring).
CH_TABLES = [
    """CREATE TABLE subscribers (
        id UInt32,
        email_key String,
        email_domain LowCardinality(String),
        fields JSON,
        tags Array(LowCardinality(String)),
        unsubscribed_at Nullable(DateTime64(3, 'UTC')),
        created_at DateTime64(3, 'UTC'))
    ENGINE = MergeTree ORDER BY id""",
    """CREATE TABLE events (
        subscriber_id UInt32,
        type LowCardinality(String),
        occurred_at DateTime64(3, 'UTC'),
        details JSON)
    ENGINE = MergeTree ORDER BY (type, occurred_at)""",
]
# Reading the CSV files: RFC 4180 as the sqlite3 shell writes it, cells as they are (no
# trimming, no single quotes), and JSON text kept as text (no date inference).
CH_LOAD_SETTINGS = ("input_format_try_infer_dates = 0, input_format_try_infer_datetimes = 0, "
                    "format_csv_allow_single_quotes = 0, input_format_csv_trim_whitespaces = 0")
# The one setting changed from ClickHouse's defaults, for the session: an `id IN
# (subquery)` set is not also turned into a sorted set to skip subscribers' granules by
# their primary key (the members of an event test are spread over every granule; at 1M
# subscribers, building that set took a fifth of such a query's time).
CH_SESSION_SETTINGS = {"use_index_for_in_with_subqueries": 0}
# Settings worth recording (the others are ClickHouse's defaults).
CH_SETTINGS_SHOWN = ("max_threads", "use_index_for_in_with_subqueries", "use_query_cache",
                     "use_query_condition_cache", "use_uncompressed_cache", "compile_expressions")


def ch_string(text):
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def load_chdb(csv_dir, data_dir):
    """A chDB connection whose database, in data_dir, holds the MergeTree tables, read
    from the same CSV files as DuckDB (tags gathered into an array on each subscriber,
    each table merged into one part)."""
    import importlib.metadata

    import chdb

    started = time.perf_counter()
    con = chdb.connect(data_dir)

    def q(sql):
        return con.query(sql, "CSV").bytes().decode()

    def csv(name, structure):
        path = os.path.join(csv_dir, name)
        if not os.path.isfile(path):
            fail(f"{path} is missing")
        return f"file({ch_string(path)}, 'CSVWithNames', {ch_string(structure)})"

    for table in CH_TABLES:
        q(table)
    q(f"""INSERT INTO subscribers
        SELECT s.id, s.email_key,
               if(position(s.email_key, '@') > 0, lower(substringIndex(s.email_key, '@', -1)), ''),
               s.fields, t.tags,
               fromUnixTimestamp64Milli(s.unsubscribed_at, 'UTC'),
               fromUnixTimestamp64Milli(s.created_at, 'UTC')
        FROM {csv('subscribers.csv', 'id UInt32, email_key String, fields String, '
                                     'unsubscribed_at Nullable(Int64), created_at Int64')} AS s
        LEFT JOIN (
            SELECT subscriber_id, groupArray(tag) AS tags
            FROM {csv('subscriber_tags.csv', 'subscriber_id UInt32, tag String')}
            GROUP BY subscriber_id) AS t ON t.subscriber_id = s.id
        SETTINGS {CH_LOAD_SETTINGS}""")
    q(f"""INSERT INTO events
        SELECT subscriber_id, type, fromUnixTimestamp64Milli(occurred_at, 'UTC'), details
        FROM {csv('events.csv', 'subscriber_id UInt32, type String, occurred_at Int64, '
                                'details String')}
        SETTINGS {CH_LOAD_SETTINGS}""")
    for table in ("subscribers", "events"):
        q(f"OPTIMIZE TABLE {table} FINAL")
    # Loading leaves hundreds of MiB freed in jemalloc, which chDB (no background thread)
    # returns to the system only as later allocations go on: return them now, so that the
    # memory figures after loading are those of the tables and the engine.
    q("SYSTEM JEMALLOC PURGE")
    seconds = time.perf_counter() - started
    for name, value in CH_SESSION_SETTINGS.items():
        q(f"SET {name} = {value}")

    subscribers, tags = (int(x) for x in q(
        "SELECT count(), sum(length(tags)) FROM subscribers").split(","))
    rows = {"subscribers": subscribers, "subscriber_tags": tags,
            "events": int(q("SELECT count() FROM events"))}
    parts = {}
    for line in q("""SELECT table, count(), sum(bytes_on_disk), sum(data_uncompressed_bytes)
                     FROM system.parts WHERE active AND database = currentDatabase()
                     GROUP BY table ORDER BY table""").splitlines():
        table, count, stored, raw = line.split(",")
        parts[table.strip('"')] = {"parts": int(count), "bytes": int(stored),
                                   "uncompressed_bytes": int(raw)}
    settings = {}
    for line in q("SELECT name, value, changed FROM system.settings WHERE name IN ("
                  + ", ".join(ch_string(n) for n in CH_SETTINGS_SHOWN) + ")").splitlines():
        name, value, changed = line.rsplit(",", 2)
        settings[name.strip('"')] = value.strip('"') + (" (set)" if changed == "1" else "")

    def version(dist):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "?"

    return con, {"load_seconds": round(seconds, 3), "rows": rows,
                 "version": version("chdb"), "core_version": version("chdb-core"),
                 "clickhouse": q("SELECT version()").strip().strip('"'),
                 "data_dir": data_dir, "parts": parts, "settings": settings}


def chdb_memory_kib(con):
    """What ClickHouse's own allocator (jemalloc, linked into chDB) holds: bytes allocated
    and resident, in KiB, from system.jemalloc_stats."""
    text = con.query("SELECT stats FROM system.jemalloc_stats", "TSVRaw").bytes().decode()
    found = re.search(r"Allocated: (\d+), active: \d+, metadata: \d+.*?resident: (\d+)", text)
    if not found:
        return None
    return {"allocated": int(found.group(1)) // 1024, "resident": int(found.group(2)) // 1024}


def chdb_run(con, segment, at_ms):
    """(counts, seconds) of one run of the segment's ClickHouse SQL; relative SQL is bound
    at at_ms (query parameters)."""
    params = segment["params"](at_ms) if segment.get("params") else None
    started = time.perf_counter_ns()
    answer = con.query(segment["ch"], "CSV", params=params).bytes()
    elapsed = time.perf_counter_ns() - started
    rows = answer.decode().split()
    if len(rows) != 1 or len(rows[0].split(",")) != 3:
        fail(f"{segment['name']}: the ClickHouse SQL must answer one row of three counts, "
             f"got {answer!r}")
    return [int(x) for x in rows[0].split(",")], elapsed / 1e9


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

    def first_load(self):
        """Seconds of the first evaluation after the server started: a preview of `{}`
        (every subscriber, no sample), which makes the site's snapshot resident."""
        status, text, seconds = self.call("POST", "/fetch/segments/preview",
                                          {"visitor_event_query": {}, "sample": 0})
        if status != 200:
            fail(f"POST /api/v1/fetch/segments/preview answered {status}: {text[:500]!r}")
        return seconds

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

REFERENCES = ("duckdb", "chdb")
LABELS = {"corral": "Corral", "duckdb": "DuckDB", "chdb": "chDB",
          "postgres": "Corral on PostgreSQL"}
# Corral on PostgreSQL evaluates from the same kind of resident snapshot as on SQLite:
# the goal is the same speed, taken as a geometric mean of its times over SQLite's of at
# most this.
POSTGRES_SAME = 1.10
# Corral's goal: the geometric mean, over the suite, of each reference's time over
# Corral's.
GOALS = {"duckdb": 10, "chdb": 5}


def rss_kib():
    """This process's resident memory now, in KiB: all of it (VmRSS), its own (RssAnon)
    and the pages of mapped files (RssFile: the engines' libraries)."""
    found = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            key = line.split(":")[0]
            if key in ("VmRSS", "RssAnon", "RssFile"):
                found[key] = int(line.split()[1])
    return {"rss": found.get("VmRSS"), "anon": found.get("RssAnon"), "file": found.get("RssFile")}


def peak_rss_kib():
    """This process's peak resident memory so far (ru_maxrss, KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def fs_type(path):
    """The type of the file system holding path (tmpfs, ext4, ...), from /proc/mounts."""
    best, kind = "", "?"
    try:
        with open("/proc/mounts", encoding="utf-8") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) >= 3:
                    point = fields[1].replace("\\040", " ")
                    inside = path == point or path.startswith(point.rstrip("/") + "/")
                    if inside and len(point) > len(best):
                        best, kind = point, fields[2]
    except OSError:
        pass
    return kind


def cmd_run(args):
    refs = [e for e in REFERENCES if e in args.engines]
    memory = {"rss_start": rss_kib()}
    runners, infos = {}, {}
    duck_con = ch_con = None
    own_dir = None
    if "duckdb" in refs:
        duck_con, infos["duckdb"] = load_duckdb(args.csv)
        runners["duckdb"] = lambda segment, at: duck_run(duck_con, segment, at)
        memory.update(rss_after_duckdb=rss_kib(), peak_after_duckdb_kib=peak_rss_kib(),
                      duckdb_after_load_kib=duckdb_memory_kib(duck_con))
        info = infos["duckdb"]
        print(f"duckdb {info['version']}: loaded {info['rows']} in {info['load_seconds']} s "
              f"({info['database']}, {info['threads']} threads)", file=sys.stderr)
    try:
        if "chdb" in refs:
            data_dir = args.chdb_dir
            if not data_dir:
                shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
                data_dir = own_dir = tempfile.mkdtemp(prefix="corral-eval-chdb.", dir=shm)
            ch_con, infos["chdb"] = load_chdb(args.csv, data_dir)
            infos["chdb"]["data_fs"] = fs_type(os.path.realpath(data_dir))
            runners["chdb"] = lambda segment, at: chdb_run(ch_con, segment, at)
            memory.update(rss_after_chdb=rss_kib(), peak_after_chdb_kib=peak_rss_kib(),
                          chdb_after_load_kib=chdb_memory_kib(ch_con))
            info = infos["chdb"]
            print(f"chdb {info['version']} (chdb-core {info['core_version']}, ClickHouse "
                  f"{info['clickhouse']}): loaded {info['rows']} in {info['load_seconds']} s "
                  f"(MergeTree in {data_dir}, {info['data_fs']}; max_threads "
                  f"{info['settings'].get('max_threads')})", file=sys.stderr)
        if "duckdb" in infos and "chdb" in infos and infos["duckdb"]["rows"] != infos["chdb"]["rows"]:
            fail(f"DuckDB and chDB loaded different rows: {infos['duckdb']['rows']} vs "
                 f"{infos['chdb']['rows']}")
        run_suite(args, refs, runners, infos, memory, duck_con, ch_con)
    finally:
        if ch_con is not None:
            ch_con.close()
        if own_dir:
            shutil.rmtree(own_dir, ignore_errors=True)


def run_suite(args, refs, runners, infos, memory, duck_con, ch_con):
    corral = postgres = None
    ids, pg_ids = {}, {}
    discarded = 0
    first_load = {}
    if args.corral:
        corral = Corral(*args.corral)
        if args.postgres:
            # Each server's first load, one after the other, nothing else running.
            postgres = Corral(*args.postgres)
            first_load["corral"] = corral.first_load()
            first_load["postgres"] = postgres.first_load()
            print(f"first load: SQLite {first_load['corral']:.3f} s, PostgreSQL "
                  f"{first_load['postgres']:.3f} s", file=sys.stderr)
        discarded = corral.discard_earlier_runs()
        for segment in SUITE:
            ids[segment["name"]] = corral.create(segment["name"], resolve(segment["query"], ids))
        print(f"corral: discarded {discarded} segments of earlier runs, created {len(ids)}",
              file=sys.stderr)
        if postgres:
            postgres.discard_earlier_runs()
            for segment in SUITE:
                pg_ids[segment["name"]] = postgres.create(
                    segment["name"], resolve(segment["query"], pg_ids))
    engines = (["corral"] if corral else []) + (["postgres"] if postgres else []) + refs
    if not engines:
        fail("no engine to run")

    results = []
    for segment in SUITE:
        name = segment["name"]
        entry = {"name": name, "what": segment["what"], "relative": bool(segment.get("relative")),
                 "query": resolve(segment["query"], ids) if corral else segment["query"],
                 "sql": segment["sql"], "ch": segment["ch"], "id": ids.get(name), "orders": []}
        for engine in engines:
            entry[f"{engine}_counts"] = []
            entry[f"{engine}_s"] = []

        def once(engine, at):
            if engine == "corral":
                return corral.stats(ids[name])
            if engine == "postgres":
                return postgres.stats(pg_ids[name])
            return runners[engine](segment, at)

        # Warm-up: Corral's first call (reported as "cold"), then one run of each reference
        # engine, a relative segment bound at the instant taken before Corral's call.
        at = now_ms()
        if corral:
            counts, entry["corral_cold_s"] = once("corral", at)
            entry["corral_counts"].append(counts)
        if postgres:
            counts, entry["postgres_cold_s"] = once("postgres", at)
            entry["postgres_counts"].append(counts)
        for engine in refs:
            counts, entry[f"{engine}_first_s"] = once(engine, at)
            entry[f"{engine}_counts"].append(counts)
        # Timed rounds: one call of each engine, the first of a round turning from one
        # round to the next, so no engine always runs right after the same other one; a
        # relative segment is bound at the instant taken at the start of the round.
        for r in range(args.rounds):
            k = r % len(engines)
            order = engines[k:] + engines[:k]
            entry["orders"].append(order)
            at = now_ms()
            for engine in order:
                counts, seconds = once(engine, at)
                entry[f"{engine}_counts"].append(counts)
                entry[f"{engine}_s"].append(seconds)
        results.append(entry)
        parts = []
        for engine in engines:
            text = (f"{engine} {entry[f'{engine}_counts'][0]} "
                    f"{statistics.median(entry[f'{engine}_s']) * 1000:.2f} ms")
            if engine in ("corral", "postgres"):
                text += f" (cold {entry[f'{engine}_cold_s'] * 1000:.1f} ms)"
            parts.append(text)
        print(f"{name}: " + "; ".join(parts), file=sys.stderr)

    if duck_con is not None:
        memory["duckdb_after_runs_kib"] = duckdb_memory_kib(duck_con)
    if ch_con is not None:
        memory["chdb_after_runs_kib"] = chdb_memory_kib(ch_con)
    memory["rss_end"] = rss_kib()
    # This process's peak, the engines' tables included (not chDB's parts: files).
    memory["python_peak_rss_kib"] = peak_rss_kib()
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump({"engines": engines, "references": refs, "corral": bool(corral),
                   "postgres": bool(postgres), "first_load": first_load,
                   "duckdb": infos.get("duckdb"), "chdb": infos.get("chdb"),
                   "rounds": args.rounds, "discarded": discarded, "memory": memory,
                   "python": sys.version.split()[0], "segments": results}, out, indent=1)


# ---------------------------------------------------------------------------------
# The report.

def ms(seconds):
    return seconds * 1000


def mib(kib):
    return f"{kib / 1024:,.0f} MiB" if isinstance(kib, (int, float)) else "?"


def fmt_ms(value):
    return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"


def fmt_ratio(value):
    return f"{value:.1f}×" if value >= 1 else f"{value:.2f}×"


def geomean(values):
    return math.exp(sum(math.log(v) for v in values) / len(values))


def cmd_table(path, serve_rss_kib="?"):
    with open(path, encoding="utf-8") as src:
        run = json.load(src)
    segments = run["segments"]
    engines, refs, corral = run["engines"], run["references"], run["corral"]
    postgres = run.get("postgres", False)
    # Counts are checked against Corral's, or without Corral, DuckDB's against chDB's;
    # Corral on PostgreSQL's against Corral on SQLite's.
    base = "corral" if corral else engines[0]
    others = (["postgres"] if postgres else []) + [e for e in refs if e != base]
    rows = []
    problems = []
    warnings = []
    med = {e: [ms(statistics.median(s[f"{e}_s"])) for s in segments] for e in engines}
    for i, s in enumerate(segments):
        # A reference engine's own answers must not move between runs (absolute segments).
        for e in refs:
            first = s[f"{e}_counts"][0]
            if not s["relative"] and any(c != first for c in s[f"{e}_counts"]):
                problems.append(f"`{s['name']}`: {LABELS[e]}'s counts changed between runs: "
                                f"{s[f'{e}_counts']}")
        flags = []
        for e in others:
            pairs = list(zip(s[f"{base}_counts"], s[f"{e}_counts"]))
            differing = [(b, o) for b, o in pairs if b != o]
            if differing:
                b, o = differing[0]
                text = (f"`{s['name']}`: {LABELS[base]} {b} (user, subscriber, unsubscriber) "
                        f"vs {LABELS[e]} {o} in {len(differing)} of {len(pairs)} calls")
                (warnings if s["relative"] else problems).append(text)
                flags.append(LABELS[e])
        members = f"{s[f'{base}_counts'][0][0]:,}"
        if flags:
            members += (f" (differs from {', '.join(flags)}, relative)" if s["relative"]
                        else f" (MISMATCH: {', '.join(flags)})")
        cells = [f"`{s['name']}`", s["what"], members]
        cells += [fmt_ms(med[e][i]) for e in engines]
        if corral:
            if postgres:
                cells.append(fmt_ratio(med["postgres"][i] / med["corral"][i]))
            cells += [fmt_ratio(med[e][i] / med["corral"][i]) for e in refs]
            cells.append(fmt_ms(ms(s["corral_cold_s"])))
            if postgres:
                cells.append(fmt_ms(ms(s["postgres_cold_s"])))
        rows.append("| " + " | ".join(cells) + " |")
    head = ["segment", "what it tests", "members"] + [f"{LABELS[e]} ms" for e in engines]
    if corral:
        if postgres:
            head.append("PostgreSQL / SQLite")
        head += [f"{LABELS[e]} / Corral" for e in refs] + ["Corral cold ms"]
        if postgres:
            head.append("PostgreSQL cold ms")
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * 2 + "---:|" * (len(head) - 2))
    print("\n".join(rows))
    print()
    n = len(segments)
    if corral and refs:
        means = []
        for e in refs:
            g = geomean([d / c for d, c in zip(med[e], med["corral"])])
            verdict = "met" if g >= GOALS[e] else "not met"
            means.append(f"{LABELS[e]} / Corral **{fmt_ratio(g)}** (goal ≥ {GOALS[e]}×: {verdict})")
        print(f"- **geometric mean of the ratios over the {n} segments**: " + "; ".join(means))
    if postgres:
        g = geomean([p / c for p, c in zip(med["postgres"], med["corral"])])
        verdict = "met" if g <= POSTGRES_SAME else "not met"
        load = run.get("first_load", {})
        print(f"- **Corral on PostgreSQL / Corral on SQLite, geometric mean of the time ratios "
              f"over the {n} segments: {fmt_ratio(g)}** (goal: the same speed once the "
              f"snapshot is resident, taken as at most {POSTGRES_SAME:.2f}×: {verdict}); "
              f"per segment {fmt_ratio(min(p / c for p, c in zip(med['postgres'], med['corral'])))}"
              f" to {fmt_ratio(max(p / c for p, c in zip(med['postgres'], med['corral'])))}")
        diffs = sorted(p - c for p, c in zip(med["postgres"], med["corral"]))
        print(f"- the difference, Corral on PostgreSQL − on SQLite, per segment: median "
              f"{statistics.median(diffs):+.2f} ms (from {diffs[0]:+.2f} to {diffs[-1]:+.2f}): on "
              "PostgreSQL each request also asks the database for the site's change head, "
              "one round trip, which SQLite's commit signal spares while nothing was written")
        if load:
            print(f"- first load (a preview of `{{}}` on a server just started with an empty "
                  f"checkpoint dir: the whole audience read from the database): SQLite "
                  f"{load['corral']:.2f} s, PostgreSQL {load['postgres']:.2f} s "
                  f"({fmt_ratio(load['postgres'] / load['corral'])})")
    totals = {e: sum(med[e]) for e in engines}
    text = "; ".join(
        f"{LABELS[e]} {fmt_ms(totals[e])} ms"
        + (f" (ratio to Corral {fmt_ratio(totals[e] / totals['corral'])})"
           if corral and e != "corral" else "")
        for e in engines)
    print(f"- whole suite (sum of the medians): {text}")
    if not corral:
        print(f"- Corral was not run; members are {LABELS[base]}'s counts")
    if run.get("duckdb"):
        info = run["duckdb"]
        print(f"- DuckDB {info['version']} (Python {run['python']}), {info['database']} database, "
              f"threads {info['threads']}, memory_limit {info['memory_limit']}; tables "
              + ", ".join(f"{t} {n:,}" for t, n in info["rows"].items())
              + f" (loaded from CSV in {info['load_seconds']} s, not timed)")
    if run.get("chdb"):
        info = run["chdb"]
        stored = sum(p["bytes"] for p in info["parts"].values())
        raw = sum(p["uncompressed_bytes"] for p in info["parts"].values())
        settings = ", ".join(f"{k} {v}" for k, v in info["settings"].items())
        print(f"- chDB {info['version']} (chdb-core {info['core_version']}, ClickHouse "
              f"{info['clickhouse']}), MergeTree tables on {info['data_fs']}: events ORDER BY "
              f"(type, occurred_at), subscribers ORDER BY id with their tags as an array, "
              f"fields and details of the JSON type; settings: {settings}, the others "
              f"ClickHouse's defaults; rows "
              + ", ".join(f"{t} {n:,}" for t, n in info["rows"].items())
              + f", {mib(stored / 1024)} in "
              f"{sum(p['parts'] for p in info['parts'].values())} parts ({mib(raw / 1024)} "
              f"uncompressed), loaded from CSV and merged in {info['load_seconds']} s, not timed")
    if corral:
        rss = f"{int(serve_rss_kib) // 1024:,} MiB" if serve_rss_kib.isdigit() else "?"
        print(f"- peak RSS of `corral serve` (VmHWM, after the runs): {rss}")
    m = run["memory"]
    loaded = " and ".join(LABELS[e] for e in refs)
    end = m["rss_end"]
    if refs:
        print(f"- the Python process with {loaded} loaded: peak RSS {mib(m['python_peak_rss_kib'])} "
              f"(ru_maxrss, loading included); {mib(end['rss'])} resident after the runs, of "
              f"which {mib(end['file'])} are pages of the engines' library files; "
              f"{mib(m['rss_start']['rss'])} before any engine")

    def grew(after, before):
        return (f"+{mib(after['rss'] - before['rss'])} resident "
                f"(+{mib(after['anon'] - before['anon'])} of its own, "
                f"+{mib(after['file'] - before['file'])} of library pages)")
    before = m["rss_start"]
    if "rss_after_duckdb" in m:
        print(f"  - DuckDB: {grew(m['rss_after_duckdb'], before)} once loaded; its buffer "
              f"manager holds {mib(m['duckdb_after_load_kib'])} after loading and "
              f"{mib(m.get('duckdb_after_runs_kib'))} after the runs (`duckdb_memory()`)")
        before = m["rss_after_duckdb"]
    if "rss_after_chdb" in m:
        stored = sum(p["bytes"] for p in run["chdb"]["parts"].values())
        after_load = m.get("chdb_after_load_kib") or {}
        after_runs = m.get("chdb_after_runs_kib") or {}
        peak = ""
        if "peak_after_chdb_kib" in m and m["peak_after_chdb_kib"] > m.get("peak_after_duckdb_kib", 0):
            peak = (f"loading it took the process's peak to {mib(m['peak_after_chdb_kib'])}"
                    + (f" (from {mib(m['peak_after_duckdb_kib'])})" if "peak_after_duckdb_kib" in m
                       else "") + "; ")
        print(f"  - chDB: {grew(m['rss_after_chdb'], before)} once loaded (its allocator "
              f"purged after loading); {peak}ClickHouse's allocator holds "
              f"{mib(after_load.get('allocated'))} after loading and "
              f"{mib(after_runs.get('allocated'))} after the runs (jemalloc, "
              f"{mib(after_runs.get('resident'))} resident); its MergeTree parts, "
              f"{mib(stored / 1024)}, are files on {run['chdb']['data_fs']}, outside the "
              f"process's RSS")
    if corral:
        rest = [LABELS[e] for e in engines if e != "corral"]
        order = "Corral, then " + ", then ".join(rest) if rest else "Corral"
        print(f"- {run['rounds']} timed rounds a segment, after one warm-up call of each engine "
              f"(Corral's reported as cold); a round calls each engine once, in the order "
              f"{order} turned by one each round; ms are medians: Corral's from request sent "
              "to answer read over a kept-alive connection, DuckDB's of "
              "`execute(sql).fetchall()`, chDB's of `query(sql, \"CSV\")` and reading its bytes")
    else:
        print(f"- {run['rounds']} timed rounds a segment after one warm-up run of each engine, "
              "the order turned each round; ms are medians")
    print(f"- counts (user, subscriber, unsubscriber): "
          + "; ".join(f"{s['name']} {tuple(s[f'{base}_counts'][0])}" for s in segments))
    for w in warnings:
        print(f"- WARNING (relative to now, not an error): {w}")
    if problems:
        print("- MISMATCHES (the engines disagree; the segment's figures are not comparable):")
        for p in problems:
            print(f"  - {p}")
        sys.exit(3)


def cmd_suite():
    for s in SUITE:
        print(f"## {s['name']}{' (relative)' if s.get('relative') else ''}: {s['what']}")
        print(json.dumps(s["query"]))
        print("-- DuckDB")
        print(s["sql"])
        print("-- ClickHouse (chDB)")
        print(s["ch"])
        print()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--csv", required=True, help="directory of the three CSV files")
    run.add_argument("--out", required=True, help="JSON file of the results")
    run.add_argument("--rounds", type=int, default=7)
    run.add_argument("--engines", default=",".join(REFERENCES),
                     help="reference engines, comma-separated: duckdb, chdb (default both)")
    run.add_argument("--chdb-dir", help="an empty directory for chDB's database (default: "
                     "a temporary one, in /dev/shm when writable, removed at the end)")
    run.add_argument("--corral", nargs=4, metavar=("URL", "SITE_UUID", "PK", "SK"))
    run.add_argument("--postgres", nargs=4, metavar=("URL", "SITE_UUID", "PK", "SK"),
                     help="a second Corral server, on PostgreSQL, with the same audience")
    table = sub.add_parser("table")
    table.add_argument("file")
    table.add_argument("--serve-rss-kib", default="?", help="VmHWM of corral serve, in KiB")
    sub.add_parser("suite")
    args = parser.parse_args()
    if args.command == "run":
        if args.rounds < 1:
            fail("--rounds must be 1 or more")
        args.engines = [e for e in args.engines.replace(",", " ").split() if e]
        unknown = [e for e in args.engines if e not in REFERENCES]
        if unknown:
            fail(f"--engines: unknown {', '.join(unknown)} (known: {', '.join(REFERENCES)})")
        if not args.engines and not args.corral:
            fail("nothing to run: no reference engine and no --corral")
        cmd_run(args)
    elif args.command == "table":
        cmd_table(args.file, args.serve_rss_kib)
    else:
        cmd_suite()


if __name__ == "__main__":
    main()
