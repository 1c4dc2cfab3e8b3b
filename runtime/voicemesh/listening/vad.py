"""Silero VAD, streamed frame by frame with onnxruntime.

The model file comes from the ``silero-vad`` package. We run it directly with onnxruntime (as the
package's own OnnxWrapper does) instead of importing the package, which would import torch: one
session is shared by every stream, and each stream keeps only its recurrent state and 64 samples of
context.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime

from voicemesh.common.packages import package_file

FRAME_SAMPLES = 512  # 32 ms at 16 kHz, the only window the 16 kHz model takes
_CONTEXT_SAMPLES = 64
_RATE = np.array(16_000, dtype=np.int64)


def bundled_model_path() -> Path:
    return package_file("silero_vad", "data/silero_vad.onnx")


class SileroVad:
    """The shared model."""

    def __init__(self, model_path: Path | None = None) -> None:
        options = onnxruntime.SessionOptions()
        options.inter_op_num_threads = 1
        options.intra_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            str(model_path or bundled_model_path()), sess_options=options, providers=["CPUExecutionProvider"]
        )

    def stream(self) -> VadStream:
        return VadStream(self._session)


class VadStream:
    """Per-stream state: about 1 KiB."""

    def __init__(self, session: onnxruntime.InferenceSession) -> None:
        self._session = session
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros((1, _CONTEXT_SAMPLES), dtype=np.float32)

    def probability(self, frame: np.ndarray) -> float:
        """Speech probability of one 512-sample frame of 16 kHz audio."""
        window = np.concatenate([self._context, frame.reshape(1, FRAME_SAMPLES)], axis=1)
        output, self._state = self._session.run(None, {"input": window, "state": self._state, "sr": _RATE})
        self._context = window[:, -_CONTEXT_SAMPLES:]
        return float(output[0, 0])
