"""Streaming recognition: PCM chunks in, speech events and transcripts out. No gRPC here."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from voicemesh.common.audio import MODEL_RATE_HZ, PcmFormat, PcmNormalizer
from voicemesh.common.blocking import BlockingPool
from voicemesh.common.errors import InvalidRequest
from voicemesh.common.metrics import SPECULATIONS, STAGE_SECONDS
from voicemesh.listening.gate import Gate, GateConfig, GateEvent, Opened
from voicemesh.listening.segmenter import Segmenter, SegmenterConfig, SpeechStart, Utterance
from voicemesh.listening.vad import SileroVad
from voicemesh.listening.wakeword import WakeWordModels
from voicemesh.stt.agreement import LocalAgreement
from voicemesh.stt.recognizer import Transcript, WhisperRecognizer

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
class PartialTranscript:
    index: int
    words: list[str]
    committed: list[str]  # the leading words that will not change
    start_s: float
    end_s: float


@dataclass(frozen=True)
class SpeculativeTranscript:
    """The utterance decoded in a pause, before the endpoint: the final, unless the user speaks on."""

    index: int
    transcript: Transcript
    committed: list[str]
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


@dataclass(frozen=True)
class StreamOptions:
    """What one stream asked for; zeros keep the process's defaults."""

    language: str | None = None
    wake: WakeOptions | None = None
    interim_results: bool = False
    speculative_results: bool = False
    min_silence_ms: int = 0
    min_speech_ms: int = 0
    max_utterance_s: float = 0.0


RecognitionEvent = (
    SpeechStarted | PartialTranscript | SpeculativeTranscript | FinalTranscript | SpeechEnded | WakeWordHeard
)


@dataclass
class _Speculation:
    voiced_end: int  # samples of the utterance before the pause it was decoded in
    decode: asyncio.Future[Transcript]


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
        partial_interval_ms: int = 500,
        speculate_after_ms: int = 64,
    ) -> None:
        self._recognizer = recognizer
        self._vad = vad
        self._segmenter_config = segmenter or SegmenterConfig()
        self._wake_words = wake_words
        self._wake_threshold = wake_threshold
        self._wake_patience = wake_patience
        self._partial_interval = partial_interval_ms * MODEL_RATE_HZ // 1000
        self._speculate_after = speculate_after_ms * MODEL_RATE_HZ // 1000
        self._whisper_pool = BlockingPool(workers, "whisper")
        # VAD frames are short; their own pool keeps them flowing while Whisper is busy.
        self._vad_pool = BlockingPool(max(2, workers), "vad")

    def _listener(self, options: StreamOptions) -> Segmenter | Gate:
        """A plain segmenter, or a gate that opens on the wake word (checked before any audio)."""
        segmenting = replace(
            self._segmenter_config,
            min_silence_ms=options.min_silence_ms or self._segmenter_config.min_silence_ms,
            min_speech_ms=options.min_speech_ms or self._segmenter_config.min_speech_ms,
            max_utterance_s=options.max_utterance_s or self._segmenter_config.max_utterance_s,
        )
        wake = options.wake
        if wake is None:
            return Segmenter(self._vad.stream(), segmenting)
        if self._wake_words is None:
            raise InvalidRequest("this STT service has no wake word models loaded; leave wake_word unset")
        models = wake.models or self._wake_words.names[:1]
        threshold = wake.threshold or self._wake_threshold
        stream = self._wake_words.stream(threshold, models, patience=self._wake_patience)
        return Gate(self._vad, stream, GateConfig(segmenter=segmenting))

    async def recognize(
        self, fmt: PcmFormat, chunks: AsyncIterable[bytes], options: StreamOptions | None = None
    ) -> AsyncIterator[RecognitionEvent]:
        """Segment the stream while earlier utterances are transcribed, and yield events in order.

        With ``options.wake``, audio is dropped until the wake word is heard; only the utterance
        after it is transcribed, and then the stream listens for the wake word again. With
        ``options.interim_results``, the utterance being heard is re-decoded every
        ``partial_interval_ms`` of new speech and partial results come out as it grows.

        Once a pause reaches ``speculate_after_ms``, the utterance is decoded as if the pause were
        its end. If the endpoint follows with no more speech, that decode is the final result (the
        rest of the pause is silence), so the final comes out at the endpoint instead of a decode
        later; with
        ``options.speculative_results`` it is also sent at once as a speculative partial.
        """
        options = options or StreamOptions()
        language = options.language
        normalizer = PcmNormalizer(fmt)
        listener = self._listener(options)
        push: Callable[[np.ndarray], Sequence[GateEvent]] = listener.push
        events: asyncio.Queue[RecognitionEvent | BaseException | None] = asyncio.Queue()
        utterances: asyncio.Queue[Utterance | None] = asyncio.Queue()
        ended: set[int] = set()  # utterances whose final is on its way: their drafts are stale
        drafted: dict[int, int] = {}  # samples of each utterance already sent to a draft
        agreements: dict[int, LocalAgreement] = {}
        drafting: asyncio.Task[None] | None = None
        speculations: dict[int, _Speculation] = {}

        async def route(events_in: Sequence[GateEvent]) -> None:
            for event in events_in:
                if isinstance(event, Utterance):
                    ended.add(event.index)
                    # Said at the endpoint, not after Whisper: the client's turn clock starts here.
                    await events.put(SpeechEnded(event.index, event.end_s))
                    await utterances.put(event)
                elif (heard := self._event(event)) is not None:
                    await events.put(heard)

        async def draft(index: int, start: int, audio: np.ndarray) -> None:
            words = await self._whisper_pool.run(self._recognizer.draft, audio, language)
            if index in ended:
                return
            agreement = agreements.setdefault(index, LocalAgreement())
            shown = agreement.update(words)
            start_s = start / MODEL_RATE_HZ
            end_s = start_s + audio.size / MODEL_RATE_HZ
            events.put_nowait(PartialTranscript(index, shown, list(agreement.committed), start_s, end_s))

        def maybe_draft(group: asyncio.TaskGroup) -> None:
            nonlocal drafting
            progress = listener.in_progress()
            if progress is None or progress.pause or (drafting is not None and not drafting.done()):
                return  # one draft at a time per stream, none in pauses; a busy pool skips, not queues
            if progress.samples - drafted.get(progress.index, 0) >= self._partial_interval:
                drafted[progress.index] = progress.samples
                audio = listener.speech_so_far()
                drafting = group.create_task(draft(progress.index, progress.start, audio))

        def maybe_speculate() -> None:
            progress = listener.in_progress()
            if progress is None or progress.pause < self._speculate_after:
                return
            index, voiced_end = progress.index, progress.voiced_end
            known = speculations.get(index)
            if known is not None:
                if known.voiced_end == voiced_end:
                    return  # this pause is already being decoded
                known.decode.cancel()
                SPECULATIONS.labels("wasted").inc()
            audio = listener.as_if_ended()
            start_s = progress.start / MODEL_RATE_HZ
            decode = asyncio.ensure_future(
                self._whisper_pool.run(self._recognizer.transcribe, audio, start_s, language)
            )
            decode.add_done_callback(lambda done: done.cancelled() or done.exception())  # never unheard
            speculation = speculations[index] = _Speculation(voiced_end, decode)
            if options.speculative_results:
                end_s = start_s + audio.size / MODEL_RATE_HZ

                def announce(done: asyncio.Future[Transcript]) -> None:
                    if done.cancelled() or done.exception() is not None or index in ended:
                        return
                    now = listener.in_progress()
                    if (
                        speculations.get(index) is not speculation
                        or now is None
                        or now.voiced_end != voiced_end
                    ):
                        return  # the user spoke on while it was decoded: it is stale already
                    committed = list(agreements[index].committed) if index in agreements else []
                    events.put_nowait(SpeculativeTranscript(index, done.result(), committed, start_s, end_s))

                decode.add_done_callback(announce)

        async def segment(group: asyncio.TaskGroup) -> None:
            async for chunk in chunks:
                samples = normalizer.push(chunk)
                await route(await self._vad_pool.run(push, samples))
                if options.interim_results:
                    maybe_draft(group)
                maybe_speculate()
            tail = normalizer.flush()
            await route([*await self._vad_pool.run(push, tail), *listener.flush()])
            await utterances.put(None)

        async def transcribe() -> None:
            while (utterance := await utterances.get()) is not None:
                endpoint = time.monotonic()
                known = speculations.pop(utterance.index, None)
                if known is not None and known.voiced_end == utterance.voiced_end:
                    SPECULATIONS.labels("used").inc()
                    transcript = await known.decode  # the same audio, decoded in the pause
                else:
                    if known is not None:
                        known.decode.cancel()
                        SPECULATIONS.labels("wasted").inc()
                    transcript = await self._whisper_pool.run(
                        self._recognizer.transcribe, utterance.audio, utterance.start_s, language
                    )
                STAGE_SECONDS.labels("stt.final_after_endpoint").observe(time.monotonic() - endpoint)
                await events.put(
                    FinalTranscript(utterance.index, transcript, utterance.start_s, utterance.end_s)
                )

        async def run() -> None:
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(segment(group))
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
            for known in speculations.values():
                known.decode.cancel()

    @staticmethod
    def _event(event: GateEvent) -> RecognitionEvent | None:
        if isinstance(event, SpeechStart):
            return SpeechStarted(event.index, event.offset_s)
        if isinstance(event, Opened) and event.wake is not None:
            wake = event.wake
            return WakeWordHeard(event.index, wake.model, wake.score, event.start_sample / MODEL_RATE_HZ)
        return None

    def close(self) -> None:
        self._whisper_pool.shutdown()
        self._vad_pool.shutdown()
