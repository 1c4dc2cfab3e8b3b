"""PCM bytes as float samples, and the one conversion of a stream to 16 kHz mono (numpy, soxr)."""

from __future__ import annotations

import numpy as np
import soxr

from voicemesh.common.audio import MODEL_RATE_HZ, PcmFormat, check_chunk


def pcm16_to_float(chunk: bytes) -> np.ndarray:
    return np.frombuffer(chunk, dtype="<i2").astype(np.float32) / 32768.0


def float_to_pcm16(samples: np.ndarray) -> bytes:
    # The exact inverse of pcm16_to_float, so 16-bit audio survives the float round trip unchanged.
    return np.clip(np.rint(samples * 32768.0), -32768, 32767).astype("<i2").tobytes()


class PcmNormalizer:
    """Turns a stream of PCM chunks in any accepted format into 16 kHz mono float32."""

    def __init__(self, fmt: PcmFormat, target_rate_hz: int = MODEL_RATE_HZ) -> None:
        self.format = fmt
        self._resampler = (
            None
            if fmt.sample_rate_hz == target_rate_hz
            else soxr.ResampleStream(fmt.sample_rate_hz, target_rate_hz, 1, dtype="float32")
        )

    def push(self, chunk: bytes) -> np.ndarray:
        check_chunk(chunk, self.format)
        samples = pcm16_to_float(chunk)
        if self.format.channels == 2:
            samples = samples.reshape(-1, 2).mean(axis=1, dtype=np.float32)
        if self._resampler is None:
            return samples
        return np.asarray(self._resampler.resample_chunk(samples, last=False), dtype=np.float32)

    def flush(self) -> np.ndarray:
        """The resampler's tail, at the end of the stream."""
        if self._resampler is None:
            return np.zeros(0, dtype=np.float32)
        tail = self._resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
        return np.asarray(tail, dtype=np.float32)


def resample_pcm16(audio: bytes, from_rate_hz: int, to_rate_hz: int) -> bytes:
    """Resample a whole mono PCM s16le buffer."""
    if from_rate_hz == to_rate_hz:
        return audio
    resampled = soxr.resample(pcm16_to_float(audio), from_rate_hz, to_rate_hz)
    return float_to_pcm16(np.asarray(resampled, dtype=np.float32))
