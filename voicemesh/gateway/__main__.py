"""``python -m voicemesh.gateway``: the public gateway server."""

from __future__ import annotations

import asyncio

from voicemesh.gateway.config import GatewaySettings
from voicemesh.gateway.deadlines import Budgets
from voicemesh.gateway.downstream import SERVICES, BreakerSettings, ConcurrencySettings, Downstream
from voicemesh.gateway.servicer import GatewayServicer
from voicemesh.gateway.throttle import RateLimits
from voicemesh.rpc.server import ServiceHost, serve_until_signalled, single_service_host
from voicemesh.v1 import gateway_pb2, gateway_pb2_grpc


def build_host(settings: GatewaySettings, downstream: Downstream) -> ServiceHost:
    return single_service_host(
        gateway_pb2_grpc.add_GatewayServiceServicer_to_server,
        GatewayServicer(
            downstream,
            preemptive=settings.preemptive_generation,
            budgets=Budgets(
                settings.ask_deadline_s, settings.turn_deadline_s, settings.deadline_margin_ms / 1000
            ),
            limits=RateLimits(
                {
                    "stt": settings.limit_stt_per_min,
                    "llm": settings.limit_llm_per_min,
                    "tts": settings.limit_tts_per_min,
                },
                max_wait_s=settings.limit_max_wait_s,
            ),
        ),
        gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"].full_name,
        host=settings.host,
        port=settings.port,
    )


async def serve(settings: GatewaySettings) -> None:
    loop = asyncio.get_running_loop()
    host: ServiceHost | None = None
    updates: set[asyncio.Task[None]] = set()

    def breaker_moved(service: str, serving: bool) -> None:
        # The gateway's health shows each downstream as it sees it: NOT_SERVING while its breaker is open.
        if host is not None:
            task = loop.create_task(host.set_serving(SERVICES[service], serving))
            updates.add(task)
            task.add_done_callback(updates.discard)

    downstream = Downstream.connect(
        settings.stt_target,
        settings.core_target,
        settings.tts_target,
        BreakerSettings(settings.breaker_fail_max, settings.breaker_reset_timeout_s),
        on_health=breaker_moved,
        concurrency=ConcurrencySettings(
            settings.max_stt_streams,
            settings.max_core_calls,
            settings.max_tts_calls,
            settings.max_queued_calls,
            settings.max_queue_wait_s,
        ),
    )
    host = build_host(settings, downstream)
    try:
        await serve_until_signalled(host, settings.grace_s, settings.drain_delay_s)
    finally:
        await downstream.close()


if __name__ == "__main__":
    from voicemesh.services.main import run

    run(GatewaySettings, "gateway", serve)
