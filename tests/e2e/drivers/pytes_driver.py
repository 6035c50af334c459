"""Drives a toolship server with py-tes 1.1's own HTTPClient; prints findings as JSON.

Runs inside .venvs/pytes (scripts/client-venv.sh pytes), never in toolship's venv.
Usage: python pytes_driver.py URL TOKEN IMAGE
"""

import json
import sys
import time

import tes

url, token, image = sys.argv[1:4]
client = tes.HTTPClient(url, token=token, timeout=30)
found = {"service": client.get_service_info().name}

ok_id = client.create_task(
    tes.Task(
        name="pytes-ok",
        executors=[tes.Executor(image=image, command=["sh", "-c", "echo from-pytes; exit 0"])],
        tags={"client": "pytes"},
    )
)
done = client.wait(ok_id, timeout=120)
full = client.get_task(ok_id, view="FULL")
found["ok"] = {
    "id": ok_id,
    "state": done.state,
    "exit_code": full.logs[0].logs[0].exit_code,
    "stdout": full.logs[0].logs[0].stdout,
    "tags": full.tags,
}

fail_id = client.create_task(
    tes.Task(executors=[tes.Executor(image=image, command=["sh", "-c", "exit 7"])])
)
found["fail"] = {
    "state": client.wait(fail_id, timeout=120).state,
    "exit_code": client.get_task(fail_id, view="FULL").logs[0].logs[0].exit_code,
}

long_id = client.create_task(
    tes.Task(executors=[tes.Executor(image=image, command=["sleep", "600"])])
)
time.sleep(1)
client.cancel_task(long_id)
found["cancel"] = client.wait(long_id, timeout=60).state

ids, token_ = [], None
while True:
    page = client.list_tasks(view="BASIC", page_size=2, page_token=token_)
    ids += [t.id for t in page.tasks or []]
    token_ = page.next_page_token
    if not token_:
        break
found["listed"] = ids
print(json.dumps(found))
