#!/usr/bin/env bash
# Start a private PostgreSQL cluster on 127.0.0.1 for the tests; print its URL on stdout.
# Installs Debian's postgresql when no server binaries are present (needs root, as on CI).
set -euo pipefail
PORT=${AGENTMEM_PG_PORT:-55432}
DIR=${AGENTMEM_PG_DIR:-/tmp/agentmem-pg}
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >&2 || exit 1
    bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
  else
    exit 1
  fi
fi
run() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi; }
if ! run "$bindir/pg_isready -h 127.0.0.1 -p $PORT" >/dev/null 2>&1; then
  if [ ! -f "$DIR/PG_VERSION" ]; then
    mkdir -p "$DIR"
    [ "$(id -u)" = 0 ] && chown postgres "$DIR"
    run "$bindir/initdb -D $DIR -U agentmem --auth=trust" >&2
  fi
  run "$bindir/pg_ctl -D $DIR -o '-c listen_addresses=127.0.0.1 -p $PORT -k /tmp' -l $DIR/server.log -w start" >&2
fi
run "$bindir/psql -h 127.0.0.1 -p $PORT -U agentmem -d postgres -tc \"SELECT 1 FROM pg_database WHERE datname='agentmem_test'\"" | grep -q 1 \
  || run "$bindir/createdb -h 127.0.0.1 -p $PORT -U agentmem agentmem_test" >&2
echo "postgresql://agentmem@127.0.0.1:$PORT/agentmem_test"
