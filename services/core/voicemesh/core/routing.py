"""Which model answers: the remote tier while it works, the local tier when it is throttled or down.

The remote tier sits behind a circuit breaker. A request tries it first unless the breaker is open;
if the endpoint is unreachable or refuses for load before its first token, the local model answers
instead and the route says why. Once the first token has come, the reply stays where it is.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass

import pybreaker

from voicemesh.common.errors import DependencyUnavailable, FailedPrecondition, Overloaded
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
        self,
        messages: Sequence[Message],
        max_tokens: int,
        temperature: float,
        *,
        deadline: float | None,
        over_limit: str = "",
    ) -> tuple[Route, AsyncGenerator[Delta, None]]:
        """The route taken and its reply stream, already past the first delta. With ``over_limit``
        (why the caller may not use the usual tier now), only another tier may answer."""
        primary = self._primary
        fallback = self._fallback
        if over_limit:
            if fallback is None:
                raise FailedPrecondition(f"{over_limit}, and the {primary.tier} model is the only one here")
            stream = fallback.stream(messages, max_tokens, temperature, deadline=deadline)
            return await _started(Route(fallback.tier, fallback.name, f"fallback: {over_limit}"), stream)
        usual = "remote endpoint configured" if primary.tier == "remote" else "embedded default"
        stream = primary.stream(messages, max_tokens, temperature, deadline=deadline)
        if fallback is None:
            return await _started(Route(primary.tier, primary.name, usual), stream)
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
        stream = fallback.stream(messages, max_tokens, temperature, deadline=deadline)
        return await _started(Route(fallback.tier, fallback.name, f"fallback: {reason}"), stream)


async def _started(
    route: Route, stream: AsyncGenerator[Delta, None]
) -> tuple[Route, AsyncGenerator[Delta, None]]:
    """The route and its stream once its first delta has come: a turn the model refuses (shed for
    load, say) fails before its route is sent."""
    try:
        first = await anext(stream)
    except StopAsyncIteration:
        return route, _empty()
    return route, _prepend(first, stream)


async def _prepend(first: Delta, rest: AsyncGenerator[Delta, None]) -> AsyncGenerator[Delta, None]:
    try:
        yield first
        async for delta in rest:
            yield delta
    finally:
        await rest.aclose()  # now, not when the collector finds it: a closed reply stops its model


async def _empty() -> AsyncGenerator[Delta, None]:
    return
    yield
