"""`toolship service build DIR` sends DIR as podman would see it: less what .containerignore
(or .dockerignore) leaves out, read as Docker reads it; the Containerfile always goes."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import pytest

from toolship.buildcontext import Patterns, containerfile_of, pack
from toolship.errors import InvalidRequest


def _names(folder: Path, file: str | None = None) -> set[str]:
    with pack(folder, file) as packed, tarfile.open(fileobj=packed.archive, mode="r:gz") as tar:
        return {m.name for m in tar.getmembers()}


def _tree(root: Path, *files: str) -> Path:
    for name in files:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(name)
    return root


@pytest.mark.parametrize(
    ("pattern", "path", "excluded"),
    [
        ("*.log", "a.log", True),
        ("*.log", "sub/a.log", False),  # * stays within one segment, from the top
        ("**/*.log", "sub/deep/a.log", True),
        ("**/*.log", "a.log", True),
        ("build", "build/x/y.o", True),  # a folder takes what is inside
        ("/build", "build", True),  # a leading / changes nothing
        ("sub/*/tmp", "sub/a/tmp/f", True),
        ("a?c", "abc", True),
        ("a?c", "a/c", False),
        ("[ab].txt", "b.txt", True),
        ("[!ab].txt", "c.txt", True),
        ("**", "anything/at/all", True),
        ("data/**", "data/x/y", True),
        ("data/**", "data2", False),
        ("# comment", "# comment", False),
    ],
)
def test_patterns_match_as_docker_reads_them(pattern: str, path: str, excluded: bool) -> None:
    assert Patterns([pattern]).excludes(path) is excluded


def test_the_last_matching_pattern_decides() -> None:
    p = Patterns(["*.md", "!README.md", "README*"])
    assert p.excludes("CHANGES.md")
    assert p.excludes("README.md")  # README* comes after !README.md
    p = Patterns(["docs", "!docs/keep.txt"])
    assert p.excludes("docs/other.txt")
    assert not p.excludes("docs/keep.txt")


def test_pack_leaves_out_what_the_ignore_file_says_and_keeps_the_containerfile(
    tmp_path: Path,
) -> None:
    ctx = _tree(
        tmp_path / "ctx", "Containerfile", "app.py", "notes.md", "data/big.bin", "data/keep.txt",
        "sub/x.log", "sub/y.py",
    )  # fmt: skip
    (ctx / ".containerignore").write_text(
        "# nothing big\ndata\n!data/keep.txt\n**/*.log\n*.md\nContainerfile\n.containerignore\n"
    )
    (ctx / ".dockerignore").write_text("app.py\n")  # .containerignore comes first
    assert _names(ctx) == {
        "Containerfile", ".containerignore", "app.py", "data/keep.txt", "sub", "sub/y.py",
        ".dockerignore",
    }  # fmt: skip
    with pack(ctx) as packed:
        assert (packed.ignore_file, packed.containerfile, packed.files) == (
            ".containerignore", "Containerfile", 6,
        )  # fmt: skip
        assert packed.left_out == 3  # data/big.bin, notes.md, sub/x.log


def test_dockerignore_when_there_is_no_containerignore(tmp_path: Path) -> None:
    ctx = _tree(tmp_path / "ctx", "Dockerfile", "secret.env", "build/out.o", "src/main.c")
    (ctx / ".dockerignore").write_text("*.env\nbuild/\n")
    assert _names(ctx) == {"Dockerfile", ".dockerignore", "src", "src/main.c"}


def test_links_stay_links_and_special_files_are_skipped(tmp_path: Path) -> None:
    ctx = _tree(tmp_path / "ctx", "Containerfile", "real/file.txt")
    (ctx / "link.txt").symlink_to("real/file.txt")
    (ctx / "linked-dir").symlink_to("real")
    os.mkfifo(ctx / "pipe")
    with pack(ctx) as packed, tarfile.open(fileobj=packed.archive, mode="r:gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["link.txt"].issym() and members["link.txt"].linkname == "real/file.txt"
    assert members["linked-dir"].issym()
    assert "linked-dir/file.txt" not in members  # not followed
    assert "pipe" not in members and packed.skipped == ["pipe"]
    assert {m.uid for m in members.values()} == {0}
    assert {m.uname for m in members.values()} == {""}


def test_the_containerfile_is_found_or_its_absence_explained(tmp_path: Path) -> None:
    ctx = _tree(tmp_path / "ctx", "Dockerfile", "build/Containerfile")
    assert containerfile_of(ctx, None) == "Dockerfile"
    assert containerfile_of(ctx, "build/Containerfile") == "build/Containerfile"
    assert containerfile_of(ctx, str(ctx / "build" / "Containerfile")) == "build/Containerfile"
    with pytest.raises(InvalidRequest, match="no such file"):
        containerfile_of(ctx, "Nope")
    _tree(tmp_path, "elsewhere/Containerfile")
    with pytest.raises(InvalidRequest, match="must be inside the folder"):
        containerfile_of(ctx, str(tmp_path / "elsewhere" / "Containerfile"))
    with pytest.raises(InvalidRequest, match="neither a Containerfile nor a Dockerfile"):
        containerfile_of(_tree(tmp_path / "empty", "README"), None)
    with pytest.raises(InvalidRequest, match="not a folder"):
        containerfile_of(tmp_path / "missing", None)


def test_a_containerfile_left_out_by_the_ignore_file_is_sent_anyway(tmp_path: Path) -> None:
    ctx = _tree(tmp_path / "ctx", "build/Containerfile", "x")
    (ctx / ".containerignore").write_text("build\n")
    assert _names(ctx, "build/Containerfile") == {".containerignore", "x", "build/Containerfile"}
