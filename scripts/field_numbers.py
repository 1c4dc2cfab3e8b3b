"""The field numbers the API has published, recorded in protos/field_numbers.lock.

    python scripts/field_numbers.py   # record the fields that are new since the lock was written

Entries are only ever added: a field that disappears must have its number `reserved`, which
tests/test_protos.py checks. `make protos` runs this after `buf generate`.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
LOCK = PROTOS / "field_numbers.lock"


def field_numbers() -> dict[str, int]:
    """``package.Message.field`` → number for every field of every generated message."""
    numbers: dict[str, int] = {}

    def walk(message: Any) -> None:
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
    header = "# Every field number ever published. Append only: see scripts/field_numbers.py.\n"
    LOCK.write_text(header + "".join(f"{name} = {number}\n" for name, number in sorted(merged.items())))


if __name__ == "__main__":
    update_lock()
