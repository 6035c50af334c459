#!/usr/bin/env bash
# A real OCI registry on loopback (Debian's docker-registry), for the services catalog's
# tests and the README example: podman and skopeo push to it and pull from it by digest.
#
#   scripts/registry.sh start    install docker-registry and skopeo (apt) if missing, write
#                                the config, start the registry, wait until it answers
#   scripts/registry.sh stop     stop the registry started here (by pid file)
#   scripts/registry.sh status   "registry ready: ..." (exit 0) or "not running" (exit 1)
#
# Everything the registry keeps lives under ${TOOLSHIP_REGISTRY_DIR:-/tmp/toolship-registry}:
# config.yml, storage/ (the blobs), lookaside/ (GPG signatures), registry.log, registry.pid.
# `start` also writes two containers configuration drop-ins, so that podman, skopeo and
# toolship use the registry without extra flags:
#   registries.conf.d/50-toolship-registry.conf   the registry speaks plain HTTP (insecure)
#   registries.d/toolship-registry.yaml           its signatures: GPG signatures in the
#                                                 lookaside folder, sigstore signatures as
#                                                 attachments in the registry itself
# (under /etc/containers as root, else under ${XDG_CONFIG_HOME:-~/.config}/containers;
# podman reads the user's registries.d instead of the system's when it exists).
#
# Stdout of `start` and `status` is one line:
#     registry ready: 127.0.0.1:5055 (storage DIR/storage, signatures DIR/lookaside)
# progress goes to stderr.  Idempotent: when the registry already runs, `start` only checks it.
#
# Environment knobs (all optional):
#   TOOLSHIP_REGISTRY_DIR      directory for everything            (/tmp/toolship-registry)
#   TOOLSHIP_REGISTRY_ADDR     address it listens on, HOST:PORT    (127.0.0.1:5055)
#   TOOLSHIP_REGISTRY_TIMEOUT  seconds to wait for it to answer    (30)
set -euo pipefail

DIR="${TOOLSHIP_REGISTRY_DIR:-/tmp/toolship-registry}"
ADDR="${TOOLSHIP_REGISTRY_ADDR:-127.0.0.1:5055}"
TIMEOUT="${TOOLSHIP_REGISTRY_TIMEOUT:-30}"
CONF="$DIR/config.yml"
PID="$DIR/registry.pid"
LOG="$DIR/registry.log"
PKGS=(docker-registry skopeo)
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

log() { printf 'registry: %s\n' "$*" >&2; }
die() { printf 'registry: ERROR: %s\n' "$*" >&2; exit 1; }
fail() {
    printf 'registry: ERROR: %s\n' "$*" >&2
    [ -e "$LOG" ] && { printf '\n===== tail -n 25 %s =====\n' "$LOG" >&2; tail -n 25 "$LOG" >&2; }
    exit 1
}

if [ "$(id -u)" -eq 0 ]; then
    CONTAINERS_DIR=/etc/containers
else
    CONTAINERS_DIR="${XDG_CONFIG_HOME:-$HOME/.config}/containers"
fi
INSECURE_DROPIN="$CONTAINERS_DIR/registries.conf.d/50-toolship-registry.conf"
LOOKASIDE_DROPIN="$CONTAINERS_DIR/registries.d/toolship-registry.yaml"

# pid_alive PID: true if PID is a live (not zombie) docker-registry process.
pid_alive() {
    local stat
    [ -n "$1" ] || return 1
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    case "${stat#*) }" in Z*|X*) return 1 ;; esac
    [ "$(cat "/proc/$1/comm" 2>/dev/null)" = docker-registry ]
}
pid_of() { [ -s "$PID" ] && tr -dc 0-9 <"$PID" 2>/dev/null; }
running() { pid_alive "$(pid_of || true)"; }
answers() { curl -fsS -o /dev/null --max-time 2 "http://$ADDR/v2/" 2>/dev/null; }
ready_line() { echo "registry ready: $ADDR (storage $DIR/storage, signatures $DIR/lookaside)"; }

ensure_packages() {
    local missing=() cmd
    for cmd in docker-registry skopeo curl; do
        command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    [ "$(id -u)" -eq 0 ] || die "missing: ${missing[*]}; as root run:
    apt-get update && apt-get install -y --no-install-recommends ${PKGS[*]} curl"
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: this script supports Debian only"
    log "missing: ${missing[*]}; installing ${PKGS[*]} curl"
    apt-get update -q >&2
    # The package's postinst starts no daemon without systemd; ours runs from $DIR.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${PKGS[@]}" curl >&2
    for cmd in docker-registry skopeo curl; do
        command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' still missing after apt-get install"
    done
}

write_config() {
    cat >"$CONF" <<EOF
# Written by toolship scripts/registry.sh -- regenerated on every start.
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $DIR/storage
  delete:
    enabled: true
http:
  addr: $ADDR
EOF
    mkdir -p "$(dirname "$INSECURE_DROPIN")" "$(dirname "$LOOKASIDE_DROPIN")"
    cat >"$INSECURE_DROPIN" <<EOF
# Written by toolship scripts/registry.sh: the loopback test registry speaks plain HTTP.
[[registry]]
location = "$ADDR"
insecure = true
EOF
    cat >"$LOOKASIDE_DROPIN" <<EOF
# Written by toolship scripts/registry.sh: where signatures of the loopback registry live.
docker:
  $ADDR:
    lookaside: file://$DIR/lookaside
    use-sigstore-attachments: true
EOF
}

do_start() {
    ensure_packages
    mkdir -p "$DIR/storage" "$DIR/lookaside"
    write_config
    if running && answers; then
        ready_line
        return 0
    fi
    if ! running && answers; then
        die "something else answers on $ADDR; stop it or set TOOLSHIP_REGISTRY_ADDR"
    fi
    if ! running; then
        log "starting docker-registry on $ADDR"
        setsid docker-registry serve "$CONF" >>"$LOG" 2>&1 </dev/null &
        echo $! >"$PID"
    fi
    local deadline=$((SECONDS + TIMEOUT))
    while [ "$SECONDS" -lt "$deadline" ]; do
        answers && { ready_line; return 0; }
        running || fail "docker-registry exited"
        sleep 0.1
    done
    fail "docker-registry does not answer on http://$ADDR/v2/ after $TIMEOUT s"
}

do_stop() {
    local pid i
    pid="$(pid_of || true)"
    if ! pid_alive "$pid"; then rm -f "$PID"; echo "registry not running"; return 0; fi
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 100); do
        pid_alive "$pid" || break
        sleep 0.1
    done
    pid_alive "$pid" && kill -KILL "$pid" 2>/dev/null
    rm -f "$PID"
    echo "registry stopped"
}

do_status() {
    if running && answers; then
        ready_line
    else
        echo "registry not running (start it with scripts/registry.sh start)"
        return 1
    fi
}

case "${1:-}" in
    start) do_start ;;
    stop) do_stop ;;
    status) do_status ;;
    *) die "usage: $0 start|stop|status" ;;
esac
