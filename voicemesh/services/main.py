"""What every service's ``__main__`` does: load settings, set up logging, serve, exit cleanly."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from voicemesh.common.config import ConfigError, ServiceSettings
from voicemesh.common.logs import setup_logging

S = TypeVar("S", bound=ServiceSettings)


def run(settings_cls: type[S], name: str, serve: Callable[[S], Coroutine[Any, Any, None]]) -> None:
    try:
        settings = settings_cls.load()
    except ConfigError as exc:
        sys.exit(f"voicemesh {name}: {exc}")
    setup_logging(name, fmt=settings.log_format, level=settings.log_level)
    asyncio.run(serve(settings))
