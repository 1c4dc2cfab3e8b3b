"""What a recognition stream asks for and what it hears, as values between the engine and the
servicer. No gRPC here."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from voicemesh.stt.endpointing import Mode
from voicemesh.stt.recognizer import Transcript
from voicemesh.stt.speaker import SpeakerScore


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
    speaker: SpeakerScore | None = None  # when the stream checks a voice print


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
    speaker: SpeakerScore | None = None


@dataclass(frozen=True)
class SpeechEnded:
    index: int
    offset_s: float


@dataclass(frozen=True)
class SpeechResumed:
    """Speech went on after a pause whose speculative result was sent: that result is stale."""

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


@dataclass(frozen=True, eq=False)
class SpeakerOptions:
    """A stream's request to check each utterance's voice against an enrolled print."""

    voice_print: np.ndarray  # L2-normalised, the encoder's dimensions
    threshold: float


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
    speaker: SpeakerOptions | None = None
    mode: Mode | None = None  # None: the process's default
    turn_threshold: float = 0.0
    max_wait_ms: int = 0
    vocabulary: tuple[str, ...] = ()  # phrases Whisper is prompted with


RecognitionEvent = (
    SpeechStarted
    | PartialTranscript
    | SpeculativeTranscript
    | FinalTranscript
    | SpeechEnded
    | SpeechResumed
    | WakeWordHeard
)
