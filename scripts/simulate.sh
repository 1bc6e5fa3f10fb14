#!/usr/bin/env bash
# A longer run of the deterministic simulation of the write path
# (src/simulation) than CI's 10,000 steps a backend: STEPS steps (default
# 30000, about 6 minutes on SQLite here; a run's time grows faster than its
# steps, since each check reads the whole, growing site) for each of SEEDS
# seeds (default 3, fresh each run and printed),
# on SQLite, and on a throwaway PostgreSQL cluster too with POSTGRES=1.
# A failure prints its seed and step; replay it with
#   CORRAL_SIM_SEED=<seed> CORRAL_SIM_STEPS=<step> cargo test --lib simulation::tests::the_write_path_holds_its_invariants_on_sqlite
#
#   STEPS=60000 SEEDS=2 POSTGRES=1 bash scripts/simulate.sh
set -euo pipefail
cd "$(dirname "$0")/.."
steps="${STEPS:-30000}"
seeds="${SEEDS:-3}"
backends=(sqlite)
if [[ "${POSTGRES:-0}" == 1 ]]; then
  # shellcheck source=scripts/postgres.sh
  source scripts/postgres.sh
  trap pg_throwaway_stop EXIT
  pg_throwaway_start
  backends+=(postgres)
fi
cargo test --locked -p corral --lib --no-run
for backend in "${backends[@]}"; do
  for ((i = 1; i <= seeds; i++)); do
    seed="$(python3 -c 'import secrets; print(secrets.randbits(63))')"
    started=$(date +%s)
    log="$(mktemp)"
    status=0
    CORRAL_SIM_SEED="$seed" CORRAL_SIM_STEPS="$steps" cargo test --locked -q -p corral --lib \
      "simulation::tests::the_write_path_holds_its_invariants_on_$backend" -- --exact --nocapture \
      >"$log" 2>&1 || status=$?
    grep -E "^(simulation on|Report|skipped|the simulation failed|replay:|last steps)" "$log" || true
    if [[ $status -ne 0 ]]; then
      cat "$log" >&2
      exit "$status"
    fi
    rm -f "$log"
    echo "$backend seed $seed: $steps steps in $(($(date +%s) - started)) s"
  done
done
