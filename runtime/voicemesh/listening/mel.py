"""Mel spectrograms of 16 kHz audio as librosa and Whisper make them, in numpy.

25 ms windows every 10 ms, centred (padded by half a window at both ends), a periodic Hann window,
and Slaney's mel scale with Slaney-normalised triangles (librosa's default, which Whisper's
filterbank and Resemblyzer's both come from).
"""

from __future__ import annotations

from functools import cache

import numpy as np

from voicemesh.common.audio import MODEL_RATE_HZ

N_FFT = MODEL_RATE_HZ * 25 // 1000
HOP = MODEL_RATE_HZ // 100


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's scale: linear to 1 kHz, logarithmic above."""
    linear = hz / (200.0 / 3)
    log_part = 15.0 + np.log(np.maximum(hz, 1e-10) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log_part, linear)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    linear = mel * (200.0 / 3)
    log_part = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
    return np.where(mel >= 15.0, log_part, linear)


@cache
def mel_filters(n_mels: int) -> np.ndarray:
    """librosa.filters.mel(sr=16000, n_fft=400, n_mels=n_mels): (n_mels, 201)."""
    fft_hz = np.linspace(0, MODEL_RATE_HZ / 2, 1 + N_FFT // 2)
    edges = _mel_to_hz(
        np.linspace(_hz_to_mel(np.array(0.0)), _hz_to_mel(np.array(MODEL_RATE_HZ / 2)), n_mels + 2)
    )
    widths = np.diff(edges)
    ramps = edges[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (edges[2:] - edges[:-2]))[:, None]
    weights = weights.astype(np.float32)
    weights.flags.writeable = False  # shared by every caller through the cache
    return weights


_WINDOW = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)


def power_spectrogram(audio: np.ndarray, *, reflect: bool = False) -> np.ndarray:
    """|STFT|², (frames, 201). librosa pads the ends with zeros, Whisper reflects them."""
    padded = np.pad(
        np.asarray(audio, dtype=np.float32), N_FFT // 2, mode="reflect" if reflect else "constant"
    )
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]
    power: np.ndarray = np.abs(np.fft.rfft(frames * _WINDOW, axis=1)) ** 2
    return power.astype(np.float32)


def mel_power(audio: np.ndarray, n_mels: int, *, reflect: bool = False) -> np.ndarray:
    """Power mel spectrogram, (frames, n_mels)."""
    mels: np.ndarray = power_spectrogram(audio, reflect=reflect) @ mel_filters(n_mels).T
    return mels


def whisper_log_mel(audio: np.ndarray, n_mels: int = 80) -> np.ndarray:
    """Whisper's input features of ``audio`` as it stands (no padding to a window): (n_mels, frames)."""
    mels = np.maximum(mel_power(audio, n_mels, reflect=True), 1e-10)
    log = np.log10(mels).T[:, :-1]  # Whisper drops the last (centred past the end) frame
    log = np.maximum(log, log.max() - 8.0)
    features: np.ndarray = ((log + 4.0) / 4.0).astype(np.float32)
    return features
