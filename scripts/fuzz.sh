#!/usr/bin/env bash
# Runs Schemathesis (the pinned version of tests/fuzz/requirements.txt, in a
# venv under tests/fuzz/.venv, made on first use) against a live `corral serve`
# on a throwaway SQLite database with one site and rate limits off: every
# operation of /api/openapi.json, in all its phases, with every check, bounded
# to CORRAL_FUZZ_EXAMPLES test cases per operation (default 25) and seeded
# (CORRAL_FUZZ_SEED, default 1) so that a run is repeatable. Exits non-zero on
# any failure; always stops the server. Arguments after the binary go to
# `schemathesis run` (e.g. --include-path /api/v1/fetch/segments --report har).
# Usage: scripts/fuzz.sh PATH_TO_CORRAL_BINARY [SCHEMATHESIS_RUN_OPTIONS...]
set -euo pipefail

if [[ $# -lt 1 ]]; then
  echo "usage: $0 PATH_TO_CORRAL_BINARY [SCHEMATHESIS_RUN_OPTIONS...]" >&2
  exit 2
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/serve.sh
source "$ROOT/scripts/lib/serve.sh"
# shellcheck source=scripts/lib/install.sh
source "$ROOT/scripts/lib/install.sh"
serve_find_bin "$1"
BIN="$SERVE_BIN"
shift
HERE="$ROOT/tests/fuzz"
VENV="$HERE/.venv"
EXAMPLES="${CORRAL_FUZZ_EXAMPLES:-25}"
SEED="${CORRAL_FUZZ_SEED:-1}"

install_missing python3 curl
# The venv is made again whenever requirements.txt changes.
venv_requirements "$VENV" "$HERE/requirements.txt"

serve_tmp
DB="sqlite://$SERVE_TMP/fuzz.db"
serve_site_create CORRAL_FUZZ "$BIN" "$DB" Fuzz
export CORRAL_FUZZ_SITE_UUID CORRAL_FUZZ_PUBLISHABLE_KEY CORRAL_FUZZ_SECRET_KEY

# Webhook targets are not resolved when saved with private targets allowed:
# the fuzzer's made-up host names would each wait for DNS. Its checks send
# requests without credentials on purpose, all from one address: the limit on
# failed authentications would soon answer everything 429.
serve_start serve "$BIN" "$DB" --checkpoint-dir off \
  --rate-limit-per-minute 0 --stats-rate-limit-per-hour 0 \
  --auth-failures-per-minute 0 \
  --allow-private-webhook-targets
BASE="$SERVE_URL"

# The document as served, but with `site_uuid` (query string and bodies alike)
# narrowed to this run's site: every other value is rightly a 401, and a
# generated one would spend the run on them.
curl -sf "$BASE/api/openapi.json" | python3 -c '
import json, os, sys
doc = json.load(sys.stdin)
site = doc["components"]["schemas"]["SiteUuidText"]
site["const"] = os.environ["CORRAL_FUZZ_SITE_UUID"]
site.pop("example", None)
json.dump(doc, sys.stdout)' >"$SERVE_TMP/openapi.json"

status=0
(cd "$SERVE_TMP" && "$VENV/bin/schemathesis" --config-file "$HERE/schemathesis.toml" run \
  "$SERVE_TMP/openapi.json" --url "$BASE" \
  --max-examples "$EXAMPLES" --seed "$SEED" \
  --generation-database none --no-color "$@") || status=$?
if [[ $status -ne 0 ]]; then
  echo "--- server log (tail) ---" >&2
  tail -n 40 "$SERVE_LOG" >&2 || true
fi
exit "$status"
