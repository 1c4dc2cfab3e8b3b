"""An in-process cache of whole replies (text and audio) for requests asked word for word before.

Keys are the user, the request's words (case and punctuation aside) and how the reply is given
(audio or not, voice, rate), so one user's reply never reaches another and a text reply never
stands in for a spoken one. Only replies that depended on nothing said earlier are stored (the
core says so with ``context_turns == 0``), and only requests that start a conversation look here:
a follow-up's meaning depends on what came before it. Least recently used entries go first, and
every entry expires after ``ttl_s``. Spoken replies are large (about 40 KiB a second of audio), so
the cache is bounded in bytes as well as entries. It needs nothing beyond the generated messages, so
the thin client's edge cache is the same class; each side counts its lookups its own way.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from voicemesh.common.replies import ReplyEvent
from voicemesh.v1 import audio_pb2, core_pb2

Key = tuple[str, str, bool, str, int, int]


def normalise(text: str) -> str:
    return " ".join(re.findall(r"[\w']+", text.lower()))


def cache_key(
    user_id: str, text: str, speak: bool, voice: str = "", sample_rate_hz: int = 0, max_sentences: int = 0
) -> Key:
    voice, sample_rate_hz = (voice, sample_rate_hz) if speak else ("", 0)
    return user_id, normalise(text), speak, voice, sample_rate_hz, max_sentences


@dataclass
class CachedReply:
    model: str
    text: str
    sentences: list[str] = field(default_factory=list)
    audio: list[tuple[bytes, int]] = field(default_factory=list)  # (PCM s16le, sample rate) chunks
    stored_at: float = 0.0
    user_version: int = 0  # the version of the user's data it was made under (the gateway checks it)

    @property
    def size(self) -> int:
        return len(self.text) + sum(len(pcm) for pcm, _ in self.audio)


def replay(cached: CachedReply, where: str) -> Iterator[ReplyEvent]:
    """A cached reply as the events of a turn: its route, text, sentences and audio."""
    reason = f"asked in the same words before; the {where}'s cached reply"
    yield core_pb2.RouteChosen(tier="cache", model=cached.model, reason=reason)
    for index, sentence in enumerate(cached.sentences):
        yield f" {sentence}" if index else sentence
        yield core_pb2.SentenceMark(index=index, text=sentence)
    for pcm, rate in cached.audio:
        yield audio_pb2.SynthesizedAudio(audio_content=pcm, sample_rate_hz=rate)


class ReplyCache:
    def __init__(
        self,
        where: str,
        *,
        max_entries: int = 1000,
        max_bytes: int = 64 << 20,
        ttl_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        on_lookup: Callable[[str], object] = lambda _result: None,
    ) -> None:
        """``on_lookup("hit" | "miss")`` hears every lookup (the gateway counts them in a metric)."""
        self.where = where  # "gateway" or "edge": said in a cached reply's route
        self._on_lookup = on_lookup
        self._entries: OrderedDict[Key, CachedReply] = OrderedDict()
        self._max = max_entries
        self._max_bytes = max_bytes
        self.bytes = 0
        self._ttl_s = ttl_s
        self._clock = clock
        self.hits = self.misses = 0

    @property
    def hit_rate(self) -> float:
        looked = self.hits + self.misses
        return self.hits / looked if looked else 0.0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Key) -> CachedReply | None:
        entry = self._entries.get(key)
        if entry is not None and self._clock() - entry.stored_at > self._ttl_s:
            self._remove(key)
            entry = None
        if entry is None:
            self.misses += 1
            self._on_lookup("miss")
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        self._on_lookup("hit")
        return entry

    def put(self, key: Key, reply: CachedReply) -> None:
        if self._max <= 0 or not key[1] or reply.size > self._max_bytes:
            return
        if key in self._entries:
            self._remove(key)
        reply.stored_at = self._clock()
        self._entries[key] = reply
        self.bytes += reply.size
        while len(self._entries) > self._max or self.bytes > self._max_bytes:
            self._remove(next(iter(self._entries)))

    def _remove(self, key: Key) -> None:
        self.bytes -= self._entries.pop(key).size

    def forget(self, key: Key) -> None:
        """Drop one entry (it turned out stale)."""
        if key in self._entries:
            self._remove(key)

    def drop_user(self, user_id: str) -> int:
        """Forget every reply given to the user; returns how many."""
        keys = [key for key in self._entries if key[0] == user_id]
        for key in keys:
            self._remove(key)
        return len(keys)
