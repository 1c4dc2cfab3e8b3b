"""One recognition stream: its listener, the decodes it has in flight, and its events in order.

The stream segments its audio while earlier utterances are transcribed. With ``interim_results``
the utterance being heard is re-decoded every ``partial_interval`` samples of new speech (one
draft at a time; a busy pool skips a draft rather than queue it), and the words two drafts in a
row agree on are committed. Once a pause reaches ``speculate_after`` samples, the utterance is
decoded as if the pause were its end; if the endpoint follows with no more speech, that decode is
the final result, so the final comes out at the endpoint instead of a decode later. With
``speculative_results`` it is also sent at once, as a speculative partial; if the speaker then goes
on, the decode is cancelled and a ``SpeechResumed`` says the partial is stale. The pause decode
waits for ``speech_pad_ms`` of silence, so it hears exactly the audio the final would.

In semantic mode the same pause is judged (``endpointing.judge``): Smart Turn on its own worker
while Whisper decodes, then the transcript. A turn judged finished ends there, a few hundred
milliseconds before a fixed silence would end it; an unfinished one waits for more speech.

A stream with a voice print scores each utterance's voice on its own pool while Whisper decodes the
same audio, so the verdict comes with the transcript, not after it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from voicemesh.common.audio import MODEL_RATE_HZ
from voicemesh.common.blocking import BlockingPool
from voicemesh.common.metrics import ENDPOINTS, SPECULATIONS, STAGE_SECONDS, TURN_JUDGEMENTS
from voicemesh.common.samples import PcmNormalizer
from voicemesh.listening.gate import Gate, GateEvent, Opened
from voicemesh.listening.ring import SampleRing
from voicemesh.listening.segmenter import Segmenter, SpeechStart, Utterance
from voicemesh.listening.turn import WINDOW_SAMPLES as TURN_WINDOW_SAMPLES
from voicemesh.listening.turn import TurnModel
from voicemesh.listening.vad import FRAME_SAMPLES
from voicemesh.stt.agreement import LocalAgreement
from voicemesh.stt.endpointing import Semantic, judge
from voicemesh.stt.events import (
    FinalTranscript,
    PartialTranscript,
    RecognitionEvent,
    SpeculativeTranscript,
    SpeechEnded,
    SpeechResumed,
    SpeechStarted,
    StreamOptions,
    WakeWordHeard,
)
from voicemesh.stt.recognizer import Transcript, WhisperRecognizer
from voicemesh.stt.speaker import SpeakerEncoder, SpeakerScore, compare

Heard = tuple[Transcript, SpeakerScore | None]


@dataclass(frozen=True)
class Decoding:
    """What the streams of one process share: the model, its pools, and when to decode."""

    recognizer: WhisperRecognizer
    whisper: BlockingPool
    vad: BlockingPool
    partial_interval: int  # samples of new speech between two drafts
    speculate_after: int  # samples of pause before the utterance is decoded as if it had ended
    speaker: SpeakerEncoder | None = None  # None: this process checks no voices
    speaker_pool: BlockingPool | None = None
    pad: int = 0  # samples of audio kept before each utterance's speech
    turn_model: TurnModel | None = None  # None: this process has no semantic endpointing
    turn_pool: BlockingPool | None = None


@dataclass
class _Speculation:
    voiced_end: int  # samples of the utterance before the pause it was decoded in
    decode: asyncio.Future[Heard]
    announced: bool = False  # sent as a speculative result


class RecognitionStream:
    def __init__(
        self,
        decoding: Decoding,
        listener: Segmenter | Gate,
        normalizer: PcmNormalizer,
        options: StreamOptions,
        semantic: Semantic | None = None,
    ) -> None:
        """``semantic``: judge each pause (needs the process's turn model); None: fixed silence."""
        assert semantic is None or decoding.turn_model is not None, "semantic endpointing needs the model"
        self._decoding = decoding
        self._listener = listener
        self._normalizer = normalizer
        self._options = options
        self._semantic = semantic
        self._mode = "fixed" if semantic is None else "semantic"
        self._second_look: tuple[_Speculation, str] | None = None  # a pause to judge again
        # What Smart Turn hears: the last 8 s of the stream, not just this utterance, so a turn that
        # goes on after one ended too soon ("And so my fellow Americans," … "ask not") is heard as
        # the continuation it is.
        self._recent = SampleRing(TURN_WINDOW_SAMPLES) if semantic is not None else None
        # A semantic stream hears its audio a frame at a time, so a pause is judged where it lies in
        # the audio however fast the audio comes: a file is cut as a live speaker would be.
        self._piece = FRAME_SAMPLES if semantic is not None else 0
        self._events: asyncio.Queue[RecognitionEvent | BaseException | None] = asyncio.Queue()
        # Utterances waiting for Whisper, at most a few: past that, segmenting (and so the caller's
        # upload) waits for transcription instead of memory growing.
        self._utterances: asyncio.Queue[Utterance | None] = asyncio.Queue(maxsize=4)
        self._last_ended = -1  # utterances up to this one have ended: their drafts are stale
        self._drafted: dict[int, int] = {}  # samples of each utterance already sent to a draft
        self._agreements: dict[int, LocalAgreement] = {}
        self._drafting: asyncio.Task[None] | None = None
        self._speculations: dict[int, _Speculation] = {}

    def held(self) -> int:
        """Utterances the stream still keeps state for (drafts, agreements, pause decodes)."""
        return len(self._drafted.keys() | self._agreements.keys() | self._speculations.keys())

    async def events(self, chunks: AsyncIterable[bytes]) -> AsyncIterator[RecognitionEvent]:
        """Events in order, while the stream is segmented and transcribed behind them."""
        worker = asyncio.create_task(self._run(chunks))
        try:
            while (event := await self._events.get()) is not None:
                if isinstance(event, BaseException):
                    raise event
                yield event
        finally:
            worker.cancel()
            for known in self._speculations.values():
                known.decode.cancel()

    async def _run(self, chunks: AsyncIterable[bytes]) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._segment(chunks, group))
                group.create_task(self._transcribe())
        except BaseExceptionGroup as group_error:
            await self._events.put(group_error.exceptions[0])
        else:
            await self._events.put(None)

    async def _segment(self, chunks: AsyncIterable[bytes], group: asyncio.TaskGroup) -> None:
        vad, listener = self._decoding.vad, self._listener
        push: Callable[[np.ndarray], Sequence[GateEvent]] = listener.push
        async for chunk in chunks:
            for piece in self._pieces(self._normalizer.push(chunk)):
                if self._recent is not None:
                    self._recent.extend(piece)
                await self._route(await vad.run(push, piece))
                self._maybe_resume()
                if self._options.interim_results:
                    self._maybe_draft(group)
                speculation = self._maybe_speculate()
                if self._semantic is not None:
                    if speculation is not None:
                        await self._judge(speculation)
                    await self._maybe_look_again()
        tail = self._normalizer.flush()
        await self._route([*await vad.run(push, tail), *listener.flush()])
        await self._utterances.put(None)

    def _pieces(self, samples: np.ndarray) -> Iterator[np.ndarray]:
        if not self._piece:
            yield samples
            return
        for start in range(0, samples.size, self._piece):
            yield samples[start : start + self._piece]

    async def _route(self, heard: Sequence[GateEvent]) -> None:
        for event in heard:
            if isinstance(event, Utterance):
                ENDPOINTS.labels(self._mode, event.ended_by).inc()
                self._last_ended = event.index
                # What partials kept for this utterance is of no use any more.
                self._drafted.pop(event.index, None)
                self._agreements.pop(event.index, None)
                # Said at the endpoint, not after Whisper: the client's turn clock starts here.
                await self._events.put(SpeechEnded(event.index, event.end_s))
                await self._utterances.put(event)
            elif isinstance(event, SpeechStart):
                await self._events.put(SpeechStarted(event.index, event.offset_s))
            elif isinstance(event, Opened) and event.wake is not None:
                wake, offset_s = event.wake, event.start_sample / MODEL_RATE_HZ
                await self._events.put(WakeWordHeard(event.index, wake.model, wake.score, offset_s))

    async def _transcribe(self) -> None:
        while (utterance := await self._utterances.get()) is not None:
            endpoint = time.monotonic()
            known = self._speculations.pop(utterance.index, None)
            if known is not None and known.voiced_end == utterance.voiced_end:
                SPECULATIONS.labels("used").inc()
                transcript, speaker = await known.decode  # the same audio, decoded in the pause
            else:
                if known is not None:
                    known.decode.cancel()
                    SPECULATIONS.labels("wasted").inc()
                transcript, speaker = await self._hear(
                    utterance.audio, utterance.start_s, utterance.voiced_end
                )
            STAGE_SECONDS.labels("stt.final_after_endpoint").observe(time.monotonic() - endpoint)
            await self._events.put(
                FinalTranscript(utterance.index, transcript, utterance.start_s, utterance.end_s, speaker)
            )

    async def _hear(self, audio: np.ndarray, start_s: float, voiced: int) -> Heard:
        """The transcript and the speaker check of the same audio, side by side."""
        decoding = self._decoding
        options = self._options
        decode = decoding.whisper.run(
            decoding.recognizer.transcribe,
            audio,
            start_s,
            options.language,
            options.vocabulary,
            voiced / MODEL_RATE_HZ,
        )
        check = self._options.speaker
        if check is None:
            return await decode, None
        encoder, pool = decoding.speaker, decoding.speaker_pool
        assert encoder is not None and pool is not None, "a speaker check needs the process's encoder"
        speech_s = max(0, voiced - decoding.pad) / MODEL_RATE_HZ

        def score() -> SpeakerScore:
            started = time.monotonic()
            embedding = encoder.embed(audio)
            STAGE_SECONDS.labels("stt.speaker_check").observe(time.monotonic() - started)
            return compare(embedding, check.voice_print, check.threshold, speech_s)

        transcript, speaker = await asyncio.gather(decode, pool.run(score))
        return transcript, speaker

    def _maybe_draft(self, group: asyncio.TaskGroup) -> None:
        progress = self._listener.in_progress()
        if progress is None or progress.pause or (self._drafting is not None and not self._drafting.done()):
            return  # one draft at a time per stream, none in pauses; a busy pool skips, not queues
        if progress.samples - self._drafted.get(progress.index, 0) >= self._decoding.partial_interval:
            self._drafted[progress.index] = progress.samples
            audio = self._listener.speech_so_far()
            self._drafting = group.create_task(self._draft(progress.index, progress.start, audio))

    async def _draft(self, index: int, start: int, audio: np.ndarray) -> None:
        decoding = self._decoding
        options = self._options
        words = await decoding.whisper.run(
            decoding.recognizer.draft, audio, options.language, options.vocabulary
        )
        if index <= self._last_ended:
            return
        agreement = self._agreements.setdefault(index, LocalAgreement())
        shown = agreement.update(words)
        start_s = start / MODEL_RATE_HZ
        end_s = start_s + audio.size / MODEL_RATE_HZ
        self._events.put_nowait(PartialTranscript(index, shown, list(agreement.committed), start_s, end_s))

    def _maybe_resume(self) -> None:
        """The speaker went on after a pause: its decode is stale, and stops holding a worker."""
        progress = self._listener.in_progress()
        if progress is None or progress.pause:
            return
        known = self._speculations.get(progress.index)
        if known is None or known.voiced_end == progress.voiced_end:
            return
        del self._speculations[progress.index]
        known.decode.cancel()
        SPECULATIONS.labels("wasted").inc()
        if known.announced:
            offset_s = (progress.start + progress.samples) / MODEL_RATE_HZ
            self._events.put_nowait(SpeechResumed(progress.index, offset_s))

    def _maybe_speculate(self) -> _Speculation | None:
        """Decode the utterance in its pause, once per pause; returns a decode it has just started."""
        progress = self._listener.in_progress()
        if progress is None or progress.pause < self._decoding.speculate_after:
            return None
        index, voiced_end = progress.index, progress.voiced_end
        known = self._speculations.get(index)
        if known is not None:
            if known.voiced_end == voiced_end:
                return None  # this pause is already being decoded
            known.decode.cancel()
            SPECULATIONS.labels("wasted").inc()
        audio = self._listener.as_if_ended()
        start_s = progress.start / MODEL_RATE_HZ
        decode = asyncio.ensure_future(self._hear(audio, start_s, voiced_end))
        decode.add_done_callback(lambda done: done.cancelled() or done.exception())  # never unheard
        speculation = self._speculations[index] = _Speculation(voiced_end, decode)
        if self._options.speculative_results:
            end_s = start_s + audio.size / MODEL_RATE_HZ
            decode.add_done_callback(lambda done: self._announce(index, speculation, start_s, end_s))
        return speculation

    async def _judge(self, speculation: _Speculation) -> None:
        """Semantic mode: end the turn in this pause if the speech sounds, and reads, finished.

        The stream hears no more audio until the pause is judged (Smart Turn runs while Whisper
        decodes the pause, and the judgement needs both), so the turn ends where the pause is.
        """
        started = time.monotonic()
        probability = await self._turn_probability()
        await asyncio.wait([speculation.decode])
        if speculation.decode.cancelled() or speculation.decode.exception() is not None:
            return  # the speaker went on (or the decode failed, and the stream with it)
        transcript, _ = speculation.decode.result()
        await self._decide(speculation, transcript.text, probability, started, "")

    async def _maybe_look_again(self) -> None:
        """A pause that only sounded unfinished is heard again once it is as long as a fixed silence:
        Smart Turn hears a finished question better with half a second of silence after it (0.19
        at 200 ms, 0.86 at 500 ms for one "What is two plus two?"), and a breath mid-sentence no
        better (JFK's: 0.02 both times)."""
        looking = self._second_look
        progress = self._listener.in_progress()
        if looking is None or progress is None:
            return
        speculation, text = looking
        if progress.voiced_end != speculation.voiced_end:
            self._second_look = None  # the speaker went on
            return
        assert self._semantic is not None
        if progress.pause >= self._semantic.second_look_after:
            self._second_look = None
            started = time.monotonic()
            await self._decide(speculation, text, await self._turn_probability(), started, "_on_second_look")

    async def _turn_probability(self) -> float:
        decoding = self._decoding
        assert decoding.turn_model is not None and decoding.turn_pool is not None
        assert self._recent is not None
        heard = self._recent.since(self._recent.start)
        started = time.monotonic()
        probability = await decoding.turn_pool.run(decoding.turn_model.completion, heard)
        STAGE_SECONDS.labels("stt.turn_model").observe(time.monotonic() - started)
        return probability

    async def _decide(
        self, speculation: _Speculation, text: str, probability: float, started: float, look: str
    ) -> None:
        assert self._semantic is not None
        judgement = judge(probability, text, self._semantic)
        STAGE_SECONDS.labels("stt.turn_judgement").observe(time.monotonic() - started)
        TURN_JUDGEMENTS.labels(judgement.reason + look).inc()
        if judgement.complete:
            await self._route(self._listener.end_turn())
        elif judgement.reason == "sound_unfinished" and not look:
            self._second_look = (speculation, text)
        # else: wait for more speech, or for the silence to run out

    def _announce(self, index: int, speculation: _Speculation, start_s: float, end_s: float) -> None:
        """Send a pause's decode as a speculative result, unless it is stale by the time it is done."""
        done = speculation.decode
        if done.cancelled() or done.exception() is not None or index <= self._last_ended:
            return
        now = self._listener.in_progress()
        if (
            self._speculations.get(index) is not speculation
            or now is None
            or now.voiced_end != speculation.voiced_end
        ):
            return  # the user spoke on while it was decoded: it is stale already
        agreement = self._agreements.get(index)
        committed = list(agreement.committed) if agreement is not None else []
        transcript, speaker = done.result()
        speculation.announced = True
        self._events.put_nowait(SpeculativeTranscript(index, transcript, committed, start_s, end_s, speaker))
