"""The core: picks a model, streams the reply, marks sentences. No gRPC here."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from voicemesh.common import limits
from voicemesh.common.errors import InvalidRequest
from voicemesh.common.metrics import TOKENS
from voicemesh.common.sentences import SentenceSplitter
from voicemesh.core import excerpts
from voicemesh.core.context import Context, ConversationMemory, Source
from voicemesh.core.routing import Route, TierRouter


@dataclass(frozen=True)
class TextDelta:
    text: str


@dataclass(frozen=True)
class Sentence:
    index: int
    text: str


@dataclass(frozen=True)
class Done:
    text: str
    completion_tokens: int
    finish_reason: str
    context_turns: int = 0
    user_version: int = 0


ReplyEvent = Route | TextDelta | Sentence | Done

__all__ = [
    "Done",
    "GenerationSettings",
    "ReplyEvent",
    "Responder",
    "Route",
    "Sentence",
    "Source",
    "TextDelta",
]


@dataclass(frozen=True)
class GenerationSettings:
    system_prompt: str
    max_tokens: int = 160
    temperature: float = 0.3
    grounded_temperature: float = 0.0  # a reply from the user's documents says what they say
    grounding_words: int = 60  # of the passages, at most (see excerpts.py); 0: whole passages


class Responder:
    def __init__(
        self, router: TierRouter, settings: GenerationSettings, memory: ConversationMemory | None = None
    ) -> None:
        self._router = router
        self._settings = settings
        self.memory = memory

    async def respond(
        self,
        text: str,
        max_tokens: int = 0,
        *,
        session_id: str = "",
        user_id: str = "",
        sources: list[Source] | None = None,
    ) -> AsyncIterator[ReplyEvent]:
        """The reply to ``text``; with ``sources``, made from those passages of the user's documents."""
        text = limits.check_text("text", text)
        sources = sources or []
        if len(sources) > limits.MAX_SOURCES:
            raise InvalidRequest(f"{len(sources)} passages given; at most {limits.MAX_SOURCES}")
        if sum(len(source.text) for source in sources) > limits.MAX_SOURCE_CHARS:
            raise InvalidRequest(f"the passages given are over {limits.MAX_SOURCE_CHARS} characters in all")
        if max_tokens < 0:
            raise InvalidRequest(f"max_tokens {max_tokens} is negative; use 0 for the default")
        limits.check_id("session_id", session_id)
        limits.check_id("user_id", user_id, limits.MAX_USER_KEY_CHARS)
        context = await self.memory.load(session_id, user_id) if self.memory else Context()
        sources = excerpts.fit(sources, text, self._settings.grounding_words)
        messages = context.messages(self._settings.system_prompt, text, sources)
        route, stream = await self._router.open(
            messages,
            max_tokens or self._settings.max_tokens,
            self._settings.grounded_temperature if sources else self._settings.temperature,
        )
        yield route
        splitter = SentenceSplitter()
        parts: list[str] = []
        sentences = tokens = 0
        finish = "stop"
        async for delta in stream:
            if delta.finish_reason:
                finish = delta.finish_reason
            if not delta.text:
                continue
            tokens += 1
            TOKENS.labels(route.tier).inc()
            parts.append(delta.text)
            yield TextDelta(delta.text)
            for sentence in splitter.push(delta.text):
                yield Sentence(sentences, sentence)
                sentences += 1
        for sentence in splitter.flush():
            yield Sentence(sentences, sentence)
            sentences += 1
        yield Done("".join(parts).strip(), tokens, finish, len(context.exchanges), context.user_version)
