"""Staging throughput against the raw ways, measured in the same run.

    .venv/bin/python -m bench.staging [--big-mib 1024] [--small 1000] [--repeat 3]
                                      [--latency-ms 20] [--latency-repeat 2]

Staging time is what toolship spends between starting an attempt and starting its first
executor (stage-in), read from the task record.  Prints and writes
bench/results/staging.json:
  * 1 GiB object from S3: toolship's throughput / boto3 ``download_file`` (goal >= 0.9)
  * 1000 x 16 KiB objects from S3: toolship's rate / a sequential boto3 loop (goal >= 4)
  * local 1 GiB file, copy asked for: toolship's throughput / ``cp`` (goal >= 0.9)
  * local 5 GiB file, mounted (zero-copy): staging time / a 1 KiB input's (goal <= 2)
The S3 server is moto on loopback (no MinIO here; bench/s3server.py makes its byte-range
GETs cost the range, not the object), so the S3 figures compare two clients of the same,
modest, server.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import boto3
from tests.integration.servers import Process, free_port

from bench.common import BUSYBOX, median, server, timed, verdict, write_result
from bench.latency import LatencyProxy
from toolship import Client, TaskState
from toolship.timeutil import parse_rfc3339


def staging_seconds(client: Client, **task: Any) -> float:
    t = client.run(BUSYBOX, ["true"], **task)
    if t.state is not TaskState.COMPLETE:
        raise SystemExit(f"task {t.id} ended {t.state}: {t.info().logs[-1].system_logs}")
    attempt = t.info().logs[-1]
    start = parse_rfc3339(attempt.start_time)
    first = parse_rfc3339(attempt.logs[0].start_time)
    return (first - start).total_seconds()


def small_latency(args: argparse.Namespace, work: Path, port: int) -> dict[str, Any]:
    """The small-object figure again, with the store ``latency_ms`` away (both clients)."""
    delay = args.latency_ms / 1000 / 2  # each direction: one request pays the round trip
    with LatencyProxy(port, delay) as proxy:
        endpoint = f"http://127.0.0.1:{proxy.port}"
        raw = boto3.client("s3", endpoint_url=endpoint)

        def raw_loop() -> None:
            for i in range(args.small):
                raw.get_object(Bucket="bench", Key=f"small/{i:05d}")["Body"].read()

        home = work / "home-latency"
        with server(home, TOOLSHIP_STORAGE__S3__ENDPOINT_URL=endpoint) as srv:
            client = Client(srv.url, srv.token, timeout=900)
            base = timed(raw_loop, args.latency_repeat)
            ours = [staging_seconds(client, inputs={"small/": "s3://bench/small/"})
                    for _ in range(args.latency_repeat)]  # fmt: skip
            client.close()
    ratio = median(base) / median(ours)
    print(f"S3 {args.small} x 16 KiB, {args.latency_ms} ms round trip: toolship "
          f"{median(ours):.2f} s, sequential boto3 {median(base):.2f} s: ratio {ratio:.2f} "
          f"({verdict(ratio, 4, higher_is_better=True)})", flush=True)  # fmt: skip
    return {
        "latency_ms": args.latency_ms,
        "s3_small_latency_toolship_s": median(ours),
        "s3_small_latency_boto3_loop_s": median(base),
        "s3_small_latency_ratio": ratio,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--big-mib", type=int, default=1024)
    ap.add_argument("--small", type=int, default=1000)
    ap.add_argument("--zero-copy-gib", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--big-repeat", type=int, default=2)
    ap.add_argument(
        "--latency-ms",
        type=int,
        default=20,
        help="also measure small objects with the store this far away (0: skip)",
    )
    ap.add_argument(
        "--latency-repeat", type=int, default=2, help="its sequential loop alone takes ~30 s"
    )
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="toolship-bench-staging-"))
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_DEFAULT_REGION="us-east-1")  # fmt: skip
    port = free_port()
    s3 = Process([sys.executable, "-m", "bench.s3server", "-H", "127.0.0.1", "-p", str(port)],
                 port, work / "moto.log")  # fmt: skip
    s3.start()
    endpoint = f"http://127.0.0.1:{port}"
    raw = boto3.client("s3", endpoint_url=endpoint)
    results: dict[str, Any] = {"big_mib": args.big_mib, "small": args.small}
    try:
        raw.create_bucket(Bucket="bench")
        big = work / "big.bin"
        with big.open("wb") as fh:
            block = os.urandom(1 << 20)
            for _ in range(args.big_mib):
                fh.write(block)
        raw.upload_file(str(big), "bench", "big.bin")
        for i in range(args.small):
            raw.put_object(Bucket="bench", Key=f"small/{i:05d}", Body=os.urandom(16384))
        size = big.stat().st_size
        mib = size / 2**20
        with server(work / "home", TOOLSHIP_STORAGE__S3__ENDPOINT_URL=endpoint) as srv:
            client = Client(srv.url, srv.token, timeout=900)

            def raw_download() -> None:
                raw.download_file("bench", "big.bin", str(work / "raw-big.bin"))
                (work / "raw-big.bin").unlink()

            raw_big = timed(raw_download, args.big_repeat)
            ts_big = [staging_seconds(client, inputs={"big.bin": "s3://bench/big.bin"})
                      for _ in range(args.big_repeat)]  # fmt: skip
            s3_ratio = median(raw_big) / median(ts_big)
            results.update(s3_big_toolship_s=median(ts_big), s3_big_boto3_s=median(raw_big),
                           s3_big_ratio=s3_ratio)  # fmt: skip
            print(f"S3 {mib:.0f} MiB: toolship {mib / median(ts_big):.0f} MiB/s, boto3 "
                  f"download_file {mib / median(raw_big):.0f} MiB/s: ratio {s3_ratio:.2f} "
                  f"({verdict(s3_ratio, 0.9, higher_is_better=True)})", flush=True)  # fmt: skip

            def raw_loop() -> None:
                for i in range(args.small):
                    raw.get_object(Bucket="bench", Key=f"small/{i:05d}")["Body"].read()

            raw_small = timed(raw_loop, args.repeat)
            ts_small = [staging_seconds(client, inputs={"small/": "s3://bench/small/"})
                        for _ in range(args.repeat)]  # fmt: skip
            small_ratio = median(raw_small) / median(ts_small)
            results.update(
                s3_small_toolship_s=median(ts_small),
                s3_small_boto3_loop_s=median(raw_small),
                s3_small_ratio=small_ratio,
            )
            print(
                f"S3 {args.small} x 16 KiB: toolship {median(ts_small):.2f} s, sequential "
                f"boto3 {median(raw_small):.2f} s: ratio {small_ratio:.2f} "
                f"({verdict(small_ratio, 4, higher_is_better=True)})",
                flush=True,
            )

            def cp() -> None:
                subprocess.run(["cp", str(big), str(work / "cp.bin")], check=True)

            cp_t, ts_copy = [], []
            for _ in range(args.repeat):  # alternated, each after a sync: same page cache
                os.sync()
                cp_t += timed(cp, 1)
                (work / "cp.bin").unlink()
                os.sync()
                ts_copy.append(
                    staging_seconds(client, inputs={"big.bin": str(big)}, writable_inputs=True)
                )
            cp_ratio = median(cp_t) / median(ts_copy)
            results.update(
                local_copy_toolship_s=median(ts_copy),
                local_cp_s=median(cp_t),
                local_copy_ratio=cp_ratio,
            )
            print(
                f"local {mib:.0f} MiB copy: toolship {median(ts_copy):.2f} s, cp "
                f"{median(cp_t):.2f} s: ratio {cp_ratio:.2f} "
                f"({verdict(cp_ratio, 0.9, higher_is_better=True)})",
                flush=True,
            )

            if args.latency_ms:
                results.update(small_latency(args, work, port))

            huge = work / "huge.bin"
            with huge.open("wb") as fh:
                fh.truncate(args.zero_copy_gib * 1024**3)
            tiny = work / "tiny.bin"
            tiny.write_bytes(os.urandom(1024))
            zc_huge, zc_tiny = [], []
            for _ in range(args.repeat * 2):
                zc_huge.append(staging_seconds(client, inputs={"x": str(huge)}))
                zc_tiny.append(staging_seconds(client, inputs={"x": str(tiny)}))
            zc_ratio = median(zc_huge) / median(zc_tiny)
            results.update(
                zero_copy_huge_s=median(zc_huge),
                zero_copy_tiny_s=median(zc_tiny),
                zero_copy_ratio=zc_ratio,
            )
            print(
                f"local {args.zero_copy_gib} GiB mounted: {median(zc_huge) * 1000:.1f} ms vs "
                f"1 KiB {median(zc_tiny) * 1000:.1f} ms: ratio {zc_ratio:.2f} "
                f"({verdict(zc_ratio, 2, higher_is_better=False)})",
                flush=True,
            )
            client.close()
        print(f"results: {write_result('staging', results)}")
    finally:
        s3.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
