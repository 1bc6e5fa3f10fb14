# shellcheck shell=bash
# shellcheck disable=SC2034  # the variables set here are the callers' to use
# Running `corral serve` for a script, and stopping it whatever happens. Sourced (bash)
# by scripts/acceptance.sh, console.sh and fuzz.sh; bench/lib.sh takes free_port from it.
#
#   source scripts/lib/serve.sh
#   serve_find_bin [PATH]        sets SERVE_BIN: PATH, else $CORRAL_BIN, else
#                                target/debug/corral of the repository (under
#                                $CARGO_TARGET_DIR when set, relative to the repository
#                                when relative), made absolute; exits 2 when it is not an
#                                executable
#   serve_tmp                    sets SERVE_TMP, a temporary folder for the databases and
#                                logs, and the EXIT trap that stops every server started
#                                here (SIGTERM, SIGKILL after 5 s) and removes the folder
#   serve_start NAME BIN DATABASE [ARGS...]
#                                starts `BIN serve --listen 127.0.0.1:PORT --database
#                                DATABASE ARGS...` on a free port, in the background, from
#                                the current folder: stdout into $SERVE_TMP/NAME.out (the
#                                banner of --demo), stderr into $SERVE_TMP/NAME.log. Waits
#                                (at most 20 s) until /healthz answers 200, then sets
#                                SERVE_URL (http://127.0.0.1:PORT), SERVE_PORT, SERVE_PID
#                                and SERVE_LOG; if it never does, prints its output on
#                                stderr and returns 1
#   serve_site_create PREFIX BIN DATABASE NAME
#                                `BIN site create NAME --json --database DATABASE`; sets
#                                PREFIX_SITE_UUID, PREFIX_PUBLISHABLE_KEY, PREFIX_SECRET_KEY
#   serve_demo_credentials NAME  reads the banner of the `serve --demo` started as NAME;
#                                sets SERVE_SITE_UUID, SERVE_PUBLISHABLE_KEY,
#                                SERVE_SECRET_KEY and SERVE_CONSOLE_URL (checked to be that
#                                server's own); returns 1, showing the banner, if it cannot
#   free_port                    prints a free TCP port of 127.0.0.1
#
# Needs python3 and curl.

SERVE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
SERVE_PIDS=()
declare -gA SERVE_URLS=()

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

serve_find_bin() {
  local given="${1:-${CORRAL_BIN:-}}"
  if [[ -z "$given" ]]; then
    case "${CARGO_TARGET_DIR:-}" in
      "") given="$SERVE_ROOT/target/debug/corral" ;;
      /*) given="$CARGO_TARGET_DIR/debug/corral" ;;
      *) given="$SERVE_ROOT/$CARGO_TARGET_DIR/debug/corral" ;;
    esac
  fi
  if [[ ! -x "$given" ]]; then
    echo "not an executable: $given (build it with cargo build, or name it)" >&2
    exit 2
  fi
  SERVE_BIN="$(cd "$(dirname "$given")" && pwd)/$(basename "$given")"
}

serve_tmp() {
  SERVE_TMP="$(mktemp -d)"
  trap serve_cleanup EXIT
}

serve_cleanup() {
  local pid
  for pid in "${SERVE_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${SERVE_PIDS[@]}"; do
    for _ in $(seq 1 20); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  [[ -z "${SERVE_TMP:-}" ]] || rm -rf "$SERVE_TMP"
}

serve_start() {
  local name="$1" bin="$2" database="$3" port pid
  shift 3
  port="$(free_port)"
  "$bin" serve --listen "127.0.0.1:$port" --database "$database" "$@" \
    >"$SERVE_TMP/$name.out" 2>"$SERVE_TMP/$name.log" &
  pid=$!
  SERVE_PIDS+=("$pid")
  for _ in $(seq 1 80); do
    if [[ "$(curl -s --max-time 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz" || true)" == 200 ]]; then
      SERVE_PORT="$port"
      SERVE_URL="http://127.0.0.1:$port"
      SERVE_PID="$pid"
      SERVE_LOG="$SERVE_TMP/$name.log"
      SERVE_URLS[$name]="$SERVE_URL"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      break
    fi
    sleep 0.25
  done
  echo "server did not answer 200 on /healthz (port $port); its output:" >&2
  cat "$SERVE_TMP/$name.out" "$SERVE_TMP/$name.log" >&2
  return 1
}

serve_site_create() {
  local prefix="$1" bin="$2" database="$3" name="$4" json uuid="" pk="" sk=""
  json="$("$bin" site create "$name" --json --database "$database")"
  {
    read -r uuid
    read -r pk
    read -r sk
  } < <(printf '%s' "$json" | python3 -c '
import json, re, sys
c = json.load(sys.stdin)
for k in ("site_uuid", "publishable_key", "secret_key"):
    if not isinstance(c.get(k), str) or not re.fullmatch(r"\S+", c[k]):
        sys.exit(f"site create printed no usable {k}")
    print(c[k])') || true
  if [[ -z "$sk" ]]; then
    echo "could not read credentials from: $json" >&2
    return 1
  fi
  printf -v "${prefix}_SITE_UUID" '%s' "$uuid"
  printf -v "${prefix}_PUBLISHABLE_KEY" '%s' "$pk"
  printf -v "${prefix}_SECRET_KEY" '%s' "$sk"
}

# The banner: "  site_uuid:  …", "  publishable_key:  …", "  secret_key:  …", and the
# console URL on the line after "Console".
serve_banner_value() { # banner label
  awk -v label="$2:" '$1 == label { print $2; exit }' "$1"
}

serve_demo_credentials() {
  local banner="$SERVE_TMP/$1.out"
  SERVE_SITE_UUID="$(serve_banner_value "$banner" site_uuid)"
  SERVE_PUBLISHABLE_KEY="$(serve_banner_value "$banner" publishable_key)"
  SERVE_SECRET_KEY="$(serve_banner_value "$banner" secret_key)"
  SERVE_CONSOLE_URL="$(awk '/^Console/ { getline; print $1; exit }' "$banner")"
  if [[ -z "$SERVE_SECRET_KEY" || "$SERVE_CONSOLE_URL" != "${SERVE_URLS[$1]:-}/" ]]; then
    echo "could not read the demo credentials and console URL from the banner:" >&2
    cat "$banner" >&2
    return 1
  fi
}
