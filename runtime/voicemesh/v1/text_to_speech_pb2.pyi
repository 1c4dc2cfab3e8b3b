from voicemesh.v1 import audio_pb2 as _audio_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SynthesisConfig(_message.Message):
    __slots__ = ("voice", "sample_rate_hz", "request_id")
    VOICE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_HZ_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    voice: str
    sample_rate_hz: int
    request_id: str
    def __init__(self, voice: _Optional[str] = ..., sample_rate_hz: _Optional[int] = ..., request_id: _Optional[str] = ...) -> None: ...

class SynthesizeRequest(_message.Message):
    __slots__ = ("config", "text")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    config: SynthesisConfig
    text: str
    def __init__(self, config: _Optional[_Union[SynthesisConfig, _Mapping]] = ..., text: _Optional[str] = ...) -> None: ...

class SynthesizeResponse(_message.Message):
    __slots__ = ("request_id", "audio")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    audio: _audio_pb2.SynthesizedAudio
    def __init__(self, request_id: _Optional[str] = ..., audio: _Optional[_Union[_audio_pb2.SynthesizedAudio, _Mapping]] = ...) -> None: ...

class StreamingSynthesizeRequest(_message.Message):
    __slots__ = ("config", "text_delta")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    TEXT_DELTA_FIELD_NUMBER: _ClassVar[int]
    config: SynthesisConfig
    text_delta: str
    def __init__(self, config: _Optional[_Union[SynthesisConfig, _Mapping]] = ..., text_delta: _Optional[str] = ...) -> None: ...

class StreamingSynthesizeResponse(_message.Message):
    __slots__ = ("request_id", "audio")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    audio: _audio_pb2.SynthesizedAudio
    def __init__(self, request_id: _Optional[str] = ..., audio: _Optional[_Union[_audio_pb2.SynthesizedAudio, _Mapping]] = ...) -> None: ...
