"""Python client for the voicemesh gateway: ``AsyncClient`` and its blocking twin ``Client``.

Events are the gateway's own protobuf messages (``ConverseResponse`` / ``AskResponse``): the same
objects a client in any other language gets. ``event.WhichOneof("event")`` says which kind it is.

The connection is TLS with a bearer credential: ``token`` and ``ca`` when given, else
$VOICEMESH_TOKEN / $VOICEMESH_CA, else what ``voicemesh up`` saved in ~/.config/voicemesh
(voicemesh.common.credentials). ``insecure=True`` is plaintext, to a loopback address only.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Iterable, Iterator, Sequence
from typing import Any, TypeVar

from voicemesh.common.audio import WavAudio
from voicemesh.common.calls import responses
from voicemesh.common.components import GATEWAY
from voicemesh.common.credentials import Credentials, open_channel
from voicemesh.common.errors import InvalidRequest
from voicemesh.common.limits import MAX_MESSAGE_BYTES
from voicemesh.common.replies import ask_response
from voicemesh.common.reply_cache import CachedReply, ReplyCache, cache_key, replay
from voicemesh.common.retry import RetryPolicy, retrying_stream
from voicemesh.v1 import (
    audio_pb2,
    gateway_pb2,
    gateway_pb2_grpc,
    retrieval_pb2,
    retrieval_pb2_grpc,
    speech_to_text_pb2,
    user_data_pb2_grpc,
    voice_pb2,
    voice_pb2_grpc,
)

DEFAULT_TARGET = os.environ.get("VOICEMESH_TARGET", f"127.0.0.1:{GATEWAY.port}")
# An Ask without a timeout of its own never waits longer than this for its reply.
ASK_TIMEOUT_S = 120.0
# Pings on an open channel: a gateway that died without closing the connection (a pod gone, a
# network cut) ends the calls on it within about keepalive time + timeout, instead of never.
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
    ("grpc.keepalive_time_ms", 20_000),
    ("grpc.keepalive_timeout_ms", 10_000),
]
CHUNK_MS = 100
T = TypeVar("T")


def wav_chunks(audio: WavAudio, chunk_ms: int = CHUNK_MS) -> Iterator[bytes]:
    """Split a WAV's PCM into chunks of whole frames, ``chunk_ms`` long."""
    step = audio.sample_rate_hz * chunk_ms // 1000 * 2 * audio.channels
    for offset in range(0, len(audio.pcm), step):
        yield audio.pcm[offset : offset + step]


ENDPOINTING_MODES = {
    "": speech_to_text_pb2.ENDPOINTING_MODE_UNSPECIFIED,
    "fixed": speech_to_text_pb2.ENDPOINTING_MODE_FIXED,
    "semantic": speech_to_text_pb2.ENDPOINTING_MODE_SEMANTIC,
}


def endpointing_mode(name: str) -> speech_to_text_pb2.EndpointingMode:
    try:
        return ENDPOINTING_MODES[name]
    except KeyError:
        raise InvalidRequest(f"endpointing {name!r} is not 'semantic' or 'fixed'") from None


def reply_config(
    speak: bool, voice: str, sample_rate_hz: int, max_sentences: int = 0
) -> gateway_pb2.ReplyConfig:
    return gateway_pb2.ReplyConfig(
        synthesize_audio=speak, voice=voice, sample_rate_hz=sample_rate_hz, max_sentences=max_sentences
    )


def retrieval_config(retrieval: bool, collection: str, top_k: int) -> gateway_pb2.RetrievalConfig:
    return gateway_pb2.RetrievalConfig(off=not retrieval, collection=collection, top_k=top_k)


class AsyncClient:
    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        timeout_s: float | None = None,
        retry: RetryPolicy | None = None,
        reply_cache: ReplyCache | None = None,
        token: str = "",
        ca: str = "",
        insecure: bool = False,
    ) -> None:
        """``reply_cache`` (e.g. ``ReplyCache("edge")``) answers an ``ask`` that starts a conversation
        with words asked before from this process, without a round trip. Such a turn never reaches
        the server, so it is not in the user's history there: leave it off where that matters."""
        self.target = target
        self._timeout_s = timeout_s
        self._retry = retry or RetryPolicy()
        self._channel = open_channel(
            target, Credentials.find(token, ca), insecure=insecure, options=CHANNEL_OPTIONS
        )
        self._stub = gateway_pb2_grpc.GatewayServiceStub(self._channel)
        self.users = user_data_pb2_grpc.UserDataServiceStub(self._channel)
        # The user's documents: Search, Ingest, Delete, Stats, under the caller's tenant.
        self.documents = retrieval_pb2_grpc.RetrievalServiceStub(self._channel)
        # The users' voice prints: EnrollVoice, GetVoiceStatus, SetVoiceRequired, ForgetVoice.
        self.voices = voice_pb2_grpc.VoiceServiceStub(self._channel)
        self.reply_cache = reply_cache

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close(grace=None)

    async def converse(
        self,
        audio: AsyncIterable[bytes] | Iterable[bytes],
        *,
        sample_rate_hz: int = 16_000,
        channels: int = 1,
        speak: bool = True,
        voice: str = "",
        reply_sample_rate_hz: int = 0,
        max_sentences: int = 0,
        session_id: str = "",
        user_id: str = "",
        request_id: str = "",
        wake_words: Sequence[str] | None = None,
        wake_threshold: float = 0.0,
        interim_results: bool = False,
        min_silence_ms: int = 0,
        min_speech_ms: int = 0,
        max_utterance_s: float = 0.0,
        endpointing: str = "",
        max_wait_ms: int = 0,
        hotwords: Sequence[str] = (),
        barge_in: bool = True,
        retrieval: bool = True,
        collection: str = "",
        retrieval_top_k: int = 0,
    ) -> AsyncIterator[gateway_pb2.ConverseResponse]:
        """Stream PCM s16le audio; yield transcripts, reply text and reply audio as they come.

        ``wake_words`` (``[]`` for the server's default) asks the server to listen for a wake word and
        drop everything before it: for a client that streams all its audio. The SDK's own edge
        (``voicemesh.client.edge``) does that on the device instead. ``interim_results`` adds partial
        transcripts while the user speaks; ``min_silence_ms``, ``min_speech_ms`` and
        ``max_utterance_s`` tune what counts as speech and when an utterance ends (0 keeps the
        server's defaults). ``endpointing`` is "semantic" (each pause is judged, and a speaker who is
        not done is waited for, up to ``max_wait_ms`` of silence) or "fixed" (``min_silence_ms`` ends
        every turn); empty keeps the server's default. ``hotwords`` are words and phrases to expect
        (names, jargon), spelled as they should come out. ``max_sentences`` lets each reply run to
        that many sentences (0: the server's default, 2). With ``barge_in``, speech over a reply
        interrupts it: an ``interrupted`` event says to stop playing that turn's audio. With
        ``retrieval`` (the default) each reply is grounded in the user's documents (their
        ``collection``, "default" if empty): ``citation`` events name the passages it was given.
        Unlike ``ask``, a failed stream is not retried: the audio it consumed cannot be sent again.
        """
        wake = None
        if wake_words is not None:
            wake = speech_to_text_pb2.WakeWordConfig(models=wake_words, threshold=wake_threshold)
        config = gateway_pb2.ConverseConfig(
            audio_format=audio_pb2.AudioFormat(
                encoding=audio_pb2.AUDIO_ENCODING_LINEAR16, sample_rate_hz=sample_rate_hz, channels=channels
            ),
            reply=reply_config(speak, voice, reply_sample_rate_hz, max_sentences),
            session_id=session_id,
            user_id=user_id,
            request_id=request_id,
            wake_word=wake,
            interim_results=interim_results,
            endpointing=speech_to_text_pb2.Endpointing(
                min_silence_ms=min_silence_ms,
                min_speech_ms=min_speech_ms,
                max_utterance_s=max_utterance_s,
                mode=endpointing_mode(endpointing),
                max_wait_ms=max_wait_ms,
            ),
            vocabulary=speech_to_text_pb2.Vocabulary(phrases=hotwords) if hotwords else None,
            no_barge_in=not barge_in,
            retrieval=retrieval_config(retrieval, collection, retrieval_top_k),
        )

        async def requests() -> AsyncIterator[gateway_pb2.ConverseRequest]:
            yield gateway_pb2.ConverseRequest(config=config)
            if isinstance(audio, AsyncIterable):
                async for chunk in audio:
                    yield gateway_pb2.ConverseRequest(audio_content=chunk)
            else:
                for chunk in audio:
                    yield gateway_pb2.ConverseRequest(audio_content=chunk)

        call = self._stub.Converse(requests(), timeout=self._timeout_s)
        async with contextlib.aclosing(responses(call)) as stream:
            async for response in stream:
                yield response

    async def ask(
        self,
        text: str,
        *,
        speak: bool = False,
        voice: str = "",
        reply_sample_rate_hz: int = 0,
        max_sentences: int = 0,
        session_id: str = "",
        user_id: str = "",
        request_id: str = "",
        retrieval: bool = True,
        collection: str = "",
        retrieval_top_k: int = 0,
    ) -> AsyncIterator[gateway_pb2.AskResponse]:
        """A typed turn; yields the reply text (and audio if ``speak``) as it comes, grounded in the
        user's documents as in ``converse``.

        If the gateway is unreachable or over a limit before it answers, the call is retried with
        jittered backoff (``retry``), within the client's timeout and after any pushback the server
        asked for; once the reply has started it is not. Every attempt carries the same request id
        (one is made when none is given), so the user's history keeps the turn once.
        """
        request = gateway_pb2.AskRequest(
            text=text,
            reply=reply_config(speak, voice, reply_sample_rate_hz, max_sentences),
            session_id=session_id,
            user_id=user_id,
            request_id=request_id or uuid.uuid4().hex,
            retrieval=retrieval_config(retrieval, collection, retrieval_top_k),
        )
        cache, key = (
            self.reply_cache,
            cache_key(user_id, text, speak, voice, reply_sample_rate_hz, max_sentences),
        )
        if cache is not None and not session_id and (cached := cache.get(key)) is not None:
            for event in _replayed(cached, text, request_id):
                yield event
            return
        kept = _Keeper() if cache is not None and not session_id else None
        deadline_at = time.monotonic() + (self._timeout_s or ASK_TIMEOUT_S)

        def call() -> AsyncGenerator[gateway_pb2.AskResponse, None]:
            timeout = max(0.001, deadline_at - time.monotonic())
            return responses(self._stub.Ask(request, timeout=timeout))

        async with contextlib.aclosing(retrying_stream(call, self._retry, deadline_at)) as stream:
            async for response in stream:
                if kept is not None:
                    kept.see(response)
                yield response
        if cache is not None and kept is not None and (reply := kept.reply()) is not None:
            cache.put(key, reply)

    async def ingest(
        self,
        documents: AsyncIterable[retrieval_pb2.Document] | Iterable[retrieval_pb2.Document],
        *,
        user_id: str = "",
        collection: str = "",
        request_id: str = "",
    ) -> retrieval_pb2.IngestResponse:
        """Add or replace documents in the user's collection (the tenant's shared one without a
        user). Documents that cannot be read come back in ``errors``; the rest go in."""
        config = retrieval_pb2.IngestConfig(
            request_id=request_id or uuid.uuid4().hex,
            collection=retrieval_pb2.Collection(user_id=user_id, name=collection),
        )

        async def requests() -> AsyncIterator[retrieval_pb2.IngestRequest]:
            yield retrieval_pb2.IngestRequest(config=config)
            if isinstance(documents, AsyncIterable):
                async for document in documents:
                    yield retrieval_pb2.IngestRequest(document=document)
            else:
                for document in documents:
                    yield retrieval_pb2.IngestRequest(document=document)

        response: retrieval_pb2.IngestResponse = await self.documents.Ingest(
            requests(), timeout=self._timeout_s
        )
        return response

    async def search(
        self, query: str, *, user_id: str = "", collection: str = "", top_k: int = 5
    ) -> retrieval_pb2.SearchResponse:
        """The passages of the user's documents that best answer ``query``."""
        request = retrieval_pb2.SearchRequest(
            query=query, top_k=top_k, collection=retrieval_pb2.Collection(user_id=user_id, name=collection)
        )
        response: retrieval_pb2.SearchResponse = await self.documents.Search(request, timeout=self._timeout_s)
        return response

    async def enroll_voice(
        self, user_id: str, recordings: Sequence[WavAudio], *, require_match: bool = False
    ) -> voice_pb2.VoiceStatus:
        """Make ``user_id``'s voice print from recordings of them speaking (three of 3-5 s work well);
        with ``require_match``, their spoken turns whose voice does not match are refused."""
        samples = [
            voice_pb2.VoiceSample(
                audio_format=audio_pb2.AudioFormat(
                    encoding=audio_pb2.AUDIO_ENCODING_LINEAR16,
                    sample_rate_hz=wav.sample_rate_hz,
                    channels=wav.channels,
                ),
                audio=wav.pcm,
            )
            for wav in recordings
        ]
        request = voice_pb2.EnrollVoiceRequest(user_id=user_id, samples=samples, require_match=require_match)
        enrolled: voice_pb2.EnrollVoiceResponse = await self.voices.EnrollVoice(
            request, timeout=self._timeout_s
        )
        return enrolled.status


class _Keeper:
    """Collects an Ask's reply for the edge cache: kept only if whole and free of earlier context."""

    def __init__(self) -> None:
        self.model = ""
        self.sentences: list[str] = []
        self.audio: list[tuple[bytes, int]] = []
        self.text = ""
        self.cacheable = True

    def see(self, response: gateway_pb2.AskResponse) -> None:
        kind = response.WhichOneof("event")
        if kind == "route":
            self.model = response.route.model
            self.cacheable = response.route.tier != "cache"  # the gateway's cache already has it
        elif kind == "reply_sentence":
            self.sentences.append(response.reply_sentence.text)
        elif kind == "reply_audio":
            self.audio.append((response.reply_audio.audio_content, response.reply_audio.sample_rate_hz))
        elif kind == "reply_audio_failed":
            self.cacheable = False
        elif kind == "turn_done":
            self.text = response.turn_done.reply_text

    def reply(self) -> CachedReply | None:
        if not self.cacheable or not self.text:
            return None
        return CachedReply(self.model, self.text, self.sentences, self.audio)


def _replayed(cached: CachedReply, text: str, request_id: str) -> Iterator[gateway_pb2.AskResponse]:
    for event in replay(cached, "edge"):
        yield ask_response(request_id, event)
    yield ask_response(request_id, gateway_pb2.TurnDone(transcript=text, reply_text=cached.text))


class Client:
    """The blocking client: the async one driven by a private event loop."""

    def __init__(self, target: str = DEFAULT_TARGET, **options: Any) -> None:
        """``options`` as ``AsyncClient`` takes them (timeout_s, token, ca, insecure …)."""
        self._runner = asyncio.Runner()
        self._client = self._runner.run(self._make(target, options))

    @staticmethod
    async def _make(target: str, options: dict[str, Any]) -> AsyncClient:
        return AsyncClient(target, **options)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._runner.run(self._client.close())
        self._runner.close()

    def _iterate(self, stream: AsyncIterator[T]) -> Iterator[T]:
        try:
            while True:
                try:
                    yield self._runner.run(anext(stream))  # type: ignore[arg-type]
                except StopAsyncIteration:
                    return
        finally:
            self._runner.run(stream.aclose())  # type: ignore[attr-defined]

    def converse(self, audio: Iterable[bytes], **options: Any) -> Iterator[gateway_pb2.ConverseResponse]:
        return self._iterate(self._client.converse(audio, **options))

    def ask(self, text: str, **options: Any) -> Iterator[gateway_pb2.AskResponse]:
        return self._iterate(self._client.ask(text, **options))
