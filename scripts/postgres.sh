#!/usr/bin/env bash
# A PostgreSQL server of toolship's own on loopback (Debian's postgresql), for the tests
# that run the API and engine on PostgreSQL, the replica tests and the resilience suite.
# It is a cluster of its own (initdb in a folder of its own, its own port), so the
# machine's own PostgreSQL, if any, is neither used nor changed.
#
#   scripts/postgres.sh start     install postgresql (apt) if missing, create the cluster
#                                 on first use, start it, wait until it answers
#   scripts/postgres.sh stop      stop it (fast shutdown)
#   scripts/postgres.sh restart   stop and start it (what the resilience tests do under load)
#   scripts/postgres.sh status    "postgres ready: URL" (exit 0) or "not running" (exit 1)
#   scripts/postgres.sh url       the URL toolship's database.url takes, whether or not it runs
#
# Stdout of `start` and `status` is one line:
#     postgres ready: postgresql+psycopg://toolship:toolship@127.0.0.1:5433/toolship
# progress goes to stderr.  Idempotent: when the server already runs, `start` only checks it.
#
# The cluster is for tests: fsync and synchronous commit are off (a crash of the machine
# may lose its last transactions; a crash of the server process loses nothing).  Its
# superuser is `toolship` (password `toolship`, loopback only), who may create databases:
# each test gets one of its own.  As root, the server runs as the `postgres` user.
#
# Environment knobs (all optional):
#   TOOLSHIP_POSTGRES_DIR      directory for the cluster and its log   (/tmp/toolship-postgres)
#   TOOLSHIP_POSTGRES_PORT     port on 127.0.0.1                      (5433)
#   TOOLSHIP_POSTGRES_TIMEOUT  seconds to wait for it to answer        (60)
set -euo pipefail

DIR="${TOOLSHIP_POSTGRES_DIR:-/tmp/toolship-postgres}"
PORT="${TOOLSHIP_POSTGRES_PORT:-5433}"
TIMEOUT="${TOOLSHIP_POSTGRES_TIMEOUT:-60}"
DATA="$DIR/data"
LOG="$DIR/postgres.log"
USER_NAME=toolship
PASSWORD=toolship
URL="postgresql+psycopg://$USER_NAME:$PASSWORD@127.0.0.1:$PORT/toolship"

log() { printf 'postgres: %s\n' "$*" >&2; }
die() { printf 'postgres: ERROR: %s\n' "$*" >&2; exit 1; }
fail() {
    printf 'postgres: ERROR: %s\n' "$*" >&2
    [ -e "$LOG" ] && { printf '\n===== tail -n 25 %s =====\n' "$LOG" >&2; tail -n 25 "$LOG" >&2; }
    exit 1
}

bindir() {
    local found
    found="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
    [ -n "$found" ] && echo "$found"
}

ensure_packages() {
    if [ -n "$(bindir || true)" ] && command -v pg_isready >/dev/null 2>&1; then
        return 0
    fi
    [ "$(id -u)" -eq 0 ] || die "PostgreSQL is missing; as root run:
    apt-get update && apt-get install -y --no-install-recommends postgresql"
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: this script supports Debian only"
    log "installing postgresql"
    apt-get update -q >&2
    # Without systemd its postinst starts nothing; the server used here runs from $DIR.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends postgresql >&2
    [ -n "$(bindir || true)" ] || die "postgresql's programs still missing after apt-get install"
}

# as_owner CMD...: run CMD as the cluster's owner (postgres when we are root).
as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

answers() { pg_isready -q -h 127.0.0.1 -p "$PORT" -t 2 2>/dev/null; }
running() { [ -s "$DATA/postmaster.pid" ] && as_owner "$(bindir)/pg_ctl" status -D "$DATA" >/dev/null 2>&1; }
ready_line() { echo "postgres ready: $URL"; }

create_cluster() {
    local pwfile
    log "creating the cluster in $DATA"
    mkdir -p "$DIR"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$DIR"
    pwfile="$DIR/pwfile"
    echo "$PASSWORD" >"$pwfile"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$pwfile"
    as_owner "$(bindir)/initdb" -D "$DATA" -U "$USER_NAME" --pwfile="$pwfile" \
        --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >&2
    rm -f "$pwfile"
    cat >>"$DATA/postgresql.conf" <<EOF
# Written by toolship scripts/postgres.sh: a cluster for tests, on loopback only.
listen_addresses = '127.0.0.1'
port = $PORT
unix_socket_directories = '$DIR'
max_connections = 300
fsync = off
synchronous_commit = off
full_page_writes = off
# A connection that stops half-way through its log-in is dropped soon: DROP DATABASE
# waits for every backend, and one left waiting for its client would hold it up.
authentication_timeout = 5s
EOF
}

# The database the URL names (tests create their own beside it).
ensure_database() {
    local psql=(psql -h 127.0.0.1 -p "$PORT" -U "$USER_NAME" -d postgres -tAq)
    if [ -z "$(PGPASSWORD=$PASSWORD "${psql[@]}" -c "SELECT 1 FROM pg_database WHERE datname = 'toolship'")" ]; then
        PGPASSWORD=$PASSWORD "${psql[@]}" -c "CREATE DATABASE toolship" >&2
    fi
}

do_start() {
    ensure_packages
    [ -s "$DATA/PG_VERSION" ] || create_cluster
    if running && answers; then
        ensure_database
        ready_line
        return 0
    fi
    if ! running && answers; then
        die "something else answers on 127.0.0.1:$PORT; stop it or set TOOLSHIP_POSTGRES_PORT"
    fi
    if ! running; then
        log "starting PostgreSQL on 127.0.0.1:$PORT"
        # setsid: the server outlives this script and the shell that ran it.
        as_owner setsid "$(bindir)/pg_ctl" start -D "$DATA" -l "$LOG" -w -t "$TIMEOUT" \
            </dev/null >/dev/null 2>&1 || fail "pg_ctl start failed"
    fi
    local deadline=$((SECONDS + TIMEOUT))
    while [ "$SECONDS" -lt "$deadline" ]; do
        if answers; then
            ensure_database
            ready_line
            return 0
        fi
        sleep 0.1
    done
    fail "PostgreSQL does not answer on 127.0.0.1:$PORT after $TIMEOUT s"
}

do_stop() {
    if ! running; then echo "postgres not running"; return 0; fi
    as_owner "$(bindir)/pg_ctl" stop -D "$DATA" -m fast -w -t "$TIMEOUT" >/dev/null ||
        fail "pg_ctl stop failed"
    echo "postgres stopped"
}

do_status() {
    if [ -n "$(bindir || true)" ] && running && answers; then
        ready_line
    else
        echo "postgres not running (start it with scripts/postgres.sh start)"
        return 1
    fi
}

case "${1:-}" in
    start) do_start ;;
    stop) do_stop ;;
    restart) do_stop >/dev/null; do_start ;;
    status) do_status ;;
    url) echo "$URL" ;;
    *) die "usage: $0 start|stop|restart|status|url" ;;
esac
