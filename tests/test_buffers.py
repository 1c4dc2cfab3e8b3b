"""The pooled utterance buffer: exact contents, bounded size, blocks reused across utterances."""

from __future__ import annotations

import numpy as np

from voicemesh.listening.buffers import BlockPool, SpeechBuffer


def test_frames_go_in_once_and_come_out_exactly() -> None:
    pool = BlockPool(block_samples=100)
    buffer = SpeechBuffer(capacity=1000, pool=pool)
    audio = np.arange(730, dtype=np.float32)
    for start in range(0, audio.size, 64):  # frames that straddle block edges
        buffer.append(audio[start : start + 64])
    assert buffer.size == 730 and buffer.nbytes == 8 * 100 * 4
    assert np.array_equal(buffer.head(730), audio)
    assert np.array_equal(buffer.head(250), audio[:250])
    assert np.array_equal(buffer.tail(170), audio[-170:])
    assert np.array_equal(buffer.copy(95, 305), audio[95:305])


def test_capacity_bounds_memory_and_blocks_are_reused() -> None:
    pool = BlockPool(block_samples=100, max_free=4)
    buffer = SpeechBuffer(capacity=300, pool=pool)
    buffer.append(np.ones(1000, dtype=np.float32))
    assert buffer.size == 300 and pool.allocated == 3  # the rest is dropped, not grown into
    buffer.clear()
    assert buffer.size == 0 and pool.free == 3
    for _ in range(50):  # many utterances, no new allocation
        buffer.append(np.zeros(250, dtype=np.float32))
        buffer.clear()
    assert pool.allocated == 3
    other = SpeechBuffer(capacity=1000, pool=pool)
    other.append(np.zeros(1000, dtype=np.float32))
    other.clear()
    assert pool.free == 4  # the pool keeps at most max_free; the rest goes to the collector
