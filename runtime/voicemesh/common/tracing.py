"""OpenTelemetry tracing, with the trace context carried across hops in gRPC metadata.

Export is configured the standard way, by ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``): set, spans go there over OTLP/gRPC in batches; unset, the
API's no-op tracer makes every span free. The W3C ``traceparent`` header rides in the metadata of
each downstream call, so one turn is one trace from the gateway through STT, core and TTS.
"""

from __future__ import annotations

import atexit
import os
from collections.abc import Iterable
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context

tracer = trace.get_tracer("voicemesh")

Metadata = tuple[tuple[str, str], ...]


def setup_tracing(service: str) -> bool:
    """Install an exporting tracer provider if an OTLP endpoint is configured; True if it did."""
    if not (
        os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    ):
        return False
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    name = os.environ.get("OTEL_SERVICE_NAME") or f"voicemesh-{service}"
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    atexit.register(provider.shutdown)  # flush what the batch still holds
    return True


def outgoing_metadata() -> Metadata:
    """The current trace context as gRPC metadata for a downstream call."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return tuple(carrier.items())


def incoming_context(metadata: Iterable[Any] | None) -> Context:
    """The caller's trace context from the metadata of an incoming call (empty if none)."""
    carrier = {str(key): value for key, value in metadata or () if isinstance(value, str)}
    return propagate.extract(carrier)
