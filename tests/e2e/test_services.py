"""The services catalog for real: podman builds, the loopback registry, GPG keys, S3.

One embedded server per set of settings (module-scoped, each in a home of its own,
started as the CLI starts it), the `toolship service …` CLI as subprocesses where the
point is the CLI, plain httpx where the point is the HTTP API alone.  Images are tiny
(FROM the busybox image); S3 is a moto server on loopback.  Acceptance points 1-4 and
6 of issue 15; the same rules on in-memory images are in tests/api/test_services.py.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import GpgKey, make_gpg_key, unique_name
from tests.integration.servers import free_port, moto
from toolship.embedded import ensure_server, stop_server

SERVICES = "/api/v1/services"
BUILDS = "/api/v1/builds"
TASKS = "/ga4gh/tes/v1/tasks"
BUCKET = "services"
AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@dataclass(frozen=True)
class Server:
    """An embedded server of a home of its own, and how to reach it."""

    home: Path
    url: str
    token: str

    def cli(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        """`toolship ARGS` as a user runs it, against this server."""
        env = {**os.environ, "TOOLSHIP_HOME": str(self.home)}
        for key in ("TOOLSHIP_SERVER", "TOOLSHIP_TOKEN", "TOOLSHIP_CONFIG"):
            env.pop(key, None)
        done = subprocess.run(
            [sys.executable, "-m", "toolship", *args],
            capture_output=True, text=True, timeout=180, env=env, check=False,
        )  # fmt: skip
        if check and done.returncode != 0:
            raise AssertionError(f"toolship {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done

    def api(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)


@dataclass(frozen=True)
class S3:
    endpoint: str

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name="us-east-1", **{
            "aws_access_key_id": AWS["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": AWS["AWS_SECRET_ACCESS_KEY"],
        })  # fmt: skip

    def put(self, key: str, text: str) -> str:
        self.client().put_object(Bucket=BUCKET, Key=key, Body=text.encode())
        return f"s3://{BUCKET}/{key}"

    def get(self, key: str) -> str:
        body: bytes = self.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()
        return body.decode()


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3]:
    port = free_port()
    server = moto(port, tmp_path_factory.mktemp("moto") / "moto.log")
    server.start()
    try:
        store = S3(f"http://127.0.0.1:{port}")
        store.client().create_bucket(Bucket=BUCKET)
        yield store
    finally:
        server.stop()


@pytest.fixture(scope="module")
def images(busybox: str) -> Iterator[list[str]]:
    """Local image names the tests made (their builds' tags), removed at the end."""
    made: list[str] = []
    yield made
    if made:
        subprocess.run(["podman", "rmi", "--force", "--ignore", *made],
                       capture_output=True, timeout=120, check=False)  # fmt: skip


def _start(folder: Path, s3: S3, config: str) -> Iterator[Server]:
    home = folder / "home"
    settings = folder / "toolship.toml"
    settings.write_text(config)
    env = {**AWS, "TOOLSHIP_CONFIG": str(settings),
           "TOOLSHIP_STORAGE__S3__ENDPOINT_URL": s3.endpoint}  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        for key in ("TOOLSHIP_SERVER", "TOOLSHIP_TOKEN"):
            mp.delenv(key, raising=False)
        found = ensure_server(home)
    try:
        yield Server(home, found.url, found.token)
    finally:
        stop_server(home)


@pytest.fixture(scope="module")
def plain(
    tmp_path_factory: pytest.TempPathFactory, s3: S3, registry: str, images: list[str]
) -> Iterator[Server]:
    """A server where any image runs; what it builds goes to the loopback registry, from
    where tasks pull it by digest."""
    config = f'[images]\nregistry = "{registry}/e2e"\n'
    yield from _start(tmp_path_factory.mktemp("plain"), s3, config)


# --- helpers ---------------------------------------------------------------------------


def _folder(parent: Path, files: dict[str, str]) -> Path:
    folder = parent / unique_name("ctx")
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


def _wait(api: httpx.Client, task_id: str, timeout: float = 120) -> dict[str, Any]:
    """The task (FULL) once it has ended."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = api.get(f"/api/v1/tasks/{task_id}/wait", params={"timeout": 10})
        assert r.status_code == 200, r.text
        if r.json()["final"]:
            task: dict[str, Any] = api.get(f"{TASKS}/{task_id}", params={"view": "FULL"}).json()
            return task
    raise AssertionError(f"task {task_id} did not end within {timeout:.0f}s")


def _task_ids(api: httpx.Client) -> set[str]:
    r = api.get(TASKS, params={"page_size": 1000})
    return {t["id"] for t in r.json().get("tasks", [])}


def _podman(*args: str) -> str:
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=120,
                          check=True)  # fmt: skip
    return done.stdout


def _build_and_push(folder: Path, tag: str, target: str) -> str:
    """podman build FOLDER as TAG, push it to TARGET (a registry tag); the pushed digest."""
    _podman("build", "--quiet", "--network", "none", "--pull=never", "-t", tag, str(folder))
    digestfile = folder / "digest"
    _podman("push", "--quiet", "--digestfile", str(digestfile), tag, target)
    return digestfile.read_text().strip()


# --- 1. a GEF image: service build, show, run against local and S3 data ---------------

# Labels exactly as GEF's own service Dockerfiles carry them (services/nltk/Dockerfile:
# one LABEL a line, quoted keys, two input directories and one output directory).
GEF_CONTAINERFILE = """\
FROM localhost/toolship-busybox

LABEL "eudat.gef.service.name"="Concat Inputs"
LABEL "eudat.gef.service.description"="Concatenates the files of two input directories"
LABEL "eudat.gef.service.version"="1.0"
LABEL "eudat.gef.service.input.1.name"="Input 1"
LABEL "eudat.gef.service.input.1.path"="/root/input1"
LABEL "eudat.gef.service.input.1.type"="url"
LABEL "eudat.gef.service.input.2.name"="Second Input"
LABEL "eudat.gef.service.input.2.path"="/root/input2"
LABEL "eudat.gef.service.output.1.name"="Output Directory"
LABEL "eudat.gef.service.output.1.path"="/root/output"

ADD concat.sh /root
CMD ["sh", "/root/concat.sh"]
"""

CONCAT = """\
set -e
cd /root
for f in input1/* input2/*; do echo "$f: $(cat "$f")"; done > output/all.txt
"""


def test_a_gef_image_builds_shows_its_ports_and_runs_on_local_and_s3_data(
    plain: Server, s3: S3, registry: str, images: list[str], tmp_path: Path
) -> None:
    folder = _folder(tmp_path, {"Containerfile": GEF_CONTAINERFILE, "concat.sh": CONCAT})
    built = plain.cli("service", "build", str(folder), "--json")
    assert built.returncode == 0, built.stdout + built.stderr
    images.append("localhost/concat-inputs:1.0")
    assert "STEP 1/" in built.stderr and "registered Concat Inputs@1.0" in built.stderr
    version = json.loads(built.stdout)
    images.append(version["image"])
    assert version["repository"] == f"{registry}/e2e/concat-inputs"  # pushed there
    assert (version["name"], version["version"], version["source"]) == (
        "Concat Inputs", "1.0", "build",
    )  # fmt: skip
    image = version["image"]
    assert image == f"{version['repository']}@{version['digest']}"
    assert version["digest"].startswith("sha256:")

    show = plain.cli("service", "show", "Concat Inputs", check=True).stdout
    for port in ("Input 1", "input1", "/root/input1", "Second Input", "input2",
                 "Output Directory", "output1", "/root/output"):  # fmt: skip
        assert port in show, show
    assert version["digest"][:19] in show and "sh /root/concat.sh" in show

    # Local data: a folder for one port, one file staged into the other's directory.
    first = tmp_path / "first"
    first.mkdir()
    (first / "a.txt").write_text("alpha")
    (first / "b.txt").write_text("beta")
    second = tmp_path / "gamma.txt"
    second.write_text("gamma")
    out = tmp_path / "out"
    ran = plain.cli(
        "service", "run", "Concat Inputs", "--in", f"Input 1={first}",
        "--in", f"input2={second}", "--out", f"Output Directory={out}/",
    )  # fmt: skip
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert (out / "all.txt").read_text() == (
        "input1/a.txt: alpha\ninput1/b.txt: beta\ninput2/gamma.txt: gamma\n"
    )

    # S3 data: a prefix for one port, an object for the other, the output to S3.
    s3.put("in/one/x.txt", "ex")
    s3.put("in/one/y.txt", "why")
    url = s3.put("in/zed.txt", "zed")
    task_id = plain.cli(
        "service", "run", "-d", "Concat Inputs@1.0", "--in", f"Input 1=s3://{BUCKET}/in/one/",
        "--in", f"Second Input={url}", "--out", f"output1=s3://{BUCKET}/out/",
    ).stdout.strip()  # fmt: skip
    with plain.api() as api:
        task = _wait(api, task_id)
    assert task["state"] == "COMPLETE", task
    assert s3.get("out/all.txt") == "input1/x.txt: ex\ninput1/y.txt: why\ninput2/zed.txt: zed\n"

    # The record names the image by digest and the service version.
    record = json.loads(plain.cli("show", task_id, "--json", check=True).stdout)["task"]
    assert record["executors"][0]["image"] == image
    assert record["tags"]["toolship.service"] == "Concat Inputs@1.0"
    shown = plain.cli("show", task_id, check=True).stdout
    assert image in shown and "toolship.service=Concat Inputs@1.0" in shown


# --- 2. typed parameters: each bad value refused by the CLI, the right ones run --------

TYPED_CONTAINERFILE = """\
FROM localhost/toolship-busybox
LABEL toolship.service.name="typed" \\
      toolship.service.version="1.0" \\
      toolship.service.input.words.path="/data/words.txt" \\
      toolship.service.param.top.type="int" \\
      toolship.service.param.top.min="1" \\
      toolship.service.param.top.max="100" \\
      toolship.service.param.top.default="10" \\
      toolship.service.param.ratio.type="float" \\
      toolship.service.param.ratio.min="0" \\
      toolship.service.param.ratio.max="1" \\
      toolship.service.param.ratio.required="true" \\
      toolship.service.param.fold.type="bool" \\
      toolship.service.param.fold.default="false" \\
      toolship.service.param.case.choices="keep,lower" \\
      toolship.service.param.case.default="lower" \\
      toolship.service.output.report.path="/data/out/report.txt"
LABEL toolship.service.command='["sh", "-c", "echo top={top} ratio={ratio} fold={fold} \\
case={case} words=$(cat {words}) > {report}"]'
CMD ["false"]
"""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--param", "top=ten"], "parameter 'top': 'ten' is not an int from 1 to 100"),
        (["--param", "top=0"], "parameter 'top': '0' is not an int from 1 to 100"),
        (["--param", "top=101"], "parameter 'top': '101' is not an int from 1 to 100"),
        (["--param", "ratio=half"], "parameter 'ratio': 'half' is not a float from 0 to 1"),
        (["--param", "ratio=1.5"], "parameter 'ratio': '1.5' is not a float from 0 to 1"),
        (["--param", "fold=maybe"], "parameter 'fold': 'maybe' is not a bool"),
        (["--param", "case=upper"], "parameter 'case': 'upper' is not one of keep, lower"),
        (["--param", "colour=red"], "no parameter 'colour'; the parameters are"),
        (["--in", "txet=WORDS"], "no input port 'txet'; the inputs are 'words' (input1, file"),
    ],
)
def test_each_bad_value_is_refused_before_anything_runs(
    typed: Server, tmp_path: Path, args: list[str], message: str
) -> None:
    words = tmp_path / "words.txt"
    words.write_text("a b c")
    given = [a.replace("WORDS", str(words)) for a in args]
    with typed.api() as api:
        before = _task_ids(api)
        r = typed.cli(
            "service", "run", "typed", "--in", f"words={words}", "--param", "ratio=0.5",
            *given, "--out", f"report={tmp_path / 'report.txt'}",
        )  # fmt: skip
        assert r.returncode == 2, r.stdout + r.stderr
        assert message in " ".join(r.stderr.split()), r.stderr
        assert _task_ids(api) == before


def test_a_missing_required_input_or_parameter_is_refused(typed: Server, tmp_path: Path) -> None:
    report = f"report={tmp_path / 'report.txt'}"
    r = typed.cli("service", "run", "typed", "--param", "ratio=0.5", "--out", report)
    said = " ".join(r.stderr.split())
    assert r.returncode == 2 and "input 'words' (input1) is required" in said, r.stderr
    words = tmp_path / "words.txt"
    words.write_text("a")
    r = typed.cli("service", "run", "typed", "--in", f"words={words}", "--out", report)
    said = " ".join(r.stderr.split())
    assert r.returncode == 2 and "parameter 'ratio' is required: give --param ratio=" in said, said


def test_the_right_values_run_with_the_template_filled(typed: Server, tmp_path: Path) -> None:
    words = tmp_path / "words.txt"
    words.write_text("one two")
    report = tmp_path / "report.txt"
    r = typed.cli(
        "service", "run", "typed", "--in", f"words={words}", "--param", "top=100",
        "--param", "ratio=0.25", "--param", "fold=yes", "--param", "case=keep",
        "--out", f"report={report}",
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert report.read_text() == "top=100 ratio=0.25 fold=true case=keep words=one two\n"
    # Defaults fill what the run leaves out.
    r = typed.cli(
        "service", "run", "typed", "--in", f"words={words}", "--param", "ratio=1",
        "--out", f"report={report}",
    )  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert report.read_text() == "top=10 ratio=1.0 fold=false case=lower words=one two\n"


@pytest.fixture(scope="module")
def typed(plain: Server, images: list[str], tmp_path_factory: pytest.TempPathFactory) -> Server:
    """The plain server with the typed service built on it."""
    folder = _folder(tmp_path_factory.mktemp("typed"), {"Containerfile": TYPED_CONTAINERFILE})
    built = plain.cli("service", "build", str(folder), "--json", check=True)
    images.extend(["localhost/typed:1.0", json.loads(built.stdout)["image"]])
    return plain


# --- 3. a moved tag in the registry: a new version; the old one runs its old digest ----


def _variant(parent: Path, word: str) -> Path:
    return _folder(parent, {"Containerfile": f"""\
FROM localhost/toolship-busybox
LABEL toolship.service.name="mover" \\
      toolship.service.version="1" \\
      toolship.service.output.result.path="/out/result.txt"
CMD ["sh", "-c", "echo {word} > /out/result.txt"]
"""})  # fmt: skip


def test_a_moved_tag_is_a_new_version_and_the_old_one_still_runs_its_digest(
    plain: Server, registry: str, images: list[str], tmp_path: Path
) -> None:
    base = unique_name("mover")
    tag = f"{registry}/e2e/{base}:1"
    images.extend([f"localhost/{base}:a", f"localhost/{base}:b"])
    old_digest = _build_and_push(_variant(tmp_path, "first"), f"localhost/{base}:a", tag)
    old = json.loads(plain.cli("service", "add", tag, "--json", check=True).stdout)
    assert (old["version"], old["digest"], old["source"]) == ("1", old_digest, "registry")
    assert old["image"] == f"{registry}/e2e/{base}@{old_digest}"

    new_digest = _build_and_push(_variant(tmp_path, "second"), f"localhost/{base}:b", tag)
    assert new_digest != old_digest
    new = json.loads(plain.cli("service", "add", tag, "--json", check=True).stdout)
    assert new["version"] == f"1+{new_digest[7:19]}" and new["digest"] == new_digest
    # The same digest again is the version it already is.
    again = json.loads(plain.cli("service", "add", tag, "--json", check=True).stdout)
    assert again["version"] == new["version"]
    images.extend([old["image"], new["image"]])

    outputs: dict[str, str] = {}
    for v in (old["version"], new["version"]):
        result = tmp_path / f"result-{v}.txt"
        ran = plain.cli("service", "run", f"mover@{v}", "--out", f"result={result}")
        assert ran.returncode == 0, ran.stdout + ran.stderr
        outputs[v] = result.read_text()
    assert outputs == {old["version"]: "first\n", new["version"]: "second\n"}

    kept = json.loads(plain.cli("service", "show", "mover@1", "--json", check=True).stdout)
    assert kept["digest"] == old_digest and kept["image"] == old["image"]
    every = json.loads(plain.cli("service", "show", "mover", "--json", check=True).stdout)
    assert [v["version"] for v in every["versions"]] == [new["version"], "1"]
    with plain.api() as api:
        ran_old = api.get(TASKS, params={
            "tag_key": "toolship.service", "tag_value": "mover@1", "view": "FULL",
        }).json()["tasks"]  # fmt: skip
    assert [t["executors"][0]["image"] for t in ran_old] == [old["image"]]


# --- 4. policy catalog and signatures --------------------------------------------------


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory, registry: str) -> tuple[GpgKey, GpgKey]:
    folder = tmp_path_factory.mktemp("keys")
    return make_gpg_key(folder, "trusted"), make_gpg_key(folder, "stranger")


@pytest.fixture(scope="module")
def strict(
    tmp_path_factory: pytest.TempPathFactory,
    s3: S3,
    registry: str,
    keys: tuple[GpgKey, GpgKey],
    images: list[str],
) -> Iterator[Server]:
    """Only catalogued images run, and images of the loopback registry must be signed."""
    config = f"""\
[images]
trust = "catalog"
[[images.signed_by]]
scope = "{registry}"
gpg_key = "{keys[0].public}"
"""
    yield from _start(tmp_path_factory.mktemp("strict"), s3, config)


def test_policy_catalog_and_a_signing_key(
    strict: Server, registry: str, keys: tuple[GpgKey, GpgKey], images: list[str], tmp_path: Path
) -> None:
    trusted, stranger = keys
    folder = _folder(tmp_path, {"Containerfile": """\
FROM localhost/toolship-busybox
LABEL toolship.service.name="signed-tool" toolship.service.version="1"
CMD ["echo", "signed tool ran"]
"""})  # fmt: skip
    base = unique_name("signed")
    unsigned = f"{registry}/e2e-unsigned/{base}:1"
    digest = _build_and_push(folder, f"localhost/{base}:1", unsigned)
    signed, other = f"{registry}/e2e-signed/{base}:1", f"{registry}/e2e-other/{base}:1"
    trusted.sign(unsigned, signed)
    stranger.sign(unsigned, other)
    images.extend([f"localhost/{base}:1", f"{signed.rpartition(':')[0]}@{digest}"])

    with strict.api() as api:
        # A raw TES task naming an image no catalogued version has: refused, naming the policy.
        for image in ("localhost/toolship-busybox", signed):
            r = api.post(TASKS, json={"executors": [{"image": image, "command": ["true"]}]})
            assert r.status_code == 400, r.text
            detail = r.json()["detail"]
            assert "images.trust = 'catalog'" in detail and "toolship service add" in detail

        # Unsigned, and signed by another key: refused, each naming the expected key.
        r = strict.cli("service", "add", unsigned)
        assert r.returncode == 2, r.stdout + r.stderr
        refusal = " ".join(r.stderr.split())
        assert "has no signature" in refusal and trusted.fingerprint in refusal, refusal
        assert f"skopeo copy --sign-by {trusted.fingerprint}" in refusal
        r = strict.cli("service", "add", other)
        assert r.returncode == 2, r.stdout + r.stderr
        refusal = " ".join(r.stderr.split())
        assert "is not signed by an expected key" in refusal, refusal
        assert trusted.fingerprint in refusal, refusal
        assert f"it is signed by GPG key {stranger.fingerprint}" in refusal, refusal
        assert "gpgme" not in refusal, refusal
        assert api.get(SERVICES).json()["services"] == []

        # Signed with the key: registered with its signature, and it runs.
        added = json.loads(strict.cli("service", "add", signed, "--json", check=True).stdout)
        assert added["digest"] == digest
        assert added["signature"]["verified"] is True
        assert added["signature"]["key"] == trusted.fingerprint
        ran = strict.cli("service", "run", "signed-tool")
        assert ran.returncode == 0 and ran.stdout == "signed tool ran\n", ran.stdout + ran.stderr
        # Catalogued now: a raw TES task naming it runs too.
        r = api.post(TASKS, json={"executors": [{"image": signed, "command": ["echo", "raw"]}]})
        assert r.status_code == 200, r.text
        task = _wait(api, r.json()["id"])
        assert task["state"] == "COMPLETE", task
        assert task["logs"][0]["logs"][0]["stdout"] == "raw\n"


# --- 6. the same through the HTTP API alone ---------------------------------------------

API_CONTAINERFILE = """\
FROM localhost/toolship-busybox
LABEL toolship.service.name="adder" \\
      toolship.service.version="1" \\
      toolship.service.input.a.path="/data/a.txt" \\
      toolship.service.input.b.path="/data/b.txt" \\
      toolship.service.output.total.path="/data/out/total.txt"
RUN echo "preparing the adder"
COPY add.sh /add.sh
CMD ["sh", "/add.sh"]
"""


def _tar(files: dict[str, str]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _upload(api: httpx.Client, files: dict[str, str]) -> str:
    r = api.post(BUILDS, files={"context": ("context.tar.gz", _tar(files))})
    assert r.status_code == 202, r.text
    assert r.json()["state"] == "RUNNING"
    build_id: str = r.json()["id"]
    return build_id


def _follow(api: httpx.Client, build_id: str) -> tuple[list[str], dict[str, Any]]:
    """The log's lines as they stream, then the build (the stream ends when it does)."""
    lines: list[str] = []
    with api.stream("GET", f"{BUILDS}/{build_id}/log") as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/plain")
        lines.extend(stream.iter_lines())
    build: dict[str, Any] = api.get(f"{BUILDS}/{build_id}").json()
    return lines, build


def test_build_list_and_run_through_the_http_api_alone(
    plain: Server, s3: S3, images: list[str]
) -> None:
    add = "echo $(( $(cat /data/a.txt) + $(cat /data/b.txt) )) > /data/out/total.txt\n"
    with plain.api() as api:
        build_id = _upload(api, {"Containerfile": API_CONTAINERFILE, "add.sh": add})
        lines, build = _follow(api, build_id)
        assert build["state"] == "SUCCEEDED", build  # the stream ended with the build
        images.extend(["localhost/adder:1", build["service"]["image"]])
        log = "\n".join(lines)
        assert 'RUN echo "preparing the adder"' in log and "\npreparing the adder" in log
        assert lines[-1] == f"registered adder@1 ({build['service']['image']})"
        assert build["service"]["containerfile"] is True
        scratch = f"localhost/toolship-build:{build_id}"  # the build's own name is gone
        assert subprocess.run(["podman", "image", "exists", scratch]).returncode == 1

        listed = api.get(SERVICES).json()["services"]
        adder = next(s for s in listed if s["name"] == "adder")
        assert adder["latest"] == "1" and adder["digest"] == build["service"]["digest"]

        a, b = s3.put("api/a.txt", "40"), s3.put("api/b.txt", "2")
        r = api.post(f"{SERVICES}/adder/runs", json={
            "inputs": {"a": a, "input2": b}, "outputs": {"total": f"s3://{BUCKET}/api/total.txt"},
        })  # fmt: skip
        assert r.status_code == 200, r.text
        task = _wait(api, r.json()["id"])
        assert task["state"] == "COMPLETE", task
        assert task["executors"][0]["image"] == build["service"]["image"]
        assert task["tags"]["toolship.service"] == "adder@1"
    assert s3.get("api/total.txt") == "42\n"


def test_a_failed_build_shows_the_failing_steps_output(plain: Server) -> None:
    failing = """\
FROM localhost/toolship-busybox
RUN echo "fetching the reference data" && echo "reference.db: no such file" >&2 && exit 3
CMD ["true"]
"""
    with plain.api() as api:
        lines, build = _follow(api, _upload(api, {"Containerfile": failing}))
        assert build["state"] == "FAILED", build
        assert 'RUN echo "fetching the reference data"' in build["error"], build["error"]
        log = "\n".join(lines)
        assert "fetching the reference data\n" in log + "\n"
        assert "reference.db: no such file" in log
        assert lines[-1].startswith("build failed: ")
        assert build.get("service") is None
