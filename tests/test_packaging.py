"""A bare ``pip install`` of the wheel is the thin client: it talks to the running mesh, carries no
model runtime, and names the extra a server command would need."""

from __future__ import annotations

import email
import json
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from voicemesh.common.components import COMPONENTS

ROOT = Path(__file__).resolve().parent.parent
# What a client must never have to install.
HEAVY = {"torch", "llama-cpp-python", "faster-whisper", "piper-tts", "ctranslate2", "onnxruntime", "numpy"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel ``pip install .`` builds, from the tracked files alone (a build never leaves a
    build/ folder in the checkout whose stale files a later wheel would pick up)."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    for name in tracked.decode().split("\0"):
        if name and (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "--wheel-dir", str(out), str(source)],
        check=True,
        timeout=600,
    )
    return next(out.glob("voicemesh-*.whl"))


@pytest.fixture(scope="module")
def thin(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel installed, and no extra: its bin/ folder."""
    venv = tmp_path_factory.mktemp("thin") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", str(wheel)], check=True, timeout=600)
    return venv / "bin"


def metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(archive.read(name))


def test_the_wheel_requires_only_grpcio_and_protobuf_without_extras(wheel: Path) -> None:
    meta = metadata(wheel)
    requires = meta.get_all("Requires-Dist") or []
    bare = {re.split(r"[<>=!~;\[ ]", r, maxsplit=1)[0].lower() for r in requires if "extra ==" not in r}
    assert bare == {"grpcio", "protobuf"}
    extras = set(meta.get_all("Provides-Extra") or [])
    assert {c.extra for c in COMPONENTS.values()} | {"edge", "all"} <= extras
    for model, extra in (("faster-whisper", "stt"), ("piper-tts", "tts"), ("llama-cpp-python", "core")):
        assert any(r.startswith(model) and f'extra == "{extra}"' in r for r in requires), (model, extra)


def test_the_wheel_holds_every_component(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    for component in COMPONENTS.values():
        package = component.package.replace(".", "/")
        assert {f"{package}/__main__.py", f"{package}/server.py"} <= names
    assert {"voicemesh/client/sdk.py", "voicemesh/v1/gateway_pb2.pyi"} <= names
    assert "voicemesh/__init__.py" not in names  # a namespace, shared by every folder's portion


def test_a_bare_install_has_no_model_runtime(thin: Path) -> None:
    listed = subprocess.run(
        [str(thin / "pip"), "list", "--format=json"], capture_output=True, text=True, check=True, timeout=120
    )
    installed = {package["name"].lower() for package in json.loads(listed.stdout)}
    assert "voicemesh" in installed
    assert not installed & HEAVY, installed & HEAVY


def test_a_bare_install_asks_the_running_mesh(thin: Path, mesh) -> None:  # type: ignore[no-untyped-def]
    result = subprocess.run(
        [
            str(thin / "voicemesh"),
            "ask",
            "What is the capital of France?",
            "--target",
            mesh.gateway,
            "--user",
            "thin-client",  # a user of its own: no earlier test's cached reply answers it
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("assistant (local, SmolLM2"), result.stdout
    assert "first token" in result.stdout and "done" in result.stdout


@pytest.mark.parametrize(
    ("command", "extra"),
    [
        (["voicemesh", "serve", "stt"], "stt"),
        (["python", "-m", "voicemesh.core"], "core"),
        (["voicemesh", "up"], "all"),
        (["voicemesh", "listen", "--file", "question.wav"], "edge"),
    ],
)
def test_a_bare_install_names_the_extra_a_command_needs(thin: Path, command: list[str], extra: str) -> None:
    result = subprocess.run(
        [str(thin / command[0]), *command[1:]], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert result.stderr.endswith(f"install it with: pip install 'voicemesh[{extra}]'\n"), result.stderr
    assert result.stderr.count("\n") == 1  # one line, no traceback
