"""Channels to the STT, core and TTS services, each call guarded by that service's circuit breaker.

A breaker (pybreaker) counts the calls that fail the way a sick service fails: UNAVAILABLE,
DEADLINE_EXCEEDED, INTERNAL, UNKNOWN, DATA_LOSS. After ``fail_max`` of them in a row it opens, and
calls fail at once with UNAVAILABLE naming the service, instead of each waiting on a dead peer.
After ``reset_timeout_s`` one call is let through (half-open); its success closes the breaker.
A caller's own mistakes (INVALID_ARGUMENT …) and cancellations (barge-in) are not failures.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import grpc
import pybreaker

from voicemesh.common.metrics import BREAKER_STATE
from voicemesh.gateway.deadlines import Deadline
from voicemesh.gateway.throttle import ConcurrencyLimit
from voicemesh.rpc.server import MAX_MESSAGE_BYTES
from voicemesh.rpc.status import RelayedStatus
from voicemesh.v1 import core_pb2_grpc, speech_to_text_pb2_grpc, text_to_speech_pb2_grpc

CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    # gRPC backs off reconnecting up to 120 s; a restarted pod should be found within seconds.
    ("grpc.max_reconnect_backoff_ms", 2000),
]
FAILURE_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DATA_LOSS,
    }
)
STATE_VALUES = {pybreaker.STATE_CLOSED: 0, pybreaker.STATE_HALF_OPEN: 1, pybreaker.STATE_OPEN: 2}
# The gRPC service each downstream name stands for: the gateway's health reports each one's breaker.
SERVICES = {
    "stt": "voicemesh.v1.SpeechToTextService",
    "core": "voicemesh.v1.CoreService",
    "tts": "voicemesh.v1.TextToSpeechService",
}


class _CallerDeadline(Exception):
    """A downstream call ran out of the caller's own deadline."""


def _not_a_failure(exc: BaseException) -> bool:
    return not (isinstance(exc, grpc.aio.AioRpcError) and exc.code() in FAILURE_CODES)


@dataclass(frozen=True)
class BreakerSettings:
    fail_max: int = 5
    reset_timeout_s: float = 10.0


@dataclass(frozen=True)
class ConcurrencySettings:
    """Calls in flight per service (an STT call is a whole stream), and how many more may wait."""

    stt: int = 200
    core: int = 16
    tts: int = 16
    queue: int = 32
    max_wait_s: float = 2.0

    def limits(self) -> dict[str, ConcurrencyLimit]:
        return {
            name: ConcurrencyLimit(name, getattr(self, name), self.queue, self.max_wait_s)
            for name in SERVICES
        }


class _StateListener(pybreaker.CircuitBreakerListener):
    def __init__(self, on_change: Callable[[str, bool], None]) -> None:
        self._on_change = on_change

    def state_change(
        self, cb: pybreaker.CircuitBreaker, old: object, new: pybreaker.CircuitBreakerState
    ) -> None:
        name = cb.name or "?"
        BREAKER_STATE.labels(name).set(STATE_VALUES[new.name])
        self._on_change(name, new.name != pybreaker.STATE_OPEN)


@dataclass
class Downstream:
    stt: speech_to_text_pb2_grpc.SpeechToTextServiceStub
    core: core_pb2_grpc.CoreServiceStub
    tts: text_to_speech_pb2_grpc.TextToSpeechServiceStub
    _channels: tuple[grpc.aio.Channel, ...]
    breakers: dict[str, pybreaker.CircuitBreaker] = field(default_factory=dict)
    limits: dict[str, ConcurrencyLimit] = field(default_factory=lambda: ConcurrencySettings().limits())

    @classmethod
    def connect(
        cls,
        stt_target: str,
        core_target: str,
        tts_target: str,
        breaker: BreakerSettings | None = None,
        on_health: Callable[[str, bool], None] | None = None,
        concurrency: ConcurrencySettings | None = None,
    ) -> Downstream:
        """``on_health(service, serving)`` hears each breaker open (False) and close (True)."""
        stt, core, tts = (
            grpc.aio.insecure_channel(t, options=CHANNEL_OPTIONS)
            for t in (stt_target, core_target, tts_target)
        )
        settings = breaker or BreakerSettings()
        listener = _StateListener(on_health or (lambda _service, _serving: None))
        breakers = {
            name: pybreaker.CircuitBreaker(
                fail_max=settings.fail_max,
                reset_timeout=settings.reset_timeout_s,
                exclude=[_not_a_failure],
                listeners=[listener],
                name=name,
                throw_new_error_on_trip=False,  # the call that trips it keeps its own status
            )
            for name in SERVICES
        }
        for name in SERVICES:
            BREAKER_STATE.labels(name).set(0)
        return cls(
            speech_to_text_pb2_grpc.SpeechToTextServiceStub(stt),
            core_pb2_grpc.CoreServiceStub(core),
            text_to_speech_pb2_grpc.TextToSpeechServiceStub(tts),
            (stt, core, tts),
            breakers,
            (concurrency or ConcurrencySettings()).limits(),
        )

    @asynccontextmanager
    async def guard(self, service: str, deadline: Deadline | None = None) -> AsyncIterator[None]:
        """Run one call to ``service`` under its breaker; its failure is relayed with the hop named.

        A call that runs out of a deadline its caller chose is not the service's fault and does not
        count against its breaker; one that runs out of the server's default budget does.
        """
        breaker = self.breakers[service]
        caller_deadline = deadline is not None and deadline.from_caller
        try:
            async with self.limits[service].slot():
                with breaker.calling():
                    try:
                        yield
                    except grpc.aio.AioRpcError as exc:
                        if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED and caller_deadline:
                            raise _CallerDeadline from exc
                        raise
        except _CallerDeadline:
            raise RelayedStatus(
                grpc.StatusCode.DEADLINE_EXCEEDED, f"{service}: ran out of the caller's deadline"
            ) from None
        except pybreaker.CircuitBreakerError:
            raise RelayedStatus(
                grpc.StatusCode.UNAVAILABLE,
                f"{service}: circuit open after {breaker.fail_counter} failures in a row; "
                f"the next try goes through within {breaker.reset_timeout:g}s",
            ) from None
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise RelayedStatus(exc.code(), f"{service}: ran out of the time allowed for it") from None
            raise RelayedStatus(exc.code(), f"{service}: {exc.details()}") from None

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close(grace=None)
