"""Profiles and history: one suite against the real PostgreSQL (database test) and SQLite."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import pytest

from voicemesh.storage.history import (
    MIGRATIONS,
    Deleted,
    PostgresHistoryStore,
    SqliteHistoryStore,
    TurnRecord,
    open_history_store,
)

POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"
Opener = Callable[[], Awaitable[SqliteHistoryStore | PostgresHistoryStore]]


@pytest.fixture(params=["postgres", "sqlite"])
async def opener(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens the store afresh each call (a restart); PostgreSQL gets a schema of its own."""
    if request.param == "sqlite":
        yield lambda: open_history_store(f"sqlite:///{tmp_path / 'history.db'}")
        return
    schema = f"vm_test_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_URL)
    await admin.execute(f"CREATE SCHEMA {schema}")
    yield lambda: open_history_store(POSTGRES_URL, server_settings={"search_path": schema})
    await admin.execute(f"DROP SCHEMA {schema} CASCADE")
    await admin.close()


async def test_turns_are_appended_compressed_and_survive_a_restart(opener: Opener) -> None:
    store = await opener()
    long_reply = "The knight rode on through the night. " * 40
    for n in range(4):
        turn = TurnRecord(
            "ada",
            "s1",
            f"question {n}",
            long_reply,
            "local/SmolLM2",
            {"first_audio_ms": 600.0 + n},
            at=1000.0 + n,
        )
        await store.append([turn])
    last = TurnRecord(
        "ada", "s1", "question 4", "Sor", "local/SmolLM2", {"first_audio_ms": 604.0}, True, 1004.0
    )
    await store.append([TurnRecord("bob", "s2", "hi", "hello", at=999.0), last])
    assert len(TurnRecord("ada", "s1", "q", long_reply).pack()) < len(long_reply) / 5
    await store.close()

    store = await opener()  # a new process would see the same
    recent = await store.recent("ada", limit=3)
    assert [t.transcript for t in recent] == ["question 2", "question 3", "question 4"]  # oldest first
    assert recent[-2].reply == long_reply and recent[-2].route == "local/SmolLM2"
    assert recent[-1] == last and recent[-1].interrupted and not recent[-2].interrupted
    await store.close()


async def test_deleting_a_user_removes_profile_and_history_and_nothing_else(opener: Opener) -> None:
    store = await opener()
    await store.put_profile("ada", {"name": "Ada", "units": "metric"})
    await store.put_profile("ada", {"name": "Ada", "units": "imperial"})
    assert await store.profile("ada") == {"name": "Ada", "units": "imperial"}
    await store.append([TurnRecord(who, "s", "q", "a") for who in ("ada", "ada", "bob")])
    assert await store.delete_user("ada") == Deleted(turns=2, profile=True)
    assert await store.delete_user("ada") == Deleted(turns=0, profile=False)
    assert await store.profile("ada") is None and await store.recent("ada") == []
    assert len(await store.recent("bob")) == 1
    await store.close()


async def test_migrations_are_applied_once_and_recorded(opener: Opener) -> None:
    for _ in range(2):  # opening an up-to-date database changes nothing
        store = await opener()
        await store.close()
    store = await opener()
    assert await store.applied_migrations() == [version for version, _ in MIGRATIONS]
    await store.close()


async def test_an_unknown_history_url_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match=r"use postgresql://… or sqlite:///path/to/file.db"):
        await open_history_store("redis://nope")


def test_a_stored_row_that_inflates_past_the_limit_is_refused_without_inflating_it() -> None:
    import zlib

    from voicemesh.storage.history import MAX_BODY_BYTES

    bomb = zlib.compress(b"[" + b" " * (64 << 20), 9)  # 64 MiB of spaces in about 64 kB
    assert len(bomb) < MAX_BODY_BYTES
    with pytest.raises(ValueError, match="inflates past"):
        TurnRecord.unpack("ada", "s", 0.0, bomb, None)
