"""User profiles and conversation history: PostgreSQL in production, SQLite for the embedded default.

History is appended a turn at a time (what the user said, the reply, the route and model, the
timings), each turn stored as zlib-compressed JSON, and outlives every process. The schema is made
by numbered migrations, applied in order and recorded, so an old database is brought up to date on
open. ``open_history_store(url)``: ``postgresql://…`` or ``sqlite:///path/to/file.db``.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import time
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

# Each migration: (version, statements). Only ever append; a published one never changes.
MIGRATIONS_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at DOUBLE PRECISION)"
)
MIGRATIONS: list[tuple[int, list[str]]] = [
    (
        1,
        [
            "CREATE TABLE profiles (user_id TEXT PRIMARY KEY, profile TEXT NOT NULL,"
            " updated_at DOUBLE PRECISION NOT NULL)",
            "CREATE TABLE turns (user_id TEXT NOT NULL, session_id TEXT NOT NULL,"
            " at DOUBLE PRECISION NOT NULL, body BYTEA NOT NULL)",
            "CREATE INDEX turns_by_user ON turns (user_id, at)",
        ],
    ),
]


@dataclass
class TurnRecord:
    user_id: str
    session_id: str
    transcript: str
    reply: str
    route: str = ""  # tier/model
    timings: dict[str, float] = field(default_factory=dict)
    interrupted: bool = False
    at: float = field(default_factory=time.time)

    def pack(self) -> bytes:
        body = {k: v for k, v in asdict(self).items() if k not in ("user_id", "session_id", "at")}
        return zlib.compress(json.dumps(body).encode(), 6)

    @classmethod
    def unpack(cls, user_id: str, session_id: str, at: float, body: bytes) -> TurnRecord:
        return cls(user_id, session_id, at=at, **json.loads(zlib.decompress(body)))


@dataclass(frozen=True)
class Deleted:
    turns: int
    profile: bool


class HistoryStore(Protocol):
    async def append(self, turns: list[TurnRecord]) -> None: ...
    async def recent(self, user_id: str, limit: int = 10) -> list[TurnRecord]: ...
    async def put_profile(self, user_id: str, profile: dict[str, Any]) -> None: ...
    async def profile(self, user_id: str) -> dict[str, Any] | None: ...
    async def delete_user(self, user_id: str) -> Deleted: ...
    async def close(self) -> None: ...


def _rows(turns: list[TurnRecord]) -> list[tuple[str, str, float, bytes]]:
    return [(t.user_id, t.session_id, t.at, t.pack()) for t in turns]


class SqliteHistoryStore:
    """One connection, used from worker threads one call at a time: SQLite's own rule."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._run(self._migrate)

    def _run(self, work: Any, *args: Any) -> Any:
        with self._lock:
            return work(*args)

    async def _call(self, work: Any, *args: Any) -> Any:
        return await asyncio.to_thread(self._run, work, *args)

    def _migrate(self) -> None:
        db = self._db
        db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at REAL)"
        )
        done = {row[0] for row in db.execute("SELECT version FROM schema_migrations")}
        for version, statements in MIGRATIONS:
            if version in done:
                continue
            db.execute("BEGIN")
            for statement in statements:
                db.execute(statement.replace("BYTEA", "BLOB").replace("DOUBLE PRECISION", "REAL"))
            db.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, time.time()))
            db.execute("COMMIT")

    async def append(self, turns: list[TurnRecord]) -> None:
        """Append turns in one transaction: all of them or none."""

        def insert() -> None:
            self._db.execute("BEGIN")
            self._db.executemany("INSERT INTO turns VALUES (?, ?, ?, ?)", _rows(turns))
            self._db.execute("COMMIT")

        await self._call(insert)

    async def recent(self, user_id: str, limit: int = 10) -> list[TurnRecord]:
        def query() -> list[Any]:
            sql = "SELECT user_id, session_id, at, body FROM turns WHERE user_id = ? ORDER BY at DESC LIMIT ?"
            return self._db.execute(sql, (user_id, limit)).fetchall()

        rows = await self._call(query)
        return [TurnRecord.unpack(*row) for row in reversed(rows)]

    async def put_profile(self, user_id: str, profile: dict[str, Any]) -> None:
        sql = (
            "INSERT INTO profiles VALUES (?, ?, ?) ON CONFLICT (user_id) "
            "DO UPDATE SET profile = excluded.profile, updated_at = excluded.updated_at"
        )
        await self._call(self._db.execute, sql, (user_id, json.dumps(profile), time.time()))

    async def profile(self, user_id: str) -> dict[str, Any] | None:
        def query() -> Any:
            return self._db.execute("SELECT profile FROM profiles WHERE user_id = ?", (user_id,)).fetchone()

        row = await self._call(query)
        return None if row is None else dict(json.loads(row[0]))

    async def delete_user(self, user_id: str) -> Deleted:
        def delete() -> Deleted:
            self._db.execute("BEGIN")
            turns = self._db.execute("DELETE FROM turns WHERE user_id = ?", (user_id,)).rowcount
            profile = self._db.execute("DELETE FROM profiles WHERE user_id = ?", (user_id,)).rowcount
            self._db.execute("COMMIT")
            return Deleted(turns, profile > 0)

        deleted: Deleted = await self._call(delete)
        return deleted

    async def applied_migrations(self) -> list[int]:
        def query() -> list[Any]:
            return self._db.execute("SELECT version FROM schema_migrations ORDER BY version").fetchall()

        return [row[0] for row in await self._call(query)]

    async def close(self) -> None:
        await self._call(self._db.close)


class PostgresHistoryStore:
    def __init__(self, pool: Any) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, url: str, **connect: Any) -> PostgresHistoryStore:
        import asyncpg

        pool = await asyncpg.create_pool(url, min_size=1, max_size=4, **connect)
        store = cls(pool)
        await store._migrate()
        return store

    async def _migrate(self) -> None:
        async with self._pool.acquire() as db, db.transaction():
            # One migrator at a time, even with many replicas starting together.
            await db.execute("SELECT pg_advisory_xact_lock(7366323)")
            await db.execute(MIGRATIONS_TABLE)
            done = {row["version"] for row in await db.fetch("SELECT version FROM schema_migrations")}
            for version, statements in MIGRATIONS:
                if version in done:
                    continue
                for statement in statements:
                    await db.execute(statement)
                await db.execute("INSERT INTO schema_migrations VALUES ($1, $2)", version, time.time())

    async def append(self, turns: list[TurnRecord]) -> None:
        """Append turns in one transaction: all of them or none."""
        await self._pool.executemany("INSERT INTO turns VALUES ($1, $2, $3, $4)", _rows(turns))

    async def recent(self, user_id: str, limit: int = 10) -> list[TurnRecord]:
        rows = await self._pool.fetch(
            "SELECT user_id, session_id, at, body FROM turns WHERE user_id = $1 ORDER BY at DESC LIMIT $2",
            user_id,
            limit,
        )
        return [TurnRecord.unpack(r["user_id"], r["session_id"], r["at"], r["body"]) for r in reversed(rows)]

    async def put_profile(self, user_id: str, profile: dict[str, Any]) -> None:
        await self._pool.execute(
            "INSERT INTO profiles VALUES ($1, $2, $3) ON CONFLICT (user_id) "
            "DO UPDATE SET profile = excluded.profile, updated_at = excluded.updated_at",
            user_id,
            json.dumps(profile),
            time.time(),
        )

    async def profile(self, user_id: str) -> dict[str, Any] | None:
        raw = await self._pool.fetchval("SELECT profile FROM profiles WHERE user_id = $1", user_id)
        return None if raw is None else dict(json.loads(raw))

    async def delete_user(self, user_id: str) -> Deleted:
        async with self._pool.acquire() as db, db.transaction():
            turns = await db.execute("DELETE FROM turns WHERE user_id = $1", user_id)
            profile = await db.execute("DELETE FROM profiles WHERE user_id = $1", user_id)
        return Deleted(int(turns.split()[-1]), profile != "DELETE 0")

    async def applied_migrations(self) -> list[int]:
        rows = await self._pool.fetch("SELECT version FROM schema_migrations ORDER BY version")
        return [row["version"] for row in rows]

    async def close(self) -> None:
        await self._pool.close()


async def open_history_store(url: str, **connect: Any) -> SqliteHistoryStore | PostgresHistoryStore:
    if url.startswith(("postgresql://", "postgres://")):
        return await PostgresHistoryStore.open(url, **connect)
    if url.startswith("sqlite:///"):
        return SqliteHistoryStore(Path(url.removeprefix("sqlite:///")))
    raise ValueError(f"history store URL {url!r}: use postgresql://… or sqlite:///path/to/file.db")
