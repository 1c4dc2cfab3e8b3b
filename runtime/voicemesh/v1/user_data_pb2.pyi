import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetUserDataRequest(_message.Message):
    __slots__ = ("user_id", "limit")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    limit: int
    def __init__(self, user_id: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class GetUserDataResponse(_message.Message):
    __slots__ = ("profile", "turns")
    class ProfileEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    TURNS_FIELD_NUMBER: _ClassVar[int]
    profile: _containers.ScalarMap[str, str]
    turns: _containers.RepeatedCompositeFieldContainer[HistoryTurn]
    def __init__(self, profile: _Optional[_Mapping[str, str]] = ..., turns: _Optional[_Iterable[_Union[HistoryTurn, _Mapping]]] = ...) -> None: ...

class HistoryTurn(_message.Message):
    __slots__ = ("session_id", "transcript", "reply_text", "route", "timings_ms", "interrupted", "time", "failure")
    class TimingsMsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TRANSCRIPT_FIELD_NUMBER: _ClassVar[int]
    REPLY_TEXT_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_MS_FIELD_NUMBER: _ClassVar[int]
    INTERRUPTED_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    transcript: str
    reply_text: str
    route: str
    timings_ms: _containers.ScalarMap[str, float]
    interrupted: bool
    time: _timestamp_pb2.Timestamp
    failure: str
    def __init__(self, session_id: _Optional[str] = ..., transcript: _Optional[str] = ..., reply_text: _Optional[str] = ..., route: _Optional[str] = ..., timings_ms: _Optional[_Mapping[str, float]] = ..., interrupted: _Optional[bool] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., failure: _Optional[str] = ...) -> None: ...

class UpdateProfileRequest(_message.Message):
    __slots__ = ("user_id", "set", "remove")
    class SetEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SET_FIELD_NUMBER: _ClassVar[int]
    REMOVE_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    set: _containers.ScalarMap[str, str]
    remove: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, user_id: _Optional[str] = ..., set: _Optional[_Mapping[str, str]] = ..., remove: _Optional[_Iterable[str]] = ...) -> None: ...

class UpdateProfileResponse(_message.Message):
    __slots__ = ("profile",)
    class ProfileEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    profile: _containers.ScalarMap[str, str]
    def __init__(self, profile: _Optional[_Mapping[str, str]] = ...) -> None: ...

class DeleteUserDataRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class DeleteUserDataResponse(_message.Message):
    __slots__ = ("turns_deleted", "sessions_deleted", "cached_replies_deleted", "profile_deleted", "voice_print_deleted")
    TURNS_DELETED_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_DELETED_FIELD_NUMBER: _ClassVar[int]
    CACHED_REPLIES_DELETED_FIELD_NUMBER: _ClassVar[int]
    PROFILE_DELETED_FIELD_NUMBER: _ClassVar[int]
    VOICE_PRINT_DELETED_FIELD_NUMBER: _ClassVar[int]
    turns_deleted: int
    sessions_deleted: int
    cached_replies_deleted: int
    profile_deleted: bool
    voice_print_deleted: bool
    def __init__(self, turns_deleted: _Optional[int] = ..., sessions_deleted: _Optional[int] = ..., cached_replies_deleted: _Optional[int] = ..., profile_deleted: _Optional[bool] = ..., voice_print_deleted: _Optional[bool] = ...) -> None: ...
