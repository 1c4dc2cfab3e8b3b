"""``python -m voicemesh.services.core``: the core server."""

from __future__ import annotations

from pathlib import Path

from voicemesh.rpc.server import ServiceHost, serve_until_signalled, single_service_host
from voicemesh.services.core.config import CoreSettings
from voicemesh.services.core.engine import GenerationSettings, Responder
from voicemesh.services.core.models import ChatModel, LlamaCppModel, OpenAICompatibleModel
from voicemesh.services.core.routing import TierRouter
from voicemesh.services.core.servicer import CoreServicer
from voicemesh.v1 import core_pb2, core_pb2_grpc


def build_engine(settings: CoreSettings) -> Responder:
    def local() -> ChatModel:
        return LlamaCppModel(
            Path(settings.llm_path) if settings.llm_path else None,
            context=settings.llm_context,
            threads=settings.llm_threads,
        )

    router: TierRouter
    if settings.openai_base_url:
        remote = OpenAICompatibleModel(
            settings.openai_base_url,
            settings.openai_model,
            settings.openai_api_key,
            settings.openai_timeout_s,
        )
        router = TierRouter(
            remote,
            local() if settings.local_fallback else None,
            fail_max=settings.remote_fail_max,
            reset_timeout_s=settings.remote_reset_timeout_s,
        )
    else:
        router = TierRouter(local())
    generation = GenerationSettings(settings.system_prompt, settings.max_tokens, settings.temperature)
    return Responder(router, generation)


def build_host(settings: CoreSettings, engine: Responder) -> ServiceHost:
    return single_service_host(
        core_pb2_grpc.add_CoreServiceServicer_to_server,
        CoreServicer(engine),
        core_pb2.DESCRIPTOR.services_by_name["CoreService"].full_name,
        host=settings.host,
        port=settings.port,
    )


async def serve(settings: CoreSettings) -> None:
    await serve_until_signalled(
        build_host(settings, build_engine(settings)), settings.grace_s, settings.drain_delay_s
    )


if __name__ == "__main__":
    from voicemesh.services.main import run

    run(CoreSettings, "core", serve)
