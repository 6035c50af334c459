#!/usr/bin/env bash
# Build toolship's local container images (no registry is reachable here).
#
# usage: scripts/build-images.sh [busybox|python|science|snakemake|cwl|toil|toolship|all] [--force] [--no-cache]
#
#   busybox    localhost/toolship-busybox:latest    static busybox + all applets (~2 MB, < 2 s)
#   python     localhost/toolship-python:latest     Debian bookworm minbase + python3, numpy,
#                                                   matplotlib (debootstrap + apt; needs root)
#   science    localhost/toolship-science:latest    toolship-python + the examples' tools: PyTorch (the
#                                                   CPU wheel torch==2.13.0 pip finds on disk),
#                                                   scikit-learn (pip), segyio, OpenMPI and mpi4py
#                                                   (Debian's, apt inside the build: needs Debian's
#                                                   archive). Not part of "all" (the examples' tests)
#   snakemake  localhost/toolship-snakemake:latest  toolship-python + Snakemake, its plugins and
#                                                   rsync, also tagged snakemake/snakemake:vX
#                                                   (the image Snakemake's TES executor sends);
#                                                   versions from tests/e2e/clients/snakemake.txt.
#                                                   Not part of "all" (only the Snakemake e2e test)
#   cwl        localhost/toolship-cwl:latest        toolship-python + a `python` command (python3),
#                                                   tagged with the names the CWL v1.0 conformance
#                                                   tests and cwl-tes send: python:2-slim,
#                                                   python:2.7 (cwl-tes's default), debian:stretch-slim;
#                                                   localhost/toolship-cwl-bash:latest (ENTRYPOINT
#                                                   bash) tagged bash:4.4.12; toolship-busybox tagged
#                                                   alpine.  Not part of "all" (scripts/cwl-conformance.sh)
#   toil       localhost/toolship-toil:latest       toolship-python + Toil and its TES batch system,
#                                                   the appliance its tasks run (_toil_worker), also
#                                                   tagged with Toil's version and commit (a name Toil
#                                                   takes as TOIL_APPLIANCE_SELF without asking a
#                                                   registry); versions from tests/e2e/clients/toil.txt.
#                                                   Not part of "all" (only the Toil e2e test)
#   toolship   localhost/toolship:latest            toolship itself, to deploy (docs/deploy.md): toolship-python
#                                                   + this tree's toolship and its dependencies (pip on the
#                                                   host); `toolship serve` on 0.0.0.0:8000, its home in the
#                                                   volume /var/lib/toolship, tasks as processes in the
#                                                   container (the process runtime). Rebuilt when the tree's
#                                                   source changes (label org.toolship.source). Not part of "all"
#   --force     rebuild even if the image exists (python: re-imports the cached rootfs)
#   --no-cache  python: run debootstrap again instead of using the cached rootfs tarball
#
# The python rootfs is cached as a tarball in ${XDG_CACHE_HOME:-$HOME/.cache}/toolship/,
# so rebuilding after `podman rmi` only re-imports it (seconds).
# Environment: TOOLSHIP_DEBIAN_MIRROR overrides the mirror found in apt's sources;
# TOOLSHIP_PYTHON_PACKAGES (comma-separated, for debootstrap) and
# TOOLSHIP_PYTHON_APT_PACKAGES (space-separated, apt-get inside the rootfs;
# empty for none, e.g. no matplotlib) override the package lists.
# Run scripts/setup-host.sh first.
set -euo pipefail

BUSYBOX_IMAGE=localhost/toolship-busybox:latest
PYTHON_IMAGE=localhost/toolship-python:latest
SNAKEMAKE_IMAGE=localhost/toolship-snakemake:latest
CWL_IMAGE=localhost/toolship-cwl:latest
CWL_BASH_IMAGE=localhost/toolship-cwl-bash:latest
# The names the CWL v1.0 conformance tests (dockerPull) and cwl-tes (its default) use.
CWL_ALIASES=(python:2-slim python:2.7 debian:stretch-slim)
SNAKEMAKE_REQS="$(cd "$(dirname "$0")/.." && pwd)/tests/e2e/clients/snakemake.txt"
TOIL_IMAGE=localhost/toolship-toil:latest
SCIENCE_IMAGE=localhost/toolship-science:latest
TORCH_VERSION=2.13.0
# pip (on the host, into the image's /usr/local): torch's CPU wheel and scikit-learn.
SCIENCE_PIP_PKGS=("torch==$TORCH_VERSION" scikit-learn)
# apt (inside the build; Debian's builds match the image's numpy and each other).
SCIENCE_APT_PKGS="openmpi-bin python3-mpi4py python3-segyio"
TOOLSHIP_IMAGE=localhost/toolship:latest
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TOIL_REQS="$(cd "$(dirname "$0")/.." && pwd)/tests/e2e/clients/toil.txt"
SUITE=bookworm
# debootstrap --include list, then packages apt installs inside the rootfs
# (matplotlib goes through apt: debootstrap always takes the first of
# alternative dependencies, which for python3-fonttools means scipy, pythran,
# g++ and boost: 1.2 GB instead of ~0.5 GB).
PYTHON_PKGS="${TOOLSHIP_PYTHON_PACKAGES:-python3,python3-numpy}"
PYTHON_APT_PKGS="${TOOLSHIP_PYTHON_APT_PACKAGES-python3-munkres python3-ufolib2 python3-unicodedata2 python3-matplotlib}"
CACHE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/toolship"
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

log() { printf 'build-images: %s\n' "$*"; }
die() { printf 'build-images: ERROR: %s\n' "$*" >&2; exit 1; }
usage() { awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"; }

target=all force=0 no_cache=0
for arg in "$@"; do
    case "$arg" in
        busybox | python | science | snakemake | cwl | toil | toolship | all) target="$arg" ;;
        --force) force=1 ;;
        --no-cache) no_cache=1 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $arg" ;;
    esac
done

command -v podman >/dev/null 2>&1 || die "podman not found; run scripts/setup-host.sh"

# Scratch paths removed on exit, whatever the exit path.
SCRATCH_DIR="" ROOTFS_DIR="" PARTIAL_FILE=""
cleanup() {
    [ -z "$SCRATCH_DIR" ] || rm -rf "$SCRATCH_DIR"
    [ -z "$ROOTFS_DIR" ] || safe_rmrf "$ROOTFS_DIR"
    [ -z "$PARTIAL_FILE" ] || rm -f "$PARTIAL_FILE"
}
trap cleanup EXIT
trap 'exit 130' INT TERM   # so the EXIT trap cleans up on Ctrl-C too

elapsed() { awk -v a="$1" -v b="${EPOCHREALTIME/,/.}" 'BEGIN {printf "%.1f", b - a}'; }
now() { echo "${EPOCHREALTIME/,/.}"; }
# After a --force rebuild, drop the image the tag pointed to before, if
# nothing else uses it (never touches any other image).
drop_old() {
    local old="$1" name="$2" new
    [ -n "$old" ] || return 0
    new="$(podman image inspect --format '{{.Id}}' "$name")"
    [ "$old" = "$new" ] || podman rmi "$old" >/dev/null 2>&1 || true
}
# The host's pip installs packages for the python image: both must run the same Python.
# Prints that version (X.Y).
same_python() {
    local host_py image_py
    host_py="$("$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    image_py="$(podman run --rm --network none "$PYTHON_IMAGE" \
        python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
    [ "$host_py" = "$image_py" ] ||
        die "host python3 is $host_py but $PYTHON_IMAGE has $image_py (the host's pip installs its packages)"
    echo "$image_py"
}
# image_scripts SITE OVERLAY: the console scripts pip wrote into SITE/bin name the host's
# interpreter; give them the image's, in OVERLAY/usr/local/bin; everything readable.
image_scripts() {
    local script
    for script in "$1"/bin/*; do
        { echo '#!/usr/bin/python3'; tail -n +2 "$script"; } >"$2/usr/local/bin/${script##*/}"
        chmod 755 "$2/usr/local/bin/${script##*/}"
    done
    rm -rf "$1/bin"
    chmod -R a+rX "$2"
}
image_id() { podman image inspect --format '{{.Id}}' "$1" 2>/dev/null || true; }
image_size() { podman image inspect --format '{{.Size}}' "$1" | awk '{printf "%.1f MB", $1 / 1e6}'; }

# Remove a scratch rootfs, refusing if anything is still mounted inside it.
safe_rmrf() {
    local dir="$1"
    [ -d "$dir" ] || return 0
    awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r |
        while read -r mnt; do umount -l "$mnt" 2>/dev/null || true; done
    if awk -v d="$dir/" 'index($2, d) == 1 {found = 1} END {exit !found}' /proc/mounts; then
        die "mounts left under $dir; not removing it"
    fi
    rm -rf --one-file-system "$dir"
}

# The Debian mirror this machine's apt uses for $SUITE (deb822 .sources or
# one-line .list files), falling back to deb.debian.org.
debian_mirror() {
    if [ -n "${TOOLSHIP_DEBIAN_MIRROR:-}" ]; then echo "$TOOLSHIP_DEBIAN_MIRROR"; return; fi
    local uri=""
    shopt -s nullglob
    local sources=(/etc/apt/sources.list.d/*.sources) lists=(/etc/apt/sources.list /etc/apt/sources.list.d/*.list)
    shopt -u nullglob
    if [ "${#sources[@]}" -gt 0 ]; then
        uri="$(awk -v suite="$SUITE" 'BEGIN {RS = ""}
            {
                types = uris = suites = ""; enabled = 1
                n = split($0, lines, "\n")
                for (i = 1; i <= n; i++) {
                    l = lines[i]; if (l ~ /^[[:space:]]*#/) continue
                    if (l ~ /^Types:/)   { sub(/^Types:/, "", l);   types = " " l " " }
                    if (l ~ /^URIs:/)    { sub(/^URIs:/, "", l);    uris = l }
                    if (l ~ /^Suites:/)  { sub(/^Suites:/, "", l);  suites = " " l " " }
                    if (l ~ /^Enabled:[[:space:]]*no/) enabled = 0
                }
                if (enabled && types ~ /[[:space:]]deb[[:space:]]/ && suites ~ "[[:space:]]" suite "[[:space:]]") {
                    split(uris, u, " "); print u[1]; exit
                }
            }' "${sources[@]}" /dev/null)"
    fi
    if [ -z "$uri" ] && [ "${#lists[@]}" -gt 0 ]; then
        uri="$(awk -v suite="$SUITE" '$1 == "deb" {
                i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
                if ($(i + 1) == suite) { print $i; exit }
            }' "${lists[@]}" /dev/null 2>/dev/null)"
    fi
    if [ -z "$uri" ]; then
        uri=http://deb.debian.org/debian
        log "no apt source for '$SUITE' found; using $uri" >&2
    fi
    echo "${uri%/}"
}

build_busybox() {
    if [ "$force" -eq 0 ] && podman image exists "$BUSYBOX_IMAGE"; then
        log "$BUSYBOX_IMAGE exists ($(image_size "$BUSYBOX_IMAGE")); skipping (use --force to rebuild)"
        return
    fi
    [ -x /bin/busybox ] || die "/bin/busybox not found; run scripts/setup-host.sh (package busybox-static)"
    ldd /bin/busybox >/dev/null 2>&1 && die "/bin/busybox is dynamically linked; install busybox-static"
    local t0 dir applet n=0 old
    t0="$(now)"
    old="$(image_id "$BUSYBOX_IMAGE")"
    dir="$(mktemp -d)"
    SCRATCH_DIR="$dir"
    chmod 755 "$dir"   # becomes the image's /
    mkdir -p "$dir"/{bin,etc,tmp,work,root}
    chmod 1777 "$dir/tmp"
    cp /bin/busybox "$dir/bin/busybox"
    for applet in $(/bin/busybox --list); do
        [ "$applet" = busybox ] && continue
        ln -s busybox "$dir/bin/$applet"
        n=$((n + 1))
    done
    cat >"$dir/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
    cat >"$dir/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
    tar -C "$dir" --numeric-owner --owner=0 --group=0 -c . |
        podman import --quiet --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/bin' - "$BUSYBOX_IMAGE" >/dev/null
    rm -rf "$dir"; SCRATCH_DIR=""
    drop_old "$old" "$BUSYBOX_IMAGE"
    log "built $BUSYBOX_IMAGE ($n applets, $(image_size "$BUSYBOX_IMAGE")) in $(elapsed "$t0") s"
}

build_python() {
    if [ "$force" -eq 0 ] && podman image exists "$PYTHON_IMAGE"; then
        log "$PYTHON_IMAGE exists ($(image_size "$PYTHON_IMAGE")); skipping (use --force to rebuild)"
        return
    fi
    local key tarball t0 mirror dir old
    old="$(image_id "$PYTHON_IMAGE")"
    key="$(printf '%s|%s|%s' "$SUITE" "$PYTHON_PKGS" "$PYTHON_APT_PKGS" | sha256sum | cut -c1-12)"
    tarball="$CACHE_DIR/python-$SUITE-$key.tar"
    t0="$(now)"
    if [ "$no_cache" -eq 1 ] || [ ! -s "$tarball" ]; then
        [ "$(id -u)" -eq 0 ] || die "debootstrap needs root (or a cached rootfs at $tarball)"
        command -v debootstrap >/dev/null 2>&1 || die "debootstrap not found; run scripts/setup-host.sh"
        mirror="$(debian_mirror)"
        mkdir -p "$CACHE_DIR"
        dir="$(mktemp -d "$CACHE_DIR/rootfs.XXXXXX")"
        chmod 755 "$dir"   # becomes the image's /; apt's _apt user must traverse it
        ROOTFS_DIR="$dir" PARTIAL_FILE="$tarball.tmp"
        log "debootstrap $SUITE ($PYTHON_PKGS) from $mirror ..."
        if ! debootstrap --variant=minbase --include="$PYTHON_PKGS" "$SUITE" "$dir" "$mirror" \
            >"$CACHE_DIR/debootstrap.log" 2>&1; then
            tail -n 20 "$CACHE_DIR/debootstrap.log" >&2
            die "debootstrap failed (full log: $CACHE_DIR/debootstrap.log)"
        fi
        log "debootstrap done in $(elapsed "$t0") s"
        if [ -n "$PYTHON_APT_PKGS" ]; then
            # apt, unlike debootstrap, honours alternatives already being
            # installed, so the explicit munkres/ufolib2/unicodedata2 keep
            # python3-fonttools from pulling scipy + pythran + g++ + boost.
            log "apt-get install $PYTHON_APT_PKGS ..."
            mount -t proc proc "$dir/proc"
            if ! chroot "$dir" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
                DEBIAN_FRONTEND=noninteractive sh -c \
                "apt-get update -q && apt-get install -y -q --no-install-recommends $PYTHON_APT_PKGS" \
                >"$CACHE_DIR/apt.log" 2>&1; then
                umount "$dir/proc"
                tail -n 20 "$CACHE_DIR/apt.log" >&2
                die "apt-get install inside the rootfs failed (full log: $CACHE_DIR/apt.log)"
            fi
            umount "$dir/proc"
            log "apt-get done at $(elapsed "$t0") s"
        fi
        # Build matplotlib's font cache once, at a path every user can write.
        if [ -e "$dir/usr/lib/python3/dist-packages/matplotlib" ]; then
            mkdir -p "$dir/var/cache/matplotlib"
            chmod 1777 "$dir/var/cache/matplotlib"
            chroot "$dir" /usr/bin/env -i HOME=/root MPLCONFIGDIR=/var/cache/matplotlib MPLBACKEND=Agg \
                python3 -c 'import matplotlib.pyplot' ||
                die "matplotlib does not import inside the new rootfs"
        fi
        rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/cache/apt/*.bin \
            "$dir"/var/lib/apt/lists/* "$dir"/var/log/*.log "$dir"/var/log/apt/*
        tar -C "$dir" --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
            -cf "$tarball.tmp" .
        mv "$tarball.tmp" "$tarball"
        PARTIAL_FILE=""
        find "$CACHE_DIR" -maxdepth 1 -name "python-$SUITE-*.tar" ! -path "$tarball" -delete   # stale
        safe_rmrf "$dir"; ROOTFS_DIR=""
        log "cached rootfs: $tarball ($(du -m "$tarball" | cut -f1) MB)"
    else
        log "using cached rootfs $tarball (--no-cache to run debootstrap again)"
    fi
    podman import --quiet \
        --change 'CMD ["/bin/bash"]' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'ENV LANG=C.UTF-8' \
        --change 'ENV MPLBACKEND=Agg' \
        --change 'ENV MPLCONFIGDIR=/var/cache/matplotlib' \
        "$tarball" "$PYTHON_IMAGE" >/dev/null
    drop_old "$old" "$PYTHON_IMAGE"
    log "built $PYTHON_IMAGE ($(image_size "$PYTHON_IMAGE")) in $(elapsed "$t0") s"
}

# Snakemake for its TES executor, whose jobs run `python -m snakemake` inside the
# task's container.  Everything is prepared on the host (no network is used inside
# a container): Python packages are built into a wheelhouse and installed with
# `pip install --target` by the host's Python, which must have the image's
# python3 minor version; rsync (the fs storage plugin copies with it) comes from
# Debian's archive via `apt-get download`.  The wheelhouse stays in the image, with
# pip set to use only it, for the `pip install --target .snakemake/pip-deployments
# <storage plugins>` that Snakemake puts in front of every remote job.
build_snakemake() {
    local version
    version="$(sed -n 's/^snakemake==\([^[:space:]]*\).*/\1/p' "$SNAKEMAKE_REQS")"
    [ -n "$version" ] || die "no 'snakemake==VERSION' line in $SNAKEMAKE_REQS"
    local alias_tag="snakemake/snakemake:v$version"
    if [ "$force" -eq 0 ] && podman image exists "$SNAKEMAKE_IMAGE" &&
        podman image exists "$alias_tag"; then
        log "$SNAKEMAKE_IMAGE exists ($(image_size "$SNAKEMAKE_IMAGE")); skipping (use --force to rebuild)"
        return
    fi
    podman image exists "$PYTHON_IMAGE" || build_python
    local t0 dir old python image_py deb tool got
    t0="$(now)"
    old="$(image_id "$SNAKEMAKE_IMAGE")"
    python="$(command -v python3)" || die "python3 not found on the host"
    image_py="$(same_python "$python")"
    dir="$(mktemp -d)"
    SCRATCH_DIR="$dir"
    local overlay="$dir/ctx/overlay"
    mkdir -p "$overlay/opt/snakemake" "$overlay/usr/local/bin" "$dir/debs"
    log "pip wheel -r $SNAKEMAKE_REQS ..."
    if ! "$python" -m pip wheel --quiet --disable-pip-version-check \
        -w "$overlay/opt/snakemake/wheels" -r "$SNAKEMAKE_REQS" pip >"$dir/pip.log" 2>&1 ||
        ! "$python" -m pip install --quiet --disable-pip-version-check --no-index --no-compile \
            --find-links "$overlay/opt/snakemake/wheels" --target "$overlay/opt/snakemake/site" \
            -r "$SNAKEMAKE_REQS" pip >>"$dir/pip.log" 2>&1; then
        grep -v '^WARNING: Location' "$dir/pip.log" | tail -n 20 >&2
        die "installing $SNAKEMAKE_REQS failed"
    fi
    # Console scripts pip wrote name the host's interpreter; the image gets its own below.
    rm -rf "$overlay/opt/snakemake/site/bin"
    log "pip done at $(elapsed "$t0") s; apt-get download rsync ..."
    if ! (cd "$dir/debs" && apt-get download rsync libpopt0) >"$dir/apt.log" 2>&1; then
        tail -n 20 "$dir/apt.log" >&2
        die "apt-get download rsync libpopt0 failed (run apt-get update first?)"
    fi
    for deb in "$dir"/debs/*.deb; do dpkg-deb -x "$deb" "$overlay"; done
    # The image has a merged /usr (/lib -> usr/lib): never copy a real /lib over it.
    for d in bin sbin lib lib64; do
        [ -d "$overlay/$d" ] || continue
        mkdir -p "$overlay/usr/$d"
        cp -a "$overlay/$d/." "$overlay/usr/$d/"
        rm -rf "${overlay:?}/$d"
    done
    rm -rf "$overlay/usr/share" "$overlay/etc" "$overlay/usr/lib/systemd"
    ln -s /usr/bin/python3 "$overlay/usr/local/bin/python"
    for tool in snakemake pip; do
        printf '#!/bin/sh\nexec /usr/bin/python3 -m %s "$@"\n' "$tool" >"$overlay/usr/local/bin/$tool"
        chmod 755 "$overlay/usr/local/bin/$tool"
    done
    chmod -R a+rX "$overlay"
    cat >"$dir/ctx/Containerfile" <<CONTAINERFILE
FROM $PYTHON_IMAGE
COPY overlay/ /
ENV PYTHONPATH=/opt/snakemake/site \\
    PIP_NO_INDEX=1 \\
    PIP_FIND_LINKS=/opt/snakemake/wheels \\
    PIP_NO_CACHE_DIR=1 \\
    PIP_DISABLE_PIP_VERSION_CHECK=1 \\
    PIP_ROOT_USER_ACTION=ignore \\
    XDG_CACHE_HOME=/tmp/.cache
CMD ["/usr/local/bin/snakemake", "--version"]
CONTAINERFILE
    podman build --quiet --network none -t "$SNAKEMAKE_IMAGE" "$dir/ctx" >/dev/null
    podman tag "$SNAKEMAKE_IMAGE" "$alias_tag"
    rm -rf "$dir"; SCRATCH_DIR=""
    drop_old "$old" "$SNAKEMAKE_IMAGE"
    got="$(podman run --rm --network none --read-only "$alias_tag" snakemake --version)"
    [ "$got" = "$version" ] || die "snakemake --version in the new image says '$got', not $version"
    log "built $SNAKEMAKE_IMAGE = $alias_tag (snakemake $version, $(image_size "$SNAKEMAKE_IMAGE")) in $(elapsed "$t0") s"
}

# The images the CWL v1.0 conformance tests name, made from ours (nothing can be pulled).
# Their tools (python, sh, coreutils, tar, rev) come from toolship-python; none of the
# tests' Python needs Python 2.  bash:4.4.12 is the one test of an image's ENTRYPOINT.
build_cwl() {
    local name missing=0
    for name in "$CWL_IMAGE" "${CWL_ALIASES[@]}" "$CWL_BASH_IMAGE" bash:4.4.12 alpine; do
        podman image exists "$name" || missing=1
    done
    if [ "$force" -eq 0 ] && [ "$missing" -eq 0 ]; then
        log "$CWL_IMAGE and its CWL names exist; skipping (use --force to rebuild)"
        return
    fi
    podman image exists "$PYTHON_IMAGE" || build_python
    podman image exists "$BUSYBOX_IMAGE" || build_busybox
    local t0 dir old old_bash got
    t0="$(now)"
    old="$(image_id "$CWL_IMAGE")" old_bash="$(image_id "$CWL_BASH_IMAGE")"
    dir="$(mktemp -d)"
    SCRATCH_DIR="$dir"
    mkdir -p "$dir/ctx/overlay/usr/local/bin"
    ln -s /usr/bin/python3 "$dir/ctx/overlay/usr/local/bin/python"
    printf 'FROM %s\nCOPY overlay/ /\n' "$PYTHON_IMAGE" >"$dir/ctx/Containerfile"
    podman build --quiet --network none -t "$CWL_IMAGE" "$dir/ctx" >/dev/null
    printf 'FROM %s\nENTRYPOINT ["/bin/bash"]\nCMD []\n' "$CWL_IMAGE" >"$dir/ctx/Containerfile"
    podman build --quiet --network none -t "$CWL_BASH_IMAGE" "$dir/ctx" >/dev/null
    rm -rf "$dir"; SCRATCH_DIR=""
    for name in "${CWL_ALIASES[@]}"; do podman tag "$CWL_IMAGE" "$name"; done
    podman tag "$CWL_BASH_IMAGE" bash:4.4.12
    podman tag "$BUSYBOX_IMAGE" alpine
    drop_old "$old" "$CWL_IMAGE"
    drop_old "$old_bash" "$CWL_BASH_IMAGE"
    got="$(podman run --rm --network none --read-only python:2.7 python -c 'print("ok")')"
    [ "$got" = ok ] || die "python in $CWL_IMAGE says '$got', not ok"
    got="$(podman run --rm --network none --read-only bash:4.4.12 -c 'echo ok')"
    [ "$got" = ok ] || die "bash:4.4.12 -c 'echo ok' says '$got', not ok"
    log "built $CWL_IMAGE = ${CWL_ALIASES[*]}, $CWL_BASH_IMAGE = bash:4.4.12, alpine = $BUSYBOX_IMAGE in $(elapsed "$t0") s"
}

# Toil's appliance for its TES batch system, whose tasks run `_toil_contained_executor`
# (then Toil's worker) inside the container: the same Toil and Python as the client.
# As for snakemake, pip runs on the host (its python3 must have the image's minor
# version) and installs into the image's /usr/local dist-packages; the console
# scripts get the image's interpreter.  Toil checks TOIL_APPLIANCE_SELF against a
# registry unless the name holds Toil's commit, so the image is also tagged
# localhost/toolship-toil:<toil.version.version> (e.g. 7.0.0-d569ea57...).
build_toil() {
    local version
    version="$(sed -n 's/^toil==\([^[:space:]]*\).*/\1/p' "$TOIL_REQS")"
    [ -n "$version" ] || die "no 'toil==VERSION' line in $TOIL_REQS"
    if [ "$force" -eq 0 ] && podman image exists "$TOIL_IMAGE" &&
        [ -n "$(podman images --quiet --filter "reference=localhost/toolship-toil:$version-*")" ]; then
        log "$TOIL_IMAGE exists ($(image_size "$TOIL_IMAGE")); skipping (use --force to rebuild)"
        return
    fi
    podman image exists "$PYTHON_IMAGE" || build_python
    local t0 dir old python image_py site script full
    t0="$(now)"
    old="$(image_id "$TOIL_IMAGE")"
    python="$(command -v python3)" || die "python3 not found on the host"
    image_py="$(same_python "$python")"
    dir="$(mktemp -d)"
    SCRATCH_DIR="$dir"
    local overlay="$dir/ctx/overlay"
    site="$overlay/usr/local/lib/python$image_py/dist-packages"
    mkdir -p "$site" "$overlay/usr/local/bin"
    log "pip install -r $TOIL_REQS ..."
    if ! "$python" -m pip wheel --quiet --disable-pip-version-check -w "$dir/wheels" \
        -r "$TOIL_REQS" >"$dir/pip.log" 2>&1 ||
        ! "$python" -m pip install --quiet --disable-pip-version-check --no-index --no-compile \
            --find-links "$dir/wheels" --target "$site" -r "$TOIL_REQS" >>"$dir/pip.log" 2>&1; then
        grep -v '^WARNING: Location' "$dir/pip.log" | tail -n 20 >&2
        die "installing $TOIL_REQS failed"
    fi
    image_scripts "$site" "$overlay"
    printf 'FROM %s\nCOPY overlay/ /\nCMD ["/usr/local/bin/toil", "--version"]\n' "$PYTHON_IMAGE" \
        >"$dir/ctx/Containerfile"
    podman build --quiet --network none -t "$TOIL_IMAGE" "$dir/ctx" >/dev/null
    rm -rf "$dir"; SCRATCH_DIR=""
    full="$(podman run --rm --network none --read-only "$TOIL_IMAGE" \
        python3 -c 'import toil.version; print(toil.version.version)')"
    case "$full" in
        "$version"-*) ;;
        *) die "toil in the new image says version '$full', not $version-<commit>" ;;
    esac
    podman run --rm --network none --read-only "$TOIL_IMAGE" _toil_worker --help >/dev/null 2>&1 ||
        die "_toil_worker does not run in the new image"
    podman tag "$TOIL_IMAGE" "localhost/toolship-toil:$full"
    drop_old "$old" "$TOIL_IMAGE"
    log "built $TOIL_IMAGE = localhost/toolship-toil:$full ($(image_size "$TOIL_IMAGE")) in $(elapsed "$t0") s"
}

# The examples' image (examples/ddp, examples/optuna, examples/seismic): PyTorch,
# scikit-learn, segyio, OpenMPI + mpi4py.  pip runs on the host as for toil (its
# python3 must have the image's minor version), into the image's /usr/local
# dist-packages, with the image's own numpy (Debian's) held as a constraint and
# left out: a second numpy would shadow the one matplotlib and Debian's packages
# were built against.  Debian's OpenMPI, mpi4py and segyio come from apt inside
# the build (mpirun is set up by update-alternatives, which unpacking alone skips).
build_science() {
    if [ "$force" -eq 0 ] && podman image exists "$SCIENCE_IMAGE"; then
        log "$SCIENCE_IMAGE exists ($(image_size "$SCIENCE_IMAGE")); skipping (use --force to rebuild)"
        return
    fi
    podman image exists "$PYTHON_IMAGE" || build_python
    local t0 dir old python image_py numpy site script got
    t0="$(now)"
    old="$(image_id "$SCIENCE_IMAGE")"
    python="$(command -v python3)" || die "python3 not found on the host"
    image_py="$(same_python "$python")"
    numpy="$(podman run --rm --network none "$PYTHON_IMAGE" python3 -c 'import numpy; print(numpy.__version__)')"
    dir="$(mktemp -d)"
    SCRATCH_DIR="$dir"
    local overlay="$dir/ctx/overlay"
    site="$overlay/usr/local/lib/python$image_py/dist-packages"
    mkdir -p "$site" "$overlay/usr/local/bin"
    echo "numpy==$numpy" >"$dir/constraints.txt"
    log "pip install ${SCIENCE_PIP_PKGS[*]} (numpy==$numpy from the image) ..."
    if ! "$python" -m pip install --quiet --disable-pip-version-check --no-compile --target "$site" \
        -c "$dir/constraints.txt" "${SCIENCE_PIP_PKGS[@]}" >"$dir/pip.log" 2>&1; then
        grep -v '^WARNING: Location' "$dir/pip.log" | tail -n 20 >&2
        die "pip install ${SCIENCE_PIP_PKGS[*]} failed (torch==$TORCH_VERSION: is its CPU wheel on disk?)"
    fi
    rm -rf "$site"/numpy "$site"/numpy-*.dist-info "$site"/numpy.libs "$site"/bin/f2py*
    # torch's C++ tests, test binaries and headers (for building extensions): 190 MB
    # that nothing here runs.
    find "$site/torch/bin" -mindepth 1 ! -name torch_shm_manager -delete
    rm -rf "$site/torch/test" "$site/torch/include"
    image_scripts "$site" "$overlay"
    log "pip done at $(elapsed "$t0") s ($(du -sm "$overlay" | cut -f1) MB); podman build (apt-get install $SCIENCE_APT_PKGS) ..."
    # One RUN, one layer: the overlay is mounted rather than COPYed (a COPY layer and
    # its commit would each write the gigabyte once more), and the image's python3
    # compiles it (in parallel, with the paths it has in the image; torch's tests
    # written for Python 3.12 are left out, as pip's own compile skips them).
    cat >"$dir/Containerfile" <<CONTAINERFILE
FROM $PYTHON_IMAGE
RUN apt-get update -q >/dev/null && \\
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $SCIENCE_APT_PKGS >/dev/null && \\
    rm -rf /var/cache/apt/archives/*.deb /var/cache/apt/*.bin /var/lib/apt/lists/* /var/log/apt/* /var/log/*.log && \\
    cp -a /overlay/. / && \\
    python3 -m compileall -q -j 0 -x '/py31[2-9]_' /usr/local/lib/python$image_py/dist-packages >/dev/null
# Tasks run as root inside their containers; OpenMPI refuses that unless told.
ENV OMPI_ALLOW_RUN_AS_ROOT=1 \\
    OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
CONTAINERFILE
    if ! podman build --quiet --volume "$overlay:/overlay:ro" -f "$dir/Containerfile" \
        -t "$SCIENCE_IMAGE" "$dir" >"$dir/build.log" 2>&1; then
        tail -n 20 "$dir/build.log" >&2
        die "podman build of $SCIENCE_IMAGE failed (apt-get inside the build needs Debian's archive)"
    fi
    rm -rf "$dir"; SCRATCH_DIR=""
    drop_old "$old" "$SCIENCE_IMAGE"
    got="$(podman run --rm --network none --read-only "$SCIENCE_IMAGE" python3 -c \
        'import torch, sklearn, segyio, mpi4py, numpy; print(torch.__version__.split("+")[0], numpy.__version__)')"
    [ "$got" = "$TORCH_VERSION $numpy" ] ||
        die "torch and numpy in $SCIENCE_IMAGE say '$got', not '$TORCH_VERSION $numpy'"
    podman run --rm --network none --read-only "$SCIENCE_IMAGE" sh -c 'torchrun --help && mpirun --version' \
        >/dev/null 2>&1 || die "torchrun or mpirun does not run in $SCIENCE_IMAGE"
    log "built $SCIENCE_IMAGE (torch $TORCH_VERSION, $(image_size "$SCIENCE_IMAGE")) in $(elapsed "$t0") s"
}

# The source the toolship image is built from: every file pip would read.
source_key() {
    (cd "$ROOT" && find src pyproject.toml README.md -type f ! -name '*.pyc' -print0 | sort -z |
        xargs -0 sha256sum | sha256sum | cut -c1-16)
}

build_toolship() {
    local key
    key="$(source_key)"
    if [ "$force" -eq 0 ] && podman image exists "$TOOLSHIP_IMAGE" &&
        [ "$(podman image inspect --format '{{index .Labels "org.toolship.source"}}' "$TOOLSHIP_IMAGE")" = "$key" ]; then
        log "$TOOLSHIP_IMAGE exists for this source ($(image_size "$TOOLSHIP_IMAGE")); skipping"
        return
    fi
    podman image exists "$PYTHON_IMAGE" || build_python
    local t0 dir old python image_py site script
    t0="$(now)"
    old="$(image_id "$TOOLSHIP_IMAGE")"
    python="$(command -v python3)" || die "python3 not found on the host"
    image_py="$(same_python "$python")"
    dir="$(mktemp -d)"
    SCRATCH_DIR="$dir"
    local overlay="$dir/ctx/overlay"
    site="$overlay/usr/local/lib/python$image_py/dist-packages"
    mkdir -p "$site" "$overlay/usr/local/bin"
    log "pip install toolship from $ROOT and its dependencies ..."
    if ! "$python" -m pip install --quiet --disable-pip-version-check --no-compile --target "$site" \
        "$ROOT" >"$dir/pip.log" 2>&1; then
        grep -v '^WARNING: Location' "$dir/pip.log" | tail -n 20 >&2
        die "pip install of toolship failed (it needs PyPI, or the packages in pip's cache)"
    fi
    image_scripts "$site" "$overlay"
    log "pip done at $(elapsed "$t0") s ($(du -sm "$overlay" | cut -f1) MB); podman build ..."
    cat >"$dir/Containerfile" <<CONTAINERFILE
FROM $PYTHON_IMAGE
RUN cp -a /overlay/. / && \\
    python3 -m compileall -q -j 0 /usr/local/lib/python$image_py/dist-packages >/dev/null && \\
    mkdir -p /var/lib/toolship && chmod 700 /var/lib/toolship
# The server's home (database, work folders, keys) lives in a volume; tasks run as
# processes inside this container (no container runtime in a container), as nobody.
ENV TOOLSHIP_HOME=/var/lib/toolship \\
    TOOLSHIP_LOCAL__RUNTIME=process
VOLUME /var/lib/toolship
EXPOSE 8000
LABEL org.toolship.source=$key \\
      org.opencontainers.image.title=toolship \\
      org.opencontainers.image.description="toolship's server: GA4GH TES v1.1, services, provenance"
ENTRYPOINT ["toolship"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
CONTAINERFILE
    # --no-cache: the RUN that copies the overlay reads like the last build's, and podman
    # would reuse that layer (the old source) for it.
    if ! podman build --quiet --no-cache --volume "$overlay:/overlay:ro" -f "$dir/Containerfile" \
        -t "$TOOLSHIP_IMAGE" "$dir" >"$dir/build.log" 2>&1; then
        tail -n 20 "$dir/build.log" >&2
        die "podman build of $TOOLSHIP_IMAGE failed"
    fi
    rm -rf "$dir"; SCRATCH_DIR=""
    drop_old "$old" "$TOOLSHIP_IMAGE"
    podman run --rm --network none "$TOOLSHIP_IMAGE" --version >/dev/null ||
        die "toolship --version does not run in $TOOLSHIP_IMAGE"
    log "built $TOOLSHIP_IMAGE ($(podman run --rm --network none "$TOOLSHIP_IMAGE" --version), $(image_size "$TOOLSHIP_IMAGE")) in $(elapsed "$t0") s"
}

case "$target" in
    toolship) build_toolship ;;
    busybox) build_busybox ;;
    python) build_python ;;
    science) build_science ;;
    snakemake) build_snakemake ;;
    cwl) build_cwl ;;
    toil) build_toil ;;
    all) build_busybox; build_python ;;
esac
