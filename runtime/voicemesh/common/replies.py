"""A turn's reply as typed events: the generated messages themselves, and a ``str`` for a text delta.

Ask and Converse carry the same reply events, under the same field names of their ``event`` oneof.
The gateway's turns emit these values, and each RPC puts them into its own response message here
(``ask_response``) or in the gateway (``converse_response``, which adds the listening events): a
new kind of event (a citation, a tool call) is a new message in the protos, one more member of the
union below, and one more line in each of the two, and old clients simply never see it.
"""

from __future__ import annotations

from voicemesh.v1 import audio_pb2, core_pb2, gateway_pb2

ReplyEvent = (
    core_pb2.RouteChosen  # which model answers
    | str  # the next piece of the reply text
    | core_pb2.SentenceMark  # a complete sentence of it
    | audio_pb2.SynthesizedAudio  # spoken reply audio
    | gateway_pb2.ReplyAudioFailed  # the reply cannot be spoken; the text goes on
    | gateway_pb2.Citation  # a passage of the user's documents the reply is grounded in
    | gateway_pb2.GroundingFailed  # the user's documents could not be searched; the reply goes on
    | gateway_pb2.TurnDone  # the end of the turn
)


def ask_response(request_id: str, event: ReplyEvent) -> gateway_pb2.AskResponse:
    """The AskResponse that carries ``event``."""
    if isinstance(event, str):
        return gateway_pb2.AskResponse(request_id=request_id, reply_text_delta=event)
    if isinstance(event, core_pb2.RouteChosen):
        return gateway_pb2.AskResponse(request_id=request_id, route=event)
    if isinstance(event, core_pb2.SentenceMark):
        return gateway_pb2.AskResponse(request_id=request_id, reply_sentence=event)
    if isinstance(event, audio_pb2.SynthesizedAudio):
        return gateway_pb2.AskResponse(request_id=request_id, reply_audio=event)
    if isinstance(event, gateway_pb2.ReplyAudioFailed):
        return gateway_pb2.AskResponse(request_id=request_id, reply_audio_failed=event)
    if isinstance(event, gateway_pb2.Citation):
        return gateway_pb2.AskResponse(request_id=request_id, citation=event)
    if isinstance(event, gateway_pb2.GroundingFailed):
        return gateway_pb2.AskResponse(request_id=request_id, grounding_failed=event)
    return gateway_pb2.AskResponse(request_id=request_id, turn_done=event)
