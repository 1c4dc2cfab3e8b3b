"""Client calls that stream their requests, read so that a failure carries the status the server sent.

grpc-aio answers a write that races the end of a call with INTERNAL "Internal error from Core", put
over the status the server had sent (grpc/grpc#36066, fixed upstream by grpc/grpc#43486, not in the
grpcio this runs on). Both orders happen:

- the server's status arrives first, and the failed write overwrites it: ``keep_received_status``
  makes grpc-aio keep a status it already has (the one line of grpc's ``_write`` that upstream
  changes, applied to the class at import, and only where grpcio still has the old line);
- the write fails first, and the server's status is set a moment later: ``responses`` waits for it.

A reader that stops early (cancelled while it handles a response) must close ``responses``, with
``contextlib.aclosing``: closing cancels the call, so the server stops its work at once rather than
when the garbage collector finds the call.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncGenerator
from typing import Any

import grpc
from grpc import _common
from grpc._cython import cygrpc
from grpc.aio import _call

_WRITE_RACE = "Internal error from Core"
_SETTLE_S = 0.5


def keep_received_status() -> bool:
    """Patch grpc-aio's stream writes to leave a status already received alone; True if applied."""
    mixin: Any = _call._StreamRequestMixin
    if getattr(mixin, "_voicemesh_keeps_status", False):
        return True
    source = inspect.getsource(mixin._write)
    if "set_internal_error" not in source or "if not self._cython_call.done()" in source:
        return False  # a grpcio that writes differently, or that has the upstream fix

    async def _write(self: Any, request: Any) -> None:
        if self.done():
            raise asyncio.InvalidStateError(_call._RPC_ALREADY_FINISHED_DETAILS)
        if self._done_writing_flag:
            raise asyncio.InvalidStateError(_call._RPC_HALF_CLOSED_DETAILS)
        if not self._metadata_sent.is_set():
            await self._metadata_sent.wait()
            if self.done():
                await self._raise_for_status()
        serialized = _common.serialize(request, self._request_serializer)
        try:
            await self._cython_call.send_serialized_message(serialized)
        except cygrpc.InternalError as err:
            if not self._cython_call.done():  # the one change: never over a status the server sent
                self._cython_call.set_internal_error(str(err))
            await self._raise_for_status()
        except asyncio.CancelledError:
            if not self.cancelled():
                self.cancel()
            raise

    mixin._write = _write
    mixin._voicemesh_keeps_status = True
    return True


keep_received_status()


async def responses(call: Any) -> AsyncGenerator[Any, None]:
    """The responses of a call; a failure comes with the status the server sent, and closing the
    stream before its end cancels the call."""
    try:
        async for response in call:
            yield response
    except grpc.aio.AioRpcError as error:
        if error.code() != grpc.StatusCode.INTERNAL or error.details() != _WRITE_RACE:
            raise
        raise await _status_sent(call, error) from None
    finally:
        call.cancel()  # a no-op once the call has ended


async def _status_sent(call: Any, race: grpc.aio.AioRpcError) -> grpc.aio.AioRpcError:
    deadline = time.monotonic() + _SETTLE_S
    while time.monotonic() < deadline:
        await asyncio.sleep(0.01)
        code, details = await call.code(), await call.details()
        if code != grpc.StatusCode.INTERNAL or details != _WRITE_RACE:
            metadata = await call.initial_metadata(), await call.trailing_metadata()
            return grpc.aio.AioRpcError(code, *metadata, details, race.debug_error_string())
    return race
