#!/usr/bin/env bash
# Evaluation benchmark: segment counts by Corral's stats endpoint, against DuckDB and chDB.
#
# Measures, on one generated audience (`corral gen`, fixed seed) imported into Corral,
# the time of `GET /api/v1/stats/segment` (members, subscribed, unsubscribed) for a suite
# of realistic segments (bench/eval_helper.py holds it), and in the same run the time of
# two reference engines answering the same three counts with hand-written SQL over the
# same rows, exported from Corral's own database: DuckDB (in-process, in-memory database,
# its default threads) and chDB (ClickHouse in-process, MergeTree tables laid out for
# ClickHouse, kept on tmpfs, its default settings but one). The counts of Corral and of each
# reference engine must be equal for every segment with absolute dates.
#
# Usage: bash bench/eval.sh               (as root on Debian; installs python3,
#                                          python3-venv, sqlite3, curl; duckdb and chdb
#                                          from PyPI into bench/.venv)
# Knobs (environment):
#   SIZE=small       100,000 subscribers and 1,000,000 events (default)
#   SIZE=large       1,000,000 subscribers and 10,000,000 events
#   SEED=42          the generator's seed
#   ROUNDS=7         timed runs of each engine per segment (after one warm-up each)
#   ENGINES          the engines run, among corral, duckdb and chdb (default all three)
#   CHDB=0           skip chDB (drops it from ENGINES)
#   DUCKDB_ONLY=1    DuckDB alone: ENGINES=duckdb (loading, every query, the table)
#   FRESH=1          regenerate and re-import even when the work dir is complete
#   WORK_DIR=PATH    the work dir (default bench/.data/<size>): database, site, CSV
#   DUCKDB_SPEC      what pip installs into the venv (default: duckdb, the newest)
#   CHDB_SPEC        what pip installs into the venv for chDB (default: chdb==4.4.0,
#                    with the versions of its dependencies pinned by
#                    bench/eval-chdb-pins.txt)
#   VENV=PATH        the venv (default bench/.venv)
#   SKIP_BUILD=1     use the existing target/release/corral, skip `cargo build --release`
#   CORRAL_BIN=PATH  benchmark another corral binary (combine with SKIP_BUILD=1)
#   CORRAL_PORT      fixed port for `corral serve` (default: a free port)
#   KEEP_TMP=1       keep the run's temp dir (server log, results JSON)
#   DATABASE=postgres  Corral on PostgreSQL too, beside Corral on SQLite (default: sqlite)
#
# The work dir is reused when its marker says it holds the same sizes and seed: a second
# run skips generation, import and export (the large import takes minutes).
#
# Output: a Markdown table on stdout; it, the machine, the commit and the raw figures are
# appended to bench/results/eval-<size>-<timestamp>.txt. Exits 3 when Corral and a
# reference engine (without Corral: DuckDB and chDB) disagree on the counts of an
# absolute-date segment (after printing the table), non-zero when any step fails.
#
# DATABASE=postgres also imports the same audience (`corral gen` again, same seed) into a
# throwaway PostgreSQL cluster (scripts/postgres.sh) and runs a second `corral serve` on
# it: it answers the same suite in the same rounds, its counts are checked against
# SQLite's, and the table gives its times and their ratio to SQLite's. Both servers then
# start with an empty checkpoint dir of the run's own, so that the first load (timed
# apart, before the suite) reads the whole audience from each database.
set -euo pipefail

SIZE=${SIZE:-small}
case "$SIZE" in
    small | default) SIZE=small SUBSCRIBERS=100000 EVENTS=1000000 ;;
    large) SUBSCRIBERS=1000000 EVENTS=10000000 ;;
    *) echo "SIZE must be 'small' or 'large', not '$SIZE'" >&2; exit 2 ;;
esac
SEED=${SEED:-42}
ROUNDS=${ROUNDS:-7}
DUCKDB_ONLY=${DUCKDB_ONLY:-0}
DUCKDB_SPEC=${DUCKDB_SPEC:-duckdb}
CHDB_SPEC_DEFAULT="chdb==4.4.0"
CHDB_SPEC=${CHDB_SPEC:-$CHDB_SPEC_DEFAULT}
CHDB=${CHDB:-1}
ENGINES=${ENGINES:-corral duckdb chdb}
[ "$DUCKDB_ONLY" != 1 ] || ENGINES=duckdb


ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
cd "$ROOT"
HELPER="$ROOT/bench/eval_helper.py"
bench_database
VENV=${VENV:-$ROOT/bench/.venv}
WORK=${WORK_DIR:-$ROOT/bench/.data/$SIZE}
[[ "$ROUNDS" =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a whole number of 1 or more"
PINS="$ROOT/bench/eval-chdb-pins.txt"

# The engines, once each, in their order: corral, duckdb, chdb.
RUN_CORRAL=0 RUN_DUCKDB=0 RUN_CHDB=0
for engine in ${ENGINES//,/ }; do
    case "$engine" in
        corral) RUN_CORRAL=1 ;;
        duckdb) RUN_DUCKDB=1 ;;
        chdb) RUN_CHDB=1 ;;
        *) die "ENGINES: unknown engine '$engine' (corral, duckdb, chdb)" ;;
    esac
done
[ "$CHDB" != 0 ] || RUN_CHDB=0
[ $(( RUN_CORRAL + RUN_DUCKDB + RUN_CHDB )) -gt 0 ] || die "ENGINES names no engine to run"
REFS=()
[ "$RUN_DUCKDB" = 0 ] || REFS+=(duckdb)
[ "$RUN_CHDB" = 0 ] || REFS+=(chdb)
ENGINES="$([ "$RUN_CORRAL" = 0 ] || printf 'corral ')${REFS[*]}"

# --- tools -------------------------------------------------------------------------
install_missing python3 sqlite3 curl
SQLITE3=$(command -v sqlite3)

# The engines' Python packages, in a venv kept between runs: DuckDB's (its json extension
# is built into the wheel) and chDB's (chdb, the engine in chdb-core).
PY="$VENV/bin/python"
# (Debian's python3 makes venvs only with python3-venv: venv_make installs it when missing.)
[ -x "$PY" ] || { say "creating the venv $VENV"; venv_make "$VENV"; }
# True when the venv has every requirement given: NAME installed, NAME==VERSION at that
# version (other forms of requirement are taken as met when NAME is installed).
venv_has() {
    "$PY" - "$@" <<'PYEOF' 2>/dev/null
import re, sys
from importlib.metadata import PackageNotFoundError, version
for spec in sys.argv[1:]:
    found = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*(==\s*([^\s;,]+)\s*$)?", spec)
    if not found:
        continue
    try:
        have = version(found.group(1))
    except PackageNotFoundError:
        sys.exit(1)
    if found.group(3) and have != found.group(3):
        sys.exit(1)
PYEOF
}
VERSIONS=""
if [ "$RUN_DUCKDB" = 1 ]; then
    if ! venv_has "$DUCKDB_SPEC" || ! "$PY" -c 'import duckdb' 2>/dev/null; then
        say "pip install $DUCKDB_SPEC into $VENV"
        "$PY" -m pip install --quiet "$DUCKDB_SPEC" || die "could not pip install $DUCKDB_SPEC"
    fi
    VERSIONS+="; duckdb $("$PY" -c 'import importlib.metadata as m; print(m.version("duckdb"))')"
fi
if [ "$RUN_CHDB" = 1 ]; then
    chdb_pip=("$CHDB_SPEC")
    chdb_want=("$CHDB_SPEC")
    if [ "$CHDB_SPEC" = "$CHDB_SPEC_DEFAULT" ]; then
        chdb_pip+=(-c "$PINS")
        mapfile -t chdb_want < <(grep -v '^[[:space:]]*\(#\|$\)' "$PINS")
    fi
    if ! venv_has "${chdb_want[@]}"; then
        say "pip install ${chdb_pip[*]} into $VENV"
        "$PY" -m pip install --quiet "${chdb_pip[@]}" || die "could not pip install $CHDB_SPEC"
    fi
    VERSIONS+="; $("$PY" -c 'import importlib.metadata as m; print("chdb", m.version("chdb"), "(chdb-core", m.version("chdb-core") + ")")')"
fi

# --- build -------------------------------------------------------------------------
bench_build

# --- temp dir and clean-up -----------------------------------------------------------
CORRAL_PID=
PG_SERVE_PID=
bench_tmp eval "CORRAL_PID PG_SERVE_PID" serve.log
# chDB's database, on tmpfs when there is one (in memory, as DuckDB's), removed at exit.
CHDB_DIR=
eval_cleanup() {
    local rc=$?
    # Without errexit here: under it, the subshell that hands rc on would end the trap
    # before bench_cleanup stops the servers (and the cluster) of a failed run.
    set +e
    [ -z "$CHDB_DIR" ] || rm -rf "$CHDB_DIR"
    (exit "$rc")
    bench_cleanup
}
trap eval_cleanup EXIT
if [ "$RUN_CHDB" = 1 ]; then
    if [ -d /dev/shm ] && [ -w /dev/shm ]; then
        CHDB_DIR=$(mktemp -d /dev/shm/corral-eval-chdb.XXXXXX)
    else
        CHDB_DIR="$TMP/chdb"
        mkdir "$CHDB_DIR"
    fi
fi

bench_results "eval-$SIZE"
RAM=$(awk '/^MemTotal/ { printf "%.0f GiB RAM", $2/1048576 }' /proc/meminfo)
log "# Corral evaluation benchmark, $STAMP"
log "commit: $COMMIT"
log "machine: $NPROC CPUs, ${CPU:-unknown CPU}, $(uname -sr), $RAM"
log "engines: $ENGINES"
log "corral: $CORRAL$VERSIONS ($VENV); sqlite3 $("$SQLITE3" --version | cut -d' ' -f1)"
log ""

# --- 1. the work dir: data, Corral's database, the CSV export -----------------------------
# Everything runs from the temp dir, so no corral.toml of the working directory is
# picked up.
bench_work_dir
read -r SITE PK SK < <(python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
print(s["site_uuid"], s["publishable_key"], s["secret_key"])' "$WORK/site.json")
log "CSV: $(cd "$CSV" && for f in subscribers.csv subscriber_tags.csv events.csv; do
    printf '%s %s bytes; ' "$f" "$(stat -c %s "$f")"; done)"
log ""

# --- 1b. PostgreSQL (DATABASE=postgres): the same audience, imported by Corral ---------------
# The work dir keeps no JSON Lines: `corral gen` writes the same bytes again from the same
# seed. The site is PostgreSQL's own (other keys); the counts are compared with SQLite's.
PG_IMPORT=""
if [ "$DATABASE" = postgres ] && [ "$RUN_CORRAL" = 1 ]; then
    bench_postgres_start
    log "PostgreSQL $PG_VERSION (scripts/postgres.sh: fsync off, synchronous_commit on, shared_buffers 256MB)"
    bench_pg_db corral_eval
    PG_EVAL_URL=$PG_DB_URL
    step "corral gen (again, for PostgreSQL)" \
        "$CORRAL" gen --subscribers "$SUBSCRIBERS" --events "$EVENTS" --seed "$SEED" --out "$TMP/data"
    "$CORRAL" site create Bench --json --database "$PG_EVAL_URL" >"$TMP/site-pg.json" \
        || die "corral site create on PostgreSQL failed: $(cat "$TMP/site-pg.json")"
    read -r PG_SITE PG_PK PG_SK < <(python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
print(s["site_uuid"], s["publishable_key"], s["secret_key"])' "$TMP/site-pg.json")
    t0=$SECONDS
    step "corral import subscribers (PostgreSQL)" \
        "$CORRAL" import subscribers --site "$PG_SITE" "$TMP/data/subscribers.jsonl" --database "$PG_EVAL_URL"
    t1=$SECONDS
    step "corral import events (PostgreSQL)" \
        "$CORRAL" import events --site "$PG_SITE" "$TMP/data/events.jsonl" --database "$PG_EVAL_URL"
    grep -q "^imported $EVENTS events, skipped 0 bad lines" "$TMP/step.out" \
        || die "PostgreSQL: expected 'imported $EVENTS events, skipped 0 bad lines', got: $(tail -n 5 "$TMP/step.out")"
    PG_IMPORT="subscribers in $(( t1 - t0 )) s, events in $(( SECONDS - t1 )) s"
    rm -rf "$TMP/data"
    bench_psql "$PG_EVAL_URL" "VACUUM ANALYZE" >/dev/null
    log "PostgreSQL import: $PG_IMPORT; database $(bench_psql "$PG_EVAL_URL" "SELECT pg_size_pretty(pg_database_size(current_database()))")"
fi

# --- 2. Corral's server ------------------------------------------------------------------
corral_args=()
SERVE_RSS_KB="?"
SERVE_SPLIT="?"
if [ "$RUN_CORRAL" = 0 ]; then
    say "ENGINES=$ENGINES: not starting Corral"
    log "Corral not run (ENGINES=$ENGINES)"
else
    CORRAL_PORT=${CORRAL_PORT:-$(free_port)}
    URL="http://127.0.0.1:$CORRAL_PORT"
    say "starting corral serve on 127.0.0.1:$CORRAL_PORT"
    # Rate limits off; a request timeout of 10 minutes, so that the first stats call,
    # which loads the audience (many seconds at SIZE=large), is not cut off at 30 s.
    # With DATABASE=postgres, both servers start from empty checkpoint dirs of the run's
    # own, so that their first loads are alike: a whole read of the database.
    checkpoint_args=()
    [ "$DATABASE" != postgres ] || checkpoint_args=(--checkpoint-dir "$TMP/checkpoints-sqlite")
    "$CORRAL" serve --database "sqlite://$DB" --listen "127.0.0.1:$CORRAL_PORT" \
        --rate-limit-per-minute 0 --stats-rate-limit-per-hour 0 --request-timeout-secs 600 \
        "${checkpoint_args[@]}" --log-level warn >"$TMP/serve.log" 2>&1 &
    CORRAL_PID=$!
    # Start-up runs the database's pending migrations first: on a reused work dir made by
    # an older build, that can take minutes at SIZE=large (an index over 10M events).
    STARTED=$SECONDS
    until [ "$(curl -s -o /dev/null -w '%{http_code}' "$URL/healthz" || true)" = 200 ]; do
        kill -0 "$CORRAL_PID" 2>/dev/null || die "corral serve exited during start-up"
        [ $(( SECONDS - STARTED )) -lt 900 ] || die "corral serve did not answer 200 on /healthz within 15 minutes"
        sleep 0.2
    done
    [ $(( SECONDS - STARTED )) -lt 5 ] || say "corral serve took $(( SECONDS - STARTED )) s to start (migrations)"
    corral_args=(--corral "$URL" "$SITE" "$PK" "$SK")
    if [ "$DATABASE" = postgres ]; then
        PG_PORT=$(free_port)
        say "starting corral serve on PostgreSQL, 127.0.0.1:$PG_PORT"
        "$CORRAL" serve --database "$PG_EVAL_URL" --listen "127.0.0.1:$PG_PORT" \
            --rate-limit-per-minute 0 --stats-rate-limit-per-hour 0 --request-timeout-secs 600 \
            --checkpoint-dir "$TMP/checkpoints-pg" --log-level warn >"$TMP/serve-pg.log" 2>&1 &
        PG_SERVE_PID=$!
        until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PG_PORT/readyz" || true)" = 200 ]; do
            kill -0 "$PG_SERVE_PID" 2>/dev/null || die "corral serve on PostgreSQL exited during start-up: $(tail -n 5 "$TMP/serve-pg.log")"
            sleep 0.2
        done
        corral_args+=(--postgres "http://127.0.0.1:$PG_PORT" "$PG_SITE" "$PG_PK" "$PG_SK")
    fi
fi

# --- 3. the measurements -------------------------------------------------------------------
# One Python process: loads DuckDB and chDB (not timed), creates the segments, times every
# engine.
say "measuring ($ENGINES): $ROUNDS rounds a segment"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
chdb_args=()
[ -z "$CHDB_DIR" ] || chdb_args=(--chdb-dir "$CHDB_DIR")
REFS_CSV=$(IFS=,; echo "${REFS[*]}")
if ! "$PY" "$HELPER" run --csv "$CSV" --out "$TMP/run.json" --rounds "$ROUNDS" \
    --engines "$REFS_CSV" "${chdb_args[@]}" "${corral_args[@]}" 2>&1 | tee "$TMP/helper.log" >&2; then
    cat "$TMP/helper.log" >>"$RESULTS"
    die "the measurements failed (see above)"
fi
{ echo "## measurements (per segment: counts and times)"; cat "$TMP/helper.log"; echo; } >>"$RESULTS"
if [ -n "$CORRAL_PID" ]; then
    SERVE_RSS_KB=$(awk '/^VmHWM:/ { print $2 }' "/proc/$CORRAL_PID/status" 2>/dev/null || echo "?")
    # The peak counts pages of the database file SQLite maps into memory
    # (mmap), which the kernel can drop at will; the split below is taken
    # after the runs: RssAnon is Corral's own memory (the audience snapshot).
    SERVE_SPLIT=$(awk '/^RssAnon:|^RssFile:/ { printf "%s %d MiB  ", $1, $2 / 1024 }' "/proc/$CORRAL_PID/status" 2>/dev/null || echo "?")
    kill "$CORRAL_PID" 2>/dev/null || true
    wait "$CORRAL_PID" 2>/dev/null || true
    CORRAL_PID=
fi
PG_SPLIT=""
if [ -n "$PG_SERVE_PID" ]; then
    PG_SPLIT=$(awk '/^VmHWM:|^RssAnon:|^RssFile:/ { printf "%s %d MiB  ", $1, $2 / 1024 }' "/proc/$PG_SERVE_PID/status" 2>/dev/null || echo "?")
    kill "$PG_SERVE_PID" 2>/dev/null || true
    wait "$PG_SERVE_PID" 2>/dev/null || true
    PG_SERVE_PID=
fi
[ -z "$CHDB_DIR" ] || { rm -rf "$CHDB_DIR"; CHDB_DIR=; }

# --- 4. report -----------------------------------------------------------------------------
TABLE_RC=0
TABLE=$("$PY" "$HELPER" table "$TMP/run.json" --serve-rss-kib "$SERVE_RSS_KB") || TABLE_RC=$?
[ "$TABLE_RC" = 0 ] || [ "$TABLE_RC" = 3 ] || die "could not make the table (exit $TABLE_RC)"
REPORT=$(cat <<EOF

## Corral evaluation benchmark ($(date -u '+%Y-%m-%d %H:%M UTC'))

- commit: $COMMIT
- machine: $NPROC CPUs, ${CPU:-unknown CPU}, $RAM
- data: SIZE=$SIZE, \`corral gen --subscribers $SUBSCRIBERS --events $EVENTS --seed $SEED\` imported into SQLite ($([ "$REUSED" = 1 ] && echo "work dir reused" || echo "generated by this run")); the reference engines load the same rows from Corral's database (CSV export of the sqlite3 shell)
- engines: $ENGINES; load average (1, 5, 15 min) before the measurements: $LOAD_BEFORE

$TABLE
EOF
)
[ "$RUN_CORRAL" = 0 ] || REPORT+=$'\n'"- \`corral serve\` resident memory after the runs: $SERVE_SPLIT"
[ -z "$PG_SPLIT" ] || REPORT+=$'\n'"- \`corral serve\` on PostgreSQL $PG_VERSION (throwaway cluster, fsync off), resident memory after the runs: $PG_SPLIT; the same audience imported by \`corral import\`: $PG_IMPORT"
echo "$REPORT"
{ echo "$REPORT"; echo; echo "## raw figures (seconds)"; cat "$TMP/run.json"; echo; } >>"$RESULTS"
say "results: $RESULTS"
if [ "$TABLE_RC" = 3 ]; then
    echo "FAIL: the engines disagree on the counts of some segment (see MISMATCHES above)" >&2
    exit 3
fi
