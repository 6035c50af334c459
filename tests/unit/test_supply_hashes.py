"""A path that is an input and an output keeps both hashes (the output's under sha256:)."""

from __future__ import annotations

from toolship.supply.hashes import file_hashes, input_hashes, record_hash


def test_an_output_at_an_inputs_path_keeps_the_inputs_hash_apart() -> None:
    meta: dict[str, str] = {"toolship.image.0": "busybox"}
    record_hash(meta, "/work/data.txt", "aa", output=False)
    record_hash(meta, "/in/ref.fa", "bb", output=False)
    record_hash(meta, "/work/data.txt", "cc", output=True)  # rewritten by the task
    record_hash(meta, "/in/ref.fa", "bb", output=True)  # delivered unchanged
    record_hash(meta, "/out/new.txt", "dd", output=True)
    assert file_hashes(meta) == {"/work/data.txt": "cc", "/in/ref.fa": "bb", "/out/new.txt": "dd"}
    assert input_hashes(meta) == {"/work/data.txt": "aa"}


def test_no_metadata_no_hashes() -> None:
    assert file_hashes(None) == {} and input_hashes({}) == {}
