"""The core: picks a model, streams the reply, marks sentences. No gRPC here."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

from voicemesh.common import limits
from voicemesh.common.errors import InvalidRequest
from voicemesh.common.metrics import TOKENS
from voicemesh.core import excerpts
from voicemesh.core.context import Context, ConversationMemory, Source
from voicemesh.core.models import Usage
from voicemesh.core.reply_budget import SENTENCE_GRACE_TOKENS, ReplyBudget
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
    usage: Usage = field(default_factory=Usage)


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
    # Sentences a spoken reply stops after, per tier (0: no limit): what nobody listens to is not made.
    reply_sentences: Mapping[str, int] = field(default_factory=lambda: {"local": 2, "remote": 2})


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
        max_sentences: int = 0,
        deadline: float | None = None,
        over_limit: str = "",
    ) -> AsyncIterator[ReplyEvent]:
        """The reply to ``text``; with ``sources``, made from those passages of the user's documents.
        ``max_sentences`` (0: the tier's default) bounds it; ``deadline`` (``time.monotonic()``) is
        when the caller stops waiting, which a model at capacity weighs before queueing it;
        ``over_limit`` says why the usual tier may not answer (TierRouter.open)."""
        text = limits.check_text("text", text)
        sources = sources or []
        if len(sources) > limits.MAX_SOURCES:
            raise InvalidRequest(f"{len(sources)} passages given; at most {limits.MAX_SOURCES}")
        if sum(len(source.text) for source in sources) > limits.MAX_SOURCE_CHARS:
            raise InvalidRequest(f"the passages given are over {limits.MAX_SOURCE_CHARS} characters in all")
        if max_tokens < 0:
            raise InvalidRequest(f"max_tokens {max_tokens} is negative; use 0 for the default")
        if not 0 <= max_sentences <= limits.MAX_REPLY_SENTENCES:
            raise InvalidRequest(
                f"max_sentences {max_sentences} is out of range; "
                f"use 1 to {limits.MAX_REPLY_SENTENCES}, or 0 for the tier's default"
            )
        limits.check_id("session_id", session_id)
        limits.check_id("user_id", user_id, limits.MAX_USER_KEY_CHARS)
        context = await self.memory.load(session_id, user_id) if self.memory else Context()
        sources = excerpts.fit(sources, text, self._settings.grounding_words)
        messages = context.messages(self._settings.system_prompt, text, sources)
        budget = max_tokens or self._settings.max_tokens
        route, stream = await self._router.open(
            messages,
            budget + SENTENCE_GRACE_TOKENS,
            self._settings.grounded_temperature if sources else self._settings.temperature,
            deadline=deadline,
            over_limit=limits.check_text("over_limit", over_limit) if over_limit else "",
        )
        yield route
        reply = ReplyBudget(max_sentences or self._settings.reply_sentences.get(route.tier, 0), budget)
        parts: list[str] = []
        sentences = 0
        finish = "stop"
        usage = Usage()
        try:
            async for delta in stream:
                usage = delta.usage or usage
                if delta.finish_reason:
                    finish = delta.finish_reason
                if not delta.text:
                    continue
                TOKENS.labels(route.tier).inc()
                said, finished = reply.push(delta.text)
                if said:
                    parts.append(said)
                    yield TextDelta(said)
                for sentence in finished:
                    yield Sentence(sentences, sentence)
                    sentences += 1
                if reply.stopped:
                    finish = reply.stopped
                    break
        finally:
            await stream.aclose()  # a reply stopped by its budget stops the model's work too
        held, last = reply.flush()
        if held:
            parts.append(held)
            yield TextDelta(held)
        for sentence in last:
            yield Sentence(sentences, sentence)
            sentences += 1
        yield Done(
            "".join(parts).strip(),
            reply.generated,
            finish,
            len(context.exchanges),
            context.user_version,
            usage,
        )
