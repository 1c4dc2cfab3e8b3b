"""The gateway process: its settings become channels to the backends, the turn runner and the server."""

from __future__ import annotations

import asyncio

from voicemesh.common.components import GATEWAY
from voicemesh.common.metrics import REPLY_CACHE
from voicemesh.common.reply_cache import ReplyCache
from voicemesh.gateway.auth import Authenticator, AuthInterceptor
from voicemesh.gateway.config import GatewaySettings
from voicemesh.gateway.deadlines import Budgets
from voicemesh.gateway.downstream import SERVICES, Downstream
from voicemesh.gateway.grounding import Grounding
from voicemesh.gateway.recorder import TurnRecorder
from voicemesh.gateway.retrieval import GatewayRetrieval
from voicemesh.gateway.servicer import GatewayServicer
from voicemesh.gateway.throttle import CallerLimits, RateLimits
from voicemesh.gateway.turns import TurnRunner
from voicemesh.gateway.user_data import GatewayUserData
from voicemesh.gateway.voice import GatewayVoice
from voicemesh.rpc.host import ServiceHost, serve_until_signalled, service_host
from voicemesh.rpc.process import run_process
from voicemesh.v1 import gateway_pb2_grpc, retrieval_pb2_grpc, user_data_pb2_grpc, voice_pb2_grpc


def build_runner(settings: GatewaySettings, downstream: Downstream) -> TurnRunner:
    cache = ReplyCache(
        "gateway",
        max_entries=settings.reply_cache_entries,
        max_bytes=settings.reply_cache_mib << 20,
        ttl_s=settings.reply_cache_ttl_s,
        on_lookup=lambda result: REPLY_CACHE.labels("gateway", result).inc(),
    )
    recorder = TurnRecorder(downstream, spill=settings.spill_path())
    grounding = Grounding(
        downstream,
        timeout_s=settings.retrieval_timeout_ms / 1000,
        top_k=settings.retrieval_top_k,
        min_score=settings.retrieval_min_score,
    )
    return TurnRunner(downstream, recorder, cache, record_wait_s=settings.record_wait_s, grounding=grounding)


def build_host(settings: GatewaySettings, runner: TurnRunner) -> ServiceHost:
    gateway = GatewayServicer(
        runner,
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
        callers=CallerLimits(
            {"streams": settings.max_streams_per_caller, "turns": settings.max_turns_per_caller}
        ),
        idle_timeout_s=settings.stream_idle_timeout_s,
    )
    gateway_service, user_data_service, retrieval_service, voice_service = GATEWAY.services
    authenticator = Authenticator(
        jwks_file=settings.jwks_file,
        api_keys_file=settings.api_keys_file,
        issuer=settings.auth_issuer,
        audience=settings.auth_audience,
        leeway_s=settings.auth_leeway_s,
    )
    return service_host(
        (gateway_pb2_grpc.add_GatewayServiceServicer_to_server, gateway, gateway_service),
        (
            user_data_pb2_grpc.add_UserDataServiceServicer_to_server,
            GatewayUserData(runner.downstream, runner.cache),
            user_data_service,
        ),
        (
            retrieval_pb2_grpc.add_RetrievalServiceServicer_to_server,
            GatewayRetrieval(runner.downstream),
            retrieval_service,
        ),
        (voice_pb2_grpc.add_VoiceServiceServicer_to_server, GatewayVoice(runner.downstream), voice_service),
        settings=settings,
        interceptors=[AuthInterceptor(authenticator)],
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

    downstream = Downstream.connect(settings, on_health=breaker_moved)
    runner = build_runner(settings, downstream)
    runner.recorder.start()
    host = build_host(settings, runner)
    try:
        await serve_until_signalled(host, settings)
    finally:
        await runner.recorder.close(settings.flush_s)
        await downstream.close()


def main() -> None:
    run_process(GatewaySettings, serve)
