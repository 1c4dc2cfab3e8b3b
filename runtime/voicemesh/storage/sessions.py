"""Conversation sessions, kept for 30 minutes after their last activity: in Redis, or in process.

A session holds what the next turn needs quickly: who is speaking, and the last few exchanges.
Every key of a session carries the session id as a Redis hash tag (``vm:{id}:…``), so all of them
live in one slot of a Redis Cluster and can be written together. The session's voice (its user's
voice print, packed by ``VoicePrint.pack``) has its own key beside it, with the same time to live,
refreshed with it; a user's new or forgotten print drops it from every one of their sessions. A
user's sessions are listed under the user's own tag (``vm:{user:…}:sessions``) with the same time
to live, so deleting a user finds them all.

``open_session_store(url)``: ``redis://host:port/db`` for Redis, ``memory://`` for the embedded
default that needs nothing installed.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

SESSION_TTL_S = 30 * 60
MAX_EXCHANGES = 8  # what the session keeps for context; the full history is the history store's


@dataclass
class Exchange:
    user: str
    assistant: str
    turn_id: str = ""  # the turn's request id: a turn recorded twice is one exchange


@dataclass
class Session:
    session_id: str
    user_id: str = ""
    exchanges: list[Exchange] = field(default_factory=list)

    def add(self, user: str, assistant: str, turn_id: str = "") -> None:
        kept = [e for e in self.exchanges if not (turn_id and e.turn_id == turn_id)]
        self.exchanges = [*kept, Exchange(user, assistant, turn_id)][-MAX_EXCHANGES:]

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str | bytes) -> Session:
        data = json.loads(text)
        return cls(data["session_id"], data["user_id"], [Exchange(**e) for e in data["exchanges"]])


def keys(session_id: str) -> tuple[str, str]:
    """The session's keys, one hash slot: its state and its voice features."""
    tag = "{" + session_id + "}"
    return f"vm:{tag}:session", f"vm:{tag}:voice"


def user_key(user_id: str) -> str:
    """The set of a user's session ids."""
    return "vm:{user:" + user_id + "}:sessions"


class SessionStore(Protocol):
    async def get(self, session_id: str) -> Session | None: ...
    async def put(self, session: Session) -> None: ...
    async def put_voice(self, session_id: str, voice: bytes) -> None: ...
    async def get_voice(self, session_id: str) -> bytes | None: ...
    async def drop_voices(self, user_id: str) -> None: ...
    async def touch(self, session_id: str) -> None: ...
    async def delete(self, session_id: str) -> None: ...
    async def delete_user(self, user_id: str) -> int: ...
    async def close(self) -> None: ...


class RedisSessionStore:
    def __init__(self, url: str, ttl_s: int = SESSION_TTL_S, timeout_s: float = 0.5) -> None:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        # A turn waits on these calls: a dead Redis must fail them fast, not after retries.
        self._redis: Any = Redis.from_url(
            url, socket_connect_timeout=timeout_s, socket_timeout=timeout_s, retry=Retry(NoBackoff(), 0)
        )
        self.ttl_s = ttl_s

    async def ping(self) -> None:
        await self._redis.ping()

    async def get(self, session_id: str) -> Session | None:
        state, _ = keys(session_id)
        raw = await self._redis.get(state)
        return None if raw is None else Session.from_json(raw)

    async def put(self, session: Session) -> None:
        state, voice = keys(session.session_id)
        async with self._redis.pipeline(transaction=True) as pipe:  # one slot, so MULTI is allowed
            pipe.set(state, session.to_json(), ex=self.ttl_s)
            pipe.expire(voice, self.ttl_s)
            await pipe.execute()
        if session.user_id:  # another slot, so its own round trip
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.sadd(user_key(session.user_id), session.session_id)
                pipe.expire(user_key(session.user_id), self.ttl_s)
                await pipe.execute()

    async def put_voice(self, session_id: str, voice: bytes) -> None:
        await self._redis.set(keys(session_id)[1], voice, ex=self.ttl_s)

    async def get_voice(self, session_id: str) -> bytes | None:
        raw: bytes | None = await self._redis.get(keys(session_id)[1])
        return raw

    async def drop_voices(self, user_id: str) -> None:
        for raw in await self._redis.smembers(user_key(user_id)):
            await self._redis.delete(keys(raw.decode())[1])

    async def touch(self, session_id: str) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            for key in keys(session_id):
                pipe.expire(key, self.ttl_s)
            await pipe.execute()

    async def delete(self, session_id: str) -> None:
        await self._redis.delete(*keys(session_id))

    async def delete_user(self, user_id: str) -> int:
        """Delete every session of the user; returns how many still existed."""
        ids = [raw.decode() for raw in await self._redis.smembers(user_key(user_id))]
        existed = 0
        for session_id in ids:  # one slot per session: no multi-key command spans them
            existed += bool(await self._redis.delete(*keys(session_id)))
        await self._redis.delete(user_key(user_id))
        return existed

    async def ttl(self, session_id: str) -> float:
        """Seconds the session has left (-2 when it is gone)."""
        return float(await self._redis.ttl(keys(session_id)[0]))

    async def close(self) -> None:
        await self._redis.aclose()


class MemorySessionStore:
    """The embedded default: the same behaviour, in this process, with nothing to install."""

    def __init__(self, ttl_s: int = SESSION_TTL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self._items: dict[str, tuple[float, object]] = {}  # key → (expires at, value)
        self._users: dict[str, set[str]] = {}

    def _live(self, key: str) -> object | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[0] <= self._clock():
            del self._items[key]
            return None
        return item[1]

    def _set(self, key: str, value: object) -> None:
        self._items[key] = (self._clock() + self.ttl_s, value)

    async def get(self, session_id: str) -> Session | None:
        raw = self._live(keys(session_id)[0])
        return None if raw is None else Session.from_json(str(raw))

    async def put(self, session: Session) -> None:
        self._set(keys(session.session_id)[0], session.to_json())
        await self.touch(session.session_id)
        if session.user_id:
            self._users.setdefault(session.user_id, set()).add(session.session_id)

    async def put_voice(self, session_id: str, voice: bytes) -> None:
        self._set(keys(session_id)[1], bytes(voice))

    async def get_voice(self, session_id: str) -> bytes | None:
        value = self._live(keys(session_id)[1])
        return None if value is None else bytes(value)  # type: ignore[call-overload]

    async def drop_voices(self, user_id: str) -> None:
        for session_id in self._users.get(user_id, set()):
            self._items.pop(keys(session_id)[1], None)

    async def touch(self, session_id: str) -> None:
        for key in keys(session_id):
            if (value := self._live(key)) is not None:
                self._set(key, value)

    async def delete(self, session_id: str) -> None:
        for key in keys(session_id):
            self._items.pop(key, None)

    async def delete_user(self, user_id: str) -> int:
        existed = 0
        for session_id in self._users.pop(user_id, set()):
            existed += self._live(keys(session_id)[0]) is not None
            await self.delete(session_id)
        return existed

    def sessions(self) -> list[Session]:
        """Every live session: what a fallback store hands back to Redis when it returns."""
        found = (self._live(key) for key in list(self._items) if key.endswith(":session"))
        return [Session.from_json(str(raw)) for raw in found if raw is not None]

    async def ttl(self, session_id: str) -> float:
        item = self._items.get(keys(session_id)[0])
        return -2.0 if item is None or item[0] <= self._clock() else item[0] - self._clock()

    async def close(self) -> None:
        self._items.clear()
        self._users.clear()


def open_session_store(url: str, ttl_s: int = SESSION_TTL_S) -> RedisSessionStore | MemorySessionStore:
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisSessionStore(url, ttl_s)
    if url in ("memory://", ""):
        return MemorySessionStore(ttl_s)
    raise ValueError(f"session store URL {url!r}: use redis://host:port/db or memory://")
