#!/usr/bin/env bash
# Make this (Debian 12) machine able to run toolship's containers.
#
#   1. install podman, runc, busybox-static and debootstrap if any is missing
#      (needs root; as non-root prints the exact apt command and exits 1);
#   2. write the containers.conf fix this host needs (runc instead of crun,
#      which fails on hybrid cgroups; no default ulimits, which fail without
#      CAP_SYS_RESOURCE), without clobbering settings already there;
#   3. verify `podman info` works and podman uses runc;
#   4. as root: check that podman can run a container in a user namespace (how
#      toolship runs tasks), and where this podman (4.3) fails to mount image
#      layers through idmapped mounts on a newer kernel, record that feature as
#      unsupported, so podman copies the layers with their owners mapped instead.
#
# Idempotent; when everything is in place it only checks (about a second).
# Exits non-zero, saying what is wrong, on any failure.
set -euo pipefail

# rsync: Snakemake's fs storage plugin (the Snakemake end-to-end test) copies with it.
# catatonit: podman builds the image of a pod's infra container with it (multi-node tasks
# run their ranks in a pod; no registry is needed).
# docker-registry, skopeo, gnupg, curl: the services catalog inspects registries and verifies
# signatures with skopeo; its tests push to a loopback registry (scripts/registry.sh) and
# sign with GPG keys of their own.
PKGS=(podman runc catatonit busybox-static debootstrap uidmap ca-certificates debian-archive-keyring rsync
      docker-registry skopeo gnupg curl)
APT_CMD="apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${PKGS[*]}"

# runc and debootstrap live in /usr/sbin, which a non-root PATH may lack.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

log() { printf 'setup-host: %s\n' "$*"; }
die() { printf 'setup-host: ERROR: %s\n' "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }

# --- 1. packages ------------------------------------------------------------
missing=()
for cmd in podman runc catatonit debootstrap rsync docker-registry skopeo gpg curl; do
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
[ -d /usr/share/fonts/truetype/liberation ] || missing+=("fonts-liberation")
# The busybox image copies /bin/busybox into an empty rootfs, so it must be
# the statically linked one from Debian's busybox-static.
if [ ! -x /bin/busybox ]; then
    missing+=("busybox-static (/bin/busybox)")
elif ldd /bin/busybox >/dev/null 2>&1; then
    missing+=("busybox-static (/bin/busybox is dynamically linked)")
fi

if [ "${#missing[@]}" -gt 0 ]; then
    log "missing: ${missing[*]}"
    if ! is_root; then
        die "not root, cannot install packages. Run as root:
    $APT_CMD"
    fi
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: this script supports Debian/Ubuntu only"
    log "installing: ${PKGS[*]}"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${PKGS[@]}"
    for cmd in podman runc catatonit debootstrap busybox docker-registry skopeo gpg curl; do
        command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' still missing after apt-get install"
    done
    ldd /bin/busybox >/dev/null 2>&1 && die "/bin/busybox is still dynamically linked (is package 'busybox' installed instead of 'busybox-static'?)"
else
    log "packages present: podman, runc, catatonit, busybox-static, debootstrap, docker-registry, skopeo"
fi

# --- 2. containers.conf -----------------------------------------------------
if [ -n "${CONTAINERS_CONF:-}" ]; then
    CONF="$CONTAINERS_CONF"   # podman itself reads only this file when it is set
elif is_root; then
    CONF=/etc/containers/containers.conf
else
    CONF="${XDG_CONFIG_HOME:-$HOME/.config}/containers/containers.conf"
fi

# has_key TABLE KEY: true if KEY is set (uncommented) inside [TABLE] of $CONF.
has_key() {
    awk -v table="$1" -v key="$2" '
        /^[[:space:]]*\[/ { gsub(/[[:space:]]/, ""); cur = $0; next }
        cur == "[" table "]" && $0 ~ "^[[:space:]]*" key "[[:space:]]*=" { found = 1 }
        END { exit !found }' "$CONF"
}

# set_key TABLE LINE: insert LINE right after the [TABLE] header, or append
# the table if the file has none (TOML forbids declaring a table twice).
set_key() {
    local tmp
    tmp="$(mktemp "$CONF.XXXXXX")"
    awk -v table="$1" -v line="$2" '
        { print }
        !done { h = $0; gsub(/[[:space:]]/, "", h); if (h == "[" table "]") { print line; done = 1 } }
        END { if (!done) { print ""; print "[" table "]"; print line } }' "$CONF" >"$tmp"
    chmod --reference="$CONF" "$tmp" 2>/dev/null || chmod 644 "$tmp"
    mv "$tmp" "$CONF"
}

mkdir -p "$(dirname "$CONF")"
if [ ! -s "$CONF" ]; then
    cat >"$CONF" <<'EOF'
# Written by toolship scripts/setup-host.sh
[containers]
# The VM lacks CAP_SYS_RESOURCE: podman's default ulimits fail with
# "setrlimit RLIMIT_NOFILE: Operation not permitted".
default_ulimits = []

[engine]
# crun fails on this host's hybrid cgroups ("cgroups in hybrid mode not supported").
runtime = "runc"
EOF
    log "wrote $CONF"
else
    changed=0
    if ! has_key containers default_ulimits; then
        [ -e "$CONF.toolship-orig" ] || cp -p "$CONF" "$CONF.toolship-orig"
        set_key containers 'default_ulimits = []'
        changed=1
    fi
    if ! has_key engine runtime; then
        [ -e "$CONF.toolship-orig" ] || cp -p "$CONF" "$CONF.toolship-orig"
        set_key engine 'runtime = "runc"'
        changed=1
    fi
    if [ "$changed" -eq 1 ]; then
        log "merged toolship settings into $CONF (original kept as $CONF.toolship-orig)"
    else
        log "$CONF already configured; left as is"
    fi
fi

# --- 3. verify --------------------------------------------------------------
errfile="$(mktemp)"
trap 'rm -f "$errfile"' EXIT
if ! runtime_name="$(podman info --format '{{.Host.OCIRuntime.Name}}' 2>"$errfile")"; then
    die "'podman info' failed: $(cat "$errfile")"
fi
if [ "$runtime_name" != "runc" ]; then
    die "podman uses OCI runtime '$runtime_name', expected 'runc' (check $CONF and ~/.config/containers/containers.conf)"
fi
podman_version="$(podman version --format '{{.Client.Version}}' 2>/dev/null || podman --version | awk '{print $NF}')"
runc_version="$(runc --version | awk 'NR == 1 {print $NF}')"
[ -n "$podman_version" ] || die "could not read podman's version"
[ -n "$runc_version" ] || die "could not read runc's version"

# --- 4. user namespaces -----------------------------------------------------
# A tiny image (one static busybox) is enough to see whether podman can mount an
# image's layers for a container whose root is mapped to another host user, and its
# other users to a range (toolship's defaults: local.task_user, local.task_subids).
userns_run() {
    local map=(--uidmap 0:65534:1 --gidmap 0:65534:1 --uidmap 1:1000000000:65535 --gidmap 1:1000000000:65535)
    podman run --rm --pull never --network none "${map[@]}" "$PROBE" /true 2>"$errfile"
}
if is_root; then
    PROBE=localhost/toolship-userns-probe
    if ! podman image exists "$PROBE"; then
        probe_dir="$(mktemp -d)"
        cp /bin/busybox "$probe_dir/true"
        tar -C "$probe_dir" -c . | podman import --quiet - "$PROBE" >/dev/null
        rm -rf "$probe_dir"
    fi
    if ! userns_run; then
        grep -q '/mapped/' "$errfile" || die "podman cannot run a container in a user namespace: $(cat "$errfile")"
        runroot="$(podman info --format '{{.Store.RunRoot}}')"
        flag="$runroot/overlay/idmapped-lower-dir"
        [ -e "$flag-true" ] || die "podman fails with idmapped layers but $flag-true is not there: $(cat "$errfile")"
        mv "$flag-true" "$flag-false"
        userns_run || die "podman still cannot run a container in a user namespace: $(cat "$errfile")"
        log "podman $podman_version cannot mount idmapped image layers on this kernel: recorded in $flag-false, so it copies each image's layers once with their owners mapped"
    fi
    log "podman runs containers in a user namespace"
fi
echo "host ready: podman $podman_version, runc $runc_version"
