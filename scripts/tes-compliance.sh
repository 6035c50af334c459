#!/usr/bin/env bash
# Run the GA4GH TES compliance suite (ELIXIR Cloud's openapi-test-runner, vendored unchanged
# in tests/e2e/tes-compliance) against a local toolship server, and print the pass counts:
#   TES 1.1.0 at /ga4gh/tes/v1: N passed, M failed, K known suite bugs (T tests; ...)
#   TES 1.0.0 at /v1: ...
#
# usage: scripts/tes-compliance.sh [--version 1.1.0|1.0.0] [-j N] [--timeout S] [--work DIR]
#        scripts/tes-compliance.sh --setup
#
#   --version V  only this TES version (repeatable; default both)
#   -j N         test files at once (default 4; the runner mostly waits on its polls)
#   --timeout S  seconds per test file (default 600)
#   --work DIR   where the per-test logs and reports (DIR/VERSION/TEST.log, DIR/VERSION/TEST/
#                report.json), results.json and the server's home go (default: a new, kept
#                directory under $TMPDIR, named in the output)
#   --setup      only set up (below) and exit
#
# Exit status 1 when a test fails that bench/tes_compliance.py's SUITE_BUGS (the suite's
# own bugs, each with its cause) does not explain.  Sets up first (idempotent, seconds when
# done): the client venv .venvs/tescompliance, the image the suite's tasks name (`alpine`,
# toolship-busybox tagged so, as scripts/build-images.sh cwl does) and the project venv.
# The server is the embedded one in a private home under the work directory, stopped at the
# end.  Runs podman: on a shared machine, wrap it in `flock /tmp/toolship-heavy.lock`.
set -euo pipefail
cd "$(dirname "$0")/.."

setup_only=0
for arg in "$@"; do
    case "$arg" in
        -h | --help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"; exit 0 ;;
        --setup) setup_only=1 ;;
    esac
done

scripts/client-venv.sh tescompliance >/dev/null
scripts/build-images.sh busybox >/dev/null
podman image exists alpine || podman tag localhost/toolship-busybox:latest alpine
scripts/venv.sh >/dev/null
[ "$setup_only" -eq 0 ] || { echo "tes-compliance: set up"; exit 0; }
exec .venv/bin/python -m bench.tes_compliance "$@"
