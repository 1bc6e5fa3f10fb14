#!/usr/bin/env bash
# Installs the Standard Webhooks reference verifiers that the integration tests
# hand Corral's real deliveries to (tests/api/webhooks.rs, the tests named
# standard_webhooks_…): npm's `standardwebhooks`, pinned by
# tests/standardwebhooks/package-lock.json (npm ci into its node_modules), and
# PyPI's, pinned by tests/standardwebhooks/requirements.txt (in a venv at
# tests/standardwebhooks/.venv, made again whenever that file changes). Installs
# Node.js, npm and python3 with apt-get when they are missing. Then runs those
# tests (on SQLite; on PostgreSQL too with CORRAL_TEST_BACKEND=postgres and a
# cluster, see scripts/postgres.sh), unless given --install-only: scripts/test.sh
# installs with it before its cargo test passes, which run them on both backends.
# Without the verifiers installed, those tests are skipped, saying so, except
# under CI or with CORRAL_REQUIRE_STANDARDWEBHOOKS=1, where they fail.
# Usage: scripts/standardwebhooks.sh [--install-only]
set -euo pipefail

if [[ $# -gt 1 || ($# -eq 1 && "$1" != --install-only) ]]; then
  echo "usage: $0 [--install-only]" >&2
  exit 2
fi
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=scripts/lib/install.sh
source "$ROOT/scripts/lib/install.sh"
HERE="$ROOT/tests/standardwebhooks"

install_missing nodejs=node npm python3
npm_ci "$HERE"
venv_requirements "$HERE/.venv" "$HERE/requirements.txt"

if [[ $# -eq 0 ]]; then
  cd "$ROOT"
  CORRAL_REQUIRE_STANDARDWEBHOOKS=1 cargo test --locked --test api standard_webhooks
fi
