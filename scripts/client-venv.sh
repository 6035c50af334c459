#!/usr/bin/env bash
# Create .venvs/NAME with a real TES client installed from tests/e2e/clients/NAME.txt.
# Real clients pin conflicting libraries (py-tes 1.1 vs 0.4), so each gets its own venv.
set -euo pipefail
# pip warns about local index folders this machine lists but lacks; that noise hides real errors.
pipq() { "$@" 2> >(grep -v "^WARNING: Location" >&2); }
cd "$(dirname "$0")/.."
name=${1:?usage: scripts/client-venv.sh NAME (one of: $(ls tests/e2e/clients | sed 's/\.txt$//' | tr '\n' ' '))}
reqs=tests/e2e/clients/$name.txt
[ -f "$reqs" ] || { echo "client-venv: no $reqs" >&2; exit 1; }
venv=.venvs/$name
# Old clients may need an old build backend for one sdist: NAME.build-constraints says which.
if [ -f "tests/e2e/clients/$name.build-constraints" ]; then
    export PIP_BUILD_CONSTRAINT=$PWD/tests/e2e/clients/$name.build-constraints
fi
stamp=$venv/.installed
if [ ! -f "$stamp" ] || [ "$reqs" -nt "$stamp" ]; then
    python3 -m venv "$venv"
    pipq "$venv/bin/python" -m pip install --quiet --upgrade pip
    pipq "$venv/bin/python" -m pip install --quiet -r "$reqs"
    touch "$stamp"
fi
echo "client venv ready: $venv"
