"""Writes a queue could not deliver before its process stopped, kept in files until the next start.

At shutdown a write-behind queue spills what is left, one JSON document a line, into a new file of
its folder (written aside and renamed, so a file is whole or absent). The next process to start with
that folder claims every spill file, its own and any a crashed process left half replayed, and
queues their items again; a file is deleted only once all its items are delivered. An item may be
delivered twice that way (the stores keep each turn once, by its request id), never lost.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Spilled:
    path: Path
    items: list[Any]


class SpillFolder:
    def __init__(self, folder: Path, name: str) -> None:
        self.folder = folder
        self.name = name  # what kind of queue spills here: files are <name>-<pid>-<ns>.spill

    def write(self, items: list[Any]) -> Path | None:
        if not items:
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / f"{self.name}-{os.getpid()}-{time.time_ns()}.spill"
        aside = path.with_suffix(".writing")
        with aside.open("w") as out:
            for item in items:
                out.write(json.dumps(item) + "\n")
            out.flush()
            os.fsync(out.fileno())
        aside.rename(path)
        return path

    def claim(self) -> list[Spilled]:
        """Every spill file of this kind, renamed to be this process's, with its items."""
        if not self.folder.is_dir():
            return []
        claimed = []
        for path in sorted(
            [*self.folder.glob(f"{self.name}-*.spill"), *self.folder.glob(f"{self.name}-*.claimed")]
        ):
            mine = path.with_name(f"{path.name.split('.')[0]}.claimed")
            try:
                path.rename(mine)
            except FileNotFoundError:
                continue  # another process claimed it first
            items = []
            for number, line in enumerate(mine.read_text().splitlines(), 1):
                try:
                    items.append(json.loads(line))
                except json.JSONDecodeError:
                    log.error("%s line %d is not JSON; skipped", mine, number)  # a torn last line
            claimed.append(Spilled(mine, items))
        return claimed

    @staticmethod
    def delivered(spilled: Spilled) -> None:
        spilled.path.unlink(missing_ok=True)
