#!/usr/bin/env bash
# Runs the web console's browser tests of tests/console/: headless Chromium (Debian's
# package), driven by Playwright (playwright-core, pinned by package-lock.json), against
# a real `corral serve --demo`.
# Usage: scripts/console.sh [PATH_TO_CORRAL_BINARY]
# Without a path: $CORRAL_BIN, else target/debug/corral of the repository (or under
# $CARGO_TARGET_DIR, relative to the repository when relative). `npm test` in
# tests/console/ runs this script.
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
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/serve.sh
source "$ROOT/scripts/lib/serve.sh"
# shellcheck source=scripts/lib/install.sh
source "$ROOT/scripts/lib/install.sh"
serve_find_bin "${1:-}"
BIN="$SERVE_BIN"
cd "$ROOT/tests/console"

# Debian's Chromium: Playwright's own browser downloads are not used.
if [[ -z "${CORRAL_CHROMIUM:-}" ]]; then
  install_missing 'chromium=chromium|chromium-browser'
  CORRAL_CHROMIUM="$(command -v chromium || command -v chromium-browser)"
fi
export CORRAL_CHROMIUM

npm_ci .
serve_tmp

serve_start console "$BIN" "sqlite://$SERVE_TMP/console.db" --demo \
  --rate-limit-per-minute 0 --stats-rate-limit-per-hour 0
serve_demo_credentials console
export CORRAL_SITE_UUID="$SERVE_SITE_UUID"
export CORRAL_PUBLISHABLE_KEY="$SERVE_PUBLISHABLE_KEY"
export CORRAL_SECRET_KEY="$SERVE_SECRET_KEY"
export CORRAL_CONSOLE_URL="$SERVE_CONSOLE_URL"
export CORRAL_SCREENSHOT_DIR="$ROOT/docs/screenshots"

status=0
node --test --test-concurrency=1 console.test.mjs || status=$?
if [[ $status -ne 0 ]]; then
  echo "--- server log (tail) ---" >&2
  tail -n 50 "$SERVE_LOG" >&2 || true
fi
exit "$status"
