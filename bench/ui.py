"""The web UI with a million tasks stored, against the JSON API in the same run.

    .venv/bin/python -m bench.ui [--tasks 1000000] [--requests 50] [--followers 50]
                                 [--seconds 10]

TASKS finished tasks are stored straight into a temporary home's SQLite database, not
run: ``bench.api.stored_home`` (``bench.common.fill``: ``Store.insert_tasks`` in
transactions of 20 000 rows; the database is built once, cached in
~/.cache/toolship/bench/, then copied and migrated).  A real ``toolship serve`` (the
process runtime, so FOLLOWERS sleeping tasks cost the machine nothing) serves it.
Prints and writes bench/results/ui.json:

  * the first ``/ui/tasks`` page (HTML, logged in with a session cookie) vs TES
    ListTasks MINIMAL with the same page size, medians of REQUESTS interleaved
    requests: ratio — goal <= 3 (the lazy counts by state are timed too, not judged);
  * FOLLOWERS task pages following their live logs while nothing changes: each task
    runs ``echo ready; sleep``, and each follower opens every server-sent-events stream
    its task's page opens (its ``sse-connect`` URLs).  The server's CPU time over
    SECONDS, read from /proc/PID/stat (utime + stime, all threads), as % of one core,
    with the followers and, before them, without (the running tasks alone): the
    followers' cost is the difference — goal < 10 %.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.api import stored_home
from bench.common import BUSYBOX, Server, median, server, verdict, write_result

TES = "/ga4gh/tes/v1"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_SSE = re.compile(r'sse-connect="([^"]+)"')
_ROW = re.compile(r'<tr id="task-')
FINAL = {"COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED", "PREEMPTED"}


def log_in(srv: Server, ui: httpx.Client) -> None:
    """Log ``ui`` in through the login form (it then holds the session cookie)."""
    form = ui.get("/ui/login")
    form.raise_for_status()
    found = _CSRF.search(form.text)
    if found is None:
        raise SystemExit("the login page has no csrf field: has its form changed?")
    done = ui.post("/ui/login", data={"token": srv.token, "csrf": found.group(1)})
    if done.status_code != 303 or "toolship_session" not in ui.cookies:
        raise SystemExit(f"logging in failed: {done.status_code} {done.text[:300]}")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, every thread) the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def core_share(pid: int, seconds: float) -> float:
    """The process's CPU over ``seconds`` of wall time, as % of one core."""
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    return 100 * (cpu_seconds(pid) - c0) / (time.monotonic() - t0)


def compare_pages(api: httpx.Client, ui: httpx.Client, requests: int) -> dict[str, float]:
    """Median times of the first tasks page (HTML) and the same-size ListTasks MINIMAL."""
    first = ui.get("/ui/tasks")
    first.raise_for_status()
    size = len(_ROW.findall(first.text))
    listed = api.get(f"{TES}/tasks", params={"page_size": size}).json()["tasks"]
    if size == 0 or len(listed) != size:
        raise SystemExit(f"the UI's first page shows {size} tasks, ListTasks {len(listed)}")
    page_s, list_s, counts_s = [], [], []
    for _ in range(requests):  # interleaved, so both see the same noise
        t0 = time.perf_counter()
        ui.get("/ui/tasks").raise_for_status()
        t1 = time.perf_counter()
        api.get(f"{TES}/tasks", params={"page_size": size}).raise_for_status()
        t2 = time.perf_counter()
        page_s.append(t1 - t0)
        list_s.append(t2 - t1)
    for _ in range(max(3, requests // 10)):
        t0 = time.perf_counter()
        ui.get("/ui/tasks/counts").raise_for_status()
        counts_s.append(time.perf_counter() - t0)
    return {
        "page_size": size,
        "ui_page_median_ms": median(page_s) * 1000,
        "list_minimal_median_ms": median(list_s) * 1000,
        "counts_median_ms": median(counts_s) * 1000,
    }


def start_idle_tasks(api: httpx.Client, count: int) -> list[str]:
    """``count`` tasks that print one line, then sleep: RUNNING, their logs unchanging."""
    doc = {
        "name": "ui-bench-idle",
        "executors": [{"image": BUSYBOX, "command": ["sh", "-c", "echo ready; exec sleep 3600"]}],
    }
    ids = [api.post(f"{TES}/tasks", json=doc).json()["id"] for _ in range(count)]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        states = {api.get(f"{TES}/tasks/{i}").json()["state"] for i in ids}
        if states == {"RUNNING"}:
            return ids
        if states & FINAL:
            raise SystemExit(f"an idle task ended: {states}")
        time.sleep(0.2)
    raise SystemExit("the idle tasks did not all start within 120 s")


def streams_of(ui: httpx.Client, task_id: str) -> list[str]:
    """The server-sent-events URLs the task's page opens."""
    got = ui.get(f"/ui/tasks/{task_id}")
    got.raise_for_status()
    urls = [html.unescape(u) for u in _SSE.findall(got.text)]
    if not urls:
        raise SystemExit(f"the page of running task {task_id} opens no event stream")
    return urls


async def follow(srv: Server, cookies: httpx.Cookies, urls: list[str], seconds: float) -> float:
    """Keep every stream open while the server's CPU is measured; its % of one core."""
    opened = asyncio.Event()
    ready = 0

    async def one(client: httpx.AsyncClient, url: str) -> None:
        nonlocal ready
        async with client.stream("GET", url, headers={"Accept": "text/event-stream"}) as r:
            if r.status_code != 200:
                raise SystemExit(f"{url}: {r.status_code}")
            ready += 1
            if ready == len(urls):
                opened.set()
            async for _ in r.aiter_raw():
                pass

    limits = httpx.Limits(max_connections=len(urls) + 1)
    async with httpx.AsyncClient(
        base_url=srv.url, cookies=cookies, timeout=None, limits=limits
    ) as client:
        tasks = [asyncio.create_task(one(client, u)) for u in urls]
        await asyncio.wait_for(opened.wait(), 60)
        await asyncio.sleep(1)  # each stream's first reads are done
        share = await asyncio.to_thread(core_share, srv.process.pid, seconds)
        for t in tasks:
            if t.done():  # a stream that ended early would measure nothing
                t.result()
                raise SystemExit("an event stream ended while nothing changed")
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return share


def cancel_all(api: httpx.Client, ids: list[str]) -> None:
    for i in ids:
        api.post(f"{TES}/tasks/{i}:cancel")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if all(api.get(f"{TES}/tasks/{i}").json()["state"] in FINAL for i in ids):
            return
        time.sleep(0.2)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=1_000_000)
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--followers", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="toolship-bench-ui-"))
    settings = {
        "TOOLSHIP_LOCAL__RUNTIME": "process",
        "TOOLSHIP_LOCAL__CPUS": str(max(args.followers, 1) + 4),
        "TOOLSHIP_LOCAL__DEFAULT_MEMORY_GB": "0",
        "TOOLSHIP_IMAGES__SBOMS_ON_USE": "false",
    }
    try:
        home = stored_home(args.tasks, work)
        with (
            server(home, **settings) as srv,
            srv.client(timeout=60) as api,
            httpx.Client(base_url=srv.url, timeout=60) as ui,
        ):
            log_in(srv, ui)
            compare_pages(api, ui, 3)  # warm up
            pages = compare_pages(api, ui, args.requests)
            ids = start_idle_tasks(api, args.followers)
            try:
                urls = [u for i in ids for u in streams_of(ui, i)]
                idle = core_share(srv.process.pid, args.seconds)
                followed = asyncio.run(follow(srv, ui.cookies, urls, args.seconds))
            finally:
                cancel_all(api, ids)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratio = pages["ui_page_median_ms"] / pages["list_minimal_median_ms"]
    cost = followed - idle
    print(
        f"first /ui/tasks page of {pages['page_size']} with {args.tasks:,} tasks stored: "
        f"{pages['ui_page_median_ms']:.2f} ms vs ListTasks MINIMAL "
        f"{pages['list_minimal_median_ms']:.2f} ms: ratio {ratio:.2f} "
        f"({verdict(ratio, 3.0, higher_is_better=False)}); counts by state (lazy) "
        f"{pages['counts_median_ms']:.1f} ms"
    )
    print(
        f"{args.followers} task pages following live logs ({len(urls)} event streams), "
        f"nothing changing, over {args.seconds:g} s: server {followed:.1f} % of a core vs "
        f"{idle:.1f} % without them: the followers cost {cost:.1f} % "
        f"({verdict(cost, 10.0, higher_is_better=False)} %)"
    )
    path = write_result(
        "ui",
        {
            "tasks": args.tasks,
            **{k: round(v, 3) for k, v in pages.items()},
            "page_ratio": round(ratio, 3),
            "followers": args.followers,
            "streams": len(urls),
            "seconds": args.seconds,
            "server_core_pct_followed": round(followed, 2),
            "server_core_pct_idle": round(idle, 2),
            "followers_core_pct": round(cost, 2),
        },
    )
    print(f"  written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
