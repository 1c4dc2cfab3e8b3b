"""Bad input gets a precise status and message, and the server goes on serving."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from voicemesh.rpc.launcher import gateway_channel
from voicemesh.v1 import (
    audio_pb2,
    gateway_pb2,
    gateway_pb2_grpc,
)
from voicemesh.v1 import (
    speech_to_text_pb2 as stt_pb2,
)
from voicemesh.v1 import (
    speech_to_text_pb2_grpc as stt_grpc,
)
from voicemesh.v1 import (
    text_to_speech_pb2 as tts_pb2,
)
from voicemesh.v1 import (
    text_to_speech_pb2_grpc as tts_grpc,
)

INVALID = grpc.StatusCode.INVALID_ARGUMENT
PAGE_TEXT = Path("/usr/share/doc/valgrind/html/faq.html").read_text()[:8000]


def config(rate: int = 16_000, channels: int = 1) -> stt_pb2.StreamingRecognizeRequest:
    fmt = audio_pb2.AudioFormat(
        encoding=audio_pb2.AUDIO_ENCODING_LINEAR16, sample_rate_hz=rate, channels=channels
    )
    return stt_pb2.StreamingRecognizeRequest(config=stt_pb2.RecognitionConfig(audio_format=fmt))


def audio(data: bytes) -> stt_pb2.StreamingRecognizeRequest:
    return stt_pb2.StreamingRecognizeRequest(audio_content=data)


CASES = {
    "wrong sample rate": ([config(rate=1234), audio(b"\0" * 320)], "sample_rate_hz 1234 is out of range"),
    "six channels": ([config(channels=6)], "channels 6 is not supported"),
    "odd byte count": (
        [config(), audio(b"\0" * 3)],
        "audio chunk of 3 bytes is not a whole number of 2-byte frames",
    ),
    "half a stereo frame": ([config(channels=2), audio(b"\0" * 6)], "of 4-byte frames"),
    "empty stream": ([], "the stream ended before any message"),
    "never sends config": ([audio(b"\0" * 320)], "must carry `config`, not `audio_content`"),
    "config twice": ([config(), config()], "`config` may only be sent once"),
    "10 MB chunk": (
        [config(), audio(b"\0" * 10_000_000)],
        "audio chunk of 10000000 bytes is over the 1048576-byte limit",
    ),
}


async def health_ok(channel: grpc.aio.Channel) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("case", sorted(CASES))
async def test_stt_rejects_bad_streams_precisely(stt_channel: grpc.aio.Channel, speak, case: str) -> None:  # type: ignore[no-untyped-def]
    messages, expected = CASES[case]
    stub = stt_grpc.SpeechToTextServiceStub(stt_channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in stub.StreamingRecognize(iter(messages)):
            pass
    assert caught.value.code() == INVALID, caught.value.details()
    assert expected in (caught.value.details() or "")
    # ...and the next, good call is served.
    speech = speak("Hello.")
    responses = [r async for r in stub.StreamingRecognize(iter([config(), audio(speech.pcm)]))]
    assert any(r.WhichOneof("event") == "result" for r in responses)


def raw_stream(channel: grpc.aio.Channel, method: str) -> grpc.aio.StreamStreamMultiCallable:
    return channel.stream_stream(method, request_serializer=lambda b: b, response_deserializer=lambda b: b)


async def test_invalid_utf8_text_is_invalid_argument(tts_channel: grpc.aio.Channel) -> None:
    # Hand-made wire bytes: field 2 (text_delta), length-delimited, holding bytes that are not UTF-8.
    config_bytes = tts_pb2.StreamingSynthesizeRequest(config=tts_pb2.SynthesisConfig()).SerializeToString()
    bad_text = b"\x12\x04\xff\xfe\xfd\xfc"
    call = raw_stream(tts_channel, "/voicemesh.v1.TextToSpeechService/StreamingSynthesize")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in call(iter([config_bytes, bad_text])):
            pass
    assert caught.value.code() == INVALID
    assert "not a valid voicemesh.v1.StreamingSynthesizeRequest message" in (caught.value.details() or "")
    await health_ok(tts_channel)
    stub = tts_grpc.TextToSpeechServiceStub(tts_channel)
    assert [r async for r in stub.Synthesize(tts_pb2.SynthesizeRequest(text="Still here."))]


async def test_unknown_voice_and_bad_output_rate(tts_channel: grpc.aio.Channel) -> None:
    stub = tts_grpc.TextToSpeechServiceStub(tts_channel)
    for synthesis, expected in [
        (tts_pb2.SynthesisConfig(voice="nobody"), "unknown voice 'nobody'; available: en_US-joe-medium"),
        (tts_pb2.SynthesisConfig(sample_rate_hz=100), "sample_rate_hz 100 is out of range"),
    ]:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in stub.Synthesize(tts_pb2.SynthesizeRequest(config=synthesis, text="Hi.")):
                pass
        assert caught.value.code() == INVALID
        assert expected in (caught.value.details() or "")


async def gateway_requests(
    *messages: gateway_pb2.ConverseRequest,
) -> AsyncIterator[gateway_pb2.ConverseRequest]:
    for message in messages:
        yield message


def converse_config(rate: int = 16_000, request_id: str = "") -> gateway_pb2.ConverseRequest:
    fmt = audio_pb2.AudioFormat(sample_rate_hz=rate)
    config = gateway_pb2.ConverseConfig(audio_format=fmt, request_id=request_id)
    return gateway_pb2.ConverseRequest(config=config)


GATEWAY_CASES: dict[str, tuple[list[gateway_pb2.ConverseRequest], str]] = {
    "wrong sample rate": ([converse_config(rate=99)], "sample_rate_hz 99 is out of range"),
    # A request id is echoed in every event and log line: one that forges lines or floods them.
    "request id forging a log line": (
        [converse_config(request_id="x\r\n2026-12-01 INFO gateway [admin] forged")],
        "request_id 'x\\r\\n2026-12-01 INFO gateway [admin] forged' may not contain braces or control",
    ),
    "request id of 10k characters": (
        [converse_config(request_id="r" * 10_000)],
        "request_id of 10000 characters is over the 128 limit",
    ),
    "odd byte count": ([converse_config(), gateway_pb2.ConverseRequest(audio_content=b"\0" * 5)], "5 bytes"),
    "empty stream": ([], "the stream ended before any message"),
    "never sends config": ([gateway_pb2.ConverseRequest(audio_content=b"\0\0")], "must carry `config`"),
    "10 MB chunk": (
        [converse_config(), gateway_pb2.ConverseRequest(audio_content=b"\0" * 10_000_000)],
        "over the 1048576-byte limit",
    ),
}


@pytest.mark.parametrize("case", sorted(GATEWAY_CASES))
async def test_gateway_rejects_bad_streams_precisely(mesh, case: str) -> None:  # type: ignore[no-untyped-def]
    from voicemesh.v1 import gateway_pb2_grpc

    messages, expected = GATEWAY_CASES[case]
    async with gateway_channel(mesh.gateway, options=[("grpc.max_send_message_length", 16 << 20)]) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in stub.Converse(gateway_requests(*messages)):
                pass
        assert caught.value.code() == INVALID, caught.value.details()
        assert expected in (caught.value.details() or "")
        await health_ok(channel)


async def test_gateway_ask_rejects_invalid_utf8_and_empty_text(mesh) -> None:  # type: ignore[no-untyped-def]
    async with gateway_channel(mesh.gateway) as channel:
        ask = channel.unary_stream(
            "/voicemesh.v1.GatewayService/Ask",
            request_serializer=lambda b: b,
            response_deserializer=gateway_pb2.AskResponse.FromString,
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in ask(b"\x0a\x03\xc3\x28\x41"):  # field 1 (text) = an invalid 2-byte UTF-8 sequence
                pass
        assert caught.value.code() == INVALID
        assert "not a valid voicemesh.v1.AskRequest message" in (caught.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in ask(gateway_pb2.AskRequest(text="  ").SerializeToString()):
                pass
        assert caught.value.code() == INVALID and "text is empty" in (caught.value.details() or "")
        await health_ok(channel)


async def test_a_question_longer_than_the_models_context_is_refused_and_feeds_no_breaker(mesh) -> None:  # type: ignore[no-untyped-def]
    # A real page, within the gateway's 8,192 characters but about 3,000 tokens: over the local
    # model's 2,048-token context.
    page = PAGE_TEXT
    async with gateway_channel(mesh.gateway) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        for _ in range(6):  # more than the core breaker's failures in a row
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                async for _ in stub.Ask(gateway_pb2.AskRequest(text=page), timeout=60):
                    pass
            assert caught.value.code() == INVALID, caught.value.details()
            assert "tokens; the local model can read at most" in (caught.value.details() or "")
        served = [e async for e in stub.Ask(gateway_pb2.AskRequest(text="What is two plus two?"), timeout=60)]
        assert served[-1].WhichOneof("event") == "turn_done" and served[-1].turn_done.reply_text


def test_a_request_id_reaches_a_log_line_on_one_line_and_short() -> None:
    # In a process of its own, as a server logs: the suite's own log capture stays as it is.
    program = """
import logging
from voicemesh.common.logs import request_id_var, setup_logging
setup_logging("stt")
request_id_var.set("x\\r\\n2026-12-01 INFO stt [admin] forged" + "y" * 500)
logging.getLogger("voicemesh.test").info("one line")
"""
    run = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60)
    lines = run.stderr.splitlines()
    assert run.returncode == 0 and len(lines) == 1, run.stderr
    assert "[x\\r\\n2026-12-01 INFO stt [admin] forged" in lines[0] and "y" * 129 not in lines[0]


async def test_a_stream_that_sends_nothing_is_cut_off_and_the_gateway_goes_on(mesh) -> None:  # type: ignore[no-untyped-def]
    """A slow-loris: config, then silence on the wire. The mesh fixture's idle limit is 15 s."""
    import time

    async def requests() -> AsyncIterator[gateway_pb2.ConverseRequest]:
        yield gateway_pb2.ConverseRequest(config=gateway_pb2.ConverseConfig())
        await asyncio.sleep(3600)
        yield gateway_pb2.ConverseRequest()  # never sent

    async with gateway_channel(mesh.gateway) as channel:
        stub = gateway_pb2_grpc.GatewayServiceStub(channel)
        started = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            async for _ in stub.Converse(requests(), timeout=120):
                pass
        waited = time.monotonic() - started
        assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert caught.value.details().startswith("no audio for 15s: the stream is closed")
        assert 15 <= waited < 30
        served = [r async for r in stub.Ask(gateway_pb2.AskRequest(text="Say hi."), timeout=120)]
        assert served[-1].WhichOneof("event") == "turn_done"
