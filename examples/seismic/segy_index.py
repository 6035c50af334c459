#!/usr/bin/env python3
"""A searchable index of the SEG-Y files of a survey: one entry per file, merged into SQLite.

  segy_index.py make --to s3://lab/segy/ [--files 6 --inlines 8 --crosslines 6 --seed 1]
  segy_index.py index --out index.json FILE...           (a map task: one entry per FILE)
  segy_index.py merge --out index.sqlite [--plot coverage.png] ENTRIES.json...  (the reduce)
  segy_index.py query s3://lab/index/reduce/index.sqlite --inline N | --crossline N

``make`` writes a made-up 3-D post-stack survey cut in tiles, one SEG-Y file per tile
(``tile-NN.segy``: IEEE floats, inline-sorted, dipping reflectors); two vintages with
different sample intervals and gains.  ``index`` reads each file with segyio and writes
its entry: trace and sample counts, sample interval, format, sorting, inline and
crossline numbers, CDP X/Y bounds, amplitude min/max/RMS.  ``merge`` puts the entries of
every map task into one SQLite file (tables ``files`` and ``lines``: which file holds
which inline and crossline), prints a summary and draws the tiles' coverage.  ``query``
answers "which files hold inline N" from the index alone.  ``make`` writes to any fsspec
URL and ``query`` reads from one (an S3 endpoint other than AWS from $AWS_ENDPOINT_URL);
``index`` and ``merge``, which run in tasks, take local paths.
Exit codes: 0 ok, 1 runtime error (an unreadable file, ...), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import segyio  # type: ignore[import-untyped,unused-ignore]

COLUMNS = (
    "file", "bytes", "traces", "samples", "sample_interval_ms", "format", "sorting",
    "inline_min", "inline_max", "crossline_min", "crossline_max",
    "cdp_x_min", "cdp_x_max", "cdp_y_min", "cdp_y_max",
    "amplitude_min", "amplitude_max", "amplitude_rms",
)  # fmt: skip
SORTING = {segyio.TraceSortingFormat.INLINE_SORTING: "inline",
           segyio.TraceSortingFormat.CROSSLINE_SORTING: "crossline"}  # fmt: skip
BLOCK = 4096  # traces read at once: a file of any size is indexed in bounded memory
BIN_SPACING = 25.0  # metres between inlines and between crosslines
CROSSLINE_STEP = 2  # crosslines are numbered 2000, 2002, ...


def tiles(files: int, inlines: int, crosslines: int) -> Iterator[tuple[int, int, int]]:
    """(file number, first inline, first crossline): two tiles across, rows downwards."""
    for n in range(files):
        row, col = divmod(n, 2)
        yield n, 1000 + row * inlines, 2000 + col * crosslines * CROSSLINE_STEP


def tile_data(il: Any, xl: Any, t: Any, gain: float, rng: np.random.Generator) -> Any:
    """Traces (one per inline x crossline) of three dipping reflectors (25 Hz Ricker) + noise."""
    x = (il[:, None] - 1000) * BIN_SPACING  # metres
    y = (xl[None, :] - 2000) / CROSSLINE_STEP * BIN_SPACING
    data = np.zeros((il.size, xl.size, t.size), dtype=np.float32)
    for t0, dip_x, dip_y, r in ((0.15, 2e-4, 1e-4, 1.0), (0.30, -1e-4, 2e-4, -0.7),
                                (0.42, 1e-4, -1e-4, 0.5)):  # fmt: skip
        lag = t[None, None, :] - (t0 + dip_x * x + dip_y * y)[:, :, None]
        a = (np.pi * 25.0 * lag) ** 2
        data += r * (1.0 - 2.0 * a) * np.exp(-a)
    data += 0.05 * rng.standard_normal(data.shape)
    return (gain * data).reshape(-1, t.size)


def write_tile(path: str, first_il: int, first_xl: int, shape: tuple[int, int, int],
               dt_ms: float, gain: float, rng: np.random.Generator) -> None:  # fmt: skip
    inlines, crosslines, samples = shape
    il = np.arange(first_il, first_il + inlines)
    xl = np.arange(first_xl, first_xl + crosslines * CROSSLINE_STEP, CROSSLINE_STEP)
    spec = segyio.spec()
    spec.format = 5  # 4-byte IEEE float: the index's amplitudes are exactly the file's
    spec.sorting = segyio.TraceSortingFormat.INLINE_SORTING
    spec.ilines, spec.xlines = il, xl
    spec.samples = np.arange(samples) * dt_ms
    traces = tile_data(il, xl, spec.samples / 1000.0, gain, rng)
    with segyio.create(path, spec) as f:
        f.bin.update(hdt=int(dt_ms * 1000), hns=samples, format=5)
        for i, (a, b) in enumerate((a, b) for a in il for b in xl):
            f.header[i] = {
                segyio.TraceField.INLINE_3D: int(a),
                segyio.TraceField.CROSSLINE_3D: int(b),
                segyio.TraceField.CDP_X: int(500000 + (a - 1000) * BIN_SPACING),
                segyio.TraceField.CDP_Y: int(6700000 + (b - 2000) / 2 * BIN_SPACING),
                segyio.TraceField.TRACE_SAMPLE_INTERVAL: int(dt_ms * 1000),
                segyio.TraceField.TRACE_SAMPLE_COUNT: samples,
            }
            f.trace[i] = traces[i]


def filesystem(url: str) -> tuple[Any, str]:
    """fsspec's filesystem of ``url`` and its path there (only make and query use one)."""
    import fsspec  # type: ignore[import-untyped,unused-ignore]

    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    options = {"client_kwargs": {"endpoint_url": endpoint}} if endpoint and "://" in url else {}
    return fsspec.core.url_to_fs(url, **options)  # type: ignore[no-any-return,unused-ignore]


def make(to: str, files: int, shape: tuple[int, int, int], seed: int) -> None:
    fs, root = filesystem(to)
    fs.makedirs(root, exist_ok=True)
    rng = np.random.default_rng(seed)
    inlines, crosslines, samples = shape
    with tempfile.TemporaryDirectory() as scratch:
        for n, first_il, first_xl in tiles(files, inlines, crosslines):
            vintage = (n // 2) % 2  # rows alternate: 2 ms and gain 1, 4 ms and gain 3
            local = str(Path(scratch) / f"tile-{n:02d}.segy")
            dt_ms, count = (2.0, samples) if vintage == 0 else (4.0, samples // 2)
            write_tile(local, first_il, first_xl, (inlines, crosslines, count), dt_ms,
                       1.0 + 2.0 * vintage, rng)  # fmt: skip
            fs.put_file(local, f"{root.rstrip('/')}/tile-{n:02d}.segy")
    print(f"wrote {files} SEG-Y files of {inlines} x {crosslines} traces to {to}")


def entry(path: Path) -> dict[str, Any]:
    """The index entry of one SEG-Y file, from its headers and every sample."""
    try:
        f = segyio.open(str(path), "r")
    except RuntimeError:  # no regular inline/crossline grid: read the headers alone
        f = segyio.open(str(path), "r", ignore_geometry=True)
    with f:
        il = f.attributes(segyio.TraceField.INLINE_3D)[:]
        xl = f.attributes(segyio.TraceField.CROSSLINE_3D)[:]
        x = f.attributes(segyio.TraceField.CDP_X)[:]
        y = f.attributes(segyio.TraceField.CDP_Y)[:]
        low, high, squares = np.inf, -np.inf, 0.0
        for start in range(0, f.tracecount, BLOCK):
            block = np.asarray(f.trace.raw[start : start + BLOCK], dtype=np.float64)
            low, high = min(low, block.min()), max(high, block.max())
            squares += float(np.sum(block**2))
        sorting = SORTING.get(f.sorting, "unstructured") if not f.unstructured else "unstructured"
        return {
            "file": path.name,
            "bytes": path.stat().st_size,
            "traces": f.tracecount,
            "samples": len(f.samples),
            "sample_interval_ms": segyio.tools.dt(f) / 1000.0,
            "format": int(f.format),
            "sorting": sorting,
            "inline_min": int(il.min()), "inline_max": int(il.max()),
            "crossline_min": int(xl.min()), "crossline_max": int(xl.max()),
            "cdp_x_min": int(x.min()), "cdp_x_max": int(x.max()),
            "cdp_y_min": int(y.min()), "cdp_y_max": int(y.max()),
            "amplitude_min": float(low), "amplitude_max": float(high),
            "amplitude_rms": (squares / (f.tracecount * len(f.samples))) ** 0.5,
            "inlines": _counts(il),
            "crosslines": _counts(xl),
        }  # fmt: skip


def _counts(numbers: Any) -> dict[str, int]:
    values, counts = np.unique(numbers, return_counts=True)
    return {str(int(v)): int(c) for v, c in zip(values, counts, strict=True)}


def index(out: Path, paths: Sequence[Path]) -> None:
    entries = [entry(p) for p in paths]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(entries, indent=1) + "\n")
    for e in entries:
        print(
            f"{e['file']}: {e['traces']} traces x {e['samples']} samples, "
            f"dt {e['sample_interval_ms']:g} ms, inlines {e['inline_min']}-{e['inline_max']}, "
            f"crosslines {e['crossline_min']}-{e['crossline_max']}"
        )


SCHEMA = f"""
CREATE TABLE files ({", ".join(COLUMNS)}, PRIMARY KEY (file));
CREATE TABLE lines (kind TEXT NOT NULL, number INTEGER NOT NULL, file TEXT NOT NULL,
                    traces INTEGER NOT NULL, PRIMARY KEY (kind, number, file));
"""


def merge(out: Path, parts: Sequence[Path], plot: Path | None) -> None:
    entries = [e for p in parts for e in json.loads(p.read_text())]
    names = [e["file"] for e in entries]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"files indexed twice: {', '.join(twice)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    with sqlite3.connect(out) as db:
        db.executescript(SCHEMA)
        db.executemany(
            f"INSERT INTO files VALUES ({', '.join('?' * len(COLUMNS))})",  # noqa: S608 (bound)
            [[e[c] for c in COLUMNS] for e in entries],
        )
        for kind in ("inline", "crossline"):
            db.executemany(
                "INSERT INTO lines VALUES (?, ?, ?, ?)",
                [(kind, int(n), e["file"], c) for e in entries for n, c in e[f"{kind}s"].items()],
            )
    db.close()
    summary(out)
    if plot is not None:
        coverage(plot, entries)


def summary(db_path: Path) -> None:
    with sqlite3.connect(db_path) as db:
        rows = db.execute(
            "SELECT file, traces, samples, sample_interval_ms, inline_min, inline_max, "
            "crossline_min, crossline_max, amplitude_min, amplitude_max FROM files ORDER BY file"
        ).fetchall()
        total, lines = db.execute(
            "SELECT SUM(traces), (SELECT COUNT(DISTINCT number) FROM lines WHERE kind = 'inline')"
            " FROM files"
        ).fetchone()
    db.close()
    print(f"{len(rows)} files, {total} traces, {lines} inlines -> {db_path}")
    print(f"{'file':<14}{'traces':>7}{'samples':>8}{'dt ms':>6}  {'inlines':<10} "
          f"{'crosslines':<10} {'amplitude':>17}")  # fmt: skip
    for file, traces, samples, dt, il0, il1, xl0, xl1, lo, hi in rows:
        print(f"{file:<14}{traces:>7}{samples:>8}{dt:>6g}  {il0}-{il1:<5} {xl0}-{xl1:<5} "
              f"{lo:>8.3f} {hi:>8.3f}")  # fmt: skip


def coverage(path: Path, entries: Sequence[dict[str, Any]]) -> None:
    """The tiles on the inline/crossline grid, coloured by sample interval."""
    os.environ.setdefault("MPLCONFIGDIR", tempfile.mkdtemp())  # a task's $HOME may be read-only
    import matplotlib  # type: ignore[import-untyped,unused-ignore]

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # type: ignore[import-untyped,unused-ignore]
    from matplotlib.patches import Rectangle  # type: ignore[import-untyped,unused-ignore]

    colours = {2.0: "#4c72b0", 4.0: "#dd8452"}
    fig, ax = plt.subplots(figsize=(5.5, 4.2), constrained_layout=True)
    for e in entries:
        x0, x1 = e["crossline_min"], e["crossline_max"]
        y0, y1 = e["inline_min"], e["inline_max"]
        colour = colours.get(e["sample_interval_ms"], "#999999")
        ax.add_patch(Rectangle((x0 - 1, y0 - 0.5), x1 - x0 + 2, y1 - y0 + 1,
                                   facecolor=colour, edgecolor="black", alpha=0.8))  # fmt: skip
        ax.text((x0 + x1) / 2, (y0 + y1) / 2, f"{e['file']}\n{e['traces']} traces",
                ha="center", va="center", fontsize=8)  # fmt: skip
    ax.autoscale_view()
    ax.invert_yaxis()
    ax.set_xlabel("Crossline")
    ax.set_ylabel("Inline")
    for dt, colour in colours.items():
        ax.plot([], [], "s", color=colour, label=f"dt {dt:g} ms")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=2, fontsize=8)
    ax.set_title(f"SEG-Y index: {len(entries)} files", fontsize=10)
    fig.savefig(path, dpi=80)
    plt.close(fig)
    print(f"wrote {path}")


def query(index: str, kind: str, number: int) -> list[str]:
    """The files of the index (a path or a URL) that hold this inline or crossline."""
    with tempfile.TemporaryDirectory() as scratch:
        local = Path(index)
        if "://" in index:
            fs, path = filesystem(index)
            local = Path(scratch) / "index.sqlite"
            fs.get_file(path, str(local))
        with sqlite3.connect(f"file:{local}?mode=ro", uri=True) as db:
            rows = db.execute(
                "SELECT file FROM lines WHERE kind = ? AND number = ? ORDER BY file",
                (kind, number),
            ).fetchall()
        db.close()
    return [r[0] for r in rows]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="segy_index.py", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="mode", required=True)
    m = sub.add_parser("make", help="write a made-up survey, one SEG-Y file per tile")
    m.add_argument("--to", required=True, help="a folder URL or path, e.g. s3://lab/segy/")
    m.add_argument("--files", type=int, default=6)
    m.add_argument("--inlines", type=int, default=8, help="inlines per file")
    m.add_argument("--crosslines", type=int, default=6, help="crosslines per file")
    m.add_argument("--samples", type=int, default=250, help="samples per trace at 2 ms")
    m.add_argument("--seed", type=int, default=1)
    i = sub.add_parser("index", help="one index entry per SEG-Y file, as JSON")
    i.add_argument("--out", type=Path, required=True)
    i.add_argument("files", type=Path, nargs="+")
    g = sub.add_parser("merge", help="merge index entries into one SQLite index")
    g.add_argument("--out", type=Path, required=True)
    g.add_argument("--plot", type=Path, help="a PNG of the files' coverage")
    g.add_argument("parts", type=Path, nargs="+", help="JSON files that index wrote")
    q = sub.add_parser("query", help="the files that hold an inline or a crossline")
    q.add_argument("index", help="the index: a path or a URL (s3://.../index.sqlite)")
    which = q.add_mutually_exclusive_group(required=True)
    which.add_argument("--inline", type=int)
    which.add_argument("--crossline", type=int)
    args = p.parse_args(argv)
    if args.mode == "make" and min(args.files, args.inlines, args.crosslines, args.samples) < 2:
        p.error("--files, --inlines, --crosslines and --samples must be at least 2")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.mode == "make":
            make(args.to, args.files, (args.inlines, args.crosslines, args.samples), args.seed)
        elif args.mode == "index":
            index(args.out, args.files)
        elif args.mode == "merge":
            merge(args.out, args.parts, args.plot)
        else:
            kind = "inline" if args.inline is not None else "crossline"
            number = args.inline if args.inline is not None else args.crossline
            found = query(args.index, kind, number)
            print("\n".join(found) if found else f"no file holds {kind} {number}")
    except (OSError, ValueError, RuntimeError, sqlite3.Error) as exc:
        print(f"segy_index.py: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
