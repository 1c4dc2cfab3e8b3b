"""Fixed-size frames out of chunks of any size: the detectors each read a fixed window."""

from __future__ import annotations

import numpy as np


class Framer:
    def __init__(self, size: int) -> None:
        self.size = size
        self.pending = np.zeros(0, dtype=np.float32)  # less than one frame, waiting for more

    def split(self, samples: np.ndarray) -> list[np.ndarray]:
        """The whole frames that ``samples`` completes, oldest first (views, not copies)."""
        audio = np.concatenate([self.pending, samples]) if self.pending.size else samples
        whole = audio.size // self.size * self.size
        self.pending = audio[whole:].copy()
        return [audio[offset : offset + self.size] for offset in range(0, whole, self.size)]

    def take_pending(self) -> np.ndarray:
        rest, self.pending = self.pending, np.zeros(0, dtype=np.float32)
        return rest
