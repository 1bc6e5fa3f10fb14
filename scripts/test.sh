#!/usr/bin/env bash
# Installs what the tests need and runs them all: formatting, lints, the Rust
# unit and integration tests, the acceptance suite that drives Bento's
# official Node SDK against a real `corral serve`, the web console's browser
# tests (headless Chromium against `corral serve --demo`; scripts/console.sh
# installs Debian's chromium if missing), and a bounded Schemathesis run of
# the OpenAPI document against another (scripts/fuzz.sh, which makes its own
# venv, installing python3-venv if missing; on SQLite, then on the PostgreSQL
# cluster, with a new seed each run that it prints). The integration tests and the
# acceptance suite run twice: on SQLite, then on a throwaway PostgreSQL
# cluster (scripts/postgres.sh: installs Debian's `postgresql` if `initdb` is
# missing, and the cluster is always stopped and deleted).
#
# The webhook tests verify real deliveries with the Standard Webhooks libraries
# of npm and PyPI (pinned; scripts/standardwebhooks.sh installs them first).
#
# Needs Rust (the rust-version of Cargo.toml) with rustfmt and clippy; installs
# Node.js, npm, curl and python3 with apt-get when they are missing. Builds the
# binary once: the acceptance suite, the browser tests and the fuzzer run the
# `corral` that `cargo test` built (in target/debug/, or under CARGO_TARGET_DIR).
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/lib/install.sh
source scripts/lib/install.sh
install_missing nodejs=node npm curl python3

echo "== cargo fmt"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings
# shellcheck source=scripts/postgres.sh
source scripts/postgres.sh
trap pg_throwaway_stop EXIT
echo "== PostgreSQL: a throwaway cluster"
# Sets CORRAL_TEST_POSTGRES: the tests that need PostgreSQL (the backend
# differential, several servers on one database, copying) run on it; the
# others run on SQLite unless CORRAL_TEST_BACKEND=postgres.
pg_throwaway_start
# With the cluster up, a test that needs PostgreSQL and finds none fails
# rather than skipping.
export CORRAL_REQUIRE_POSTGRES=1

echo "== Standard Webhooks: the pinned npm and PyPI verifiers the webhook tests use"
bash scripts/standardwebhooks.sh --install-only
# Installed: the tests that hand deliveries to them fail rather than skip.
export CORRAL_REQUIRE_STANDARDWEBHOOKS=1

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
bash scripts/acceptance.sh "$bin"
echo "== acceptance on PostgreSQL"
CORRAL_TEST_BACKEND=postgres bash scripts/acceptance.sh "$bin"
echo "== console: the web console in headless Chromium against corral serve --demo"
bash scripts/console.sh "$bin"
echo "== fuzzing: Schemathesis against corral serve"
bash scripts/fuzz.sh "$bin"
