from voicemesh.v1 import audio_pb2 as _audio_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SpeakerVerdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SPEAKER_VERDICT_UNSPECIFIED: _ClassVar[SpeakerVerdict]
    SPEAKER_VERDICT_MATCH: _ClassVar[SpeakerVerdict]
    SPEAKER_VERDICT_NO_MATCH: _ClassVar[SpeakerVerdict]
    SPEAKER_VERDICT_TOO_SHORT: _ClassVar[SpeakerVerdict]

class EndpointingMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENDPOINTING_MODE_UNSPECIFIED: _ClassVar[EndpointingMode]
    ENDPOINTING_MODE_FIXED: _ClassVar[EndpointingMode]
    ENDPOINTING_MODE_SEMANTIC: _ClassVar[EndpointingMode]
SPEAKER_VERDICT_UNSPECIFIED: SpeakerVerdict
SPEAKER_VERDICT_MATCH: SpeakerVerdict
SPEAKER_VERDICT_NO_MATCH: SpeakerVerdict
SPEAKER_VERDICT_TOO_SHORT: SpeakerVerdict
ENDPOINTING_MODE_UNSPECIFIED: EndpointingMode
ENDPOINTING_MODE_FIXED: EndpointingMode
ENDPOINTING_MODE_SEMANTIC: EndpointingMode

class EmbedVoiceRequest(_message.Message):
    __slots__ = ("audio_format", "audio")
    AUDIO_FORMAT_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    audio_format: _audio_pb2.AudioFormat
    audio: bytes
    def __init__(self, audio_format: _Optional[_Union[_audio_pb2.AudioFormat, _Mapping]] = ..., audio: _Optional[bytes] = ...) -> None: ...

class EmbedVoiceResponse(_message.Message):
    __slots__ = ("embedding", "speech_s", "model")
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    SPEECH_S_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    embedding: _containers.RepeatedScalarFieldContainer[float]
    speech_s: float
    model: str
    def __init__(self, embedding: _Optional[_Iterable[float]] = ..., speech_s: _Optional[float] = ..., model: _Optional[str] = ...) -> None: ...

class SpeakerCheck(_message.Message):
    __slots__ = ("voice_print", "model", "threshold")
    VOICE_PRINT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    voice_print: _containers.RepeatedScalarFieldContainer[float]
    model: str
    threshold: float
    def __init__(self, voice_print: _Optional[_Iterable[float]] = ..., model: _Optional[str] = ..., threshold: _Optional[float] = ...) -> None: ...

class SpeakerVerification(_message.Message):
    __slots__ = ("verdict", "score", "threshold", "speech_s")
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    SPEECH_S_FIELD_NUMBER: _ClassVar[int]
    verdict: SpeakerVerdict
    score: float
    threshold: float
    speech_s: float
    def __init__(self, verdict: _Optional[_Union[SpeakerVerdict, str]] = ..., score: _Optional[float] = ..., threshold: _Optional[float] = ..., speech_s: _Optional[float] = ...) -> None: ...

class RecognitionConfig(_message.Message):
    __slots__ = ("audio_format", "language_code", "request_id", "wake_word", "interim_results", "endpointing", "speculative_results", "speaker_check", "vocabulary")
    AUDIO_FORMAT_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_CODE_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    WAKE_WORD_FIELD_NUMBER: _ClassVar[int]
    INTERIM_RESULTS_FIELD_NUMBER: _ClassVar[int]
    ENDPOINTING_FIELD_NUMBER: _ClassVar[int]
    SPECULATIVE_RESULTS_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_CHECK_FIELD_NUMBER: _ClassVar[int]
    VOCABULARY_FIELD_NUMBER: _ClassVar[int]
    audio_format: _audio_pb2.AudioFormat
    language_code: str
    request_id: str
    wake_word: WakeWordConfig
    interim_results: bool
    endpointing: Endpointing
    speculative_results: bool
    speaker_check: SpeakerCheck
    vocabulary: Vocabulary
    def __init__(self, audio_format: _Optional[_Union[_audio_pb2.AudioFormat, _Mapping]] = ..., language_code: _Optional[str] = ..., request_id: _Optional[str] = ..., wake_word: _Optional[_Union[WakeWordConfig, _Mapping]] = ..., interim_results: _Optional[bool] = ..., endpointing: _Optional[_Union[Endpointing, _Mapping]] = ..., speculative_results: _Optional[bool] = ..., speaker_check: _Optional[_Union[SpeakerCheck, _Mapping]] = ..., vocabulary: _Optional[_Union[Vocabulary, _Mapping]] = ...) -> None: ...

class Vocabulary(_message.Message):
    __slots__ = ("phrases",)
    PHRASES_FIELD_NUMBER: _ClassVar[int]
    phrases: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, phrases: _Optional[_Iterable[str]] = ...) -> None: ...

class Endpointing(_message.Message):
    __slots__ = ("min_silence_ms", "max_utterance_s", "min_speech_ms", "mode", "turn_threshold", "max_wait_ms")
    MIN_SILENCE_MS_FIELD_NUMBER: _ClassVar[int]
    MAX_UTTERANCE_S_FIELD_NUMBER: _ClassVar[int]
    MIN_SPEECH_MS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    TURN_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    MAX_WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    min_silence_ms: int
    max_utterance_s: float
    min_speech_ms: int
    mode: EndpointingMode
    turn_threshold: float
    max_wait_ms: int
    def __init__(self, min_silence_ms: _Optional[int] = ..., max_utterance_s: _Optional[float] = ..., min_speech_ms: _Optional[int] = ..., mode: _Optional[_Union[EndpointingMode, str]] = ..., turn_threshold: _Optional[float] = ..., max_wait_ms: _Optional[int] = ...) -> None: ...

class WakeWordConfig(_message.Message):
    __slots__ = ("models", "threshold")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedScalarFieldContainer[str]
    threshold: float
    def __init__(self, models: _Optional[_Iterable[str]] = ..., threshold: _Optional[float] = ...) -> None: ...

class StreamingRecognizeRequest(_message.Message):
    __slots__ = ("config", "audio_content")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    AUDIO_CONTENT_FIELD_NUMBER: _ClassVar[int]
    config: RecognitionConfig
    audio_content: bytes
    def __init__(self, config: _Optional[_Union[RecognitionConfig, _Mapping]] = ..., audio_content: _Optional[bytes] = ...) -> None: ...

class StreamingRecognizeResponse(_message.Message):
    __slots__ = ("request_id", "speech_started", "result", "speech_ended", "wake_word", "speech_resumed")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SPEECH_STARTED_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    SPEECH_ENDED_FIELD_NUMBER: _ClassVar[int]
    WAKE_WORD_FIELD_NUMBER: _ClassVar[int]
    SPEECH_RESUMED_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    speech_started: SpeechStarted
    result: RecognitionResult
    speech_ended: SpeechEnded
    wake_word: WakeWordDetected
    speech_resumed: SpeechResumed
    def __init__(self, request_id: _Optional[str] = ..., speech_started: _Optional[_Union[SpeechStarted, _Mapping]] = ..., result: _Optional[_Union[RecognitionResult, _Mapping]] = ..., speech_ended: _Optional[_Union[SpeechEnded, _Mapping]] = ..., wake_word: _Optional[_Union[WakeWordDetected, _Mapping]] = ..., speech_resumed: _Optional[_Union[SpeechResumed, _Mapping]] = ...) -> None: ...

class SpeechResumed(_message.Message):
    __slots__ = ("audio_offset_s", "utterance_index")
    AUDIO_OFFSET_S_FIELD_NUMBER: _ClassVar[int]
    UTTERANCE_INDEX_FIELD_NUMBER: _ClassVar[int]
    audio_offset_s: float
    utterance_index: int
    def __init__(self, audio_offset_s: _Optional[float] = ..., utterance_index: _Optional[int] = ...) -> None: ...

class WakeWordDetected(_message.Message):
    __slots__ = ("model", "score", "audio_offset_s", "utterance_index")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    AUDIO_OFFSET_S_FIELD_NUMBER: _ClassVar[int]
    UTTERANCE_INDEX_FIELD_NUMBER: _ClassVar[int]
    model: str
    score: float
    audio_offset_s: float
    utterance_index: int
    def __init__(self, model: _Optional[str] = ..., score: _Optional[float] = ..., audio_offset_s: _Optional[float] = ..., utterance_index: _Optional[int] = ...) -> None: ...

class SpeechStarted(_message.Message):
    __slots__ = ("audio_offset_s", "utterance_index")
    AUDIO_OFFSET_S_FIELD_NUMBER: _ClassVar[int]
    UTTERANCE_INDEX_FIELD_NUMBER: _ClassVar[int]
    audio_offset_s: float
    utterance_index: int
    def __init__(self, audio_offset_s: _Optional[float] = ..., utterance_index: _Optional[int] = ...) -> None: ...

class SpeechEnded(_message.Message):
    __slots__ = ("audio_offset_s", "utterance_index")
    AUDIO_OFFSET_S_FIELD_NUMBER: _ClassVar[int]
    UTTERANCE_INDEX_FIELD_NUMBER: _ClassVar[int]
    audio_offset_s: float
    utterance_index: int
    def __init__(self, audio_offset_s: _Optional[float] = ..., utterance_index: _Optional[int] = ...) -> None: ...

class WordInfo(_message.Message):
    __slots__ = ("word", "start_s", "end_s", "confidence")
    WORD_FIELD_NUMBER: _ClassVar[int]
    START_S_FIELD_NUMBER: _ClassVar[int]
    END_S_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    word: str
    start_s: float
    end_s: float
    confidence: float
    def __init__(self, word: _Optional[str] = ..., start_s: _Optional[float] = ..., end_s: _Optional[float] = ..., confidence: _Optional[float] = ...) -> None: ...

class RecognitionResult(_message.Message):
    __slots__ = ("transcript", "is_final", "stability", "confidence", "words", "utterance_index", "audio_start_s", "audio_end_s", "committed_transcript", "speculative", "speaker")
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    IS_FINAL_FIELD_NUMBER: _ClassVar[int]
    STABILITY_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    UTTERANCE_INDEX_FIELD_NUMBER: _ClassVar[int]
    AUDIO_START_S_FIELD_NUMBER: _ClassVar[int]
    AUDIO_END_S_FIELD_NUMBER: _ClassVar[int]
    COMMITTED_TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    SPECULATIVE_FIELD_NUMBER: _ClassVar[int]
    SPEAKER_FIELD_NUMBER: _ClassVar[int]
    transcript: str
    is_final: bool
    stability: float
    confidence: float
    words: _containers.RepeatedCompositeFieldContainer[WordInfo]
    utterance_index: int
    audio_start_s: float
    audio_end_s: float
    committed_transcript: str
    speculative: bool
    speaker: SpeakerVerification
    def __init__(self, transcript: _Optional[str] = ..., is_final: _Optional[bool] = ..., stability: _Optional[float] = ..., confidence: _Optional[float] = ..., words: _Optional[_Iterable[_Union[WordInfo, _Mapping]]] = ..., utterance_index: _Optional[int] = ..., audio_start_s: _Optional[float] = ..., audio_end_s: _Optional[float] = ..., committed_transcript: _Optional[str] = ..., speculative: _Optional[bool] = ..., speaker: _Optional[_Union[SpeakerVerification, _Mapping]] = ...) -> None: ...
