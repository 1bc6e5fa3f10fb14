#!/usr/bin/env bash
# Webhook benchmark: how soon a receiver hears of a membership change, and whether it
# hears of every one.
#
# On eval.sh's audience (served from a copy), with a writer at WRITE_RATE events a second
# (bench/webhooks_helper.py, which reuses live_helper's paced writer):
#   1. a baseline: the writer alone for BASELINE_SECONDS, nothing watched;
#   2. 10 segments the writer's pings and tag commands move people in and out of, created
#      over HTTP; a receiver (a Python HTTP server on loopback that checks each request's
#      signature) and one webhook watching all 10 (or WEBHOOKS sharing them); each
#      segment's members read;
#   3. the writer again for DURATION seconds; the receiver records every notification with
#      its arrival time, on the same clock as the writer's answers;
#   4. after the writer stops, the outbox drained (the newest delivery delivered and no
#      notification for 5 s), each segment's members read again.
# Figures: the time from a write's answer to its notification (p50, p99, max), the members
# before plus the notifications applied in order against the members after (missing,
# extra), repeated event ids; the writer's p99 and the server's CPU and RssAnon watched
# and not. Goals, printed met / not met: p50 ≤ 1 s, p99 ≤ 5 s, nothing missing, nothing
# extra.
#
# The data is eval.sh's work dir (bench/.data/<size>), made here as eval.sh makes it when
# missing. Its database is never written: the run serves and writes a copy in its temp dir.
#
# Usage: bash bench/webhooks.sh           (as root on Debian; installs python3, sqlite3)
# Knobs (environment):
#   SIZE=small        100,000 subscribers and 1,000,000 events (default)
#   SIZE=large        1,000,000 subscribers and 10,000,000 events
#   SEED=42           the generator's seed, and the writer's
#   WRITE_RATE=1000   events a second the writer posts (requests of 100 events)
#   DURATION=60       seconds of writing while watched
#   BASELINE_SECONDS=20  seconds of writing before anything is watched
#   POOL=10000        subscribers the pings and tag commands are for
#   PING_SHARE=0.05   share of the events that are `bench_ping` (the rest as live.sh's)
#   COMMANDS=2        tag commands sent after each request of events
#   WEBHOOKS=1        webhooks the 10 segments are dealt out among (1 to 10)
#   WORK_DIR=PATH     the work dir (default bench/.data/<size>): database, site keys
#   SKIP_BUILD=1      use the existing target/release/corral, skip `cargo build --release`
#   CORRAL_BIN=PATH   benchmark another corral binary (combine with SKIP_BUILD=1)
#   CORRAL_PORT       fixed port for `corral serve` (default: a free port)
#   KEEP_TMP=1        keep the run's temp dir (database copy, log, figures as JSON)
#
# Output: a Markdown table on stdout; it, the machine, the commit and the raw figures are
# appended to bench/results/webhooks-<size>-<timestamp>.txt. Exits 0 when goals are not met
# (the report says so); non-zero when a request fails, a signature does not verify, no
# notification arrives or any step fails.
set -euo pipefail

SIZE=${SIZE:-small}
case "$SIZE" in
    small | default) SIZE=small SUBSCRIBERS=100000 EVENTS=1000000 ;;
    large) SUBSCRIBERS=1000000 EVENTS=10000000 ;;
    *) echo "SIZE must be 'small' or 'large', not '$SIZE'" >&2; exit 2 ;;
esac
SEED=${SEED:-42}
WRITE_RATE=${WRITE_RATE:-1000}
DURATION=${DURATION:-60}
BASELINE_SECONDS=${BASELINE_SECONDS:-20}
POOL=${POOL:-10000}
PING_SHARE=${PING_SHARE:-0.05}
COMMANDS=${COMMANDS:-2}
WEBHOOKS=${WEBHOOKS:-1}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
cd "$ROOT"
HELPER="$ROOT/bench/webhooks_helper.py"
WORK=${WORK_DIR:-$ROOT/bench/.data/$SIZE}
for knob in WRITE_RATE DURATION BASELINE_SECONDS POOL; do
    [[ "${!knob}" =~ ^[1-9][0-9]*$ ]] || die "$knob must be a whole number of 1 or more"
done
[[ "$COMMANDS" =~ ^[0-9]+$ ]] || die "COMMANDS must be a whole number"
[[ "$WEBHOOKS" =~ ^([1-9]|10)$ ]] || die "WEBHOOKS must be a whole number from 1 to 10"
[[ "$PING_SHARE" =~ ^(0|1|0?\.[0-9]+)$ ]] || die "PING_SHARE must be a number from 0 to 1"

# --- tools -------------------------------------------------------------------------
install_missing python3 sqlite3
SQLITE3=$(command -v sqlite3)

# --- build -------------------------------------------------------------------------
bench_build

# --- temp dir and clean-up -----------------------------------------------------------
CORRAL_PID=
bench_tmp webhooks "CORRAL_PID" serve.log

bench_results "webhooks-$SIZE"
RAM=$(awk '/^MemTotal/ { printf "%.0f GiB RAM", $2/1048576 }' /proc/meminfo)
log "# Corral webhook benchmark, $STAMP"
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

# --- 2. the run's copy of the database -------------------------------------------------
say "copying $DB into the temp dir"
mkdir -p "$TMP/db"
LIVE_DB="$TMP/db/corral.db"
bench_copy_db "$DB" "$LIVE_DB"
log "database: copy of $DB ($(stat -c %s "$LIVE_DB") bytes) in $TMP/db"
step "corral site list (applies pending migrations to the copy)" \
    "$CORRAL" site list --database "sqlite://$LIVE_DB"
grep -q "$SITE" "$TMP/step.out" || die "corral site list does not list the site $SITE"

# --- 3. the server ---------------------------------------------------------------------
CORRAL_PORT=${CORRAL_PORT:-$(free_port)}
URL="http://127.0.0.1:$CORRAL_PORT"
say "starting corral serve on 127.0.0.1:$CORRAL_PORT"
# Rate limits off; the receiver is on loopback, a private target.
"$CORRAL" serve --database "sqlite://$LIVE_DB" --listen "127.0.0.1:$CORRAL_PORT" \
    --rate-limit-per-minute 0 --stats-rate-limit-per-hour 0 --allow-private-webhook-targets \
    --log-level warn >>"$TMP/serve.log" 2>&1 &
CORRAL_PID=$!
# Until it answers (the first start on a copy reads the whole audience).
for _ in $(seq 1 9000); do
    curl -fsS "$URL/healthz" >/dev/null 2>&1 && break
    kill -0 "$CORRAL_PID" 2>/dev/null || die "corral serve exited during start-up"
    sleep 0.1
done
curl -fsS "$URL/healthz" >/dev/null 2>&1 || die "corral serve did not answer within 15 minutes"

# --- 4. the measurements -----------------------------------------------------------------
say "measuring: baseline ${BASELINE_SECONDS} s, then ${DURATION} s watched, at $WRITE_RATE events/s"
if ! python3 "$HELPER" run "$URL" "$SITE" "$PK" "$SK" --db "$LIVE_DB" --pid "$CORRAL_PID" \
    --out "$TMP/run.json" --write-rate "$WRITE_RATE" --duration "$DURATION" \
    --baseline-seconds "$BASELINE_SECONDS" --seed "$SEED" --pool "$POOL" \
    --ping-share "$PING_SHARE" --commands "$COMMANDS" --webhooks "$WEBHOOKS" \
    2>&1 | tee "$TMP/helper.log" >&2; then
    cat "$TMP/helper.log" >>"$RESULTS"
    die "the measurements failed (see above)"
fi
{ echo "## measurements"; cat "$TMP/helper.log"; echo; } >>"$RESULTS"
WARNINGS=$(grep -c -E ' WARN | ERROR ' "$TMP/serve.log" || true)

# --- 5. report -----------------------------------------------------------------------------
TABLE=$(python3 "$HELPER" table --run "$TMP/run.json") || die "could not make the table"
REPORT=$(cat <<EOF

## Corral webhook benchmark ($(date -u '+%Y-%m-%d %H:%M UTC'))

- commit: $COMMIT
- machine: $NPROC CPUs, ${CPU:-unknown CPU}, $RAM
- data: SIZE=$SIZE, \`corral gen --subscribers $SUBSCRIBERS --events $EVENTS --seed $SEED\` imported into SQLite ($([ "$REUSED" = 1 ] && echo "work dir reused" || echo "generated by this run")), served from a copy by \`corral serve --allow-private-webhook-targets\`, rate limits off
- the server's log: $WARNINGS warnings or errors

$TABLE
EOF
)
echo "$REPORT"
{
    echo "$REPORT"
    echo
    echo "## raw figures (seconds; times are Unix seconds)"
    cat "$TMP/run.json"
    echo
    echo "## the server's warnings and errors"
    grep -E ' WARN | ERROR ' "$TMP/serve.log" | head -n 50 || true
} >>"$RESULTS"
say "results: $RESULTS"
