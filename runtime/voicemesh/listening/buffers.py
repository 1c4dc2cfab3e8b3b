"""Utterance audio in pooled blocks: one copy in, no allocation per chunk, memory bounded per stream.

Every listening stream holds the utterance it is hearing until Whisper has it. Appending each
20-100 ms frame to a Python list pins the chunk arrays it is a view of and leaves the joining to
every reader; growing one array reallocates. Instead, frames are copied once into fixed 1 s blocks
taken from a process-wide pool, and the blocks go back to the pool when the utterance is handed on,
so a busy server reuses the same few megabytes instead of allocating per chunk.
"""

from __future__ import annotations

import threading

import numpy as np

BLOCK_SAMPLES = 16_000  # 1 s at 16 kHz: 62.5 KiB of float32


class BlockPool:
    """Free fixed-size float32 blocks, shared by every stream of a process (thread-safe)."""

    def __init__(self, block_samples: int = BLOCK_SAMPLES, max_free: int = 256) -> None:
        self.block_samples = block_samples
        self._max_free = max_free  # beyond this, returned blocks are left to the garbage collector
        self._free: list[np.ndarray] = []
        self._lock = threading.Lock()
        self.allocated = 0  # blocks ever created: what the pool saved is the reuse beyond this

    def take(self) -> np.ndarray:
        with self._lock:
            if self._free:
                return self._free.pop()
            self.allocated += 1
        return np.empty(self.block_samples, dtype=np.float32)

    def give(self, blocks: list[np.ndarray]) -> None:
        with self._lock:
            room = self._max_free - len(self._free)
            self._free.extend(blocks[: max(0, room)])

    @property
    def free(self) -> int:
        return len(self._free)


SHARED_POOL = BlockPool()


class SpeechBuffer:
    """Samples appended in order, up to ``capacity``; blocks come from and go back to a pool."""

    def __init__(self, capacity: int, pool: BlockPool = SHARED_POOL) -> None:
        self._pool = pool
        self._max_blocks = -(-capacity // pool.block_samples)
        self._blocks: list[np.ndarray] = []
        self.size = 0

    @property
    def nbytes(self) -> int:
        return sum(block.nbytes for block in self._blocks)

    def append(self, samples: np.ndarray) -> None:
        """Copy ``samples`` in; what would pass the capacity is dropped (the segmenter cuts first)."""
        step = self._pool.block_samples
        offset = 0
        while offset < samples.size:
            used = self.size % step
            if used == 0:
                if len(self._blocks) == self._max_blocks:
                    return
                self._blocks.append(self._pool.take())
            take = min(step - used, samples.size - offset)
            self._blocks[-1][used : used + take] = samples[offset : offset + take]
            self.size += take
            offset += take

    def head(self, count: int) -> np.ndarray:
        """A contiguous copy of the first ``count`` samples (what a decoder needs)."""
        return self.copy(0, count)

    def tail(self, count: int) -> np.ndarray:
        """A copy of the last ``count`` samples."""
        return self.copy(self.size - count, self.size)

    def copy(self, start: int, stop: int) -> np.ndarray:
        start, stop = max(0, start), min(stop, self.size)
        out = np.empty(max(0, stop - start), dtype=np.float32)
        step = self._pool.block_samples
        position = start
        while position < stop:
            block, within = divmod(position, step)
            part = min(step - within, stop - position)
            out[position - start : position - start + part] = self._blocks[block][within : within + part]
            position += part
        return out

    def clear(self) -> None:
        """Hand the blocks back to the pool."""
        self._pool.give(self._blocks)
        self._blocks = []
        self.size = 0
