"""Collections on disk: a folder each, holding its generations and a CURRENT file naming the one that
serves. Publishing a generation replaces CURRENT in one rename, so a search sees the old generation
or the new one, never a mix; every replica on the volume notices the change at its next search.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from voicemesh.rag.generation import Generation

CURRENT = "CURRENT"
KEEP_GENERATIONS = 2  # the serving one, and the one searches in flight may still be reading


@dataclass(frozen=True)
class CollectionKey:
    tenant: str
    user_id: str  # "" for the tenant's shared documents
    name: str

    def folder_name(self) -> str:
        """A fixed-length name that any tenant, user or collection name maps to safely."""
        raw = json.dumps([self.tenant, self.user_id, self.name]).encode()
        return hashlib.sha256(raw).hexdigest()[:32]

    def label(self) -> str:
        return f"{self.tenant}/{self.user_id or '(shared)'}/{self.name}"


class Collection:
    def __init__(self, key: CollectionKey, folder: Path) -> None:
        self.key = key
        self.folder = folder
        self.writing = asyncio.Lock()  # one build at a time in this process; flock for other processes
        self._current: Generation | None = None
        self._seen: tuple[int, int] | None = None

    def current(self) -> Generation | None:
        """The generation CURRENT names (opened again when another process or a build changed it)."""
        pointer = self.folder / CURRENT
        try:
            stat = pointer.stat()
        except FileNotFoundError:
            return None
        seen = (stat.st_mtime_ns, stat.st_ino)
        if seen != self._seen or self._current is None:
            name = pointer.read_text().strip()
            self._current = Generation(self.folder / name)
            self._seen = seen
        return self._current

    def next_number(self) -> int:
        numbers = [int(p.name.removeprefix("gen-")) for p in self.folder.glob("gen-*") if p.is_dir()]
        return max(numbers, default=0) + 1

    def generation_folder(self, number: int) -> Path:
        return self.folder / f"gen-{number:08d}"

    def publish(self, folder: Path) -> Generation:
        """Make ``folder`` the serving generation, then drop the ones nobody can be reading."""
        staging = self.folder / f".{CURRENT}.{os.getpid()}"
        staging.write_text(folder.name + "\n")
        with open(staging, "rb") as f:
            os.fsync(f.fileno())
        os.replace(staging, self.folder / CURRENT)
        generation = self.current()
        assert generation is not None and generation.folder == folder
        generations = sorted(p for p in self.folder.glob("gen-*") if p.is_dir())
        for old in generations[:-KEEP_GENERATIONS]:
            shutil.rmtree(old, ignore_errors=True)  # open maps of it stay valid until unmapped
        return generation

    def acquire(self) -> IO[bytes]:
        """Exclusive against builders in other processes on the same volume (blocks: run it in a thread)."""
        lock = open(self.folder / "lock", "a+b")  # noqa: SIM115  # held until release()
        fcntl.flock(lock, fcntl.LOCK_EX)
        return lock

    @staticmethod
    def release(lock: IO[bytes]) -> None:
        fcntl.flock(lock, fcntl.LOCK_UN)
        lock.close()


class CollectionStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self._open: dict[CollectionKey, Collection] = {}

    def get(self, key: CollectionKey, *, create: bool = False) -> Collection | None:
        known = self._open.get(key)
        if known is not None:
            return known
        folder = self.root / key.folder_name()
        if not folder.exists():
            if not create:
                return None
            folder.mkdir(parents=True)
            (folder / "collection.json").write_text(json.dumps(key.__dict__))
        collection = self._open[key] = Collection(key, folder)
        return collection

    def all(self) -> list[Collection]:
        found = []
        for info in self.root.glob("*/collection.json"):
            key = CollectionKey(**json.loads(info.read_text()))
            collection = self.get(key)
            if collection is not None:
                found.append(collection)
        return found
