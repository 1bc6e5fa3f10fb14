#!/usr/bin/env bash
# Installs what the tests need and runs them all: formatting, lints, the Rust
# unit and integration tests, the acceptance suite that drives Bento's
# official Node SDK against a real `corral serve`, and a bounded Schemathesis
# run of the OpenAPI document against another (tests/fuzz/run.sh, which makes
# its own venv, installing python3-venv if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --locked --all-targets -- -D warnings
echo "== cargo test"
cargo test --locked
echo "== acceptance: Bento's Node SDK against corral serve"
cargo build --locked --bin corral
BIN="${CARGO_TARGET_DIR:-target}/debug/corral"
bash tests/acceptance/run.sh "$BIN"
echo "== fuzzing: Schemathesis against corral serve"
bash tests/fuzz/run.sh "$BIN"
