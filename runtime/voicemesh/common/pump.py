"""Run a producer task and yield what it emits: the shape of every fan-in stream in the mesh."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
Emit = Callable[[T], Awaitable[None]]


class StreamClosed(Exception):
    """The consumer of a stream has gone (the caller hung up): there is nobody to emit to."""


def first_error(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups, so callers see one precise failure."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


async def pump(produce: Callable[[Emit[T]], Awaitable[None]], *, buffer: int = 64) -> AsyncIterator[T]:
    """Yield the items ``produce`` emits; a bounded buffer makes a slow consumer slow the producer.

    When the consumer goes away, the producer is cancelled, and ``emit`` fails at once with
    StreamClosed, so nothing ever waits on a buffer that nobody will read again.
    """
    queue: asyncio.Queue[tuple[bool, object]] = asyncio.Queue(maxsize=buffer)
    closed = False

    async def emit(item: T) -> None:
        if closed:
            raise StreamClosed("the caller has gone")
        await queue.put((False, item))
        if closed:  # the put was let through by the drain below: the item reached no one
            raise StreamClosed("the caller has gone")

    async def run() -> None:
        try:
            await produce(emit)
        except Exception as exc:
            await queue.put((True, first_error(exc)))
        else:
            await queue.put((True, None))

    task = asyncio.create_task(run())
    try:
        while True:
            done, item = await queue.get()
            if done:
                if isinstance(item, BaseException):
                    raise item
                return
            yield item  # type: ignore[misc]
    finally:
        closed = True
        task.cancel()
        while not queue.empty():  # unblock any emit still waiting for room: it fails now
            queue.get_nowait()
        await asyncio.gather(task, return_exceptions=True)
