# Start and stop a throwaway PostgreSQL server on 127.0.0.1 for the store tests.
# `start_postgres` exports WULIAN_TEST_PG_URL; the tests run against it as well as SQLite.
PG_PORT="${PG_PORT:-55432}"
PG_DIR="${PG_DIR:-/tmp/wulian-ci-pg}"
PG_BIN="$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)")"

_as_pg() {
    if [ "$(id -u)" = 0 ]; then su postgres -s /bin/sh -c "$*"; else sh -c "$*"; fi
}

start_postgres() {
    rm -rf "$PG_DIR" && mkdir -p "$PG_DIR"
    [ "$(id -u)" = 0 ] && chown postgres "$PG_DIR"
    _as_pg "'$PG_BIN/initdb' -D '$PG_DIR/data' -U postgres -A trust >/dev/null"
    _as_pg "'$PG_BIN/pg_ctl' -D '$PG_DIR/data' -l '$PG_DIR/log' -w \
        -o \"-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1\" start >/dev/null"
    _as_pg "'$PG_BIN/createdb' -h 127.0.0.1 -p $PG_PORT -U postgres wulian_test"
    export WULIAN_TEST_PG_URL="postgresql+psycopg://postgres@127.0.0.1:$PG_PORT/wulian_test"
}

stop_postgres() {
    _as_pg "'$PG_BIN/pg_ctl' -D '$PG_DIR/data' -m fast stop >/dev/null" || true
}
