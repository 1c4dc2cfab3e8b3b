import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from voicemesh.v1 import retrieval_pb2 as _retrieval_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetVoicePrintRequest(_message.Message):
    __slots__ = ("user_id", "session_id")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    session_id: str
    def __init__(self, user_id: _Optional[str] = ..., session_id: _Optional[str] = ...) -> None: ...

class SaveVoicePrintRequest(_message.Message):
    __slots__ = ("user_id", "print")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PRINT_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    print: VoicePrint
    def __init__(self, user_id: _Optional[str] = ..., print: _Optional[_Union[VoicePrint, _Mapping]] = ...) -> None: ...

class GetVoicePrintResponse(_message.Message):
    __slots__ = ("print",)
    PRINT_FIELD_NUMBER: _ClassVar[int]
    print: VoicePrint
    def __init__(self, print: _Optional[_Union[VoicePrint, _Mapping]] = ...) -> None: ...

class SaveVoicePrintResponse(_message.Message):
    __slots__ = ("print", "deleted")
    PRINT_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    print: VoicePrint
    deleted: bool
    def __init__(self, print: _Optional[_Union[VoicePrint, _Mapping]] = ..., deleted: _Optional[bool] = ...) -> None: ...

class VoicePrint(_message.Message):
    __slots__ = ("embedding", "require_match", "samples", "speech_s", "enrolled_at", "model", "consistency")
    EMBEDDING_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_MATCH_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    SPEECH_S_FIELD_NUMBER: _ClassVar[int]
    ENROLLED_AT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    embedding: _containers.RepeatedScalarFieldContainer[float]
    require_match: bool
    samples: int
    speech_s: float
    enrolled_at: _timestamp_pb2.Timestamp
    model: str
    consistency: float
    def __init__(self, embedding: _Optional[_Iterable[float]] = ..., require_match: _Optional[bool] = ..., samples: _Optional[int] = ..., speech_s: _Optional[float] = ..., enrolled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., model: _Optional[str] = ..., consistency: _Optional[float] = ...) -> None: ...

class GetUserVersionRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class GetUserVersionResponse(_message.Message):
    __slots__ = ("version",)
    VERSION_FIELD_NUMBER: _ClassVar[int]
    version: int
    def __init__(self, version: _Optional[int] = ...) -> None: ...

class RespondRequest(_message.Message):
    __slots__ = ("request_id", "session_id", "text", "max_tokens", "user_id", "passages", "max_sentences", "over_limit")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    PASSAGES_FIELD_NUMBER: _ClassVar[int]
    MAX_SENTENCES_FIELD_NUMBER: _ClassVar[int]
    OVER_LIMIT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    session_id: str
    text: str
    max_tokens: int
    user_id: str
    passages: _containers.RepeatedCompositeFieldContainer[_retrieval_pb2.Passage]
    max_sentences: int
    over_limit: str
    def __init__(self, request_id: _Optional[str] = ..., session_id: _Optional[str] = ..., text: _Optional[str] = ..., max_tokens: _Optional[int] = ..., user_id: _Optional[str] = ..., passages: _Optional[_Iterable[_Union[_retrieval_pb2.Passage, _Mapping]]] = ..., max_sentences: _Optional[int] = ..., over_limit: _Optional[str] = ...) -> None: ...

class RecordTurnRequest(_message.Message):
    __slots__ = ("request_id", "session_id", "user_id", "transcript", "reply_text", "route", "timings_ms", "interrupted", "failure", "ended_at")
    class TimingsMsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    REPLY_TEXT_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_MS_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTED_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    ENDED_AT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    session_id: str
    user_id: str
    transcript: str
    reply_text: str
    route: str
    timings_ms: _containers.ScalarMap[str, float]
    interrupted: bool
    failure: str
    ended_at: _timestamp_pb2.Timestamp
    def __init__(self, request_id: _Optional[str] = ..., session_id: _Optional[str] = ..., user_id: _Optional[str] = ..., transcript: _Optional[str] = ..., reply_text: _Optional[str] = ..., route: _Optional[str] = ..., timings_ms: _Optional[_Mapping[str, float]] = ..., interrupted: _Optional[bool] = ..., failure: _Optional[str] = ..., ended_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RecordTurnResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RespondResponse(_message.Message):
    __slots__ = ("request_id", "route", "text_delta", "sentence", "done")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    TEXT_DELTA_FIELD_NUMBER: _ClassVar[int]
    SENTENCE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    route: RouteChosen
    text_delta: str
    sentence: SentenceMark
    done: ReplyDone
    def __init__(self, request_id: _Optional[str] = ..., route: _Optional[_Union[RouteChosen, _Mapping]] = ..., text_delta: _Optional[str] = ..., sentence: _Optional[_Union[SentenceMark, _Mapping]] = ..., done: _Optional[_Union[ReplyDone, _Mapping]] = ...) -> None: ...

class RouteChosen(_message.Message):
    __slots__ = ("tier", "model", "reason")
    TIER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    tier: str
    model: str
    reason: str
    def __init__(self, tier: _Optional[str] = ..., model: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class SentenceMark(_message.Message):
    __slots__ = ("index", "text")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    index: int
    text: str
    def __init__(self, index: _Optional[int] = ..., text: _Optional[str] = ...) -> None: ...

class ReplyDone(_message.Message):
    __slots__ = ("text", "completion_tokens", "finish_reason", "context_turns", "user_version", "prompt_tokens", "cached_prompt_tokens", "queue_ms", "prefill_ms")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_TURNS_FIELD_NUMBER: _ClassVar[int]
    USER_VERSION_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHED_PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    QUEUE_MS_FIELD_NUMBER: _ClassVar[int]
    PREFILL_MS_FIELD_NUMBER: _ClassVar[int]
    text: str
    completion_tokens: int
    finish_reason: str
    context_turns: int
    user_version: int
    prompt_tokens: int
    cached_prompt_tokens: int
    queue_ms: float
    prefill_ms: float
    def __init__(self, text: _Optional[str] = ..., completion_tokens: _Optional[int] = ..., finish_reason: _Optional[str] = ..., context_turns: _Optional[int] = ..., user_version: _Optional[int] = ..., prompt_tokens: _Optional[int] = ..., cached_prompt_tokens: _Optional[int] = ..., queue_ms: _Optional[float] = ..., prefill_ms: _Optional[float] = ...) -> None: ...
