import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from voicemesh.v1 import audio_pb2 as _audio_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VoiceSample(_message.Message):
    __slots__ = ("audio_format", "audio")
    AUDIO_FORMAT_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    audio_format: _audio_pb2.AudioFormat
    audio: bytes
    def __init__(self, audio_format: _Optional[_Union[_audio_pb2.AudioFormat, _Mapping]] = ..., audio: _Optional[bytes] = ...) -> None: ...

class EnrollVoiceRequest(_message.Message):
    __slots__ = ("user_id", "samples", "require_match")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_MATCH_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    samples: _containers.RepeatedCompositeFieldContainer[VoiceSample]
    require_match: bool
    def __init__(self, user_id: _Optional[str] = ..., samples: _Optional[_Iterable[_Union[VoiceSample, _Mapping]]] = ..., require_match: _Optional[bool] = ...) -> None: ...

class GetVoiceStatusRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class SetVoiceRequiredRequest(_message.Message):
    __slots__ = ("user_id", "require_match")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_MATCH_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    require_match: bool
    def __init__(self, user_id: _Optional[str] = ..., require_match: _Optional[bool] = ...) -> None: ...

class ForgetVoiceRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: str
    def __init__(self, user_id: _Optional[str] = ...) -> None: ...

class VoiceStatus(_message.Message):
    __slots__ = ("enrolled", "require_match", "samples", "speech_s", "enrolled_at", "model", "consistency")
    ENROLLED_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_MATCH_FIELD_NUMBER: _ClassVar[int]
    SAMPLES_FIELD_NUMBER: _ClassVar[int]
    SPEECH_S_FIELD_NUMBER: _ClassVar[int]
    ENROLLED_AT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    enrolled: bool
    require_match: bool
    samples: int
    speech_s: float
    enrolled_at: _timestamp_pb2.Timestamp
    model: str
    consistency: float
    def __init__(self, enrolled: _Optional[bool] = ..., require_match: _Optional[bool] = ..., samples: _Optional[int] = ..., speech_s: _Optional[float] = ..., enrolled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., model: _Optional[str] = ..., consistency: _Optional[float] = ...) -> None: ...

class EnrollVoiceResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: VoiceStatus
    def __init__(self, status: _Optional[_Union[VoiceStatus, _Mapping]] = ...) -> None: ...

class GetVoiceStatusResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: VoiceStatus
    def __init__(self, status: _Optional[_Union[VoiceStatus, _Mapping]] = ...) -> None: ...

class SetVoiceRequiredResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: VoiceStatus
    def __init__(self, status: _Optional[_Union[VoiceStatus, _Mapping]] = ...) -> None: ...

class ForgetVoiceResponse(_message.Message):
    __slots__ = ("status", "deleted")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    status: VoiceStatus
    deleted: bool
    def __init__(self, status: _Optional[_Union[VoiceStatus, _Mapping]] = ..., deleted: _Optional[bool] = ...) -> None: ...
