"""Retries before the first response only, with jittered backoff, pushback and the deadline obeyed.

Against a real gRPC server whose handler fails the way a restarting or overloaded peer does.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import grpc
import pytest

from voicemesh.common.calls import responses
from voicemesh.common.retry import RetryPolicy, retrying_stream
from voicemesh.v1 import core_pb2 as pb
from voicemesh.v1 import core_pb2_grpc as pb_grpc


class FlakyCore(pb_grpc.CoreServiceServicer):
    """Fails the first ``failures`` calls with ``code``, before or after its first response."""

    def __init__(self, failures: int, code: grpc.StatusCode, after_first: bool = False, pushback_ms: int = 0):
        self.failures, self.code, self.after_first, self.pushback_ms = (
            failures,
            code,
            after_first,
            pushback_ms,
        )
        self.calls: list[float] = []

    async def Respond(
        self, request: pb.RespondRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.RespondResponse]:
        self.calls.append(time.monotonic())
        failing = len(self.calls) <= self.failures
        if failing and self.after_first:
            yield pb.RespondResponse(text_delta="Hel")
        if failing:
            if self.pushback_ms:
                context.set_trailing_metadata((("grpc-retry-pushback-ms", str(self.pushback_ms)),))
            await context.abort(self.code, "not now")
        yield pb.RespondResponse(text_delta="Hello")


async def serve(servicer: FlakyCore) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    pb_grpc.add_CoreServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


async def collect(servicer: FlakyCore, policy: RetryPolicy, deadline_s: float | None = None) -> list[str]:
    server, address = await serve(servicer)
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            stub = pb_grpc.CoreServiceStub(channel)
            deadline_at = time.monotonic() + deadline_s if deadline_s else None
            stream = retrying_stream(
                lambda: responses(stub.Respond(pb.RespondRequest(text="hi"))), policy, deadline_at
            )
            return [r.text_delta async for r in stream]
    finally:
        await server.stop(None)


async def test_a_stream_that_has_not_answered_is_retried_with_growing_jittered_waits() -> None:
    core = FlakyCore(2, grpc.StatusCode.UNAVAILABLE)
    assert await collect(core, RetryPolicy(attempts=3, base_s=0.1, cap_s=1.0)) == ["Hello"]
    assert len(core.calls) == 3
    waits = [b - a for a, b in zip(core.calls, core.calls[1:], strict=False)]
    assert waits[0] <= 0.1 + 0.05 and waits[1] <= 0.2 + 0.05  # full jitter: anywhere up to the cap


async def test_no_retry_once_it_answered_nor_for_a_callers_mistake_nor_past_the_attempts() -> None:
    answered = FlakyCore(1, grpc.StatusCode.UNAVAILABLE, after_first=True)
    with pytest.raises(grpc.aio.AioRpcError):
        await collect(answered, RetryPolicy(attempts=3))
    assert len(answered.calls) == 1
    mistake = FlakyCore(1, grpc.StatusCode.INVALID_ARGUMENT)
    with pytest.raises(grpc.aio.AioRpcError):
        await collect(mistake, RetryPolicy(attempts=3))
    assert len(mistake.calls) == 1
    down = FlakyCore(5, grpc.StatusCode.UNAVAILABLE)
    with pytest.raises(grpc.aio.AioRpcError):
        await collect(down, RetryPolicy(attempts=3, base_s=0.01))
    assert len(down.calls) == 3


async def test_pushback_is_obeyed_and_the_deadline_caps_the_waiting() -> None:
    busy = FlakyCore(1, grpc.StatusCode.RESOURCE_EXHAUSTED, pushback_ms=300)
    assert await collect(busy, RetryPolicy(attempts=2, base_s=0.01)) == ["Hello"]
    assert busy.calls[1] - busy.calls[0] >= 0.3
    late = FlakyCore(1, grpc.StatusCode.RESOURCE_EXHAUSTED, pushback_ms=5000)
    started = time.monotonic()
    with pytest.raises(grpc.aio.AioRpcError):  # waiting 5 s would pass the 1 s deadline: give up now
        await collect(late, RetryPolicy(attempts=2), deadline_s=1.0)
    assert time.monotonic() - started < 0.5 and len(late.calls) == 1
