"""TextToSpeech over gRPC: proto ⇄ engine, nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator

from voicemesh.common.logs import request_id_var
from voicemesh.common.streams import split_config
from voicemesh.rpc.handler import Context, rpc_handler
from voicemesh.tts.engine import AudioPiece, Synthesizer
from voicemesh.v1 import audio_pb2
from voicemesh.v1 import text_to_speech_pb2 as pb
from voicemesh.v1 import text_to_speech_pb2_grpc as pb_grpc


def audio_message(piece: AudioPiece) -> audio_pb2.SynthesizedAudio:
    return audio_pb2.SynthesizedAudio(
        audio_content=piece.pcm,
        sample_rate_hz=piece.sample_rate_hz,
        sentence_index=piece.sentence_index,
        sentence=piece.sentence,
        sentence_end=piece.sentence_end,
    )


class TextToSpeechServicer(pb_grpc.TextToSpeechServiceServicer):
    def __init__(self, engine: Synthesizer) -> None:
        self._engine = engine

    @rpc_handler
    async def Synthesize(
        self, request: pb.SynthesizeRequest, context: Context
    ) -> AsyncIterator[pb.SynthesizeResponse]:
        config = request.config
        request_id_var.set(config.request_id or "-")
        async for piece in self._engine.synthesize(request.text, config.voice, config.sample_rate_hz):
            yield pb.SynthesizeResponse(request_id=config.request_id, audio=audio_message(piece))

    @rpc_handler
    async def StreamingSynthesize(
        self,
        request_iterator: AsyncIterator[pb.StreamingSynthesizeRequest],
        context: Context,
    ) -> AsyncIterator[pb.StreamingSynthesizeResponse]:
        config, deltas = await split_config(request_iterator, "text_delta")
        request_id_var.set(config.request_id or "-")
        async for piece in self._engine.stream(deltas, config.voice, config.sample_rate_hz):
            yield pb.StreamingSynthesizeResponse(request_id=config.request_id, audio=audio_message(piece))
