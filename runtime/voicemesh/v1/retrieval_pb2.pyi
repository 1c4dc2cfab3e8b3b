import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Fusion(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FUSION_UNSPECIFIED: _ClassVar[Fusion]
    FUSION_RECIPROCAL_RANK: _ClassVar[Fusion]
    FUSION_WEIGHTED: _ClassVar[Fusion]
FUSION_UNSPECIFIED: Fusion
FUSION_RECIPROCAL_RANK: Fusion
FUSION_WEIGHTED: Fusion

class Collection(_message.Message):
    __slots__ = ("tenant", "user_id", "name")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    user_id: str
    name: str
    def __init__(self, tenant: _Optional[str] = ..., user_id: _Optional[str] = ..., name: _Optional[str] = ...) -> None: ...

class SearchOptions(_message.Message):
    __slots__ = ("skip_keyword", "skip_dense", "skip_rerank", "fusion", "exact", "skip_rescore", "min_dense_score")
    SKIP_KEYWORD_FIELD_NUMBER: _ClassVar[int]
    SKIP_DENSE_FIELD_NUMBER: _ClassVar[int]
    SKIP_RERANK_FIELD_NUMBER: _ClassVar[int]
    FUSION_FIELD_NUMBER: _ClassVar[int]
    EXACT_FIELD_NUMBER: _ClassVar[int]
    SKIP_RESCORE_FIELD_NUMBER: _ClassVar[int]
    MIN_DENSE_SCORE_FIELD_NUMBER: _ClassVar[int]
    skip_keyword: bool
    skip_dense: bool
    skip_rerank: bool
    fusion: Fusion
    exact: bool
    skip_rescore: bool
    min_dense_score: float
    def __init__(self, skip_keyword: _Optional[bool] = ..., skip_dense: _Optional[bool] = ..., skip_rerank: _Optional[bool] = ..., fusion: _Optional[_Union[Fusion, str]] = ..., exact: _Optional[bool] = ..., skip_rescore: _Optional[bool] = ..., min_dense_score: _Optional[float] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("request_id", "query", "top_k", "collection", "options")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    query: str
    top_k: int
    collection: Collection
    options: SearchOptions
    def __init__(self, request_id: _Optional[str] = ..., query: _Optional[str] = ..., top_k: _Optional[int] = ..., collection: _Optional[_Union[Collection, _Mapping]] = ..., options: _Optional[_Union[SearchOptions, _Mapping]] = ...) -> None: ...

class StageScores(_message.Message):
    __slots__ = ("dense", "dense_rank", "keyword", "keyword_rank", "fused", "rerank")
    DENSE_FIELD_NUMBER: _ClassVar[int]
    DENSE_RANK_FIELD_NUMBER: _ClassVar[int]
    KEYWORD_FIELD_NUMBER: _ClassVar[int]
    KEYWORD_RANK_FIELD_NUMBER: _ClassVar[int]
    FUSED_FIELD_NUMBER: _ClassVar[int]
    RERANK_FIELD_NUMBER: _ClassVar[int]
    dense: float
    dense_rank: int
    keyword: float
    keyword_rank: int
    fused: float
    rerank: float
    def __init__(self, dense: _Optional[float] = ..., dense_rank: _Optional[int] = ..., keyword: _Optional[float] = ..., keyword_rank: _Optional[int] = ..., fused: _Optional[float] = ..., rerank: _Optional[float] = ...) -> None: ...

class Passage(_message.Message):
    __slots__ = ("document_id", "text", "score", "passage_id", "source", "title", "heading", "start_offset", "end_offset", "stages")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    PASSAGE_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    HEADING_FIELD_NUMBER: _ClassVar[int]
    START_OFFSET_FIELD_NUMBER: _ClassVar[int]
    END_OFFSET_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    text: str
    score: float
    passage_id: str
    source: str
    title: str
    heading: str
    start_offset: int
    end_offset: int
    stages: StageScores
    def __init__(self, document_id: _Optional[str] = ..., text: _Optional[str] = ..., score: _Optional[float] = ..., passage_id: _Optional[str] = ..., source: _Optional[str] = ..., title: _Optional[str] = ..., heading: _Optional[str] = ..., start_offset: _Optional[int] = ..., end_offset: _Optional[int] = ..., stages: _Optional[_Union[StageScores, _Mapping]] = ...) -> None: ...

class SearchTimings(_message.Message):
    __slots__ = ("embed_ms", "dense_ms", "keyword_ms", "fusion_ms", "rerank_ms", "total_ms")
    EMBED_MS_FIELD_NUMBER: _ClassVar[int]
    DENSE_MS_FIELD_NUMBER: _ClassVar[int]
    KEYWORD_MS_FIELD_NUMBER: _ClassVar[int]
    FUSION_MS_FIELD_NUMBER: _ClassVar[int]
    RERANK_MS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_MS_FIELD_NUMBER: _ClassVar[int]
    embed_ms: float
    dense_ms: float
    keyword_ms: float
    fusion_ms: float
    rerank_ms: float
    total_ms: float
    def __init__(self, embed_ms: _Optional[float] = ..., dense_ms: _Optional[float] = ..., keyword_ms: _Optional[float] = ..., fusion_ms: _Optional[float] = ..., rerank_ms: _Optional[float] = ..., total_ms: _Optional[float] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("request_id", "passages", "timings", "generation")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PASSAGES_FIELD_NUMBER: _ClassVar[int]
    TIMINGS_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    passages: _containers.RepeatedCompositeFieldContainer[Passage]
    timings: SearchTimings
    generation: int
    def __init__(self, request_id: _Optional[str] = ..., passages: _Optional[_Iterable[_Union[Passage, _Mapping]]] = ..., timings: _Optional[_Union[SearchTimings, _Mapping]] = ..., generation: _Optional[int] = ...) -> None: ...

class IngestConfig(_message.Message):
    __slots__ = ("request_id", "collection")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    collection: Collection
    def __init__(self, request_id: _Optional[str] = ..., collection: _Optional[_Union[Collection, _Mapping]] = ...) -> None: ...

class Document(_message.Message):
    __slots__ = ("document_id", "source", "title", "media_type", "text", "data")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    source: str
    title: str
    media_type: str
    text: str
    data: bytes
    def __init__(self, document_id: _Optional[str] = ..., source: _Optional[str] = ..., title: _Optional[str] = ..., media_type: _Optional[str] = ..., text: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class IngestRequest(_message.Message):
    __slots__ = ("config", "document")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_FIELD_NUMBER: _ClassVar[int]
    config: IngestConfig
    document: Document
    def __init__(self, config: _Optional[_Union[IngestConfig, _Mapping]] = ..., document: _Optional[_Union[Document, _Mapping]] = ...) -> None: ...

class DocumentError(_message.Message):
    __slots__ = ("document_id", "source", "message")
    DOCUMENT_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    document_id: str
    source: str
    message: str
    def __init__(self, document_id: _Optional[str] = ..., source: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class IngestResponse(_message.Message):
    __slots__ = ("documents", "passages", "errors", "unchanged", "generation")
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    PASSAGES_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    UNCHANGED_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    documents: int
    passages: int
    errors: _containers.RepeatedCompositeFieldContainer[DocumentError]
    unchanged: int
    generation: int
    def __init__(self, documents: _Optional[int] = ..., passages: _Optional[int] = ..., errors: _Optional[_Iterable[_Union[DocumentError, _Mapping]]] = ..., unchanged: _Optional[int] = ..., generation: _Optional[int] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("request_id", "collection", "document_ids", "all_documents")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    DOCUMENT_IDS_FIELD_NUMBER: _ClassVar[int]
    ALL_DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    collection: Collection
    document_ids: _containers.RepeatedScalarFieldContainer[str]
    all_documents: bool
    def __init__(self, request_id: _Optional[str] = ..., collection: _Optional[_Union[Collection, _Mapping]] = ..., document_ids: _Optional[_Iterable[str]] = ..., all_documents: _Optional[bool] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("documents", "passages", "generation")
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    PASSAGES_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    documents: int
    passages: int
    generation: int
    def __init__(self, documents: _Optional[int] = ..., passages: _Optional[int] = ..., generation: _Optional[int] = ...) -> None: ...

class StatsRequest(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: Collection
    def __init__(self, collection: _Optional[_Union[Collection, _Mapping]] = ...) -> None: ...

class StatsResponse(_message.Message):
    __slots__ = ("documents", "passages", "generation", "dense_index", "keyword_index", "embedder", "reranker", "bytes", "built_at")
    class BytesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    DOCUMENTS_FIELD_NUMBER: _ClassVar[int]
    PASSAGES_FIELD_NUMBER: _ClassVar[int]
    GENERATION_FIELD_NUMBER: _ClassVar[int]
    DENSE_INDEX_FIELD_NUMBER: _ClassVar[int]
    KEYWORD_INDEX_FIELD_NUMBER: _ClassVar[int]
    EMBEDDER_FIELD_NUMBER: _ClassVar[int]
    RERANKER_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    BUILT_AT_FIELD_NUMBER: _ClassVar[int]
    documents: int
    passages: int
    generation: int
    dense_index: str
    keyword_index: str
    embedder: str
    reranker: str
    bytes: _containers.ScalarMap[str, int]
    built_at: _timestamp_pb2.Timestamp
    def __init__(self, documents: _Optional[int] = ..., passages: _Optional[int] = ..., generation: _Optional[int] = ..., dense_index: _Optional[str] = ..., keyword_index: _Optional[str] = ..., embedder: _Optional[str] = ..., reranker: _Optional[str] = ..., bytes: _Optional[_Mapping[str, int]] = ..., built_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...
