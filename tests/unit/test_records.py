"""The typed records that cross the layers: what older databases hold still loads."""

from __future__ import annotations

import json

from toolship.models import TaskLog
from toolship.records import RuntimeRecord, SlurmRecord, WorkerReport

# A runtime record as the worker wrote it before the records were typed: mid-executor,
# on Slurm, with the nulls it left behind after an executor ended.
OLD = {
    "warnings": ["cpu_cores capped at 4"],
    "attempt_dir": "/srv/toolship/work/t1/1",
    "runtime": "podman",
    "phase": "run",
    "executor": 1,
    "mounts": [["/srv/toolship/work/t1/1/inputs/in", "/in", True]],
    "deadline": 1767225600.5,
    "pid": None,
    "container": None,
    "launching": 1,
    "exec_start": "2026-01-01T00:00:00.000Z",
    "slurm": {"job_id": "41", "state": "RUNNING", "nodes": "node1"},
}


def test_a_runtime_record_of_an_older_toolship_loads_field_by_field() -> None:
    rt = RuntimeRecord.model_validate_json(json.dumps(OLD))
    assert rt.phase == "run" and rt.executor == 1 and rt.launching == 1 and rt.pid is None
    assert rt.mounts == [("/srv/toolship/work/t1/1/inputs/in", "/in", True)]
    assert rt.slurm == SlurmRecord(job_id="41", state="RUNNING", nodes="node1")
    assert rt.deadline == 1767225600.5 and rt.warnings == ["cpu_cores capped at 4"]
    stored = json.loads(rt.model_dump_json(exclude_defaults=True))
    assert stored == {k: v for k, v in OLD.items() if v is not None}  # the same keys back


def test_an_empty_record_is_a_fresh_attempt_and_an_unknown_key_is_dropped() -> None:
    assert RuntimeRecord.model_validate_json("{}") == RuntimeRecord()
    assert RuntimeRecord().model_dump_json(exclude_defaults=True) == "{}"
    assert RuntimeRecord.model_validate({"phase": "done", "gone": 1}) == RuntimeRecord(phase="done")


def test_a_stored_attempt_log_is_a_tes_task_log_and_writes_back_unchanged() -> None:
    old = {
        "logs": [{"start_time": "2026-01-01T00:00:00Z", "end_time": "2026-01-01T00:00:01Z",
                  "exit_code": 0, "stdout": "out\n", "stderr": ""}],
        "outputs": [{"url": "file:///o", "path": "/o", "size_bytes": "3"}],
        "system_logs": [],
        "start_time": "2026-01-01T00:00:00Z",
        "metadata": {"sha256:/in": "ab"},
    }  # fmt: skip
    log = TaskLog.model_validate(old)
    assert log.logs[0].exit_code == 0 and log.outputs[0].size_bytes == "3"
    assert log.model_dump(mode="json", exclude_none=True) == old


def test_a_workers_report_survives_the_wire() -> None:
    report = WorkerReport(
        attempt=TaskLog(system_logs=["x"]), runtime=RuntimeRecord(phase="staging")
    )
    again = WorkerReport.model_validate_json(report.model_dump_json(exclude_none=True))
    assert again == report and again.state is None
