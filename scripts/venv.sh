#!/usr/bin/env bash
# Create .venv with toolship and its development tools (idempotent).
set -euo pipefail
# pip warns about local index folders this machine lists but lacks; that noise hides real errors.
pipq() { "$@" 2> >(grep -v "^WARNING: Location" >&2); }
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
stamp=.venv/.toolship-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    pipq .venv/bin/python -m pip install --quiet --upgrade pip
    pipq .venv/bin/python -m pip install --quiet -e '.[dev]'
    touch "$stamp"
fi
echo "venv ready: $(.venv/bin/toolship --version)"
