#!/usr/bin/env bash
# History benchmark: what the membership journal costs a writer, and how fast its history
# reads.
#
# Every audience write evaluates the journaled (kept) segments again for just the
# subscribers it touched, inside its own transaction, and records who joined or left. On
# eval.sh's audience (served from a copy), in one run per backend:
#   1. the 20 kept segments: the eval suite's 19 (bench/eval_helper.py) and one tag that
#      only the lag tagger below moves, created over HTTP (each takes its baseline);
#   2. a year of history of one of them (`customers`, a tag about half the audience
#      holds): TRANSITIONS joins and leaves over the 366 days before now, written straight
#      into the journal's tables as the journal would have written them (a year cannot
#      be written through the server's clock), with the server stopped; the segment's
#      members now are left as they are, and mid-year it has half the audience as members;
#   3. the history routes, timed over HTTP and every answer checked against what was
#      written: the 365-point daily series (`GET /api/v1/stats/segment/history`), the first
#      page of the members at mid-year (`GET /api/v1/fetch/segments/{id}/members?at=`), all
#      of them page after page (WALK=1), and the changes feed's first page;
#   4. the writer of live.sh (`POST /api/v1/batch/events`, WRITE_RATE events a second) in
#      phases of PHASE_SECONDS, ROUNDS rounds of two in the order with, without, without,
#      with, …: "with" writes to the server whose site keeps the 20 segments (the journal
#      evaluates them for every write), "without" to a second server, started beside it
#      from a copy of the same database made before any segment was created (no kept
#      segment: the journal does nothing); its p50 and p99 on each side, and their ratio.
#      (Switching one server between the two by discarding and restoring the segments
#      records a transition for every member, and took minutes at SIZE=small.) In every
#      phase a tagger adds and removes the lag segment's tag (LAG_RATE commands a second)
#      on the phase's server, and a poller follows the lag segment's changes feed
#      (`?after=`, a pause of POLL_INTERVAL after a page that was not full): the lag is from
#      a command's 2xx to the poller's answer holding its transition, for the commands of
#      the "with" phases; each must be seen once. Then one huge write, timed: discarding
#      `unsubscribed`, which records a leave of each of its members in one transaction;
#   5. the bytes a transition costs: segment_transitions and its indexes (SQLite: dbstat;
#      PostgreSQL: pg_table_size and pg_indexes_size) after the segments were created,
#      after the year, and after the writer, over the transitions stored in between.
# Goals, each printed as met / not met: the writer's p99 with the journal at most 1.2× its
# p99 without; a transition in the changes feed within 1 s of its write at p99; the
# 365-point series in at most 50 ms (median); the members at an instant: the first page
# in at most 20 ms and all of them in at most 300 ms.
#
# Usage: bash bench/history.sh             (as root on Debian; installs python3, sqlite3, curl)
# Knobs (environment):
#   SIZE=small       100,000 subscribers and 1,000,000 events (default)
#   SIZE=large       1,000,000 subscribers and 10,000,000 events
#   SEED=42          the generator's seed (work dir), and the writer's
#   TRANSITIONS      transitions of the year (default: as many as subscribers: 1,000,000
#                    at SIZE=large)
#   ROUNDS=3         rounds of a "with" and a "without" phase
#   PHASE_SECONDS=60 seconds of writing a phase
#   WRITE_RATE=1000  events a second the writer posts, in requests of 100
#   LAG_RATE=10      tag commands a second of the tagger
#   POLL_INTERVAL=0.1  the poller's pause after a page that was not full (seconds)
#   SETTLE_SECONDS=2 seconds of rest between phases
#   ROUTE_ROUNDS=20  timed calls of each history read (after a first one, reported apart)
#   WALK=1           read every member at the instant, page after page (0: skip)
#   DATABASE=postgres  the same on PostgreSQL too, after SQLite (default: sqlite)
#   WORK_DIR=PATH    the work dir (default bench/.data/<size>; eval.sh's, made when missing)
#   SKIP_BUILD=1     use the existing target/release/corral, skip `cargo build --release`
#   CORRAL_BIN=PATH  benchmark another corral binary (combine with SKIP_BUILD=1)
#   KEEP_TMP=1       keep the run's temp dir (database copy, logs, figures as JSON)
#
# Output: a Markdown table on stdout; it, the machine, the commit and the raw figures are
# appended to bench/results/history-<size>-<timestamp>.txt. Exits 0 when goals are not met
# (the report says so); non-zero when a request fails, an answer differs from what was
# written, the changes feed misses or repeats a transition, or any step fails.
set -euo pipefail

SIZE=${SIZE:-small}
case "$SIZE" in
    small | default) SIZE=small SUBSCRIBERS=100000 EVENTS=1000000 ;;
    large) SUBSCRIBERS=1000000 EVENTS=10000000 ;;
    *) echo "SIZE must be 'small' or 'large', not '$SIZE'" >&2; exit 2 ;;
esac
SEED=${SEED:-42}
TRANSITIONS=${TRANSITIONS:-$SUBSCRIBERS}
ROUNDS=${ROUNDS:-3}
PHASE_SECONDS=${PHASE_SECONDS:-60}
WRITE_RATE=${WRITE_RATE:-1000}
LAG_RATE=${LAG_RATE:-10}
POLL_INTERVAL=${POLL_INTERVAL:-0.1}
SETTLE_SECONDS=${SETTLE_SECONDS:-2}
ROUTE_ROUNDS=${ROUTE_ROUNDS:-20}
WALK=${WALK:-1}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
cd "$ROOT"
HELPER="$ROOT/bench/history_helper.py"
bench_database
WORK=${WORK_DIR:-$ROOT/bench/.data/$SIZE}
for knob in TRANSITIONS ROUNDS PHASE_SECONDS WRITE_RATE LAG_RATE ROUTE_ROUNDS; do
    [[ "${!knob}" =~ ^[1-9][0-9]*$ ]] || die "$knob must be a whole number of 1 or more"
done
[[ "$POLL_INTERVAL" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "POLL_INTERVAL must be a number of seconds"
[[ "$SETTLE_SECONDS" =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "SETTLE_SECONDS must be a number of seconds"
walk_args=()
[ "$WALK" = 0 ] || walk_args=(--walk)

# --- tools -------------------------------------------------------------------------
install_missing python3 sqlite3 curl
# shellcheck disable=SC2034  # bench_work_dir's
SQLITE3=$(command -v sqlite3)

# --- build -------------------------------------------------------------------------
bench_build

# --- temp dir and clean-up -----------------------------------------------------------
CORRAL_PID=
WITHOUT_PID=
bench_tmp history "CORRAL_PID WITHOUT_PID" serve.log

# The run lasts an hour at SIZE=large and starts servers all along it: it runs its own copy
# of the binary, so that a build into the shared target dir meanwhile changes nothing.
cp "$CORRAL" "$TMP/corral"
CORRAL="$TMP/corral"

bench_results "history-$SIZE"
RAM=$(awk '/^MemTotal/ { printf "%.0f GiB RAM", $2/1048576 }' /proc/meminfo)
log "# Corral history benchmark, $STAMP"
log "commit: $COMMIT"
log "machine: $NPROC CPUs, ${CPU:-unknown CPU}, $(uname -sr), $RAM"
log "corral: $CORRAL ($("$CORRAL" --version), copied from ${CORRAL_BIN:-$ROOT/target/release/corral}); python $(python3 -c 'import sys; print(sys.version.split()[0])')"
log "knobs: TRANSITIONS=$TRANSITIONS ROUNDS=$ROUNDS PHASE_SECONDS=$PHASE_SECONDS WRITE_RATE=$WRITE_RATE LAG_RATE=$LAG_RATE POLL_INTERVAL=$POLL_INTERVAL SETTLE_SECONDS=$SETTLE_SECONDS ROUTE_ROUNDS=$ROUTE_ROUNDS WALK=$WALK DATABASE=$DATABASE"
log ""

# --- 1. the work dir (eval.sh's, made as eval.sh makes it when missing) -------------------
bench_work_dir
read -r SITE PK SK < <(python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
print(s["site_uuid"], s["publishable_key"], s["secret_key"])' "$WORK/site.json")

# --- the servers -------------------------------------------------------------------------
PORT=$(free_port)
URL="http://127.0.0.1:$PORT"
WITHOUT_PORT=$(free_port)
WITHOUT_URL="http://127.0.0.1:$WITHOUT_PORT"

# Starts `corral serve` on DATABASE_URL and PORT, its pid into the variable named, and
# waits for /healthz. A user's defaults (the request timeout of 30 s among them: creating a
# segment of every subscriber, which takes its baseline, must fit in it), except the
# rate limits, which an operator raises for a writer like this one: one key pair sends the
# writer's 600 requests a minute, the tagger's 600 and the poller's up to 600, and the
# history reads' 20-odd series an hour, so the limits are set above that (3,000 a minute,
# 600 an hour) rather than turned off, and the limiter stays in the measured path.
start_serve() { # database-url checkpoint-dir port pid-variable
    say "starting corral serve on 127.0.0.1:$3 ($1)"
    "$CORRAL" serve --database "$1" --listen "127.0.0.1:$3" --checkpoint-dir "$2" \
        --rate-limit-per-minute 3000 --stats-rate-limit-per-hour 600 \
        --log-level warn >>"$TMP/serve.log" 2>&1 &
    printf -v "$4" '%s' "$!"
    local from=$SECONDS pid=$!
    until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$3/healthz" || true)" = 200 ]; do
        kill -0 "$pid" 2>/dev/null || die "corral serve exited during start-up"
        [ $(( SECONDS - from )) -lt 900 ] || die "corral serve did not answer /healthz within 15 minutes"
        sleep 0.2
    done
}

# Stops the server whose pid the variable named holds, gracefully (SIGTERM; it must exit
# with status 0 within 5 minutes).
stop_serve() { # pid-variable
    local rc=0 from=$SECONDS pid=${!1}
    kill -TERM "$pid"
    while grep -q '^State:[[:space:]]*[^Z]' "/proc/$pid/status" 2>/dev/null; do
        [ $(( SECONDS - from )) -lt 300 ] || die "corral serve did not exit within 5 minutes of SIGTERM"
        sleep 0.1
    done
    wait "$pid" || rc=$?
    printf -v "$1" '%s' ""
    [ "$rc" = 0 ] || die "corral serve exited with status $rc after SIGTERM (see serve.log)"
}

# Runs a helper step whose progress is worth watching: its output to the terminal and to
# the results file.
watched() { # label command...
    local label=$1
    shift
    say "$label"
    echo "## $label" >>"$RESULTS"
    if ! "$@" 2>&1 | tee "$TMP/step.out" >&2; then
        cat "$TMP/step.out" >>"$RESULTS"
        die "$label failed"
    fi
    cat "$TMP/step.out" >>"$RESULTS"
    echo >>"$RESULTS"
}

# The whole measurement on one backend: NAME (files $TMP/NAME-*), the server's --database
# URL, the helper's --db-kind and --db, the site with its keys, and the --database URL of
# the copy served without kept segments.
run_backend() { # name database-url db-kind db site pk sk without-url
    local name=$1 url=$2 kind=$3 site=$5 pk=$6 sk=$7 without=$8
    local out="$TMP/$name" db_args=(--db-kind "$3" --db "$4")
    [ "$kind" != postgres ] || db_args+=(--psql "$PSQL")
    local target=("$URL" "$site" "$pk" "$sk")
    log "### $name"
    start_serve "$url" "$TMP/checkpoints-$name" "$PORT" CORRAL_PID
    QUIET=1 watched "$name: the 20 kept segments" \
        python3 "$HELPER" setup "${target[@]}" --ids "$out-ids.json"
    stop_serve CORRAL_PID
    step "$name: sizes after setup" \
        python3 "$HELPER" sizes "${db_args[@]}" --label "after setup" --out "$out-sizes.jsonl"
    local segment
    segment=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["ids"]["customers"])' "$out-ids.json")
    step "$name: a year of $TRANSITIONS transitions of segment $segment, into the tables" \
        python3 "$HELPER" year "${db_args[@]}" --site "$site" --segment "$segment" \
        --transitions "$TRANSITIONS" --seed "$SEED" --out "$out-year.json"
    step "$name: sizes after the year" \
        python3 "$HELPER" sizes "${db_args[@]}" --label "after the year" --out "$out-sizes.jsonl"
    start_serve "$url" "$TMP/checkpoints-$name" "$PORT" CORRAL_PID
    # The audience in memory first (a sweep would otherwise load it during the reads).
    curl -s -o /dev/null -u "$pk:$sk" "$URL/api/v1/stats/segment?segment_id=$segment&site_uuid=$site"
    # The server's first sweep takes the year's membership checkpoints.
    step "$name: the year's membership checkpoints, taken by the server" \
        python3 "$HELPER" checkpoints "${db_args[@]}" --segment "$segment" \
        --out "$out-checkpoints.json"
    sleep 2
    QUIET=1 watched "$name: the history routes" \
        python3 "$HELPER" routes "${target[@]}" --year "$out-year.json" \
        --rounds "$ROUTE_ROUNDS" "${walk_args[@]}" --out "$out-routes.json"
    start_serve "$without" "$TMP/checkpoints-$name-without" "$WITHOUT_PORT" WITHOUT_PID
    curl -s -o /dev/null -u "$pk:$sk" -H 'Content-Type: application/json' \
        -d '{"visitor_event_query":{},"sample":0}' \
        "$WITHOUT_URL/api/v1/fetch/segments/preview?site_uuid=$site"
    QUIET=1 watched "$name: the writer with and without the journal, and the changes feed's lag" \
        python3 "$HELPER" measure "${target[@]}" "${db_args[@]}" --pid "$CORRAL_PID" \
        --without "$WITHOUT_URL" --without-pid "$WITHOUT_PID" \
        --ids "$out-ids.json" --out "$out-measure.json" --rounds "$ROUNDS" \
        --phase-seconds "$PHASE_SECONDS" --write-rate "$WRITE_RATE" --lag-rate "$LAG_RATE" \
        --poll-interval "$POLL_INTERVAL" --settle-seconds "$SETTLE_SECONDS" --seed "$SEED"
    stop_serve WITHOUT_PID
    stop_serve CORRAL_PID
    step "$name: sizes after the writer" \
        python3 "$HELPER" sizes "${db_args[@]}" --label "after the writer" --out "$out-sizes.jsonl"
}

# --- 2. SQLite: a copy of the work dir's database -------------------------------------------
mkdir -p "$TMP/db"
COPY="$TMP/db/corral.db"
say "copying $DB into the temp dir"
bench_copy_db "$DB" "$COPY"
log "database: copy of $DB ($(stat -c %s "$COPY") bytes)"
step "corral site list (applies pending migrations to the copy)" \
    "$CORRAL" site list --database "sqlite://$COPY"
# The copy served without kept segments, made before any is created.
mkdir -p "$TMP/db-without"
WITHOUT_COPY="$TMP/db-without/corral.db"
bench_copy_db "$COPY" "$WITHOUT_COPY"
run_backend sqlite "sqlite://$COPY" sqlite "$COPY" "$SITE" "$PK" "$SK" "sqlite://$WITHOUT_COPY"
table_args=(--ids "$TMP/sqlite-ids.json" --routes "$TMP/sqlite-routes.json"
    --measure "$TMP/sqlite-measure.json" --sizes "$TMP/sqlite-sizes.jsonl")
# Room for PostgreSQL's copy of the audience.
rm -f "$COPY" "$COPY-wal" "$COPY-shm" "$WITHOUT_COPY" "$WITHOUT_COPY-wal" "$WITHOUT_COPY-shm"

# --- 3. PostgreSQL (DATABASE=postgres): the same audience, imported by Corral ------------------
if [ "$DATABASE" = postgres ]; then
    bench_postgres_start
    log "PostgreSQL $PG_VERSION (scripts/postgres.sh: fsync off, synchronous_commit on, shared_buffers 256MB)"
    bench_pg_db corral_history
    PG_URL=$PG_DB_URL
    step "corral gen (again, for PostgreSQL)" \
        "$CORRAL" gen --subscribers "$SUBSCRIBERS" --events "$EVENTS" --seed "$SEED" --out "$TMP/data"
    "$CORRAL" site create Bench --json --database "$PG_URL" >"$TMP/site-pg.json" \
        || die "corral site create on PostgreSQL failed: $(cat "$TMP/site-pg.json")"
    read -r PG_SITE PG_PK PG_SK < <(python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
print(s["site_uuid"], s["publishable_key"], s["secret_key"])' "$TMP/site-pg.json")
    step "corral import subscribers (PostgreSQL)" \
        "$CORRAL" import subscribers --site "$PG_SITE" "$TMP/data/subscribers.jsonl" --database "$PG_URL"
    step "corral import events (PostgreSQL)" \
        "$CORRAL" import events --site "$PG_SITE" "$TMP/data/events.jsonl" --database "$PG_URL"
    grep -q "^imported $EVENTS events, skipped 0 bad lines" "$TMP/step.out" \
        || die "PostgreSQL: expected 'imported $EVENTS events, skipped 0 bad lines', got: $(tail -n 5 "$TMP/step.out")"
    rm -rf "$TMP/data"
    bench_psql "$PG_URL" "VACUUM ANALYZE" >/dev/null
    # The database served without kept segments: a copy, made before any is created.
    bench_psql "$PG_ADMIN_URL" "CREATE DATABASE corral_history_without TEMPLATE corral_history" >/dev/null \
        || die "could not copy the PostgreSQL database"
    run_backend postgres "$PG_URL" postgres "$PG_URL" "$PG_SITE" "$PG_PK" "$PG_SK" \
        "${PG_ADMIN_URL%/*}/corral_history_without"
    table_args+=(--postgres-ids "$TMP/postgres-ids.json" --postgres-routes "$TMP/postgres-routes.json"
        --postgres-measure "$TMP/postgres-measure.json" --postgres-sizes "$TMP/postgres-sizes.jsonl")
fi

# --- 4. report -------------------------------------------------------------------------------
TABLE=$(python3 "$HELPER" table "${table_args[@]}") || die "could not make the table"
REPORT=$(cat <<EOF

## Corral history benchmark ($(date -u '+%Y-%m-%d %H:%M UTC'))

- commit: $COMMIT
- machine: $NPROC CPUs, ${CPU:-unknown CPU}, $RAM
- data: SIZE=$SIZE, \`corral gen --subscribers $SUBSCRIBERS --events $EVENTS --seed $SEED\` imported into SQLite ($([ "$REUSED" = 1 ] && echo "work dir reused" || echo "generated by this run")), served from a copy$([ "$DATABASE" = postgres ] && echo "; and imported into PostgreSQL $PG_VERSION"); a year of $TRANSITIONS transitions written into the journal's tables

$TABLE
EOF
)
echo "$REPORT"
{
    echo "$REPORT"
    echo
    echo "## raw figures"
    for f in "$TMP"/*-routes.json "$TMP"/*-sizes.jsonl; do echo "### $(basename "$f")"; cat "$f"; echo; done
    for f in "$TMP"/*-measure.json; do
        echo "### $(basename "$f") (without the latencies of every request)"
        python3 -c '
import json, sys
run = json.load(open(sys.argv[1]))
for p in run["phases"]:
    p["writer"].pop("latencies", None)
run.pop("lags", None)
print(json.dumps(run, indent=1))' "$f"
    done
    echo "### server log (warnings)"
    cat "$TMP/serve.log"
} >>"$RESULTS"
say "results: $RESULTS"
