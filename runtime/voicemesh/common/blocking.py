"""Blocking model calls, run off the event loop in a bounded pool.

Whisper, piper and llama.cpp hold the GIL-free parts of a CPU for hundreds of milliseconds; on the
event loop they would stall every other stream. The pool's size is the service's concurrency limit,
and streamed work stops between items so a cancelled RPC stops the work itself.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from voicemesh.common.metrics import WORK_STOPPED

T = TypeVar("T")
_END = object()


def _lower_priority(nice: int) -> None:
    if nice and hasattr(os, "setpriority"):
        thread = threading.get_native_id()  # Linux: a thread's nice is its own, inherited by its threads
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + nice))


class BlockingPool:
    """A fixed number of threads for blocking model work."""

    def __init__(self, workers: int, name: str, *, nice: int = 0) -> None:
        """``nice`` lowers the CPU priority of the pool's threads (and of threads they start), so
        background work (ingestion) yields the CPU to the requests a caller is waiting on."""
        self.name = name
        self._executor = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix=name, initializer=_lower_priority, initargs=(nice,)
        )

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def iterate(self, make_iterator: Callable[[], Iterator[T]]) -> AsyncIterator[T]:
        """Run a blocking iterator in the pool and yield its items as they come.

        When the consumer goes away (cancelled RPC, closed generator) the worker stops at the next
        item, or does not start at all if it was still queued, and counts itself in WORK_STOPPED.
        """
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        stop = threading.Event()

        def deliver(item: Any) -> None:
            if not stop.is_set():
                loop.call_soon_threadsafe(queue.put_nowait, item)

        def pump() -> None:
            try:
                if stop.is_set():
                    WORK_STOPPED.labels(self.name).inc()
                    return
                for item in make_iterator():
                    if stop.is_set():
                        WORK_STOPPED.labels(self.name).inc()  # counted where the work really ends
                        return
                    deliver(item)
            except BaseException as exc:  # handed to the consumer, which re-raises it
                deliver((_END, exc))
            else:
                deliver((_END, None))

        worker = loop.run_in_executor(self._executor, pump)
        try:
            while True:
                item = await queue.get()
                if isinstance(item, tuple) and len(item) == 2 and item[0] is _END:
                    if item[1] is not None:
                        raise item[1]
                    return
                yield item
        finally:
            stop.set()
            # The thread sees the flag at its next item; do not wait for it on a cancelled path.
            worker.add_done_callback(lambda f: f.exception())

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
