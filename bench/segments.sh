#!/usr/bin/env bash
# Segments read benchmark: Corral against nginx serving the same bytes.
#
# Measures throughput and latency of
#   GET /api/v1/fetch/segments            (a site with 100 segments)
#   GET /api/v1/fetch/segments/{id}       (one segment of that site)
# on a release build of Corral with rate limiting off, under wrk at 64 connections on
# loopback. In the same run nginx serves the identical response bytes (same body, same
# Content-Type) as static files on the same paths, so each Corral figure is read as a
# ratio to that bound. With DATABASE=postgres, a second Corral, on a throwaway PostgreSQL
# cluster (scripts/postgres.sh), with the same segments created the same way, is measured
# in the same rounds, and the table gives its figures beside Corral's on SQLite.
#
# Usage: bash bench/segments.sh            (as root on Debian; installs wrk, nginx, curl)
# Knobs (environment):
#   DURATION=10      seconds of each measured wrk run (a 2 s warm-up precedes each)
#   WARMUP=2         seconds of each warm-up run
#   CONNECTIONS=64   wrk connections;  THREADS=2  wrk threads
#   SEGMENTS=100     segments created in the benchmark site
#   SKIP_BUILD=1     use the existing target/release/corral, skip `cargo build --release`
#   CORRAL_PORT, NGINX_PORT   fixed ports (default: free ports picked at start)
#   KEEP_TMP=1       keep the temp dir (database, logs, nginx config, bodies)
#   DATABASE=postgres  Corral on PostgreSQL too (default: sqlite, SQLite alone); no goal is
#                    checked on its figures
#   CORRAL_BIN=PATH  benchmark another corral binary (combine with SKIP_BUILD=1)
#   RATIO_GOAL=0.5, P99_GOAL_MS=5, P99_RATIO_GOAL=1.5   the goals, on both endpoints
#                    (README): Corral's throughput at least RATIO_GOAL of nginx's, Corral's
#                    p99 under P99_GOAL_MS and at most P99_RATIO_GOAL times nginx's
#
# Output: a Markdown table on stdout; the raw wrk output and the table are appended to
# bench/results/segments-<timestamp>.txt. Exits non-zero when any wrk run saw non-2xx/3xx
# responses or socket errors, when the two servers' bytes differ (nginx's against a fresh
# answer of Corral's, before and after the runs), or, after printing the table, when a goal
# is not met (saying which).
set -euo pipefail

DURATION=${DURATION:-10}
WARMUP=${WARMUP:-2}
ROUNDS=${ROUNDS:-3}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
SEGMENTS=${SEGMENTS:-100}
RATIO_GOAL=${RATIO_GOAL:-0.5}
P99_GOAL_MS=${P99_GOAL_MS:-5}
P99_RATIO_GOAL=${P99_RATIO_GOAL:-1.5}
CONTENT_TYPE='application/json; charset=utf-8'


ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=bench/lib.sh
source "$ROOT/bench/lib.sh"
cd "$ROOT"
bench_database

# --- tools -------------------------------------------------------------------------
install_missing wrk 'nginx=nginx|/usr/sbin/nginx' curl python3
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

# --- build -------------------------------------------------------------------------
bench_build

# --- temp dir and clean-up -----------------------------------------------------------
CORRAL_PID=
NGINX_PID=
PG_CORRAL_PID=
bench_tmp segments "CORRAL_PID NGINX_PID PG_CORRAL_PID" corral.log

CORRAL_PORT=${CORRAL_PORT:-$(free_port)}
NGINX_PORT=${NGINX_PORT:-$(free_port)}
[ "$CORRAL_PORT" != "$NGINX_PORT" ] || NGINX_PORT=$(free_port)
CORRAL_URL="http://127.0.0.1:$CORRAL_PORT"
NGINX_URL="http://127.0.0.1:$NGINX_PORT"

wait_for_200() { # url, what, pid
    for _ in $(seq 1 100); do
        if [ "$(curl -s -o /dev/null -w '%{http_code}' "$1" || true)" = 200 ]; then
            return 0
        fi
        kill -0 "$3" 2>/dev/null || die "$2 exited during start-up"
        sleep 0.1
    done
    die "$2 did not answer 200 on $1 within 10 s"
}

# --- Corral: site, server, segments ---------------------------------------------------
DB="sqlite://$TMP/bench.db"
say "creating the site"
(cd "$TMP" && "$CORRAL" site create Bench --json --database "$DB") >"$TMP/site.json" \
    || die "corral site create failed"
read -r SITE_UUID PK SK < <(python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
print(s["site_uuid"], s["publishable_key"], s["secret_key"])' "$TMP/site.json") \
    || die "corral site create did not print one JSON object: $(cat "$TMP/site.json")"
AUTH="Authorization: Basic $(printf '%s:%s' "$PK" "$SK" | base64 -w0)"

say "starting corral serve on 127.0.0.1:$CORRAL_PORT"
# Run from the temp dir, so no corral.toml of the working directory is picked up.
# Request logs off (warn), as nginx runs with its access log off.
(cd "$TMP" && exec "$CORRAL" serve --listen "127.0.0.1:$CORRAL_PORT" --log-level warn \
    --database "$DB" --rate-limit-per-minute 0 >"$TMP/corral.log" 2>&1) &
CORRAL_PID=$!
wait_for_200 "$CORRAL_URL/healthz" "corral serve" "$CORRAL_PID"

create_segments() { # url site pk sk -> prints the id of the middle segment
python3 - "$1" "$2" "$3" "$4" "$SEGMENTS" <<'PY'
import base64, json, sys, urllib.error, urllib.request

url, site, pk, sk, n = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
auth = "Basic " + base64.b64encode(f"{pk}:{sk}".encode()).decode()
tags = ["customer", "trial", "newsletter", "vip", "churn-risk", "beta", "partner", "lead"]
events = ["$purchase", "$pageview", "$signup", "$login", "$cart_add", "$subscribe"]
plans = ["free", "starter", "pro", "enterprise"]

def query(i):
    """A realistic nested query of a few hundred bytes, varied per segment, in
    Corral's query language (docs/query-language.md)."""
    first = {"filters": [
        {"tag": {"has": tags[i % len(tags)]}},
        {"event": {"type": events[i % len(events)],
                   "when": {"within_last": {"days": [7, 30, 90, 180][i % 4]}},
                   "count": {"at_least": 1 + i % 5}}},
    ]}
    second = {"filters": [
        {"tag": {"has": tags[(i + 3) % len(tags)]}},
        {"field": {"key": "plan", "equals": plans[i % len(plans)]}},
        {"event": {"type": events[(i + 2) % len(events)],
                   "when": {"within_last": {"days": 14 + i % 60}},
                   "count": {"at_least": 2 + i % 3}}},
    ]}
    return {"groups": [first, second] if i % 3 else [first]}

ids = []
for i in range(n):
    body = {"segment": {
        "name": f"Segment {i:03d}",
        "description": f"Benchmark segment {i:03d}: {tags[i % len(tags)]} visitors "
                       f"with recent {events[i % len(events)]} activity",
        "visitor_event_query": query(i),
    }}
    req = urllib.request.Request(
        f"{url}/api/v1/fetch/segments?site_uuid={site}",
        data=json.dumps(body).encode(), method="POST",
        headers={"Authorization": auth, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    if status != 201:
        sys.exit(f"POST segment {i}: expected 201, got {status}: {text[:500]}")
    ids.append(json.loads(text)["data"]["id"])
print(ids[n // 2])
PY
}
say "creating $SEGMENTS segments over HTTP"
MID_ID=$(create_segments "$CORRAL_URL" "$SITE_UUID" "$PK" "$SK") || die "segment creation failed (see above)"

# --- Corral on PostgreSQL (DATABASE=postgres): its own site, the same segments ------------
if [ "$DATABASE" = postgres ]; then
    bench_postgres_start
    bench_pg_db corral_segments
    PG_DB=$PG_DB_URL
    (cd "$TMP" && "$CORRAL" site create Bench --json --database "$PG_DB") >"$TMP/site-pg.json" \
        || die "corral site create on PostgreSQL failed: $(cat "$TMP/site-pg.json")"
    read -r PG_SITE_UUID PG_PK PG_SK < <(python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))
print(s["site_uuid"], s["publishable_key"], s["secret_key"])' "$TMP/site-pg.json")
    PG_AUTH="Authorization: Basic $(printf '%s:%s' "$PG_PK" "$PG_SK" | base64 -w0)"
    PG_PORT=$(free_port)
    PG_CORRAL_URL="http://127.0.0.1:$PG_PORT"
    say "starting corral serve on PostgreSQL, 127.0.0.1:$PG_PORT"
    (cd "$TMP" && exec "$CORRAL" serve --listen "127.0.0.1:$PG_PORT" --log-level warn \
        --database "$PG_DB" --checkpoint-dir off --rate-limit-per-minute 0 >"$TMP/corral-pg.log" 2>&1) &
    PG_CORRAL_PID=$!
    wait_for_200 "$PG_CORRAL_URL/readyz" "corral serve on PostgreSQL" "$PG_CORRAL_PID"
    say "creating $SEGMENTS segments over HTTP (PostgreSQL)"
    PG_MID_ID=$(create_segments "$PG_CORRAL_URL" "$PG_SITE_UUID" "$PG_PK" "$PG_SK") \
        || die "segment creation on PostgreSQL failed (see above)"
fi

LIST_PATH="/api/v1/fetch/segments"
ONE_PATH="/api/v1/fetch/segments/$MID_ID"
QUERY="?site_uuid=$SITE_UUID"

say "saving Corral's response bodies"
mkdir -p "$TMP/www"
for pair in "list:$LIST_PATH" "one:$ONE_PATH"; do
    name=${pair%%:*} path=${pair#*:}
    code=$(curl -s -H "$AUTH" -o "$TMP/www/$name.json" -w '%{http_code}' "$CORRAL_URL$path$QUERY")
    [ "$code" = 200 ] || die "GET $path answered $code: $(head -c 300 "$TMP/www/$name.json")"
done
count=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["data"]))' "$TMP/www/list.json")
[ "$count" = "$SEGMENTS" ] || die "the list holds $count segments, expected $SEGMENTS"
# PostgreSQL's answers: the same segments, so the same bytes but for the ids and the times.
pg_same_shape() { # when
    local name path code
    [ "$DATABASE" = postgres ] || return 0
    for name in list one; do
        if [ $name = list ]; then path=$LIST_PATH; else path=$PG_ONE_PATH; fi
        code=$(curl -s -H "$PG_AUTH" -o "$TMP/pg-$name.json" -w '%{http_code}' "$PG_CORRAL_URL$path?site_uuid=$PG_SITE_UUID")
        [ "$code" = 200 ] || die "PostgreSQL: GET $path answered $code ($1)"
        python3 - "$TMP/www/$name.json" "$TMP/pg-$name.json" <<'PY' || die "PostgreSQL's answer to GET $path is not SQLite's ($1)"
import json, re, sys
def norm(path):
    text = open(path).read()
    return re.sub(r'"(created_at|updated_at)":"[^"]*"', '"t":""', re.sub(r'"id":"\d+"', '"id":""', text))
sys.exit(0 if norm(sys.argv[1]) == norm(sys.argv[2]) else 1)
PY
        say "  PostgreSQL $path: $(wc -c <"$TMP/pg-$name.json") bytes, the same segments as SQLite's ($1)"
    done
}
PG_ONE_PATH="/api/v1/fetch/segments/${PG_MID_ID:-}"
pg_same_shape "before the runs"

# --- nginx: the same bytes as static files ------------------------------------------------
mkdir -p "$TMP/nginx/logs" "$TMP/nginx/tmp"
# nginx workers drop root for an unprivileged user: let them reach the two files.
chmod 711 "$TMP"
chmod 755 "$TMP/www"
chmod 644 "$TMP/www/list.json" "$TMP/www/one.json"
cat >"$TMP/nginx/nginx.conf" <<EOF
worker_processes 2;
daemon off;
pid $TMP/nginx/nginx.pid;
error_log $TMP/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65;
    keepalive_requests 1000000;
    open_file_cache max=16 inactive=60s;
    open_file_cache_valid 60s;
    charset off;
    server_tokens off;
    client_body_temp_path $TMP/nginx/tmp/body;
    proxy_temp_path $TMP/nginx/tmp/proxy;
    fastcgi_temp_path $TMP/nginx/tmp/fastcgi;
    uwsgi_temp_path $TMP/nginx/tmp/uwsgi;
    scgi_temp_path $TMP/nginx/tmp/scgi;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location = /healthz { return 200 "ok\n"; }
        location = $LIST_PATH {
            types { }
            default_type "$CONTENT_TYPE";
            alias $TMP/www/list.json;
        }
        location = $ONE_PATH {
            types { }
            default_type "$CONTENT_TYPE";
            alias $TMP/www/one.json;
        }
    }
}
EOF
say "starting nginx on 127.0.0.1:$NGINX_PORT"
"$NGINX" -t -q -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" 2>"$TMP/nginx/logs/test.log" \
    || die "nginx config test failed: $(cat "$TMP/nginx/logs/test.log")"
"$NGINX" -p "$TMP/nginx" -c "$TMP/nginx/nginx.conf" 2>>"$TMP/nginx/logs/error.log" &
NGINX_PID=$!
wait_for_200 "$NGINX_URL/healthz" nginx "$NGINX_PID"

content_type() { # file of headers from curl -D
    tr -d '\r' <"$1" | awk 'tolower($0) ~ /^content-type:/ { sub(/^[^:]*:[ \t]*/, ""); print; exit }'
}
# Both servers' bytes, compared: what nginx sends (the file it serves, as it sends it)
# against what Corral sends to a request of its own, on its own connection, never the file
# saved for nginx. Before the runs, and again after them: what was measured must have been
# the same bytes all along.
same_bytes() { # when
    local name path srv base code ct_corral ct_nginx
    for name in list one; do
        if [ $name = list ]; then path=$LIST_PATH; else path=$ONE_PATH; fi
        for srv in corral nginx; do
            if [ $srv = corral ]; then base=$CORRAL_URL; else base=$NGINX_URL; fi
            rm -f "$TMP/$srv-$name.body" "$TMP/$srv-$name.headers"
            code=$(curl -s -H "$AUTH" -D "$TMP/$srv-$name.headers" -o "$TMP/$srv-$name.body" \
                -w '%{http_code}' "$base$path$QUERY")
            [ "$code" = 200 ] || die "$srv GET $path answered $code ($1)"
        done
        if ! cmp -s "$TMP/corral-$name.body" "$TMP/nginx-$name.body"; then
            cmp "$TMP/corral-$name.body" "$TMP/nginx-$name.body" >&2 || true
            die "BODY MISMATCH on $path $1: Corral's answer and nginx's differ (kept in $TMP)"
        fi
        ct_corral=$(content_type "$TMP/corral-$name.headers")
        ct_nginx=$(content_type "$TMP/nginx-$name.headers")
        if [ "$ct_corral" != "$ct_nginx" ]; then
            die "CONTENT-TYPE MISMATCH on $path $1: Corral '$ct_corral', nginx '$ct_nginx'"
        fi
        say "  $path: $(wc -c <"$TMP/corral-$name.body") bytes, Content-Type '$ct_corral', identical ($1)"
    done
}
say "checking that both servers answer the same bytes"
same_bytes "before the runs"

# --- measurements ---------------------------------------------------------------------
bench_results segments
{
    echo "# Corral segments benchmark, $STAMP"
    echo "commit: $COMMIT"
    echo "machine: $NPROC CPUs, ${CPU:-unknown CPU}, $(uname -sr)"
    echo "wrk: -t$THREADS -c$CONNECTIONS -d${DURATION}s --latency (warm-up ${WARMUP}s each)"
    echo "site: $SEGMENTS segments; single segment id $MID_ID"
    echo "list body: $(wc -c <"$TMP/www/list.json") bytes; one body: $(wc -c <"$TMP/www/one.json") bytes"
    [ "$DATABASE" != postgres ] || echo "PostgreSQL $PG_VERSION (scripts/postgres.sh), single segment id $PG_MID_ID"
    echo
} >>"$RESULTS"

# One parsed result per line: endpoint server req_s p50_ms p99_ms errors
PARSED="$TMP/parsed.txt"
: >"$PARSED"
parse_wrk() { # file -> "req_s p50_ms p99_ms errors"
    python3 - "$1" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
unit = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}
def pct(p):
    m = re.search(rf"^\s*{p}%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.M)
    return float(m.group(1)) * unit[m.group(2)] if m else float("nan")
m = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
rps = float(m.group(1)) if m else float("nan")
errors = []
m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", text)
if m:
    errors.append(f"non-2xx/3xx={m.group(1)}")
m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
if m and any(int(x) for x in m.groups()):
    errors.append("socket-errors=" + "/".join(m.groups()))
print(f"{rps:.2f} {pct(50):.3f} {pct(99):.3f} {','.join(errors) or '-'}")
PY
}
run_wrk() { # endpoint-label server base path round
    local label=$1 srv=$2 url="$3$4$QUERY" round=$5 out="$TMP/wrk-$1-$2-$5.txt" auth=$AUTH
    if [ "$srv" = postgres ]; then
        url="$3$4?site_uuid=$PG_SITE_UUID"
        auth=$PG_AUTH
    fi
    say "round $round, $label on $srv: warm-up ${WARMUP}s, then ${DURATION}s"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"${WARMUP}s" -H "$auth" "$url" >"$TMP/warmup.txt" 2>&1 \
        || die "wrk warm-up failed: $(cat "$TMP/warmup.txt")"
    wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "$auth" "$url" >"$out" 2>&1 \
        || die "wrk failed: $(cat "$out")"
    {
        echo "## round $round, $label on $srv: GET ${url#"$3"}"
        cat "$out"
        echo
    } >>"$RESULTS"
    echo "$round $label $srv $(parse_wrk "$out")" >>"$PARSED"
}

# Rounds interleave the two servers so that a slow spell of the machine hits
# both; the report gives medians over rounds.
for round in $(seq 1 "$ROUNDS"); do
    for pair in "list:$LIST_PATH" "one:$ONE_PATH"; do
        label=${pair%%:*} path=${pair#*:}
        run_wrk "$label" nginx "$NGINX_URL" "$path" "$round"
        run_wrk "$label" corral "$CORRAL_URL" "$path" "$round"
        if [ "$DATABASE" = postgres ]; then
            [ "$label" = list ] || path=$PG_ONE_PATH
            run_wrk "$label" postgres "$PG_CORRAL_URL" "$path" "$round"
        fi
    done
done

RSS_KB=$(awk '/^VmHWM:/ { print $2 }' "/proc/$CORRAL_PID/status" 2>/dev/null || echo "?")
kill -0 "$CORRAL_PID" 2>/dev/null || die "corral serve is no longer running after the runs"
say "checking again that both servers answer the same bytes"
same_bytes "after the runs"
PG_RSS="?"
if [ "$DATABASE" = postgres ]; then
    PG_RSS=$(awk '/^VmHWM:/ { print $2 }' "/proc/$PG_CORRAL_PID/status" 2>/dev/null || echo "?")
    kill -0 "$PG_CORRAL_PID" 2>/dev/null || die "corral serve on PostgreSQL is no longer running after the runs"
    pg_same_shape "after the runs"
fi

# --- report ---------------------------------------------------------------------------
GOALS="$TMP/goals.txt"
TABLE=$(python3 - "$PARSED" "$SEGMENTS" "$MID_ID" "$RATIO_GOAL" "$P99_GOAL_MS" "$GOALS" "$P99_RATIO_GOAL" <<'PY'
import sys
from statistics import median
runs = {}
for line in open(sys.argv[1]):
    rnd, label, srv, rps, p50, p99, err = line.split()
    runs.setdefault(label, {}).setdefault(srv, {})[rnd] = (float(rps), float(p50), float(p99))
rows, ratios = {}, {}
for label, by_srv in runs.items():
    rows[label] = {srv: tuple(median(r[i] for r in by_round.values()) for i in range(3))
                   for srv, by_round in by_srv.items()}
    ratios[label] = [by_srv["corral"][r][0] / by_srv["nginx"][r][0] for r in sorted(by_srv["corral"])]
n, mid = sys.argv[2], sys.argv[3]
names = {"list": f"`GET /api/v1/fetch/segments` ({n} segments)",
         "one": f"`GET /api/v1/fetch/segments/{{id}}` (id {mid})"}
print("| endpoint | Corral req/s | nginx req/s | ratio | Corral p50 | Corral p99 | nginx p50 | nginx p99 |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for label in ("list", "one"):
    c, g = rows[label]["corral"], rows[label]["nginx"]
    ratio = median(ratios[label])
    shown = f"{ratio:.0%}" if ratio >= 0.1 else f"{ratio:.1%}"
    print(f"| {names[label]} | {c[0]:,.0f} | {g[0]:,.0f} | {shown} | "
          f"{c[1]:.2f} ms | {c[2]:.2f} ms | {g[1]:.2f} ms | {g[2]:.2f} ms |")
print()
print("Medians over rounds; the ratio is the median of the rounds' ratios (per round: "
      + "; ".join(f"{l} " + ", ".join(f"{r:.0%}" for r in ratios[l]) for l in ("list", "one")) + ").")
if all("postgres" in runs[label] for label in ("list", "one")):
    print()
    print("Corral on PostgreSQL, in the same rounds (no goal is checked on these):")
    print()
    print("| endpoint | PostgreSQL req/s | PostgreSQL / SQLite | PostgreSQL / nginx | PostgreSQL p50 | PostgreSQL p99 | SQLite p99 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for label in ("list", "one"):
        by = runs[label]
        p, c = rows[label]["postgres"], rows[label]["corral"]
        to_sqlite = median(by["postgres"][r][0] / by["corral"][r][0] for r in by["postgres"])
        to_nginx = median(by["postgres"][r][0] / by["nginx"][r][0] for r in by["postgres"])
        print(f"| {names[label]} | {p[0]:,.0f} | {to_sqlite:.0%} | {to_nginx:.0%} | "
              f"{p[1]:.2f} ms | {p[2]:.2f} ms | {c[2]:.2f} ms |")
# The goals, on the figures of the table: one line per goal missed.
ratio_goal, p99_goal, p99_ratio_goal = float(sys.argv[4]), float(sys.argv[5]), float(sys.argv[7])
with open(sys.argv[6], "w") as missed:
    for label in ("list", "one"):
        ratio, p99 = median(ratios[label]), rows[label]["corral"][2]
        nginx_p99 = rows[label]["nginx"][2]
        if not p99 <= p99_ratio_goal * nginx_p99:
            missed.write(f"{label}: Corral's p99 is {p99:.2f} ms, {p99 / nginx_p99:.2f}x nginx's "
                         f"{nginx_p99:.2f} ms, the goal is at most {p99_ratio_goal:g}x\n")
        if not ratio >= ratio_goal:
            missed.write(f"{label}: Corral serves {ratio:.0%} of nginx's throughput, "
                         f"the goal is at least {ratio_goal:.0%}\n")
        if not p99 < p99_goal:
            missed.write(f"{label}: Corral's p99 is {p99:.2f} ms, the goal is under "
                         f"{p99_goal:g} ms\n")
PY
)
FAILED=$(awk '$7 != "-" { print "  round " $1 ", " $3 " on " $2 ": " $7 }' "$PARSED")
if [ "$RSS_KB" = "?" ]; then RSS="unknown"; else RSS="$((RSS_KB / 1024)) MiB ($RSS_KB kB)"; fi

REPORT=$(cat <<EOF

## Corral segments benchmark ($(date -u '+%Y-%m-%d %H:%M UTC'))

- commit: $COMMIT
- machine: $NPROC CPUs, ${CPU:-unknown CPU}
- load: wrk -t$THREADS -c$CONNECTIONS, ${DURATION}s per run after a ${WARMUP}s warm-up, $ROUNDS rounds, loopback; rate limiting off
- bodies: list $(wc -c <"$TMP/www/list.json") bytes, one segment $(wc -c <"$TMP/www/one.json") bytes, identical on both servers

$TABLE

- Corral peak RSS (VmHWM) after the runs: $RSS$([ "$DATABASE" != postgres ] || echo "; Corral on PostgreSQL $PG_VERSION (throwaway cluster, fsync off): $([ "$PG_RSS" = "?" ] && echo "?" || echo "$((PG_RSS / 1024)) MiB")")
- goal: Corral >= $(python3 -c 'import sys; print(f"{float(sys.argv[1]):.0%}")' "$RATIO_GOAL") of nginx's throughput on both endpoints, Corral p99 < $P99_GOAL_MS ms and <= ${P99_RATIO_GOAL}x nginx's: $([ -s "$GOALS" ] && echo "NOT MET, see below" || echo "met")
EOF
)
if [ -s "$GOALS" ]; then
    REPORT="$REPORT
- GOALS NOT MET:
$(sed 's/^/  /' "$GOALS")"
fi
if [ -n "$FAILED" ]; then
    REPORT="$REPORT
- FAILED RUNS (errors reported by wrk; the figures above are not valid):
$FAILED"
fi
echo "$REPORT"
echo "$REPORT" >>"$RESULTS"
say "raw wrk output: $RESULTS"
[ -z "$FAILED" ] || die "some wrk runs saw failed requests (see above)"
[ ! -s "$GOALS" ] || die "goal not met: $(paste -sd ';' "$GOALS" | sed 's/;/; /g')"
