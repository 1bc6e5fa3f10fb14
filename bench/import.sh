#!/usr/bin/env bash
# Import benchmark: events per second loaded into SQLite, by Corral and by the sqlite3 shell.
#
# Measures, on one generated audience (`corral gen`, fixed seed):
#   - `corral import events` of events.jsonl into a database holding the subscribers;
#   - `POST /api/v1/batch/events` with 1,000 events a request over a few keep-alive
#     connections, against `corral serve` on a copy of the same database;
# and, in the same run, the bound: the sqlite3 shell (Debian's package) inserting the
# same rows, 500 per INSERT in one transaction with Corral's pragmas, into another copy.
# Each Corral figure is read as a ratio to that bound. Every path's rows are counted
# and their contents compared. With DATABASE=postgres, the same run also imports the same
# files into a throwaway PostgreSQL cluster (scripts/postgres.sh), by `corral import` and
# over HTTP, and prints each PostgreSQL figure beside SQLite's, with the ratio.
#
# Usage: bash bench/import.sh              (as root on Debian; installs sqlite3, time, curl)
# Knobs (environment):
#   SIZE=large       1,000,000 subscribers and 10,000,000 events (default: 100,000 and 1,000,000)
#   SUBSCRIBERS, EVENTS   explicit sizes (win over SIZE);  SEED=42  the generator's seed
#   BATCH            `corral import --batch` (default: Corral's own, 100,000)
#   PER_REQUEST=1000 events per HTTP request;  HTTP_CONNECTIONS=2  parallel connections
#                    (8 with DATABASE=postgres, on both backends)
#   DATABASE=postgres  SQLite and PostgreSQL in the same run (default: sqlite, SQLite alone)
#   PG_POOL          with DATABASE=postgres: the server's pool (the URL's max_connections;
#                    default: Corral's own, 16)
#   ROWS_PER_STATEMENT=500   rows per INSERT of the sqlite3 bound
#   BOUND_PRAGMAS    the bound's settings, "name=value ..." (default: those of Corral's writer)
#   DATA_DIR=PATH    use PATH/subscribers.jsonl and PATH/events.jsonl instead of generating
#   SKIP_BUILD=1     use the existing target/release/corral, skip `cargo build --release`
#   CORRAL_BIN=PATH  benchmark another corral binary (combine with SKIP_BUILD=1)
#   CORRAL_PORT      fixed port for `corral serve` (default: a free port)
#   KEEP_TMP=1       keep the temp dir (data, databases, SQL, logs)
#
# Output: a Markdown table on stdout; it and the raw output of every step are appended to
# bench/results/import-<timestamp>.txt. Exits non-zero, saying why, when a data file holds
# no lines (nothing would be measured), when what was imported does not account for every
# line of the files (subscribers stored, events stored plus repeated purchases, events
# acknowledged over HTTP), when an import reports failed or skipped items, an HTTP answer
# is not 200 with failed 0, or the databases do not hold the expected rows (count and
# content).
set -euo pipefail

SIZE=${SIZE:-default}
case "$SIZE" in
    default) DEF_SUBSCRIBERS=100000 DEF_EVENTS=1000000 ;;
    large) DEF_SUBSCRIBERS=1000000 DEF_EVENTS=10000000 ;;
    *) echo "SIZE must be 'default' or 'large', not '$SIZE'" >&2; exit 2 ;;
esac
SUBSCRIBERS=${SUBSCRIBERS:-$DEF_SUBSCRIBERS}
EVENTS=${EVENTS:-$DEF_EVENTS}
SEED=${SEED:-42}
BATCH=${BATCH:-}
PER_REQUEST=${PER_REQUEST:-1000}
DATABASE=${DATABASE:-sqlite}
if [ "$DATABASE" = postgres ]; then
    # The issue's figure for PostgreSQL is with 8 connections; SQLite gets the same.
    HTTP_CONNECTIONS=${HTTP_CONNECTIONS:-8}
else
    HTTP_CONNECTIONS=${HTTP_CONNECTIONS:-2}
fi
PG_POOL=${PG_POOL:-}
ROWS_PER_STATEMENT=${ROWS_PER_STATEMENT:-500}
# The settings of Corral's writer connection (src/storage/sqlite/mod.rs), so the bound
# writes under the same durability, cache and checkpointing.
BOUND_PRAGMAS=${BOUND_PRAGMAS:-journal_mode=WAL synchronous=FULL cache_size=-131072 foreign_keys=ON mmap_size=1073741824 wal_autocheckpoint=16384}
CLI_GOAL=250000
HTTP_GOAL=50000


ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
cd "$ROOT"
HELPER="$ROOT/bench/import_helper.py"
bench_database

# --- tools -------------------------------------------------------------------------
install_missing sqlite3 time=/usr/bin/time curl python3
SQLITE3=$(command -v sqlite3)

# Corral's settings may have moved on: say so rather than measure against other ones.
if [ -f "$ROOT/src/storage/sqlite/mod.rs" ]; then
    while read -r name; do
        case " $BOUND_PRAGMAS" in
            *" $name="*) ;;
            *) say "WARNING: Corral's writer sets PRAGMA $name, which BOUND_PRAGMAS does not" ;;
        esac
    done < <(grep -o '\.pragma("[a-z_]*"' "$ROOT/src/storage/sqlite/mod.rs" | cut -d'"' -f2)
fi

# --- build -------------------------------------------------------------------------
bench_build

# --- temp dir and clean-up -----------------------------------------------------------
CORRAL_PID=
PG_SERVE_PID=
bench_tmp import "CORRAL_PID PG_SERVE_PID" serve.log

bench_results import
log "# Corral import benchmark, $STAMP"
log "commit: $COMMIT"
log "machine: $NPROC CPUs, ${CPU:-unknown CPU}, $(uname -sr), $(awk '/^MemTotal/ { printf "%.0f GiB RAM", $2/1048576 }' /proc/meminfo)"
log "corral: $CORRAL; sqlite3: $SQLITE3 $("$SQLITE3" --version | cut -d' ' -f1)"
log ""

now_ns() { date +%s%N; }
secs() { python3 -c 'import sys; print(f"{(int(sys.argv[2]) - int(sys.argv[1])) / 1e9:.3f}")' "$1" "$2"; }
# Runs a command under /usr/bin/time; sets ELAPSED (wall seconds, from the shell) and
# RSS_KB (peak resident set), USER_S and SYS_S (CPU seconds). stdout and stderr go to $1.
timed() {
    local out=$1
    shift
    local t0 t1 rc=0 label=${TIMED_LABEL:-$*}
    t0=$(now_ns)
    /usr/bin/time -f '%M %U %S' -o "$out.rss" "$@" >"$out" 2>&1 || rc=$?
    t1=$(now_ns)
    ELAPSED=$(secs "$t0" "$t1")
    read -r RSS_KB USER_S SYS_S < <(tail -n 1 "$out.rss")
    {
        echo "## \$ $label"
        cat "$out"
        echo "(wall ${ELAPSED} s from the shell, user ${USER_S} s, sys ${SYS_S} s, peak RSS ${RSS_KB} kB, exit $rc)"
        echo
    } >>"$RESULTS"
    return "$rc"
}

# --- 1. data ------------------------------------------------------------------------
[ -z "${DATA_DIR:-}" ] || DATA_DIR=$(cd "$DATA_DIR" && pwd)
# Everything runs from the temp dir, so no corral.toml of the working directory is
# picked up.
cd "$TMP"
if [ -n "${DATA_DIR:-}" ]; then
    DATA=$DATA_DIR
    say "using the data of $DATA (DATA_DIR)"
    GEN_SECONDS=""
else
    DATA="$TMP/data"
    say "corral gen --subscribers $SUBSCRIBERS --events $EVENTS --seed $SEED"
    timed "$TMP/gen.out" "$CORRAL" gen --subscribers "$SUBSCRIBERS" --events "$EVENTS" \
        --seed "$SEED" --out "$DATA" || die "corral gen failed: $(cat "$TMP/gen.out")"
    GEN_SECONDS=$ELAPSED
fi
if [ ! -s "$DATA/subscribers.jsonl" ] || [ ! -f "$DATA/events.jsonl" ]; then
    die "$DATA must hold subscribers.jsonl and events.jsonl"
fi
SUB_LINES=$(grep -c . "$DATA/subscribers.jsonl" || true)
EVENT_LINES=$(grep -c . "$DATA/events.jsonl" || true)
SUB_BYTES=$(stat -c %s "$DATA/subscribers.jsonl")
EVENT_BYTES=$(stat -c %s "$DATA/events.jsonl")
# shellcheck disable=SC2016  # a literal $ in the pattern
PURCHASES=$(grep -c '"type":"\$purchase"' "$DATA/events.jsonl" || true)
# An empty file imports in no time at any rate: nothing would be measured.
[ "$SUB_LINES" -gt 0 ] || die "$DATA/subscribers.jsonl holds no subscribers: nothing to measure"
[ "$EVENT_LINES" -gt 0 ] || die "$DATA/events.jsonl holds no events: nothing to measure"
say "data: $SUB_LINES subscribers ($SUB_BYTES bytes), $EVENT_LINES events ($EVENT_BYTES bytes)"
log "data: $SUB_LINES subscribers ($SUB_BYTES bytes), $EVENT_LINES events ($EVENT_BYTES bytes), $PURCHASES purchases"
log ""

new_site() { # database URL -> "uuid pk sk"
    "$CORRAL" site create Bench --json --database "$1" >"$TMP/site.json" \
        || die "corral site create failed: $(cat "$TMP/site.json")"
    python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
print(s["site_uuid"], s["publishable_key"], s["secret_key"])' "$TMP/site.json" \
        || die "corral site create did not print one JSON object: $(cat "$TMP/site.json")"
}
batch_args=()
[ -z "$BATCH" ] || batch_args=(--batch "$BATCH")

# --- 2. one site and its subscribers, copied as the starting point of every path ----------
# `corral import subscribers` runs once; the database is then checkpointed (everything in
# the .db file, an empty WAL) and copied, so the CLI, the bound and the server all start
# from byte-identical files: same site, keys, subscribers and ids.
BASE_DB="$TMP/base.db"
new_site "sqlite://$BASE_DB" >"$TMP/site.txt"
read -r SITE PK SK <"$TMP/site.txt"
say "corral import subscribers (timed, once)"
timed "$TMP/subscribers.out" "$CORRAL" import subscribers --site "$SITE" \
    "$DATA/subscribers.jsonl" --database "sqlite://$BASE_DB" "${batch_args[@]}" \
    || die "corral import subscribers failed: $(tail -n 20 "$TMP/subscribers.out")"
grep -q "^imported $SUB_LINES subscribers, skipped 0 bad lines" "$TMP/subscribers.out" \
    || die "expected 'imported $SUB_LINES subscribers, skipped 0 bad lines', got: $(tail -n 5 "$TMP/subscribers.out")"
SUBS_SECONDS=$ELAPSED
SUBS_RSS_KB=$RSS_KB
SUB_ROWS=$("$SQLITE3" "$BASE_DB" 'select count(*) from subscribers')
[ "$SUB_ROWS" = "$SUB_LINES" ] \
    || die "the database holds $SUB_ROWS subscribers after importing the $SUB_LINES lines of subscribers.jsonl (an email repeated?): the figures would not be of that file"
"$SQLITE3" "$BASE_DB" 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null
rm -f "$BASE_DB-wal" "$BASE_DB-shm"
CLI_DB="$TMP/cli.db" BOUND_DB="$TMP/bound.db" HTTP_DB="$TMP/http.db"
for db in "$CLI_DB" "$BOUND_DB" "$HTTP_DB"; do cp "$BASE_DB" "$db"; done
rm -f "$BASE_DB"
# Before each timed step: no write-back of an earlier step's files during the timing.
settle() { sync; }

say "writing the bound's SQL (before any timing)"
python3 "$HELPER" sql "$DATA/events.jsonl" "$BOUND_DB" "$SITE" "$TMP/events.sql" \
    "$ROWS_PER_STATEMENT" "$BOUND_PRAGMAS" >"$TMP/sql.json" || die "could not write the SQL for the bound"
read -r EXPECTED DUPLICATES HELPER_LINES < <(python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
print(s["rows"], s["duplicate_purchases"], s["lines"])' "$TMP/sql.json")
# Every line is one stored event, or a purchase whose unique key came before.
[ "$HELPER_LINES" = "$EVENT_LINES" ] \
    || die "the bound's SQL read $HELPER_LINES events, events.jsonl has $EVENT_LINES lines"
[ $((EXPECTED + DUPLICATES)) = "$EVENT_LINES" ] \
    || die "$EXPECTED rows and $DUPLICATES repeated purchases do not account for the $EVENT_LINES lines of events.jsonl"
SQL_BYTES=$(stat -c %s "$TMP/events.sql")
log "bound SQL: $(cat "$TMP/sql.json"), $SQL_BYTES bytes"
log ""
say "expected rows: $EXPECTED events ($DUPLICATES repeated purchases left out)"

say "cli: corral import events (timed)"
settle
timed "$TMP/cli-events.out" "$CORRAL" import events --site "$SITE" "$DATA/events.jsonl" \
    --database "sqlite://$CLI_DB" "${batch_args[@]}" \
    || die "corral import events failed: $(tail -n 20 "$TMP/cli-events.out")"
CLI_SECONDS=$ELAPSED
CLI_RSS_KB=$RSS_KB
CLI_OWN=$(grep -o '^imported .*' "$TMP/cli-events.out" | tail -n 1)
[[ "$CLI_OWN" == "imported $EVENT_LINES events, skipped 0 bad lines"* ]] \
    || die "expected 'imported $EVENT_LINES events, skipped 0 bad lines', got: $(tail -n 5 "$TMP/cli-events.out")"

# --- 3. the bound: the sqlite3 shell ---------------------------------------------------------
say "bound: sqlite3 $BOUND_DB < events.sql (timed)"
settle
# shellcheck disable=SC2016  # sh -c expands its own arguments
TIMED_LABEL="$SQLITE3 -bail $BOUND_DB < $TMP/events.sql" timed "$TMP/bound.out" sh -c '"$1" -bail "$2" <"$3"' sh "$SQLITE3" "$BOUND_DB" "$TMP/events.sql" \
    || die "sqlite3 failed: $(tail -n 20 "$TMP/bound.out")"
BOUND_SECONDS=$ELAPSED
BOUND_RSS_KB=$RSS_KB
# Some pragmas print their new value; with -bail, any error stops sqlite3 (non-zero).
! grep -qi 'error' "$TMP/bound.out" \
    || die "sqlite3 reported an error: $(head -c 500 "$TMP/bound.out")"

# --- 4. HTTP: POST /api/v1/batch/events ------------------------------------------------------
settle
CORRAL_PORT=${CORRAL_PORT:-$(free_port)}
URL="http://127.0.0.1:$CORRAL_PORT"
say "starting corral serve on 127.0.0.1:$CORRAL_PORT"
CORRAL_LOG=warn "$CORRAL" serve --listen "127.0.0.1:$CORRAL_PORT" \
    --database "sqlite://$HTTP_DB" --rate-limit-per-minute 0 >"$TMP/serve.log" 2>&1 &
CORRAL_PID=$!
for i in $(seq 1 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/healthz" || true)" = 200 ] && break
    kill -0 "$CORRAL_PID" 2>/dev/null || die "corral serve exited during start-up"
    [ "$i" -lt 100 ] || die "corral serve did not answer 200 on /healthz within 10 s"
    sleep 0.1
done

say "http: $HTTP_CONNECTIONS connections, $PER_REQUEST events a request (bodies built first, then timed)"
python3 "$HELPER" post "$DATA/events.jsonl" "$URL" "$SITE" "$PK" "$SK" \
    "$PER_REQUEST" "$HTTP_CONNECTIONS" >"$TMP/http.json" 2>"$TMP/http.err" \
    || die "the HTTP run failed: $(cat "$TMP/http.json" "$TMP/http.err")"
{ echo "## POST /api/v1/batch/events"; cat "$TMP/http.json"; echo; } >>"$RESULTS"
SERVE_RSS_KB=$(awk '/^VmHWM:/ { print $2 }' "/proc/$CORRAL_PID/status" 2>/dev/null || echo "?")
kill "$CORRAL_PID" 2>/dev/null || true
wait "$CORRAL_PID" 2>/dev/null || true
CORRAL_PID=
read -r HTTP_SECONDS HTTP_P50 HTTP_P99 HTTP_BODY HTTP_STORED < <(python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
print("%.3f %.1f %.1f %d %d" % (s["seconds"], s["request_ms_p50"], s["request_ms_p99"],
                               s["largest_body_bytes"], s["stored"]))' "$TMP/http.json")
[ "$HTTP_STORED" = "$EVENT_LINES" ] \
    || die "POST /batch/events acknowledged $HTTP_STORED events of the $EVENT_LINES lines of events.jsonl"

# --- 4b. PostgreSQL (DATABASE=postgres): the same files, the same two paths -----------------
# A throwaway cluster with one database per path, each starting with its own site (its
# keys differ from SQLite's; the rows compared below do not hold them).
if [ "$DATABASE" = postgres ]; then
    bench_postgres_start
    log "PostgreSQL $PG_VERSION (scripts/postgres.sh: fsync off, synchronous_commit on, shared_buffers 256MB)"
    pool_suffix=""
    [ -z "$PG_POOL" ] || pool_suffix="?max_connections=$PG_POOL"
    pg_subscribers() { # url label -> sets SITE_PG PK_PG SK_PG, PG_SUBS_SECONDS
        new_site "$1" >"$TMP/site-pg.txt"
        read -r SITE_PG PK_PG SK_PG <"$TMP/site-pg.txt"
        say "postgres ($2): corral import subscribers (timed)"
        timed "$TMP/pg-$2-subscribers.out" "$CORRAL" import subscribers --site "$SITE_PG" \
            "$DATA/subscribers.jsonl" --database "$1" "${batch_args[@]}" \
            || die "corral import subscribers into PostgreSQL failed: $(tail -n 20 "$TMP/pg-$2-subscribers.out")"
        grep -q "^imported $SUB_LINES subscribers, skipped 0 bad lines" "$TMP/pg-$2-subscribers.out" \
            || die "PostgreSQL: expected 'imported $SUB_LINES subscribers, skipped 0 bad lines', got: $(tail -n 5 "$TMP/pg-$2-subscribers.out")"
        PG_SUBS_SECONDS=$ELAPSED
    }

    bench_pg_db corral_cli
    PG_CLI_URL=$PG_DB_URL
    pg_subscribers "$PG_CLI_URL" cli
    PG_CLI_SUBS_SECONDS=$PG_SUBS_SECONDS
    say "postgres: corral import events (timed)"
    settle
    timed "$TMP/pg-cli-events.out" "$CORRAL" import events --site "$SITE_PG" "$DATA/events.jsonl" \
        --database "$PG_CLI_URL" "${batch_args[@]}" \
        || die "corral import events into PostgreSQL failed: $(tail -n 20 "$TMP/pg-cli-events.out")"
    PG_CLI_SECONDS=$ELAPSED
    PG_CLI_RSS_KB=$RSS_KB
    PG_CLI_OWN=$(grep -o '^imported .*' "$TMP/pg-cli-events.out" | tail -n 1)
    [[ "$PG_CLI_OWN" == "imported $EVENT_LINES events, skipped 0 bad lines"* ]] \
        || die "PostgreSQL: expected 'imported $EVENT_LINES events, skipped 0 bad lines', got: $(tail -n 5 "$TMP/pg-cli-events.out")"

    bench_pg_db corral_http
    PG_HTTP_URL=$PG_DB_URL
    pg_subscribers "$PG_HTTP_URL" http
    settle
    PG_PORT=$(free_port)
    say "starting corral serve on PostgreSQL, 127.0.0.1:$PG_PORT"
    CORRAL_LOG=warn "$CORRAL" serve --listen "127.0.0.1:$PG_PORT" --checkpoint-dir off \
        --database "$PG_HTTP_URL$pool_suffix" --rate-limit-per-minute 0 >"$TMP/serve-pg.log" 2>&1 &
    PG_SERVE_PID=$!
    for i in $(seq 1 100); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PG_PORT/readyz" || true)" = 200 ] && break
        kill -0 "$PG_SERVE_PID" 2>/dev/null || die "corral serve on PostgreSQL exited during start-up: $(tail -n 5 "$TMP/serve-pg.log")"
        [ "$i" -lt 100 ] || die "corral serve on PostgreSQL did not answer 200 on /readyz within 10 s"
        sleep 0.1
    done
    say "postgres http: $HTTP_CONNECTIONS connections, $PER_REQUEST events a request"
    python3 "$HELPER" post "$DATA/events.jsonl" "http://127.0.0.1:$PG_PORT" "$SITE_PG" "$PK_PG" "$SK_PG" \
        "$PER_REQUEST" "$HTTP_CONNECTIONS" >"$TMP/http-pg.json" 2>"$TMP/http-pg.err" \
        || die "the HTTP run on PostgreSQL failed: $(cat "$TMP/http-pg.json" "$TMP/http-pg.err")"
    { echo "## POST /api/v1/batch/events (PostgreSQL)"; cat "$TMP/http-pg.json"; echo; } >>"$RESULTS"
    PG_SERVE_RSS_KB=$(awk '/^VmHWM:/ { print $2 }' "/proc/$PG_SERVE_PID/status" 2>/dev/null || echo "?")
    kill "$PG_SERVE_PID" 2>/dev/null || true
    wait "$PG_SERVE_PID" 2>/dev/null || true
    PG_SERVE_PID=
    read -r PG_HTTP_SECONDS PG_HTTP_P50 PG_HTTP_P99 PG_HTTP_STORED < <(python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
print("%.3f %.1f %.1f %d" % (s["seconds"], s["request_ms_p50"], s["request_ms_p99"], s["stored"]))' "$TMP/http-pg.json")
    [ "$PG_HTTP_STORED" = "$EVENT_LINES" ] \
        || die "POST /batch/events on PostgreSQL acknowledged $PG_HTTP_STORED events of the $EVENT_LINES lines"

    # What the audience takes in PostgreSQL, after the CLI import (tables with their
    # indexes and TOAST), and in SQLite (the file).
    bench_psql "$PG_CLI_URL" "VACUUM ANALYZE" >/dev/null
    PG_SIZES=$(bench_psql "$PG_CLI_URL" "SELECT pg_database_size(current_database()),
        pg_total_relation_size('subscribers'), pg_total_relation_size('subscriber_tags'),
        pg_total_relation_size('events'), pg_total_relation_size('change_log'),
        pg_relation_size('events'), pg_indexes_size('events')" | tr '|' ' ')
    read -r PG_DB_BYTES PG_SUBS_BYTES PG_TAGS_BYTES PG_EVENTS_BYTES PG_LOG_BYTES PG_EVENTS_HEAP PG_EVENTS_INDEXES <<<"$PG_SIZES"
    PG_EMPTY_BYTES=$(bench_psql "$PG_ADMIN_URL" "SELECT pg_database_size('template1')")
    SQLITE_DB_BYTES=$(stat -c %s "$CLI_DB")
    log "sizes: PostgreSQL database $PG_DB_BYTES bytes (template1 $PG_EMPTY_BYTES), subscribers $PG_SUBS_BYTES, subscriber_tags $PG_TAGS_BYTES, events $PG_EVENTS_BYTES (heap $PG_EVENTS_HEAP, indexes $PG_EVENTS_INDEXES), change_log $PG_LOG_BYTES; SQLite file $SQLITE_DB_BYTES"
fi

# --- 5. checks: row counts and contents ---------------------------------------------------------
say "checking row counts and contents"
PROBLEMS=""
for pair in "cli:$CLI_DB" "bound:$BOUND_DB" "http:$HTTP_DB"; do
    name=${pair%%:*} db=${pair#*:}
    count=$("$SQLITE3" "$db" 'select count(*) from events')
    if [ "$count" != "$EXPECTED" ]; then
        PROBLEMS="$PROBLEMS
- ROW COUNT MISMATCH: $name holds $count events, expected $EXPECTED"
    fi
done
DIGEST_PATHS=("$CLI_DB" "$BOUND_DB" "$HTTP_DB")
if [ "$DATABASE" = postgres ]; then
    for pair in "postgres-cli:$PG_CLI_URL" "postgres-http:$PG_HTTP_URL"; do
        name=${pair%%:*} url=${pair#*:}
        count=$(bench_psql "$url" 'select count(*) from events')
        if [ "$count" != "$EXPECTED" ]; then
            PROBLEMS="$PROBLEMS
- ROW COUNT MISMATCH: $name holds $count events, expected $EXPECTED"
        fi
        count=$(bench_psql "$url" 'select count(*) from subscribers')
        if [ "$count" != "$SUB_LINES" ]; then
            PROBLEMS="$PROBLEMS
- ROW COUNT MISMATCH: $name holds $count subscribers, expected $SUB_LINES"
        fi
    done
    DIGEST_PATHS+=("$PG_CLI_URL" "$PG_HTTP_URL")
fi
PSQL=${PSQL:-} python3 "$HELPER" digest "${DIGEST_PATHS[@]}" >"$TMP/digest.txt" \
    || die "digest failed"
{ echo "## digests (path count digest)"; cat "$TMP/digest.txt"; echo; } >>"$RESULTS"
DIGESTS=$(awk '{ print $2 "/" $3 }' "$TMP/digest.txt" | sort -u | wc -l)
if [ "$DIGESTS" != 1 ]; then
    PROBLEMS="$PROBLEMS
- CONTENT MISMATCH: the databases' events differ: $(tr '\n' ';' <"$TMP/digest.txt")"
fi

# --- 6. report ---------------------------------------------------------------------------------------
TABLE=$(python3 - "$EXPECTED" "$CLI_SECONDS" "$HTTP_SECONDS" "$BOUND_SECONDS" \
    "$CLI_GOAL" "$HTTP_GOAL" "$HTTP_CONNECTIONS" "$PER_REQUEST" <<'PY'
import sys
n = int(sys.argv[1])
cli, http, bound = (float(x) for x in sys.argv[2:5])
cli_goal, http_goal, conns, per = (int(x) for x in sys.argv[5:9])
rate = lambda s: n / s if s > 0 else float("inf")
b = rate(bound)
def row(path, seconds, goal):
    r = rate(seconds)
    verdict = f"≥ {goal:,}/s: {'met' if r >= goal else 'not met'}" if goal else "—"
    ratio = f"{r / b:.0%}" if goal else "—"
    return f"| {path} | {n:,} | {seconds:.2f} | {r:,.0f} | {b:,.0f} | {ratio} | {verdict} |"
print("| path | events | seconds | events/s | bound (sqlite3 shell) events/s | ratio | goal |")
print("|---|---:|---:|---:|---:|---:|---|")
print(row("`corral import events` (JSON Lines → SQLite)", cli, cli_goal))
print(row(f"`POST /api/v1/batch/events` ({per:,} a request, {conns} connections)", http, http_goal))
print(row("sqlite3 shell: multi-row INSERTs of the same rows (the bound)", bound, 0))
PY
)
PG_REPORT=""
if [ "$DATABASE" = postgres ]; then
    PG_TABLE=$(python3 - "$EXPECTED" "$SUB_LINES" "$SUBS_SECONDS" "$PG_CLI_SUBS_SECONDS" \
        "$CLI_SECONDS" "$PG_CLI_SECONDS" "$HTTP_SECONDS" "$PG_HTTP_SECONDS" "$HTTP_GOAL" \
        "$HTTP_CONNECTIONS" "$PER_REQUEST" <<'PY'
import sys
n, subs = int(sys.argv[1]), int(sys.argv[2])
s_subs, p_subs, s_cli, p_cli, s_http, p_http = (float(x) for x in sys.argv[3:9])
goal, conns, per = (int(x) for x in sys.argv[9:12])
def row(path, count, sqlite, postgres, goal=0):
    a, b = count / sqlite, count / postgres
    verdict = f"≥ {goal:,}/s: {'met' if b >= goal else 'not met'}" if goal else "—"
    print(f"| {path} | {count:,} | {a:,.0f} | {b:,.0f} | {b / a:.0%} | {verdict} |")
print("| path | items | SQLite items/s | PostgreSQL items/s | PostgreSQL / SQLite | goal (PostgreSQL) |")
print("|---|---:|---:|---:|---:|---|")
row("`corral import subscribers`", subs, s_subs, p_subs)
row("`corral import events`", n, s_cli, p_cli)
row(f"`POST /api/v1/batch/events` ({per:,} a request, {conns} connections)", n, s_http, p_http, goal)
PY
)
    per() { python3 -c 'import sys; print(f"{int(sys.argv[1]) / int(sys.argv[2]):,.0f}")' "$1" "$2"; }
    PG_REPORT=$(cat <<EOF

### PostgreSQL next to SQLite (same files, same run)

PostgreSQL $PG_VERSION, a throwaway cluster on the same machine and disk (scripts/postgres.sh: fsync off, synchronous_commit on, shared_buffers 256MB), one database per path; \`corral serve\` on it with $([ -n "$PG_POOL" ] && echo "max_connections=$PG_POOL" || echo "its default pool (16)") and --checkpoint-dir off.

$PG_TABLE

- seconds: SQLite subscribers ${SUBS_SECONDS}, events ${CLI_SECONDS}, HTTP ${HTTP_SECONDS}; PostgreSQL subscribers ${PG_CLI_SUBS_SECONDS}, events ${PG_CLI_SECONDS} (Corral's own figure: "$PG_CLI_OWN"), HTTP ${PG_HTTP_SECONDS} (request p50 $PG_HTTP_P50 ms, p99 $PG_HTTP_P99 ms)
- peak RSS: \`corral import events\` into PostgreSQL $(( PG_CLI_RSS_KB / 1024 )) MiB; \`corral serve\` on PostgreSQL (VmHWM) $([ "$PG_SERVE_RSS_KB" = "?" ] && echo "?" || echo "$(( PG_SERVE_RSS_KB / 1024 )) MiB")
- size after \`corral import\` (and VACUUM ANALYZE): PostgreSQL database $(( PG_DB_BYTES / 1048576 )) MiB ($(( PG_EMPTY_BYTES / 1048576 )) MiB of it an empty database's); subscribers with their indexes $(( PG_SUBS_BYTES / 1048576 )) MiB + their tags $(( PG_TAGS_BYTES / 1048576 )) MiB = $(per $(( PG_SUBS_BYTES + PG_TAGS_BYTES )) "$SUB_LINES") bytes a subscriber; events $(( PG_EVENTS_BYTES / 1048576 )) MiB (table $(( PG_EVENTS_HEAP / 1048576 )) MiB, indexes $(( PG_EVENTS_INDEXES / 1048576 )) MiB) = $(per "$PG_EVENTS_BYTES" "$EXPECTED") bytes an event; change log $(( PG_LOG_BYTES / 1024 )) KiB. SQLite file: $(( SQLITE_DB_BYTES / 1048576 )) MiB ($(per "$SQLITE_DB_BYTES" "$EXPECTED") bytes an event, subscribers included)
EOF
)
fi
MIB() { if [ "$1" = "?" ]; then echo "?"; else echo "$(( $1 / 1024 )) MiB"; fi; }
rate() { python3 -c 'import sys; print(f"{int(sys.argv[1]) / float(sys.argv[2]):,.0f}")' "$1" "$2"; }
if [ -n "$GEN_SECONDS" ]; then
    GEN_LINE="- generator: \`corral gen --subscribers $SUBSCRIBERS --events $EVENTS --seed $SEED\` in ${GEN_SECONDS} s ($(rate "$EVENT_LINES" "$GEN_SECONDS") events/s with the subscribers, $(python3 -c 'import sys; print(f"{(int(sys.argv[1]) + int(sys.argv[2])) / 1048576 / float(sys.argv[3]):.0f}")' "$SUB_BYTES" "$EVENT_BYTES" "$GEN_SECONDS") MiB/s)"
else
    GEN_LINE="- data: given in $DATA (DATA_DIR), not generated"
fi
REPORT=$(cat <<EOF

## Corral import benchmark ($(date -u '+%Y-%m-%d %H:%M UTC'))

- commit: $COMMIT
- machine: $NPROC CPUs, ${CPU:-unknown CPU}
- data: $SUB_LINES subscribers ($(( SUB_BYTES / 1048576 )) MiB), $EVENT_LINES events ($(( EVENT_BYTES / 1048576 )) MiB, $PURCHASES purchases); $EXPECTED event rows expected
$GEN_LINE

$TABLE

- seconds: wall clock from the shell, process start to exit (Corral's own figure: "$CLI_OWN"); HTTP: first request to last answer, bodies built beforehand, request p50 $HTTP_P50 ms, p99 $HTTP_P99 ms, largest body $HTTP_BODY bytes
- subscribers first (not in the table): \`corral import subscribers\` $SUB_LINES in ${SUBS_SECONDS} s ($(rate "$SUB_LINES" "$SUBS_SECONDS")/s), peak RSS $(MIB "$SUBS_RSS_KB")
- peak RSS: \`corral import events\` $(MIB "$CLI_RSS_KB"); \`corral serve\` (VmHWM) $(MIB "$SERVE_RSS_KB"); sqlite3 shell $(MIB "$BOUND_RSS_KB")
- bound: \`sqlite3 -bail DB < events.sql\`, $(( SQL_BYTES / 1048576 )) MiB of SQL, $ROWS_PER_STATEMENT rows an INSERT, one transaction, pragmas $BOUND_PRAGMAS
- checks: $([ -z "$PROBLEMS" ] && echo "all $([ "$DATABASE" = postgres ] && echo "five (three SQLite, two PostgreSQL)" || echo three) databases hold the $EXPECTED expected events, with identical contents (digest of email, type, date, details, unique key, amount, currency)" || echo "FAILED, see below")
EOF
)
[ -z "$PG_REPORT" ] || REPORT="$REPORT"$'\n'"$PG_REPORT"
if [ -n "$PROBLEMS" ]; then
    REPORT="$REPORT
- PROBLEMS (the figures above are not valid):$PROBLEMS"
fi
echo "$REPORT"
echo "$REPORT" >>"$RESULTS"
say "raw output: $RESULTS"
[ -z "$PROBLEMS" ] || die "the databases do not hold the expected rows (see above)"
