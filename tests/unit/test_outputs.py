"""Output collection: a directory output delivers the tree the container saw.

Staged for real (a root server bind-mounts local inputs into the attempt's
``mounts/``), with the executors played by writing into the attempt's ``root/``,
then collected to ``file://`` destinations.  Issue 14: empty directories and the
inputs mounted inside an output directory were left out, silently.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from toolship.models import FileType, Input, Output, Task
from toolship.storage import StageContext, StorageRegistry
from toolship.storage.local import LocalStorage, release_mounts
from toolship.worker.layout import AttemptLayout, plan_layout
from toolship.worker.outputs import collect_outputs, empty_leaves
from toolship.worker.staging import prepare_inputs


class Attempt:
    """One attempt's directories, staged from ``task``; ``collect`` delivers its outputs."""

    def __init__(self, tmp: Path, task: Task, owner: tuple[int, int] | None = None) -> None:
        self.task = task
        self.layout: AttemptLayout = plan_layout(task, tmp / "attempt")
        self.storage = StorageRegistry([LocalStorage([tmp], owner=owner)])
        self.pool = ThreadPoolExecutor(4)
        self.ctx = StageContext(pool=self.pool)
        prepare_inputs(task, self.layout, self.storage, self.ctx, isolated=True)

    def host(self, cpath: str) -> Path:
        return self.layout.host(cpath)

    def collect(self, *, strict: bool = True) -> tuple[list[Any], list[str]]:
        return collect_outputs(self.task, self.layout, self.storage, self.ctx, strict=strict)

    def close(self) -> None:
        release_mounts(self.layout.base)
        self.pool.shutdown()


@pytest.fixture
def attempts(tmp_path: Path) -> Iterator[list[Attempt]]:
    made: list[Attempt] = []
    yield made
    for a in made:
        a.close()


def stage(
    attempts: list[Attempt], tmp: Path, *, inputs: list[Input] | None = None,
    outputs: list[Output], owner: tuple[int, int] | None = None,
) -> Attempt:  # fmt: skip
    task = Task(
        executors=[{"image": "x", "command": ["true"], "workdir": "/work"}],
        inputs=inputs,
        outputs=outputs,
    )
    attempt = Attempt(tmp, task, owner)
    attempts.append(attempt)
    return attempt


def tree(folder: Path) -> list[str]:
    """Every path below ``folder``: directories end in '/'."""
    return sorted(
        str(p.relative_to(folder)) + ("/" if p.is_dir() else "") for p in folder.rglob("*")
    )


def directory(path: str, url: Path) -> Output:
    return Output(path=path, url=f"file://{url}", type=FileType.DIRECTORY)


def test_nested_empty_directories_are_delivered(tmp_path: Path, attempts: list[Attempt]) -> None:
    dest = tmp_path / "dest"
    a = stage(attempts, tmp_path, outputs=[directory("/out", dest)])
    (a.host("/out/deeply/nested/dir/structure")).mkdir(parents=True)
    (a.host("/out/empty")).mkdir()
    (a.host("/out/full")).mkdir()
    (a.host("/out/full/f.txt")).write_text("f\n")
    delivered, warnings = a.collect()
    assert tree(dest) == [
        "deeply/", "deeply/nested/", "deeply/nested/dir/", "deeply/nested/dir/structure/",
        "empty/", "full/", "full/f.txt",
    ]  # fmt: skip
    assert [d.path for d in delivered] == ["/out/full/f.txt"]
    assert warnings == []


def test_an_empty_output_directory_is_delivered_empty_and_says_so(
    tmp_path: Path, attempts: list[Attempt]
) -> None:
    dest = tmp_path / "dest" / "empty"
    a = stage(attempts, tmp_path, outputs=[directory("/out", dest)])
    delivered, warnings = a.collect()
    assert dest.is_dir() and tree(dest) == []
    assert delivered == []
    assert len(warnings) == 1 and "/out held no files" in warnings[0], warnings


def test_empty_directories_belong_to_the_output_owner(
    tmp_path: Path, attempts: list[Attempt]
) -> None:
    owner = (65534, 65534)
    dest = tmp_path / "dest"
    a = stage(attempts, tmp_path, outputs=[directory("/out", dest)], owner=owner)
    (a.host("/out/a/b")).mkdir(parents=True)
    a.collect()
    expected = owner if os.geteuid() == 0 else (os.getuid(), os.getgid())
    for made in (dest, dest / "a", dest / "a" / "b"):
        assert (made.stat().st_uid, made.stat().st_gid) == expected


def test_a_file_input_mounted_inside_an_output_directory_is_delivered(
    tmp_path: Path, attempts: list[Attempt]
) -> None:
    src = tmp_path / "ref.fasta"
    src.write_text(">chr1\nACGT\n")
    dest = tmp_path / "dest"
    a = stage(
        attempts, tmp_path,
        inputs=[Input(path="/out/ref.fasta", url=f"file://{src}"),
                Input(path="/out/sub/deeper/r2.fasta", url=str(src))],
        outputs=[directory("/out", dest)],
    )  # fmt: skip
    (a.host("/out/made.txt")).write_text("made\n")
    delivered, warnings = a.collect()
    assert (dest / "ref.fasta").read_text() == ">chr1\nACGT\n"
    assert (dest / "sub" / "deeper" / "r2.fasta").read_text() == ">chr1\nACGT\n"
    assert (dest / "made.txt").read_text() == "made\n"
    assert sorted(d.path for d in delivered) == [
        "/out/made.txt", "/out/ref.fasta", "/out/sub/deeper/r2.fasta"
    ]  # fmt: skip
    assert all(d.sha256 for d in delivered)
    assert warnings == []


def test_a_directory_input_mounted_inside_an_output_directory_is_delivered_whole(
    tmp_path: Path, attempts: list[Attempt]
) -> None:
    src = tmp_path / "refs"
    (src / "idx" / "empty").mkdir(parents=True)
    (src / "a.txt").write_text("a\n")
    (src / "idx" / "b.txt").write_text("b\n")
    dest = tmp_path / "dest"
    a = stage(
        attempts, tmp_path,
        inputs=[Input(path="/out/refs", url=str(src), type=FileType.DIRECTORY)],
        outputs=[directory("/out", dest), directory("/out/refs/idx", tmp_path / "idx"),
                 Output(path="/out/refs/a.txt", url=f"file://{tmp_path}/a.txt"),
                 Output(path="/out/refs/*/*.txt", url=f"file://{tmp_path}/glob/",
                        path_prefix="/out/refs")],
    )  # fmt: skip
    delivered, warnings = a.collect()
    assert tree(dest) == ["refs/", "refs/a.txt", "refs/idx/", "refs/idx/b.txt", "refs/idx/empty/"]
    assert tree(tmp_path / "idx") == ["b.txt", "empty/"]
    assert (tmp_path / "a.txt").read_text() == "a\n"
    assert tree(tmp_path / "glob") == ["idx/", "idx/b.txt"]
    assert warnings == []
    assert len(delivered) == 5


def test_an_output_file_at_an_input_path_is_the_input(
    tmp_path: Path, attempts: list[Attempt]
) -> None:
    src = tmp_path / "in.txt"
    src.write_text("input\n")
    a = stage(
        attempts, tmp_path,
        inputs=[Input(path="/work/in.txt", url=str(src))],
        outputs=[Output(path="/work/in.txt", url=f"file://{tmp_path}/copy.txt"),
                 Output(path="/work/in.txt", url=f"file://{src}")],
    )  # fmt: skip
    before = src.stat()
    delivered, _ = a.collect()
    assert (tmp_path / "copy.txt").read_text() == "input\n"
    assert [d.url for d in delivered] == [f"file://{tmp_path}/copy.txt"]  # not onto itself
    assert src.stat().st_ino == before.st_ino


def test_a_link_in_place_of_a_mount_point_is_never_followed(
    tmp_path: Path, attempts: list[Attempt]
) -> None:
    """The placeholder under an input's mount is replaced by a link to a host file: the
    input is still delivered from toolship's own pinned copy, the host file never."""
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret\n")
    src = tmp_path / "ref.fasta"
    src.write_text("ACGT\n")
    dest = tmp_path / "dest"
    a = stage(
        attempts, tmp_path,
        inputs=[Input(path="/out/ref.fasta", url=str(src)),
                Input(path="/out/sub/r.fasta", url=str(src))],
        outputs=[directory("/out", dest)],
    )  # fmt: skip
    placeholder = a.host("/out/ref.fasta")
    placeholder.unlink()
    placeholder.symlink_to(secret)
    os.rename(a.host("/out/sub"), a.host("/out/moved"))
    a.host("/out/sub").symlink_to(tmp_path)
    _, warnings = a.collect()
    assert (dest / "ref.fasta").read_text() == "ACGT\n"
    assert (dest / "sub" / "r.fasta").read_text() == "ACGT\n"
    assert not (dest / "sub" / "secret.txt").exists()
    texts = [p.read_text() for p in dest.rglob("*") if p.is_file()]
    assert "host secret\n" not in texts
    assert any("/out/sub" in w and "symbolic link" in w for w in warnings), warnings


def test_a_linked_subdirectory_of_an_output_directory_is_not_entered(
    tmp_path: Path, attempts: list[Attempt]
) -> None:
    (tmp_path / "host").mkdir()
    (tmp_path / "host" / "secret.txt").write_text("host secret\n")
    dest = tmp_path / "dest"
    a = stage(attempts, tmp_path, outputs=[directory("/out", dest)])
    (a.host("/out/link")).symlink_to(tmp_path / "host")
    delivered, warnings = a.collect()
    assert delivered == [] and tree(dest) == []
    assert any("/out/link" in w and "symbolic link" in w for w in warnings), warnings


def test_a_pattern_that_matches_nothing_says_so(tmp_path: Path, attempts: list[Attempt]) -> None:
    a = stage(
        attempts, tmp_path,
        outputs=[Output(path="/out/*.png", url=f"file://{tmp_path}/plots/")],
    )  # fmt: skip
    delivered, warnings = a.collect()
    assert delivered == []
    assert warnings == [
        f"output /out/*.png matched no file: nothing delivered to file://{tmp_path}/plots/"
    ]


def test_empty_leaves_are_the_directories_nothing_is_delivered_into() -> None:
    dirs = ["/o", "/o/a", "/o/a/b", "/o/c", "/o/d"]
    files = ["/o/c/f.txt", "/o/df.txt"]
    assert empty_leaves("/o", dirs, files) == ["a/b", "d"]
    assert empty_leaves("/o", ["/o"], []) == [""]
    assert empty_leaves("/o", ["/o"], ["/o/x"]) == []
