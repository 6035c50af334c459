#!/usr/bin/env bash
# Run the CWL v1.0 conformance tests through cwl-tes, unchanged, against a local toolship
# server, and print the pass count:
#   CWL v1.0 conformance through cwl-tes: N passed, M failed, K unsupported (of 197) in S s
#
# usage: scripts/cwl-conformance.sh [--tags TAGS] [-n 1,3-6] [-j N] [--timeout S] [--work DIR] [-l]
#        scripts/cwl-conformance.sh --setup
#
#   --tags TAGS  only the tests with any of these tags (e.g. required); with -n, the union
#   -n LIST      only these tests, by their number in the full suite (1-197)
#   -j N         tests at once (default 2)
#   --timeout S  seconds per test (default 300)
#   --work DIR   where the per-test logs (DIR/tests/NNN-id.log), cwltest's log and JUnit XML,
#                results.json and the server's home go (default: a new, kept directory
#                under $TMPDIR, named in the output)
#   -l           list the selected tests (number, id, tags, known limit) and exit
#   --setup      only set up (below) and exit; scripts/test.sh does, for tests/e2e/test_cwl_conformance.py
#
# Exit status 1 when a test fails or is unsupported and tests/e2e/cwl-tes-limits.txt does
# not list it (cwl-tes's own limits, with their causes), or when a listed test passes.
# Sets up first (idempotent, seconds when done): nodejs on the host (cwltool evaluates the
# tests' JavaScript with it), the client venvs .venvs/cwltes and .venvs/cwltest, the images
# the tests name (scripts/build-images.sh cwl) and the project venv.  The server is the
# embedded one in a private home under the work directory, stopped at the end.
# The suite: tests/e2e/cwl-conformance (see its README.md).  Runs podman: on a shared
# machine, wrap it in `flock /tmp/toolship-heavy.lock`.
set -euo pipefail
cd "$(dirname "$0")/.."

setup_only=0
for arg in "$@"; do
    case "$arg" in
        -h | --help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"; exit 0 ;;
        --setup) setup_only=1 ;;
    esac
done

if ! command -v node >/dev/null 2>&1 && ! command -v nodejs >/dev/null 2>&1; then
    [ "$(id -u)" -eq 0 ] || { echo "cwl-conformance: nodejs is missing: apt-get install nodejs" >&2; exit 1; }
    echo "cwl-conformance: apt-get install nodejs (cwltool runs the tests' JavaScript with it) ..."
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nodejs >/dev/null
fi
scripts/client-venv.sh cwltes >/dev/null
scripts/client-venv.sh cwltest >/dev/null
scripts/build-images.sh cwl >/dev/null
scripts/venv.sh >/dev/null
[ "$setup_only" -eq 0 ] || { echo "cwl-conformance: set up"; exit 0; }
exec .venv/bin/python -m bench.cwl_conformance "$@"
