#!/usr/bin/env bash
# Runs Schemathesis (the pinned version of tests/fuzz/requirements.txt, in a
# venv under tests/fuzz/.venv, made on first use) against a live `corral serve`
# on a throwaway SQLite database with one site and rate limits off: every
# operation of /api/openapi.json, in all its phases, with every check, bounded
# to CORRAL_FUZZ_EXAMPLES test cases per operation (default 25) and seeded
# (CORRAL_FUZZ_SEED, default 1) so that a run is repeatable. Exits non-zero on
# any failure; always stops the server. Arguments after the binary go to
# `schemathesis run` (e.g. --include-path /api/v1/fetch/segments --report har).
# Usage: tests/fuzz/run.sh PATH_TO_CORRAL_BINARY [SCHEMATHESIS_RUN_OPTIONS...]
set -euo pipefail

if [[ $# -lt 1 ]]; then
  echo "usage: $0 PATH_TO_CORRAL_BINARY [SCHEMATHESIS_RUN_OPTIONS...]" >&2
  exit 2
fi
BIN="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"
shift
if [[ ! -x "$BIN" ]]; then
  echo "not an executable: $1" >&2
  exit 2
fi
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv"
EXAMPLES="${CORRAL_FUZZ_EXAMPLES:-25}"
SEED="${CORRAL_FUZZ_SEED:-1}"

missing=()
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# The venv is made again whenever requirements.txt changes.
STAMP="$VENV/.requirements.sha256"
WANT="$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)"
if [[ "$(cat "$STAMP" 2>/dev/null || true)" != "$WANT" ]]; then
  rm -rf "$VENV"
  if ! python3 -m venv "$VENV" >/dev/null 2>&1; then
    # Debian's python3 has no venv (ensurepip) without python3-venv.
    echo "installing: python3-venv"
    rm -rf "$VENV"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv "$VENV"
  fi
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"
  echo "$WANT" >"$STAMP"
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

DB="sqlite://$TMP/fuzz.db"
CREDENTIALS="$("$BIN" site create Fuzz --json --database "$DB")"
read -r CORRAL_FUZZ_SITE_UUID CORRAL_FUZZ_PUBLISHABLE_KEY CORRAL_FUZZ_SECRET_KEY < <(
  printf '%s' "$CREDENTIALS" | python3 -c '
import json, sys
c = json.load(sys.stdin)
print(c["site_uuid"], c["publishable_key"], c["secret_key"])')
export CORRAL_FUZZ_SITE_UUID CORRAL_FUZZ_PUBLISHABLE_KEY CORRAL_FUZZ_SECRET_KEY

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"
BASE="http://127.0.0.1:$PORT"
# Webhook targets are not resolved when saved with private targets allowed:
# the fuzzer's made-up host names would each wait for DNS.
"$BIN" serve --listen "127.0.0.1:$PORT" --database "$DB" --checkpoint-dir off \
  --rate-limit-per-minute 0 --stats-rate-limit-per-hour 0 \
  --allow-private-webhook-targets >"$TMP/serve.log" 2>&1 &
PID=$!
for _ in $(seq 1 80); do
  if [[ "$(curl -s --max-time 2 -o /dev/null -w '%{http_code}' "$BASE/healthz" || true)" == 200 ]]; then
    break
  fi
  if ! kill -0 "$PID" 2>/dev/null; then
    break
  fi
  sleep 0.25
done

# The document as served, but with `site_uuid` (query string and bodies alike)
# narrowed to this run's site: every other value is rightly a 401, and a
# generated one would spend the run on them.
curl -sf "$BASE/api/openapi.json" | python3 -c '
import json, os, sys
doc = json.load(sys.stdin)
site = doc["components"]["schemas"]["SiteUuidText"]
site["const"] = os.environ["CORRAL_FUZZ_SITE_UUID"]
site.pop("example", None)
json.dump(doc, sys.stdout)' >"$TMP/openapi.json"

status=0
(cd "$TMP" && "$VENV/bin/schemathesis" --config-file "$HERE/schemathesis.toml" run \
  "$TMP/openapi.json" --url "$BASE" \
  --max-examples "$EXAMPLES" --seed "$SEED" \
  --generation-database none --no-color "$@") || status=$?
if [[ $status -ne 0 ]]; then
  echo "--- server log (tail) ---" >&2
  tail -n 40 "$TMP/serve.log" >&2 || true
fi
exit "$status"
