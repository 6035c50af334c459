"""An image's labels become a service's description: GEF's labels read as GEF reads them,
the OCI annotations, and toolship's own typed namespace; bad labels are refused at
registration with the label named and the fix."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

from toolship.catalog.labels import read_labels
from toolship.errors import InvalidRequest
from toolship.services import ParamKind, PortKind

# The labels of GEF's own service images (EUDAT-GEF/GEF services/clone/Dockerfile and
# services/nltk/Dockerfile), as docker inspect shows them.
GEF_CLONE = {
    "eudat.gef.service.name": "Clone",
    "eudat.gef.service.description": "Copy input to output",
    "eudat.gef.service.version": "0.1",
    "eudat.gef.service.input.1.name": "Input Directory",
    "eudat.gef.service.input.1.path": "/mydata/input",
    "eudat.gef.service.input.1.type": "url",
    "eudat.gef.service.output.1.name": "Output Directory",
    "eudat.gef.service.output.1.path": "/mydata/output",
}
GEF_NLTK = {
    "eudat.gef.service.name": "NLTK POS-tagging",
    "eudat.gef.service.description": (
        "Performs text segmentation (splits into sentences) and POS-tagging"
    ),
    "eudat.gef.service.version": "1.0",
    "eudat.gef.service.input.1.name": "First Input Directory",
    "eudat.gef.service.input.1.path": "/root/input1",
    "eudat.gef.service.input.1.type": "url",
    "eudat.gef.service.input.2.name": "Second Input Directory",
    "eudat.gef.service.input.2.path": "/root/input2",
    "eudat.gef.service.input.2.type": "string",
    "eudat.gef.service.input.2.filename": "input2.txt",
    "eudat.gef.service.output.1.name": "Output Directory",
    "eudat.gef.service.output.1.path": "/root/output",
}

T = "toolship.service."


def refused(labels: dict[str, str]) -> str:
    with pytest.raises(InvalidRequest) as info:
        read_labels(labels)
    return str(info.value)


def test_gef_clone_registers_unchanged_with_directory_ports_and_the_images_cmd() -> None:
    d = read_labels(GEF_CLONE, cmd=["/clone"])
    assert (d.name, d.version, d.description) == ("Clone", "0.1", "Copy input to output")
    [port] = d.interface.inputs
    assert (port.name, port.key, port.kind, port.path) == (
        "Input Directory",
        "input1",
        PortKind.DIRECTORY,
        "/mydata/input",
    )
    assert port.required
    [out] = d.interface.outputs
    assert (out.name, out.key, out.kind, out.path) == (
        "Output Directory",
        "output1",
        PortKind.DIRECTORY,
        "/mydata/output",
    )
    assert d.interface.command == ["/clone"]
    assert not d.own_command
    assert not d.interface.template


def test_gef_string_input_keeps_its_filename() -> None:
    d = read_labels(GEF_NLTK, cmd=["python", "/root/posTagger.py"])
    first, second = d.interface.inputs
    assert (first.key, first.kind, first.filename) == ("input1", PortKind.DIRECTORY, None)
    assert (second.name, second.key, second.kind, second.path, second.filename) == (
        "Second Input Directory",
        "input2",
        PortKind.STRING,
        "/root/input2",
        "input2.txt",
    )


def test_gef_ports_are_ordered_by_number_and_ports_without_a_path_are_dropped_as_gef_does() -> None:
    labels = {
        "eudat.gef.service.input.10.name": "ten",
        "eudat.gef.service.input.10.path": "/in/ten",
        "eudat.gef.service.input.2.name": "two",
        "eudat.gef.service.input.2.path": "/in/two",
        "eudat.gef.service.input.2.type": "URL",  # GEF compares types case-insensitively
        "eudat.gef.service.input.3.name": "no path",
        "eudat.gef.service.input.4.path": "/in/unnamed",
        "eudat.gef.service.output.1.path": "/out",
        "eudat.gef.service.maintainer": "ignored, as GEF ignores unknown keys",
    }
    inputs = read_labels(labels).interface.inputs
    assert [(p.name, p.key, p.kind) for p in inputs] == [
        ("two", "input1", PortKind.DIRECTORY),
        ("input2", "input2", PortKind.DIRECTORY),  # no name: called by its key
        ("ten", "input3", PortKind.DIRECTORY),  # no type: url, a directory
    ]
    assert read_labels(labels).interface.outputs[0].name == "output1"


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        (
            {"eudat.gef.service.input.1.path": "/in", "eudat.gef.service.input.1.type": "str"},
            "eudat.gef.service.input.1.type: 'str' is not a GEF input type; use url",
        ),
        (
            {"eudat.gef.service.input.1.path": "/in", "eudat.gef.service.input.1.type": "string"},
            "eudat.gef.service.input.1.filename",
        ),
        (
            {"eudat.gef.service.input.one.path": "/in"},
            "eudat.gef.service.input.one.path: the port number 'one' must be a whole number",
        ),
        (
            {"eudat.gef.service.output.1.path": "out"},
            "eudat.gef.service.output.1.path: output path 'out' must be an absolute path",
        ),
    ],
)
def test_bad_gef_labels_are_refused_naming_the_label(labels: dict[str, str], expected: str) -> None:
    assert expected in refused(labels)


def test_oci_annotations_name_the_service_and_the_rest_is_kept_without_the_prefix() -> None:
    d = read_labels(
        {
            "org.opencontainers.image.title": "wordfreq",
            "org.opencontainers.image.description": "Counts words",
            "org.opencontainers.image.version": "1.2.0",
            "org.opencontainers.image.source": "https://example.org/wordfreq",
            "org.opencontainers.image.licenses": "MIT",
            "org.opencontainers.image.revision": "abc123",
            "maintainer": "not ours",
        }
    )
    assert (d.name, d.version, d.description) == ("wordfreq", "1.2.0", "Counts words")
    assert d.oci == {
        "source": "https://example.org/wordfreq",
        "licenses": "MIT",
        "revision": "abc123",
    }


def test_toolship_labels_win_over_gefs_which_win_over_ocis() -> None:
    labels = {
        "org.opencontainers.image.title": "oci",
        "org.opencontainers.image.version": "3",
        "org.opencontainers.image.description": "from oci",
        "eudat.gef.service.name": "gef",
        "eudat.gef.service.version": "2",
        T + "name": "own",
    }
    d = read_labels(labels)
    assert (d.name, d.version, d.description) == ("own", "2", "from oci")
    assert read_labels({}).name is None
    assert read_labels({}).description == ""


TYPED = {
    T + "name": "wordfreq",
    T + "input.text.path": "/data/text.txt",
    T + "input.stopwords.path": "/data/stop.txt",
    T + "input.stopwords.required": "false",
    T + "input.refs.type": "directory",
    T + "input.refs.path": "/data/refs",
    T + "input.refs.default": "s3://lab/refs/",
    T + "input.title.type": "string",
    T + "input.title.path": "/data/meta",
    T + "input.title.filename": "title.txt",
    T + "param.top.type": "int",
    T + "param.top.min": "1",
    T + "param.top.max": "1000",
    T + "param.top.default": "10",
    T + "param.case.choices": "keep, lower",
    T + "param.case.default": "lower",
    T + "param.ratio.type": "float",
    T + "param.ratio.required": "true",
    T + "param.ratio.description": "Share of words to keep",
    T + "param.verbose.type": "bool",
    T + "param.verbose.default": "no",
    T + "output.counts.path": "/data/out/counts.csv",
    T + "output.plots.type": "directory",
    T + "output.plots.path": "/data/out/plots",
    T + "command": json.dumps(
        ["wordfreq", "--top={top}", "--stop={stopwords}", "{{literal}}", "{text}", "{counts}"]
    ),
    T + "workdir": "/data",
    T + "resources.cpu": "2",
    T + "resources.memory": "512M",
    T + "resources.disk": "2G",
    T + "resources.timeout": "1h",
}


def test_typed_toolship_labels_become_ports_parameters_a_template_and_resources() -> None:
    d = read_labels(TYPED, cmd=["ignored"])
    i = d.interface
    # Label order is not kept in an image's config: ports are ordered by name.
    assert [(p.name, p.key, p.kind, p.required) for p in i.inputs] == [
        ("refs", "input1", PortKind.DIRECTORY, False),
        ("stopwords", "input2", PortKind.FILE, False),
        ("text", "input3", PortKind.FILE, True),
        ("title", "input4", PortKind.STRING, True),
    ]
    assert i.inputs[0].default == "s3://lab/refs/"
    assert i.inputs[3].filename == "title.txt"
    params = {p.name: p for p in i.parameters}
    assert [p.name for p in i.parameters] == ["case", "ratio", "top", "verbose"]
    assert params["top"].kind is ParamKind.INT
    assert (params["top"].minimum, params["top"].maximum, params["top"].default) == (1, 1000, 10)
    assert params["case"].kind is ParamKind.CHOICE  # choices given: a choice
    assert params["case"].choices == ["keep", "lower"]
    assert params["ratio"].required
    assert params["ratio"].description == "Share of words to keep"
    assert params["verbose"].default is False
    assert [(o.name, o.key, o.kind) for o in i.outputs] == [
        ("counts", "output1", PortKind.FILE),
        ("plots", "output2", PortKind.DIRECTORY),
    ]
    assert i.command == [
        "wordfreq",
        "--top={top}",
        "--stop={stopwords}",
        "{{literal}}",
        "{text}",
        "{counts}",
    ]
    assert i.template and d.own_command
    assert (i.workdir, i.cpu_cores, i.ram_gb, i.disk_gb, i.timeout) == (
        "/data",
        2,
        0.5,
        2.0,
        "3600s",
    )


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({T + "param.top.mn": "1"}, "toolship.service.param.top.mn is not a label toolship"),
        ({T + "inputs.x.path": "/x"}, "toolship.service.inputs.x.path is not a label toolship"),
        ({T + "input.2x.path": "/x"}, "'2x' is not a valid name"),
        ({T + "input.x.type": "dir", T + "input.x.path": "/x"}, "file, directory or string"),
        ({T + "input.x.description": "no path"}, "toolship.service.input.x.path is missing"),
        ({T + "param.top.default": "0"}, "toolship.service.param.top.default: '0' is not"),
        ({T + "param.top.min": "5", T + "param.top.max": "4"}, "min 5 is above its max 4"),
        ({T + "param.top.choices": "a,b"}, "choices are only for choice parameters"),
        ({T + "param.z.type": "choice"}, "toolship.service.param.z.choices is missing"),
        ({T + "param.z.type": "integer"}, "string, int, float, bool or choice"),
        ({T + "param.z.required": "maybe"}, "toolship.service.param.z.required: 'maybe'"),
        ({T + "param.z.required": "true", T + "param.z.default": "1"}, "needs no default"),
        ({T + "param.z.type": "bool", T + "param.z.min": "1"}, "min and max are for int"),
        ({T + "input.text.filename": "a.txt"}, "filename is for directory and string inputs"),
        ({T + "output.text.path": "/o"}, "'text' names two things"),
        ({T + "command": "wordfreq {top}"}, "a JSON array of strings"),
        ({T + "command": "[]"}, "a JSON array of strings"),
        ({T + "command": '["x", "{nope}"]'}, "{nope} names no port or parameter"),
        ({T + "command": '["awk", "{print $1}"]'}, "{print $1} names no port or parameter"),
        ({T + "command": '["x", "a}b"]'}, "write {{ and }} for a literal brace"),
        ({T + "workdir": "data"}, "toolship.service.workdir"),
        ({T + "resources.memory": "lots"}, "toolship.service.resources.memory: 'lots' is not"),
        ({T + "resources.timeout": "soon"}, "toolship.service.resources.timeout"),
        ({T + "resources.cpu": "0"}, "toolship.service.resources.cpu: '0' is not"),
        ({T + "resources.gpus": "1"}, "toolship.service.resources.gpus is not a label"),
        ({T + "output.plots.type": "string"}, "output.plots.type: 'string' is not file or"),
    ],
)
def test_bad_toolship_labels_are_refused_naming_the_label_and_the_fix(
    change: dict[str, str], expected: str
) -> None:
    assert expected in refused({**TYPED, **change})


def test_parameters_need_a_command_template_to_reach_the_tool() -> None:
    message = refused({T + "param.top.type": "int"})
    assert 'add toolship.service.command, e.g. ["tool", "--top={top}"]' in message


def test_every_problem_is_listed_in_one_message() -> None:
    message = refused({**TYPED, T + "resources.cpu": "x", T + "param.top.type": "number"})
    assert "toolship.service.resources.cpu" in message
    assert "toolship.service.param.top.type" in message


def test_a_template_may_name_gef_ports_by_key() -> None:
    d = read_labels({**GEF_CLONE, T + "command": '["/clone", "{input1}", "{Output Directory}"]'})
    assert d.interface.command == ["/clone", "{input1}", "{Output Directory}"]


def test_toolship_ports_replace_gefs_when_an_image_describes_both() -> None:
    d = read_labels({**GEF_CLONE, T + "input.src.path": "/src", T + "output.dst.path": "/dst"})
    assert [p.name for p in d.interface.inputs] == ["src"]
    assert [p.name for p in d.interface.outputs] == ["dst"]
    assert d.name == "Clone"


def test_without_cmd_or_template_there_is_no_command() -> None:
    assert read_labels(GEF_CLONE).interface.command is None
    assert read_labels(GEF_CLONE, cmd=[]).interface.command is None


def _containerfile_labels(text: str) -> dict[str, str]:
    """The labels of a Containerfile's LABEL instructions (quotes as a shell reads them)."""
    joined = re.sub(r"\\\n", " ", text)
    labels: dict[str, str] = {}
    for line in joined.splitlines():
        if line.startswith("LABEL "):
            for word in shlex.split(line[len("LABEL ") :]):
                key, _, value = word.partition("=")
                labels[key] = value
    return labels


def test_the_documented_containerfile_describes_a_service() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "services.md").read_text()
    [example] = re.findall(r"```dockerfile\n(.*?)```", doc, flags=re.DOTALL)
    d = read_labels(_containerfile_labels(example))
    assert d.name == "wordfreq"
    assert d.own_command
    assert [p.name for p in d.interface.inputs] == ["stopwords", "text"]
    assert [p.name for p in d.interface.parameters] == ["case", "min_length", "top"]
    assert [p.name for p in d.interface.outputs] == ["counts"]
    assert d.oci["licenses"] == "MIT"


def test_the_readme_containerfile_is_the_example_that_runs() -> None:
    root = Path(__file__).parents[2]
    readme = (root / "README.md").read_text()
    [example] = re.findall(r"```dockerfile\n(.*?)```", readme, flags=re.DOTALL)
    assert example == (root / "examples" / "linecount" / "Containerfile").read_text()
    d = read_labels(_containerfile_labels(example))
    assert (d.name, d.version) == ("linecount", "1.0.0")
    assert [p.name for p in d.interface.parameters] == ["mode", "top"]
