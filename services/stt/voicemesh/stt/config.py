"""Settings of the STT process (env prefix VOICEMESH_STT_, file table [stt])."""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from voicemesh.common.components import STT
from voicemesh.common.config import ServiceSettings


class SttSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix=STT.env_prefix, extra="forbid")
    section = STT.name

    port: int = STT.port
    metrics_port: int = STT.metrics_port
    model: str = Field("", description="CTranslate2 Whisper model folder; empty means the bundled tiny.en.")
    device: str = Field("cpu", description="'cpu' or 'cuda'.")
    compute_type: str = Field("int8", description="CTranslate2 compute type: int8, int8_float16, float16 …")
    cpu_threads: int = Field(
        0,
        ge=0,
        description="Threads per transcription; 0: one per core (at most 4) on an idle box, one "
        "while another decode runs or another process holds a core (a second copy of the model).",
    )
    min_window_s: float = Field(
        10.0,
        ge=1,
        le=30,
        description="Shortest audio window Whisper encodes (30 = Whisper's fixed window, 4x slower).",
    )
    beam_size: int = Field(
        5,
        ge=1,
        le=10,
        description="Beam width of final decodes (partials are greedy). 5, faster-whisper's own default: "
        "bench/wer.py measured 15.8% WER against 20.7% greedy on its held-out set; 1 is fastest.",
    )
    language: str = Field("en", description="Default language; a stream's language_code overrides it.")
    vad_threshold: float = Field(0.5, gt=0, lt=1, description="Speech probability that starts speech.")
    min_silence_ms: int = Field(
        500, ge=32, description="Silence that ends an utterance in fixed endpointing."
    )
    endpointing: Literal["semantic", "fixed"] = Field(
        "semantic",
        description="Default end of turn: 'semantic' judges each pause (Smart Turn and the transcript) "
        "and waits when the speaker is not done; 'fixed' ends every turn after min_silence_ms.",
    )
    turn_model: bool = Field(
        True,
        description="Load Smart Turn v3.2 (its ONNX file from the pipecat-ai wheel, installed --no-deps) "
        "for semantic endpointing; off, only fixed endpointing is served.",
    )
    turn_threshold: float = Field(
        0.5, gt=0, lt=1, description="Smart Turn probability at or over which a pause ends the turn."
    )
    max_wait_ms: int = Field(
        1500, ge=300, le=10_000, description="Semantic: silence waited after a pause judged unfinished."
    )
    min_speech_ms: int = Field(
        200, ge=32, le=2000, description="Voiced audio before a sound counts as speech (and can barge in)."
    )
    speculate_after_ms: int = Field(
        200,
        ge=32,
        description="Pause after which the utterance is decoded as if it had ended (and, in semantic "
        "mode, judged); never less than speech_pad_ms, so the decode hears what the final would.",
    )
    speech_pad_ms: int = Field(200, ge=0, description="Audio kept around each utterance.")
    max_utterance_s: float = Field(30.0, gt=1, description="Longest utterance before it is cut.")
    partial_interval_ms: int = Field(
        500, ge=100, description="New speech between two partial decodes of a stream that asked for them."
    )
    wake_words: list[str] = Field(
        ["hey_jarvis", "alexa", "hey_mycroft", "hey_rhasspy"],
        description="Wake word models streams may ask for: bundled names or .onnx paths; the first is "
        "the default. Empty turns server-side wake words off.",
    )
    wake_threshold: float = Field(0.5, gt=0, lt=1, description="Default wake word detection score.")
    wake_patience: int = Field(
        2, ge=1, le=10, description="80 ms frames in a row at or over the threshold before it fires."
    )
    speaker_model: bool = Field(
        True,
        description="Load Resemblyzer's speaker encoder (package resemblyzer, installed --no-deps) for "
        "voice prints and the streams that check one; off, such requests are refused.",
    )
    speaker_threshold: float = Field(
        0.85,
        gt=0,
        lt=1,
        description="Default score at or above which an utterance's voice matches the print. "
        "bench/speaker.py over 81 voices: 1.8% of impostors accepted, 0.3% of genuine turns refused "
        "(equal error rate 1.2% at 0.87).",
    )
