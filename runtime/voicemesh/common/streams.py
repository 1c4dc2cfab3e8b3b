"""Streams whose first message carries the config and the rest carry data (Riva's shape)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from google.protobuf.message import Message

from voicemesh.common.errors import InvalidRequest, MissingConfig

ONEOF = "streaming_request"


async def split_config(requests: AsyncIterator[Message], data_field: str) -> tuple[Any, AsyncIterator[Any]]:
    """Return the first message's config and an iterator over the data of the rest."""
    first: Any = await anext(requests, None)
    name = type(first).__name__ if first is not None else "request"
    if first is None:
        raise MissingConfig("the stream ended before any message; send a message with `config` first")
    kind = first.WhichOneof(ONEOF)
    if kind != "config":
        raise MissingConfig(f"the first {name} must carry `config`, not {f'`{kind}`' if kind else 'nothing'}")

    async def data() -> AsyncIterator[Any]:
        async for request in requests:
            kind = request.WhichOneof(ONEOF)
            if kind == "config":
                raise InvalidRequest(f"`config` may only be sent once, in the first {name}")
            if kind == data_field:
                yield getattr(request, data_field)

    return first.config, data()
