#!/usr/bin/env bash
# Installs what the tests need and runs them all: formatting, lints, the Rust
# unit and integration tests, the acceptance suite that drives Bento's
# official Node SDK against a real `corral serve`, the web console's browser
# tests (headless Chromium against `corral serve --demo`; tests/console/run.sh
# installs Debian's chromium if missing), and a bounded Schemathesis run of
# the OpenAPI document against another (tests/fuzz/run.sh, which makes its own
# venv, installing python3-venv if missing). The integration tests and the
# acceptance suite run twice: on SQLite, then on a throwaway PostgreSQL
# cluster (scripts/postgres.sh: installs Debian's `postgresql` if `initdb` is
# missing, and the cluster is always stopped and deleted).
#
# Needs Rust (the rust-version of Cargo.toml) with rustfmt and clippy; installs
# Node.js, npm, curl and python3 with apt-get when they are missing. Builds the
# binary once: the acceptance suite, the browser tests and the fuzzer run the
# `corral` that `cargo test` built (in target/debug/, or under CARGO_TARGET_DIR).
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
cargo clippy --locked --workspace --all-targets -- -D warnings
source scripts/postgres.sh
trap pg_throwaway_stop EXIT
echo "== PostgreSQL: a throwaway cluster"
# Sets CORRAL_TEST_POSTGRES: the tests that need PostgreSQL (the backend
# differential, several servers on one database, copying) run on it; the
# others run on SQLite unless CORRAL_TEST_BACKEND=postgres.
pg_throwaway_start

echo "== cargo test (SQLite)"
cargo test --locked --workspace
echo "== cargo test: the integration tests on PostgreSQL"
CORRAL_TEST_BACKEND=postgres cargo test --locked --test api
echo "== acceptance: Bento's Node SDK against corral serve"
# The integration tests run the binary, so `cargo test` has just built it, in
# the dev profile, where `cargo build` would put it: no second build.
target_dir="$(cargo metadata --locked --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
bin="$target_dir/debug/corral"
if [[ ! -x "$bin" ]]; then
  echo "cargo test left no binary at $bin" >&2
  exit 1
fi
bash tests/acceptance/run.sh "$bin"
echo "== acceptance on PostgreSQL"
CORRAL_TEST_BACKEND=postgres bash tests/acceptance/run.sh "$bin"
echo "== console: the web console in headless Chromium against corral serve --demo"
bash tests/console/run.sh "$bin"
echo "== fuzzing: Schemathesis against corral serve"
bash tests/fuzz/run.sh "$bin"
