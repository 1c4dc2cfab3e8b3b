"""Whose voice it is: Resemblyzer's speaker encoder (a 3-layer LSTM over 40 mel bands, 256-d
d-vectors), run in numpy from the weights the ``resemblyzer`` wheel carries. No gRPC here.

The package itself would import librosa, webrtcvad and torch for what is a mel filterbank and an
LSTM; both are written out here as Resemblyzer computes them (librosa's Slaney mel filters, a
centred Hann STFT, PyTorch's LSTM gate order), and the weights come from its ``pretrained.pt``.
An utterance is cut into 1.6 s windows that overlap, each window is embedded, and the utterance's
voice is their mean, L2-normalised; two voices compare by cosine similarity.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from dataclasses import dataclass
from enum import Enum
from functools import cache
from pathlib import Path

import numpy as np

from voicemesh.common.audio import MODEL_RATE_HZ
from voicemesh.listening.mel import HOP, mel_power
from voicemesh.stt.checkpoint import load_state

CARRIER = "resemblyzer"
WINDOW_FRAMES = 160  # 1.6 s of 10 ms frames: what the encoder was trained on
FRAME_SAMPLES = HOP
N_MELS = 40
RATE = 1.3  # windows per second
MIN_COVERAGE = 0.75  # a last window with less audio than this is dropped (unless it is the only one)
TARGET_DBFS = -30.0
MIN_SPEECH_S = 0.5  # below it, a score says little: the verdict is "too short"


class Verdict(Enum):
    MATCH = "match"
    NO_MATCH = "no_match"
    TOO_SHORT = "too_short"


@dataclass(frozen=True)
class SpeakerScore:
    verdict: Verdict
    score: float
    threshold: float
    speech_s: float


def bundled_weights() -> Path:
    """``pretrained.pt`` inside the installed ``resemblyzer`` package, found without importing it."""
    spec = importlib.util.find_spec(CARRIER)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the speaker model's package is not installed: pip install --no-deps {CARRIER}==0.1.4"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"


@cache
def model_name() -> str:
    return f"{CARRIER}-{importlib.metadata.version(CARRIER)}"


class SpeakerEncoder:
    """Utterance audio (16 kHz float32) in, a 256-d voice embedding out. Thread-safe: no state."""

    def __init__(self, weights: Path | None = None) -> None:
        state = load_state(weights or bundled_weights())
        self._layers = [
            _gates_reordered(
                state[f"lstm.weight_ih_l{n}"].T,
                state[f"lstm.weight_hh_l{n}"].T,
                state[f"lstm.bias_ih_l{n}"] + state[f"lstm.bias_hh_l{n}"],
            )
            for n in range(3)
        ]
        self._linear = (state["linear.weight"].T.copy(), state["linear.bias"])
        self.dimensions = self._linear[1].size

    @staticmethod
    def mel(audio: np.ndarray) -> np.ndarray:
        """Power mel spectrogram, (frames, 40), frames centred every 10 ms as librosa makes them."""
        return mel_power(audio, N_MELS)

    def _forward(self, windows: np.ndarray) -> np.ndarray:
        """(batch, 160, 40) mel windows → (batch, 256) L2-normalised embeddings."""
        x = windows
        batch, steps, _ = x.shape
        for w_ih, w_hh, bias in self._layers:
            size = w_hh.shape[0]
            inputs = x @ w_ih + bias  # every step's input projection at once
            h = np.zeros((batch, size), dtype=np.float32)
            c = np.zeros((batch, size), dtype=np.float32)
            gates = np.empty((batch, 4 * size), dtype=np.float32)
            outputs = np.empty((batch, steps, size), dtype=np.float32)
            for t in range(steps):
                np.matmul(h, w_hh, out=gates)
                gates += inputs[:, t]
                sig = gates[:, : 3 * size]  # input, forget and output gates: one sigmoid for the three
                np.multiply(sig, 0.5, out=sig)
                np.tanh(sig, out=sig)
                sig += 1.0
                sig *= 0.5
                cell = np.tanh(gates[:, 3 * size :])
                c *= sig[:, size : 2 * size]
                cell *= sig[:, :size]
                c += cell
                h = np.tanh(c)
                h *= sig[:, 2 * size :]
                outputs[:, t] = h
            x = outputs
        weight, bias = self._linear
        raw = np.maximum(x[:, -1] @ weight + bias, 0)
        normed: np.ndarray = raw / np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), 1e-12)
        return normed

    def embed(self, audio: np.ndarray) -> np.ndarray:
        """The voice of one utterance (16 kHz mono float32), as Resemblyzer's ``embed_utterance``."""
        audio = _louder(np.asarray(audio, dtype=np.float32))
        starts = _window_starts(audio.size)
        needed = (starts[-1] + WINDOW_FRAMES) * FRAME_SAMPLES
        if needed >= audio.size:
            audio = np.pad(audio, (0, needed - audio.size))
        mel = self.mel(audio)
        windows = np.stack([mel[s : s + WINDOW_FRAMES] for s in starts])
        mean = self._forward(windows).mean(axis=0)
        embedding: np.ndarray = (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)
        return embedding


def _gates_reordered(
    w_ih: np.ndarray, w_hh: np.ndarray, bias: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PyTorch stacks an LSTM's gates input, forget, cell, output; here the three sigmoid gates come
    first (input, forget, output, then cell), so one call squashes them all."""
    size = w_hh.shape[0]
    order = np.r_[0 : 2 * size, 3 * size : 4 * size, 2 * size : 3 * size]
    return (
        np.ascontiguousarray(w_ih[:, order], dtype=np.float32),
        np.ascontiguousarray(w_hh[:, order], dtype=np.float32),
        np.ascontiguousarray(bias[order], dtype=np.float32),
    )


def _louder(audio: np.ndarray) -> np.ndarray:
    """Raise quiet audio to -30 dBFS (never lower it): the encoder's input is not log-scaled."""
    rms = float(np.sqrt(np.mean(np.square(audio * 32767.0)))) if audio.size else 0.0
    if rms <= 0:
        return audio
    change_db = TARGET_DBFS - 20 * np.log10(rms / 32767.0)
    return audio if change_db < 0 else audio * np.float32(10 ** (change_db / 20))


def _window_starts(samples: int) -> list[int]:
    """First frames of the 1.6 s windows covering an utterance (Resemblyzer's partial slices)."""
    frames = int(np.ceil((samples + 1) / FRAME_SAMPLES))
    step = int(np.round((MODEL_RATE_HZ / RATE) / FRAME_SAMPLES))
    starts = list(range(0, max(1, frames - WINDOW_FRAMES + step + 1), step))
    last = starts[-1] * FRAME_SAMPLES
    coverage = (samples - last) / (WINDOW_FRAMES * FRAME_SAMPLES)
    if coverage < MIN_COVERAGE and len(starts) > 1:
        starts.pop()
    return starts


def average(embeddings: list[np.ndarray]) -> np.ndarray:
    """One voice print from several recordings' embeddings: their mean, L2-normalised."""
    mean = np.mean(np.stack(embeddings), axis=0)
    result: np.ndarray = (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32)
    return result


def compare(
    embedding: np.ndarray, voice_print: np.ndarray, threshold: float, speech_s: float
) -> SpeakerScore:
    """The verdict on an utterance's voice against an enrolled print (both L2-normalised)."""
    score = float(np.clip(np.dot(embedding, voice_print), 0.0, 1.0))
    if speech_s < MIN_SPEECH_S:
        verdict = Verdict.TOO_SHORT
    else:
        verdict = Verdict.MATCH if score >= threshold else Verdict.NO_MATCH
    return SpeakerScore(verdict, score, threshold, speech_s)
