"""User profiles and conversation history: PostgreSQL in production, SQLite for the embedded default.

History is appended a turn at a time (what the user said, the reply, the route and model, the
timings), each turn stored as zlib-compressed JSON, and outlives every process. A turn is kept once:
written again (a record retried, a spill replayed, a caller's retry of the same request), the
newest copy of the user's request id replaces the older. A write that fails is rolled back
whole. The schema is made by numbered migrations, applied in order and recorded, so an old database
is brought up to date on open. ``open_history_store(url)``: ``postgresql://…`` or
``sqlite:///path/to/file.db``.
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

from voicemesh.storage.voices import VoicePrint

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
    (
        2,
        [
            "ALTER TABLE turns ADD COLUMN turn_id TEXT",  # the turn's request id; NULL for older rows
            "CREATE UNIQUE INDEX turns_once ON turns (user_id, turn_id)",
        ],
    ),
    (
        3,
        [
            # Bumped with every change to a user's data (profile, deletion): what a cached reply was
            # made under is still the user's data only while the version stands.
            "CREATE TABLE user_versions (user_id TEXT PRIMARY KEY, version BIGINT NOT NULL)",
        ],
    ),
    (
        4,
        [
            # One voice print per user: the speaker embedding and what it was made from.
            "CREATE TABLE voice_prints (user_id TEXT PRIMARY KEY, model TEXT NOT NULL,"
            " embedding BYTEA NOT NULL, require_match BOOLEAN NOT NULL, samples INTEGER NOT NULL,"
            " speech_s DOUBLE PRECISION NOT NULL, consistency DOUBLE PRECISION NOT NULL,"
            " enrolled_at DOUBLE PRECISION NOT NULL)",
        ],
    ),
]
_VOICE_COLUMNS = "embedding, model, require_match, samples, speech_s, consistency, enrolled_at"
_VOICE_UPSERT = (
    f"INSERT INTO voice_prints (user_id, {_VOICE_COLUMNS}) VALUES ({{}}) ON CONFLICT (user_id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in _VOICE_COLUMNS.split(", "))
)
_BUMP_VERSION = (
    "INSERT INTO user_versions VALUES ({0}, 1) ON CONFLICT (user_id) "
    "DO UPDATE SET version = user_versions.version + 1"
)
_COLUMNS = "user_id, session_id, at, body, turn_id"
# Far above any turn the core accepts (texts of MAX_TEXT_CHARS, JSON-escaped at worst 6 bytes a
# character), far below what a crafted row could inflate to.
MAX_BODY_BYTES = 4 << 20


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
    turn_id: str = ""  # the turn's request id: a turn written twice is kept once
    failure: str = ""  # why it could not be served ("RESOURCE_EXHAUSTED: core: …")

    def pack(self) -> bytes:
        body = {k: v for k, v in asdict(self).items() if k not in ("user_id", "session_id", "at", "turn_id")}
        return zlib.compress(json.dumps(body).encode(), 6)

    @classmethod
    def unpack(cls, user_id: str, session_id: str, at: float, body: bytes, turn_id: str | None) -> TurnRecord:
        # At most MAX_BODY_BYTES out, whatever is stored: a row is never a decompression bomb.
        inflater = zlib.decompressobj()
        data = inflater.decompress(body, MAX_BODY_BYTES)
        if inflater.unconsumed_tail:
            raise ValueError(f"a stored turn inflates past {MAX_BODY_BYTES} bytes")
        return cls(user_id, session_id, at=at, turn_id=turn_id or "", **json.loads(data))


@dataclass(frozen=True)
class Deleted:
    turns: int
    profile: bool
    voice: bool = False


def _voice_row(voice: VoicePrint) -> tuple[object, ...]:
    return (
        voice.vector(),
        voice.model,
        voice.require_match,
        voice.samples,
        voice.speech_s,
        voice.consistency,
        voice.enrolled_at,
    )


def _voice_from_row(row: Any) -> VoicePrint:
    vector, model, require, samples, speech_s, consistency, at = row
    return VoicePrint.from_row(
        bytes(vector),
        model=model,
        require_match=require,
        samples=samples,
        speech_s=speech_s,
        consistency=consistency,
        enrolled_at=at,
    )


class HistoryStore(Protocol):
    async def append(self, turns: list[TurnRecord]) -> None: ...
    async def recent(self, user_id: str, limit: int = 10) -> list[TurnRecord]: ...
    async def put_profile(self, user_id: str, profile: dict[str, Any]) -> None: ...
    async def profile(self, user_id: str) -> dict[str, Any] | None: ...
    async def delete_user(self, user_id: str) -> Deleted: ...
    async def user_version(self, user_id: str) -> int: ...
    async def put_voice(self, user_id: str, voice: VoicePrint) -> None: ...
    async def voice(self, user_id: str) -> VoicePrint | None: ...
    async def delete_voice(self, user_id: str) -> bool: ...
    async def close(self) -> None: ...


def _rows(turns: list[TurnRecord]) -> list[tuple[str, str, float, bytes, str | None]]:
    return [(t.user_id, t.session_id, t.at, t.pack(), t.turn_id or None) for t in turns]


# A turn written again replaces the copy it has, if it is as new or newer (a late retry of an older
# attempt never overwrites the turn the user had).
_UPSERT = (
    "ON CONFLICT (user_id, turn_id) DO UPDATE SET session_id = excluded.session_id, at = excluded.at, "
    "body = excluded.body WHERE excluded.at >= turns.at"
)


class SqliteHistoryStore:
    """One connection, used from worker threads one call at a time: SQLite's own rule."""

    def __init__(self, path: Path, busy_timeout_s: float = 5.0) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(
            path, check_same_thread=False, isolation_level=None, timeout=busy_timeout_s
        )
        self._lock = threading.Lock()
        self._run(self._migrate)

    def _run(self, work: Any, *args: Any) -> Any:
        with self._lock:
            return work(*args)

    def _transaction(self, work: Any) -> Any:
        """``work()`` in one transaction, rolled back whole if it fails: one failed write (a locked
        database, a full disk) must not leave a transaction open under every later one."""
        self._db.execute("BEGIN")
        try:
            result = work()
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        return result

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

            def apply(version: int = version, statements: list[str] = statements) -> None:
                for statement in statements:
                    db.execute(statement.replace("BYTEA", "BLOB").replace("DOUBLE PRECISION", "REAL"))
                db.execute("INSERT INTO schema_migrations VALUES (?, ?)", (version, time.time()))

            self._transaction(apply)

    async def append(self, turns: list[TurnRecord]) -> None:
        """Append turns in one transaction: all of them or none."""

        def insert() -> None:
            sql = f"INSERT INTO turns ({_COLUMNS}) VALUES (?, ?, ?, ?, ?) {_UPSERT}"
            self._transaction(lambda: self._db.executemany(sql, _rows(turns)))

        await self._call(insert)

    async def recent(self, user_id: str, limit: int = 10) -> list[TurnRecord]:
        def query() -> list[Any]:
            sql = f"SELECT {_COLUMNS} FROM turns WHERE user_id = ? ORDER BY at DESC LIMIT ?"
            return self._db.execute(sql, (user_id, limit)).fetchall()

        rows = await self._call(query)
        return [TurnRecord.unpack(*row) for row in reversed(rows)]

    async def put_profile(self, user_id: str, profile: dict[str, Any]) -> None:
        sql = (
            "INSERT INTO profiles VALUES (?, ?, ?) ON CONFLICT (user_id) "
            "DO UPDATE SET profile = excluded.profile, updated_at = excluded.updated_at"
        )

        def write() -> None:
            self._db.execute(sql, (user_id, json.dumps(profile), time.time()))
            self._db.execute(_BUMP_VERSION.format("?"), (user_id,))

        await self._call(self._transaction, write)

    async def user_version(self, user_id: str) -> int:
        def query() -> Any:
            return self._db.execute(
                "SELECT version FROM user_versions WHERE user_id = ?", (user_id,)
            ).fetchone()

        row = await self._call(query)
        return 0 if row is None else int(row[0])

    async def profile(self, user_id: str) -> dict[str, Any] | None:
        def query() -> Any:
            return self._db.execute("SELECT profile FROM profiles WHERE user_id = ?", (user_id,)).fetchone()

        row = await self._call(query)
        return None if row is None else dict(json.loads(row[0]))

    async def delete_user(self, user_id: str) -> Deleted:
        def delete() -> Deleted:
            turns = self._db.execute("DELETE FROM turns WHERE user_id = ?", (user_id,)).rowcount
            profile = self._db.execute("DELETE FROM profiles WHERE user_id = ?", (user_id,)).rowcount
            voice = self._db.execute("DELETE FROM voice_prints WHERE user_id = ?", (user_id,)).rowcount
            self._db.execute(_BUMP_VERSION.format("?"), (user_id,))
            return Deleted(turns, profile > 0, voice > 0)

        deleted: Deleted = await self._call(self._transaction, delete)
        return deleted

    async def put_voice(self, user_id: str, voice: VoicePrint) -> None:
        sql = _VOICE_UPSERT.format(", ".join("?" * 8))
        await self._call(self._transaction, lambda: self._db.execute(sql, (user_id, *_voice_row(voice))))

    async def voice(self, user_id: str) -> VoicePrint | None:
        def query() -> Any:
            sql = f"SELECT {_VOICE_COLUMNS} FROM voice_prints WHERE user_id = ?"
            return self._db.execute(sql, (user_id,)).fetchone()

        row = await self._call(query)
        return None if row is None else _voice_from_row(row)

    async def delete_voice(self, user_id: str) -> bool:
        def delete() -> int:
            return int(self._db.execute("DELETE FROM voice_prints WHERE user_id = ?", (user_id,)).rowcount)

        return bool(await self._call(self._transaction, delete))

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

        # No connection floor: asyncpg would log a traceback for every failed attempt to keep one
        # open while PostgreSQL is down (the writer says so once itself); connections open on use.
        pool = await asyncpg.create_pool(url, min_size=0, max_size=4, **connect)
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
        sql = f"INSERT INTO turns ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5) {_UPSERT}"
        async with self._pool.acquire() as db, db.transaction():
            await db.executemany(sql, _rows(turns))

    async def recent(self, user_id: str, limit: int = 10) -> list[TurnRecord]:
        rows = await self._pool.fetch(
            f"SELECT {_COLUMNS} FROM turns WHERE user_id = $1 ORDER BY at DESC LIMIT $2", user_id, limit
        )
        return [TurnRecord.unpack(*row) for row in reversed(rows)]

    async def put_profile(self, user_id: str, profile: dict[str, Any]) -> None:
        async with self._pool.acquire() as db, db.transaction():
            await db.execute(
                "INSERT INTO profiles VALUES ($1, $2, $3) ON CONFLICT (user_id) "
                "DO UPDATE SET profile = excluded.profile, updated_at = excluded.updated_at",
                user_id,
                json.dumps(profile),
                time.time(),
            )
            await db.execute(_BUMP_VERSION.format("$1"), user_id)

    async def user_version(self, user_id: str) -> int:
        version = await self._pool.fetchval("SELECT version FROM user_versions WHERE user_id = $1", user_id)
        return 0 if version is None else int(version)

    async def profile(self, user_id: str) -> dict[str, Any] | None:
        raw = await self._pool.fetchval("SELECT profile FROM profiles WHERE user_id = $1", user_id)
        return None if raw is None else dict(json.loads(raw))

    async def delete_user(self, user_id: str) -> Deleted:
        async with self._pool.acquire() as db, db.transaction():
            turns = await db.execute("DELETE FROM turns WHERE user_id = $1", user_id)
            profile = await db.execute("DELETE FROM profiles WHERE user_id = $1", user_id)
            voice = await db.execute("DELETE FROM voice_prints WHERE user_id = $1", user_id)
            await db.execute(_BUMP_VERSION.format("$1"), user_id)
        return Deleted(int(turns.split()[-1]), profile != "DELETE 0", voice != "DELETE 0")

    async def put_voice(self, user_id: str, voice: VoicePrint) -> None:
        sql = _VOICE_UPSERT.format(", ".join(f"${n}" for n in range(1, 9)))
        await self._pool.execute(sql, user_id, *_voice_row(voice))

    async def voice(self, user_id: str) -> VoicePrint | None:
        row = await self._pool.fetchrow(
            f"SELECT {_VOICE_COLUMNS} FROM voice_prints WHERE user_id = $1", user_id
        )
        return None if row is None else _voice_from_row(tuple(row))

    async def delete_voice(self, user_id: str) -> bool:
        return bool(
            await self._pool.execute("DELETE FROM voice_prints WHERE user_id = $1", user_id) != "DELETE 0"
        )

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
