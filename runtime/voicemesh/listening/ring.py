"""A fixed-size ring of the most recent audio, addressed by absolute stream position."""

from __future__ import annotations

import numpy as np


class SampleRing:
    """Keeps the last ``capacity`` samples; memory never grows after construction."""

    def __init__(self, capacity: int) -> None:
        self._buffer = np.zeros(max(1, capacity), dtype=np.float32)
        self.end = 0  # absolute position one past the newest sample

    @property
    def start(self) -> int:
        """Absolute position of the oldest sample still held."""
        return max(0, self.end - self._buffer.size)

    @property
    def nbytes(self) -> int:
        return self._buffer.nbytes

    def extend(self, samples: np.ndarray) -> None:
        size = self._buffer.size
        if samples.size >= size:
            self._buffer[:] = samples[-size:]
            # Rotate so the slot arithmetic below stays valid: slot of position p is p % size.
            self._buffer = np.roll(self._buffer, (self.end + samples.size) % size)
        else:
            first = self.end % size
            head = min(samples.size, size - first)
            self._buffer[first : first + head] = samples[:head]
            self._buffer[: samples.size - head] = samples[head:]
        self.end += samples.size

    def since(self, position: int) -> np.ndarray:
        """A copy of the samples from ``position`` (clamped to what is held) to the newest."""
        position = min(max(position, self.start), self.end)
        count = self.end - position
        if not count:
            return np.zeros(0, dtype=np.float32)
        size = self._buffer.size
        first = position % size
        if first + count <= size:
            return self._buffer[first : first + count].copy()
        return np.concatenate([self._buffer[first:], self._buffer[: first + count - size]])
