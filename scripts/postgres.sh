#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests and benchmarks.
#
#   source scripts/postgres.sh
#   pg_throwaway_start        # sets CORRAL_TEST_POSTGRES (an admin URL)
#   ...
#   pg_throwaway_stop         # stops it and deletes its folder
#
# Installs Debian's `postgresql` package when `initdb` is missing, makes a
# cluster with `initdb` in a temporary folder, and starts it with `pg_ctl` on
# a free port of 127.0.0.1 (trust authentication: it listens on loopback only
# and lives as long as the test run). As root, the cluster runs as the
# `postgres` user (PostgreSQL refuses to run as root). Every commit is still
# acknowledged only once written to the operating system (synchronous_commit
# stays on): only fsync is off, which matters for a power cut, not for a
# killed or restarted server, which the tests do.

# shellcheck source=scripts/lib/install.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/install.sh"

pg_bin_dir() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    [[ -x "$dir/initdb" ]] && { echo "$dir"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

pg_as_owner() {
  if [[ $(id -u) -eq 0 ]]; then
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

pg_throwaway_start() {
  local bin
  if ! bin="$(pg_bin_dir)"; then
    apt_install postgresql
    bin="$(pg_bin_dir)"
  fi
  PG_THROWAWAY_BIN="$bin"
  PG_THROWAWAY_DIR="$(mktemp -d -t corral-pg.XXXXXX)"
  PG_THROWAWAY_PORT="$(pg_free_port)"
  if [[ $(id -u) -eq 0 ]]; then
    chown postgres "$PG_THROWAWAY_DIR"
  fi
  pg_as_owner "$bin/initdb" -D "$PG_THROWAWAY_DIR/data" -U postgres -A trust -E UTF8 \
    --locale=C.UTF-8 >"$PG_THROWAWAY_DIR/initdb.log" 2>&1 || {
    cat "$PG_THROWAWAY_DIR/initdb.log" >&2
    return 1
  }
  # In the cluster's own configuration, so that a plain `pg_ctl start` (after
  # a test stopped it) brings it back the same.
  cat >>"$PG_THROWAWAY_DIR/data/postgresql.conf" <<CONF
port = $PG_THROWAWAY_PORT
listen_addresses = '127.0.0.1'
unix_socket_directories = '$PG_THROWAWAY_DIR'
fsync = off
full_page_writes = off
max_connections = 400
shared_buffers = 256MB
CONF
  pg_as_owner "$bin/pg_ctl" -D "$PG_THROWAWAY_DIR/data" -l "$PG_THROWAWAY_DIR/server.log" -w \
    start >/dev/null || {
    cat "$PG_THROWAWAY_DIR/server.log" >&2
    return 1
  }
  export CORRAL_TEST_POSTGRES="postgres://postgres@127.0.0.1:$PG_THROWAWAY_PORT/postgres"
  # What a test needs to stop and start the server itself.
  export CORRAL_TEST_POSTGRES_CTL="$bin/pg_ctl"
  export CORRAL_TEST_POSTGRES_DATA="$PG_THROWAWAY_DIR/data"
  export PG_THROWAWAY_BIN PG_THROWAWAY_DIR PG_THROWAWAY_PORT
  echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on port $PG_THROWAWAY_PORT ($PG_THROWAWAY_DIR)"
}

pg_throwaway_stop() {
  [[ -n "${PG_THROWAWAY_DIR:-}" && -d "$PG_THROWAWAY_DIR" ]] || return 0
  pg_as_owner "$PG_THROWAWAY_BIN/pg_ctl" -D "$PG_THROWAWAY_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$PG_THROWAWAY_DIR"
  unset CORRAL_TEST_POSTGRES CORRAL_TEST_POSTGRES_CTL CORRAL_TEST_POSTGRES_DATA PG_THROWAWAY_DIR
}
