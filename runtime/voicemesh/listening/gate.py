"""The gate: nothing passes until the user addresses the assistant; then one utterance does.

While listening, every sample feeds the trigger and a ring holding the last ``pre_roll_ms``. The
trigger is a wake word or, with no wake word configured, voice activity alone. When it fires, the
gate opens at a cut point and hands over the ring from there:

- after a wake word, the cut is where the phrase ended: the detector fires a few frames late, and
  the user may already be saying the command, so the ring keeps that start from being clipped
  while the wake phrase itself and everything before it stay behind;
- after voice activity, the cut is ``pre_roll_ms`` before the onset, so the first syllable is whole.

A Segmenter then finds where the utterance ends; the gate closes there (or when no speech follows
the wake word in time) and listens again. A pure state machine: samples in, events out.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from voicemesh.common.audio import MODEL_RATE_HZ
from voicemesh.listening.frames import Framer
from voicemesh.listening.ring import SampleRing
from voicemesh.listening.segmenter import (
    InProgress,
    Segmenter,
    SegmenterConfig,
    SegmentEvent,
    SpeechStart,
    Utterance,
)
from voicemesh.listening.vad import FRAME_SAMPLES as VAD_FRAME
from voicemesh.listening.vad import SileroVad, VadStream
from voicemesh.listening.wakeword import Detection, WakeWordStream

# How far before the detection the command may begin. The bundled models fire within about 100 ms
# of the phrase's end; on piper speech run straight on into a command, cutting at the detection
# lost the first word ("on the kitchen lights"), 320 ms or more let the phrase's tail in ("was
# turned on …"), and 160-240 ms gave exact transcripts.
WAKE_LATENCY_MS = 200


def _samples(ms: float) -> int:
    return int(ms * MODEL_RATE_HZ / 1000)


@dataclass(frozen=True)
class GateConfig:
    pre_roll_ms: int = 1000
    wake_latency_ms: int = WAKE_LATENCY_MS
    no_speech_timeout_s: float = 3.0
    segmenter: SegmenterConfig = field(default_factory=SegmenterConfig)


@dataclass(frozen=True)
class Opened:
    index: int  # of the utterance it opens
    start_sample: int
    audio: np.ndarray  # from the cut to the newest sample
    wake: Detection | None  # None when voice activity opened it


@dataclass(frozen=True)
class Passed:
    """Audio that went through the open gate after it opened."""

    audio: np.ndarray


@dataclass(frozen=True)
class Closed:
    end_sample: int
    reason: str  # "end_of_speech", "no_speech" or "end_of_stream"


GateEvent = Opened | Passed | SpeechStart | Utterance | Closed


class _VoiceTrigger:
    """Fires at the first voiced frame."""

    def __init__(self, vad: VadStream, threshold: float, position: int) -> None:
        self._vad = vad
        self._threshold = threshold
        self._framer = Framer(VAD_FRAME)
        self._position = position  # of the next frame

    def push(self, samples: np.ndarray) -> int | None:
        onset = None
        for frame in self._framer.split(samples):
            if onset is None and self._vad.probability(frame) >= self._threshold:
                onset = self._position
            self._position += VAD_FRAME
        return onset


class Gate:
    def __init__(self, vad: SileroVad, wake: WakeWordStream | None, config: GateConfig | None = None) -> None:
        self._vad = vad
        self._wake = wake
        self._config = cfg = config or GateConfig()
        self._voice = None if wake else self._voice_trigger(0)
        self._ring = SampleRing(_samples(cfg.pre_roll_ms) + _samples(80))
        self._segmenter: Segmenter | None = None
        self._opened_at = 0
        self._closed_at = 0
        self._heard_speech = False
        self._utterances = 0

    def nbytes(self) -> int:
        """Memory held per stream (the buffers, not the shared models)."""
        wake = self._wake.nbytes() if self._wake else 0
        speech = self._segmenter.nbytes if self._segmenter is not None else 0
        return self._ring.nbytes + wake + speech

    def push(self, samples: np.ndarray) -> list[GateEvent]:
        self._ring.extend(samples)
        # The wake word stream hears everything, so its context is whole when the gate closes again.
        detections = self._wake.push(samples) if self._wake else []
        if self._segmenter is not None:
            return [Passed(samples), *self._through(samples)]
        cut, wake = self._trigger(samples, detections)
        if cut is None:
            return []
        # Never before where the gate last closed: that audio went out with the previous utterance
        # (a close the server asked for, mid-pause, is followed by speech within the pre-roll).
        audio = self._ring.since(max(cut, self._closed_at))
        start = self._ring.end - audio.size
        self._segmenter = Segmenter(
            self._vad.stream(), self._config.segmenter, origin=start, first_index=self._utterances
        )
        self._opened_at, self._heard_speech = start, False
        return [Opened(self._utterances, start, audio, wake), *self._through(audio)]

    def in_progress(self) -> InProgress | None:
        return self._segmenter.in_progress() if self._segmenter is not None else None

    def speech_so_far(self) -> np.ndarray:
        assert self._segmenter is not None
        return self._segmenter.speech_so_far()

    def as_if_ended(self) -> np.ndarray:
        assert self._segmenter is not None
        return self._segmenter.as_if_ended()

    def end_turn(self) -> list[GateEvent]:
        """End the utterance in the pause it is in now (see ``Segmenter.end_turn``)."""
        if self._segmenter is None:
            return []
        return self._passed(self._segmenter.end_turn())

    def flush(self) -> list[GateEvent]:
        """End of stream: finish an utterance in progress."""
        if self._segmenter is None:
            return []
        events: list[GateEvent] = list(self._segmenter.flush())
        self._utterances += len(events)
        return [*events, self._close("end_of_stream")]

    def _trigger(
        self, samples: np.ndarray, detections: list[Detection]
    ) -> tuple[int | None, Detection | None]:
        if self._voice is not None:
            onset = self._voice.push(samples)
            return (None, None) if onset is None else (onset - _samples(self._config.pre_roll_ms), None)
        if not detections:
            return None, None
        wake = max(detections, key=lambda d: d.score)
        return wake.crossed_sample - _samples(self._config.wake_latency_ms), wake

    def _through(self, audio: np.ndarray) -> list[GateEvent]:
        assert self._segmenter is not None
        return self._passed(self._segmenter.push(audio))

    def _passed(self, heard: list[SegmentEvent]) -> list[GateEvent]:
        """The segmenter's events, and the gate closing where an utterance ends."""
        events: list[GateEvent] = []
        for event in heard:
            events.append(event)
            if isinstance(event, SpeechStart):
                self._heard_speech = True
            elif isinstance(event, Utterance):
                self._utterances += 1
                events.append(self._close("end_of_speech"))
                return events
        waited = self._ring.end - self._opened_at
        if not self._heard_speech and waited >= _samples(self._config.no_speech_timeout_s * 1000):
            events.append(self._close("no_speech"))
        return events

    def _close(self, reason: str) -> Closed:
        self._segmenter = None
        self._closed_at = self._ring.end
        if self._voice is not None:
            self._voice = self._voice_trigger(self._ring.end)
        return Closed(self._ring.end, reason)

    def _voice_trigger(self, position: int) -> _VoiceTrigger:
        return _VoiceTrigger(self._vad.stream(), self._config.segmenter.threshold, position)
