# shellcheck shell=bash
# shellcheck disable=SC2034  # the variables set here are the scripts' to use
# What every bench script does the same way, sourced by each (bash). Before
# sourcing, a script sets ROOT, and after it calls, in this order:
#   bench_build                 build Corral unless SKIP_BUILD=1; sets CORRAL
#   bench_tmp NAME PIDVARS LOG  a temp dir in TMP; at exit, stops the processes
#                               whose pids the variables named in PIDVARS hold,
#                               shows the end of $TMP/LOG if the run failed, and
#                               removes TMP unless it failed or KEEP_TMP=1
#   bench_results NAME          RESULTS file under bench/results, STAMP, COMMIT
#                               (noting uncommitted changes outside bench/),
#                               CPU and NPROC
#   bench_work_dir              the work dir of a size, made or reused (see below)
# and, once RESULTS is set: log LINE (to the results file), step LABEL COMMAND... (a
# command's output into the results file, failing the run with its last lines), and
# bench_copy_db SOURCE DEST (a work dir's database, with its write-ahead log).
#
# PostgreSQL (DATABASE=postgres): bench_database checks DATABASE (sqlite, the default, or
# postgres); after bench_tmp, bench_postgres_start starts a throwaway cluster
# (scripts/postgres.sh) that bench_cleanup stops and removes at exit, whatever happens;
# bench_pg_db NAME then creates a database in it and sets PG_DB_URL; bench_psql URL SQL
# runs one statement and prints its rows unaligned.
#
# The helpers shared with the scripts of scripts/ are sourced from scripts/lib/: install.sh
# (install_missing SPEC...: the Debian packages whose command is missing, as root or through
# sudo, one apt-get update a run; venv_make DIR) and serve.sh (free_port: a free port of
# 127.0.0.1).

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
# What install.sh announces, in the benchmarks' voice.
install_note() { say "installing $*"; }
# shellcheck source=scripts/lib/install.sh
source "$ROOT/scripts/lib/install.sh"
# shellcheck source=scripts/lib/serve.sh
source "$ROOT/scripts/lib/serve.sh"
# A line of the results file (bench_results sets RESULTS).
log() { printf '%s\n' "$*" >>"$RESULTS"; }

# Runs a step, its output into the results file; on failure shows its last lines. The
# results file gets the command line, or only the label with QUIET=1 (keys in it).
step() {
    local label=$1
    shift
    say "$label"
    if [ "${QUIET:-0}" = 1 ]; then
        echo "## $label" >>"$RESULTS"
    else
        echo "## \$ $*" >>"$RESULTS"
    fi
    if ! "$@" >"$TMP/step.out" 2>&1; then
        cat "$TMP/step.out" >>"$RESULTS"
        die "$label failed: $(tail -n 20 "$TMP/step.out")"
    fi
    cat "$TMP/step.out" >>"$RESULTS"
    echo >>"$RESULTS"
}

bench_build() {
    if [ "${SKIP_BUILD:-0}" = 1 ]; then
        say "SKIP_BUILD=1: not building"
    else
        command -v cargo >/dev/null || die "cargo not found: install Rust (rustup.rs) or set SKIP_BUILD=1"
        say "cargo build --release"
        cargo build --release
    fi
    CORRAL=${CORRAL_BIN:-$ROOT/target/release/corral}
    [ -x "$CORRAL" ] || die "$CORRAL not found (build it, or unset SKIP_BUILD)"
}

bench_tmp() {
    TMP=$(mktemp -d "/tmp/corral-$1-bench.XXXXXX")
    BENCH_PID_VARS=$2
    BENCH_LOG=$3
    trap bench_cleanup EXIT
    trap 'exit 130' INT TERM
}

bench_cleanup() {
    local rc=$? var pid
    for var in $BENCH_PID_VARS; do
        pid=${!var:-}
        [ -z "$pid" ] || kill "$pid" 2>/dev/null || true
    done
    for var in $BENCH_PID_VARS; do
        pid=${!var:-}
        [ -z "$pid" ] || wait "$pid" 2>/dev/null || true
    done
    # The cluster goes once the servers using it are gone.
    if [ "${BENCH_PG:-0}" = 1 ]; then
        pg_throwaway_stop >/dev/null 2>&1 || true
    fi
    if [ "$rc" -ne 0 ] && [ -s "$TMP/$BENCH_LOG" ]; then
        echo "--- last lines of the Corral log ($TMP/$BENCH_LOG) ---" >&2
        tail -n 20 "$TMP/$BENCH_LOG" >&2 || true
    fi
    if [ "${KEEP_TMP:-0}" = 1 ] || [ "$rc" -ne 0 ]; then
        echo "temp dir kept: $TMP" >&2
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}

bench_results() {
    mkdir -p "$ROOT/bench/results"
    STAMP=$(date -u +%Y%m%dT%H%M%SZ)
    RESULTS="$ROOT/bench/results/$1-$STAMP.txt"
    COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo "no-commit")
    if [ -n "$(git -C "$ROOT" status --porcelain -- . ':!bench' 2>/dev/null)" ]; then
        COMMIT="$COMMIT (with uncommitted changes outside bench/)"
    fi
    CPU=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
    NPROC=$(nproc)
}

# Copies a work dir's database to where a run serves and writes it, with the write-ahead
# log the work dir may hold (a server stopped without closing it leaves one; SQLite folds
# it in when the copy is opened); the -shm is rebuilt. Copying the file alone would lose
# what only the log holds.
bench_copy_db() { # source dest
    cp "$1" "$2"
    rm -f "$2-wal" "$2-shm"
    [ ! -s "$1-wal" ] || cp "$1-wal" "$2-wal"
}

# The work dir of a size (eval.sh's; live.sh and abuse.sh read it too): Corral's database
# with the generated audience imported, the site's keys and the CSV export of its tables.
# Made when missing, reused when its marker names the same sizes and seed (FRESH=1
# regenerates). Needs WORK, SUBSCRIBERS, EVENTS, SEED, CORRAL, SQLITE3 and TMP, and the
# caller's `step` and `log`; sets DB, CSV and REUSED, and works from "$TMP".
bench_work_dir() {
    cd "$TMP" || die "cannot cd to $TMP"
    WANT="subscribers=$SUBSCRIBERS events=$EVENTS seed=$SEED"
    MARKER="$WORK/.complete"
    DB="$WORK/corral.db"
    CSV="$WORK/csv"
    if [ "${FRESH:-0}" != 1 ] && [ -f "$MARKER" ] && [ "$(head -n 1 "$MARKER")" = "$WANT" ] \
        && [ -s "$DB" ] && [ -s "$WORK/site.json" ] && [ -s "$CSV/events.csv" ]; then
        say "reusing $WORK ($WANT; FRESH=1 regenerates)"
        log "work dir: $WORK, reused ($(tail -n +2 "$MARKER" | tr '\n' ' '))"
        REUSED=1
    else
        # Only ever delete a directory this script made (it holds .eval-work-dir).
        if [ -e "$WORK" ] && [ ! -f "$WORK/.eval-work-dir" ] && [ -n "$(ls -A "$WORK")" ]; then
            die "$WORK exists and is not this benchmark's work dir: choose another WORK_DIR"
        fi
        rm -rf "$WORK"
        mkdir -p "$WORK"
        touch "$WORK/.eval-work-dir"
        REUSED=0
        log "work dir: $WORK, made by this run"
        step "corral gen --subscribers $SUBSCRIBERS --events $EVENTS --seed $SEED" \
            "$CORRAL" gen --subscribers "$SUBSCRIBERS" --events "$EVENTS" --seed "$SEED" --out "$WORK/data"
        say "corral site create Bench"
        "$CORRAL" site create Bench --json --database "sqlite://$DB" >"$WORK/site.json" \
            || die "corral site create failed: $(cat "$WORK/site.json")"
        SITE=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["site_uuid"])' "$WORK/site.json") \
            || die "corral site create did not print one JSON object: $(cat "$WORK/site.json")"
        step "corral import subscribers" \
            "$CORRAL" import subscribers --site "$SITE" "$WORK/data/subscribers.jsonl" --database "sqlite://$DB"
        grep -q "^imported $SUBSCRIBERS subscribers, skipped 0 bad lines" "$TMP/step.out" \
            || die "expected 'imported $SUBSCRIBERS subscribers, skipped 0 bad lines', got: $(tail -n 5 "$TMP/step.out")"
        step "corral import events (minutes at SIZE=large)" \
            "$CORRAL" import events --site "$SITE" "$WORK/data/events.jsonl" --database "sqlite://$DB"
        grep -q "^imported $EVENTS events, skipped 0 bad lines" "$TMP/step.out" \
            || die "expected 'imported $EVENTS events, skipped 0 bad lines', got: $(tail -n 5 "$TMP/step.out")"
        # Everything into the .db file, an empty WAL; then the JSON Lines are not needed
        # (the generator writes the same bytes again from the same seed).
        "$SQLITE3" "$DB" 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null
        rm -rf "$WORK/data"

        # The rows Corral holds, as CSV from the sqlite3 shell, for DuckDB and chDB to load: the
        # very rows Corral evaluates. Tags by their lowercase name (name_key); details and fields
        # as the JSON text Corral stores.
        say "exporting Corral's tables to CSV (sqlite3 shell)"
        SITE_ID=$("$SQLITE3" "$DB" "SELECT id FROM sites WHERE uuid = '$SITE'")
        [ -n "$SITE_ID" ] || die "no site $SITE in $DB"
        mkdir -p "$CSV"
        export_csv() { # file, SQL
            "$SQLITE3" -bail -csv -header "$DB" "$2" >"$CSV/$1" || die "sqlite3 could not export $1"
        }
        export_csv subscribers.csv "SELECT id, email_key, fields, unsubscribed_at, created_at
            FROM subscribers WHERE site_id = $SITE_ID ORDER BY id"
        export_csv subscriber_tags.csv "SELECT st.subscriber_id, t.name_key AS tag
            FROM subscriber_tags st JOIN tags t ON t.id = st.tag_id
            WHERE t.site_id = $SITE_ID ORDER BY st.subscriber_id, t.name_key"
        export_csv events.csv "SELECT subscriber_id, type, occurred_at, details
            FROM events WHERE site_id = $SITE_ID ORDER BY id"
        printf '%s\nmade %s by %s\n' "$WANT" "$(date -u '+%Y-%m-%d %H:%M UTC')" "$("$CORRAL" --version)" >"$MARKER"
    fi
}

# Which backends a run measures: DATABASE=sqlite (the default) measures SQLite alone, as
# every script always has; DATABASE=postgres measures SQLite and PostgreSQL in the same run.
bench_database() {
    DATABASE=${DATABASE:-sqlite}
    case "$DATABASE" in
        sqlite | postgres) ;;
        *) die "DATABASE must be 'sqlite' or 'postgres', not '$DATABASE'" ;;
    esac
}

# A throwaway PostgreSQL cluster for this run (scripts/postgres.sh: installs Debian's
# postgresql when missing; fsync off, synchronous_commit on, shared_buffers 256MB), on a
# free loopback port; stopped and removed by bench_cleanup. Sets PSQL, PG_ADMIN_URL and
# PG_VERSION. Needs TMP (bench_tmp first).
bench_postgres_start() {
    # shellcheck source=scripts/postgres.sh
    source "$ROOT/scripts/postgres.sh"
    say "starting a throwaway PostgreSQL cluster"
    BENCH_PG=1
    pg_throwaway_start >"$TMP/postgres-start.out" 2>&1 \
        || die "could not start PostgreSQL: $(tail -n 20 "$TMP/postgres-start.out")"
    PSQL="$PG_THROWAWAY_BIN/psql"
    PG_ADMIN_URL=$CORRAL_TEST_POSTGRES
    PG_VERSION=$("$PG_THROWAWAY_BIN/postgres" --version | awk '{ print $3 }')
    say "$(tail -n 1 "$TMP/postgres-start.out")"
}

bench_psql() { # url sql
    "$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 -d "$1" -c "$2"
}

# A new database NAME in the run's cluster; sets PG_DB_URL (Corral's --database URL).
bench_pg_db() { # name
    bench_psql "$PG_ADMIN_URL" "CREATE DATABASE $1" >/dev/null \
        || die "could not create the PostgreSQL database $1"
    PG_DB_URL="${PG_ADMIN_URL%/*}/$1"
}
