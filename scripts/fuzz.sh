#!/usr/bin/env bash
# Runs Schemathesis (the pinned version of tests/fuzz/requirements.txt, in a
# venv under tests/fuzz/.venv, made on first use) against a live `corral serve`
# with one site and rate limits off: every operation of /api/openapi.json, in
# all its phases, with every check (negative data refused on every route; the
# one exception, a batch's invalid item refused in its 200, is the hook of
# tests/fuzz/hooks.py, with its reason), bounded to CORRAL_FUZZ_EXAMPLES test
# cases per operation (default 25). It runs on a throwaway SQLite database, then,
# when CORRAL_TEST_POSTGRES names a PostgreSQL cluster (as scripts/test.sh sets
# it), on a database made there. The seed is new each run and printed first;
# CORRAL_FUZZ_SEED=N (or FUZZ_SEED=N) replays a run. Exits non-zero on any
# failure; always stops the servers. Arguments after the binary go to
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
SEED="${CORRAL_FUZZ_SEED:-${FUZZ_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}}"
echo "fuzz seed: $SEED (CORRAL_FUZZ_SEED=$SEED replays this run)"

install_missing python3 curl
# The venv is made again whenever requirements.txt changes.
venv_requirements "$VENV" "$HERE/requirements.txt"

serve_tmp
export SCHEMATHESIS_HOOKS="$HERE/hooks.py"
export CORRAL_FUZZ_DOCUMENT

# fuzz LABEL DATABASE [SCHEMATHESIS_RUN_OPTIONS...]: one whole run against a
# server on DATABASE (a fresh one); non-zero on any failure.
fuzz() {
  local label="$1" db="$2" status=0
  shift 2
  echo "== fuzzing on $label (seed $SEED)"
  serve_site_create CORRAL_FUZZ "$BIN" "$db" Fuzz
  export CORRAL_FUZZ_SITE_UUID CORRAL_FUZZ_PUBLISHABLE_KEY CORRAL_FUZZ_SECRET_KEY

  # Webhook targets are not resolved when saved with private targets allowed:
  # the fuzzer's made-up host names would each wait for DNS. Its checks send
  # requests without credentials on purpose, all from one address: the limit
  # on failed authentications would soon answer everything 429.
  serve_start "$label" "$BIN" "$db" --checkpoint-dir off \
    --rate-limit-per-minute 0 --stats-rate-limit-per-hour 0 \
    --auth-failures-per-minute 0 \
    --allow-private-webhook-targets
  local base="$SERVE_URL" log="$SERVE_LOG"

  # The document as served, but with `site_uuid` (query string and bodies
  # alike) narrowed to this run's site: every other value is rightly a 401,
  # and a generated one would spend the run on them.
  CORRAL_FUZZ_DOCUMENT="$SERVE_TMP/openapi-$label.json"
  curl -sf "$base/api/openapi.json" | python3 -c '
import json, os, sys
doc = json.load(sys.stdin)
site = doc["components"]["schemas"]["SiteUuidText"]
site["const"] = os.environ["CORRAL_FUZZ_SITE_UUID"]
site.pop("example", None)
json.dump(doc, sys.stdout)' >"$CORRAL_FUZZ_DOCUMENT"

  (cd "$SERVE_TMP" && "$VENV/bin/schemathesis" --config-file "$HERE/schemathesis.toml" run \
    "$CORRAL_FUZZ_DOCUMENT" --url "$base" \
    --max-examples "$EXAMPLES" --seed "$SEED" \
    --generation-database none --no-color "$@") || status=$?
  if [[ $status -ne 0 ]]; then
    echo "--- server log on $label (tail) ---" >&2
    tail -n 40 "$log" >&2 || true
    echo "fuzzing on $label failed; CORRAL_FUZZ_SEED=$SEED replays it" >&2
  fi
  return "$status"
}

status=0
fuzz sqlite "sqlite://$SERVE_TMP/fuzz.db" "$@" || status=1
if [[ -n "${CORRAL_TEST_POSTGRES:-}" ]]; then
  db="fuzz_$$_$RANDOM"
  psql -q "$CORRAL_TEST_POSTGRES" -c "CREATE DATABASE $db" >/dev/null
  fuzz postgres "${CORRAL_TEST_POSTGRES%/*}/$db" "$@" || status=1
elif [[ "${CORRAL_REQUIRE_POSTGRES:-}" == 1 ]]; then
  echo "fuzzing on PostgreSQL is required (CORRAL_REQUIRE_POSTGRES=1), but CORRAL_TEST_POSTGRES names no cluster" >&2
  status=1
else
  echo "== fuzzing on PostgreSQL: skipped, CORRAL_TEST_POSTGRES names no cluster"
fi
exit "$status"
