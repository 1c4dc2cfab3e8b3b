"""Generate voicemesh/v1/*_pb2*.py(i) from protos/ with grpcio-tools.

    python scripts/generate_protos.py            # write into the source tree
    python scripts/generate_protos.py --out DIR  # write elsewhere (the staleness test compares)
    python scripts/generate_protos.py --lock     # also record new fields in protos/field_numbers.lock

The lock file lists every field number ever published. Entries are only ever added: a field that
disappears must have its number `reserved`, which tests/test_protos.py checks.
"""

from __future__ import annotations

import argparse
import sys
from importlib.resources import files
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"


def generate(out: Path) -> list[Path]:
    sources = sorted(PROTOS.glob("voicemesh/v1/*.proto"))
    include = str(files("grpc_tools").joinpath("_proto"))
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{include}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *(str(s.relative_to(PROTOS)) for s in sources),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    package = out / "voicemesh" / "v1"
    (package / "__init__.py").write_text(
        '"""Generated from protos/voicemesh/v1 by scripts/generate_protos.py."""\n'
    )
    return sorted(package.iterdir())


LOCK = PROTOS / "field_numbers.lock"


def field_numbers() -> dict[str, int]:
    """``package.Message.field`` → number for every field of every generated message."""
    import importlib

    numbers: dict[str, int] = {}

    def walk(message) -> None:  # type: ignore[no-untyped-def]
        for field in message.fields:
            numbers[field.full_name] = field.number
        for nested in message.nested_types:
            walk(nested)

    for source in sorted(PROTOS.glob("voicemesh/v1/*.proto")):
        module = importlib.import_module(f"voicemesh.v1.{source.stem}_pb2")
        for message in module.DESCRIPTOR.message_types_by_name.values():
            walk(message)
    return numbers


def read_lock() -> dict[str, int]:
    entries = (
        line.split(" = ") for line in LOCK.read_text().splitlines() if line and not line.startswith("#")
    )
    return {name: int(number) for name, number in entries}


def update_lock() -> None:
    locked = read_lock() if LOCK.exists() else {}
    merged = {**field_numbers(), **locked}  # never rewrite a published number
    header = "# Every field number ever published. Append only: see scripts/generate_protos.py.\n"
    LOCK.write_text(header + "".join(f"{name} = {number}\n" for name, number in sorted(merged.items())))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "runtime")
    parser.add_argument("--lock", action="store_true", help="record new fields in the lock file")
    args = parser.parse_args()
    written = generate(args.out)
    print(f"generated {len(written)} files", file=sys.stderr)
    if args.lock:
        sys.path.insert(0, str(args.out))
        update_lock()


if __name__ == "__main__":
    main()
