"""What the core remembers: a session's last exchanges, a user's profile and history.

Before a reply, ``load`` reads the session, the profile and the recent history at once; each read
has a short time limit, and a store that fails or is slow costs the reply its context, not the
reply. The session's own exchanges are the context; when the session store has lost them (Redis
restarted, or it was down), the session's turns in the history stand in for them.

After a turn, ``record`` adds the exchange to the session and queues the turn for the history store
(see ``HistoryWriter``): neither waits for the database.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import TypeVar

from voicemesh.common.errors import DependencyUnavailable, InvalidRequest, PermissionDenied
from voicemesh.common.limits import MAX_PROFILE_FIELDS
from voicemesh.common.metrics import STAGE_SECONDS
from voicemesh.storage.history import Deleted, HistoryStore, TurnRecord
from voicemesh.storage.sessions import Exchange, Session, SessionStore
from voicemesh.storage.voices import VoicePrint
from voicemesh.storage.writer import HistoryWriter

log = logging.getLogger(__name__)

T = TypeVar("T")


GROUNDING = (
    "Answer from these passages of the user's documents. If they do not hold the answer, say that "
    "the documents do not say."
)


@dataclass(frozen=True)
class Source:
    """A passage of the user's documents a reply is to be made from."""

    title: str
    heading: str
    text: str

    def cited(self, number: int) -> str:
        where = " - ".join(part for part in (self.title, self.heading) if part)
        return f"[{number}] {where}\n{self.text}" if where else f"[{number}] {self.text}"


@dataclass(frozen=True)
class Context:
    profile: dict[str, str] = field(default_factory=dict)
    exchanges: list[Exchange] = field(default_factory=list)
    user_version: int = 0  # of the user's data this context was read under (0: unknown or none)

    def messages(
        self, system_prompt: str, text: str, sources: list[Source] | None = None
    ) -> list[dict[str, str]]:
        system = system_prompt
        if self.profile:
            # Plain sentences: a small model uses "their city is Lisbon." far more often than "city: Lisbon".
            known = " ".join(
                f"Their {_plain(key)} is {_plain(value)}." for key, value in sorted(self.profile.items())
            )
            system += f"\nAbout the user: {known}"
        messages = [{"role": "system", "content": system}]
        for exchange in self.exchanges:
            messages.append({"role": "user", "content": exchange.user})
            messages.append({"role": "assistant", "content": exchange.assistant})
        if sources:
            # Beside the question, not in the system prompt: the small model copies facts from the
            # nearest text far more faithfully (measured: a year copied right 6/6 times, against
            # 0/6 from the system prompt under the repeat penalty).
            passages = "\n\n".join(source.cited(n) for n, source in enumerate(sources, start=1))
            text = f"{GROUNDING}\n\n{passages}\n\nQuestion: {text}"
        messages.append({"role": "user", "content": text})
        return messages


_TEMPLATE_MARKS = re.compile(r"<\|[^|]*\|>|<\|?|\|?>")


def _plain(value: str) -> str:
    """A profile field as one line of plain text: no newlines to start a new turn with, and no
    chat-template marks (``<|im_start|>system``) to speak as the system with."""
    unmarked = _TEMPLATE_MARKS.sub(" ", value)
    return " ".join("".join(c if c.isprintable() else " " for c in unmarked).split())


class ConversationMemory:
    def __init__(
        self,
        sessions: SessionStore,
        history: HistoryStore,
        writer: HistoryWriter,
        *,
        context_exchanges: int = 3,
        read_timeout_s: float = 0.5,
    ) -> None:
        self.sessions = sessions
        self.history = history
        self.writer = writer
        self._exchanges = context_exchanges
        self._timeout_s = read_timeout_s

    async def _read(self, what: str, read: Awaitable[T]) -> T | None:
        try:
            return await asyncio.wait_for(read, self._timeout_s)
        except Exception as exc:  # any store failure: answer without this part of the context
            log.warning("context: %s unavailable (%s); answering without it", what, exc or type(exc).__name__)
            return None

    async def load(self, session_id: str, user_id: str) -> Context:
        if not session_id and not user_id:
            return Context()
        started = time.monotonic()
        session, profile, recent, version = await asyncio.gather(
            self._read("session", self.sessions.get(session_id)) if session_id else _none(),
            self._read("profile", self.history.profile(user_id)) if user_id else _none(),
            self._read("history", self.history.recent(user_id, 2 * self._exchanges)) if user_id else _none(),
            self._read("version", self.history.user_version(user_id)) if user_id else _none(),
        )
        STAGE_SECONDS.labels("core.context").observe(time.monotonic() - started)
        # A user's session is theirs alone: not another user's, and not a caller who names no user.
        if session is not None and session.user_id and session.user_id != user_id:
            raise PermissionDenied(f"session {session_id} belongs to another user; start a new session")
        if session is not None:
            exchanges = session.exchanges
        else:
            exchanges = [
                Exchange(t.transcript, t.reply, t.turn_id)
                for t in recent or []
                if t.session_id == session_id and not t.interrupted
            ]
        fields = {str(k): str(v) for k, v in (profile or {}).items()}
        # Unknown (the store failed) is -1: a reply made then is never taken for current.
        user_version = -1 if user_id and version is None else (version or 0)
        return Context(fields, exchanges[-self._exchanges :] if self._exchanges else [], user_version)

    async def user_version(self, user_id: str) -> int:
        try:
            return await self.history.user_version(user_id)
        except Exception as exc:
            raise DependencyUnavailable(f"history store unavailable: {exc}") from None

    async def record(self, turn: TurnRecord) -> None:
        """Keep a turn: in its user's history always; in its session's context only if the user heard
        it whole (an interrupted or failed reply would be answered on as if it had been said)."""
        if not turn.interrupted:
            session = await self.sessions.get(turn.session_id) or Session(turn.session_id, turn.user_id)
            if not (session.user_id and session.user_id != turn.user_id):  # never into another's
                session.add(turn.transcript, turn.reply, turn.turn_id)
                await self.sessions.put(session)
        if turn.user_id:
            self.writer.put(turn)

    async def user_data(self, user_id: str, limit: int) -> tuple[dict[str, str], list[TurnRecord]]:
        try:
            profile, turns = await asyncio.gather(
                self.history.profile(user_id), self.history.recent(user_id, limit)
            )
        except Exception as exc:
            raise DependencyUnavailable(f"history store unavailable: {exc}") from None
        return {str(k): str(v) for k, v in (profile or {}).items()}, turns

    async def update_profile(
        self, user_id: str, updates: dict[str, str], remove: list[str]
    ) -> dict[str, str]:
        try:
            profile = {str(k): str(v) for k, v in (await self.history.profile(user_id) or {}).items()}
            profile.update(updates)
            for key in remove:
                profile.pop(key, None)
            if len(profile) > MAX_PROFILE_FIELDS:
                raise InvalidRequest(f"a profile holds at most {MAX_PROFILE_FIELDS} fields")
            await self.history.put_profile(user_id, profile)
        except InvalidRequest:
            raise
        except Exception as exc:
            raise DependencyUnavailable(f"history store unavailable: {exc}") from None
        return profile

    async def voice_print(self, user_id: str, session_id: str = "") -> VoicePrint | None:
        """The user's voice print: from the session's voice key if this session has read it (or its
        absence) before, else from the history database, then kept in the key for the next stream.
        A database that cannot answer is an error, never "no print": a print that requires a match
        must not vanish when PostgreSQL does."""
        session = await self._read("session", self.sessions.get(session_id)) if session_id else None
        cacheable = session is not None and session.user_id == user_id
        if cacheable:
            cached = await self._read("voice", self.sessions.get_voice(session_id))
            if cached is not None:
                return VoicePrint.unpack(cached) if cached else None
        try:
            voice = await self.history.voice(user_id)
        except Exception as exc:
            raise DependencyUnavailable(f"history store unavailable, voice print unknown: {exc}") from None
        if cacheable:
            await self._read("voice", self.sessions.put_voice(session_id, voice.pack() if voice else b""))
        return voice

    async def save_voice_print(self, user_id: str, voice: VoicePrint | None) -> bool:
        """Keep (or, with None, delete) the user's print, and drop the copies their sessions hold;
        returns whether a deletion found a print."""
        deleted = False
        try:
            if voice is None:
                deleted = await self.history.delete_voice(user_id)
            else:
                await self.history.put_voice(user_id, voice)
        except Exception as exc:
            raise DependencyUnavailable(f"history store unavailable, voice print not saved: {exc}") from None
        try:
            await self.sessions.drop_voices(user_id)
        except Exception as exc:
            raise DependencyUnavailable(
                f"voice print saved, but the session store could not drop its old copies: {exc}; retry"
            ) from None
        return deleted

    async def delete_user(self, user_id: str) -> tuple[int, int, Deleted]:
        """Delete the user everywhere: (turns deleted, sessions deleted, what the database had)."""
        queued = await self.writer.drop_user(user_id)
        sessions = await self.sessions.delete_user(user_id)
        try:
            deleted = await self.history.delete_user(user_id)
        except Exception as exc:
            raise DependencyUnavailable(
                f"history store unavailable, nothing deleted from it: {exc}"
            ) from None
        return deleted.turns + queued, sessions, deleted


async def _none() -> None:
    return None
