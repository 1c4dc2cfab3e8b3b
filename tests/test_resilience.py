"""Faults injected into real processes: the TTS is killed mid-reply, stays down, and comes back."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import grpc
import pytest
from conftest import GatedModel
from grpc_health.v1 import health_pb2, health_pb2_grpc

from voicemesh.common.components import CORE, GATEWAY, TTS
from voicemesh.common.metrics import scrape
from voicemesh.core.models import bundled_gguf
from voicemesh.rpc.launcher import (
    Process,
    free_port,
    gateway_channel,
    mesh_server_credentials,
    start_service,
    stop_processes,
    wait_serving,
)
from voicemesh.rpc.launcher import service_env as env
from voicemesh.rpc.provision import LocalAuthority
from voicemesh.v1 import gateway_pb2 as pb
from voicemesh.v1 import gateway_pb2_grpc as pb_grpc
from voicemesh.v1 import text_to_speech_pb2_grpc as tts_grpc

TTS_SERVICE = "voicemesh.v1.TextToSpeechService"
RESET_S = 3.0


async def start_tts(port: int) -> Process:
    tts = await start_service(TTS, env("tts", port=port), 120)
    await wait_serving(tts.address, 60)
    return tts


async def ask(stub: pb_grpc.GatewayServiceStub, text: str) -> list[tuple[float, pb.AskResponse]]:
    request = pb.AskRequest(text=text, reply=pb.ReplyConfig(synthesize_audio=True))
    return [(time.monotonic(), event) async for event in stub.Ask(request, timeout=60)]


def kinds(events: list[tuple[float, pb.AskResponse]]) -> list[str]:
    return [event.WhichOneof("event") or "" for _, event in events]


async def tts_health(channel: grpc.aio.Channel) -> int:
    reply = await health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=TTS_SERVICE)
    )
    return int(reply.status)


LOCAL_MODEL = bundled_gguf().stem


@pytest.mark.timeout(240)
async def test_a_dead_tts_costs_the_audio_not_the_answer_and_its_breaker_recovers() -> None:
    tts_port = free_port()
    core = await start_service(CORE, env("core"), 120)
    tts = await start_tts(tts_port)
    gateway = await start_service(
        GATEWAY,
        env(
            "gateway",
            core_target=core.address,
            tts_target=f"127.0.0.1:{tts_port}",
            stt_target="127.0.0.1:1",
            breaker_fail_max=2,
            breaker_reset_timeout_s=RESET_S,
        ),
        120,
    )
    processes = [core, tts, gateway]
    try:
        await wait_serving(gateway.address, 60)
        async with gateway_channel(gateway.address) as channel:
            stub = pb_grpc.GatewayServiceStub(channel)
            await ask(stub, "Say hello.")  # warm: the first reply loads what it needs

            # Kill -9 the TTS once the reply has started to speak.
            request = pb.AskRequest(
                text="Tell me a long story about a dragon.", reply=pb.ReplyConfig(synthesize_audio=True)
            )
            events: list[tuple[float, pb.AskResponse]] = []
            killed_at = 0.0
            async for event in stub.Ask(request, timeout=60):
                events.append((time.monotonic(), event))
                if event.WhichOneof("event") == "reply_audio" and not killed_at:
                    tts.proc.send_signal(signal.SIGKILL)
                    killed_at = time.monotonic()
            seen = kinds(events)
            assert killed_at and "reply_audio_failed" in seen and seen[-1] == "turn_done"
            failed_at, failed = next(
                (t, e) for t, e in events if e.WhichOneof("event") == "reply_audio_failed"
            )
            assert failed_at - killed_at <= 1.0  # a clear status for the audio within 1 s
            assert failed.reply_audio_failed.code == grpc.StatusCode.UNAVAILABLE.value[0]
            assert failed.reply_audio_failed.message.startswith("tts: ")
            assert events[-1][1].turn_done.reply_text.strip()  # the text reply went on to its end

            # The second failure in a row opens the breaker; then calls fail fast, naming it.
            second = await ask(stub, "What is two plus two?")
            assert "reply_audio_failed" in kinds(second) and kinds(second)[-1] == "turn_done"
            third = await ask(stub, "What is two plus two?")
            message = next(e for _, e in third if e.WhichOneof("event") == "reply_audio_failed")
            assert "tts: circuit open" in message.reply_audio_failed.message
            assert kinds(third)[-1] == "turn_done"
            assert await tts_health(channel) == health_pb2.HealthCheckResponse.NOT_SERVING
            metrics = await asyncio.to_thread(scrape, gateway.metrics)
            assert metrics[f'voicemesh_breaker_state{{replica="127.0.0.1:{tts_port}",service="tts"}}'] == 2.0

            # The TTS comes back on its address; after the reset timeout one call goes through,
            # succeeds, and closes the breaker: the next turn speaks again.
            tts = await start_tts(tts_port)
            processes[1] = tts
            await asyncio.sleep(RESET_S)
            back = await ask(stub, "What is two plus two?")
            assert "reply_audio" in kinds(back) and "reply_audio_failed" not in kinds(back)
            assert await tts_health(channel) == health_pb2.HealthCheckResponse.SERVING
    finally:
        await stop_processes(processes, 15)


class StallingModelServer:
    """An OpenAI-compatible endpoint that accepts requests and never answers them."""

    def __init__(self) -> None:
        self.requests = 0
        self.closed: list[float] = []  # when each caller gave up and closed its connection

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        self.requests += 1
        while await reader.read(1024):  # wait for the caller to go away
            pass
        self.closed.append(time.monotonic())
        writer.close()


@pytest.mark.timeout(120)
async def test_a_stalled_core_yields_deadline_exceeded_naming_it_and_is_cancelled() -> None:
    stall = StallingModelServer()
    server = await asyncio.start_server(stall.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    core = await start_service(
        CORE,
        env("core", openai_base_url=f"http://127.0.0.1:{port}/v1", openai_model="stalls"),
        120,
    )
    gateway = await start_service(
        GATEWAY,
        env("gateway", core_target=core.address, tts_target="127.0.0.1:1", stt_target="127.0.0.1:1"),
        120,
    )
    try:
        await wait_serving(gateway.address, 60)
        async with gateway_channel(gateway.address) as channel:
            stub = pb_grpc.GatewayServiceStub(channel)
            started = time.monotonic()
            with pytest.raises(grpc.aio.AioRpcError) as failure:
                async for _ in stub.Ask(pb.AskRequest(text="Hello?"), timeout=2.0):
                    pass
            elapsed = time.monotonic() - started
        assert failure.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert failure.value.details().startswith("core: ")  # the gateway's answer, naming the hop
        assert elapsed <= 2.1
        # The core gave up on the stalled generation: its model request was closed, and its RPC
        # ended as CANCELLED.
        async with asyncio.timeout(5):
            while not stall.closed:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert stall.requests == 1 and stall.closed[0] - started <= 2.5
        metrics = await asyncio.to_thread(scrape, core.metrics)
        assert metrics['voicemesh_rpcs_total{code="CANCELLED",method="Core/Respond"}'] == 1.0
    finally:
        await stop_processes([gateway, core])
        server.close()


async def limited_mesh(**core: object) -> tuple[Process, Process]:
    """A core (with ``core`` settings) behind a gateway whose tenants may have 2 replies a minute."""
    core_process = await start_service(CORE, env("core", **core), 120)
    gateway = await start_service(
        GATEWAY,
        env("gateway", core_target=core_process.address, limit_llm_per_min=2, stt_target="127.0.0.1:1"),
        120,
    )
    await wait_serving(gateway.address, 60)
    return core_process, gateway


@pytest.mark.timeout(180)
async def test_a_tenant_over_its_rate_limit_is_refused_with_retry_after_and_others_are_not() -> None:
    core, gateway = await limited_mesh()
    try:

        async def ask_as(tenant: str, n: int = 0) -> grpc.aio.AioRpcError | None:
            # The tenant is the credential's: a header claiming another changes nothing.
            token = LocalAuthority.default().mint("someone", tenant=tenant, scopes=["service"])
            async with gateway_channel(gateway.address, token=token) as channel:
                stub = pb_grpc.GatewayServiceStub(channel)
                # Each a new question: a reply from the cache costs no model, and no limit refuses it.
                request = pb.AskRequest(text=f"Say hi, number {n}.")
                call = stub.Ask(request, metadata=(("voicemesh-tenant", "bob"),))
                try:
                    async for _ in call:
                        pass
                except grpc.aio.AioRpcError as exc:
                    return exc
                return None

        outcomes = [await ask_as("alice", n) for n in range(6)]  # 3x her limit of 2 a minute
        assert outcomes[:2] == [None, None]
        for refused in outcomes[2:]:
            assert refused is not None and refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "'alice' is over its llm limit of 2" in refused.details()
            trailers = dict(refused.trailing_metadata() or ())
            assert 0 < int(trailers["retry-after"]) <= 60
            assert 0 < int(trailers["grpc-retry-pushback-ms"]) <= 60_000
        assert await ask_as("bob") is None  # another tenant is unaffected
    finally:
        await stop_processes([gateway, core])


@pytest.mark.timeout(180)
async def test_over_its_llm_limit_a_tenant_gets_the_local_model_if_the_usual_is_remote() -> None:
    async with GatedModel("Remote says hello.") as remote:
        remote.open = True
        core, gateway = await limited_mesh(openai_base_url=remote.url, openai_model="big")
        try:
            async with gateway_channel(gateway.address) as channel:
                stub = pb_grpc.GatewayServiceStub(channel)
                routes = []
                for n in range(3):
                    events = [e async for e in stub.Ask(pb.AskRequest(text=f"Say hi, number {n}."))]
                    routes += [e.route for e in events if e.WhichOneof("event") == "route"]
                    assert events[-1].WhichOneof("event") == "turn_done" and events[-1].turn_done.reply_text
        finally:
            await stop_processes([gateway, core])
    assert [(r.tier, r.model) for r in routes] == [
        ("remote", "big"),
        ("remote", "big"),
        ("local", LOCAL_MODEL),
    ]
    assert routes[2].reason.startswith("fallback: tenant 'default' is over its llm limit of 2 per 60s")
    assert remote.requests == 2  # the third never reached the limited tier


@pytest.mark.timeout(120)
async def test_sigterm_reports_not_serving_then_finishes_the_turn_in_flight() -> None:
    core = await start_service(CORE, env("core"), 120)
    gateway = await start_service(
        GATEWAY,
        env("gateway", core_target=core.address, drain_delay_s=1.0, grace_s=20, stt_target="127.0.0.1:1"),
        120,
    )
    try:
        await wait_serving(gateway.address, 60)
        async with gateway_channel(gateway.address) as channel:
            stub = pb_grpc.GatewayServiceStub(channel)
            health = health_pb2_grpc.HealthStub(channel)
            call = stub.Ask(pb.AskRequest(text="Tell me a long story about a dragon."))
            events = [await anext(aiter(call))]  # the turn is under way
            gateway.proc.send_signal(signal.SIGTERM)
            await asyncio.sleep(0.3)
            status = await health.Check(health_pb2.HealthCheckRequest())
            assert status.status == health_pb2.HealthCheckResponse.NOT_SERVING
            events += [event async for event in call]  # ... and it still runs to its end
        assert events[-1].WhichOneof("event") == "turn_done"
        assert events[-1].turn_done.reply_text.strip()
        assert await asyncio.wait_for(gateway.proc.wait(), 30) == 0
    finally:
        await stop_processes([gateway, core])


@pytest.mark.timeout(180)
async def test_a_dead_replica_is_routed_around_by_its_own_breaker() -> None:
    core = await start_service(CORE, env("core"), 120)
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    gateway = await start_service(
        GATEWAY,
        env(
            "gateway",
            core_target=f"{core.address},{dead}",
            breaker_fail_max=2,
            stt_target="127.0.0.1:1",
            tts_target="127.0.0.1:1",
        ),
        120,
    )
    try:
        await wait_serving(gateway.address, 60)
        async with gateway_channel(gateway.address) as channel:
            stub = pb_grpc.GatewayServiceStub(channel)
            for _ in range(6):  # every turn is answered: a try on the dead replica is retried
                events = [e async for e in stub.Ask(pb.AskRequest(text="Say hi."), timeout=60)]
                assert events[-1].WhichOneof("event") == "turn_done"
            request = health_pb2.HealthCheckRequest(service="voicemesh.v1.CoreService")
            status = await health_pb2_grpc.HealthStub(channel).Check(request)
            assert status.status == health_pb2.HealthCheckResponse.SERVING  # one replica is enough
        metrics = await asyncio.to_thread(scrape, gateway.metrics)
        assert metrics[f'voicemesh_breaker_state{{replica="{dead}",service="core"}}'] == 2.0
        assert metrics[f'voicemesh_breaker_state{{replica="{core.address}",service="core"}}'] == 0.0
    finally:
        await stop_processes([gateway, core])


class RefusingTts(tts_grpc.TextToSpeechServiceServicer):
    """A TTS that is up and connected, and fails every call the way an overloaded one does."""

    async def StreamingSynthesize(self, request_iterator: Any, context: Any) -> Any:
        await context.abort(grpc.StatusCode.UNAVAILABLE, "overloaded")
        yield  # pragma: no cover


@pytest.mark.timeout(240)
async def test_a_restarted_replica_is_tried_when_it_is_back_not_a_reset_timeout_later() -> None:
    """An open breaker waits out its reset timeout for a replica that fails on a live connection,
    but tries one that came back on a new connection (a restarted process) at once, even when no
    call looked at it while it was down."""
    tts_port = free_port()
    refusing = grpc.aio.server()
    tts_grpc.add_TextToSpeechServiceServicer_to_server(RefusingTts(), refusing)
    # As the real one listens: TLS with its certificate, mesh clients only.
    refusing.add_secure_port(f"127.0.0.1:{tts_port}", mesh_server_credentials("tts"))
    await refusing.start()
    core = await start_service(CORE, env("core", max_tokens=16), 120)
    gateway = await start_service(
        GATEWAY,
        env(
            "gateway",
            core_target=core.address,
            tts_target=f"127.0.0.1:{tts_port}",
            stt_target="127.0.0.1:1",
            breaker_fail_max=1,
            breaker_reset_timeout_s=120,
        ),
        120,
    )
    processes = [core, gateway]
    state = f'voicemesh_breaker_state{{replica="127.0.0.1:{tts_port}",service="tts"}}'

    def audio_failure(events: list[tuple[float, pb.AskResponse]]) -> str:
        return next((e.reply_audio_failed.message for _, e in events if e.HasField("reply_audio_failed")), "")

    try:
        await wait_serving(gateway.address, 60)
        async with gateway_channel(gateway.address) as channel:
            stub = pb_grpc.GatewayServiceStub(channel)
            assert audio_failure(await ask(stub, "Say hi.")) == "tts: overloaded"  # the breaker opens
            await asyncio.sleep(2.5)
            assert "tts: circuit open" in audio_failure(await ask(stub, "Say hi."))  # same connection

            await refusing.stop(0)
            processes.append(await start_tts(tts_port))  # no call is made while it is away
            await asyncio.sleep(2.5)  # the channel's reconnect backoff
            back = await ask(stub, "Say hi.")
            assert "reply_audio" in kinds(back) and not audio_failure(back)
            assert (await asyncio.to_thread(scrape, gateway.metrics))[state] == 0
    finally:
        await refusing.stop(0)
        await stop_processes(processes, 15)


async def test_ten_thousand_made_up_tenants_are_forgotten_once_their_window_has_passed() -> None:
    from voicemesh.gateway.throttle import RateLimits

    limits = RateLimits({"llm": 20, "stt": 100}, max_wait_s=0.0, window_s=3.0)
    for n in range(10_000):
        await limits.admit(f"made-up-{n}", "stt", "llm")
    assert limits.tracked() == 20_000  # all within one window: each is still counted
    await asyncio.sleep(3.1)
    await limits.admit("real-tenant", "llm")
    assert limits.tracked() == 1
