#!/usr/bin/env bash
# What the web UI's browser tests (tests/browser) need besides Debian's chromium (which
# scripts/setup-host.sh installs) and Playwright (a dev dependency in .venv):
# axe-core, the accessibility checker they inject into every page, from npm into
# .browser/ (git-ignored).  Idempotent: about 10 ms when it is there already.
set -euo pipefail
cd "$(dirname "$0")/.."

AXE_VERSION=4.11.0
DIR=.browser
installed="$DIR/node_modules/axe-core/package.json"

if [ -f "$installed" ] && grep -q "\"version\": \"$AXE_VERSION\"" "$installed"; then
    echo "browser-setup: axe-core $AXE_VERSION present in $DIR"
    exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
    [ "$(id -u)" -eq 0 ] || { echo "browser-setup: npm is missing: apt-get install npm" >&2; exit 1; }
    echo "browser-setup: apt-get install npm ..."
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends npm >/dev/null
fi
mkdir -p "$DIR"
# --prefix keeps it out of the project's root; --no-save needs no package.json of ours.
npm install --prefix "$DIR" --no-save --no-audit --no-fund --loglevel=error "axe-core@$AXE_VERSION"
[ -f "$DIR/node_modules/axe-core/axe.min.js" ] || { echo "browser-setup: $DIR/node_modules/axe-core/axe.min.js missing after npm install" >&2; exit 1; }
echo "browser-setup: installed axe-core $AXE_VERSION in $DIR"
