"""The Dockerfile, read as a reviewer would, and its entry command run for every component.

No Docker engine runs here, so the image is not built; instead the rules it must keep are checked,
and ``ENTRYPOINT + [component]`` is run as the container would run it, with the image's environment.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import tomllib
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from voicemesh.common.components import COMPONENTS
from voicemesh.rpc.host import READY_PREFIX

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
SETTINGS = {name: component.settings_class() for name, component in COMPONENTS.items()}


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())  # join continued lines
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    return steps[last_from:]


def image_env() -> dict[str, str]:
    env: dict[str, str] = {}
    for op, args in final_stage():
        if op == "ENV":
            env.update(dict(re.findall(r"(\w+)=(\S+)", args)))
    return env


def test_the_image_is_multi_stage_pinned_offline_and_not_root() -> None:
    steps = instructions()
    args = dict(re.findall(r"(\w+)=(\S+)", " ".join(a for op, a in steps if op == "ARG")))
    assert re.fullmatch(
        r"python:\d+\.\d+\.\d+-slim-\w+", args["PYTHON_IMAGE"]
    )  # a patch release, not "latest"
    assert sum(op == "FROM" for op, _ in steps) == 2
    runtime = final_stage()
    installs = [a for op, a in runtime if op == "RUN" and "pip install" in a]
    assert installs and all("--no-index" in a for a in installs)  # the runtime stage uses no index at all
    assert not any("apt-get" in a for op, a in runtime if op == "RUN")  # no compiler in the image
    users = [a for op, a in runtime if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert image_env()["HF_HUB_OFFLINE"] == "1"
    built = " ".join(a for op, a in steps[: steps.index(runtime[0])] if op == "RUN")
    assert "--constraint constraints.txt" in built and "GGML_NATIVE=OFF" in " ".join(a for _, a in steps)


def test_the_build_stage_copies_every_package_folder_and_installs_every_extra() -> None:
    package_dirs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    copied = [args.split()[0] for op, args in instructions() if op == "COPY" and "--from" not in args]
    for folder in package_dirs.values():
        assert any(folder == c or folder.startswith(c.rstrip("/") + "/") for c in copied), folder
    built = " ".join(a for op, a in instructions() if op == "RUN" and "pip wheel" in a)
    assert '".[all]"' in built
    installed = " ".join(a for op, a in final_stage() if op == "RUN" and "pip install" in a)
    assert '"voicemesh[all]"' in installed


def test_it_exposes_each_components_ports() -> None:
    exposed = {int(p) for op, a in final_stage() if op == "EXPOSE" for p in a.split()}
    expected = {cls.model_fields[f].default for cls in SETTINGS.values() for f in ("port", "metrics_port")}
    assert exposed == expected


async def run_entry(component: str) -> None:
    """``ENTRYPOINT + [component]`` with the image's environment: it must come up SERVING, offline."""
    (entrypoint,) = [json.loads(a) for op, a in final_stage() if op == "ENTRYPOINT"]
    program = Path(sys.executable).parent / entrypoint[0]  # the console script, as on the image's PATH
    prefix = f"VOICEMESH_{component.upper()}_"
    env = {**os.environ, **image_env(), f"{prefix}PORT": "0", f"{prefix}METRICS_PORT": "0"}
    env["XDG_DATA_HOME"] = os.environ["XDG_DATA_HOME"]  # the test's, not /home/voicemesh
    proc = await asyncio.create_subprocess_exec(
        str(program), *entrypoint[1:], component, env=env, stdout=asyncio.subprocess.PIPE
    )
    assert proc.stdout is not None
    try:
        address = ""
        async with asyncio.timeout(180):
            while line := (await proc.stdout.readline()).decode():
                if line.startswith(READY_PREFIX):
                    address = line.split()[1].replace("0.0.0.0", "127.0.0.1")
                    break
        assert address, f"{component} exited with {proc.returncode} before listening"
        async with grpc.aio.insecure_channel(address) as channel:
            health = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=10
            )
        assert health.status == health_pb2.HealthCheckResponse.SERVING
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0


@pytest.mark.timeout(300)
async def test_the_entry_command_serves_every_component() -> None:
    (default_args,) = [json.loads(a) for op, a in final_stage() if op == "CMD"]
    assert default_args == ["gateway"]
    await asyncio.gather(*(run_entry(component) for component in SETTINGS))
