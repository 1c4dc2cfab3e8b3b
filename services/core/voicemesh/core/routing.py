"""Which model answers: the remote tier while it works, the local tier when it is throttled or down.

The remote tier sits behind a circuit breaker. A request tries it first unless the breaker is open;
if the endpoint is unreachable or refuses for load before its first token, the local model answers
instead and the route says why. Once the first token has come, the reply stays where it is.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import pybreaker

from voicemesh.common.errors import DependencyUnavailable, Overloaded
from voicemesh.core.models import ChatModel, Delta, Message


@dataclass(frozen=True)
class Route:
    tier: str
    model: str
    reason: str


def _not_a_tier_failure(exc: BaseException) -> bool:
    return not isinstance(exc, DependencyUnavailable | Overloaded)


class TierRouter:
    def __init__(
        self,
        primary: ChatModel,
        fallback: ChatModel | None = None,
        *,
        fail_max: int = 3,
        reset_timeout_s: float = 30.0,
    ) -> None:
        self._primary = primary
        self._fallback = fallback
        self._breaker = pybreaker.CircuitBreaker(
            fail_max=fail_max,
            reset_timeout=reset_timeout_s,
            exclude=[_not_a_tier_failure],
            throw_new_error_on_trip=False,
            name=primary.tier,
        )

    async def open(
        self, messages: Sequence[Message], max_tokens: int, temperature: float
    ) -> tuple[Route, AsyncIterator[Delta]]:
        """The route taken and its reply stream, already past the first delta."""
        primary = self._primary
        usual = "remote endpoint configured" if primary.tier == "remote" else "embedded default"
        if self._fallback is None:
            return Route(primary.tier, primary.name, usual), primary.stream(messages, max_tokens, temperature)
        stream = primary.stream(messages, max_tokens, temperature)
        try:
            with self._breaker.calling():
                first = await anext(stream)
        except pybreaker.CircuitBreakerError:
            reason = f"{primary.tier} tier's circuit is open after repeated failures"
        except (DependencyUnavailable, Overloaded) as exc:
            reason = f"{primary.tier} tier {'throttled' if isinstance(exc, Overloaded) else 'failed'}: {exc}"
        except StopAsyncIteration:
            return Route(primary.tier, primary.name, usual), _empty()
        else:
            return Route(primary.tier, primary.name, usual), _prepend(first, stream)
        await stream.aclose()
        fallback = self._fallback
        return Route(fallback.tier, fallback.name, f"fallback: {reason}"), fallback.stream(
            messages, max_tokens, temperature
        )


async def _prepend(first: Delta, rest: AsyncIterator[Delta]) -> AsyncIterator[Delta]:
    yield first
    async for delta in rest:
        yield delta


async def _empty() -> AsyncIterator[Delta]:
    return
    yield
