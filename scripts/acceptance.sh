#!/usr/bin/env bash
# Runs the acceptance suite of tests/acceptance/ (Bento's official Node SDK against Corral).
# Usage: scripts/acceptance.sh [PATH_TO_CORRAL_BINARY]
# Without a path: $CORRAL_BIN, else target/debug/corral of the repository (or under
# $CARGO_TARGET_DIR, relative to the repository when relative). `npm test` in
# tests/acceptance/ runs this script.
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
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/serve.sh
source "$ROOT/scripts/lib/serve.sh"
# shellcheck source=scripts/lib/install.sh
source "$ROOT/scripts/lib/install.sh"
serve_find_bin "${1:-}"
BIN="$SERVE_BIN"
cd "$ROOT/tests/acceptance"

npm_ci .
serve_tmp

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
    DATABASES[$name]="sqlite://$SERVE_TMP/$name.db"
  fi
}
database_url() {
  printf '%s' "${DATABASES[$1]}"
}

make_database main
make_database limited
# Each sets PREFIX_SITE_UUID, PREFIX_PUBLISHABLE_KEY and PREFIX_SECRET_KEY (exported only
# once the servers are up).
serve_site_create CORRAL "$BIN" "$(database_url main)" Acceptance
serve_site_create CORRAL_OTHER "$BIN" "$(database_url main)" Acceptance
serve_site_create CORRAL_STATS "$BIN" "$(database_url main)" Acceptance
serve_site_create CORRAL_LIMITED "$BIN" "$(database_url limited)" Acceptance

serve_start main "$BIN" "$(database_url main)" --rate-limit-per-minute 0 --stats-rate-limit-per-hour 0
export CORRAL_BASE_URL="$SERVE_URL/api/v1"
serve_start limited "$BIN" "$(database_url limited)" --rate-limit-per-minute 5
export CORRAL_LIMITED_BASE_URL="$SERVE_URL/api/v1"

for prefix in CORRAL CORRAL_OTHER CORRAL_STATS CORRAL_LIMITED; do
  for name in BASE_URL SITE_UUID PUBLISHABLE_KEY SECRET_KEY; do
    var="${prefix}_${name}"
    if [[ -n "${!var:-}" ]]; then
      export "${var?}"
    fi
  done
done

status=0
node --test sdk.test.mjs audience.test.mjs || status=$?
node --test evaluation.test.mjs || status=$?
if [[ $status -ne 0 ]]; then
  echo "--- main server log (tail) ---" >&2
  tail -n 50 "$SERVE_TMP/main.log" >&2 || true
  echo "--- limited server log (tail) ---" >&2
  tail -n 20 "$SERVE_TMP/limited.log" >&2 || true
fi
exit "$status"
