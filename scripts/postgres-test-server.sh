#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests: its data lives in a temp folder, it listens on a free
# loopback port, trusts local connections, skips fsync, and is deleted by `stop`.
#
#   export TUNEGATE_TEST_POSTGRES_URL=$(scripts/postgres-test-server.sh start)   # prints the URL
#   scripts/postgres-test-server.sh stop
#
# Installs PostgreSQL from Debian packages when no initdb is found (needs root: apt-get). The server
# cannot run as root, so as root it runs as the `postgres` user (made by the package) via runuser.
# $TUNEGATE_PG_DIR chooses the folder (default: /tmp/tunegate-pg-test); `start` is idempotent.
set -euo pipefail

DIR=${TUNEGATE_PG_DIR:-/tmp/tunegate-pg-test}

find_bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r) /usr/local/bin /usr/bin; do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  return 1
}

as_server_user() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

start() {
  if [ -f "$DIR/url" ] && [ -f "$DIR/data/postmaster.pid" ]; then cat "$DIR/url"; return 0; fi
  local bindir
  if ! bindir=$(find_bindir); then
    if [ "$(id -u)" != 0 ]; then echo "PostgreSQL is not installed and installing it needs root" >&2; exit 1; fi
    echo "installing PostgreSQL (apt-get install postgresql)..." >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
    bindir=$(find_bindir)
  fi
  rm -rf "$DIR"
  mkdir -p "$DIR"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$DIR"; fi
  local port
  port=$(free_port)
  as_server_user "$bindir/initdb" -D "$DIR/data" -U postgres -A trust -E UTF8 --locale=C --no-sync >"$DIR/initdb.log" 2>&1 \
    || { cat "$DIR/initdb.log" >&2; exit 1; }
  as_server_user "$bindir/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 60 \
    -o "-p $port -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=200" \
    start >/dev/null || { cat "$DIR/server.log" >&2; exit 1; }
  echo "$bindir" >"$DIR/bindir"
  echo "postgresql+psycopg://postgres@127.0.0.1:$port/postgres" | tee "$DIR/url"
}

stop() {
  if [ -f "$DIR/bindir" ] && [ -d "$DIR/data" ]; then
    as_server_user "$(cat "$DIR/bindir")/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$DIR"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
