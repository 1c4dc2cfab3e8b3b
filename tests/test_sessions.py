"""The session store, one suite run against the real Redis at 127.0.0.1:6379 and the embedded store."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import numpy as np
import pytest
from redis.cluster import key_slot

from voicemesh.storage.sessions import (
    MAX_EXCHANGES,
    SESSION_TTL_S,
    MemorySessionStore,
    RedisSessionStore,
    Session,
    keys,
    open_session_store,
)
from voicemesh.storage.voices import VoicePrint

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture(params=["redis", "memory"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[RedisSessionStore | MemorySessionStore]:
    opened = open_session_store(REDIS_URL if request.param == "redis" else "memory://")
    yield opened
    await opened.close()


def new_id() -> str:
    return f"test-{uuid.uuid4().hex}"


async def test_a_session_round_trips_and_keeps_the_last_exchanges(store) -> None:  # type: ignore[no-untyped-def]
    session = Session(new_id(), user_id="ada")
    for n in range(MAX_EXCHANGES + 3):
        session.add(f"question {n}", f"answer {n}")
    await store.put(session)
    loaded = await store.get(session.session_id)
    assert loaded == session and len(loaded.exchanges) == MAX_EXCHANGES
    assert loaded.exchanges[-1].assistant == f"answer {MAX_EXCHANGES + 2}"
    assert await store.get(new_id()) is None
    await store.delete(session.session_id)


async def test_thirty_minutes_to_live_refreshed_by_activity(store) -> None:  # type: ignore[no-untyped-def]
    session = Session(new_id())
    await store.put(session)
    assert SESSION_TTL_S - 5 <= await store.ttl(session.session_id) <= SESSION_TTL_S
    await store.touch(session.session_id)
    assert await store.ttl(session.session_id) > SESSION_TTL_S - 5
    await store.delete(session.session_id)
    assert await store.ttl(session.session_id) == -2 and await store.get(session.session_id) is None


async def test_voice_features_live_beside_the_session_and_go_with_it(store) -> None:  # type: ignore[no-untyped-def]
    session = Session(new_id())
    await store.put(session)
    embedding = np.random.default_rng(0).standard_normal(256).astype(np.float32)
    voice = VoicePrint(embedding, "resemblyzer-0.1.4", require_match=True, samples=3, speech_s=9.5)
    await store.put_voice(session.session_id, voice.pack())
    back = VoicePrint.unpack(await store.get_voice(session.session_id))
    assert np.array_equal(back.embedding, embedding) and back.settings() == voice.settings()
    await store.delete(session.session_id)
    assert await store.get_voice(session.session_id) is None


async def test_a_users_cached_voice_prints_are_dropped_from_all_their_sessions(store) -> None:  # type: ignore[no-untyped-def]
    user = new_id()
    mine = [Session(new_id(), user_id=user) for _ in range(2)]
    other = Session(new_id(), user_id=new_id())
    for session in [*mine, other]:
        await store.put(session)
        await store.put_voice(session.session_id, b"{}\n")
    await store.drop_voices(user)
    assert [await store.get_voice(s.session_id) for s in mine] == [None, None]
    assert await store.get_voice(other.session_id) == b"{}\n"
    assert await store.get(mine[0].session_id) == mine[0]  # the sessions themselves stay


def test_a_sessions_keys_share_one_redis_cluster_slot() -> None:
    for session_id in ("a", "user-42:kitchen", new_id()):
        state, voice = keys(session_id)
        assert key_slot(state.encode()) == key_slot(voice.encode())


async def test_the_embedded_store_forgets_an_idle_session() -> None:
    now = [1000.0]
    store = MemorySessionStore(ttl_s=60, clock=lambda: now[0])
    await store.put(Session("s"))
    now[0] += 59
    await store.touch("s")  # activity: another 60 s from here
    now[0] += 59
    assert await store.get("s") is not None
    now[0] += 2
    assert await store.get("s") is None


def test_an_unknown_store_url_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="use redis://host:port/db or memory://"):
        open_session_store("postgres://nope")


async def test_deleting_a_user_deletes_their_sessions_only(store) -> None:  # type: ignore[no-untyped-def]
    user = new_id()
    mine = [Session(new_id(), user_id=user) for _ in range(3)]
    other = Session(new_id(), user_id=new_id())
    for session in [*mine, other]:
        await store.put(session)
    await store.put_voice(mine[0].session_id, b"voice")
    await store.delete(mine[2].session_id)  # already gone: not counted
    assert await store.delete_user(user) == 2
    assert [await store.get(s.session_id) for s in mine] == [None, None, None]
    assert await store.get_voice(mine[0].session_id) is None
    assert await store.get(other.session_id) == other
    assert await store.delete_user(user) == 0
    await store.delete(other.session_id)
