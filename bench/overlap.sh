#!/usr/bin/env bash
# Overlap benchmark: five segments together (`POST /api/v1/stats/overlap`, all 31 regions
# of their Venn diagram) against the slowest of them alone (`GET /api/v1/stats/segment`).
#
# On eval.sh's audience and suite of segments (bench/eval_helper.py), the five segments
# whose stats take longest are the hardest five to compare; the overlap evaluates them
# together on one resident snapshot and counts the regions in one pass over their sets.
# Goal: the five together take at most 2× the slowest one alone (medians, measured in the
# same rounds). The overlap's regions are checked against each segment's stats.
#
# The data is eval.sh's work dir (bench/.data/<size>), made here as eval.sh makes it when
# missing. Its database is never written: the run serves a copy in its temp dir.
#
# Usage: bash bench/overlap.sh           (as root on Debian; installs python3, sqlite3, curl)
# Knobs (environment):
#   SIZE=small       100,000 subscribers and 1,000,000 events (default)
#   SIZE=large       1,000,000 subscribers and 10,000,000 events
#   SEED=42          the generator's seed
#   ROUNDS=15        timed rounds (after one warm-up call of each request)
#   WORK_DIR=PATH    the work dir (default bench/.data/<size>)
#   SKIP_BUILD=1     use the existing target/release/corral, skip `cargo build --release`
#   CORRAL_BIN=PATH  benchmark another corral binary (combine with SKIP_BUILD=1)
#   KEEP_TMP=1       keep the run's temp dir (database copy, server log, figures as JSON)
#
# Output: a Markdown table on stdout; it, the machine, the commit and the raw figures are
# appended to bench/results/overlap-<size>-<timestamp>.txt. Exits 0 whether or not the goal
# is met (the report says which); non-zero when a request fails, the regions disagree
# with the stats, or any step fails.
set -euo pipefail

SIZE=${SIZE:-small}
case "$SIZE" in
    small | default) SIZE=small SUBSCRIBERS=100000 EVENTS=1000000 ;;
    large) SUBSCRIBERS=1000000 EVENTS=10000000 ;;
    *) echo "SIZE must be 'small' or 'large', not '$SIZE'" >&2; exit 2 ;;
esac
SEED=${SEED:-42}
ROUNDS=${ROUNDS:-15}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
cd "$ROOT"
HELPER="$ROOT/bench/overlap_helper.py"
WORK=${WORK_DIR:-$ROOT/bench/.data/$SIZE}
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a whole number of 1 or more"

install_missing python3 sqlite3 curl
SQLITE3=$(command -v sqlite3)
bench_build

CORRAL_PID=
bench_tmp overlap "CORRAL_PID" serve.log
bench_results "overlap-$SIZE"
RAM=$(awk '/^MemTotal/ { printf "%.0f GiB RAM", $2/1048576 }' /proc/meminfo)
log "# Corral overlap benchmark, $STAMP"
log "commit: $COMMIT"
log "machine: $NPROC CPUs, ${CPU:-unknown CPU}, $(uname -sr), $RAM"
log ""

bench_work_dir
read -r SITE PK SK < <(python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
print(s["site_uuid"], s["publishable_key"], s["secret_key"])' "$WORK/site.json")

say "copying $DB into the temp dir"
mkdir -p "$TMP/db"
bench_copy_db "$DB" "$TMP/db/corral.db"

PORT=$(free_port)
URL="http://127.0.0.1:$PORT"
say "starting corral serve on 127.0.0.1:$PORT"
# Rate limits off; a request timeout of 10 minutes, so that the first read of the site
# (many seconds at SIZE=large) is not cut off.
"$CORRAL" serve --database "sqlite://$TMP/db/corral.db" --listen "127.0.0.1:$PORT" \
    --rate-limit-per-minute 0 --stats-rate-limit-per-hour 0 --request-timeout-secs 600 \
    --checkpoint-dir "$TMP/checkpoints" --log-level warn >"$TMP/serve.log" 2>&1 &
CORRAL_PID=$!
STARTED=$SECONDS
until [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/healthz" || true)" = 200 ]; do
    kill -0 "$CORRAL_PID" 2>/dev/null || die "corral serve exited during start-up"
    [ $(( SECONDS - STARTED )) -lt 900 ] || die "corral serve did not answer within 15 minutes"
    sleep 0.2
done

say "measuring: $ROUNDS rounds"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
if ! python3 "$HELPER" run "$URL" "$SITE" "$PK" "$SK" --rounds "$ROUNDS" --out "$TMP/run.json" \
    2>&1 | tee "$TMP/helper.log" >&2; then
    cat "$TMP/helper.log" >>"$RESULTS"
    die "the measurements failed (see above)"
fi
TABLE=$(python3 "$HELPER" table "$TMP/run.json")
REPORT=$(cat <<EOF

## Corral overlap benchmark ($(date -u '+%Y-%m-%d %H:%M UTC'))

- commit: $COMMIT
- machine: $NPROC CPUs, ${CPU:-unknown CPU}, $RAM; load average before: $LOAD_BEFORE
- data: SIZE=$SIZE, \`corral gen --subscribers $SUBSCRIBERS --events $EVENTS --seed $SEED\` (eval.sh's work dir, served from a copy); the five segments of eval.sh's suite whose stats take longest

$TABLE
EOF
)
echo "$REPORT"
{ echo "$REPORT"; echo; echo "## raw figures (seconds)"; cat "$TMP/run.json"; echo; } >>"$RESULTS"
say "results: $RESULTS"
