"""taskfs: a task's tree is read and written without following a link or opening a FIFO."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from toolship.worker import taskfs
from toolship.worker.taskfs import TaskPathError


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "root" / "work" / "sub").mkdir(parents=True)
    (tmp_path / "root" / "work" / "sub" / "f.txt").write_text("data\n")
    (tmp_path / "host.txt").write_text("host\n")
    return tmp_path / "root"


def test_a_regular_file_is_opened(root: Path) -> None:
    fd = taskfs.open_file(root, "work/sub/f.txt", "output", "/work/sub/f.txt")
    try:
        assert os.read(fd, 100) == b"data\n"
    finally:
        os.close(fd)


@pytest.mark.parametrize(
    ("make", "what"),
    [
        (lambda p, host: p.symlink_to(host), "a symbolic link"),
        (lambda p, host: os.mkfifo(p), "a FIFO"),
        (lambda p, host: p.symlink_to("/dev/zero"), "a symbolic link"),
        (lambda p, host: p.mkdir(), "a directory"),
    ],
)
def test_anything_but_a_regular_file_is_refused_by_name(root: Path, make, what: str) -> None:  # type: ignore[no-untyped-def]
    make(root / "work" / "x", root.parent / "host.txt")
    with pytest.raises(TaskPathError, match=f"stdin /work/x is {what}"):
        taskfs.open_file(root, "work/x", "stdin", "/work/x")


def test_a_linked_directory_on_the_way_is_refused_naming_it(root: Path) -> None:
    (root / "work" / "link").symlink_to(root / "work" / "sub")
    with pytest.raises(TaskPathError, match=r"/work/link/f\.txt: /work/link is a symbolic link"):
        taskfs.open_file(root, "work/link/f.txt", "output", "/work/link/f.txt")


def test_reads_are_bounded(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.write_bytes(b"x" * 1000 + b"end")
    assert taskfs.read_tail(log, 3) == b"end"
    assert taskfs.read_at(log, 1000, 10) == b"end"
    assert taskfs.read_tail(tmp_path / "missing", 3) == b""


def test_a_folder_reads_by_name_from_its_listing_and_never_follows_a_link(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a").write_bytes(b"0123456789")
    (logs / "link").symlink_to(tmp_path / "host.txt")
    (tmp_path / "host.txt").write_text("host\n")
    os.mkfifo(logs / "fifo")
    with taskfs.Folder(logs, "log file") as folder:
        assert folder.read_at("a", 4, 3) == b"456"
        assert folder.read_at("missing", 0, 10) == b""
        (logs / "later").write_bytes(b"new")
        assert folder.read_at("later", 0, 10) == b""  # not in the listing made on opening
        assert folder.read_at("later", 0, 10, listed=False) == b"new"
        for name, what in (("link", "a symbolic link"), ("fifo", "a FIFO")):
            with pytest.raises(TaskPathError, match=f"log file {logs / name} is {what}"):
                folder.read_at(name, 0, 10)
    with taskfs.Folder(tmp_path / "none", "log file") as folder:
        assert folder.read_at("a", 0, 10, listed=False) == b""


def test_replacing_a_link_replaces_the_link_never_its_target(root: Path) -> None:
    source = root.parent / "capture"
    source.write_text("captured\n")
    (root / "work" / "out").symlink_to(root.parent / "host.txt")
    with pytest.raises(TaskPathError, match="stdout file /work/out is a symbolic link"):
        taskfs.replace_file(root, "work/out", source, "stdout file", "/work/out")
    assert (root.parent / "host.txt").read_text() == "host\n"
    taskfs.replace_file(root, "work/new/out", source, "stdout file", "/work/new/out")
    assert (root / "work" / "new" / "out").read_text() == "captured\n"
    assert sorted(p.name for p in (root / "work" / "new").iterdir()) == ["out"]  # no temp left


def test_a_walk_lists_links_and_fifos_apart_and_never_enters_a_linked_directory(
    root: Path,
) -> None:
    (root / "work" / "sub" / "link").symlink_to(root.parent)
    os.mkfifo(root / "work" / "sub" / "fifo")
    found = taskfs.regular_files(root, "work", "output", "/work")
    assert found == [
        ("sub/f.txt", ""),
        ("sub/fifo", "a FIFO (named pipe)"),
        ("sub/link", "a symbolic link"),
    ]


def test_a_fresh_directory_removes_what_was_left_without_following_links(root: Path) -> None:
    (root / "work" / "link").symlink_to(root.parent / "host.txt")
    taskfs.fresh_directory(root)
    assert list(root.iterdir()) == []
    assert (root.parent / "host.txt").read_text() == "host\n"


def test_what_a_root_server_writes_for_the_task_belongs_to_the_task_user(root: Path) -> None:
    source = root.parent / "capture"
    source.write_text("captured\n")
    taskfs.replace_file(
        root, "work/deep/out", source, "stdout file", "/work/deep/out", (65534, 65534)
    )
    given = (65534, 65534) if os.geteuid() == 0 else (os.getuid(), os.getgid())
    for made in (root / "work" / "deep", root / "work" / "deep" / "out"):
        assert (made.stat().st_uid, made.stat().st_gid) == given
    assert (root / "work").stat().st_uid == os.getuid()  # what existed keeps its owner


def test_a_walk_can_list_directories_too_empty_ones_included(root: Path) -> None:
    (root / "work" / "a" / "b").mkdir(parents=True)
    (root / "work" / "link").symlink_to(root.parent)
    found = taskfs.regular_files(root, "work", "output", "/work", directories=True)
    assert found == [
        ("a", "a directory"),
        ("a/b", "a directory"),
        ("link", "a symbolic link"),
        ("sub", "a directory"),
        ("sub/f.txt", ""),
    ]
