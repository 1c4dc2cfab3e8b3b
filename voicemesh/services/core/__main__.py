"""``python -m voicemesh.services.core``: the core server."""

from __future__ import annotations

from pathlib import Path

from voicemesh.rpc.server import ServiceHost, serve_until_signalled, single_service_host
from voicemesh.services.core.config import CoreSettings
from voicemesh.services.core.engine import GenerationSettings, Responder
from voicemesh.services.core.models import ChatModel, LlamaCppModel, OpenAICompatibleModel
from voicemesh.services.core.servicer import CoreServicer
from voicemesh.v1 import core_pb2, core_pb2_grpc


def build_engine(settings: CoreSettings) -> Responder:
    model: ChatModel
    if settings.openai_base_url:
        model = OpenAICompatibleModel(
            settings.openai_base_url,
            settings.openai_model,
            settings.openai_api_key,
            settings.openai_timeout_s,
        )
    else:
        model = LlamaCppModel(
            Path(settings.llm_path) if settings.llm_path else None,
            context=settings.llm_context,
            threads=settings.llm_threads,
        )
    generation = GenerationSettings(settings.system_prompt, settings.max_tokens, settings.temperature)
    return Responder(model, generation)


def build_host(settings: CoreSettings, engine: Responder) -> ServiceHost:
    return single_service_host(
        core_pb2_grpc.add_CoreServiceServicer_to_server,
        CoreServicer(engine),
        core_pb2.DESCRIPTOR.services_by_name["CoreService"].full_name,
        host=settings.host,
        port=settings.port,
    )


async def serve(settings: CoreSettings) -> None:
    await serve_until_signalled(build_host(settings, build_engine(settings)), settings.grace_s)


if __name__ == "__main__":
    from voicemesh.services.main import run

    run(CoreSettings, "core", serve)
