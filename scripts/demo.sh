#!/usr/bin/env bash
# Set up everything and run toolship's main job on the embedded default:
# a seismic band-pass filter (Python + NumPy in a locally built Debian image)
# reading from and writing to a local data folder, then ps / logs / show.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

scripts/setup-host.sh
scripts/build-images.sh python
scripts/venv.sh
export PATH="$repo/.venv/bin:$PATH"

data=${TOOLSHIP_DEMO_DATA:-$HOME/toolship-demo}
mkdir -p "$data/raw" "$data/results"
image=localhost/toolship-python
tool=examples/seismic/seismic.py

echo
echo "== 1. generate a synthetic shot gather into $data/raw"
toolship run --name seismic-generate --content "seismic.py=@$tool" \
    -o "traces.npy=$data/raw/traces.npy" \
    "$image" -- python3 seismic.py generate --out traces.npy --traces 48 --samples 1000

echo
echo "== 2. band-pass filter it (8-40 Hz) and plot raw vs filtered"
toolship run --name seismic-bandpass --cpu 1 --memory 1G --timeout 5m \
    -e MPLCONFIGDIR=/tmp/matplotlib --content "seismic.py=@$tool" \
    -i "traces.npy=$data/raw/traces.npy" \
    -o "out/*=$data/results/" \
    "$image" -- sh -c 'mkdir -p out && python3 seismic.py filter --input traces.npy \
        --low 8 --high 40 --out out/filtered.npy --plot out/bandpass.png'

id=$(toolship ps --all --name seismic-bandpass --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
echo
echo "== 3. toolship ps --all"
toolship ps --all --limit 5
echo
echo "== 4. toolship logs $id"
toolship logs "$id"
echo
echo "== 5. toolship show $id"
toolship show "$id"
echo
echo "results in $data/results:"
ls -l "$data/results"
