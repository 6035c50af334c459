"""A small Toil workflow: count the words of each input file, then sum them up.

Four jobs, each a TES task under ``--batchSystem tes``: the root, one child per
input file and a follow-on that combines the children's results.  Every file
travels through Toil's file job store (imported by the leader, read and written
by the jobs in their containers, exported by the leader at the end).

usage: python wordcount.py JOBSTORE --input NAME=PATH ... --output PATH [Toil options]
"""

from __future__ import annotations

from pathlib import Path

from toil.common import Toil
from toil.fileStores import FileID
from toil.job import Job, Promise


def count_words(job: Job, name: str, file_id: FileID) -> tuple[str, FileID]:
    text = Path(job.fileStore.readGlobalFile(file_id)).read_text()
    counted = Path(job.fileStore.getLocalTempFile())
    counted.write_text(f"{name} {len(text.split())}\n")
    return name, job.fileStore.writeGlobalFile(str(counted))


def combine(job: Job, counts: list[tuple[str, FileID]]) -> FileID:
    lines = [Path(job.fileStore.readGlobalFile(fid)).read_text() for _name, fid in sorted(counts)]
    summary = Path(job.fileStore.getLocalTempFile())
    summary.write_text("".join(lines))
    return job.fileStore.writeGlobalFile(str(summary))


def root(job: Job, inputs: dict[str, FileID]) -> Promise:
    counts = [job.addChildJobFn(count_words, name, fid).rv() for name, fid in inputs.items()]
    return job.addFollowOnJobFn(combine, counts).rv()


def main() -> None:
    parser = Job.Runner.getDefaultArgumentParser()
    parser.add_argument("--input", action="append", required=True, help="NAME=PATH")
    parser.add_argument("--output", required=True)
    options = parser.parse_args()
    with Toil(options) as toil:
        inputs = {}
        for item in options.input:
            name, path = item.split("=", 1)
            inputs[name] = toil.import_file(Path(path).resolve().as_uri())
        summary = toil.start(Job.wrapJobFn(root, inputs))
        toil.export_file(summary, Path(options.output).resolve().as_uri())


if __name__ == "__main__":
    main()
