"""Channels to the STT, core and TTS services, and relaying their failures with the hop named."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import grpc

from voicemesh.rpc.server import MAX_MESSAGE_BYTES
from voicemesh.rpc.status import RelayedStatus
from voicemesh.v1 import core_pb2_grpc, speech_to_text_pb2_grpc, text_to_speech_pb2_grpc

CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
]


@dataclass
class Downstream:
    stt: speech_to_text_pb2_grpc.SpeechToTextServiceStub
    core: core_pb2_grpc.CoreServiceStub
    tts: text_to_speech_pb2_grpc.TextToSpeechServiceStub
    _channels: tuple[grpc.aio.Channel, ...]

    @classmethod
    def connect(cls, stt_target: str, core_target: str, tts_target: str) -> Downstream:
        stt, core, tts = (
            grpc.aio.insecure_channel(t, options=CHANNEL_OPTIONS)
            for t in (stt_target, core_target, tts_target)
        )
        return cls(
            speech_to_text_pb2_grpc.SpeechToTextServiceStub(stt),
            core_pb2_grpc.CoreServiceStub(core),
            text_to_speech_pb2_grpc.TextToSpeechServiceStub(tts),
            (stt, core, tts),
        )

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close(grace=None)


@asynccontextmanager
async def relayed(service: str) -> AsyncIterator[None]:
    """Pass a downstream's status on to the caller, with the service named in the message."""
    try:
        yield
    except grpc.aio.AioRpcError as exc:
        raise RelayedStatus(exc.code(), f"{service}: {exc.details()}") from None
