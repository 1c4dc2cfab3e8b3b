"""Background loops that outlive their own bugs: each is restarted, logged and counted when it dies."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from voicemesh.common.metrics import BACKGROUND_RESTARTS

log = logging.getLogger(__name__)


async def supervised(name: str, run: Callable[[], Awaitable[None]], retry_s: float) -> None:
    """Run ``run`` until it returns or its owner cancels this; an exception starts it again after
    ``retry_s``, counted in ``voicemesh_background_restarts_total{task=name}``."""
    while True:
        try:
            await run()
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            BACKGROUND_RESTARTS.labels(name).inc()
            log.exception("%s failed; starting it again", name)
            await asyncio.sleep(retry_s)
