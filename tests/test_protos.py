"""The API contract: generated code is fresh, buf lint is clean, field numbers are forever."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

from google.protobuf import descriptor_pb2, descriptor_pool

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import generate_protos  # noqa: E402


def test_generated_code_is_current(tmp_path: Path) -> None:
    generate_protos.generate(tmp_path)
    fresh, committed = tmp_path / "voicemesh" / "v1", ROOT / "runtime" / "voicemesh" / "v1"
    names = sorted(p.name for p in fresh.iterdir())
    assert names == sorted(p.name for p in committed.iterdir() if p.name != "__pycache__")
    stale = [name for name in names if not filecmp.cmp(fresh / name, committed / name, shallow=False)]
    assert not stale, f"regenerate with `python scripts/generate_protos.py`: {stale} differ from protos/"


def test_buf_lint_is_clean() -> None:
    buf = ROOT / "node_modules" / ".bin" / "buf"
    if not buf.exists():
        found = shutil.which("buf")
        assert found, "buf is missing: run `npm ci` (the Makefile does) to install @bufbuild/buf"
        buf = Path(found)
    result = subprocess.run([str(buf), "lint"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_field_numbers_are_never_reused() -> None:
    """A published number keeps its field; a removed field's number stays `reserved`."""
    locked = generate_protos.read_lock()
    current = generate_protos.field_numbers()
    new = sorted(set(current) - set(locked))
    assert not new, f"new fields {new}: run `python scripts/generate_protos.py --lock` and commit the lock"
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
