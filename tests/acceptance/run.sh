#!/usr/bin/env bash
# Runs the acceptance suite (Bento's official Node SDK against Corral).
# Usage: tests/acceptance/run.sh [PATH_TO_CORRAL_BINARY]
# Without a path: $CORRAL_BIN, else target/debug/corral of the repository (or under
# $CARGO_TARGET_DIR, relative to the repository when relative). `npm test` runs this script.
# Starts two servers on free loopback ports, each on its own SQLite file in a temporary
# folder: one without rate limiting (also none on /stats/*), with three sites (the main one,
# another for the isolation tests, and one that only the exact-count stats test touches), and
# one limited to 5 requests a minute. Runs sdk.test.mjs and audience.test.mjs (in parallel),
# then evaluation.test.mjs on its own: it creates subscribers on the main site, which
# audience.test.mjs's before/after site counts must not see. Exits non-zero when either
# run fails; always stops both servers.
set -euo pipefail

if [[ $# -gt 1 ]]; then
  echo "usage: $0 [PATH_TO_CORRAL_BINARY]" >&2
  exit 2
fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
GIVEN="${1:-${CORRAL_BIN:-}}"
if [[ -z "$GIVEN" ]]; then
  case "${CARGO_TARGET_DIR:-}" in
    "") GIVEN="$ROOT/target/debug/corral" ;;
    /*) GIVEN="$CARGO_TARGET_DIR/debug/corral" ;;
    *) GIVEN="$ROOT/$CARGO_TARGET_DIR/debug/corral" ;;
  esac
fi
if [[ ! -x "$GIVEN" ]]; then
  echo "not an executable: $GIVEN (build it with cargo build, or name it)" >&2
  exit 2
fi
BIN="$(cd "$(dirname "$GIVEN")" && pwd)/$(basename "$GIVEN")"
cd "$HERE"

# Under `npm test`, npm has the packages in hand: install them only if missing.
if [[ -z "${npm_lifecycle_event:-}" || ! -d node_modules ]]; then
  npm ci --silent --no-audit --no-fund >/dev/null
fi

TMP="$(mktemp -d)"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    for _ in $(seq 1 20); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$TMP"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# make_database NAME: makes the database a name stands for: a SQLite file
# in the temporary folder, or, when CORRAL_TEST_POSTGRES names a PostgreSQL
# cluster (as scripts/test.sh sets it for its second pass), a database
# created there. database_url NAME prints its URL.
declare -A DATABASES=()
make_database() {
  local name="$1"
  if [[ "${CORRAL_TEST_BACKEND:-sqlite}" == postgres ]]; then
    local db="acceptance_${name}_$$_$RANDOM"
    psql -q "$CORRAL_TEST_POSTGRES" -c "CREATE DATABASE $db" >/dev/null
    DATABASES[$name]="${CORRAL_TEST_POSTGRES%/*}/$db"
  else
    DATABASES[$name]="sqlite://$TMP/$name.db"
  fi
}
database_url() {
  printf '%s' "${DATABASES[$1]}"
}

# create_site DB PREFIX: creates a site and sets PREFIX_SITE_UUID, PREFIX_PUBLISHABLE_KEY and
# PREFIX_SECRET_KEY (exported only once the servers are up).
create_site() {
  local db="$1" prefix="$2" json uuid pk sk
  json="$("$BIN" site create "Acceptance" --json --database "$(database_url "$db")")"
  {
    read -r uuid
    read -r pk
    read -r sk
  } < <(printf '%s' "$json" | node -e '
    const c = JSON.parse(require("fs").readFileSync(0, "utf8"));
    for (const k of ["site_uuid", "publishable_key", "secret_key"]) {
      if (typeof c[k] !== "string" || !/^\S+$/.test(c[k])) throw new Error(`site create printed no usable ${k}`);
      console.log(c[k]);
    }')
  if [[ -z "${sk:-}" ]]; then
    echo "could not read credentials from: $json" >&2
    return 1
  fi
  printf -v "${prefix}_SITE_UUID" '%s' "$uuid"
  printf -v "${prefix}_PUBLISHABLE_KEY" '%s' "$pk"
  printf -v "${prefix}_SECRET_KEY" '%s' "$sk"
}

# start_server DB LOG PREFIX [ARGS...]: starts `serve` on a free port, waits for /healthz,
# sets PREFIX_BASE_URL.
start_server() {
  local db="$1" log="$2" prefix="$3" port pid
  shift 3
  port="$(free_port)"
  "$BIN" serve --listen "127.0.0.1:$port" --database "$(database_url "$db")" "$@" >"$log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  for _ in $(seq 1 80); do
    if [[ "$(curl -s --max-time 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz" || true)" == 200 ]]; then
      printf -v "${prefix}_BASE_URL" '%s' "http://127.0.0.1:$port/api/v1"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      break
    fi
    sleep 0.25
  done
  echo "server did not answer 200 on /healthz (port $port); its log:" >&2
  cat "$log" >&2
  return 1
}

make_database main
make_database limited
create_site main CORRAL
create_site main CORRAL_OTHER
create_site main CORRAL_STATS
create_site limited CORRAL_LIMITED

start_server main "$TMP/main.log" CORRAL --rate-limit-per-minute 0 --stats-rate-limit-per-hour 0
start_server limited "$TMP/limited.log" CORRAL_LIMITED --rate-limit-per-minute 5

for prefix in CORRAL CORRAL_OTHER CORRAL_STATS CORRAL_LIMITED; do
  for name in BASE_URL SITE_UUID PUBLISHABLE_KEY SECRET_KEY; do
    var="${prefix}_${name}"
    if [[ -n "${!var:-}" ]]; then
      export "$var"
    fi
  done
done

status=0
node --test sdk.test.mjs audience.test.mjs || status=$?
node --test evaluation.test.mjs || status=$?
if [[ $status -ne 0 ]]; then
  echo "--- main server log (tail) ---" >&2
  tail -n 50 "$TMP/main.log" >&2 || true
  echo "--- limited server log (tail) ---" >&2
  tail -n 20 "$TMP/limited.log" >&2 || true
fi
exit "$status"
