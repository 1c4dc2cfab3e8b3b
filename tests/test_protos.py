"""The API contract: every language's generated code is fresh, buf lint is clean, field numbers are
forever."""

from __future__ import annotations

import filecmp
import os
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import field_numbers  # noqa: E402

BUF = ROOT / "node_modules" / ".bin" / "buf"
# Where buf.gen.yaml writes each language's stubs.
GENERATED = {"python": Path("runtime/voicemesh/v1"), "typescript": Path("clients/node/src/gen")}


def buf() -> str:
    if not BUF.is_file():
        pytest.fail(f"{BUF} is missing: run `npm install` (`make install` does) to install @bufbuild/buf")
    return str(BUF)


def files_under(folder: Path) -> list[Path]:
    return sorted(
        p.relative_to(folder) for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts
    )


@pytest.mark.parametrize("language", sorted(GENERATED))
def test_generated_code_is_current(tmp_path: Path, language: str) -> None:
    """`buf generate` (buf.gen.yaml) into a fresh folder gives exactly the committed stubs."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run(
        [buf(), "generate", "--output", str(tmp_path)], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    fresh, committed = tmp_path / GENERATED[language], ROOT / GENERATED[language]
    assert files_under(fresh) == files_under(committed), (
        "run `make protos`: generated files were added or removed"
    )
    stale = [str(p) for p in files_under(fresh) if not filecmp.cmp(fresh / p, committed / p, shallow=False)]
    assert not stale, f"run `make protos`: {stale} differ from what protos/ generates"


def test_buf_lint_is_clean() -> None:
    result = subprocess.run([buf(), "lint"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_field_numbers_are_never_reused() -> None:
    """A published number keeps its field; a removed field's number stays `reserved`."""
    locked = field_numbers.read_lock()
    current = field_numbers.field_numbers()
    new = sorted(set(current) - set(locked))
    assert not new, f"new fields {new}: run `make protos` and commit protos/field_numbers.lock"
    pool = descriptor_pool.Default()
    for name, number in locked.items():
        if current.get(name) == number:
            continue
        assert name not in current, (
            f"{name} was renumbered from {number} to {current[name]}; numbers are forever"
        )
        message_name = name.rpartition(".")[0]
        proto = descriptor_pb2.DescriptorProto()
        pool.FindMessageTypeByName(message_name).CopyToProto(proto)
        reserved = any(r.start <= number < r.end for r in proto.reserved_range)
        assert reserved, f"{name} = {number} was removed; add `reserved {number};` to {message_name}"
