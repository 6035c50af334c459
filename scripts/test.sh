#!/usr/bin/env bash
# Set up everything this project needs and run the whole test suite: lint, types, tests.
# This is exactly what CI runs (.ci/run).  Safe to run again; fast when already set up.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup-host.sh
scripts/build-images.sh all
scripts/build-images.sh snakemake
scripts/build-images.sh toil
# PyTorch, scikit-learn, segyio, OpenMPI: the examples' image (examples/*/README.md).
scripts/build-images.sh science
# toolship itself, to deploy (docs/deploy.md; tests/e2e/test_deploy.py runs it as its systemd unit does).
scripts/build-images.sh toolship
for client in pytes pytes04 schemathesis cwltes snakemake toil; do
    scripts/client-venv.sh "$client"
done
scripts/venv.sh
# Debian's chromium and axe-core from npm for the web UI's browser tests.
scripts/browser-setup.sh
# nodejs, .venvs/cwltest and the images the CWL conformance tests name (scripts/build-images.sh cwl).
scripts/cwl-conformance.sh --setup
# .venvs/tescompliance and the image the GA4GH TES compliance suite's tasks name (alpine).
scripts/tes-compliance.sh --setup
# The Slurm backend's tests run against a real two-node cluster on this machine (slurmd
# must run as root); without it they fail, they are never skipped.
if [ "$(id -u)" -eq 0 ]; then
    scripts/slurm-cluster.sh start >/dev/null
else
    scripts/slurm-cluster.sh status >/dev/null ||
        echo "note: the Slurm tests need the cluster: sudo scripts/slurm-cluster.sh start" >&2
fi
# The API and engine tests run on PostgreSQL too (docs/deploy.md): a cluster of toolship's own.
scripts/postgres.sh start >/dev/null

echo "== ruff"
.venv/bin/ruff check --no-cache src tests bench
.venv/bin/ruff format --no-cache --check src tests bench
echo "== import layers (docs/architecture.md)"
.venv/bin/lint-imports
echo "== mypy --strict"
.venv/bin/mypy
echo "== pytest"
if [ "$#" -gt 0 ]; then
    exec .venv/bin/pytest --durations=30 "$@"
fi
# First the in-process tests (unit, and the API on SQLite and PostgreSQL: no podman, no
# Slurm, no server of their own) on both cores; then the rest one at a time, as podman and
# Slurm runs side by side on two cores make each other fail.  --durations: the slowest
# tests, the budget of CI time.
status=0
.venv/bin/pytest -n 2 --durations=15 tests/unit tests/api || status=$?
.venv/bin/pytest --durations=30 --ignore=tests/unit --ignore=tests/api || status=$?
exit "$status"
