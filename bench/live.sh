#!/usr/bin/env bash
# Live benchmark: segment evaluation while data is being written.
#
# Corral answers a segment from a snapshot of the audience it holds in memory, which it
# brings forward from the change log before every answer (the writes of the server and of
# a CLI import in another process alike). eval.sh measures evaluation on an audience at
# rest; this measures it on the same audience and the same suite of 19 segments
# (bench/eval_helper.py) while data arrives, which is how a server runs:
#   1. `GET /api/v1/stats/segment` of every segment with no writes (after one warm-up
#      call each), ROUNDS calls a segment: median and p99;
#   2. the same while a writer posts `POST /api/v1/batch/events` at WRITE_RATE events a
#      second (requests of 100 events, evenly paced, on connections of its own), every
#      event for an existing subscriber and dated now; the writer's achieved rate and
#      request latency;
#   3. the same while `corral import events` of IMPORT_EVENTS events (made by `corral gen`
#      for the same subscribers) runs in another process; how long the import took;
#   4. the time from starting `corral serve` to its first stats answer ("cold"), twice:
#      the first start on the copied database, then, after a graceful stop (SIGTERM, wait
#      for the exit), a second start beside the same files;
#   5. `RssAnon` (the process's own memory, not the database pages SQLite maps) of
#      `corral serve`, sampled every 100 ms over the whole run: peak and end.
# Goals, each printed as met / not met: under the writer every segment's median at most
# 2× its no-write median + 2 ms and every request's p99 at most 100 ms; cold start at most
# 2 s; RssAnon at most 1 GiB at all times.
#
# The data is eval.sh's work dir (bench/.data/<size>), made here as eval.sh makes it when
# missing. Its database is never written: the run serves and writes a copy in its temp dir.
#
# Usage: bash bench/live.sh              (as root on Debian; installs python3, sqlite3)
# Knobs (environment):
#   SIZE=small       100,000 subscribers and 1,000,000 events (default)
#   SIZE=large       1,000,000 subscribers and 10,000,000 events
#   SEED=42          the generator's seed (of the work dir and of the file imported)
#   ROUNDS=30        stats calls of each segment in phases 1 and 2 (after one warm-up each)
#   MIN_PHASE_SECONDS=60  phase 2 goes on (more rounds) until the writer has run this long
#   PHASE_SECONDS=600  no round of phase 2 begins after this many seconds (at least one
#                    round runs); phase 3 lasts as long as the import
#   WRITE_RATE=1000  events a second the writer of phase 2 posts
#   IMPORT_EVENTS=1000000  events imported in phase 3
#   WORK_DIR=PATH    the work dir (default bench/.data/<size>): database, site keys
#   SKIP_BUILD=1     use the existing target/release/corral, skip `cargo build --release`
#   CORRAL_BIN=PATH  benchmark another corral binary (combine with SKIP_BUILD=1)
#   CORRAL_PORT      fixed port for `corral serve` (default: a free port)
#   KEEP_TMP=1       keep the run's temp dir (database copy, logs, figures as JSON)
#
# Output: a Markdown table on stdout; it, the machine, the commit and the raw figures are
# appended to bench/results/live-<size>-<timestamp>.txt. Exits 0 when goals are not met
# (the report says so); non-zero when a request fails (not 2xx), a written row is missing
# or any step fails.
set -euo pipefail

SIZE=${SIZE:-small}
case "$SIZE" in
    small | default) SIZE=small SUBSCRIBERS=100000 EVENTS=1000000 ;;
    large) SUBSCRIBERS=1000000 EVENTS=10000000 ;;
    *) echo "SIZE must be 'small' or 'large', not '$SIZE'" >&2; exit 2 ;;
esac
SEED=${SEED:-42}
ROUNDS=${ROUNDS:-30}
PHASE_SECONDS=${PHASE_SECONDS:-600}
MIN_PHASE_SECONDS=${MIN_PHASE_SECONDS:-60}
WRITE_RATE=${WRITE_RATE:-1000}
IMPORT_EVENTS=${IMPORT_EVENTS:-1000000}


ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
cd "$ROOT"
HELPER="$ROOT/bench/live_helper.py"
WORK=${WORK_DIR:-$ROOT/bench/.data/$SIZE}
for knob in ROUNDS PHASE_SECONDS MIN_PHASE_SECONDS WRITE_RATE IMPORT_EVENTS; do
    [[ "${!knob}" =~ ^[1-9][0-9]*$ ]] || die "$knob must be a whole number of 1 or more"
done

# --- tools -------------------------------------------------------------------------
install_missing python3 sqlite3
SQLITE3=$(command -v sqlite3)

# --- build -------------------------------------------------------------------------
bench_build

# --- temp dir and clean-up -----------------------------------------------------------
CORRAL_PID=
RSS_PID=
bench_tmp live "CORRAL_PID RSS_PID" serve.log

bench_results "live-$SIZE"
RAM=$(awk '/^MemTotal/ { printf "%.0f GiB RAM", $2/1048576 }' /proc/meminfo)
log "# Corral live benchmark, $STAMP"
log "commit: $COMMIT"
log "machine: $NPROC CPUs, ${CPU:-unknown CPU}, $(uname -sr), $RAM"
log "corral: $CORRAL; python $(python3 -c 'import sys; print(sys.version.split()[0])')"
log ""

# --- 1. the work dir (eval.sh's, made as eval.sh makes it when missing) -------------------
bench_work_dir
read -r SITE PK SK < <(python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
print(s["site_uuid"], s["publishable_key"], s["secret_key"])' "$WORK/site.json")

# --- 2. the run's copy of the database, and the file to import ----------------------------
# The copy is what the server serves and every write goes to; the work dir is only read.
say "copying $DB into the temp dir"
mkdir -p "$TMP/db"
LIVE_DB="$TMP/db/corral.db"
bench_copy_db "$DB" "$LIVE_DB"
log "database: copy of $DB ($(stat -c %s "$LIVE_DB") bytes) in $TMP/db"
# Every command applies the migrations the binary has and the database lacks (a work dir
# made by an older build): a one-time cost, paid here rather than counted as a cold start.
MIGRATE_FROM=${EPOCHREALTIME/./}
step "corral site list (applies pending migrations to the copy)" \
    "$CORRAL" site list --database "sqlite://$LIVE_DB"
grep -q "$SITE" "$TMP/step.out" || die "corral site list does not list the site $SITE"
log "corral site list took $(( (${EPOCHREALTIME/./} - MIGRATE_FROM) / 1000 )) ms"

# `corral gen` names subscriber i `user<i>@<domain>`, the domain drawn from the seed and i
# alone: with the work dir's seed and subscriber count its events are for the same
# emails (the run checks that no subscriber is created). Ending its year now dates them
# apart from the stored ones; its purchases' unique keys (order-<n>) are stored already,
# so they are renamed, or Corral would rightly drop them as repeats.
UNTIL=$(date -u +%Y-%m-%dT%H:%M:%SZ)
step "corral gen --subscribers $SUBSCRIBERS --events $IMPORT_EVENTS --seed $SEED --until $UNTIL" \
    "$CORRAL" gen --subscribers "$SUBSCRIBERS" --events "$IMPORT_EVENTS" --seed "$SEED" \
    --until "$UNTIL" --out "$TMP/gen"
rm -f "$TMP/gen/subscribers.jsonl"
sed -i 's/"unique":{"key":"order-/"unique":{"key":"import-order-/' "$TMP/gen/events.jsonl"
IMPORT_FILE="$TMP/gen/events.jsonl"

# --- 3. Corral's server: started, stopped and started again ----------------------------------
CORRAL_PORT=${CORRAL_PORT:-$(free_port)}
URL="http://127.0.0.1:$CORRAL_PORT"
target=("$URL" "$SITE" "$PK" "$SK")

# Appends "<unix seconds> <pid> <RssAnon kB>" to rss.txt about every 100 ms while the
# process lives (bash's own read: no process started per sample but sleep).
rss_sampler() {
    local pid=$1 key value rest
    while [ -r "/proc/$pid/status" ]; do
        while read -r key value rest; do
            if [ "$key" = RssAnon: ]; then
                echo "$EPOCHREALTIME $pid $value"
                break
            fi
        done <"/proc/$pid/status"
        sleep 0.1
    done >>"$TMP/rss.txt" 2>/dev/null
}

# Starts `corral serve` on the copy, noting the instant (STARTED_NS) and sampling it.
start_serve() {
    say "starting corral serve on 127.0.0.1:$CORRAL_PORT"
    STARTED_NS=$(date +%s%N)
    # Rate limits off; a request timeout of 10 minutes, so that no slow stats call (one
    # that reads the audience again after writes) is cut off.
    "$CORRAL" serve --database "sqlite://$LIVE_DB" --listen "127.0.0.1:$CORRAL_PORT" \
        --rate-limit-per-minute 0 --stats-rate-limit-per-hour 0 --request-timeout-secs 600 \
        --log-level warn >>"$TMP/serve.log" 2>&1 &
    CORRAL_PID=$!
    rss_sampler "$CORRAL_PID" &
    RSS_PID=$!
}

# Stops it gracefully: SIGTERM, then waits (at most 2 minutes) for it to exit, which it
# must do with status 0. Appends the time it took to STOPS.
STOPS=
stop_serve() {
    local from=${EPOCHREALTIME/./} rc=0 took
    kill -TERM "$CORRAL_PID"
    # Until it has exited (a zombie, waiting to be reaped, has).
    while grep -q '^State:[[:space:]]*[^Z]' "/proc/$CORRAL_PID/status" 2>/dev/null; do
        [ $(( ${EPOCHREALTIME/./} - from )) -lt 120000000 ] \
            || die "corral serve did not exit within 2 minutes of SIGTERM"
        sleep 0.02
    done
    wait "$CORRAL_PID" || rc=$?
    took=$(( (${EPOCHREALTIME/./} - from) / 10000 ))
    took=$(printf '%d.%02d s' $(( took / 100 )) $(( took % 100 )))
    CORRAL_PID=
    kill "$RSS_PID" 2>/dev/null || true
    wait "$RSS_PID" 2>/dev/null || true
    RSS_PID=
    [ "$rc" = 0 ] || die "corral serve exited with status $rc after SIGTERM (see serve.log)"
    STOPS="${STOPS:+$STOPS, }$took"
    say "corral serve stopped in $took"
    log "corral serve stopped in $took; beside the database: $(cd "$TMP/db" && stat -c '%n %s bytes' -- * | paste -sd ',' | sed 's/,/, /g')"
}

# Cold start, first: the server serves the copy for the first time; the suite is created over
# the API (eval_helper's code) once it listens, then the first stats answer ends the clock.
start_serve
QUIET=1 step "cold start 1: suite created, first stats answer" \
    python3 "$HELPER" cold "${target[@]}" --started-ns "$STARTED_NS" --pid "$CORRAL_PID" \
    --ids "$TMP/ids.json" --out "$TMP/cold1.json" --create-suite
stop_serve
# Cold start, second: the same database in the same directory, beside whatever the first
# start left next to it.
start_serve
QUIET=1 step "cold start 2: first stats answer" \
    python3 "$HELPER" cold "${target[@]}" --started-ns "$STARTED_NS" --pid "$CORRAL_PID" \
    --ids "$TMP/ids.json" --out "$TMP/cold2.json"

# --- 4. the measurements: no writes, under the writer, during the import ---------------------
say "measuring: $ROUNDS rounds without writes, $ROUNDS under $WRITE_RATE events/s, then during the import of $IMPORT_EVENTS events"
if ! python3 "$HELPER" measure "${target[@]}" --ids "$TMP/ids.json" --db "$LIVE_DB" \
    --out "$TMP/measure.json" --rounds "$ROUNDS" --write-rate "$WRITE_RATE" \
    --phase-seconds "$PHASE_SECONDS" --min-phase-seconds "$MIN_PHASE_SECONDS" --seed "$SEED" --import-events "$IMPORT_EVENTS" \
    --import-log "$TMP/import.log" -- \
    "$CORRAL" import events --site "$SITE" "$IMPORT_FILE" --database "sqlite://$LIVE_DB" \
    2>&1 | tee "$TMP/helper.log" >&2; then
    cat "$TMP/helper.log" >>"$RESULTS"
    die "the measurements failed (see above)"
fi
{ echo "## measurements"; cat "$TMP/helper.log"; echo; } >>"$RESULTS"
END=$(awk '/^RssAnon:|^RssFile:|^VmHWM:/ { printf "%s%s %d MiB", sep, $1, $2 / 1024; sep = ", " }' \
    "/proc/$CORRAL_PID/status" 2>/dev/null || echo "?")
stop_serve

# --- 5. report -----------------------------------------------------------------------------
TABLE=$(python3 "$HELPER" table --cold1 "$TMP/cold1.json" --cold2 "$TMP/cold2.json" \
    --measure "$TMP/measure.json" --rss "$TMP/rss.txt" --stops "$STOPS" --end "$END") \
    || die "could not make the table"
REPORT=$(cat <<EOF

## Corral live benchmark ($(date -u '+%Y-%m-%d %H:%M UTC'))

- commit: $COMMIT
- machine: $NPROC CPUs, ${CPU:-unknown CPU}, $RAM
- data: SIZE=$SIZE, \`corral gen --subscribers $SUBSCRIBERS --events $EVENTS --seed $SEED\` imported into SQLite ($([ "$REUSED" = 1 ] && echo "work dir reused" || echo "generated by this run")), served from a copy; the suite of bench/eval_helper.py

$TABLE
EOF
)
echo "$REPORT"
{
    echo "$REPORT"
    echo
    echo "## raw figures (seconds)"
    for f in cold1 cold2 measure; do echo "### $f"; cat "$TMP/$f.json"; echo; done
    echo "### RssAnon samples (unix seconds, pid, kB)"
    cat "$TMP/rss.txt"
} >>"$RESULTS"
say "results: $RESULTS"
