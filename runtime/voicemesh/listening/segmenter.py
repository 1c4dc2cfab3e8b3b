"""Cuts a 16 kHz stream into utterances with Silero VAD.

A pure state machine: feed samples, get back events. Speech starts when a frame's probability
reaches the threshold, and counts once ``min_speech_ms`` of frames have (a cough or a click never
does: it makes no events at all). It ends after ``min_silence_ms`` of frames below
``threshold - 0.15`` (the hysteresis Silero recommends), when an utterance reaches
``max_utterance_s``, or when its owner ends it in a pause (``end_turn``: a turn judged finished).
Each utterance keeps ``speech_pad_ms`` of audio on both sides so Whisper hears the first and last
phonemes whole.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from voicemesh.common.audio import MODEL_RATE_HZ
from voicemesh.listening.buffers import SpeechBuffer
from voicemesh.listening.frames import Framer
from voicemesh.listening.vad import FRAME_SAMPLES, VadStream


@dataclass(frozen=True)
class SegmenterConfig:
    threshold: float = 0.5
    min_silence_ms: int = 500
    min_speech_ms: int = 200
    speech_pad_ms: int = 200
    max_utterance_s: float = 30.0


@dataclass(frozen=True)
class SpeechStart:
    index: int
    offset_s: float


@dataclass(frozen=True)
class Utterance:
    """A finished utterance: its audio and where it lies in the stream."""

    index: int
    audio: np.ndarray
    start_s: float
    end_s: float
    voiced_end: int = 0  # samples from its start to the end of its last voiced frame
    ended_by: str = "silence"  # or "turn" (end_turn), "length" (max_utterance_s), "end_of_stream"


@dataclass(frozen=True)
class InProgress:
    """The utterance being heard."""

    index: int
    start: int  # stream position of its first sample
    samples: int  # heard so far
    pause: int  # samples of the silence it currently ends in (0 while the user speaks)

    @property
    def voiced_end(self) -> int:
        return self.samples - self.pause


SegmentEvent = SpeechStart | Utterance


class Segmenter:
    def __init__(
        self, vad: VadStream, config: SegmenterConfig | None = None, *, origin: int = 0, first_index: int = 0
    ) -> None:
        """``origin`` is the stream position of the first sample pushed, so offsets stay absolute."""
        self._vad = vad
        self._config = cfg = config or SegmenterConfig()
        self._pad = int(cfg.speech_pad_ms * MODEL_RATE_HZ / 1000)
        # Rounded up: 500 ms of silence is 16 frames (512 ms), never 15 (480 ms).
        self._silence_frames = max(1, math.ceil(cfg.min_silence_ms * MODEL_RATE_HZ / 1000 / FRAME_SAMPLES))
        self._speech_frames = max(1, round(cfg.min_speech_ms * MODEL_RATE_HZ / 1000 / FRAME_SAMPLES))
        self._max_samples = int(cfg.max_utterance_s * MODEL_RATE_HZ)
        self._framer = Framer(FRAME_SAMPLES)
        self._preroll = np.zeros(0, dtype=np.float32)  # the last speech_pad_ms before speech
        # Room for the longest utterance, its pad and the frame that ends it.
        self._speech = SpeechBuffer(self._max_samples + self._pad + FRAME_SAMPLES)
        self._in_speech = False
        self._confirmed = False  # enough voiced frames for this to be speech
        self._voiced_frames = 0
        self._silent_frames = 0
        self._consumed = origin  # stream position of the next frame the VAD sees
        self._start_sample = origin
        self._count = first_index

    def push(self, samples: np.ndarray) -> list[SegmentEvent]:
        events: list[SegmentEvent] = []
        for frame in self._framer.split(samples):
            events.extend(self._frame(frame))
        return events

    @property
    def nbytes(self) -> int:
        return self._speech.nbytes + self._preroll.nbytes + self._framer.pending.nbytes

    def in_progress(self) -> InProgress | None:
        if not self._confirmed:
            return None
        pause = self._silent_frames * FRAME_SAMPLES
        return InProgress(self._count, self._start_sample, self._speech.size, pause)

    def speech_so_far(self) -> np.ndarray:
        return self._speech.head(self._speech.size)

    def as_if_ended(self) -> np.ndarray:
        """The audio the utterance would have if its pause turned out to be the endpoint."""
        trailing = max(0, self._silent_frames * FRAME_SAMPLES - self._pad)
        return self._speech.head(self._speech.size - trailing)

    def end_turn(self) -> list[SegmentEvent]:
        """End the utterance in the pause it is in now, as if its silence had run out."""
        if not self._confirmed or not self._silent_frames:
            return []
        return self._finish("turn")

    def flush(self) -> list[SegmentEvent]:
        """End of stream: finish an utterance in progress."""
        rest = self._framer.take_pending()
        if self._confirmed:
            self._consumed += rest.size
            self._speech.append(rest)
            return self._finish("end_of_stream")
        self._reset()
        return []

    def _frame(self, frame: np.ndarray) -> list[SegmentEvent]:
        prob = self._vad.probability(frame)
        self._consumed += FRAME_SAMPLES
        cfg = self._config
        if not self._in_speech:
            if prob >= cfg.threshold:
                self._in_speech = True
                self._voiced_frames = 0
                self._start_sample = self._consumed - FRAME_SAMPLES - self._preroll.size
                self._speech.append(self._preroll)
            elif self._pad:
                self._preroll = np.concatenate([self._preroll, frame])[-self._pad :]
        if not self._in_speech:
            return []
        self._speech.append(frame)
        events: list[SegmentEvent] = []
        if prob >= cfg.threshold:
            self._voiced_frames += 1
            if not self._confirmed and self._voiced_frames >= self._speech_frames:
                self._confirmed = True
                events.append(SpeechStart(self._count, self._start_sample / MODEL_RATE_HZ))
        self._silent_frames = self._silent_frames + 1 if prob < cfg.threshold - 0.15 else 0
        too_long = self._speech.size >= self._max_samples
        if self._silent_frames >= self._silence_frames or too_long:
            if self._confirmed:
                events.extend(self._finish("length" if too_long else "silence"))
            else:  # too little voice to be speech: forget it, keeping the pad before what comes next
                self._preroll = self._speech.tail(self._pad) if self._pad else self._preroll
                self._reset()
        return events

    def _reset(self) -> None:
        self._in_speech = self._confirmed = False
        self._silent_frames = self._voiced_frames = 0
        self._speech.clear()

    def _finish(self, ended_by: str) -> list[SegmentEvent]:
        # Trim trailing silence down to the pad, so Whisper is not fed half a second of nothing.
        audio = self.as_if_ended()
        voiced_end = self._speech.size - self._silent_frames * FRAME_SAMPLES
        self._reset()
        self._preroll = np.zeros(0, dtype=np.float32)
        index = self._count
        self._count += 1
        start = self._start_sample / MODEL_RATE_HZ
        return [Utterance(index, audio, start, start + audio.size / MODEL_RATE_HZ, voiced_end, ended_by)]
