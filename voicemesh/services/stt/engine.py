"""Streaming recognition: PCM chunks in, speech events and transcripts out. No gRPC here."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

from voicemesh.common.audio import PcmFormat, PcmNormalizer
from voicemesh.common.blocking import BlockingPool
from voicemesh.services.stt.recognizer import Transcript, WhisperRecognizer
from voicemesh.services.stt.segmenter import Segmenter, SegmenterConfig, SpeechStart, Utterance
from voicemesh.services.stt.vad import SileroVad

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


RecognitionEvent = SpeechStarted | FinalTranscript | SpeechEnded


class SpeechRecognizer:
    """The models and pools one STT process shares between its streams."""

    def __init__(
        self,
        recognizer: WhisperRecognizer,
        vad: SileroVad,
        *,
        workers: int,
        segmenter: SegmenterConfig | None = None,
    ) -> None:
        self._recognizer = recognizer
        self._vad = vad
        self._segmenter_config = segmenter or SegmenterConfig()
        self._whisper_pool = BlockingPool(workers, "whisper")
        # VAD frames are short; their own pool keeps them flowing while Whisper is busy.
        self._vad_pool = BlockingPool(max(2, workers), "vad")

    async def recognize(
        self, fmt: PcmFormat, chunks: AsyncIterable[bytes], language: str | None = None
    ) -> AsyncIterator[RecognitionEvent]:
        """Segment the stream while earlier utterances are transcribed, and yield events in order."""
        normalizer = PcmNormalizer(fmt)
        segmenter = Segmenter(self._vad.stream(), self._segmenter_config)
        events: asyncio.Queue[RecognitionEvent | BaseException | None] = asyncio.Queue()
        utterances: asyncio.Queue[Utterance | None] = asyncio.Queue()

        async def segment() -> None:
            async for chunk in chunks:
                samples = normalizer.push(chunk)
                for event in await self._vad_pool.run(segmenter.push, samples):
                    await self._route(event, events, utterances)
            tail = normalizer.flush()
            for event in [*await self._vad_pool.run(segmenter.push, tail), *segmenter.flush()]:
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
        event: SpeechStart | Utterance,
        events: asyncio.Queue[RecognitionEvent | BaseException | None],
        utterances: asyncio.Queue[Utterance | None],
    ) -> None:
        if isinstance(event, SpeechStart):
            await events.put(SpeechStarted(event.index, event.offset_s))
        else:
            await utterances.put(event)

    def close(self) -> None:
        self._whisper_pool.shutdown()
        self._vad_pool.shutdown()
