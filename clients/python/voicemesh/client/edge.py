"""The edge: wake word and voice activity on the device, before a byte leaves it.

Audio from a microphone or a file runs through a ``Gate`` (``voicemesh.listening``). Nothing is sent
while it listens. When the wake word is heard, a Converse stream opens with the ring's audio since
the end of the wake phrase, carries the command live until local VAD hears it end, and half-closes;
the gateway's transcript and reply come back on that stream while the edge is already listening for
the next wake word. The server's end of turn (semantic by default: it waits out a breath
mid-sentence) ends the command as soon as it comes; the edge's own ``end_silence_ms`` is only the
longest it will wait. One stream per command: an idle open stream would hold a server slot for
nothing, and opening one on a warm channel costs a round trip at most.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import grpc
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from voicemesh.client.sdk import AsyncClient
from voicemesh.common.audio import MODEL_RATE_HZ, PcmFormat, WavAudio
from voicemesh.common.audio_files import read_audio
from voicemesh.common.blocking import BlockingPool
from voicemesh.common.config import Settings
from voicemesh.common.errors import InvalidRequest
from voicemesh.common.samples import PcmNormalizer, float_to_pcm16
from voicemesh.listening.gate import Closed, Gate, GateConfig, GateEvent, Opened, Passed
from voicemesh.listening.segmenter import SegmenterConfig
from voicemesh.listening.vad import SileroVad
from voicemesh.listening.wakeword import WakeWordModels
from voicemesh.v1 import gateway_pb2

CHUNK_MS = 80  # one wake word frame


class EdgeSettings(Settings):
    """The edge's settings (env prefix VOICEMESH_EDGE_, file table [edge])."""

    model_config = SettingsConfigDict(env_prefix="VOICEMESH_EDGE_", extra="forbid")
    section = "edge"

    wake_words: list[str] = Field(
        ["hey_jarvis"],
        description="Wake word models: bundled names (hey_jarvis, alexa, hey_mycroft, hey_rhasspy) or "
        "paths of custom openWakeWord .onnx files. Empty: any speech opens the gate.",
    )
    wake_threshold: float = Field(0.5, gt=0, lt=1, description="Score at which a wake word fires.")
    wake_patience: int = Field(
        2, ge=1, le=10, description="80 ms frames in a row at or over the threshold before it fires."
    )
    pre_roll_ms: int = Field(1000, ge=100, le=5000, description="Audio kept from before the trigger.")
    vad_threshold: float = Field(0.5, gt=0, lt=1, description="Speech probability that counts as speech.")
    endpointing: Literal["semantic", "fixed"] = Field(
        "semantic",
        description="How the server ends a command's turn: 'semantic' judges each pause, 'fixed' ends "
        "it after end_silence_ms of silence.",
    )
    end_silence_ms: int = Field(
        2000,
        ge=100,
        le=10_000,
        description="Silence that ends a command on the device, if the server has not ended it first; "
        "in fixed endpointing, the server's silence too.",
    )
    max_command_s: float = Field(15.0, gt=1, description="Longest command before it is cut.")
    no_speech_timeout_s: float = Field(
        3.0, gt=0, description="How long after the wake word to wait for the command to start."
    )

    def gate_config(self) -> GateConfig:
        return GateConfig(
            pre_roll_ms=self.pre_roll_ms,
            no_speech_timeout_s=self.no_speech_timeout_s,
            segmenter=SegmenterConfig(
                threshold=self.vad_threshold,
                min_silence_ms=self.end_silence_ms,
                max_utterance_s=self.max_command_s,
            ),
        )


class EdgeModels:
    """VAD and wake word sessions, loaded once per process and shared by every listener."""

    def __init__(self, settings: EdgeSettings) -> None:
        self.settings = settings
        self.vad = SileroVad()
        self.wake_words = WakeWordModels(settings.wake_words) if settings.wake_words else None

    def gate(self) -> Gate:
        settings = self.settings
        wake = None
        if self.wake_words:
            wake = self.wake_words.stream(settings.wake_threshold, patience=settings.wake_patience)
        return Gate(self.vad, wake, self.settings.gate_config())


@dataclass(frozen=True)
class WakeHeard:
    command: int
    model: str
    score: float
    heard_s: float  # when the detector fired, in seconds of listened audio
    start_s: float  # where the command's audio begins (just before the phrase ended)


@dataclass(frozen=True)
class CommandSent:
    """The gate closed: the command's audio has all been sent."""

    command: int
    start_s: float
    end_s: float
    reason: str  # "end_of_speech", "no_speech", "end_of_stream"


@dataclass(frozen=True)
class GatewayEvent:
    command: int
    response: gateway_pb2.ConverseResponse


@dataclass(frozen=True)
class CommandFailed:
    command: int
    code: grpc.StatusCode
    details: str


EdgeEvent = WakeHeard | CommandSent | GatewayEvent | CommandFailed


@dataclass
class _Command:
    index: int
    start_s: float
    audio: asyncio.Queue[bytes | None] = field(default_factory=asyncio.Queue)
    ended_by_server: bool = False  # the server's end of turn came: the gate may close


class Edge:
    """Listens locally and talks to the gateway only when addressed."""

    def __init__(
        self,
        client: AsyncClient,
        models: EdgeModels,
        *,
        speak: bool = True,
        voice: str = "",
        session_id: str = "",
        user_id: str = "",
        hotwords: Sequence[str] = (),
    ) -> None:
        self._client = client
        self._user_id = user_id
        self._models = models
        self._speak = speak
        self._voice = voice
        self.session_id = session_id or uuid.uuid4().hex
        settings = models.settings
        fixed = settings.endpointing == "fixed"
        self._endpointing: dict[str, Any] = {
            "endpointing": settings.endpointing,
            "min_silence_ms": settings.end_silence_ms if fixed else 0,
            "hotwords": tuple(hotwords),
        }

    async def listen(
        self, audio: AsyncIterable[bytes], *, sample_rate_hz: int = MODEL_RATE_HZ, channels: int = 1
    ) -> AsyncIterator[EdgeEvent]:
        """Run PCM s16le audio through the gate; yield wake, command and gateway events as they happen."""
        fmt = PcmFormat.parse(
            encoding="AUDIO_ENCODING_LINEAR16", sample_rate_hz=sample_rate_hz, channels=channels
        )
        normalizer = PcmNormalizer(fmt)
        gate = self._models.gate()
        pool = BlockingPool(1, "edge")  # the detectors' ~2 ms per chunk, off the event loop
        events: asyncio.Queue[EdgeEvent | BaseException | None] = asyncio.Queue()
        commands: set[asyncio.Task[None]] = set()  # the streams still running; each leaves when done
        opened = 0
        current: _Command | None = None

        async def converse(command: _Command) -> None:
            async def chunks() -> AsyncIterator[bytes]:
                while (chunk := await command.audio.get()) is not None:
                    yield chunk

            try:
                async for response in self._client.converse(
                    chunks(),
                    speak=self._speak,
                    voice=self._voice,
                    session_id=self.session_id,
                    user_id=self._user_id,
                    request_id=f"{self.session_id}.{command.index}",
                    **self._endpointing,
                ):
                    if response.WhichOneof("event") == "speech_ended":
                        command.ended_by_server = True
                    await events.put(GatewayEvent(command.index, response))
            except grpc.aio.AioRpcError as error:
                await events.put(CommandFailed(command.index, error.code(), error.details() or ""))

        def handle(gated: list[GateEvent]) -> None:
            nonlocal current, opened
            for event in gated:
                if isinstance(event, Opened):
                    current = _Command(opened, event.start_sample / MODEL_RATE_HZ)
                    opened += 1
                    task = asyncio.create_task(converse(current))
                    commands.add(task)
                    task.add_done_callback(commands.discard)
                    current.audio.put_nowait(float_to_pcm16(event.audio))
                    if event.wake is not None:
                        wake, heard_s = event.wake, event.wake.end_sample / MODEL_RATE_HZ
                        events.put_nowait(
                            WakeHeard(current.index, wake.model, wake.score, heard_s, current.start_s)
                        )
                elif isinstance(event, Passed) and current is not None:
                    current.audio.put_nowait(float_to_pcm16(event.audio))
                elif isinstance(event, Closed) and current is not None:
                    current.audio.put_nowait(None)
                    end_s = event.end_sample / MODEL_RATE_HZ
                    events.put_nowait(CommandSent(current.index, current.start_s, end_s, event.reason))
                    current = None

        async def run() -> None:
            try:
                async for chunk in audio:
                    if current is not None and current.ended_by_server:
                        handle(await pool.run(gate.end_turn))
                    handle(await pool.run(gate.push, normalizer.push(chunk)))
                handle(await pool.run(gate.push, normalizer.flush()))
                handle(gate.flush())
                await asyncio.gather(*commands)
            except Exception as exc:
                await events.put(exc)
            else:
                await events.put(None)

        worker = asyncio.create_task(run())
        try:
            while (item := await events.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            worker.cancel()
            for task in commands:
                task.cancel()
            pool.shutdown()


async def file_audio(
    source: str | Path | WavAudio, *, realtime: bool = True, chunk_ms: int = CHUNK_MS
) -> AsyncIterator[bytes]:
    """An audio file's PCM (any format ``read_audio`` reads) in ``chunk_ms`` chunks, paced like a
    microphone when ``realtime``."""
    wav = source if isinstance(source, WavAudio) else read_audio(source)
    step = wav.sample_rate_hz * chunk_ms // 1000 * 2 * wav.channels
    started = time.monotonic()
    for offset in range(0, len(wav.pcm), step):
        if realtime:
            due = started + offset / (2 * wav.channels * wav.sample_rate_hz)
            await asyncio.sleep(max(0.0, due - time.monotonic()))
        yield wav.pcm[offset : offset + step]


class NoMicrophone(InvalidRequest):
    """No audio input can be opened here."""


def microphone(*, sample_rate_hz: int = MODEL_RATE_HZ, chunk_ms: int = CHUNK_MS) -> AsyncIterator[bytes]:
    """Mono PCM s16le from the default input device, ``chunk_ms`` at a time.

    Checks for the device at once, so a machine without one hears why before anything starts.
    """
    try:
        import sounddevice
    except OSError as exc:  # the wheel needs the system's PortAudio
        raise NoMicrophone(
            f"no audio input: PortAudio is missing ({exc}); install it (apt-get install libportaudio2) "
            "or use --file"
        ) from None
    try:
        sounddevice.query_devices(kind="input")
    except (sounddevice.PortAudioError, ValueError) as exc:
        raise NoMicrophone(f"no microphone found ({exc}); plug one in or use --file") from None

    async def record() -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=64)

        def deliver(data: bytes) -> None:
            if not queue.full():  # a stalled consumer loses audio rather than memory
                queue.put_nowait(data)

        def callback(data: object, frames: int, when: object, status: object) -> None:
            loop.call_soon_threadsafe(deliver, bytes(data))  # type: ignore[call-overload]

        blocksize = sample_rate_hz * chunk_ms // 1000
        with sounddevice.RawInputStream(
            samplerate=sample_rate_hz, channels=1, dtype="int16", blocksize=blocksize, callback=callback
        ):
            while True:
                yield await queue.get()

    return record()


class Speaker:
    """Plays reply audio on the default output device, in order, as it arrives."""

    def __init__(self) -> None:
        try:
            import sounddevice

            sounddevice.query_devices(kind="output")
        except (OSError, ValueError) as exc:  # no PortAudio, or no output device (PortAudioError)
            raise NoMicrophone(f"no audio output ({exc}); use --save-dir to keep replies as WAV") from None
        self._sounddevice = sounddevice
        self._queue: asyncio.Queue[tuple[bytes, int]] = asyncio.Queue()
        self._task = asyncio.create_task(self._play())

    def say(self, pcm: bytes, sample_rate_hz: int) -> None:
        self._queue.put_nowait((pcm, sample_rate_hz))

    def stop(self) -> None:
        """Drop the reply audio not yet played (the user interrupted it)."""
        while not self._queue.empty():
            self._queue.get_nowait()
            self._queue.task_done()

    async def _play(self) -> None:
        stream = None
        try:
            while True:
                pcm, rate = await self._queue.get()
                if stream is None or stream.samplerate != rate:
                    if stream is not None:
                        stream.close()
                    stream = self._sounddevice.RawOutputStream(samplerate=rate, channels=1, dtype="int16")
                    stream.start()
                await asyncio.to_thread(stream.write, pcm)  # blocks until the device takes it
                self._queue.task_done()
        finally:
            if stream is not None:
                stream.close()

    async def drain(self) -> None:
        """Wait until everything queued has been played."""
        await self._queue.join()
        self._task.cancel()
