"""Reverse audit ("which results used package X@Y") against GetTask, on a real server.

    .venv/bin/python -m bench.audit [--tasks 100000] [--images 50] [--requests 20]

TASKS finished tasks over IMAGES images are stored through the store (not run): each
task's attempt records its image (``Store.record_images``) and an output with its
sha256; each image has an SBOM (``SbomStore.save``) of 200 synthetic components.  One
package (``libtarget``) is in 3 images.  Prints and writes bench/results/audit.json:
  * ``GET /api/v1/audit?q=…`` median for ``libtarget@1.2.3`` (all forms answer the same
    tasks: checked) — goal < 1 s, and its ratio to GetTask MINIMAL's median in the same
    run;
  * that the answer holds exactly the tasks of those 3 images (else exit 1).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

from bench.common import median, server, timed, verdict, write_result
from toolship.db import Store, TaskRow
from toolship.db.sboms import SbomStore
from toolship.engine.ids import new_task_id
from toolship.models import TaskLog
from toolship.states import TaskState
from toolship.supply.images import ImageUse, image_metadata
from toolship.supply.purls import component_of
from toolship.supply.sboms import StoredSbom
from toolship.timeutil import now_rfc3339

TES = "/ga4gh/tes/v1"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "toolship" / "bench"
TARGET = "libtarget"
TARGET_IMAGES = (7, 23, 41)  # the images (of 50) that hold it
COMPONENTS = 200


def digest(i: int) -> str:
    return f"sha256:{i:064x}"


def _components(i: int) -> list[str]:
    """Image ``i``'s packages: a shared base, some of its own, the target in three."""
    purls = [f"pkg:deb/debian/base{k}@1.{k}-1?distro=debian-12" for k in range(120)]
    purls += [f"pkg:pypi/mod{i}-{k}@0.{k}" for k in range(COMPONENTS - 121)]
    if i in TARGET_IMAGES:
        purls.append(f"pkg:deb/debian/{TARGET}@1.2.3-4~deb12u1?distro=debian-12")
    else:
        purls.append(f"pkg:deb/debian/{TARGET}@2.0.0-1?distro=debian-12")  # another version
    return purls


def fill(path: Path, tasks: int, images: int) -> dict[int, list[str]]:
    """Store the tasks, their images and the SBOMs; the task ids per image."""
    store = Store.open(f"sqlite:///{path}")
    sboms = SbomStore(store.engine)
    for i in range(images):
        parts = [component_of(p) for p in _components(i)]
        made = StoredSbom(
            digest=digest(i), image=f"localhost/tool{i}:1", image_id=digest(i + 1000),
            made=now_rfc3339(), tool="bench", cyclonedx="{}",
        )  # fmt: skip
        sboms.save(made, parts)
    by_image: dict[int, list[str]] = {i: [] for i in range(images)}
    chunk = 10_000
    for start in range(0, tasks, chunk):
        rows = []
        for n in range(start, min(tasks, start + chunk)):
            i = n % images
            use = ImageUse(0, f"localhost/tool{i}:1", digest(i), digest(i + 1000))
            meta = {**image_metadata(use), "sha256:/out/result.txt": f"{n:064x}"}
            log = {
                "logs": [{"exit_code": 0}],
                "metadata": meta,
                "outputs": [
                    {"url": f"file:///results/{n}.txt", "path": "/out/result.txt",
                     "size_bytes": "12"}
                ],
            }  # fmt: skip
            spec = {"executors": [{"image": use.image, "command": ["true"]}]}
            rows.append(
                TaskRow(
                    seq=0, id=new_task_id(), state=TaskState.COMPLETE, name=f"t{n}",
                    creation_time=now_rfc3339(), priority=0, cpus=1, memory_gb=0.0, gpus=0,
                    spec=spec, logs=[TaskLog.model_validate(log)],
                )
            )  # fmt: skip
        store.insert_tasks(rows)
        for n, row in enumerate(rows, start):
            i = n % images
            store.record_images(
                row.id, 1, [ImageUse(0, f"localhost/tool{i}:1", digest(i), digest(i + 1000))]
            )
            by_image[i].append(row.id)
        print(f"  {min(tasks, start + chunk):,} tasks stored", flush=True)
    store.close()
    return by_image


def stored(tasks: int, images: int, where: Path) -> tuple[Path, dict[int, list[str]]]:
    """A home holding the data (built once and cached, as bench.api does)."""
    cached = CACHE / f"audit-{tasks}-{images}.db"
    ids = cached.with_suffix(".ids")
    if not cached.exists() or not ids.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        build = Path(tempfile.mkdtemp(dir=CACHE))
        print(f"  storing {tasks:,} tasks over {images} images (once; cached in {cached}) …")
        by_image = fill(build / "toolship.db", tasks, images)
        (build / "toolship.db").replace(cached)
        ids.write_text("\n".join(" ".join(v) for _, v in sorted(by_image.items())) + "\n")
        shutil.rmtree(build)
    lines = ids.read_text().splitlines()
    by_image = {i: line.split() for i, line in enumerate(lines)}
    home = where / "home"
    home.mkdir(parents=True)
    shutil.copyfile(cached, home / "toolship.db")
    return home, by_image


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--images", type=int, default=50)
    ap.add_argument("--requests", type=int, default=20)
    args = ap.parse_args()
    if args.images <= max(TARGET_IMAGES):
        raise SystemExit(f"--images must be over {max(TARGET_IMAGES)}")
    with tempfile.TemporaryDirectory() as tmp:
        home, by_image = stored(args.tasks, args.images, Path(tmp))
        expected = sorted(t for i in TARGET_IMAGES for t in by_image[i])
        with server(home) as srv, srv.client(timeout=60) as http:
            queries = [
                f"{TARGET}@1.2.3",
                f"pkg:deb/debian/{TARGET}@1.2.3",
                f"pkg:dpkg/{TARGET}@1.2.3-4~deb12u1",
                f"{TARGET}@<2",
            ]
            wrong = []
            for q in queries:
                body = http.get("/api/v1/audit", params={"q": q}).json()
                found = sorted(t["id"] for t in body["tasks"])
                if found != expected or len(body["images"]) != len(TARGET_IMAGES):
                    wrong.append(f"{q}: {len(found)} tasks, {len(body['images'])} images")

            def audit() -> None:
                r = http.get("/api/v1/audit", params={"q": queries[0]})
                r.raise_for_status()

            one = expected[len(expected) // 2]

            def get_task() -> None:
                http.get(f"{TES}/tasks/{one}", params={"view": "MINIMAL"}).raise_for_status()

            audit()
            get_task()  # warm
            audit_s = median(timed(audit, args.requests))
            get_s = median(timed(get_task, args.requests * 10))
    ratio = audit_s / get_s
    print(
        f"audit of a package in {len(TARGET_IMAGES)} of {args.images} images, "
        f"{args.tasks:,} tasks stored: {len(expected):,} tasks returned, "
        f"{'exactly those of the 3 images' if not wrong else 'WRONG: ' + '; '.join(wrong)}"
    )
    print(
        f"audit median {audit_s * 1000:.1f} ms ({verdict(audit_s, 1.0, higher_is_better=False)} s)"
        f" vs GetTask MINIMAL {get_s * 1000:.2f} ms: ratio {ratio:.0f}x"
    )
    path = write_result(
        "audit",
        {
            "tasks": args.tasks,
            "images": args.images,
            "returned": len(expected),
            "exact": not wrong,
            "audit_median_ms": round(audit_s * 1000, 2),
            "get_minimal_median_ms": round(get_s * 1000, 3),
            "ratio_audit_to_get": round(ratio, 1),
        },
    )
    print(f"  written to {path}")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
