"""Core over gRPC: proto ⇄ engine, nothing else."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator

import numpy as np
from google.protobuf.timestamp_pb2 import Timestamp

from voicemesh.common import limits
from voicemesh.common.errors import InvalidRequest
from voicemesh.common.logs import request_id_var
from voicemesh.core.context import ConversationMemory
from voicemesh.core.engine import ReplyEvent, Responder, Route, Sentence, Source, TextDelta
from voicemesh.rpc.handler import Context, rpc_handler
from voicemesh.storage.history import TurnRecord
from voicemesh.storage.voices import MAX_DIMENSIONS, VoicePrint
from voicemesh.v1 import core_pb2 as pb
from voicemesh.v1 import core_pb2_grpc as pb_grpc
from voicemesh.v1 import user_data_pb2, user_data_pb2_grpc


def respond_response(request_id: str, event: ReplyEvent) -> pb.RespondResponse:
    """The RespondResponse that carries an engine event."""
    if isinstance(event, Route):
        route = pb.RouteChosen(tier=event.tier, model=event.model, reason=event.reason)
        return pb.RespondResponse(request_id=request_id, route=route)
    if isinstance(event, TextDelta):
        return pb.RespondResponse(request_id=request_id, text_delta=event.text)
    if isinstance(event, Sentence):
        sentence = pb.SentenceMark(index=event.index, text=event.text)
        return pb.RespondResponse(request_id=request_id, sentence=sentence)
    done = pb.ReplyDone(
        text=event.text,
        completion_tokens=event.completion_tokens,
        finish_reason=event.finish_reason,
        context_turns=event.context_turns,
        user_version=event.user_version,
        prompt_tokens=event.usage.prompt_tokens,
        cached_prompt_tokens=event.usage.cached_tokens,
        queue_ms=event.usage.queue_s * 1000,
        prefill_ms=event.usage.prefill_s * 1000,
    )
    return pb.RespondResponse(request_id=request_id, done=done)


MAX_ROUTE_CHARS = 256
MAX_TIMINGS = 64
MAX_MODEL_CHARS = 64
MAX_VOICE_SAMPLES = 10


def turn_record(request: pb.RecordTurnRequest) -> TurnRecord:
    if not request.session_id:
        raise InvalidRequest("session_id is empty; a turn belongs to a session")
    limits.check_id("session_id", request.session_id)
    limits.check_id("user_id", request.user_id, limits.MAX_USER_KEY_CHARS)
    if not request.transcript.strip():
        raise InvalidRequest("transcript is empty; there is no turn to record")
    for name in ("transcript", "reply_text"):
        if len(getattr(request, name)) > limits.MAX_TEXT_CHARS:
            raise InvalidRequest(f"{name} is over the {limits.MAX_TEXT_CHARS}-character limit")
    # A turn's record compresses well: unbounded fields would be a small message here and a large
    # row in every later read of the history.
    if len(request.route) > MAX_ROUTE_CHARS:
        raise InvalidRequest(f"route is over the {MAX_ROUTE_CHARS}-character limit")
    if len(request.timings_ms) > MAX_TIMINGS or any(len(k) > MAX_ROUTE_CHARS for k in request.timings_ms):
        raise InvalidRequest(
            f"timings_ms holds at most {MAX_TIMINGS} stages, each named in {MAX_ROUTE_CHARS} characters"
        )
    turn = TurnRecord(
        request.user_id,
        request.session_id,
        request.transcript,
        request.reply_text,
        request.route,
        dict(request.timings_ms),
        request.interrupted,
        turn_id=request.request_id,
        failure=request.failure[: limits.MAX_TEXT_CHARS],
    )
    if request.HasField("ended_at"):
        turn.at = _timestamp("ended_at", request.ended_at)
    return turn


def _timestamp(name: str, stamp: Timestamp) -> float:
    if not (0 <= stamp.nanos < 1_000_000_000 and 0 <= stamp.seconds < 253_402_300_800):  # to 9999
        raise InvalidRequest(
            f"{name} is not a valid timestamp (seconds 0 to 9999-12-31, nanos 0 to 999999999)"
        )
    return float(stamp.ToNanoseconds() / 1e9)


class CoreServicer(pb_grpc.CoreServiceServicer):
    def __init__(self, engine: Responder) -> None:
        self._engine = engine

    @rpc_handler
    async def Respond(
        self, request: pb.RespondRequest, context: Context
    ) -> AsyncIterator[pb.RespondResponse]:
        request_id_var.set(request.request_id or "-")
        remaining = context.time_remaining()
        events = self._engine.respond(
            request.text,
            request.max_tokens,
            session_id=request.session_id,
            user_id=request.user_id,
            sources=[Source(p.title, p.heading, p.text) for p in request.passages],
            max_sentences=request.max_sentences,
            deadline=None if remaining is None else time.monotonic() + remaining,
            over_limit=request.over_limit,
        )
        async for event in events:
            yield respond_response(request.request_id, event)

    @rpc_handler
    async def RecordTurn(self, request: pb.RecordTurnRequest, context: Context) -> pb.RecordTurnResponse:
        request_id_var.set(request.request_id or "-")
        turn = turn_record(request)
        if self._engine.memory is not None:
            await self._engine.memory.record(turn)
        return pb.RecordTurnResponse()

    @rpc_handler
    async def GetUserVersion(
        self, request: pb.GetUserVersionRequest, context: Context
    ) -> pb.GetUserVersionResponse:
        user_id = _user_id(request.user_id)
        memory = self._engine.memory
        return pb.GetUserVersionResponse(version=await memory.user_version(user_id) if memory else 0)

    @rpc_handler
    async def GetVoicePrint(
        self, request: pb.GetVoicePrintRequest, context: Context
    ) -> pb.GetVoicePrintResponse:
        user_id = _user_id(request.user_id)
        limits.check_id("session_id", request.session_id)
        voice = await self._memory().voice_print(user_id, request.session_id)
        return pb.GetVoicePrintResponse(print=None if voice is None else voice_print_message(voice))

    @rpc_handler
    async def SaveVoicePrint(
        self, request: pb.SaveVoicePrintRequest, context: Context
    ) -> pb.SaveVoicePrintResponse:
        user_id = _user_id(request.user_id)
        voice = voice_print(request.print) if request.print.embedding else None
        deleted = await self._memory().save_voice_print(user_id, voice)
        if voice is None:
            return pb.SaveVoicePrintResponse(deleted=deleted)
        return pb.SaveVoicePrintResponse(print=voice_print_message(voice))

    def _memory(self) -> ConversationMemory:
        if self._engine.memory is None:
            raise InvalidRequest("this core keeps no user data")
        return self._engine.memory


def voice_print(message: pb.VoicePrint) -> VoicePrint:
    embedding = np.asarray(message.embedding, dtype=np.float32)
    if embedding.size > MAX_DIMENSIONS or not np.all(np.isfinite(embedding)):
        raise InvalidRequest(f"print.embedding must be at most {MAX_DIMENSIONS} finite values")
    if len(message.model) > MAX_MODEL_CHARS or not message.model:
        raise InvalidRequest(f"print.model must name the speaker model in 1-{MAX_MODEL_CHARS} characters")
    if not 0 <= message.samples <= MAX_VOICE_SAMPLES:
        raise InvalidRequest(f"print.samples {message.samples} is out of range; use 0 to {MAX_VOICE_SAMPLES}")
    numbers = (message.speech_s, message.consistency)
    if not all(math.isfinite(n) and n >= 0 for n in numbers) or message.consistency > 1:
        raise InvalidRequest("print.speech_s must be finite and at least 0, print.consistency 0 to 1")
    given = message.HasField("enrolled_at")
    enrolled_at = _timestamp("print.enrolled_at", message.enrolled_at) if given else time.time()
    return VoicePrint(
        embedding,
        message.model,
        message.require_match,
        message.samples,
        message.speech_s,
        message.consistency,
        enrolled_at,
    )


def voice_print_message(voice: VoicePrint) -> pb.VoicePrint:
    message = pb.VoicePrint(
        embedding=voice.embedding.tolist(),
        require_match=voice.require_match,
        samples=voice.samples,
        speech_s=voice.speech_s,
        model=voice.model,
        consistency=voice.consistency,
    )
    message.enrolled_at.FromNanoseconds(int(voice.enrolled_at * 1e9))
    return message


def _user_id(user_id: str) -> str:
    if not user_id:
        raise InvalidRequest("user_id is empty; name the user")
    limits.check_id("user_id", user_id, limits.MAX_USER_KEY_CHARS)
    return user_id


def history_turn(turn: TurnRecord) -> user_data_pb2.HistoryTurn:
    message = user_data_pb2.HistoryTurn(
        session_id=turn.session_id,
        transcript=turn.transcript,
        reply_text=turn.reply,
        route=turn.route,
        timings_ms=turn.timings,
        interrupted=turn.interrupted,
        failure=turn.failure,
    )
    message.time.FromNanoseconds(int(turn.at * 1e9))
    return message


class UserDataServicer(user_data_pb2_grpc.UserDataServiceServicer):
    """A user's data in the core's stores."""

    def __init__(self, memory: ConversationMemory | None) -> None:
        self._memory = memory

    def _stores(self) -> ConversationMemory:
        if self._memory is None:
            raise InvalidRequest("this core keeps no user data")
        return self._memory

    @rpc_handler
    async def GetUserData(
        self, request: user_data_pb2.GetUserDataRequest, context: Context
    ) -> user_data_pb2.GetUserDataResponse:
        most = limits.MAX_HISTORY_TURNS
        if not 0 <= request.limit <= most:
            raise InvalidRequest(f"limit {request.limit} is out of range; use 1 to {most}, or 0 for 20")
        profile, turns = await self._stores().user_data(_user_id(request.user_id), request.limit or 20)
        return user_data_pb2.GetUserDataResponse(profile=profile, turns=[history_turn(t) for t in turns])

    @rpc_handler
    async def UpdateProfile(
        self, request: user_data_pb2.UpdateProfileRequest, context: Context
    ) -> user_data_pb2.UpdateProfileResponse:
        user_id = _user_id(request.user_id)
        longest_key, longest_value = limits.MAX_PROFILE_KEY_CHARS, limits.MAX_PROFILE_VALUE_CHARS
        for key, value in request.set.items():
            if not key.strip() or len(key) > longest_key or len(value) > longest_value:
                raise InvalidRequest(
                    f"profile field {key[:longest_key]!r}: keys are 1-{longest_key} characters, "
                    f"values at most {longest_value}"
                )
        profile = await self._stores().update_profile(user_id, dict(request.set), list(request.remove))
        return user_data_pb2.UpdateProfileResponse(profile=profile)

    @rpc_handler
    async def DeleteUserData(
        self, request: user_data_pb2.DeleteUserDataRequest, context: Context
    ) -> user_data_pb2.DeleteUserDataResponse:
        turns, sessions, deleted = await self._stores().delete_user(_user_id(request.user_id))
        return user_data_pb2.DeleteUserDataResponse(
            turns_deleted=turns,
            sessions_deleted=sessions,
            profile_deleted=deleted.profile,
            voice_print_deleted=deleted.voice,
        )
