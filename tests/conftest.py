"""Shared fixtures: real models loaded once per session, real servers on free loopback ports."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
import soxr
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from piper import PiperVoice, SynthesisConfig

from voicemesh.common.samples import float_to_pcm16, pcm16_to_float
from voicemesh.rpc.host import ServiceHost
from voicemesh.stt.config import SttSettings
from voicemesh.stt.engine import SpeechRecognizer
from voicemesh.stt.server import build_engine as build_stt
from voicemesh.stt.server import build_host as stt_host
from voicemesh.tts.config import TtsSettings
from voicemesh.tts.engine import Synthesizer, bundled_voice
from voicemesh.tts.server import build_engine as build_tts
from voicemesh.tts.server import build_host as tts_host

# Piper samples noise for every utterance, so the same text sounds a little different each run;
# without that noise a test hears the same audio every time and cannot pass by luck.
STEADY = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)


@dataclass(frozen=True)
class Speech:
    """Piper speech as 16-bit PCM, with the text it says."""

    text: str
    pcm: bytes
    sample_rate_hz: int


@pytest.fixture(scope="session")
def piper_voice() -> PiperVoice:
    return PiperVoice.load(bundled_voice()[1])


@pytest.fixture(scope="session")
def speak(piper_voice: PiperVoice):  # type: ignore[no-untyped-def]
    """Say text with piper, padded with silence, at any sample rate and channel count."""

    def say(text: str, rate: int = 16_000, channels: int = 1, pad_s: float = 0.5) -> Speech:
        native = piper_voice.config.sample_rate
        audio = np.concatenate([c.audio_float_array for c in piper_voice.synthesize(text, STEADY)])
        audio = np.asarray(soxr.resample(audio, native, rate), dtype=np.float32)
        silence = np.zeros(int(pad_s * rate), dtype=np.float32)
        audio = np.concatenate([silence, audio, silence])
        if channels == 2:
            audio = np.repeat(audio, 2)
        return Speech(text, float_to_pcm16(audio), rate)

    return say


@pytest.fixture(scope="session")
def stt_engine() -> Iterator[SpeechRecognizer]:
    engine = build_stt(SttSettings.load())
    yield engine
    engine.close()


@pytest.fixture(scope="session")
def tts_engine() -> Iterator[Synthesizer]:
    engine = build_tts(TtsSettings.load())
    yield engine
    engine.close()


async def _serve(host: ServiceHost) -> AsyncIterator[grpc.aio.Channel]:
    await host.start()
    async with grpc.aio.insecure_channel(host.address) as channel:
        yield channel
    await host.stop(0)


@pytest.fixture(scope="session")
async def stt_channel(stt_engine: SpeechRecognizer) -> AsyncIterator[grpc.aio.Channel]:
    async for channel in _serve(stt_host(SttSettings.load(port=0), stt_engine)):
        yield channel


@pytest.fixture(scope="session")
async def tts_channel(tts_engine: Synthesizer) -> AsyncIterator[grpc.aio.Channel]:
    async for channel in _serve(tts_host(TtsSettings.load(port=0), tts_engine)):
        yield channel


@pytest.fixture(scope="session")
def stt_stream(stt_channel: grpc.aio.Channel):  # type: ignore[no-untyped-def]
    """Stream 16 kHz mono PCM to the STT service in 100 ms chunks (``pace`` 1.0 = real time)."""
    from voicemesh.v1 import speech_to_text_pb2 as pb
    from voicemesh.v1 import speech_to_text_pb2_grpc as pb_grpc

    async def stream(
        pcm: bytes, config: pb.RecognitionConfig | None = None, pace: float = 0.0
    ) -> list[pb.StreamingRecognizeResponse]:
        async def requests() -> AsyncIterator[pb.StreamingRecognizeRequest]:
            yield pb.StreamingRecognizeRequest(config=config or pb.RecognitionConfig())
            for offset in range(0, len(pcm), 3200):
                yield pb.StreamingRecognizeRequest(audio_content=pcm[offset : offset + 3200])
                await asyncio.sleep(0.1 * pace)

        stub = pb_grpc.SpeechToTextServiceStub(stt_channel)
        return [r async for r in stub.StreamingRecognize(requests(), timeout=120)]

    return stream


@dataclass
class RunningMesh:
    gateway: str
    addresses: dict[str, str]
    metrics: dict[str, str]  # service name → host:port of its /metrics
    process: subprocess.Popen[str]


class OtlpCollector(trace_service_pb2_grpc.TraceServiceServicer):
    """A real OTLP/gRPC trace receiver: what the services export, kept as (service.name, span)."""

    def __init__(self) -> None:
        self._spans: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        self.port = 0

    def Export(self, request: Any, context: grpc.ServicerContext) -> Any:
        with self._lock:
            for resource_spans in request.resource_spans:
                service = next(
                    (
                        a.value.string_value
                        for a in resource_spans.resource.attributes
                        if a.key == "service.name"
                    ),
                    "",
                )
                for scope in resource_spans.scope_spans:
                    self._spans.extend((service, span) for span in scope.spans)
        return trace_service_pb2.ExportTraceServiceResponse()

    def spans(self) -> list[tuple[str, Any]]:
        with self._lock:
            return list(self._spans)

    async def wait_for(self, found: Callable[[], Any], timeout_s: float = 15.0) -> Any:
        """Poll ``found`` until it returns something truthy (exports arrive on another thread)."""
        async with asyncio.timeout(timeout_s):
            while not (result := found()):  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        return result


@pytest.fixture(scope="session")
def otlp_collector() -> Iterator[OtlpCollector]:
    collector = OtlpCollector()
    server = grpc.server(ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, server)
    collector.port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield collector
    server.stop(None)


@pytest.fixture(scope="session", autouse=True)
def config_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The local CA, keys and admin credential the tests' meshes use (as `voicemesh up` makes them
    in ~/.config/voicemesh), made once for the session, away from the user's own."""
    path = tmp_path_factory.mktemp("config")
    os.environ["XDG_CONFIG_HOME"] = str(path)
    return path


@pytest.fixture(scope="session", autouse=True)
def data_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every process the tests start keeps its SQLite history here, not in the user's home."""
    path = tmp_path_factory.mktemp("data")
    os.environ["XDG_DATA_HOME"] = str(path)
    return path


@pytest.fixture(scope="session")
def mesh(otlp_collector: OtlpCollector) -> Iterator[RunningMesh]:
    """The whole mesh, started as a user starts it: ``voicemesh up`` (on free ports), on its
    embedded stores (in-process sessions, SQLite history in a temporary data directory).

    Its services export traces to the test's OTLP collector, flushing every 100 ms.
    """
    tracing = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{otlp_collector.port}",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        # The suite takes more turns a minute than one person would; its limits are tested apart.
        "VOICEMESH_GATEWAY_LIMIT_LLM_PER_MIN": "1000",
        "VOICEMESH_GATEWAY_LIMIT_TTS_PER_MIN": "1000",
        # Short enough for a test to see a silent stream cut off (tests/test_bad_input.py).
        "VOICEMESH_GATEWAY_STREAM_IDLE_TIMEOUT_S": "15",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "voicemesh.client.cli", "up", "--port", "0", "--backend-ports", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **tracing},
    )
    assert process.stdout is not None
    addresses: dict[str, str] = {}
    metrics: dict[str, str] = {}
    for line in process.stdout:
        sys.stderr.write(f"[voicemesh up] {line}")
        if match := re.match(r"\s+(\w+)\s+(\S+)\s+SERVING(?:\s+metrics (\S+))?", line):
            addresses[match[1]] = match[2]
            if match[3]:
                metrics[match[1]] = match[3]
        if "voicemesh is up" in line:
            break
    else:
        pytest.fail(f"voicemesh up exited with {process.wait()} before the mesh was up")
    yield RunningMesh(addresses["gateway"], addresses, metrics, process)
    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=60)
    assert "voicemesh: stopped" in rest
    assert process.returncode == 0


@dataclass(frozen=True)
class WakeRecording:
    """Speech, then "Hey Jarvis, what time is it?", then more speech: 16 kHz mono, with its bounds."""

    audio: np.ndarray
    before_end: int  # last sample of the speech before the wake phrase
    wake_end: int  # where "Hey Jarvis," ends
    command: str
    command_end: int
    after_start: int  # first sample of the speech after the command

    @property
    def pcm(self) -> bytes:
        return float_to_pcm16(self.audio)

    def seconds(self, sample: int) -> float:
        return sample / 16_000


def piper_16k(voice: PiperVoice, text: str) -> np.ndarray:
    """Piper speech at 16 kHz with its leading and trailing silence trimmed, so bounds are exact."""
    audio = np.concatenate([c.audio_float_array for c in voice.synthesize(text, STEADY)])
    audio = np.asarray(soxr.resample(audio, voice.config.sample_rate, 16_000), dtype=np.float32)
    loud = np.nonzero(np.abs(audio) > 0.01)[0]
    return audio[loud[0] : loud[-1] + 1]


@pytest.fixture(scope="session")
def speak_trimmed(piper_voice: PiperVoice):  # type: ignore[no-untyped-def]
    """Piper speech at 16 kHz, float32, without leading or trailing silence."""
    return lambda text: piper_16k(piper_voice, text)


@pytest.fixture(scope="session")
def wake_recording(piper_voice: PiperVoice) -> WakeRecording:
    def silence(seconds: float) -> np.ndarray:
        return np.zeros(int(seconds * 16_000), dtype=np.float32)

    parts = [
        silence(1.0),
        piper_16k(piper_voice, "The weather was lovely yesterday, so we walked to the park."),
        silence(1.0),
        piper_16k(piper_voice, "Hey Jarvis,"),
        silence(0.15),
        piper_16k(piper_voice, "what time is it?"),
        # Longer than semantic endpointing's longest wait (1.5 s), whatever Smart Turn makes of
        # the question: on one 2-core box it heard it unfinished, and 1.5 s ran into the next words.
        silence(2.0),
        piper_16k(piper_voice, "I think the meeting starts at noon anyway."),
        silence(1.0),
    ]
    ends = np.cumsum([p.size for p in parts])
    return WakeRecording(
        audio=pcm16_to_float(float_to_pcm16(np.concatenate(parts))),  # exactly what a WAV would hold
        before_end=int(ends[1]),
        wake_end=int(ends[3]),
        command="what time is it",
        command_end=int(ends[5]),
        after_start=int(ends[6]),
    )


@contextmanager
def busy_cores() -> Iterator[None]:
    """Every core of the box kept busy by another process, for as long as the block runs."""
    spin = [sys.executable, "-c", "while True: pass"]
    burners = [subprocess.Popen(spin) for _ in range(os.cpu_count() or 1)]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


class GatedModel:
    """An OpenAI-compatible chat endpoint whose replies wait until the test lets them go.

    The boundary a test of the gateway does not test: the model. Each request is held until
    ``release()`` (or at once when ``open``), then answered with ``reply`` as a stream of words.
    """

    def __init__(self, reply: str = "Paris is the capital of France.") -> None:
        self.reply = reply
        self.open = False
        self.waiting = 0  # requests held now
        self.requests = 0
        self._gate = asyncio.Event()
        self._server: asyncio.Server | None = None
        self.url = ""

    async def __aenter__(self) -> GatedModel:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/v1"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    def release(self) -> None:
        """Let the requests held now go (later ones wait again, unless ``open``)."""
        self._gate.set()
        self._gate = asyncio.Event()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import json

        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
            length = next(
                (
                    int(line.split(":")[1])
                    for line in head.split("\r\n")
                    if line.lower().startswith("content-length")
                ),
                0,
            )
            await reader.readexactly(length)
            self.requests += 1
            if not self.open:
                self.waiting += 1
                try:
                    await self._gate.wait()
                finally:
                    self.waiting -= 1
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n")
            for word in self.reply.split(" "):
                chunk = {"choices": [{"index": 0, "delta": {"content": word + " "}, "finish_reason": None}]}
                writer.write(f"data: {json.dumps(chunk)}\n\n".encode())
            done = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            writer.write(f"data: {json.dumps(done)}\n\ndata: [DONE]\n\n".encode())
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
