"""Run a producer task and yield what it emits: the shape of every fan-in stream in the mesh."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")
Emit = Callable[[T], Awaitable[None]]


def first_error(exc: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups, so callers see one precise failure."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


async def pump(produce: Callable[[Emit[T]], Awaitable[None]], *, buffer: int = 64) -> AsyncIterator[T]:
    """Yield the items ``produce`` emits; a bounded buffer makes a slow consumer slow the producer."""
    queue: asyncio.Queue[tuple[bool, object]] = asyncio.Queue(maxsize=buffer)

    async def emit(item: T) -> None:
        await queue.put((False, item))

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
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
