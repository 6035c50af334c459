#!/usr/bin/env python3
"""Synthetic shot gather + zero-phase band-pass filter (a Madagascar-style demo).

  seismic.py generate --out traces.npy [--traces 48 --samples 1000 --dt 0.004 --seed 1]
  seismic.py filter --input traces.npy --low 8 --high 40 --out filtered.npy [--plot plot.png]

Data are 2-D arrays (traces x samples) in .npy, or text (.txt/.csv: one trace per row).
Exit codes: 0 ok, 1 runtime error (unreadable input, ...), 2 bad arguments.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float64]
# Reflectors: (zero-offset time s, RMS velocity m/s, reflection coefficient).
REFLECTORS = [(0.45, 1800.0, 1.0), (0.95, 2200.0, -0.7), (1.50, 2600.0, 0.6), (2.40, 3200.0, 0.5)]
DX = 50.0  # metres between receivers (offset = trace number * DX)


def ricker(tau: Array, freq: float) -> Array:
    """Ricker wavelet with peak frequency `freq` (Hz) at time lags `tau` (s)."""
    a = (np.pi * freq * tau) ** 2
    wavelet: Array = (1.0 - 2.0 * a) * np.exp(-a)
    return wavelet


def generate(ntraces: int, nsamples: int, dt: float, seed: int) -> Array:
    """Hyperbolic reflections (25 Hz Ricker) + 4 Hz ground roll + white noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(nsamples) * dt
    x = (np.arange(ntraces) + 1) * DX
    data = np.zeros((ntraces, nsamples))
    for t0, v, r in REFLECTORS:
        tx = np.sqrt(t0**2 + (x / v) ** 2)  # normal-moveout hyperbola
        data += r * (t0 / tx)[:, None] * ricker(t[None, :] - tx[:, None], 25.0)
    tau = t[None, :] - (0.4 + x / 800.0)[:, None]  # slow, linear-moveout surface wave
    data += 2.0 * np.sin(2 * np.pi * 4.0 * tau) * np.exp(-((tau / 0.2) ** 2))
    data += 0.05 * rng.standard_normal(data.shape)
    return data


def bandpass(data: Array, dt: float, low: float, high: float, taper: float) -> Array:
    """Zero-phase band-pass along time: a real FFT gain, 0 outside [low, high],
    rising to 1 over `taper` Hz inside each edge (raised cosine)."""
    n = data.shape[-1]
    nfft = 1 << int(np.ceil(np.log2(2 * n)))  # zero-pad against wrap-around
    f = np.fft.rfftfreq(nfft, dt)
    gain = np.sin(0.5 * np.pi * np.clip((high - f) / taper, 0.0, 1.0)) ** 2
    if low > 0:
        gain *= np.sin(0.5 * np.pi * np.clip((f - low) / taper, 0.0, 1.0)) ** 2
    spectrum = np.fft.rfft(data, nfft, axis=-1) * gain
    return np.fft.irfft(spectrum, nfft, axis=-1)[..., :n]


def load(path: Path) -> Array:
    if path.suffix == ".npy":
        data = np.load(path, allow_pickle=False)
    else:
        data = np.loadtxt(path, delimiter="," if path.suffix == ".csv" else None, ndmin=2)
    if data.ndim != 2 or min(data.shape) < 2:
        raise ValueError(f"{path}: expected a 2-D array (traces x samples), got shape {data.shape}")
    return np.asarray(data, dtype=np.float64)


def save(path: Path, data: Array) -> None:
    if path.suffix == ".npy":
        np.save(path, data)
    else:
        np.savetxt(path, data, fmt="%.6g", delimiter="," if path.suffix == ".csv" else " ")


def rms(a: Array) -> float:
    return float(np.sqrt(np.mean(a**2)))


def plot(path: Path, raw: Array, filtered: Array, dt: float, low: float, high: float) -> None:
    os.environ.setdefault("MPLCONFIGDIR", tempfile.mkdtemp())  # a task's $HOME may be read-only
    import matplotlib  # type: ignore[import-untyped,unused-ignore]  # Debian's 3.6 has no stubs

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # type: ignore[import-untyped,unused-ignore]

    ntr, ns = raw.shape
    t = np.arange(ns) * dt
    fig, axes = plt.subplots(1, 2, figsize=(11, 7), sharey=True, constrained_layout=True)
    panels = [(raw, "Raw shot gather"), (filtered, f"Band-pass {low:g}-{high:g} Hz (zero phase)")]
    for ax, (d, title) in zip(axes, panels, strict=True):
        clip = float(np.percentile(np.abs(d), 99)) or 1.0  # like Madagascar's pclip=99
        extent = (0.5, ntr + 0.5, t[-1], t[0])
        im = ax.imshow(d.T, aspect="auto", cmap="RdBu_r", vmin=-clip, vmax=clip, extent=extent)
        for i in range(ntr):  # wiggles, one trace spacing = clip amplitude
            w = np.clip(d[i] / clip, -1.5, 1.5)
            ax.plot(i + 1 + w, t, color="black", linewidth=0.35)
            ax.fill_betweenx(t, i + 1, i + 1 + w, where=w > 0.25, color="black", linewidth=0)
        ax.set_title(title)
        ax.set_xlabel("Offset (trace number)")
        ax.set_xlim(0.5, ntr + 0.5)
        fig.colorbar(im, ax=ax, shrink=0.6, label="Amplitude (clip = 99th percentile)")
    axes[0].set_ylabel("Time (s)")
    fig.suptitle(f"Synthetic shot gather: {ntr} traces, {ns} samples, dt = {dt:g} s", fontsize=14)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="seismic.py", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="mode", required=True)
    g = sub.add_parser("generate", help="write a synthetic shot gather")
    g.add_argument("--out", type=Path, required=True, help="output .npy/.txt/.csv")
    g.add_argument("--traces", type=int, default=48)
    g.add_argument("--samples", type=int, default=1000)
    g.add_argument("--dt", type=float, default=0.004, help="sample interval, s")
    g.add_argument("--seed", type=int, default=1)
    f = sub.add_parser("filter", help="band-pass filter a gather and plot raw vs filtered")
    f.add_argument("--input", type=Path, required=True, help="input .npy/.txt/.csv")
    f.add_argument("--low", type=float, required=True, help="low cut, Hz (0: low-pass only)")
    f.add_argument("--high", type=float, required=True, help="high cut, Hz")
    f.add_argument("--taper", type=float, default=2.0, help="width of the cosine edges, Hz")
    f.add_argument("--dt", type=float, default=0.004, help="sample interval, s")
    f.add_argument("--out", type=Path, required=True, help="filtered data, .npy/.txt/.csv")
    f.add_argument("--plot", type=Path, help="PNG figure (default: OUT with .png suffix)")
    args = p.parse_args(argv)
    if args.dt <= 0:
        p.error("--dt must be positive")
    if args.mode == "generate" and (args.traces < 2 or args.samples < 2):
        p.error("--traces and --samples must be at least 2")
    if args.mode == "filter":
        nyquist = 0.5 / args.dt
        if not 0 <= args.low < args.high <= nyquist:
            p.error(f"need 0 <= --low < --high <= Nyquist ({nyquist:g} Hz)")
        if args.taper <= 0:
            p.error("--taper must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.mode == "generate":
            data = generate(args.traces, args.samples, args.dt, args.seed)
            save(args.out, data)
            print(
                f"generated {data.shape[0]} traces x {data.shape[1]} samples, dt = {args.dt:g} s, "
                f"seed {args.seed}, rms {rms(data):.4f} -> {args.out}"
            )
            return 0
        raw = load(args.input)
        filtered = bandpass(raw, args.dt, args.low, args.high, args.taper)
        plot_path = args.plot or args.out.with_suffix(".png")
        save(args.out, filtered)
        plot(plot_path, raw, filtered, args.dt, args.low, args.high)
    except (OSError, ValueError) as exc:
        print(f"seismic.py: error: {exc}", file=sys.stderr)
        return 1
    before, after = rms(raw), rms(filtered)
    print(
        f"input: {args.input} ({raw.shape[0]} traces x {raw.shape[1]} samples, dt = {args.dt:g} s)"
    )
    print(f"band: {args.low:g}-{args.high:g} Hz, zero phase, {args.taper:g} Hz cosine edges")
    print(f"rms: before {before:.4f}, after {after:.4f} (ratio {after / before:.3f})")
    print(f"wrote: {args.out}, {plot_path}")
    removed = 100.0 * (1.0 - (after / before) ** 2) if before > 0 else 0.0
    print(
        f"seismic.py: warning: the filter removed {removed:.1f}% of the input energy "
        f"(outside {args.low:g}-{args.high:g} Hz)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
