from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SearchRequest(_message.Message):
    __slots__ = ("request_id", "query", "top_k")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    query: str
    top_k: int
    def __init__(self, request_id: _Optional[str] = ..., query: _Optional[str] = ..., top_k: _Optional[int] = ...) -> None: ...

class Passage(_message.Message):
    __slots__ = ("document_id", "text", "score")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    text: str
    score: float
    def __init__(self, document_id: _Optional[str] = ..., text: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("request_id", "passages")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PASSAGES_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    passages: _containers.RepeatedCompositeFieldContainer[Passage]
    def __init__(self, request_id: _Optional[str] = ..., passages: _Optional[_Iterable[_Union[Passage, _Mapping]]] = ...) -> None: ...

class IngestRequest(_message.Message):
    __slots__ = ("document_id", "text")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    text: str
    def __init__(self, document_id: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class IngestResponse(_message.Message):
    __slots__ = ("documents", "passages")
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    PASSAGES_FIELD_NUMBER: _ClassVar[int]
    documents: int
    passages: int
    def __init__(self, documents: _Optional[int] = ..., passages: _Optional[int] = ...) -> None: ...
