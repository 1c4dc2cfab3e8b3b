"""What every server process does: load its settings, set up logging, traces and metrics, serve."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from voicemesh.common.config import ConfigError, ServiceSettings
from voicemesh.common.logs import setup_logging
from voicemesh.common.metrics import serve_metrics
from voicemesh.common.tracing import setup_tracing
from voicemesh.rpc.host import METRICS_PREFIX

S = TypeVar("S", bound=ServiceSettings)


def run_process(settings_cls: type[S], serve: Callable[[S], Coroutine[Any, Any, None]]) -> None:
    """Serve until signalled; a bad setting is one line naming it, and exit status 2."""
    name = settings_cls.section
    try:
        settings = settings_cls.load()
    except ConfigError as exc:
        print(f"voicemesh {name}: {exc}", file=sys.stderr)
        sys.exit(2)
    setup_logging(name, fmt=settings.log_format, level=settings.log_level)
    setup_tracing(name)
    if settings.nice:
        os.nice(settings.nice)
    if settings.metrics_port >= 0:
        print(f"{METRICS_PREFIX} {serve_metrics(settings.host, settings.metrics_port)}", flush=True)
    asyncio.run(serve(settings))
