"""Channels to the STT, core and TTS services, each call guarded by a circuit breaker per replica.

A breaker (pybreaker) counts the calls that fail the way a sick service fails: UNAVAILABLE,
DEADLINE_EXCEEDED, INTERNAL, UNKNOWN, DATA_LOSS. After ``fail_max`` of them in a row it opens, and
calls go to the service's other replicas; with none left they fail at once with UNAVAILABLE naming
the service, instead of each waiting on a dead peer.
After ``reset_timeout_s``, or once the replica is connected anew after it began to fail (a
restarted process), a call is let through (half-open); its success closes the breaker.
A caller's own mistakes (INVALID_ARGUMENT …) are not failures; a call its caller cancelled (a
barge-in, a hang-up) is neither a failure nor a success: it says nothing about the service.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import pybreaker

from voicemesh.common.components import BACKENDS
from voicemesh.common.limits import MAX_MESSAGE_BYTES
from voicemesh.common.metrics import BREAKER_STATE
from voicemesh.common.pump import StreamClosed
from voicemesh.common.supervise import supervised
from voicemesh.gateway.config import GatewaySettings
from voicemesh.gateway.deadlines import Deadline
from voicemesh.gateway.throttle import ConcurrencyLimit
from voicemesh.rpc.status import RelayedStatus
from voicemesh.rpc.tls import mesh_channel
from voicemesh.v1 import (
    core_pb2_grpc,
    retrieval_pb2_grpc,
    speech_to_text_pb2_grpc,
    text_to_speech_pb2_grpc,
    user_data_pb2_grpc,
)

CHANNEL_OPTIONS: list[tuple[str, object]] = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    # gRPC backs off reconnecting up to 120 s; a restarted pod should be found within seconds.
    ("grpc.max_reconnect_backoff_ms", 2000),
    # A dns:/// target (a headless Service) resolves to every pod: spread calls over all of them,
    # not just the first address. The servers' max connection age makes clients resolve again.
    ("grpc.service_config", json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})),
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
SERVICES = {component.name: component.services[0] for component in BACKENDS}
log = logging.getLogger(__name__)


# What gRPC itself writes when a connection fails: addresses and TLS internals, for the operator's
# log, not the caller (REVIEW: pod IPs in public statuses).
_TRANSPORT = re.compile(
    r"ipv[46]:|unix:|dns:|backends failing|failed to connect|Socket closed|Connection refused|"
    r"Internal error from Core|Stream removed|handshake|Connection reset|Broken pipe",
    re.IGNORECASE,
)


def caller_safe(service: str, details: str) -> str:
    """A downstream's own message as it is; one of gRPC's transport messages logged and replaced."""
    if not _TRANSPORT.search(details):
        return details
    log.warning("%s: %s", service, details)
    return "not reachable right now; retry shortly"


class _CallerDeadline(Exception):
    """A downstream call ran out of the caller's own deadline."""


def _not_a_failure(exc: BaseException) -> bool:
    return not (isinstance(exc, grpc.aio.AioRpcError) and exc.code() in FAILURE_CODES)


def replica_addresses(target: str) -> list[str]:
    """A static list of replicas ("a:1,b:2" or gRPC's "ipv4:a:1,b:2") apart; any other target whole."""
    listed = target.removeprefix("ipv4:")
    return [a.strip() for a in listed.split(",") if a.strip()] if "," in listed else [target]


@dataclass
class Replica:
    address: str
    channel: grpc.aio.Channel
    stub: Any
    breaker: pybreaker.CircuitBreaker
    opened_at: float = 0.0  # monotonic time its breaker last opened
    failing_since: float = 0.0  # monotonic time of the first failure in the current streak
    connected_at: float = 0.0  # monotonic time the channel last became READY

    def lets_through(self) -> bool:
        """Closed or half-open; or open, and either past its reset timeout or connected anew since
        it began to fail (a restarted replica): then the next call is a trial, half-open. A restart
        so is found within the channel's reconnect backoff, not a whole reset timeout later, while
        a replica that fails on a live connection waits out the timeout."""
        if self.breaker.current_state != pybreaker.STATE_OPEN:
            return True
        if time.monotonic() >= self.opened_at + self.breaker.reset_timeout:
            return True  # pybreaker makes the call its half-open trial itself
        ready = self.channel.get_state(try_to_connect=True) == grpc.ChannelConnectivity.READY
        if ready and self.connected_at > self.failing_since:
            self.breaker.half_open()
            return True
        return False

    async def watch(self) -> None:
        """Note each time the connection comes up: a breaker opened by a dead process gets its
        trial as soon as the process is back."""
        state = self.channel.get_state(try_to_connect=True)
        while True:
            if state == grpc.ChannelConnectivity.READY:
                self.connected_at = time.monotonic()
            await self.channel.wait_for_state_change(state)
            state = self.channel.get_state(try_to_connect=True)

    def report(self, error: BaseException | None) -> None:
        """Tell the breaker how a call went, after it went: pybreaker's own rules move it then."""

        def outcome() -> None:
            if error is not None:
                raise error

        # It re-raises the call's error (the caller has it already), and refuses a report while open.
        with contextlib.suppress(Exception):
            self.breaker.call(outcome)


class Replicas(pybreaker.CircuitBreakerListener):
    """One service's replicas, each with its own breaker, taken in turn; open ones are skipped.

    A static address list gets a channel and a breaker per replica, so one dead replica is routed
    around while the others serve. A single target (host:port, or dns:/// with gRPC's round_robin)
    is one channel and one breaker.
    """

    def __init__(
        self,
        service: str,
        target: str,
        make_stub: Callable[[grpc.aio.Channel], Any],
        settings: GatewaySettings,
        on_health: Callable[[str, bool], None],
    ) -> None:
        self.service = service
        self._on_health = on_health
        self.replicas = []
        for address in replica_addresses(target):
            channel = mesh_channel(address, settings.mesh_tls_dir(), CHANNEL_OPTIONS)
            breaker = pybreaker.CircuitBreaker(
                fail_max=settings.breaker_fail_max,
                reset_timeout=settings.breaker_reset_timeout_s,
                exclude=[_not_a_failure],
                listeners=[self],
                name=address,
                throw_new_error_on_trip=False,  # the call that trips it keeps its own status
            )
            self.replicas.append(Replica(address, channel, make_stub(channel), breaker))
            BREAKER_STATE.labels(service, address).set(0)
        self._next = 0

    def failure(self, cb: pybreaker.CircuitBreaker, exc: BaseException) -> None:
        if cb.fail_counter == 1:  # counted already: this failure begins a streak
            self._replica(cb).failing_since = time.monotonic()

    def state_change(
        self, cb: pybreaker.CircuitBreaker, old: object, new: pybreaker.CircuitBreakerState
    ) -> None:
        BREAKER_STATE.labels(self.service, cb.name or "?").set(STATE_VALUES[new.name])
        if new.name == pybreaker.STATE_OPEN:
            self._replica(cb).opened_at = time.monotonic()
        # ``cb`` still reports its old state while it tells listeners about the new one.
        states = [new.name if r.breaker is cb else r.breaker.current_state for r in self.replicas]
        serving = any(state != pybreaker.STATE_OPEN for state in states)
        self._on_health(self.service, serving)

    def _replica(self, cb: pybreaker.CircuitBreaker) -> Replica:
        return next(r for r in self.replicas if r.breaker is cb)

    @contextmanager
    def pick(self) -> Iterator[Replica]:
        """The next replica whose breaker lets a call through, with the call's outcome counted."""
        count = len(self.replicas)
        start, self._next = self._next, (self._next + 1) % count
        for offset in range(count):
            replica = self.replicas[(start + offset) % count]
            if not replica.lets_through():
                continue
            try:
                yield replica
            except (asyncio.CancelledError, GeneratorExit, StreamClosed):
                raise  # its caller gave up on it: no word on the replica either way
            except BaseException as exc:
                replica.report(exc)
                raise
            replica.report(None)
            return
        worst = max(r.breaker.fail_counter for r in self.replicas)
        raise RelayedStatus(
            grpc.StatusCode.UNAVAILABLE,
            f"{self.service}: circuit open after {worst} failures in a row"
            + (f" on all {count} replicas" if count > 1 else "")
            + f"; the next try goes through within {self.replicas[0].breaker.reset_timeout:g}s",
        )


class CoreStub(core_pb2_grpc.CoreServiceStub):
    """The core's services on one channel: replies, and (as ``users``) user data."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        super().__init__(channel)  # type: ignore[no-untyped-call]  # generated, unannotated
        self.users = user_data_pb2_grpc.UserDataServiceStub(channel)


@dataclass
class Downstream:
    services: dict[str, Replicas]
    limits: dict[str, ConcurrencyLimit]
    watchers: list[asyncio.Task[None]]  # one per replica, noting its reconnects; close() ends them

    @classmethod
    def connect(
        cls, settings: GatewaySettings, on_health: Callable[[str, bool], None] | None = None
    ) -> Downstream:
        """Channels to the targets the settings name, with their breakers and concurrency limits;
        called in the event loop, which runs a watcher per replica until ``close``.

        ``on_health(service, serving)`` hears a service go down (every breaker open) and up.
        """
        health = on_health or (lambda _service, _serving: None)
        stubs = {
            "stt": (settings.stt_target, speech_to_text_pb2_grpc.SpeechToTextServiceStub),
            "core": (settings.core_target, CoreStub),
            "tts": (settings.tts_target, text_to_speech_pb2_grpc.TextToSpeechServiceStub),
            "rag": (settings.rag_target, retrieval_pb2_grpc.RetrievalServiceStub),
        }
        services = {
            name: Replicas(name, target, stub, settings, health) for name, (target, stub) in stubs.items()
        }
        # Calls in flight per service (an STT call is a whole stream), and how many more may wait.
        most = {
            "stt": settings.max_stt_streams,
            "core": settings.max_core_calls,
            "tts": settings.max_tts_calls,
            "rag": settings.max_rag_calls,
        }
        limits = {
            name: ConcurrencyLimit(name, most[name], settings.max_queued_calls, settings.max_queue_wait_s)
            for name in services
        }
        watchers = [
            asyncio.create_task(supervised(f"watch {replica.address}", replica.watch, 1.0))
            for replicas in services.values()
            for replica in replicas.replicas
        ]
        return cls(services, limits, watchers)

    @asynccontextmanager
    async def guard(
        self, service: str, deadline: Deadline | None = None, *, slot: bool = True
    ) -> AsyncIterator[Any]:
        """One call to ``service``: a concurrency slot, a replica whose breaker is closed (its stub
        is what this yields), and the call's failure relayed with the hop named. Calls that do no
        model work (turn records, user data) take no slot, so replies cannot starve them.

        A call that runs out of a deadline its caller chose is not the service's fault and does not
        count against its breaker; one that runs out of the server's default budget does.
        """
        caller_deadline = deadline is not None and deadline.from_caller
        try:
            async with self.limits[service].slot() if slot else contextlib.nullcontext():
                with self.services[service].pick() as replica:
                    try:
                        yield replica.stub
                    except grpc.aio.AioRpcError as exc:
                        if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED and caller_deadline:
                            raise _CallerDeadline from exc
                        raise
        except _CallerDeadline:
            raise RelayedStatus(
                grpc.StatusCode.DEADLINE_EXCEEDED, f"{service}: ran out of the caller's deadline"
            ) from None
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                raise RelayedStatus(exc.code(), f"{service}: ran out of the time allowed for it") from None
            raise RelayedStatus(
                exc.code(), f"{service}: {caller_safe(service, exc.details() or '')}"
            ) from None

    async def close(self) -> None:
        for watcher in self.watchers:
            watcher.cancel()
        await asyncio.gather(*self.watchers, return_exceptions=True)
        for replicas in self.services.values():
            for replica in replicas.replicas:
                await replica.channel.close(grace=None)
