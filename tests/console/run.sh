#!/usr/bin/env bash
# Runs the web console's browser tests: headless Chromium (Debian's package),
# driven by Playwright (playwright-core, pinned by package-lock.json), against
# a real `corral serve --demo`.
# Usage: tests/console/run.sh [PATH_TO_CORRAL_BINARY]
# Without a path: $CORRAL_BIN, else target/debug/corral of the repository (or under
# $CARGO_TARGET_DIR, relative to the repository when relative). `npm test` runs this script.
# Installs chromium with apt-get when it is missing (as root, or through sudo). Starts the
# server on a free loopback port with a throwaway SQLite file in a temporary folder, rate
# limits off (the tests read every segment's stats many times), reads the demo credentials
# from its banner, and runs console.test.mjs. With CORRAL_SCREENSHOTS=1 the tests also save
# the main screens as PNGs in docs/screenshots/. Exits non-zero when a test fails; always
# stops the server.
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

# Debian's Chromium: Playwright's own browser downloads are not used.
CHROMIUM="${CORRAL_CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}"
if [[ -z "$CHROMIUM" ]]; then
  echo "installing: chromium"
  SUDO=""
  if [[ "$(id -u)" -ne 0 ]]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
  CHROMIUM="$(command -v chromium)"
fi
export CORRAL_CHROMIUM="$CHROMIUM"

# Under `npm test`, npm has the packages in hand: install them only if missing.
if [[ -z "${npm_lifecycle_event:-}" || ! -d node_modules ]]; then
  npm ci --silent --no-audit --no-fund >/dev/null
fi

TMP="$(mktemp -d)"
PID=""
cleanup() {
  if [[ -n "$PID" ]]; then
    kill "$PID" 2>/dev/null || true
    for _ in $(seq 1 20); do
      kill -0 "$PID" 2>/dev/null || break
      sleep 0.25
    done
    kill -9 "$PID" 2>/dev/null || true
    wait "$PID" 2>/dev/null || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

PORT="$(free_port)"
"$BIN" serve --demo --listen "127.0.0.1:$PORT" --database "sqlite://$TMP/console.db" \
  --rate-limit-per-minute 0 --stats-rate-limit-per-hour 0 >"$TMP/banner.txt" 2>"$TMP/server.log" &
PID=$!
up=""
for _ in $(seq 1 80); do
  if [[ "$(curl -s --max-time 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/healthz" || true)" == 200 ]]; then
    up=1
    break
  fi
  if ! kill -0 "$PID" 2>/dev/null; then
    break
  fi
  sleep 0.25
done
if [[ -z "$up" ]]; then
  echo "server did not answer 200 on /healthz (port $PORT); its output:" >&2
  cat "$TMP/banner.txt" "$TMP/server.log" >&2
  exit 1
fi

# The banner: "  site_uuid:  …", "  publishable_key:  …", "  secret_key:  …", and the console URL.
banner_value() {
  awk -v label="$1:" '$1 == label { print $2; exit }' "$TMP/banner.txt"
}
CORRAL_SITE_UUID="$(banner_value site_uuid)"
CORRAL_PUBLISHABLE_KEY="$(banner_value publishable_key)"
CORRAL_SECRET_KEY="$(banner_value secret_key)"
CORRAL_CONSOLE_URL="$(awk '/^Console/ { getline; print $1; exit }' "$TMP/banner.txt")"
if [[ -z "$CORRAL_SECRET_KEY" || "$CORRAL_CONSOLE_URL" != "http://127.0.0.1:$PORT/" ]]; then
  echo "could not read the demo credentials and console URL from the banner:" >&2
  cat "$TMP/banner.txt" >&2
  exit 1
fi
export CORRAL_SITE_UUID CORRAL_PUBLISHABLE_KEY CORRAL_SECRET_KEY CORRAL_CONSOLE_URL
export CORRAL_SCREENSHOT_DIR="$ROOT/docs/screenshots"

status=0
node --test --test-concurrency=1 console.test.mjs || status=$?
if [[ $status -ne 0 ]]; then
  echo "--- server log (tail) ---" >&2
  tail -n 50 "$TMP/server.log" >&2 || true
fi
exit "$status"
