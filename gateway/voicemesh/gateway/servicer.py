"""The public API: Converse (audio in) and Ask (text in), both streaming the reply back."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from functools import partial

from voicemesh.common import limits
from voicemesh.common.audio import MAX_RATE_HZ, MIN_RATE_HZ
from voicemesh.common.errors import InvalidRequest
from voicemesh.common.logs import request_id_var
from voicemesh.common.pump import Emit, pump
from voicemesh.common.replies import ReplyEvent, ask_response
from voicemesh.common.streams import split_config
from voicemesh.gateway.auth import caller
from voicemesh.gateway.deadlines import Budgets
from voicemesh.gateway.stream import ConverseStream
from voicemesh.gateway.throttle import Admission, CallerLimits, RateLimits
from voicemesh.gateway.turns import Turn, TurnOutput, TurnRunner
from voicemesh.rpc.convert import audio_format
from voicemesh.rpc.handler import Context, rpc_handler
from voicemesh.v1 import gateway_pb2 as pb
from voicemesh.v1 import gateway_pb2_grpc as pb_grpc


def _check_ids(session_id: str, user_id: str) -> None:
    limits.check_id("session_id", session_id)
    limits.check_id("user_id", user_id)


def _check_reply(reply: pb.ReplyConfig) -> None:
    rate = reply.sample_rate_hz
    if rate and not MIN_RATE_HZ <= rate <= MAX_RATE_HZ:
        raise InvalidRequest(
            f"reply.sample_rate_hz {rate} is out of range; "
            f"use {MIN_RATE_HZ} to {MAX_RATE_HZ}, or 0 for the voice's rate"
        )
    if not 0 <= reply.max_sentences <= limits.MAX_REPLY_SENTENCES:
        raise InvalidRequest(
            f"reply.max_sentences {reply.max_sentences} is out of range; "
            f"use 1 to {limits.MAX_REPLY_SENTENCES}, or 0 for the server's default"
        )


def _check_retrieval(config: pb.RetrievalConfig) -> None:
    if not 0 <= config.top_k <= 10:
        raise InvalidRequest(
            f"retrieval.top_k {config.top_k} is out of range; use 1 to 10, or 0 for the default"
        )
    limits.check_collection_name(config.collection)


def _hard_kinds(reply: pb.ReplyConfig) -> tuple[str, ...]:
    """The rate limits one reply waits for or is refused by (over ``llm``, another tier may answer)."""
    return ("tts",) if reply.synthesize_audio else ()


class GatewayServicer(pb_grpc.GatewayServiceServicer):
    def __init__(
        self,
        runner: TurnRunner,
        *,
        preemptive: bool,
        budgets: Budgets,
        limits: RateLimits,
        callers: CallerLimits,
        idle_timeout_s: float = 60.0,
    ) -> None:
        self._idle_timeout_s = idle_timeout_s
        self._runner = runner
        self._preemptive = preemptive
        self._budgets = budgets
        self._limits = limits
        self._callers = callers

    @rpc_handler
    async def Converse(
        self, request_iterator: AsyncIterator[pb.ConverseRequest], context: Context
    ) -> AsyncIterator[pb.ConverseResponse]:
        config, audio = await split_config(request_iterator, "audio_content")
        limits.check_id("request_id", config.request_id)
        request_id = config.request_id or uuid.uuid4().hex
        request_id_var.set(request_id)
        fmt = audio_format(config.audio_format)  # fail before any downstream call is made
        _check_reply(config.reply)
        _check_ids(config.session_id, config.user_id)
        _check_retrieval(config.retrieval)
        identity = caller()
        config.user_id = identity.user_for(config.user_id)
        tenant = identity.tenant
        await self._limits.admit(tenant, "stt")

        async def admit() -> Admission:
            return await self._admission(tenant, identity.caller, config.reply)

        async def converse(emit: Emit[pb.ConverseResponse]) -> None:
            stream = ConverseStream(
                self._runner,
                config,
                fmt,
                emit,
                request_id=request_id,
                session_id=config.session_id or uuid.uuid4().hex,
                preemptive=self._preemptive,
                stt_timeout_s=self._budgets.for_stream(context),
                turn_deadline=lambda: self._budgets.for_turn(context),
                admit=admit,
                tenant=tenant,
                idle_timeout_s=self._idle_timeout_s,
            )
            await stream.run(audio)

        release = self._callers.take(identity.caller, "streams")
        try:
            async for response in pump(converse):
                yield response
        finally:
            release()

    @rpc_handler
    async def Ask(self, request: pb.AskRequest, context: Context) -> AsyncIterator[pb.AskResponse]:
        limits.check_id("request_id", request.request_id)
        request_id = request.request_id or uuid.uuid4().hex
        request_id_var.set(request_id)
        text = limits.check_text("text", request.text)
        _check_reply(request.reply)
        _check_ids(request.session_id, request.user_id)
        _check_retrieval(request.retrieval)
        identity = caller()
        user_id = identity.user_for(request.user_id)
        tenant = identity.tenant
        deadline = self._budgets.for_ask(context)
        session_id = request.session_id or uuid.uuid4().hex
        fresh = not request.session_id
        turn = Turn(
            text,
            session_id,
            request_id,
            request.reply,
            deadline,
            user_id,
            fresh,
            tenant,
            request.retrieval,
        )

        async def ask(emit: Emit[pb.AskResponse]) -> None:
            async def send(event: ReplyEvent) -> None:
                await emit(ask_response(request_id, event))

            await self._runner.run(turn, TurnOutput(send), admit=admit)

        async def admit() -> Admission:
            return await self._admission(tenant, identity.caller, request.reply)

        async for response in pump(ask):
            yield response

    async def _admission(self, tenant: str, caller: str, reply: pb.ReplyConfig) -> Admission:
        """Count a reply against its limits: wait for room or be refused under the hard ones, and
        over the llm limit go on with ``over_limit`` set, for another tier to answer."""
        await self._limits.admit(tenant, *_hard_kinds(reply))
        over_limit = self._limits.over(tenant, "llm")
        release = self._callers.take(caller, "turns")
        return Admission(release, over_limit, partial(self._limits.wait_for, tenant, "llm"))
