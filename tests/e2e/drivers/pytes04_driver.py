"""Drives a toolship server with py-tes 0.4's own HTTPClient; prints findings as JSON.

py-tes 0.4 is the TES 1.0 client that Snakemake's and Toil's TES plugins pin: it asks
/v1/tasks/service-info and unmarshals every answer strictly, so each call below fails
on a field it does not know.  Its own ``wait`` swallows such failures and retries;
this driver polls with ``get_task`` itself so that they surface.

Runs inside .venvs/pytes04 (scripts/client-venv.sh pytes04), never in toolship's venv.
Usage: python pytes04_driver.py URL TOKEN IMAGE OUTDIR
"""

import json
import sys
import time

import tes

url, token, image, outdir = sys.argv[1:5]
client = tes.HTTPClient(url, token=token, timeout=30)
DEADLINE = 120


def poll(task_id, until):
    """The task (MINIMAL) once its state is in ``until``; fails at the deadline."""
    end = time.monotonic() + DEADLINE
    while True:
        task = client.get_task(task_id, view="MINIMAL")
        if task.state in until:
            return task
        if time.monotonic() > end:
            raise SystemExit(f"task {task_id} still {task.state} after {DEADLINE}s")
        time.sleep(0.1)


def shown(task):
    return json.loads(task.as_json())


FINAL = ("COMPLETE", "EXECUTOR_ERROR", "SYSTEM_ERROR", "CANCELED")
found = {"service": client.get_service_info().as_dict()}

# As Snakemake sends them: an empty Resources(), an inline script, outputs by file://.
created = {
    "plain": tes.Task(
        name="pytes04-plain",
        executors=[tes.Executor(image=image, command=["sh", "-c", "echo from-pytes04"])],
    ),
    "snakemake": tes.Task(
        name="pytes04-snakemake",
        description="a job as the Snakemake plugin sends it",
        inputs=[tes.Input(path="/data/job.sh", content="echo hello > /data/out.txt\n")],
        outputs=[tes.Output(url=f"file://{outdir}/out.txt", path="/data/out.txt")],
        resources=tes.Resources(),
        executors=[
            tes.Executor(
                image=image, command=["sh", "/data/job.sh"], workdir="/data", env={"JOB": "1"}
            )
        ],
        tags={"client": "pytes04"},
    ),
    # As Toil's TES batch system sends them: cores, memory and disk asked for.
    "toil": tes.Task(
        name="pytes04-toil",
        resources=tes.Resources(cpu_cores=1, ram_gb=0.25, disk_gb=1.0, preemptible=False),
        executors=[tes.Executor(image=image, command=["sh", "-c", "exit 3"])],
    ),
}
ids = {key: client.create_task(task) for key, task in created.items()}
for key, task_id in ids.items():
    poll(task_id, FINAL)
    found[key] = {
        "id": task_id,
        "views": {v: shown(client.get_task(task_id, view=v)) for v in ("MINIMAL", "BASIC", "FULL")},
    }

long_id = client.create_task(
    tes.Task(name="pytes04-cancel", executors=[tes.Executor(image=image, command=["sleep", "600"])])
)
poll(long_id, ("RUNNING",))
client.cancel_task(long_id)
found["cancel"] = {
    "id": long_id,
    "state": poll(long_id, FINAL).state,
    "full": shown(client.get_task(long_id, view="FULL")),
}

found["listed"] = {}
for view in ("MINIMAL", "BASIC", "FULL"):
    listed, page_token = [], None
    while True:
        page = client.list_tasks(view=view, page_size=2, page_token=page_token)
        listed += [shown(t) for t in page.tasks or []]
        page_token = page.next_page_token
        if not page_token:
            break
    found["listed"][view] = listed
print(json.dumps(found))
