#!/usr/bin/env bash
# Abuse benchmark: heavy queries cannot take the server.
#
# On eval.sh's audience (bench/.data/<size>, served from a copy), with a second site on the
# same server:
#   1. the query that took an earlier server down (levels of all/not around 469 event tests
#      with a `where`) must be refused with a 422 when saved;
#   2. the heaviest query the limits let through (64 event tests without a type, a `where`
#      each) is timed alone, then sent 12 times at once, each on its own connection;
#   3. meanwhile a cheap query of the same site and one of the other site are called one
#      after the other: their median and p99 against the same calls at rest;
#   4. after the last heavy answer, how long the server's CPU time kept moving.
# Nothing here is a goal with a threshold; the issue's expectation is that cheap calls keep
# their latency and the server is idle within a second of its last answer.
#
# Usage: bash bench/abuse.sh        (as root on Debian; needs the work dir of eval.sh or
#                                    live.sh for SIZE: run one of them first)
# Knobs: SIZE=small|large, SKIP_BUILD=1, CORRAL_BIN=PATH, KEEP_TMP=1, WORK_DIR=PATH.
set -euo pipefail

SIZE=${SIZE:-small}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
cd "$ROOT"
WORK=${WORK_DIR:-$ROOT/bench/.data/$SIZE}
if [ ! -s "$WORK/corral.db" ] || [ ! -s "$WORK/site.json" ]; then
    die "no work dir at $WORK: run SIZE=$SIZE bash bench/eval.sh (or live.sh) first"
fi
command -v python3 >/dev/null || die "python3 is needed"

bench_build
CORRAL_PID=
bench_tmp abuse "CORRAL_PID" serve.log
bench_results "abuse-$SIZE"

bench_copy_db "$WORK/corral.db" "$TMP/corral.db"
DB="sqlite://$TMP/corral.db"
"$CORRAL" site list --database "$DB" >/dev/null
"$CORRAL" site create Other --json --database "$DB" >"$TMP/other.json"
read -r SITE PK SK < <(python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
print(s["site_uuid"], s["publishable_key"], s["secret_key"])' "$WORK/site.json")
read -r OSITE OPK OSK < <(python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
print(s["site_uuid"], s["publishable_key"], s["secret_key"])' "$TMP/other.json")

PORT=$(free_port)
URL="http://127.0.0.1:$PORT"
(cd "$TMP" && exec "$CORRAL" serve --database "$DB" --listen "127.0.0.1:$PORT" \
    --rate-limit-per-minute 0 --stats-rate-limit-per-hour 0 --log-level warn \
    >"$TMP/serve.log" 2>&1) &
CORRAL_PID=$!
until [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/healthz" || true)" = 200 ]; do
    kill -0 "$CORRAL_PID" 2>/dev/null || die "corral serve exited during start-up"
    sleep 0.2
done

say "measuring"
TABLE=$(python3 "$ROOT/bench/abuse_helper.py" run "$URL" "$SITE" "$PK" "$SK" \
    "$OSITE" "$OPK" "$OSK" --pid "$CORRAL_PID" --out "$TMP/abuse.json")
REPORT=$(cat <<REPORT_END

## Corral abuse benchmark ($(date -u '+%Y-%m-%d %H:%M UTC'))

- commit: $COMMIT
- machine: $NPROC CPUs, ${CPU:-unknown CPU}
- data: SIZE=$SIZE (eval.sh's work dir, served from a copy), a second site on the same server

$TABLE
REPORT_END
)
echo "$REPORT"
{ echo "$REPORT"; echo; echo "## raw figures"; cat "$TMP/abuse.json"; } >>"$RESULTS"
say "results: $RESULTS"
