"""``python -m voicemesh.gateway``: the public gateway server."""

from __future__ import annotations

from voicemesh.gateway.config import GatewaySettings
from voicemesh.gateway.downstream import Downstream
from voicemesh.gateway.servicer import GatewayServicer
from voicemesh.rpc.server import ServiceHost, serve_until_signalled, single_service_host
from voicemesh.v1 import gateway_pb2, gateway_pb2_grpc


def build_host(settings: GatewaySettings, downstream: Downstream) -> ServiceHost:
    return single_service_host(
        gateway_pb2_grpc.add_GatewayServiceServicer_to_server,
        GatewayServicer(downstream, preemptive=settings.preemptive_generation),
        gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"].full_name,
        host=settings.host,
        port=settings.port,
    )


async def serve(settings: GatewaySettings) -> None:
    downstream = Downstream.connect(settings.stt_target, settings.core_target, settings.tts_target)
    try:
        await serve_until_signalled(build_host(settings, downstream), settings.grace_s)
    finally:
        await downstream.close()


if __name__ == "__main__":
    from voicemesh.services.main import run

    run(GatewaySettings, "gateway", serve)
