#!/usr/bin/env bash
# A longer run of the deterministic simulation of the write path
# (src/simulation) than CI's 10,000 steps a backend: STEPS steps (default
# 30000; a run's time grows faster than its steps, since the checks read the
# whole, growing site) for each of SEEDS seeds (default 3, fresh each run and
# printed), on SQLite, and on a throwaway PostgreSQL cluster too with
# POSTGRES=1. The tests are built once and run from a copy of their binary,
# so every seed runs the same code however the tree changes meanwhile. Every
# seed runs even when one fails; the script then exits with the first
# failure's status. A failure prints its seed and step; replay it with
#   CORRAL_SIM_SEED=<seed> CORRAL_SIM_STEPS=<step> cargo test --lib simulation::tests::the_write_path_holds_its_invariants_on_sqlite
#
#   STEPS=60000 SEEDS=2 POSTGRES=1 bash scripts/simulate.sh
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${STEPS:-30000}"
seeds="${SEEDS:-3}"
backends=(sqlite)
work="$(mktemp -d)"
# shellcheck disable=SC2317 # called by the trap
cleanup() {
  rm -rf "$work"
}
trap cleanup EXIT
if [[ "${POSTGRES:-0}" == 1 ]]; then
  # shellcheck source=scripts/postgres.sh
  source scripts/postgres.sh
  trap 'pg_throwaway_stop; cleanup' EXIT
  pg_throwaway_start
  backends+=(postgres)
fi
exe="$(cargo test --locked -p corral --lib --no-run --message-format=json |
  python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["lib"]:
        print(m["executable"])
')"
[[ -n "$exe" ]] || { echo "no test binary of the library was built" >&2; exit 1; }
cp "$exe" "$work/tests"
echo "running $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- src crates || echo ' with changes')"
failed=0
for backend in "${backends[@]}"; do
  for ((i = 1; i <= seeds; i++)); do
    seed="$(python3 -c 'import secrets; print(secrets.randbits(63))')"
    started=$(date +%s)
    log="$work/log"
    status=0
    CORRAL_SIM_SEED="$seed" CORRAL_SIM_STEPS="$steps" "$work/tests" \
      "simulation::tests::the_write_path_holds_its_invariants_on_$backend" --exact --nocapture \
      >"$log" 2>&1 || status=$?
    grep -E "^(simulation on|Report|skipped|the simulation failed|replay:)" "$log" || true
    if [[ $status -ne 0 ]]; then
      sed -n '/^last steps:/,/^stack backtrace:/p' "$log" | tail -n 12 >&2
      [[ $failed -ne 0 ]] || failed=$status
    fi
    echo "$backend seed $seed: $steps steps in $(($(date +%s) - started)) s ($([[ $status -eq 0 ]] && echo held || echo FAILED))"
  done
done
exit "$failed"
