"""A voicemesh gRPC server: services, health, reflection, TLS, readiness line and graceful stop."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from voicemesh.common.config import ServiceSettings
from voicemesh.common.limits import MAX_MESSAGE_BYTES
from voicemesh.rpc.decoding import DecodeErrorInterceptor
from voicemesh.rpc.tls import TlsFolder

log = logging.getLogger(__name__)

READY_PREFIX = "VOICEMESH_LISTENING"
METRICS_PREFIX = "VOICEMESH_METRICS"
SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    # gRPC shares a port between processes by default: a second server on a taken port would
    # silently split the first one's traffic. Fail to start instead.
    ("grpc.so_reuseport", 0),
    # Clients ping open channels every 20 s (the SDK's keepalive) to find a dead server; accept that
    # even on a quiet stream, where gRPC's default would answer it with GOAWAY "too_many_pings".
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
]

# Streams open when a connection reaches its maximum age get this long to finish: a turn's length.
MAX_CONNECTION_AGE_GRACE_MS = 120_000

Register = Callable[[grpc.aio.Server], Sequence[str]]


class ServiceHost:
    """Owns one grpc.aio server and its health status."""

    def __init__(
        self,
        register: Register,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        max_connection_age_s: float = 0,
        credentials: grpc.ServerCredentials | None = None,
        reflection_on: bool = True,
        health_port: int = -1,
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),  # type: ignore[type-arg]
    ) -> None:
        """``credentials`` serve TLS (plaintext without); ``health_port`` (-1: none) serves health
        alone in plaintext, for probes that speak no TLS (the kubelet's gRPC probe)."""
        options = list(SERVER_OPTIONS)
        if max_connection_age_s:
            # Clients reconnect, and so resolve their dns:/// target again, at least this often:
            # that is how a gateway finds pods that were added after it connected.
            options += [
                ("grpc.max_connection_age_ms", int(max_connection_age_s * 1000)),
                ("grpc.max_connection_age_grace_ms", MAX_CONNECTION_AGE_GRACE_MS),
            ]
        self._server = grpc.aio.server(
            options=options, interceptors=[*interceptors, DecodeErrorInterceptor()]
        )
        self._names = list(register(self._server))
        self._health = HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        if reflection_on:
            reflection.enable_server_reflection(
                [
                    *self._names,
                    health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                    reflection.SERVICE_NAME,
                ],
                self._server,
            )
        address = f"{host}:{port}"
        if credentials is None:
            self.port = self._server.add_insecure_port(address)
        else:
            self.port = self._server.add_secure_port(address, credentials)
        if not self.port:
            raise OSError(f"cannot listen on {host}:{port}")
        self.address = f"{host}:{self.port}"
        self.tls = credentials is not None
        self._probes: grpc.aio.Server | None = None
        self.health_address = ""
        if health_port >= 0:
            self._probes = grpc.aio.server(options=SERVER_OPTIONS)
            health_pb2_grpc.add_HealthServicer_to_server(self._health, self._probes)
            bound = self._probes.add_insecure_port(f"{host}:{health_port}")
            if not bound:
                raise OSError(f"cannot listen on {host}:{health_port} (health)")
            self.health_address = f"{host}:{bound}"

    async def start(self) -> None:
        await self._server.start()
        if self._probes is not None:
            await self._probes.start()
        await self._set_status(health_pb2.HealthCheckResponse.SERVING)

    async def stop(self, grace_s: float, drain_delay_s: float = 0.0) -> None:
        """NOT_SERVING first; then, after ``drain_delay_s`` in which balancers see it and send no
        new work (new calls are still served meanwhile), refuse new calls and give the calls in
        flight ``grace_s`` to finish before cancelling them."""
        await self._set_status(health_pb2.HealthCheckResponse.NOT_SERVING)
        if drain_delay_s:
            await asyncio.sleep(drain_delay_s)
        await self._server.stop(grace_s)
        if self._probes is not None:
            await self._probes.stop(0)

    async def set_serving(self, name: str, serving: bool) -> None:
        """Report one named service (e.g. a downstream as the gateway sees it) on the health service."""
        status = (
            health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        await self._health.set(name, status)

    async def _set_status(self, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType) -> None:
        for name in ["", *self._names]:
            await self._health.set(name, status)


# One service on a host: its ``add_…Servicer_to_server``, the servicer, and the service's full name.
Served = tuple[Callable[[Any, grpc.aio.Server], None], object, str]


def service_host(
    *services: Served,
    settings: ServiceSettings,
    interceptors: Sequence[grpc.aio.ServerInterceptor] = (),  # type: ignore[type-arg]
) -> ServiceHost:
    """The usual case: voicemesh services (plus health and reflection) on the settings' address,
    over TLS when the settings name a TLS folder."""

    def register(server: grpc.aio.Server) -> Sequence[str]:
        for add_to_server, servicer, _name in services:
            add_to_server(servicer, server)
        return [name for _add, _servicer, name in services]

    credentials = None
    if settings.tls_dir:
        credentials = TlsFolder(Path(settings.tls_dir)).server_credentials(
            require_client_cert=settings.require_client_cert
        )
    return ServiceHost(
        register,
        host=settings.host,
        port=settings.port,
        max_connection_age_s=settings.max_connection_age_s,
        credentials=credentials,
        reflection_on=settings.reflection,
        health_port=settings.health_port,
        interceptors=interceptors,
    )


async def serve_until_signalled(host: ServiceHost, settings: ServiceSettings) -> None:
    """Start, announce the address on stdout, and stop gracefully on SIGINT or SIGTERM."""
    grace_s, drain_delay_s = settings.grace_s, settings.drain_delay_s
    await host.start()
    print(f"{READY_PREFIX} {host.address}", flush=True)
    log.info("serving on %s%s", host.address, " (TLS)" if host.tls else " (plaintext)")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping: not serving, drain %.1fs, grace %.1fs", drain_delay_s, grace_s)
    await host.stop(grace_s, drain_delay_s)
