#!/usr/bin/env bash
# Load benchmark: how long a site's audience takes to become answerable, with the user's
# defaults (the 30 s request timeout, rate limits on), as a client that honours 503s sees it.
#
# One SQLite database holds two sites: a big one (SUBSCRIBERS, EVENTS, from `corral gen`)
# and a small neighbour of 100 subscribers and 700 events, written before and after the big
# one so that its rows lie on both sides of the big site's. In each round, on a fresh copy
# of that database, `corral serve` is started with an empty checkpoint directory and:
#   1. the small site's first answer is asked for (its first read beside the big one);
#   2. the big site's first answer (the cold read, from the database);
#   3. once its checkpoint is written, the server is stopped (SIGTERM) and started again:
#      the big site's first answer from the checkpoint and the log since it;
#   4. CATCH_UP_EVENTS more events of the big site's subscribers are imported with
#      `corral import events` (another process) while it is resident: the first answer
#      after that, which catches up from the change log.
# An answer is a preview of `{}` (load_helper.py): on a 503 the client waits for the
# answer's Retry-After (at most 1 s, so the figure is the read's) and asks again, for at
# most GIVE_UP seconds. Beside each client figure, the server's own log says how long the
# read took. With BASELINE_BIN (an earlier corral), the same rounds run with it in the same
# run, on copies of the same database, and the report gives each figure's ratio.
#
# Usage: bash bench/load.sh              (as root on Debian; installs python3, sqlite3)
# Knobs (environment):
#   SIZE=large       1,000,000 subscribers and 10,000,000 events (default)
#   SIZE=xlarge      10,000,000 subscribers and 100,000,000 events (about 30 GB of disk
#                    for the database and one copy; an hour or more)
#   SIZE=small       100,000 subscribers and 1,000,000 events
#   SEED=42          the generator's seed
#   ROUNDS           rounds of the whole sequence per binary (default 3; 1 at xlarge)
#   CATCH_UP_EVENTS=1000000  events imported in step 4
#   GIVE_UP=900      seconds a client keeps asking before it reports "never answered"
#   BASELINE_BIN=PATH  an earlier corral to measure side by side (it imports the database,
#                    so that both can open it; the newer build migrates its own copies)
#   WORK_DIR=PATH    the work dir (default bench/.data/load-<size>)
#   SKIP_BUILD=1, CORRAL_BIN=PATH, KEEP_TMP=1   as in the other benchmarks
#
# Output: a Markdown table on stdout, appended with the raw figures to
# bench/results/load-<size>-<timestamp>.txt.
set -euo pipefail

SIZE=${SIZE:-large}
case "$SIZE" in
    small) SUBSCRIBERS=100000 EVENTS=1000000 DEFAULT_ROUNDS=3 ;;
    large) SUBSCRIBERS=1000000 EVENTS=10000000 DEFAULT_ROUNDS=3 ;;
    xlarge) SUBSCRIBERS=10000000 EVENTS=100000000 DEFAULT_ROUNDS=1 ;;
    *) echo "SIZE must be 'small', 'large' or 'xlarge', not '$SIZE'" >&2; exit 2 ;;
esac
SEED=${SEED:-42}
ROUNDS=${ROUNDS:-$DEFAULT_ROUNDS}
CATCH_UP_EVENTS=${CATCH_UP_EVENTS:-1000000}
GIVE_UP=${GIVE_UP:-900}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
cd "$ROOT"
HELPER="$ROOT/bench/load_helper.py"
WORK=${WORK_DIR:-$ROOT/bench/.data/load-$SIZE}
for knob in ROUNDS CATCH_UP_EVENTS GIVE_UP; do
    [[ "${!knob}" =~ ^[1-9][0-9]*$ ]] || die "$knob must be a whole number of 1 or more"
done

install_missing python3 sqlite3 curl
SQLITE3=$(command -v sqlite3)

bench_build
CORRAL_PID=
bench_tmp load "CORRAL_PID" serve.log
bench_results "load-$SIZE"
if [ -n "${BASELINE_BIN:-}" ]; then
    [ -x "$BASELINE_BIN" ] || die "BASELINE_BIN=$BASELINE_BIN is not an executable"
fi
IMPORTER=${BASELINE_BIN:-$CORRAL}
RAM=$(awk '/^MemTotal/ { printf "%.0f GiB RAM", $2/1048576 }' /proc/meminfo)
log "# Corral load benchmark, $STAMP"
log "commit: $COMMIT"
log "machine: $NPROC CPUs, ${CPU:-unknown CPU}, $(uname -sr), $RAM"
log "size: $SIZE ($SUBSCRIBERS subscribers, $EVENTS events), seed $SEED, $ROUNDS round(s), catch-up of $CATCH_UP_EVENTS events"
log ""

# --- the work dir: the database with both sites, and the events of the catch-up ---------
WANT="subscribers=$SUBSCRIBERS events=$EVENTS seed=$SEED catch_up=$CATCH_UP_EVENTS importer=$("$IMPORTER" --version)"
DB="$WORK/corral.db"
if [ "${FRESH:-0}" != 1 ] && [ -f "$WORK/.complete" ] && [ "$(head -n 1 "$WORK/.complete")" = "$WANT" ]; then
    say "reusing $WORK ($WANT; FRESH=1 makes it again)"
    log "work dir: $WORK, reused"
else
    if [ -e "$WORK" ] && [ ! -f "$WORK/.load-work-dir" ] && [ -n "$(ls -A "$WORK")" ]; then
        die "$WORK exists and is not this benchmark's work dir: choose another WORK_DIR"
    fi
    rm -rf "$WORK"
    mkdir -p "$WORK"
    touch "$WORK/.load-work-dir"
    log "work dir: $WORK, made by this run with $("$IMPORTER" --version)"
    cd "$TMP"
    step "corral gen (big site)" \
        "$IMPORTER" gen --subscribers "$SUBSCRIBERS" --events "$EVENTS" --seed "$SEED" --out "$WORK/big"
    step "corral gen (small site)" \
        "$IMPORTER" gen --subscribers 100 --events 700 --seed 7 --out "$WORK/small"
    # The same seed and subscribers: events of the big site's own subscribers.
    step "corral gen (events of the catch-up)" \
        "$IMPORTER" gen --subscribers "$SUBSCRIBERS" --events "$CATCH_UP_EVENTS" --seed "$SEED" --out "$WORK/catch-up"
    rm -f "$WORK/catch-up/subscribers.jsonl"
    for name in small big; do
        "$IMPORTER" site create "$name" --json --database "sqlite://$DB" >"$WORK/$name.json" \
            || die "corral site create failed: $(cat "$WORK/$name.json")"
    done
    uuid() { python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["site_uuid"])' "$1"; }
    SMALL=$(uuid "$WORK/small.json")
    BIG=$(uuid "$WORK/big.json")
    head -n 350 "$WORK/small/events.jsonl" >"$WORK/small/events-1.jsonl"
    tail -n +351 "$WORK/small/events.jsonl" >"$WORK/small/events-2.jsonl"
    step "import: the small site's subscribers and half its events" bash -c "
        '$IMPORTER' import subscribers --site $SMALL '$WORK/small/subscribers.jsonl' --database 'sqlite://$DB' &&
        '$IMPORTER' import events --site $SMALL '$WORK/small/events-1.jsonl' --database 'sqlite://$DB'"
    step "import: the big site (minutes at SIZE=large, an hour at xlarge)" bash -c "
        '$IMPORTER' import subscribers --site $BIG '$WORK/big/subscribers.jsonl' --database 'sqlite://$DB' &&
        '$IMPORTER' import events --site $BIG '$WORK/big/events.jsonl' --database 'sqlite://$DB'"
    step "import: the rest of the small site's events" \
        "$IMPORTER" import events --site "$SMALL" "$WORK/small/events-2.jsonl" --database "sqlite://$DB"
    "$SQLITE3" "$DB" 'PRAGMA wal_checkpoint(TRUNCATE);' >/dev/null
    rm -rf "$WORK/big" "$WORK/small"
    printf '%s\nmade %s\n' "$WANT" "$(date -u '+%Y-%m-%d %H:%M UTC')" >"$WORK/.complete"
fi
site_id() { "$SQLITE3" "$DB" "SELECT id FROM sites WHERE uuid = '$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["site_uuid"])' "$1")'"; }
SMALL_ID=$(site_id "$WORK/small.json")
BIG_ID=$(site_id "$WORK/big.json")
BIG=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["site_uuid"])' "$WORK/big.json")
log "database: $(du -h "$DB" | cut -f1) ($DB)"


# Starts `$1 serve` on $TMP/run.db with checkpoints in $TMP/ck, the user's defaults
# otherwise; waits (up to GIVE_UP) for /healthz; sets CORRAL_PID, BASE and START_SECONDS
# (how long until it answered).
start_corral() { # binary
    PORT=$(free_port)
    BASE="http://127.0.0.1:$PORT"
    local began
    began=$(date +%s.%N)
    "$1" serve --database "sqlite://$TMP/run.db" --listen "127.0.0.1:$PORT" \
        --checkpoint-dir "$TMP/ck" --log-format json --log-level info >>"$TMP/serve.log" 2>&1 &
    CORRAL_PID=$!
    for _ in $(seq 1 $((GIVE_UP * 10))); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/healthz" || true)" = 200 ] && break
        kill -0 "$CORRAL_PID" 2>/dev/null || die "corral serve exited during start-up: $(tail -n 5 "$TMP/serve.log")"
        sleep 0.1
    done
    START_SECONDS=$(python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 2))" "$began" "$(date +%s.%N)")
}

stop_corral() {
    kill -TERM "$CORRAL_PID"
    wait "$CORRAL_PID" || true
    CORRAL_PID=
}

# The `ms` of the last line of the log since byte $2 whose message is $3 for site $4.
log_ms() { # log offset message site_id
    python3 - "$@" <<'PY'
import json, sys
path, offset, message, site = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
ms = None
with open(path, "rb") as log:
    log.seek(offset)
    for line in log:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        # Fields sit at the top level (flattened) or under "fields".
        fields = entry.get("fields", entry)
        if fields.get("message") == message and fields.get("site_id") == site:
            ms = fields.get("ms")
print("null" if ms is None else ms)
PY
}

# Waits (up to GIVE_UP) until the log since $1 says the big site's checkpoint is written.
wait_checkpoint() { # offset
    for _ in $(seq 1 $((GIVE_UP * 10))); do
        [ "$(log_ms "$TMP/serve.log" "$1" "checkpoint written" "$BIG_ID")" != null ] && return 0
        sleep 0.1
    done
    return 1
}

first_answer() { # site json
    python3 "$HELPER" first "$BASE" "$1" "$GIVE_UP"
}

# One round with one binary: appends one JSON object to $TMP/figures.jsonl.
measure() { # label binary round
    local label=$1 bin=$2 round=$3 offset start small big small_ms cold_ms checkpoint_ms ckpt import catch
    say "$label, round $round: copying the database"
    bench_copy_db "$DB" "$TMP/run.db"
    rm -rf "$TMP/ck"
    offset=$(stat -c %s "$TMP/serve.log" 2>/dev/null || echo 0)
    start_corral "$bin"
    start=$START_SECONDS
    say "$label, round $round: the small site's first answer, then the big site's"
    small=$(first_answer "$WORK/small.json")
    big=$(first_answer "$WORK/big.json")
    small_ms=$(log_ms "$TMP/serve.log" "$offset" "audience snapshot read from the database" "$SMALL_ID")
    cold_ms=$(log_ms "$TMP/serve.log" "$offset" "audience snapshot read from the database" "$BIG_ID")
    checkpoint_ms=null
    ckpt='{"seconds": null}'
    catch='{"seconds": null}'
    import=null
    if [ "$(echo "$big" | python3 -c 'import json, sys; print(json.load(sys.stdin)["seconds"])')" != None ] \
        && wait_checkpoint "$offset"; then
        checkpoint_ms=$(log_ms "$TMP/serve.log" "$offset" "checkpoint written" "$BIG_ID")
        stop_corral
        offset=$(stat -c %s "$TMP/serve.log")
        start_corral "$bin"
        say "$label, round $round: the big site's first answer from its checkpoint"
        ckpt=$(first_answer "$WORK/big.json")
        say "$label, round $round: corral import of $CATCH_UP_EVENTS events, then the next answer"
        local began
        began=$(date +%s.%N)
        "$bin" import events --site "$BIG" "$WORK/catch-up/events.jsonl" --database "sqlite://$TMP/run.db" \
            >"$TMP/import.out" 2>&1 || die "the import failed: $(tail -n 5 "$TMP/import.out")"
        import=$(python3 -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 2))" "$began" "$(date +%s.%N)")
        catch=$(first_answer "$WORK/big.json")
    fi
    stop_corral
    python3 - "$label" "$round" "$start" "$small" "$big" "$checkpoint_ms" "$ckpt" "$import" "$catch" \
        "$small_ms" "$cold_ms" \
        "$(log_ms "$TMP/serve.log" "$offset" "audience snapshot read from its checkpoint and the change log" "$BIG_ID")" \
        >>"$TMP/figures.jsonl" <<'PY'
import json, sys
(label, round_, start, small, big, checkpoint_ms, ckpt, import_, catch, small_ms, cold_ms,
 ckpt_ms) = sys.argv[1:]
print(json.dumps({
    "binary": label, "round": int(round_), "start_seconds": float(start),
    "small": json.loads(small), "big": json.loads(big),
    "checkpoint_written_ms": json.loads(checkpoint_ms), "from_checkpoint": json.loads(ckpt),
    "import_seconds": json.loads(import_), "catch_up": json.loads(catch),
    "small_read_ms": json.loads(small_ms), "cold_read_ms": json.loads(cold_ms),
    "checkpoint_read_ms": json.loads(ckpt_ms),
}))
PY
    rm -f "$TMP/run.db" "$TMP/run.db-wal" "$TMP/run.db-shm"
}

: >"$TMP/figures.jsonl"
for round in $(seq 1 "$ROUNDS"); do
    if [ -n "${BASELINE_BIN:-}" ]; then
        measure baseline "$BASELINE_BIN" "$round"
    fi
    measure build "$CORRAL" "$round"
done
# Binaries named by version and the start of their SHA-256: two builds share a version.
describe() { echo "$("$1" --version) ($(sha256sum "$1" | cut -c1-12))"; }
python3 - "$TMP/figures.jsonl" "${BASELINE_BIN:+$(describe "$BASELINE_BIN")}" "$(describe "$CORRAL")" \
    "$CATCH_UP_EVENTS" >"$TMP/table.md" <<'PY'
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
baseline_version, build_version, catch_up = sys.argv[2], sys.argv[3], int(sys.argv[4])
labels = [l for l in ("baseline", "build") if any(r["binary"] == l for r in rows)]

def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None

def figure(label, get):
    return median([get(r) for r in rows if r["binary"] == label])

def secs(v):
    if v is None:
        return "never"
    return f"{v * 1000:.0f} ms" if v < 1 else f"{v:.2f} s"

def ms(key):
    return lambda r: None if r[key] is None else r[key] / 1000

measures = [
    ("first start of the server (migrations included)", lambda r: r["start_seconds"]),
    ("small site (100 subscribers): first answer beside the big one", lambda r: r["small"]["seconds"]),
    ("small site: its read, by the server's log", ms("small_read_ms")),
    ("big site, cold: first answer (client, honouring 503s)", lambda r: r["big"]["seconds"]),
    ("big site, cold: 503s answered before it", lambda r: r["big"]["unavailable"]),
    ("big site, cold: its read, by the server's log", ms("cold_read_ms")),
    ("big site: checkpoint written after the read", ms("checkpoint_written_ms")),
    ("big site, after a restart: first answer from the checkpoint", lambda r: r["from_checkpoint"]["seconds"]),
    ("big site: checkpoint and log since, by the server's log", ms("checkpoint_read_ms")),
    (f"corral import of {catch_up:,} events into the resident site", lambda r: r["import_seconds"]),
    ("big site: first answer after that import (catch-up)", lambda r: r["catch_up"]["seconds"]),
]
header = "| measure | " + " | ".join(labels) + (" | build / baseline |" if len(labels) == 2 else " |")
print(header)
print("|---|" + "---:|" * (len(labels) + (1 if len(labels) == 2 else 0)))
for name, get in measures:
    values = [figure(l, get) for l in labels]
    if name.endswith("503s answered before it"):
        cells = ["-" if v is None else f"{v:.0f}" for v in values]
    else:
        cells = [secs(v) for v in values]
    ratio = ""
    if len(labels) == 2:
        a, b = values
        ratio = " | " + ("-" if a in (None, 0) or b is None else f"{b / a:.2f}")
    print(f"| {name} | " + " | ".join(cells) + ratio + " |")
print()
print("binaries: " + ", ".join(f"{l} = {v}" for l, v in zip(labels, [baseline_version, build_version][-len(labels):])))
messages = {r["big"]["message"] for r in rows if r["big"]["message"]}
for m in sorted(messages):
    print(f"- a 503 said: {m}")
PY
cat "$TMP/table.md"
{
    echo "## results"
    cat "$TMP/table.md"
    echo
    echo "## figures (one line a round)"
    cat "$TMP/figures.jsonl"
} >>"$RESULTS"
say "results appended to $RESULTS"
