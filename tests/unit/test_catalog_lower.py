"""A run of a service becomes an ordinary TES task that runs the pinned image; every bad
input is refused with a 400 that names it and lists what is valid, before anything runs."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_catalog_labels import GEF_CLONE, GEF_NLTK, _containerfile_labels
from toolship.catalog.labels import read_labels
from toolship.catalog.lower import lower
from toolship.errors import InvalidRequest
from toolship.models import FileType, Task
from toolship.services import SERVICE_TAG, ServiceRun, ServiceVersion

DIGEST = "sha256:" + "ab" * 32
T = "toolship.service."


def version(labels: dict[str, str], cmd: list[str] | None = None, **fields: Any) -> ServiceVersion:
    d = read_labels(labels, cmd=cmd)
    name = d.name or "svc"
    repo = "127.0.0.1:5055/toolship/" + re.sub(r"[^a-z0-9]+", "-", name.lower())
    doc: dict[str, Any] = {
        "name": name,
        "version": d.version or "1",
        "description": d.description,
        "repository": repo,
        "digest": DIGEST,
        "image": f"{repo}@{DIGEST}",
        "registered": "2026-11-28T12:00:00Z",
        "labels": labels,
        "interface": d.interface,
        "oci": d.oci,
        **fields,
    }
    return ServiceVersion(**doc)


def run(**fields: Any) -> ServiceRun:
    return ServiceRun.model_validate(fields)


def refused(v: ServiceVersion, r: ServiceRun) -> str:
    with pytest.raises(InvalidRequest) as info:
        lower(v, r)
    return str(info.value)


NLTK = version(GEF_NLTK, cmd=["python", "/root/posTagger.py"])


def test_a_gef_service_runs_its_pinned_image_and_cmd_with_urls_staged_into_its_directories() -> (
    None
):
    task = lower(
        NLTK,
        run(
            inputs={
                "First Input Directory": "s3://corpus/texts/book.txt",
                "input2": "The quick brown fox.",
            },
            outputs={"Output Directory": "file:///results/"},
        ),
    )
    assert isinstance(task, Task)
    [executor] = task.executors
    assert executor.image == f"127.0.0.1:5055/toolship/nltk-pos-tagging@{DIGEST}"
    assert executor.command == ["python", "/root/posTagger.py"]
    staged, text = task.inputs or []
    assert (staged.url, staged.path, staged.type) == (
        "s3://corpus/texts/book.txt",
        "/root/input1/book.txt",  # the URL's file, staged into the directory as GEF does
        FileType.FILE,
    )
    assert (text.content, text.path, text.url) == (
        "The quick brown fox.",
        "/root/input2/input2.txt",
        None,
    )
    [out] = task.outputs or []
    assert (out.url, out.path, out.type) == ("file:///results", "/root/output", FileType.DIRECTORY)
    assert task.tags == {SERVICE_TAG: "NLTK POS-tagging@1.0"}
    assert task.name == "NLTK POS-tagging"


def test_a_url_ending_in_a_slash_is_a_whole_directory_and_the_filename_label_names_a_file() -> None:
    labels = {**GEF_CLONE, "eudat.gef.service.input.1.filename": "data.csv"}
    clone = version(labels, cmd=["/clone"])
    task = lower(clone, run(inputs={"input1": "s3://b/in/"}, outputs={"output1": "s3://b/out"}))
    [whole] = task.inputs or []
    assert (whole.url, whole.path, whole.type) == ("s3://b/in", "/mydata/input", FileType.DIRECTORY)
    task = lower(
        clone, run(inputs={"input1": "https://h/get?id=7"}, outputs={"output1": "s3://b/out"})
    )
    assert (task.inputs or [])[0].path == "/mydata/input/data.csv"
    [out] = task.outputs or []
    assert (out.url, out.type) == ("s3://b/out", FileType.DIRECTORY)


def test_a_missing_input_an_unknown_port_and_a_missing_output_url_are_refused_together() -> None:
    message = refused(NLTK, run(inputs={"Third": "s3://b/x", "input2": "text"}))
    assert message.startswith("cannot run NLTK POS-tagging@1.0: ")
    assert (
        "input 'First Input Directory' (input1) is required: give --in 'First Input Directory'=URL"
        in message
    )
    assert (
        "no input port 'Third'; the inputs are 'First Input Directory' (input1, directory at "
        "/root/input1), 'Second Input Directory' (input2, string at /root/input2/input2.txt)"
    ) in message
    assert (
        "output 'Output Directory' (output1) has no URL: give --out 'Output Directory'=URL/"
        in message
    )


def test_unknown_output_ports_and_ports_given_twice_are_refused() -> None:
    clone = version(GEF_CLONE, cmd=["/clone"])
    message = refused(
        clone,
        run(
            inputs={"input1": "s3://b/a", "Input Directory": "s3://b/b"},
            outputs={"output1": "s3://b/o", "logs": "s3://b/l"},
        ),
    )
    assert "input 'Input Directory' is given twice (as input1 and as Input Directory)" in message
    assert (
        "no output port 'logs'; the outputs are 'Output Directory' (output1, directory" in message
    )


def wordfreq(**extra: str) -> ServiceVersion:
    doc = (Path(__file__).parents[2] / "docs" / "services.md").read_text()
    [example] = re.findall(r"```dockerfile\n(.*?)```", doc, flags=re.DOTALL)
    return version({**_containerfile_labels(example), **extra}, cmd=["python3", "--help"])


def test_the_documented_service_runs_as_documented() -> None:
    task = lower(
        wordfreq(),
        run(
            inputs={"text": "file:///home/me/book.txt"},
            parameters={"top": "20"},
            outputs={"counts": "file:///home/me/results/counts.csv"},
        ),
    )
    [executor] = task.executors
    assert executor.command == [
        "python3",
        "/opt/wordfreq.py",
        "--top",
        "20",
        "--case",
        "lower",
        "/data/text.txt",
        "/data/out/counts.csv",
    ]
    assert executor.workdir == "/data"
    [text] = task.inputs or []
    assert (text.url, text.path, text.type) == (
        "file:///home/me/book.txt",
        "/data/text.txt",
        FileType.FILE,
    )
    [counts] = task.outputs or []
    assert (counts.url, counts.type) == ("file:///home/me/results/counts.csv", FileType.FILE)
    res = task.resources
    assert res is not None
    assert (res.cpu_cores, res.ram_gb, res.disk_gb) == (1, 0.5, None)
    assert res.backend_parameters == {"timeout": "600s"}
    assert task.tags == {SERVICE_TAG: "wordfreq@1.2.0"}


def test_optional_values_fill_their_arguments_and_json_values_are_taken_as_they_are() -> None:
    task = lower(
        wordfreq(),
        run(
            inputs={"text": "s3://b/t.txt", "stopwords": "s3://b/stop.txt"},
            parameters={"top": 5, "case": "keep", "min_length": "3"},
            outputs={"output1": "s3://b/out/"},
        ),
    )
    assert task.executors[0].command[2:] == [
        "--top",
        "5",
        "--case",
        "keep",
        "--min-length=3",
        "--stopwords=/data/stopwords.txt",
        "/data/text.txt",
        "/data/out/counts.csv",
    ]
    # A file output given a folder URL lands in it under its own name.
    assert (task.outputs or [])[0].url == "s3://b/out/counts.csv"


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ({"top": "0"}, "parameter 'top': '0' is not an int from 1 to 1000"),
        ({"top": "ten"}, "parameter 'top': 'ten' is not an int from 1 to 1000"),
        ({"top": 2.5}, "parameter 'top': 2.5 is not an int from 1 to 1000"),
        ({"top": True}, "parameter 'top': true is not an int from 1 to 1000"),
        ({"top": "9" * 5000}, "is not an int from 1 to 1000"),
        ({"case": "UPPER"}, "parameter 'case': 'UPPER' is not one of keep, lower"),
        ({"min_length": "-1"}, "parameter 'min_length': '-1' is not an int of at least 1"),
        (
            {"verbose": "yes"},
            "no parameter 'verbose'; the parameters are case (one of keep, lower), "
            "min_length (an int of at least 1), top (an int from 1 to 1000)",
        ),
    ],
)
def test_each_kind_of_bad_parameter_gets_its_400(
    parameters: dict[str, str | int | float | bool], expected: str
) -> None:
    message = refused(
        wordfreq(),
        run(inputs={"text": "s3://b/t"}, parameters=parameters, outputs={"counts": "s3://b/c"}),
    )
    assert expected in message


TYPES = {
    T + "param.ratio.type": "float",
    T + "param.ratio.max": "1",
    T + "param.ratio.required": "true",
    T + "param.flag.type": "bool",
    T + "param.label.default": "{x}",
    T + "command": json.dumps(["t", "{ratio}", "--flag={flag}", "{label}", "{{ratio}}"]),
}


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ({}, "parameter 'ratio' is required: give --param ratio=VALUE (a float of at most 1)"),
        ({"ratio": "nan"}, "'nan' is not a float of at most 1"),
        ({"ratio": "1.5"}, "'1.5' is not a float of at most 1"),
        (
            {"ratio": "0.5", "flag": "maybe"},
            "'maybe' is not a bool; write true or false (yes/no, 1/0)",
        ),
    ],
)
def test_typed_parameters_are_checked(
    parameters: dict[str, str | int | float | bool], expected: str
) -> None:
    assert expected in refused(version(TYPES), run(parameters=parameters))


def test_typed_parameters_fill_the_template_and_braces_escape() -> None:
    task = lower(version(TYPES), run(parameters={"ratio": "0.25", "flag": "YES"}))
    assert task.executors[0].command == ["t", "0.25", "--flag=true", "{x}", "{ratio}"]
    task = lower(version(TYPES), run(parameters={"ratio": 1, "flag": False}))
    assert task.executors[0].command == ["t", "1.0", "--flag=false", "{x}", "{ratio}"]


def test_the_images_cmd_runs_as_it_is_braces_and_all() -> None:
    clone = version(GEF_CLONE, cmd=["sh", "-c", "awk '{print}' /mydata/input/*"])
    task = lower(clone, run(inputs={"input1": "s3://b/in/"}, outputs={"output1": "s3://b/o/"}))
    assert task.executors[0].command == ["sh", "-c", "awk '{print}' /mydata/input/*"]


def test_an_image_without_cmd_or_template_cannot_run() -> None:
    message = refused(
        version(GEF_CLONE), run(inputs={"input1": "s3://b/in/"}, outputs={"output1": "s3://b/o/"})
    )
    assert "has no command: the image has no CMD and no toolship.service.command label" in message


def test_input_defaults_and_kinds() -> None:
    labels = {
        T + "input.ref.type": "directory",
        T + "input.ref.path": "/ref",
        T + "input.ref.default": "s3://lab/ref/",
        T + "input.note.type": "string",
        T + "input.note.path": "/in/note.txt",
        T + "input.note.default": "hello",
        T + "input.data.path": "/in/data.bin",
    }
    v = version(labels, cmd=["tool"])
    task = lower(v, run(inputs={"data": "s3://b/d.bin"}))
    assert [(i.path, i.url, i.content, i.type) for i in task.inputs or []] == [
        ("/in/data.bin", "s3://b/d.bin", None, FileType.FILE),
        ("/in/note.txt", None, "hello", FileType.FILE),
        ("/ref", "s3://lab/ref", None, FileType.DIRECTORY),
    ]
    message = refused(v, run(inputs={"data": "s3://b/folder/"}))
    assert "input 'data' takes a file; 's3://b/folder/' ends in '/' (a directory)" in message
    message = refused(v, run(inputs={"data": "s3://b/d", "ref": "https://host"}))
    assert "input 'ref': 'https://host' has no file name to stage into /ref" in message


def test_the_rest_of_the_task_is_kept_and_the_run_options_win_over_the_labels() -> None:
    task = lower(
        wordfreq(),
        run(
            inputs={"text": "s3://b/t"},
            outputs={"counts": "s3://b/c"},
            task={
                "name": "chapter 1",
                "description": "first try",
                "tags": {"project": "x"},
                "inputs": [{"path": "/extra/cfg", "content": "{}"}],
                "outputs": [{"path": "/data/log.txt", "url": "s3://b/log.txt"}],
                "volumes": ["/scratch"],
                "resources": {
                    "cpu_cores": 4,
                    "backend_parameters": {"Timeout": "30s", "network": "true"},
                },
                "executors": [{"env": {"LANG": "C.UTF-8"}, "workdir": "/scratch"}],
            },
        ),
    )
    assert task.name == "chapter 1"
    assert task.description == "first try"
    assert task.tags == {"project": "x", SERVICE_TAG: "wordfreq@1.2.0"}
    assert [i.path for i in task.inputs or []] == ["/data/text.txt", "/extra/cfg"]
    assert [o.path for o in task.outputs or []] == ["/data/out/counts.csv", "/data/log.txt"]
    assert task.volumes == ["/scratch"]
    res = task.resources
    assert res is not None
    assert (res.cpu_cores, res.ram_gb) == (4, 0.5)
    assert res.backend_parameters == {"Timeout": "30s", "network": "true"}
    [executor] = task.executors
    assert (executor.env, executor.workdir) == ({"LANG": "C.UTF-8"}, "/scratch")


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ({"tags": {SERVICE_TAG: "other@2"}}, "tag toolship.service is set by toolship"),
        (
            {"executors": [{"image": "alpine", "command": ["sh"]}]},
            "task.executors[0]: image and command come from the service",
        ),
        ({"executors": [{}, {}]}, "task.executors: a service run has one executor"),
        ({"state": "COMPLETE"}, "task.state is not a field of a service run's task"),
        ({"resources": {"ram_gb": -1}}, "resources.ram_gb"),
        ({"inputs": [{"path": "rel", "url": "s3://b/x"}]}, "must be an absolute path"),
    ],
)
def test_what_the_service_decides_cannot_be_overridden_and_the_task_is_checked(
    task: dict[str, Any], expected: str
) -> None:
    message = refused(
        wordfreq(), run(inputs={"text": "s3://b/t"}, outputs={"counts": "s3://b/c"}, task=task)
    )
    assert expected in message


def test_a_deprecated_version_is_refused_for_new_runs() -> None:
    v = version(GEF_CLONE, cmd=["/clone"], deprecated=True)
    message = refused(v, run(inputs={"input1": "s3://b/in/"}, outputs={"output1": "s3://b/o/"}))
    assert message == (
        "service Clone version 0.1 is deprecated: run a newer version "
        "(toolship service show Clone lists them)"
    )
