"""Streaming recognition: the models and pools one STT process shares between its streams. No gRPC here."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, replace

import numpy as np

from voicemesh.common.audio import MODEL_RATE_HZ, PcmFormat
from voicemesh.common.blocking import BlockingPool
from voicemesh.common.errors import FailedPrecondition, InvalidRequest
from voicemesh.common.samples import PcmNormalizer
from voicemesh.listening.gate import Gate, GateConfig
from voicemesh.listening.segmenter import Segmenter, SegmenterConfig, Utterance
from voicemesh.listening.turn import TurnModel
from voicemesh.listening.vad import SileroVad
from voicemesh.listening.wakeword import WakeWordModels
from voicemesh.stt.endpointing import Mode, Semantic
from voicemesh.stt.events import RecognitionEvent, StreamOptions
from voicemesh.stt.recognizer import WhisperRecognizer
from voicemesh.stt.speaker import SpeakerEncoder
from voicemesh.stt.stream import Decoding, RecognitionStream

MIN_ENROLL_SPEECH_S = 1.0


@dataclass(frozen=True)
class TurnEnding:
    """The process's default endpointing, each part of which a stream may override."""

    mode: Mode = Mode.SEMANTIC
    threshold: float = 0.5  # Smart Turn probability that ends a turn
    max_wait_ms: int = 1500  # silence after a pause judged unfinished


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
        speaker: SpeakerEncoder | None = None,
        turn_model: TurnModel | None = None,
        turn_ending: TurnEnding | None = None,
    ) -> None:
        """Without ``turn_model``, semantic endpointing is refused and fixed silence is the default."""
        self._vad = vad
        self._segmenter_config = segmenter or SegmenterConfig()
        self._turn_ending = turn_ending or TurnEnding(Mode.SEMANTIC if turn_model else Mode.FIXED)
        if self._turn_ending.mode is Mode.SEMANTIC and turn_model is None:
            raise ValueError("semantic endpointing by default needs the turn model")
        self._wake_words = wake_words
        self._wake_threshold = wake_threshold
        self._wake_patience = wake_patience
        self._decoding = Decoding(
            recognizer,
            BlockingPool(workers, "whisper"),
            # VAD frames are short; their own pool keeps them flowing while Whisper is busy.
            BlockingPool(max(2, workers), "vad"),
            partial_interval=partial_interval_ms * MODEL_RATE_HZ // 1000,
            # Never before the pad: a pause decoded sooner would lack the end the final keeps.
            speculate_after=max(speculate_after_ms, self._segmenter_config.speech_pad_ms)
            * MODEL_RATE_HZ
            // 1000,
            speaker=speaker,
            # Its own worker: a voice is scored while Whisper decodes, never queued behind it.
            speaker_pool=BlockingPool(1, "speaker") if speaker is not None else None,
            pad=self._segmenter_config.speech_pad_ms * MODEL_RATE_HZ // 1000,
            turn_model=turn_model,
            # Its own worker, like the speaker check: a pause is judged while Whisper decodes it.
            turn_pool=BlockingPool(1, "turn") if turn_model is not None else None,
        )

    @property
    def recognizer(self) -> WhisperRecognizer:
        return self._decoding.recognizer

    @property
    def speaker(self) -> SpeakerEncoder | None:
        return self._decoding.speaker

    async def embed_voice(self, fmt: PcmFormat, pcm: bytes) -> tuple[np.ndarray, float]:
        """A recording's voice print and its seconds of speech: the speech the VAD hears in it,
        joined, so silence and noise around the words do not shape the print."""
        encoder, pool = self._decoding.speaker, self._decoding.speaker_pool
        if encoder is None or pool is None:
            raise FailedPrecondition("this STT service has no speaker model loaded (speaker_model is off)")
        normalizer = PcmNormalizer(fmt)
        samples = np.concatenate([normalizer.push(pcm), normalizer.flush()])
        config = replace(self._segmenter_config, max_utterance_s=30.0)
        segmenter = Segmenter(self._vad.stream(), config)
        heard = await self._decoding.vad.run(lambda: [*segmenter.push(samples), *segmenter.flush()])
        speech = [event for event in heard if isinstance(event, Utterance)]
        voiced_s = sum(max(0, u.voiced_end - self._decoding.pad) for u in speech) / MODEL_RATE_HZ
        if voiced_s < MIN_ENROLL_SPEECH_S:
            raise InvalidRequest(
                f"only {voiced_s:.1f} s of speech heard in the recording; "
                f"each sample needs at least {MIN_ENROLL_SPEECH_S:g} s of one person speaking"
            )
        audio = np.concatenate([u.audio for u in speech])
        return await pool.run(encoder.embed, audio), voiced_s

    def _semantic(self, options: StreamOptions) -> Semantic | None:
        if (options.mode or self._turn_ending.mode) is Mode.FIXED:
            return None
        if self._decoding.turn_model is None:
            raise FailedPrecondition(
                "this STT service has no turn model loaded (turn_model is off); use endpointing mode FIXED"
            )
        second_look = (
            (options.min_silence_ms or self._segmenter_config.min_silence_ms) * MODEL_RATE_HZ // 1000
        )
        return Semantic(options.turn_threshold or self._turn_ending.threshold, second_look)

    def _listener(self, options: StreamOptions, semantic: Semantic | None) -> Segmenter | Gate:
        """A plain segmenter, or a gate that opens on the wake word (checked before any audio)."""
        if semantic is None:
            silence = options.min_silence_ms or self._segmenter_config.min_silence_ms
        else:  # silence ends the turn only once a pause judged unfinished has waited this long
            silence = options.max_wait_ms or self._turn_ending.max_wait_ms
        segmenting = replace(
            self._segmenter_config,
            min_silence_ms=silence,
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

    def recognize(
        self, fmt: PcmFormat, chunks: AsyncIterable[bytes], options: StreamOptions | None = None
    ) -> AsyncIterator[RecognitionEvent]:
        """Speech events and transcripts of one stream, in order (see ``RecognitionStream``).

        With ``options.wake``, audio is dropped until the wake word is heard; only the utterance
        after it is transcribed, and then the stream listens for the wake word again.
        """
        return self.stream(fmt, options).events(chunks)

    def stream(self, fmt: PcmFormat, options: StreamOptions | None = None) -> RecognitionStream:
        options = options or StreamOptions()
        semantic = self._semantic(options)
        listener = self._listener(options, semantic)
        return RecognitionStream(self._decoding, listener, PcmNormalizer(fmt), options, semantic)

    def close(self) -> None:
        self._decoding.whisper.shutdown()
        self._decoding.vad.shutdown()
        for pool in (self._decoding.speaker_pool, self._decoding.turn_pool):
            if pool is not None:
                pool.shutdown()
