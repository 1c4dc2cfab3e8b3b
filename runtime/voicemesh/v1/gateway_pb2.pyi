from voicemesh.v1 import audio_pb2 as _audio_pb2
from voicemesh.v1 import core_pb2 as _core_pb2
from voicemesh.v1 import speech_to_text_pb2 as _speech_to_text_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReplyConfig(_message.Message):
    __slots__ = ("synthesize_audio", "voice", "sample_rate_hz", "max_sentences")
    SYNTHESIZE_AUDIO_FIELD_NUMBER: _ClassVar[int]
    VOICE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    MAX_SENTENCES_FIELD_NUMBER: _ClassVar[int]
    synthesize_audio: bool
    voice: str
    sample_rate_hz: int
    max_sentences: int
    def __init__(self, synthesize_audio: _Optional[bool] = ..., voice: _Optional[str] = ..., sample_rate_hz: _Optional[int] = ..., max_sentences: _Optional[int] = ...) -> None: ...

class RetrievalConfig(_message.Message):
    __slots__ = ("off", "collection", "top_k")
    OFF_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    off: bool
    collection: str
    top_k: int
    def __init__(self, off: _Optional[bool] = ..., collection: _Optional[str] = ..., top_k: _Optional[int] = ...) -> None: ...

class ConverseConfig(_message.Message):
    __slots__ = ("audio_format", "reply", "session_id", "request_id", "wake_word", "interim_results", "endpointing", "no_barge_in", "user_id", "retrieval", "vocabulary")
    AUDIO_FORMAT_FIELD_NUMBER: _ClassVar[int]
    REPLY_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    WAKE_WORD_FIELD_NUMBER: _ClassVar[int]
    INTERIM_RESULTS_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTING_FIELD_NUMBER: _ClassVar[int]
    NO_BARGE_IN_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    RETRIEVAL_FIELD_NUMBER: _ClassVar[int]
    VOCABULARY_FIELD_NUMBER: _ClassVar[int]
    audio_format: _audio_pb2.AudioFormat
    reply: ReplyConfig
    session_id: str
    request_id: str
    wake_word: _speech_to_text_pb2.WakeWordConfig
    interim_results: bool
    endpointing: _speech_to_text_pb2.Endpointing
    no_barge_in: bool
    user_id: str
    retrieval: RetrievalConfig
    vocabulary: _speech_to_text_pb2.Vocabulary
    def __init__(self, audio_format: _Optional[_Union[_audio_pb2.AudioFormat, _Mapping]] = ..., reply: _Optional[_Union[ReplyConfig, _Mapping]] = ..., session_id: _Optional[str] = ..., request_id: _Optional[str] = ..., wake_word: _Optional[_Union[_speech_to_text_pb2.WakeWordConfig, _Mapping]] = ..., interim_results: _Optional[bool] = ..., endpointing: _Optional[_Union[_speech_to_text_pb2.Endpointing, _Mapping]] = ..., no_barge_in: _Optional[bool] = ..., user_id: _Optional[str] = ..., retrieval: _Optional[_Union[RetrievalConfig, _Mapping]] = ..., vocabulary: _Optional[_Union[_speech_to_text_pb2.Vocabulary, _Mapping]] = ...) -> None: ...

class ConverseRequest(_message.Message):
    __slots__ = ("config", "audio_content")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_CONTENT_FIELD_NUMBER: _ClassVar[int]
    config: ConverseConfig
    audio_content: bytes
    def __init__(self, config: _Optional[_Union[ConverseConfig, _Mapping]] = ..., audio_content: _Optional[bytes] = ...) -> None: ...

class ConverseResponse(_message.Message):
    __slots__ = ("request_id", "turn_index", "speech_started", "transcript", "speech_ended", "route", "reply_text_delta", "reply_sentence", "reply_audio", "turn_done", "wake_word", "interrupted", "reply_audio_failed", "turn_failed", "citation", "grounding_failed", "voice_not_verified")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TURN_INDEX_FIELD_NUMBER: _ClassVar[int]
    SPEECH_STARTED_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    SPEECH_ENDED_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    REPLY_TEXT_DELTA_FIELD_NUMBER: _ClassVar[int]
    REPLY_SENTENCE_FIELD_NUMBER: _ClassVar[int]
    REPLY_AUDIO_FIELD_NUMBER: _ClassVar[int]
    TURN_DONE_FIELD_NUMBER: _ClassVar[int]
    WAKE_WORD_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTED_FIELD_NUMBER: _ClassVar[int]
    REPLY_AUDIO_FAILED_FIELD_NUMBER: _ClassVar[int]
    TURN_FAILED_FIELD_NUMBER: _ClassVar[int]
    CITATION_FIELD_NUMBER: _ClassVar[int]
    GROUNDING_FAILED_FIELD_NUMBER: _ClassVar[int]
    VOICE_NOT_VERIFIED_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    turn_index: int
    speech_started: _speech_to_text_pb2.SpeechStarted
    transcript: _speech_to_text_pb2.RecognitionResult
    speech_ended: _speech_to_text_pb2.SpeechEnded
    route: _core_pb2.RouteChosen
    reply_text_delta: str
    reply_sentence: _core_pb2.SentenceMark
    reply_audio: _audio_pb2.SynthesizedAudio
    turn_done: TurnDone
    wake_word: _speech_to_text_pb2.WakeWordDetected
    interrupted: ReplyInterrupted
    reply_audio_failed: ReplyAudioFailed
    turn_failed: TurnFailed
    citation: Citation
    grounding_failed: GroundingFailed
    voice_not_verified: VoiceNotVerified
    def __init__(self, request_id: _Optional[str] = ..., turn_index: _Optional[int] = ..., speech_started: _Optional[_Union[_speech_to_text_pb2.SpeechStarted, _Mapping]] = ..., transcript: _Optional[_Union[_speech_to_text_pb2.RecognitionResult, _Mapping]] = ..., speech_ended: _Optional[_Union[_speech_to_text_pb2.SpeechEnded, _Mapping]] = ..., route: _Optional[_Union[_core_pb2.RouteChosen, _Mapping]] = ..., reply_text_delta: _Optional[str] = ..., reply_sentence: _Optional[_Union[_core_pb2.SentenceMark, _Mapping]] = ..., reply_audio: _Optional[_Union[_audio_pb2.SynthesizedAudio, _Mapping]] = ..., turn_done: _Optional[_Union[TurnDone, _Mapping]] = ..., wake_word: _Optional[_Union[_speech_to_text_pb2.WakeWordDetected, _Mapping]] = ..., interrupted: _Optional[_Union[ReplyInterrupted, _Mapping]] = ..., reply_audio_failed: _Optional[_Union[ReplyAudioFailed, _Mapping]] = ..., turn_failed: _Optional[_Union[TurnFailed, _Mapping]] = ..., citation: _Optional[_Union[Citation, _Mapping]] = ..., grounding_failed: _Optional[_Union[GroundingFailed, _Mapping]] = ..., voice_not_verified: _Optional[_Union[VoiceNotVerified, _Mapping]] = ...) -> None: ...

class VoiceNotVerified(_message.Message):
    __slots__ = ("speaker", "message")
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    speaker: _speech_to_text_pb2.SpeakerVerification
    message: str
    def __init__(self, speaker: _Optional[_Union[_speech_to_text_pb2.SpeakerVerification, _Mapping]] = ..., message: _Optional[str] = ...) -> None: ...

class Citation(_message.Message):
    __slots__ = ("index", "source", "title", "heading", "passage_id", "document_id", "score")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    HEADING_FIELD_NUMBER: _ClassVar[int]
    PASSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    index: int
    source: str
    title: str
    heading: str
    passage_id: str
    document_id: str
    score: float
    def __init__(self, index: _Optional[int] = ..., source: _Optional[str] = ..., title: _Optional[str] = ..., heading: _Optional[str] = ..., passage_id: _Optional[str] = ..., document_id: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class GroundingFailed(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class TurnFailed(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class ReplyAudioFailed(_message.Message):
    __slots__ = ("code", "message")
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class ReplyInterrupted(_message.Message):
    __slots__ = ("by_utterance_index", "audio_sent_s", "reply_text")
    BY_UTTERANCE_INDEX_FIELD_NUMBER: _ClassVar[int]
    AUDIO_SENT_S_FIELD_NUMBER: _ClassVar[int]
    REPLY_TEXT_FIELD_NUMBER: _ClassVar[int]
    by_utterance_index: int
    audio_sent_s: float
    reply_text: str
    def __init__(self, by_utterance_index: _Optional[int] = ..., audio_sent_s: _Optional[float] = ..., reply_text: _Optional[str] = ...) -> None: ...

class AskRequest(_message.Message):
    __slots__ = ("text", "reply", "session_id", "request_id", "user_id", "retrieval")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    REPLY_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    RETRIEVAL_FIELD_NUMBER: _ClassVar[int]
    text: str
    reply: ReplyConfig
    session_id: str
    request_id: str
    user_id: str
    retrieval: RetrievalConfig
    def __init__(self, text: _Optional[str] = ..., reply: _Optional[_Union[ReplyConfig, _Mapping]] = ..., session_id: _Optional[str] = ..., request_id: _Optional[str] = ..., user_id: _Optional[str] = ..., retrieval: _Optional[_Union[RetrievalConfig, _Mapping]] = ...) -> None: ...

class AskResponse(_message.Message):
    __slots__ = ("request_id", "route", "reply_text_delta", "reply_sentence", "reply_audio", "turn_done", "reply_audio_failed", "citation", "grounding_failed")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    REPLY_TEXT_DELTA_FIELD_NUMBER: _ClassVar[int]
    REPLY_SENTENCE_FIELD_NUMBER: _ClassVar[int]
    REPLY_AUDIO_FIELD_NUMBER: _ClassVar[int]
    TURN_DONE_FIELD_NUMBER: _ClassVar[int]
    REPLY_AUDIO_FAILED_FIELD_NUMBER: _ClassVar[int]
    CITATION_FIELD_NUMBER: _ClassVar[int]
    GROUNDING_FAILED_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    route: _core_pb2.RouteChosen
    reply_text_delta: str
    reply_sentence: _core_pb2.SentenceMark
    reply_audio: _audio_pb2.SynthesizedAudio
    turn_done: TurnDone
    reply_audio_failed: ReplyAudioFailed
    citation: Citation
    grounding_failed: GroundingFailed
    def __init__(self, request_id: _Optional[str] = ..., route: _Optional[_Union[_core_pb2.RouteChosen, _Mapping]] = ..., reply_text_delta: _Optional[str] = ..., reply_sentence: _Optional[_Union[_core_pb2.SentenceMark, _Mapping]] = ..., reply_audio: _Optional[_Union[_audio_pb2.SynthesizedAudio, _Mapping]] = ..., turn_done: _Optional[_Union[TurnDone, _Mapping]] = ..., reply_audio_failed: _Optional[_Union[ReplyAudioFailed, _Mapping]] = ..., citation: _Optional[_Union[Citation, _Mapping]] = ..., grounding_failed: _Optional[_Union[GroundingFailed, _Mapping]] = ...) -> None: ...

class TurnDone(_message.Message):
    __slots__ = ("transcript", "reply_text", "session_id", "timings", "context_turns", "citations", "prompt_tokens", "cached_prompt_tokens", "finish_reason")
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    REPLY_TEXT_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_TURNS_FIELD_NUMBER: _ClassVar[int]
    CITATIONS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHED_PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    transcript: str
    reply_text: str
    session_id: str
    timings: TurnTimings
    context_turns: int
    citations: _containers.RepeatedCompositeFieldContainer[Citation]
    prompt_tokens: int
    cached_prompt_tokens: int
    finish_reason: str
    def __init__(self, transcript: _Optional[str] = ..., reply_text: _Optional[str] = ..., session_id: _Optional[str] = ..., timings: _Optional[_Union[TurnTimings, _Mapping]] = ..., context_turns: _Optional[int] = ..., citations: _Optional[_Iterable[_Union[Citation, _Mapping]]] = ..., prompt_tokens: _Optional[int] = ..., cached_prompt_tokens: _Optional[int] = ..., finish_reason: _Optional[str] = ...) -> None: ...

class TurnTimings(_message.Message):
    __slots__ = ("final_transcript_ms", "first_token_ms", "first_sentence_ms", "first_audio_ms", "done_ms", "retrieval_ms", "core_queue_ms", "core_prefill_ms")
    FINAL_TRANSCRIPT_MS_FIELD_NUMBER: _ClassVar[int]
    FIRST_TOKEN_MS_FIELD_NUMBER: _ClassVar[int]
    FIRST_SENTENCE_MS_FIELD_NUMBER: _ClassVar[int]
    FIRST_AUDIO_MS_FIELD_NUMBER: _ClassVar[int]
    DONE_MS_FIELD_NUMBER: _ClassVar[int]
    RETRIEVAL_MS_FIELD_NUMBER: _ClassVar[int]
    CORE_QUEUE_MS_FIELD_NUMBER: _ClassVar[int]
    CORE_PREFILL_MS_FIELD_NUMBER: _ClassVar[int]
    final_transcript_ms: float
    first_token_ms: float
    first_sentence_ms: float
    first_audio_ms: float
    done_ms: float
    retrieval_ms: float
    core_queue_ms: float
    core_prefill_ms: float
    def __init__(self, final_transcript_ms: _Optional[float] = ..., first_token_ms: _Optional[float] = ..., first_sentence_ms: _Optional[float] = ..., first_audio_ms: _Optional[float] = ..., done_ms: _Optional[float] = ..., retrieval_ms: _Optional[float] = ..., core_queue_ms: _Optional[float] = ..., core_prefill_ms: _Optional[float] = ...) -> None: ...
