"""Nothing stuck: callers who hang up, the gateway's own overload and a dying STT never lock the
mesh up or end a conversation without a precise status. Every test runs real processes."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from conftest import GatedModel
from prometheus_client import REGISTRY

from voicemesh.client.cli import Printer
from voicemesh.client.live import RATE_HZ, LiveCall
from voicemesh.common.audio import PcmFormat
from voicemesh.common.blocking import BlockingPool
from voicemesh.common.components import CORE, GATEWAY, STT
from voicemesh.common.metrics import scrape
from voicemesh.common.samples import float_to_pcm16
from voicemesh.rpc.launcher import (
    Mesh,
    Process,
    free_port,
    gateway_channel,
    service_env,
    start_service,
    stop_processes,
    wait_serving,
)
from voicemesh.rpc.provision import LocalAuthority
from voicemesh.stt.events import FinalTranscript, PartialTranscript, StreamOptions
from voicemesh.v1 import audio_pb2, user_data_pb2, user_data_pb2_grpc
from voicemesh.v1 import gateway_pb2 as pb
from voicemesh.v1 import gateway_pb2_grpc as pb_grpc
from voicemesh.v1 import speech_to_text_pb2 as stt_pb
from voicemesh.v1 import text_to_speech_pb2_grpc as tts_grpc

LONG_STORY = "Tell me a long story about a brave knight and a dragon."
SLOTS = ("stt", "core", "tts")


def silence(seconds: float) -> bytes:
    return b"\0\0" * int(seconds * RATE_HZ)


def in_flight(metrics: dict[str, float]) -> dict[str, float]:
    """The gateway's downstream slots in use and calls waiting for one, by service."""
    return {
        f"{kind} {service}": metrics.get(f'voicemesh_downstream_{kind}{{service="{service}"}}', -1.0)
        for service in SLOTS
        for kind in ("in_flight", "queued")
    }


async def slots_free(gateway: Process, within_s: float) -> dict[str, float]:
    """Poll the gateway's slot gauges until all are zero, for at most ``within_s``; the last reading."""
    deadline = time.monotonic() + within_s
    while True:
        gauges = in_flight(await asyncio.to_thread(scrape, gateway.metrics))
        if all(value == 0 for value in gauges.values()) or time.monotonic() > deadline:
            return gauges
        await asyncio.sleep(0.05)


# These tests take more turns a minute than one person would; the rate limits are tested apart.
UNLIMITED = {"limit_stt_per_min": 10_000, "limit_llm_per_min": 10_000, "limit_tts_per_min": 10_000}


async def start_mesh(tmp_path: Path, **settings: dict[str, object]) -> Mesh:
    settings["gateway"] = {**UNLIMITED, **settings.get("gateway", {})}
    mesh = Mesh.on_free_ports(settings=settings, log_dir=tmp_path)
    await mesh.start()
    return mesh


def process(mesh: Mesh, name: str) -> Process:
    return next(p for p in mesh.processes if p.name == name)


def converse_requests(
    pcm: bytes, *, speak: bool, chunks: int | None = None
) -> AsyncIterator[pb.ConverseRequest]:
    """A whole recording as fast as the gateway takes it (or only its first ``chunks`` chunks, then
    the caller waits on the open stream)."""

    async def requests() -> AsyncIterator[pb.ConverseRequest]:
        audio = audio_pb2.AudioFormat(encoding=audio_pb2.AUDIO_ENCODING_LINEAR16, sample_rate_hz=RATE_HZ)
        config = pb.ConverseConfig(audio_format=audio, reply=pb.ReplyConfig(synthesize_audio=speak))
        yield pb.ConverseRequest(config=config)
        step = RATE_HZ // 10 * 2
        for n, offset in enumerate(range(0, len(pcm), step)):
            if chunks is not None and n >= chunks:
                await asyncio.Event().wait()  # the caller goes quiet, and then away
            yield pb.ConverseRequest(audio_content=pcm[offset : offset + step])

    return requests()


async def ask_first_token_s(gateway: str, text: str = "Say hello.") -> float:
    """Seconds from asking to the reply's first token (a fresh user, so no cached reply)."""
    async with gateway_channel(gateway) as channel:
        stub = pb_grpc.GatewayServiceStub(channel)
        started = time.monotonic()
        call = stub.Ask(pb.AskRequest(text=text, user_id=f"probe-{time.monotonic_ns()}"), timeout=30)
        async for event in call:
            if event.WhichOneof("event") == "reply_text_delta":
                call.cancel()
                return time.monotonic() - started
    raise AssertionError("the reply had no text")


@pytest.mark.timeout(300)
async def test_callers_who_hang_up_mid_reply_release_every_slot(tmp_path: Path, speak) -> None:  # type: ignore[no-untyped-def]
    question = speak(LONG_STORY).pcm
    # Forty first tokens at once are more than 2 cores read within the core's 3 s; this test is of
    # slots given back, not of the core's capacity (tests/test_crowd.py), so its core waits longer.
    mesh = await start_mesh(tmp_path, core={"llm_queue_wait_s": 60})
    try:
        gateway = process(mesh, "gateway")

        async def hang_up_when_the_reply_starts(channel: grpc.aio.Channel) -> str:
            call = pb_grpc.GatewayServiceStub(channel).Converse(converse_requests(question, speak=True))
            async for event in call:
                kind = event.WhichOneof("event")
                if kind in ("reply_text_delta", "reply_audio"):
                    call.cancel()
                    return "reply"
                if kind == "turn_failed":  # the core's queue is full: refused at once, and said so
                    call.cancel()
                    return (
                        f"turn_failed {grpc.StatusCode.RESOURCE_EXHAUSTED.value[0] == event.turn_failed.code}"
                    )
            return "nothing"

        async with gateway_channel(mesh.gateway) as channel:
            outcomes = await asyncio.gather(*(hang_up_when_the_reply_starts(channel) for _ in range(40)))
        assert set(outcomes) <= {"reply", "turn_failed True"} and outcomes.count("reply") >= 16, outcomes
        assert await ask_first_token_s(mesh.gateway) < 2.0  # served at once: nothing left holding slots
        gauges = await slots_free(gateway, within_s=1.0)
        assert all(value == 0 for value in gauges.values()), gauges
    finally:
        await mesh.stop()


@pytest.mark.timeout(300)
async def test_a_reply_cancelled_while_it_waits_to_send_gives_its_core_call_back_at_once(
    tmp_path: Path,
) -> None:
    """A turn whose caller stops reading (a full stream, a speculative turn held back) is cancelled
    while it waits to send, not while it reads the core. Its core call must end there and then: the
    gateway's slot freed and the core's decoding stopped, not whenever the garbage collector gets to
    the stream the turn left suspended (the gateway's CI once saw a core slot held past a second)."""
    from voicemesh.gateway.config import GatewaySettings
    from voicemesh.gateway.deadlines import Deadline
    from voicemesh.gateway.downstream import Downstream
    from voicemesh.gateway.server import build_runner
    from voicemesh.gateway.turns import Turn, TurnOutput

    core = await start_service(CORE, service_env("core"), 180, log=tmp_path / "core.log")
    authority = LocalAuthority.default().ensure()
    settings = GatewaySettings.load(
        port=0,
        core_target=core.address,
        tls_dir=str(authority.tls_dir("gateway")),
        jwks_file=str(authority.jwks),
        api_keys_file=str(authority.api_keys),
    )
    downstream = Downstream.connect(settings)
    try:
        runner = build_runner(settings, downstream)
        stuck = asyncio.Event()

        async def caller_not_reading(event: object) -> None:
            if isinstance(event, str):  # the reply's first text: the caller's stream is full
                stuck.set()
                await asyncio.Event().wait()

        turn = Turn(
            LONG_STORY,
            "stuck-session",
            "stuck-request",
            pb.ReplyConfig(max_sentences=50),
            Deadline(time.monotonic() + 120),
            retrieval=pb.RetrievalConfig(off=True),
        )
        task = asyncio.create_task(runner.run(turn, TurnOutput(caller_not_reading)))
        await asyncio.wait_for(stuck.wait(), 60)
        gateway_slot = {"service": "core"}
        assert REGISTRY.get_sample_value("voicemesh_downstream_in_flight", gateway_slot) == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task  # the task, and all it held, is still referenced here: nothing is collected
        assert REGISTRY.get_sample_value("voicemesh_downstream_in_flight", gateway_slot) == 0
        given_up = time.monotonic() + 1.0
        while (await asyncio.to_thread(scrape, core.metrics))["voicemesh_llm_sequences"] != 0:
            assert time.monotonic() < given_up, "the core still decodes a reply nobody reads"
            await asyncio.sleep(0.05)
    finally:
        await downstream.close()
        await stop_processes([core])


@pytest.mark.timeout(300)
async def test_callers_who_hang_up_mid_upload_release_every_slot(tmp_path: Path, speak) -> None:  # type: ignore[no-untyped-def]
    question = speak(LONG_STORY).pcm
    mesh = await start_mesh(tmp_path)
    try:
        gateway = process(mesh, "gateway")

        async def hang_up_mid_upload(channel: grpc.aio.Channel) -> None:
            call = pb_grpc.GatewayServiceStub(channel).Converse(
                converse_requests(question, speak=True, chunks=12)
            )
            reading = asyncio.create_task(anext(aiter(call)))  # the stream is open and listening ...
            await asyncio.sleep(1.5)
            call.cancel()  # ... and the caller goes away with the sentence half said
            await asyncio.gather(reading, return_exceptions=True)

        async with gateway_channel(mesh.gateway) as channel:
            await asyncio.gather(*(hang_up_mid_upload(channel) for _ in range(40)))
        assert await ask_first_token_s(mesh.gateway) < 2.0
        gauges = await slots_free(gateway, within_s=1.0)
        assert all(value == 0 for value in gauges.values()), gauges
    finally:
        await mesh.stop()


async def gauge_reads(gateway: Process, name: str, value: float, within_s: float = 30) -> None:
    async with asyncio.timeout(within_s):
        while (await asyncio.to_thread(scrape, gateway.metrics)).get(name) != value:  # noqa: ASYNC110
            await asyncio.sleep(0.05)


@pytest.mark.timeout(300)
async def test_a_turn_the_gateway_cannot_serve_fails_alone_and_the_stream_goes_on(  # type: ignore[no-untyped-def]
    tmp_path: Path, speak_trimmed
) -> None:
    """One core slot and one place in its queue: ana's reply holds the slot (its model waits) and
    ben's waits for it, so cy's turn is refused with its own turn_failed event; cy's stream then
    serves its next turn, and every turn is in its user's history, the refused one with the reason."""
    question = float_to_pcm16(speak_trimmed("What is the capital of France?"))
    async with GatedModel() as model:
        mesh = await start_mesh(
            tmp_path,
            core={"openai_base_url": model.url, "openai_model": "gated", "local_fallback": "false"},
            gateway={"max_core_calls": 1, "max_queued_calls": 1, "max_queue_wait_s": 60},
        )
        try:
            gateway = process(mesh, "gateway")
            async with gateway_channel(mesh.gateway) as channel:
                calls = {
                    user: LiveCall(channel, pb.ConverseConfig(user_id=user, no_barge_in=True))
                    for user in ("ana", "ben", "cy")
                }
                ana, ben, cy = calls.values()
                for call in calls.values():
                    await call.__aenter__()
                ana.say(silence(0.3) + question)
                await gauge_reads(gateway, 'voicemesh_downstream_in_flight{service="core"}', 1)
                ben.say(silence(0.3) + question)
                await gauge_reads(gateway, 'voicemesh_downstream_queued{service="core"}', 1)
                cy.say(silence(0.3) + question)
                refused = await cy.wait(lambda h: h.kind == "turn_failed", timeout_s=30)
                assert refused.turn == 0
                assert refused.response.turn_failed.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
                assert refused.response.turn_failed.message.startswith("core: 1 calls in progress")
                model.open = True
                model.release()
                for call in (ana, ben):
                    await call.wait(lambda h: h.kind == "turn_done", timeout_s=60)
                cy.say(silence(0.5) + question)
                done = await cy.wait(lambda h: h.kind == "turn_done", timeout_s=60)
                assert done.turn == 1 and done.response.turn_done.reply_text
                assert not cy.of("turn_done", 0)
                for call in calls.values():
                    await call.finish(tail_s=0.2)
                users = user_data_pb2_grpc.UserDataServiceStub(channel)
                history = {}
                for user in calls:
                    for _ in range(50):  # records land in the background
                        data = await users.GetUserData(user_data_pb2.GetUserDataRequest(user_id=user))
                        if len(data.turns) == (2 if user == "cy" else 1):
                            break
                        await asyncio.sleep(0.1)
                    history[user] = list(data.turns)
            assert [len(history[u]) for u in calls] == [1, 1, 2]
            failed, served = history["cy"]
            assert failed.failure.startswith("RESOURCE_EXHAUSTED: core: ") and not failed.reply_text
            assert served.reply_text and not served.failure
        finally:
            await mesh.stop()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["stopped", "killed"])
async def test_streams_whose_stt_goes_away_mid_write_report_unavailable_naming_the_hop(  # type: ignore[no-untyped-def]
    tmp_path: Path, speak_trimmed, how: signal.Signals
) -> None:
    """Eight streams write fast to one STT replica when it is stopped at once (no grace) or killed:
    each ends UNAVAILABLE with the hop named, never INTERNAL. (grpc-aio reports a write that races the
    end of a call as INTERNAL, over the real status, on the gateway's hop and on the caller's.)"""
    speech = float_to_pcm16(speak_trimmed("What is the tallest mountain in the world?"))
    stt_settings = {"drain_delay_s": 0, "grace_s": 0}
    stt = await start_service(STT, service_env("stt", **stt_settings), 180, log=tmp_path / "stt.log")
    core = await start_service(CORE, service_env("core"), 180, log=tmp_path / "core.log")
    gateway = await start_service(
        GATEWAY,
        service_env("gateway", stt_target=stt.address, core_target=core.address, tts_target="127.0.0.1:1"),
        120,
        log=tmp_path / "gateway.log",
    )
    try:
        await wait_serving(gateway.address, 60)
        async with gateway_channel(gateway.address) as channel:
            calls = [LiveCall(channel, pb.ConverseConfig(), speed=8) for _ in range(8)]
            for call in calls:
                await call.__aenter__()
                call.say((silence(0.2) + speech) * 12)
            await asyncio.gather(*(c.wait(lambda h: h.kind == "speech_started") for c in calls))
            stt.proc.send_signal(how)
            outcomes = []
            for call in calls:
                try:
                    await call.finish(timeout_s=30)
                    outcomes.append("OK")
                except grpc.aio.AioRpcError as error:
                    outcomes.append(f"{error.code().name}: {error.details()}")
        assert all(o.startswith("UNAVAILABLE: stt: ") for o in outcomes), outcomes
    finally:
        await stop_processes([gateway, core, stt])


def error_lines(mesh: Mesh) -> list[str]:
    lines = []
    for running in mesh.processes:
        assert running.log is not None
        text = running.log.read_text(errors="replace")
        lines += [
            f"{running.name}: {line}"
            for line in text.splitlines()
            if " ERROR " in line or "Traceback" in line
        ]
    return lines


@pytest.mark.timeout(600)
async def test_two_hundred_barge_ins_leave_no_error_and_no_model_work(  # type: ignore[no-untyped-def]
    tmp_path: Path, speak_trimmed, otlp_collector
) -> None:
    """Speak, and speak again as soon as the reply starts, 200 times on one stream, with every service
    tracing: no ERROR line in any log (OpenTelemetry's "Failed to detach context" among them), and
    afterwards no reply still running in the core."""
    question = float_to_pcm16(speak_trimmed("Tell me about the sea."))
    tracing = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp_collector.port}",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }
    mesh = Mesh.on_free_ports(settings={"gateway": UNLIMITED}, env=tracing, log_dir=tmp_path)
    await mesh.start()
    try:
        config = pb.ConverseConfig(endpointing=stt_pb.Endpointing(min_silence_ms=200))
        async with (
            gateway_channel(mesh.gateway) as channel,
            LiveCall(channel, config, speed=4) as call,
        ):
            call.say(silence(0.2) + question)
            for turn in range(200):
                await call.wait(lambda h, t=turn: h.kind == "reply_text_delta" and h.turn == t, timeout_s=60)
                call.say(question)  # over the reply: it is interrupted
            await call.wait(lambda h: h.kind == "turn_done" and h.turn == 200, timeout_s=60)
            await call.finish(tail_s=0.2)
        interrupted = {h.turn for h in call.of("interrupted")}
        assert len(interrupted) >= 190, len(interrupted)  # a reply may end before speech reaches it
        core = process(mesh, "core")
        async with asyncio.timeout(5):
            while (await asyncio.to_thread(scrape, core.metrics)).get(  # noqa: ASYNC110
                'voicemesh_active_rpcs{method="Core/Respond"}'
            ):
                await asyncio.sleep(0.1)
        stopped = (await asyncio.to_thread(scrape, core.metrics)).get(
            'voicemesh_work_stopped_total{kind="llama"}', 0
        )
        assert stopped >= 150  # the interrupted replies' generation was stopped, not run to its end
        assert await ask_first_token_s(mesh.gateway) < 2.0
    finally:
        await mesh.stop()
    assert not error_lines(mesh), error_lines(mesh)[:20]


class HungTts(tts_grpc.TextToSpeechServiceServicer):
    """A TTS that takes calls and never answers them: the service hangs."""

    async def StreamingSynthesize(self, request_iterator: Any, context: Any) -> Any:
        await asyncio.Event().wait()
        yield  # pragma: no cover


@pytest.mark.timeout(240)
async def test_a_cancelled_call_neither_closes_nor_trips_a_breaker(tmp_path: Path) -> None:
    """The TTS fails once (its breaker opens), then hangs: the next spoken reply is a trial call, and
    its caller hangs up. That says nothing about the TTS: the breaker must not close on it."""
    tts_port = free_port()
    core = await start_service(CORE, service_env("core", max_tokens=16), 180, log=tmp_path / "core.log")
    gateway = await start_service(
        GATEWAY,
        service_env(
            "gateway",
            core_target=core.address,
            tts_target=f"127.0.0.1:{tts_port}",
            stt_target="127.0.0.1:1",
            breaker_fail_max=1,
            breaker_reset_timeout_s=1,
        ),
        120,
        log=tmp_path / "gateway.log",
    )
    state = f'voicemesh_breaker_state{{replica="127.0.0.1:{tts_port}",service="tts"}}'
    try:
        await wait_serving(gateway.address, 60)
        async with gateway_channel(gateway.address) as channel:
            stub = pb_grpc.GatewayServiceStub(channel)
            spoken = pb.AskRequest(text="Say hi.", reply=pb.ReplyConfig(synthesize_audio=True))
            events = [e.WhichOneof("event") async for e in stub.Ask(spoken, timeout=60)]
            assert "reply_audio_failed" in events  # nothing listens there: UNAVAILABLE, the breaker opens
            assert (await asyncio.to_thread(scrape, gateway.metrics))[state] == 2
            hung = grpc.aio.server()
            tts_grpc.add_TextToSpeechServiceServicer_to_server(HungTts(), hung)
            hung.add_insecure_port(f"127.0.0.1:{tts_port}")
            await hung.start()
            try:
                await asyncio.sleep(2.5)  # past the reset timeout and the channel's reconnect backoff
                call = stub.Ask(spoken, timeout=60)
                async for event in call:
                    if event.WhichOneof("event") == "reply_text_delta":
                        await asyncio.sleep(0.5)  # the trial call to the hung TTS is under way
                        call.cancel()
                        break
                await asyncio.sleep(0.5)
                assert (await asyncio.to_thread(scrape, gateway.metrics))[state] != 0  # not closed
            finally:
                await hung.stop(0)
    finally:
        await stop_processes([gateway, core])


async def ask_in(
    stub: pb_grpc.GatewayServiceStub, session: str, text: str, *, hang_up: bool = False
) -> pb.TurnDone:
    call = stub.Ask(pb.AskRequest(text=text, session_id=session, user_id="ada"), timeout=60)
    async for event in call:
        if hang_up and event.WhichOneof("event") == "reply_text_delta":
            call.cancel()
            return pb.TurnDone()
        if event.WhichOneof("event") == "turn_done":
            return event.turn_done
    raise AssertionError("no turn_done")


@pytest.mark.timeout(180)
async def test_a_reply_the_user_did_not_hear_out_is_no_context_for_the_next(mesh) -> None:  # type: ignore[no-untyped-def]
    session = f"ctx-{time.monotonic_ns()}"
    async with gateway_channel(mesh.gateway) as channel:
        stub = pb_grpc.GatewayServiceStub(channel)
        first = await ask_in(stub, session, "My favourite colour is green.")
        assert first.context_turns == 0
        await ask_in(stub, session, "Tell me a long story about a dragon.", hang_up=True)
        await asyncio.sleep(0.5)  # its record lands
        third = await ask_in(stub, session, "What is my favourite colour?")
    assert third.context_turns == 1  # the first exchange; not the story nobody heard


class DelayProxy:
    """A TCP hop that delays every byte by ``delay_s`` each way: the network between two pods."""

    def __init__(self, target: str, delay_s: float) -> None:
        self.target = target
        self.delay_s = delay_s
        self.address = ""
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> DelayProxy:
        self._server = await asyncio.start_server(self._connect, "127.0.0.1", 0)
        self.address = f"127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        host, port = self.target.rsplit(":", 1)
        upstream_reader, upstream_writer = await asyncio.open_connection(host, int(port))
        await asyncio.gather(
            self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer), return_exceptions=True
        )

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                await asyncio.sleep(max(0.0, due - loop.time()))
                if not data:
                    writer.close()
                    return
                writer.write(data)
                await writer.drain()

        delivering = asyncio.create_task(deliver())
        try:
            while data := await reader.read(65536):
                queue.put_nowait((loop.time() + self.delay_s, data))
        finally:
            queue.put_nowait((loop.time() + self.delay_s, b""))
            await asyncio.gather(delivering, return_exceptions=True)


@pytest.mark.timeout(240)
async def test_speech_after_a_whole_reply_does_not_interrupt_it(tmp_path: Path, speak_trimmed) -> None:  # type: ignore[no-untyped-def]
    """With reply audio off, a reply whose text is all out is not interrupted by the next utterance,
    though its turn still waits a moment for its record: its turn_done comes, and no interrupted."""
    question = float_to_pcm16(speak_trimmed("What is the capital of France?"))
    async with GatedModel() as model:
        model.open = True
        core = await start_service(
            CORE,
            service_env("core", openai_base_url=model.url, openai_model="gated", local_fallback="false"),
            180,
            log=tmp_path / "core.log",
        )
        stt = await start_service(STT, service_env("stt"), 180, log=tmp_path / "stt.log")
        try:
            async with DelayProxy(core.address, delay_s=0.3) as far_core:  # each record takes 0.6 s or more
                gateway = await start_service(
                    GATEWAY,
                    service_env(
                        "gateway",
                        core_target=far_core.address,
                        stt_target=stt.address,
                        tts_target="127.0.0.1:1",
                        record_wait_s=3,
                        preemptive_generation="false",
                    ),
                    120,
                    log=tmp_path / "gateway.log",
                )
                try:
                    async with (
                        gateway_channel(gateway.address) as channel,
                        LiveCall(channel) as call,
                    ):
                        call.say(silence(0.3) + question)
                        await call.wait(lambda h: h.kind == "reply_sentence" and h.turn == 0, timeout_s=60)
                        call.say(question)  # at once: the reply is whole, its record on its way
                        await call.wait(lambda h: h.kind == "speech_started" and h.turn == 1)
                        await call.wait(lambda h: h.kind == "turn_done" and h.turn == 1, timeout_s=60)
                        await call.finish(tail_s=0.2)
                    assert call.of("turn_done", 0) and not call.of("interrupted", 0)
                finally:
                    await stop_processes([gateway])
        finally:
            await stop_processes([core, stt])


# Growth and stale work: what a long-lived stream or session keeps must not grow with its age.


async def test_a_cancelled_decode_still_queued_never_runs() -> None:
    """Whisper cannot be stopped mid-decode, so a stale decode must at least never start: one
    cancelled while it waits for a worker is dropped, and the pool is free for the next stream."""
    pool = BlockingPool(1, "test")
    release, ran = threading.Event(), []
    try:
        running = asyncio.ensure_future(pool.run(release.wait, 30))
        queued = asyncio.ensure_future(pool.run(ran.append, "stale"))
        await asyncio.sleep(0.05)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued  # by now the pool's own future is cancelled too
        release.set()
        assert await running is True
        assert await pool.run(ran.append, "next") is None
        assert ran == ["next"]
    finally:
        release.set()
        pool.shutdown()


async def test_a_recognition_stream_keeps_nothing_for_utterances_that_ended(stt_engine, speak) -> None:  # type: ignore[no-untyped-def]
    """Drafts, agreements and pause decodes are per utterance; a stream that has heard several
    holds none of them once each utterance's final is out."""
    speech = b"".join(speak(text).pcm + silence(1.0) for text in ("Good morning.", LONG_STORY, "Thank you."))
    stream = stt_engine.stream(PcmFormat(16_000, 1), StreamOptions(interim_results=True))

    async def chunks() -> AsyncIterator[bytes]:
        for offset in range(0, len(speech), 3200):
            yield speech[offset : offset + 3200]
            await asyncio.sleep(0.02)  # faster than real time, slow enough for drafts to run

    held_at_finals, partials = [], 0
    async for event in stream.events(chunks()):
        partials += isinstance(event, PartialTranscript)
        if isinstance(event, FinalTranscript):
            held_at_finals.append(stream.held())
    assert partials > 0 and len(held_at_finals) == 3
    assert max(held_at_finals) <= 1  # at most the utterance being heard
    assert stream.held() == 0


def test_the_printer_keeps_reply_audio_only_when_asked(capsys) -> None:  # type: ignore[no-untyped-def]
    """`voicemesh listen` prints for hours: its printer keeps no audio (the replies are written
    per turn); `talk --out` and `ask --out` keep the one reply they save."""
    audio = audio_pb2.SynthesizedAudio(audio_content=b"\0" * 3200, sample_rate_hz=16_000)
    chunk = pb.ConverseResponse(reply_audio=audio)
    printing, saving = Printer(as_json=False), Printer(as_json=False, keep_audio=True)
    for _ in range(100):
        printing(chunk)
        saving(chunk)
    assert len(printing.audio) == 0 and printing.rate == 16_000
    assert len(saving.audio) == 320_000
