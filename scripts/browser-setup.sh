#!/usr/bin/env bash
# What the web UI's browser tests (tests/browser) need besides Playwright (a dev dependency
# in .venv): Debian's chromium (Playwright's own browser download does not work offline) with
# the fonts it recommends (legible screenshots), and axe-core, the accessibility checker
# they inject into every page, from npm into .browser/ (git-ignored).  scripts/test.sh runs
# it; the demo does not need a browser.  As root it installs what is missing; otherwise it
# prints the apt-get line.  Idempotent: about 10 ms when everything is there.
set -euo pipefail
cd "$(dirname "$0")/.."

AXE_VERSION=4.11.0
DIR=.browser
installed="$DIR/node_modules/axe-core/package.json"

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium fonts-liberation)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ "${#missing[@]}" -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "browser-setup: missing ${missing[*]}: run as root:" >&2
        echo "    apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
        exit 1
    fi
    echo "browser-setup: apt-get install ${missing[*]} ..."
    apt-get update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    command -v chromium >/dev/null 2>&1 || { echo "browser-setup: chromium still missing after apt-get install" >&2; exit 1; }
fi

if [ -f "$installed" ] && grep -q "\"version\": \"$AXE_VERSION\"" "$installed"; then
    echo "browser-setup: chromium and axe-core $AXE_VERSION present"
    exit 0
fi
mkdir -p "$DIR"
# --prefix keeps it out of the project's root; --no-save needs no package.json of ours.
npm install --prefix "$DIR" --no-save --no-audit --no-fund --loglevel=error "axe-core@$AXE_VERSION"
[ -f "$DIR/node_modules/axe-core/axe.min.js" ] || { echo "browser-setup: $DIR/node_modules/axe-core/axe.min.js missing after npm install" >&2; exit 1; }
echo "browser-setup: installed axe-core $AXE_VERSION in $DIR"
