"""Has the speaker finished their turn? Smart Turn v3.2, from the sound of the speech itself.

A pause alone cannot tell "What's the weather in…" (a breath, more to come) from "What's the
weather?" (done). Smart Turn (pipecat-ai, BSD-2) is a Whisper-encoder classifier trained on
exactly that: it hears the last 8 s of the utterance, up to the pause, and says how likely the
turn is complete, from intonation, pace and the words. The ONNX file ships in the ``pipecat-ai``
wheel, installed --no-deps for the file alone (the framework is not imported). Its input is
Whisper's log-mel of the last 8 s, zero-padded at the front, computed here as pipecat does it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime

from voicemesh.common.audio import MODEL_RATE_HZ
from voicemesh.common.packages import package_file
from voicemesh.listening.mel import whisper_log_mel

CARRIER = "pipecat"  # the import name of the pipecat-ai wheel
MODEL_FILE = "audio/turn/smart_turn/data/smart-turn-v3.2-cpu.onnx"
WINDOW_SAMPLES = 8 * MODEL_RATE_HZ


def bundled_model_path() -> Path:
    path = package_file(CARRIER, MODEL_FILE)
    if not path.is_file():
        raise FileNotFoundError(f"no Smart Turn model at {path}: pip install --no-deps pipecat-ai==1.14.0")
    return path


def features(audio: np.ndarray) -> np.ndarray:
    """The model's input for ``audio`` (16 kHz float32, the utterance up to now): (1, 80, 800)."""
    window = np.asarray(audio[-WINDOW_SAMPLES:], dtype=np.float32)
    window = np.pad(window, (WINDOW_SAMPLES - window.size, 0))
    window = (window - window.mean()) / np.sqrt(window.var() + 1e-7)
    return whisper_log_mel(window)[None]


class TurnModel:
    """One loaded model, shared by every stream; thread-safe (onnxruntime sessions are)."""

    def __init__(self, model_path: Path | None = None, *, threads: int = 1) -> None:
        options = onnxruntime.SessionOptions()
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = threads
        self._session = onnxruntime.InferenceSession(
            str(model_path or bundled_model_path()), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def completion(self, audio: np.ndarray) -> float:
        """Blocking: the probability, 0 to 1, that the speaker has finished with this audio."""
        (probability,) = self._session.run(None, {"input_features": features(audio)})
        return float(np.asarray(probability).reshape(-1)[0])
