"""The Dockerfile (Sources/examhub/Deploy/Dockerfile), parsed instruction by instruction (dockerfile-parse): a
multi-stage build of the static-stdlib binary, a slim non-root runtime with what the binary needs at run time,
and a HEALTHCHECK whose command really answers against a running hub. No image is built here (no Docker)."""
from __future__ import annotations

import json
import re
import subprocess

import pytest
from dockerfile_parse import DockerfileParser

from deploykit import DEPLOY, ROOT

DOCKERFILE = DEPLOY / "Dockerfile"


@pytest.fixture(scope="module")
def parsed() -> DockerfileParser:
    parser = DockerfileParser(fileobj=open(DOCKERFILE, "rb"))
    assert parser.structure, "the Dockerfile parsed to nothing"
    return parser


def stages(parsed) -> list[list[dict]]:
    out: list[list[dict]] = []
    for ins in parsed.structure:
        if ins["instruction"] == "FROM":
            out.append([])
        if out:
            out[-1].append(ins)
    return out


def of(stage: list[dict], instruction: str) -> list[str]:
    return [i["value"] for i in stage if i["instruction"] == instruction]


def test_multi_stage_swift_builder_and_slim_runtime(parsed):
    build, runtime = stages(parsed)
    args = {k: v for k, v in (a.split("=", 1) for a in of(parsed.structure, "ARG") if "=" in a)}
    assert re.fullmatch(r"6\.\d+", args["SWIFT_VERSION"]), args
    assert of(build, "FROM")[0].startswith("swift:${SWIFT_VERSION}") and of(build, "FROM")[0].endswith(" AS build")
    assert re.match(r"debian:\$\{DEBIAN_RELEASE\}-slim", of(runtime, "FROM")[0])
    # The runtime's Debian is the builder's (same glibc).
    assert "-${DEBIAN_RELEASE}" in of(build, "FROM")[0]


def test_release_build_of_examhub_with_the_static_stdlib(parsed):
    build, _ = stages(parsed)
    runs = " ".join(of(build, "RUN"))
    assert "swift build -c release --static-swift-stdlib --product examhub" in runs
    assert "libsqlite3-dev" in runs
    # Every target folder must be in the context for SwiftPM: the whole package is copied.
    assert ". ." in of(build, "COPY")


def test_runtime_installs_what_the_binary_needs_and_nothing_to_build_with(parsed):
    _, runtime = stages(parsed)
    runs = " ".join(of(runtime, "RUN"))
    for pkg in ["libsqlite3-0", "ca-certificates"]:
        assert pkg in runs
    assert "--no-install-recommends" in runs and "rm -rf /var/lib/apt/lists" in runs
    for tool in ["swift", "build-essential", "libsqlite3-dev"]:
        assert not re.search(rf"\b{re.escape(tool)}\b", runs), tool
    copies = of(runtime, "COPY")
    assert all(c.startswith("--from=build ") for c in copies), copies


def test_intents_are_copied_where_the_image_points_the_hub(parsed):
    """The assistant reads Intents/ at start: the image must ship it and say where (EXAMHUB_INTENTS_DIR)."""
    _, runtime = stages(parsed)
    env = parsed.envs
    target = env["EXAMHUB_INTENTS_DIR"]
    assert any(c.split()[-1] == target for c in of(runtime, "COPY")), (target, of(runtime, "COPY"))
    assert "cp -R Intents" in " ".join(of(stages(parsed)[0], "RUN"))
    assert any((ROOT / "Intents").glob("*.yaml"))
    assert env["EXAMHUB_HOST"] == "0.0.0.0"


def test_runs_as_a_numeric_non_root_user(parsed):
    _, runtime = stages(parsed)
    (user,) = of(runtime, "USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0 and (not gid or int(gid) != 0), user
    assert f"--uid {uid}" in " ".join(of(runtime, "RUN"))


def test_exposes_the_port_and_starts_serve(parsed):
    _, runtime = stages(parsed)
    assert of(runtime, "EXPOSE") == [parsed.envs["EXAMHUB_PORT"]]
    assert json.loads(of(runtime, "ENTRYPOINT")[0]) == ["examhub", "serve"]
    assert of(runtime, "STOPSIGNAL") == ["SIGTERM"]


def _healthcheck(parsed) -> list[str]:
    (value,) = of(stages(parsed)[1], "HEALTHCHECK")
    options, _, command = value.partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options
    return json.loads(command)


def test_healthcheck_asks_healthz(parsed):
    cmd = _healthcheck(parsed)
    assert cmd[:2] == ["bash", "-c"] and "/healthz" in cmd[2]


def test_healthcheck_command_passes_against_a_running_hub_and_fails_without_one(parsed, tmp_path):
    from hubclient import Hub

    cmd = _healthcheck(parsed)
    hub = Hub(tmp_path / "hub")
    try:
        ok = subprocess.run(cmd, env={"EXAMHUB_PORT": str(hub.port), "PATH": "/usr/bin:/bin"}, timeout=10,
                            capture_output=True, text=True)
        assert ok.returncode == 0, ok.stderr
    finally:
        assert hub.stop() == 0
    down = subprocess.run(cmd, env={"EXAMHUB_PORT": str(hub.port), "PATH": "/usr/bin:/bin"}, timeout=10,
                          capture_output=True, text=True)
    assert down.returncode != 0


def test_the_ignore_file_keeps_build_outputs_out_of_the_context():
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text().split()
    for entry in [".git", ".build"]:
        assert entry in ignore
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    for needed in ["Package.swift", "Intents/", "Sources/", "Tests/", "LoadTests/"]:
        assert needed in tracked
        assert needed.rstrip("/") not in ignore
