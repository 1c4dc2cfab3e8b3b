"""What a Converse stream tells its caller, typed: the reply events of its turns (as Ask has them),
what the STT heard, the replies the user spoke over, the turns that could not be served, and
those whose voice did not match.
``converse_response`` puts each in the oneof of the ConverseResponse that carries it."""

from __future__ import annotations

from voicemesh.common.replies import ReplyEvent
from voicemesh.v1 import audio_pb2, core_pb2, gateway_pb2, speech_to_text_pb2

ConverseEvent = (
    ReplyEvent
    | speech_to_text_pb2.SpeechStarted
    | speech_to_text_pb2.RecognitionResult  # a transcript (partial, speculative or final)
    | speech_to_text_pb2.SpeechEnded
    | speech_to_text_pb2.WakeWordDetected
    | gateway_pb2.ReplyInterrupted
    | gateway_pb2.TurnFailed
    | gateway_pb2.VoiceNotVerified
)


def converse_response(request_id: str, turn_index: int, event: ConverseEvent) -> gateway_pb2.ConverseResponse:
    response = gateway_pb2.ConverseResponse(request_id=request_id, turn_index=turn_index)
    if isinstance(event, str):
        response.reply_text_delta = event
    elif isinstance(event, audio_pb2.SynthesizedAudio):
        response.reply_audio.CopyFrom(event)
    elif isinstance(event, core_pb2.RouteChosen):
        response.route.CopyFrom(event)
    elif isinstance(event, core_pb2.SentenceMark):
        response.reply_sentence.CopyFrom(event)
    elif isinstance(event, gateway_pb2.ReplyAudioFailed):
        response.reply_audio_failed.CopyFrom(event)
    elif isinstance(event, gateway_pb2.Citation):
        response.citation.CopyFrom(event)
    elif isinstance(event, gateway_pb2.GroundingFailed):
        response.grounding_failed.CopyFrom(event)
    elif isinstance(event, gateway_pb2.TurnDone):
        response.turn_done.CopyFrom(event)
    elif isinstance(event, speech_to_text_pb2.SpeechStarted):
        response.speech_started.CopyFrom(event)
    elif isinstance(event, speech_to_text_pb2.RecognitionResult):
        response.transcript.CopyFrom(event)
    elif isinstance(event, speech_to_text_pb2.SpeechEnded):
        response.speech_ended.CopyFrom(event)
    elif isinstance(event, speech_to_text_pb2.WakeWordDetected):
        response.wake_word.CopyFrom(event)
    elif isinstance(event, gateway_pb2.TurnFailed):
        response.turn_failed.CopyFrom(event)
    elif isinstance(event, gateway_pb2.VoiceNotVerified):
        response.voice_not_verified.CopyFrom(event)
    else:
        response.interrupted.CopyFrom(event)
    return response
