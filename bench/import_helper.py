#!/usr/bin/env python3
"""Helpers of bench/import.sh (Python standard library only).

    sql     EVENTS DB SITE_UUID OUT [ROWS [PRAGMAS]]
                                      the events as multi-row INSERTs for the sqlite3 shell
    post    EVENTS URL SITE PK SK     all events through POST /api/v1/batch/events
    digest  DB...                     row count and content digest of each database's events
                                      (a SQLite file, or a postgres:// URL read with $PSQL)

`sql` writes exactly the rows Corral stores for each line: the subscriber id looked up
by lowercase email in DB (the database as it stands before the events import), the
trimmed type, the date in Unix milliseconds, `details` as the line's own text minus the
whitespace between tokens (number literals and key order untouched, as Corral keeps
it), and for a `$purchase` its unique key, amount (a REAL) and upper-cased currency.
A `$purchase` whose unique key came earlier in the file is left out, as Corral leaves
it out. ROWS rows go in one INSERT (500, as Corral writes them); all INSERTs in one
transaction, after PRAGMAS (space-separated `name=value`, Corral's writer settings).
Everything is read and written before any timing starts.

`post` reads the file, builds every request body (the file's own lines, joined) before
the clock starts, then posts them over a few keep-alive connections in parallel and
checks every answer.

`digest` sums a hash of (email key, type, occurred_at, details, unique_key, amount,
currency) over all events, so two databases holding the same rows in any order (and
with any subscriber ids or received_at) have the same digest, whichever backend holds
them: PostgreSQL's rows come through `psql` as JSON arrays, the same values in the same
Python types (an amount that is a whole number comes back as an int, which hashes as the
float does). Compare digests made by the same process only.
"""

import base64
import datetime
import http.client
import json
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time

WS = re.compile(r"[ \t\n\r]*")
DECODER = json.JSONDecoder()
SCANSTRING = json.decoder.scanstring
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
ONE_MS = datetime.timedelta(milliseconds=1)


def fail(message):
    print(f"import_helper: {message}", file=sys.stderr)
    sys.exit(1)


def raw_items(line):
    """The top-level keys of a JSON object line, each with (raw text, value)."""
    i = WS.match(line, 0).end()
    if line[i : i + 1] != "{":
        raise ValueError("must be a JSON object")
    i = WS.match(line, i + 1).end()
    out = {}
    if line[i : i + 1] == "}":
        return out
    while True:
        if line[i : i + 1] != '"':
            raise ValueError("expected a key")
        key, i = SCANSTRING(line, i + 1)
        i = WS.match(line, i).end()
        if line[i : i + 1] != ":":
            raise ValueError("expected ':'")
        i = WS.match(line, i + 1).end()
        value, end = DECODER.raw_decode(line, i)
        out[key] = (line[i:end], value)
        i = WS.match(line, end).end()
        c = line[i : i + 1]
        if c == ",":
            i = WS.match(line, i + 1).end()
        elif c == "}":
            return out
        else:
            raise ValueError("expected ',' or '}'")


def compact(text):
    """Drops the whitespace between JSON tokens, like Corral's json::compact."""
    if not any(c in text for c in " \t\n\r"):
        return text
    out = []
    in_string = escaped = False
    for ch in text:
        if in_string:
            out.append(ch)
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch not in " \t\n\r":
            if ch == '"':
                in_string = True
            out.append(ch)
    return "".join(out)


def sql_text(value):
    return "'" + value.replace("'", "''") + "'"


def sql_real(value):
    value = float(value)
    if value.is_integer() and abs(value) < 1e15:
        return f"{int(value)}.0"
    return repr(value)


def date_ms(text):
    dt = datetime.datetime.fromisoformat(text.strip())
    if dt.tzinfo is None:
        raise ValueError(f"date {text!r} has no time zone")
    return (dt - EPOCH) // ONE_MS


DEFAULT_PRAGMAS = ("journal_mode=WAL synchronous=FULL cache_size=-131072 foreign_keys=ON "
                   "mmap_size=1073741824 wal_autocheckpoint=16384")


def cmd_sql(events_path, db_path, site_uuid, out_path, rows_per_statement="500",
            pragmas=DEFAULT_PRAGMAS):
    rows_per_statement = int(rows_per_statement)
    if rows_per_statement < 1:
        fail("ROWS must be 1 or more")
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    row = db.execute("SELECT id FROM sites WHERE uuid = ?", (site_uuid,)).fetchone()
    if row is None:
        fail(f"no site {site_uuid} in {db_path}")
    site_id = row[0]
    ids = dict(db.execute("SELECT email_key, id FROM subscribers WHERE site_id = ?", (site_id,)))
    db.close()
    received_at = int(time.time() * 1000)

    lines = rows = duplicates = 0
    unknown = {}
    keys = set()
    batch = []
    head = ("INSERT INTO events (site_id, subscriber_id, type, occurred_at, details, "
            "unique_key, amount, currency, received_at) VALUES\n")
    with open(events_path, encoding="utf-8") as src, \
            open(out_path, "w", encoding="utf-8", newline="\n") as out:
        for pragma in pragmas.split():
            if not re.fullmatch(r"[a-z_]+=[A-Za-z0-9_-]+", pragma):
                fail(f"not a pragma setting: {pragma!r}")
            out.write(f"PRAGMA {pragma};\n")
        out.write("BEGIN;\n")

        def flush():
            out.write(head)
            out.write(",\n".join(batch))
            out.write(";\n")
            batch.clear()

        for number, line in enumerate(src, 1):
            if not line.strip():
                continue
            lines += 1
            try:
                item = raw_items(line)
                email = item["email"][1].strip()
                kind = item["type"][1].strip()
                date = item.get("date")
                occurred_at = received_at if date is None or date[1] is None else date_ms(date[1])
                raw_details = item.get("details")
                if raw_details is None or raw_details[1] is None:
                    details, details_value = "{}", {}
                elif isinstance(raw_details[1], dict):
                    details, details_value = compact(raw_details[0]), raw_details[1]
                else:
                    raise ValueError("details must be a JSON object")
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                fail(f"{events_path}:{number}: cannot read the event ({e}); "
                     "the bound covers valid events only")
            subscriber = ids.get(email.lower())
            if subscriber is None:
                unknown[email.lower()] = number
                continue
            unique_key = amount = currency = None
            if kind == "$purchase":
                value = details_value.get("value") or {}
                amount = value.get("amount") if isinstance(value, dict) else None
                currency = value.get("currency") if isinstance(value, dict) else None
                if isinstance(currency, str):
                    currency = currency.strip().upper()
                unique = details_value.get("unique")
                key = unique.get("key") if isinstance(unique, dict) else None
                if isinstance(key, bool) or key == "":
                    key = None
                elif isinstance(key, (int, float)):
                    key = str(key) if isinstance(key, int) else repr(key)
                unique_key = key
                if unique_key is not None:
                    if unique_key in keys:
                        duplicates += 1
                        continue
                    keys.add(unique_key)
            batch.append("(" + ",".join((
                str(site_id), str(subscriber), sql_text(kind), str(occurred_at),
                sql_text(details),
                "NULL" if unique_key is None else sql_text(unique_key),
                "NULL" if amount is None else sql_real(amount),
                "NULL" if currency is None else sql_text(currency),
                str(received_at))) + ")")
            rows += 1
            if len(batch) == rows_per_statement:
                flush()
        if batch:
            flush()
        out.write("COMMIT;\n")
    if unknown:
        email, number = next(iter(unknown.items()))
        fail(f"{len(unknown)} emails of {events_path} are not subscribers (first: {email!r}, "
             f"line {number}); Corral would create them, the bound would not: import "
             "subscribers.jsonl holding every email first")
    print(json.dumps({"lines": lines, "rows": rows, "duplicate_purchases": duplicates,
                      "site_id": site_id, "received_at": received_at}))


def cmd_post(events_path, url, site, pk, sk, per_request=1000, connections=2):
    # Request bodies, built before the clock starts: the file's own lines, joined.
    bodies = []
    with open(events_path, "rb") as src:
        chunk = []
        for line in src:
            line = line.strip()
            if not line:
                continue
            chunk.append(line)
            if len(chunk) == per_request:
                bodies.append((len(chunk), b'{"events":[' + b",".join(chunk) + b"]}"))
                chunk = []
        if chunk:
            bodies.append((len(chunk), b'{"events":[' + b",".join(chunk) + b"]}"))
    largest = max((len(b) for _, b in bodies), default=0)
    if largest > 1 << 20:
        fail(f"a request body of {largest} bytes is over Corral's 1 MiB limit: "
             "lower PER_REQUEST")
    total = sum(n for n, _ in bodies)
    target = re.match(r"^http://([^/:]+):(\d+)$", url)
    if not target:
        fail(f"URL must be http://HOST:PORT, not {url}")
    host, port = target.group(1), int(target.group(2))
    path = f"/api/v1/batch/events?site_uuid={site}"
    auth = "Basic " + base64.b64encode(f"{pk}:{sk}".encode()).decode()

    next_index = iter(range(len(bodies)))
    take = threading.Lock()
    errors = []
    latencies = []
    stored = [0] * connections
    start = threading.Barrier(connections + 1)

    def worker(slot):
        conn = http.client.HTTPConnection(host, port, timeout=120)
        conn.connect()
        mine = []
        start.wait()
        while not errors:
            with take:
                index = next(next_index, None)
            if index is None:
                break
            count, body = bodies[index]
            began = time.perf_counter()
            try:
                conn.request("POST", path, body=body, headers={
                    "Authorization": auth, "Content-Type": "application/json",
                    "Content-Length": str(len(body))})
                resp = conn.getresponse()
                text = resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException) as e:
                errors.append(f"request {index}: {type(e).__name__}: {e}")
                break
            mine.append(time.perf_counter() - began)
            if status != 200:
                errors.append(f"request {index}: HTTP {status}: {text[:300]!r}")
                break
            try:
                answer = json.loads(text)
            except ValueError:
                errors.append(f"request {index}: not JSON: {text[:300]!r}")
                break
            if answer.get("results") != count or answer.get("failed") != 0:
                errors.append(f"request {index}: expected results={count} failed=0, got "
                              f"{json.dumps(answer)[:500]}")
                break
            stored[slot] += count
        conn.close()
        latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for t in threads:
        t.start()
    start.wait()
    began = time.perf_counter()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - began
    latencies.sort()

    def pct(p):
        return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else 0

    print(json.dumps({
        "events": total, "stored": sum(stored), "requests": len(bodies),
        "connections": connections, "per_request": per_request,
        "largest_body_bytes": largest, "seconds": seconds,
        "events_per_s": sum(stored) / seconds if seconds else 0,
        "request_ms_p50": pct(0.50), "request_ms_p99": pct(0.99),
        "errors": errors[:20]}))
    if errors:
        sys.exit(1)


DIGEST_COLUMNS = "s.email_key, e.type, e.occurred_at, e.details, e.unique_key, e.amount, e.currency"


def postgres_rows(url):
    """The digest's rows of a PostgreSQL database, one JSON array a line from psql."""
    psql = os.environ.get("PSQL") or "psql"
    sql = (f"SELECT json_build_array({DIGEST_COLUMNS}) FROM events e JOIN subscribers s "
           "ON s.site_id = e.site_id AND s.id = e.subscriber_id")
    with subprocess.Popen([psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", url,
                           "-c", sql], stdout=subprocess.PIPE, text=True,
                          encoding="utf-8") as proc:
        for line in proc.stdout:
            if line.strip():
                yield tuple(json.loads(line))
    if proc.returncode != 0:
        fail(f"psql failed on {url} (exit {proc.returncode})")


def sqlite_rows(path):
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        yield from db.execute(f"SELECT {DIGEST_COLUMNS} FROM events e JOIN subscribers s "
                              "ON s.id = e.subscriber_id")
    finally:
        db.close()


def cmd_digest(*paths):
    for path in paths:
        rows = postgres_rows(path) if path.startswith(("postgres://", "postgresql://")) \
            else sqlite_rows(path)
        count = 0
        total = 0
        for row in rows:
            count += 1
            total += hash(row)
        print(f"{path} {count} {total & 0xFFFFFFFFFFFFFFFF:016x}")


def main():
    if len(sys.argv) < 2:
        fail(__doc__)
    command, args = sys.argv[1], sys.argv[2:]
    if command == "sql" and len(args) in (4, 5, 6):
        cmd_sql(*args)
    elif command == "post" and len(args) in (5, 6, 7):
        cmd_post(*args[:5], *(int(a) for a in args[5:]))
    elif command == "digest" and args:
        cmd_digest(*args)
    else:
        fail(__doc__)


if __name__ == "__main__":
    main()
