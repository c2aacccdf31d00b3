# Start a throwaway PostgreSQL for the xlreg PostgreSQL tests.
#
# Usage (as root, from the repository root):  source .ci/postgres.sh
#
# Installs the Debian `postgresql` package when its binaries are missing,
# `initdb`s a cluster in a temp dir as the `postgres` user (PostgreSQL
# refuses to run as root), starts it on its own port with its own unix
# socket dir (no TCP listener but 127.0.0.1), creates a database and
# exports:
#   XLREG_TEST_POSTGRES     postgres://xlreg:xlreg@127.0.0.1:PORT/xlreg
#   XLREG_REQUIRE_POSTGRES  1  (a PostgreSQL test that cannot run FAILS)
#   XLREG_PG_BIN            the PostgreSQL bin dir (pg_ctl), for restart tests
#   XLREG_PG_DATA           the data dir, for restart tests
# An EXIT trap stops the server and removes the dir; the stop command is
# also printed, for interactive use.

xlreg_pg_fail() {
    echo "FAIL: .ci/postgres.sh: $*" >&2
    return 1
}

xlreg_pg_start() {
    local bin port dir url
    bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
        echo "installing: postgresql"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql \
            || { xlreg_pg_fail "cannot install the postgresql package"; return 1; }
        bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)"
    fi
    [ -x "$bin/initdb" ] || { xlreg_pg_fail "no initdb under /usr/lib/postgresql/*/bin"; return 1; }
    id postgres >/dev/null 2>&1 || { xlreg_pg_fail "no 'postgres' user (the package creates it)"; return 1; }

    port="${XLREG_PG_PORT:-55432}"
    dir="$(mktemp -d /tmp/xlreg-pg.XXXXXX)"
    chown postgres: "$dir"
    chmod 700 "$dir"
    su postgres -s /bin/sh -c "'$bin/initdb' -D '$dir/data' --auth-local=trust --auth-host=scram-sha-256 -U postgres --no-sync -E UTF8" \
        >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; xlreg_pg_fail "initdb failed"; return 1; }
    # Tests make many databases and connections; fsync stays on (the
    # benchmarks measure durable commits).
    cat >>"$dir/data/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
max_connections = 300
shared_buffers = 64MB
EOF
    su postgres -s /bin/sh -c "'$bin/pg_ctl' -D '$dir/data' -l '$dir/server.log' -w -t 60 start" \
        >/dev/null \
        || { cat "$dir/server.log" >&2; xlreg_pg_fail "PostgreSQL did not start on port $port"; return 1; }
    su postgres -s /bin/sh -c "'$bin/psql' -h '$dir' -p $port -U postgres -v ON_ERROR_STOP=1 -q \
        -c \"CREATE ROLE xlreg LOGIN SUPERUSER PASSWORD 'xlreg'\" -c 'CREATE DATABASE xlreg OWNER xlreg'" \
        || { xlreg_pg_fail "cannot create the xlreg role and database"; return 1; }

    url="postgres://xlreg:xlreg@127.0.0.1:$port/xlreg"
    export XLREG_TEST_POSTGRES="$url"
    export XLREG_REQUIRE_POSTGRES=1
    export XLREG_PG_BIN="$bin"
    export XLREG_PG_DATA="$dir/data"
    XLREG_PG_STOP="su postgres -s /bin/sh -c \"'$bin/pg_ctl' -D '$dir/data' -m immediate stop\" >/dev/null 2>&1; rm -rf '$dir'"
    export XLREG_PG_STOP
    # shellcheck disable=SC2064
    trap "$XLREG_PG_STOP" EXIT
    echo "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') on 127.0.0.1:$port (data $dir/data)"
    echo "stop it with: $XLREG_PG_STOP"
}

xlreg_pg_start
