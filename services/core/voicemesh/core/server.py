"""The core process: its settings become the models, the stores, the engine and the server."""

from __future__ import annotations

from pathlib import Path

from voicemesh.common.components import CORE
from voicemesh.core.batched_llama import BatchedLlama, Capacity
from voicemesh.core.config import CoreSettings
from voicemesh.core.context import ConversationMemory
from voicemesh.core.engine import GenerationSettings, Responder
from voicemesh.core.models import ChatModel, OpenAICompatibleModel
from voicemesh.core.routing import TierRouter
from voicemesh.core.servicer import CoreServicer, UserDataServicer
from voicemesh.rpc.host import ServiceHost, serve_until_signalled, service_host
from voicemesh.rpc.process import run_process
from voicemesh.storage.failover import FailoverSessionStore
from voicemesh.storage.history import open_history_store
from voicemesh.storage.sessions import RedisSessionStore, open_session_store
from voicemesh.storage.writer import HistoryWriter
from voicemesh.v1 import core_pb2_grpc, user_data_pb2_grpc


async def open_memory(settings: CoreSettings) -> ConversationMemory:
    """The session and history stores the settings name, with the history's write queue running."""
    sessions = open_session_store(settings.session_url)
    history = await open_history_store(settings.history_store_url())
    writer = HistoryWriter(history, spill=settings.spill_path(), max_queued=settings.history_queue_max)
    writer.start()
    store = FailoverSessionStore(sessions) if isinstance(sessions, RedisSessionStore) else sessions
    return ConversationMemory(store, history, writer, context_exchanges=settings.context_exchanges)


async def close_memory(memory: ConversationMemory, flush_s: float) -> None:
    await memory.writer.close(flush_s)
    await memory.sessions.close()
    await memory.history.close()


def build_engine(settings: CoreSettings, memory: ConversationMemory | None = None) -> Responder:
    def local() -> ChatModel:
        return BatchedLlama(
            Path(settings.llm_path) if settings.llm_path else None,
            context=settings.llm_context,
            threads=settings.llm_threads,
            capacity=Capacity(
                settings.llm_slots,
                settings.llm_cache_tokens,
                settings.llm_batch_tokens,
                settings.llm_queue_max,
                settings.llm_queue_wait_s,
                settings.llm_cache_reuse_tokens,
            ),
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
    generation = GenerationSettings(
        settings.system_prompt,
        settings.max_tokens,
        settings.temperature,
        settings.grounded_temperature,
        settings.grounding_words,
        {"local": settings.local_reply_sentences, "remote": settings.remote_reply_sentences},
    )
    return Responder(router, generation, memory)


def build_host(settings: CoreSettings, engine: Responder) -> ServiceHost:
    core_service, user_data_service = CORE.services
    return service_host(
        (core_pb2_grpc.add_CoreServiceServicer_to_server, CoreServicer(engine), core_service),
        (
            user_data_pb2_grpc.add_UserDataServiceServicer_to_server,
            UserDataServicer(engine.memory),
            user_data_service,
        ),
        settings=settings,
    )


async def serve(settings: CoreSettings) -> None:
    memory = await open_memory(settings)
    try:
        host = build_host(settings, build_engine(settings, memory))
        await serve_until_signalled(host, settings)
    finally:
        await close_memory(memory, settings.flush_s)


def main() -> None:
    run_process(CoreSettings, serve)
