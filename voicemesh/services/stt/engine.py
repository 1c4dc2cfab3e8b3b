"""Streaming recognition: PCM chunks in, speech events and transcripts out. No gRPC here."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from dataclasses import dataclass

import numpy as np

from voicemesh.common.audio import MODEL_RATE_HZ, PcmFormat, PcmNormalizer
from voicemesh.common.blocking import BlockingPool
from voicemesh.common.errors import InvalidRequest
from voicemesh.listening.gate import Gate, GateConfig, GateEvent, Opened
from voicemesh.listening.segmenter import Segmenter, SegmenterConfig, SpeechStart, Utterance
from voicemesh.listening.vad import SileroVad
from voicemesh.listening.wakeword import WakeWordModels
from voicemesh.services.stt.recognizer import Transcript, WhisperRecognizer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpeechStarted:
    index: int
    offset_s: float


@dataclass(frozen=True)
class FinalTranscript:
    index: int
    transcript: Transcript
    start_s: float
    end_s: float


@dataclass(frozen=True)
class SpeechEnded:
    index: int
    offset_s: float


@dataclass(frozen=True)
class WakeWordHeard:
    index: int  # of the utterance it opens
    model: str
    score: float
    offset_s: float


@dataclass(frozen=True)
class WakeOptions:
    """A stream's request to hear a wake word before anything is transcribed."""

    models: tuple[str, ...] = ()  # empty: the process's first model
    threshold: float = 0.0  # 0: the process's default


RecognitionEvent = SpeechStarted | FinalTranscript | SpeechEnded | WakeWordHeard


class SpeechRecognizer:
    """The models and pools one STT process shares between its streams."""

    def __init__(
        self,
        recognizer: WhisperRecognizer,
        vad: SileroVad,
        *,
        workers: int,
        segmenter: SegmenterConfig | None = None,
        wake_words: WakeWordModels | None = None,
        wake_threshold: float = 0.5,
        wake_patience: int = 2,
    ) -> None:
        self._recognizer = recognizer
        self._vad = vad
        self._segmenter_config = segmenter or SegmenterConfig()
        self._wake_words = wake_words
        self._wake_threshold = wake_threshold
        self._wake_patience = wake_patience
        self._whisper_pool = BlockingPool(workers, "whisper")
        # VAD frames are short; their own pool keeps them flowing while Whisper is busy.
        self._vad_pool = BlockingPool(max(2, workers), "vad")

    def _listener(self, wake: WakeOptions | None) -> Segmenter | Gate:
        """A plain segmenter, or a gate that opens on the wake word (checked before any audio)."""
        if wake is None:
            return Segmenter(self._vad.stream(), self._segmenter_config)
        if self._wake_words is None:
            raise InvalidRequest("this STT service has no wake word models loaded; leave wake_word unset")
        models = wake.models or self._wake_words.names[:1]
        threshold = wake.threshold or self._wake_threshold
        stream = self._wake_words.stream(threshold, models, patience=self._wake_patience)
        return Gate(self._vad, stream, GateConfig(segmenter=self._segmenter_config))

    async def recognize(
        self,
        fmt: PcmFormat,
        chunks: AsyncIterable[bytes],
        language: str | None = None,
        wake: WakeOptions | None = None,
    ) -> AsyncIterator[RecognitionEvent]:
        """Segment the stream while earlier utterances are transcribed, and yield events in order.

        With ``wake``, audio is dropped until the wake word is heard; only the utterance after it
        is transcribed, and then the stream listens for the wake word again.
        """
        normalizer = PcmNormalizer(fmt)
        listener = self._listener(wake)
        push: Callable[[np.ndarray], Sequence[GateEvent]] = listener.push
        events: asyncio.Queue[RecognitionEvent | BaseException | None] = asyncio.Queue()
        utterances: asyncio.Queue[Utterance | None] = asyncio.Queue()

        async def segment() -> None:
            async for chunk in chunks:
                samples = normalizer.push(chunk)
                for event in await self._vad_pool.run(push, samples):
                    await self._route(event, events, utterances)
            tail = normalizer.flush()
            for event in [*await self._vad_pool.run(push, tail), *listener.flush()]:
                await self._route(event, events, utterances)
            await utterances.put(None)

        async def transcribe() -> None:
            while (utterance := await utterances.get()) is not None:
                transcript = await self._whisper_pool.run(
                    self._recognizer.transcribe, utterance.audio, utterance.start_s, language
                )
                await events.put(
                    FinalTranscript(utterance.index, transcript, utterance.start_s, utterance.end_s)
                )
                await events.put(SpeechEnded(utterance.index, utterance.end_s))

        async def run() -> None:
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(segment())
                    group.create_task(transcribe())
            except BaseExceptionGroup as group_error:
                await events.put(group_error.exceptions[0])
            else:
                await events.put(None)

        worker = asyncio.create_task(run())
        try:
            while (event := await events.get()) is not None:
                if isinstance(event, BaseException):
                    raise event
                yield event
        finally:
            worker.cancel()

    @staticmethod
    async def _route(
        event: GateEvent,
        events: asyncio.Queue[RecognitionEvent | BaseException | None],
        utterances: asyncio.Queue[Utterance | None],
    ) -> None:
        if isinstance(event, SpeechStart):
            await events.put(SpeechStarted(event.index, event.offset_s))
        elif isinstance(event, Utterance):
            await utterances.put(event)
        elif isinstance(event, Opened) and event.wake is not None:
            await events.put(
                WakeWordHeard(
                    event.index, event.wake.model, event.wake.score, event.start_sample / MODEL_RATE_HZ
                )
            )

    def close(self) -> None:
        self._whisper_pool.shutdown()
        self._vad_pool.shutdown()
