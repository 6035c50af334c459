"""API latency and throughput, each against the server's own trivial health endpoint.

    .venv/bin/python -m bench.api [--big 1000000] [--small 1000] [--requests 200]

Prints and writes bench/results/api.json:
  * ListTasks MINIMAL (page 256), median over many pages, with BIG tasks stored divided by
    the same with SMALL stored — goal <= 1.5 (paging cost must not grow with the table);
  * GetTask MINIMAL median divided by the health endpoint's median — goal <= 2.0;
  * CreateTask sustained rate with 32 concurrent clients, and its ratio to the health
    endpoint's rate under the same 32 clients.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import tempfile
import threading
import time
from pathlib import Path

from bench.common import BUSYBOX, fill, median, server, timed, verdict, write_result
from toolship.db.store import make_engine, migrate

TES = "/ga4gh/tes/v1"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "toolship" / "bench"


def stored_home(count: int, where: Path) -> Path:
    """A home whose database holds ``count`` finished tasks (built once, then copied)."""
    cached = CACHE / f"tasks-{count}.db"
    if not cached.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        build = Path(tempfile.mkdtemp(dir=CACHE))
        print(f"  storing {count:,} tasks (once; cached in {cached}) …", flush=True)
        fill(build, count)
        (build / "toolship.db").replace(cached)
        shutil.rmtree(build)
    home = where / f"home-{count}"
    home.mkdir(parents=True)
    shutil.copyfile(cached, home / "toolship.db")
    engine = make_engine(f"sqlite:///{home / 'toolship.db'}")
    migrate(engine)  # a cache from an older schema is brought up to date
    engine.dispose()
    return home


def list_pages(url_client, pages: int) -> list[float]:  # type: ignore[no-untyped-def]
    """Time each page of a walk through the list (first page, then next_page_token)."""
    out: list[float] = []
    token = None
    for _ in range(pages):
        params = {"page_size": 256, **({"page_token": token} if token else {})}
        t0 = time.perf_counter()
        r = url_client.get(f"{TES}/tasks", params=params)
        out.append(time.perf_counter() - t0)
        token = r.json().get("next_page_token")
        if not token:
            token = None
    return out


def rate(fn_factory, clients: int, seconds: float) -> float:  # type: ignore[no-untyped-def]
    """Requests per second that ``clients`` threads sustain for ``seconds``."""
    counts = [0] * clients
    # Clients are made before the clock starts: making 32 of them can take longer than a
    # smoke run's one second on a busy machine (which then counted no request at all).
    calls = [fn_factory() for _ in range(clients)]
    stop = 0.0

    def worker(i: int) -> None:
        while time.monotonic() < stop:
            calls[i]()
            counts[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    t0 = time.monotonic()
    stop = t0 + seconds
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.monotonic() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--big", type=int, default=1_000_000)
    ap.add_argument("--small", type=int, default=1_000)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=5.0, help="duration of each rate test")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="toolship-bench-api-"))
    results: dict[str, object] = {"big": args.big, "small": args.small}
    try:
        print(f"ListTasks MINIMAL page 256: {args.small:,} vs {args.big:,} tasks stored")
        list_ms = {}
        for count in (args.small, args.big):
            home = stored_home(count, work)
            with server(home) as srv, srv.client(timeout=30) as c:
                list_pages(c, 5)  # warm up
                list_ms[count] = median(list_pages(c, min(args.requests, count // 256 or 1)))
                if count == args.big:
                    ids = [
                        t["id"]
                        for t in c.get(f"{TES}/tasks", params={"page_size": 500}).json()["tasks"]
                    ]
                    health, get = [], []
                    for _ in range(args.requests):  # interleaved, so both see the same noise
                        health += timed(lambda: c.get("/api/v1/health"), 1)
                        tid = random.choice(ids)
                        get += timed(lambda tid=tid: c.get(f"{TES}/tasks/{tid}"), 1)
                    results["health_median_ms"] = median(health) * 1000
                    results["get_minimal_median_ms"] = median(get) * 1000
        ratio_list = list_ms[args.big] / list_ms[args.small]
        results.update(
            list_small_median_ms=list_ms[args.small] * 1000,
            list_big_median_ms=list_ms[args.big] * 1000,
            list_ratio=ratio_list,
        )
        print(
            f"  {list_ms[args.small] * 1000:.2f} ms vs {list_ms[args.big] * 1000:.2f} ms: "
            f"ratio {ratio_list:.2f} ({verdict(ratio_list, 1.5, higher_is_better=False)})"
        )
        ratio_get = results["get_minimal_median_ms"] / results["health_median_ms"]  # type: ignore[operator]
        results["get_ratio"] = ratio_get
        print(
            f"GetTask MINIMAL {results['get_minimal_median_ms']:.2f} ms vs health "
            f"{results['health_median_ms']:.2f} ms: ratio {ratio_get:.2f} "
            f"({verdict(ratio_get, 2.0, higher_is_better=False)})"
        )

        home = work / "create"
        # Tasks created here really run (process runtime, `true`), as they would for a user.
        with server(home, TOOLSHIP_LOCAL__RUNTIME="process") as srv:
            doc = {"executors": [{"image": BUSYBOX, "command": ["true"]}]}

            def creator():  # type: ignore[no-untyped-def]
                c = srv.client(timeout=60)
                return lambda: c.post(f"{TES}/tasks", json=doc).raise_for_status()

            def prober():  # type: ignore[no-untyped-def]
                c = srv.client(timeout=60)
                return lambda: c.get("/api/v1/health").raise_for_status()

            health_rate = rate(prober, 32, args.seconds)
            create_rate = rate(creator, 32, args.seconds)
        results.update(
            create_rate=create_rate, health_rate=health_rate, create_ratio=create_rate / health_rate
        )
        print(
            f"CreateTask with 32 clients: {create_rate:.0f}/s vs health {health_rate:.0f}/s: "
            f"ratio {create_rate / health_rate:.2f}"
        )
        print(f"results: {write_result('api', results)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
