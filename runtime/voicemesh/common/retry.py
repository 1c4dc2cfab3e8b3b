"""Retrying a server-streaming call, only while that is safe: before its first response.

Failures are gRPC errors: a call's own, or one the gateway relays from a downstream (hop named),
which carries ``code()`` the same way.

A stream that has not answered yet has had no effect the caller saw, so it can be started again;
one that has answered cannot, or the caller would see the start twice. Waits grow exponentially
with full jitter (a random wait up to the exponential cap, so clients that failed together do not
retry together), honour the server's ``grpc-retry-pushback-ms``, and never outlast the deadline.

Each attempt is closed when it ends, early included, so its call is cancelled then and there (see
``voicemesh.common.calls.responses``); a reader that may stop early closes this stream the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc

T = TypeVar("T")
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})


@dataclass(frozen=True)
class RetryPolicy:
    # Five attempts, waits growing from 0.25 s to 2 s: together up to about 4 s, long enough to ride
    # out a restart of the one gateway a client knows.
    attempts: int = 5  # in all, the first one included
    base_s: float = 0.25
    cap_s: float = 2.0

    def backoff(self, retry: int) -> float:
        return random.uniform(0, min(self.cap_s, self.base_s * 2**retry))


def pushback_s(error: grpc.aio.AioRpcError) -> float | None:
    """The server's own word on when to retry (None: no word; a negative value means never)."""
    trailers: Any = error.trailing_metadata() or ()  # grpc-stubs types it too narrowly to unpack
    for key, value in trailers:
        if key == "grpc-retry-pushback-ms":
            try:
                return int(value) / 1000
            except ValueError:
                return -1.0
    return None


async def retrying_stream(
    start: Callable[[], AsyncGenerator[T, None]],
    policy: RetryPolicy,
    deadline_at: float | None = None,
) -> AsyncGenerator[T, None]:
    """Items of ``start()``'s stream; a failure before the first item starts it again, if allowed."""
    retry = 0
    while True:
        answered = False
        try:
            async with contextlib.aclosing(start()) as items:
                async for item in items:
                    answered = True
                    yield item
            return
        except grpc.RpcError as error:
            code = error.code() if callable(getattr(error, "code", None)) else None
            if answered or code not in RETRYABLE or retry + 1 >= policy.attempts:
                raise
            wait = policy.backoff(retry)
            pushback = pushback_s(error) if isinstance(error, grpc.aio.AioRpcError) else None
            if pushback is not None:
                if pushback < 0:
                    raise
                wait = max(wait, pushback)
            if deadline_at is not None and time.monotonic() + wait >= deadline_at:
                raise
            await asyncio.sleep(wait)
            retry += 1
