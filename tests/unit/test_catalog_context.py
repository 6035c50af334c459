"""An uploaded build context is unpacked without reaching outside its folder."""

from __future__ import annotations

import gzip
import io
import tarfile
from pathlib import Path

import pytest

from toolship.catalog.context import unpack_context
from toolship.errors import InvalidRequest


def _tar(*members: tuple[tarfile.TarInfo, bytes | None], gz: bool = False) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    raw = buf.getvalue()
    return gzip.compress(raw) if gz else raw


def _file(name: str, data: bytes = b"x", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size, info.mode = len(data), mode
    return info, data


def _special(name: str, kind: bytes, link: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    return info, None


def test_a_context_with_files_folders_and_inner_links_unpacks(tmp_path: Path) -> None:
    dest = tmp_path / "ctx"
    data = _tar(
        _special("./", tarfile.DIRTYPE),
        _file("./Containerfile", b"FROM localhost/toolship-busybox\n"),
        _file("bin/run.sh", b"#!/bin/sh\n", mode=0o4755),
        _special("bin/run", tarfile.SYMTYPE, "run.sh"),
        _special("copy.sh", tarfile.LNKTYPE, "bin/run.sh"),
        gz=True,
    )
    assert unpack_context(data, dest) == dest
    assert (dest / "Containerfile").read_bytes() == b"FROM localhost/toolship-busybox\n"
    assert (dest / "bin" / "run").readlink() == Path("run.sh")
    assert (dest / "copy.sh").read_bytes() == b"#!/bin/sh\n"
    assert not (dest / "copy.sh").is_symlink()
    assert (dest / "bin" / "run.sh").stat().st_mode & 0o7777 == 0o755  # setuid dropped


@pytest.mark.parametrize(
    ("members", "says"),
    [
        ([_file("/etc/evil")], "absolute path"),
        ([_file("../evil")], "'..'"),
        ([_file("a/../../evil")], "'..'"),
        ([_special("l", tarfile.SYMTYPE, "/etc")], "absolute path"),
        ([_special("l", tarfile.SYMTYPE, "../..")], "out of the context"),
        ([_special("l", tarfile.SYMTYPE, "."), _file("l/x")], "not a folder"),
        # Each link stays inside alone; together x leads out (y/.. with y = .).
        ([_special("x", tarfile.SYMTYPE, "y/.."), _special("y", tarfile.SYMTYPE, ".")],
         "leads out"),
        ([_special("h", tarfile.LNKTYPE, "/etc/shadow")], "absolute path"),
        ([_special("h", tarfile.LNKTYPE, "nothere")], "not to a file unpacked before"),
        ([_special("dev", tarfile.CHRTYPE)], "devices, FIFOs"),
        ([_special("fifo", tarfile.FIFOTYPE)], "devices, FIFOs"),
    ],
)  # fmt: skip
def test_members_that_would_leave_the_context_are_refused(
    tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], says: str
) -> None:
    dest = tmp_path / "ctx"
    with pytest.raises(InvalidRequest, match="build context") as caught:
        unpack_context(_tar(*members), dest)
    assert says in caught.value.message
    assert not dest.exists()  # nothing is left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_size_and_count_limits(tmp_path: Path) -> None:
    big = _tar(_file("a", b"x" * 600), _file("b", b"y" * 600))
    with pytest.raises(InvalidRequest, match="more than 1000 bytes"):
        unpack_context(big, tmp_path / "one", max_bytes=1000)
    many = _tar(*(_file(f"f{i}") for i in range(5)))
    with pytest.raises(InvalidRequest, match="more than 3 members"):
        unpack_context(many, tmp_path / "two", max_files=3)


def test_not_a_tar_and_a_truncated_tar(tmp_path: Path) -> None:
    with pytest.raises(InvalidRequest, match="not a tar archive"):
        unpack_context(b"hello, not a tar", tmp_path / "one")
    cut = _tar(_file("a", b"z" * 5000))[:1024]
    with pytest.raises(InvalidRequest, match="damaged or truncated"):
        unpack_context(io.BytesIO(cut), tmp_path / "two")
