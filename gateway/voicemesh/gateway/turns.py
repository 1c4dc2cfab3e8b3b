"""One turn: the user's text to the core, the reply's text deltas on to TTS as they are generated.

A turn emits typed reply events (``voicemesh.common.replies.ReplyEvent``), which Ask and Converse
each put in their own response message, so both RPCs use this one implementation. Where they go is
a ``TurnOutput``: it times the turn's stages as the client sees them, counts the reply audio sent,
and can hold a speculative turn's events until the transcript it started from is confirmed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import grpc

from voicemesh.common.calls import responses
from voicemesh.common.errors import Overloaded, VoicemeshError
from voicemesh.common.identity import user_key
from voicemesh.common.metrics import STAGE_SECONDS
from voicemesh.common.pump import StreamClosed, first_error
from voicemesh.common.replies import ReplyEvent
from voicemesh.common.reply_cache import CachedReply, ReplyCache, cache_key, replay
from voicemesh.common.retry import RetryPolicy, retrying_stream
from voicemesh.common.tracing import outgoing_metadata, tracer
from voicemesh.gateway.deadlines import Deadline
from voicemesh.gateway.downstream import Downstream
from voicemesh.gateway.grounding import Grounding, citation_of
from voicemesh.gateway.recorder import TurnRecorder
from voicemesh.gateway.throttle import Admission
from voicemesh.rpc.status import RelayedStatus, to_status
from voicemesh.v1 import audio_pb2, core_pb2, gateway_pb2, retrieval_pb2
from voicemesh.v1 import text_to_speech_pb2 as tts_pb2

log = logging.getLogger(__name__)

EmitReply = Callable[[ReplyEvent], Awaitable[None]]
# Lets a turn through (its rate limits and the caller's turns in flight), or refuses it; the
# function it returns gives the caller's place back when the turn ends.
Admit = Callable[[], Awaitable[Admission]]

# A reply stream that has not answered yet is safe to start again (another core replica, a restart).
CORE_RETRIES = RetryPolicy(attempts=3, base_s=0.05, cap_s=0.5)
# What a held (speculative) turn may buffer before it waits: a few sentences of audio.
MAX_HELD_EVENTS = 256
# A cached reply is given only once the core confirms the user's data it was made under; past this,
# the turn is answered the usual way.
USER_VERSION_TIMEOUT_S = 0.5


@dataclass
class TurnClock:
    """When each stage of a turn first reached the client, in ms from the end of the user's speech
    (the search of the user's documents: when it ended, which may be before)."""

    started: float = field(default_factory=time.monotonic)
    marks: dict[str, float] = field(default_factory=dict)

    def mark(self, stage: str) -> None:
        key = f"{stage}_ms"
        if key not in self.marks:
            elapsed = time.monotonic() - self.started
            self.marks[key] = elapsed * 1000
            STAGE_SECONDS.labels(f"gateway.{stage}").observe(elapsed)

    def adopt(self, earlier: TurnClock) -> None:
        """Keeps what a speculative turn's own clock marked, counted from this clock's start (so a
        stage done in the pause before the end of speech comes out negative)."""
        offset_ms = (earlier.started - self.started) * 1000
        for key, ms in earlier.marks.items():
            self.marks.setdefault(key, ms + offset_ms)

    def timings(self) -> gateway_pb2.TurnTimings:
        return gateway_pb2.TurnTimings(**self.marks)


class TurnOutput:
    """Where one turn's events go, held back while the turn is speculative."""

    def __init__(self, send: EmitReply, clock: TurnClock | None = None, *, held: bool = False) -> None:
        self._send = send
        self.clock = clock or TurnClock()
        self._held: list[ReplyEvent] | None = [] if held else None
        self._released = asyncio.Event()
        self._on_release: list[Callable[[], object]] = []
        self.closed = False  # interrupted: nothing more reaches the client
        self.complete = False  # the reply's text and audio are all out (its record may be on its way)
        self.failed = False  # a held turn that could not be served: it is not released, but run again
        self.reply_text = ""
        self.audio_s = 0.0
        self.first_audio_at: float | None = None

    async def __call__(self, event: ReplyEvent) -> None:
        if self._held is None:
            await self._deliver(event)
            return
        self._held.append(event)
        if len(self._held) >= MAX_HELD_EVENTS:
            await self._released.wait()

    async def release(self, clock: TurnClock) -> None:
        """The turn is confirmed: send what it holds, then let it stream."""
        clock.adopt(self.clock)
        self.clock = clock
        held, self._held = self._held or [], None
        for hook in self._on_release:
            hook()
        for event in held:
            await self._deliver(event)
        self._released.set()

    @property
    def confirmed(self) -> bool:
        """Not (or no longer) held: the turn is one the user is having."""
        return self._held is None

    def on_release(self, hook: Callable[[], object]) -> None:
        self._on_release.append(hook)

    def playing_until(self) -> float:
        """When the client will have played the audio sent so far (monotonic seconds)."""
        return (self.first_audio_at or 0.0) + self.audio_s

    async def _deliver(self, event: ReplyEvent) -> None:
        if self.closed:
            return
        if isinstance(event, str):
            self.clock.mark("first_token")
            self.reply_text += event
        elif isinstance(event, core_pb2.SentenceMark):
            self.clock.mark("first_sentence")
        elif isinstance(event, audio_pb2.SynthesizedAudio):
            self.clock.mark("first_audio")
            if self.first_audio_at is None:
                self.first_audio_at = time.monotonic()
            self.audio_s += len(event.audio_content) / 2 / (event.sample_rate_hz or 1)
        elif isinstance(event, gateway_pb2.TurnDone):
            self.clock.mark("done")
            event.timings.CopyFrom(self.clock.timings())
        await self._send(event)


@dataclass(frozen=True)
class Turn:
    text: str
    session_id: str
    request_id: str
    reply: gateway_pb2.ReplyConfig
    deadline: Deadline
    user_id: str = ""
    fresh_session: bool = False  # nothing was said before it, so its reply may come from the cache
    tenant: str = "default"
    retrieval: gateway_pb2.RetrievalConfig = field(default_factory=gateway_pb2.RetrievalConfig)

    @property
    def owner(self) -> str:
        """The user as the core and the reply cache know them: qualified by the tenant."""
        return user_key(self.tenant, self.user_id)


@dataclass
class _Reply:
    """What a turn produced, for its record and the cache."""

    route: str = ""
    model: str = ""
    text: str = ""
    finish_reason: str = ""
    context_turns: int = -1
    user_version: int = -1
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    audio_failed: bool = False
    citations: list[gateway_pb2.Citation] = field(default_factory=list)  # the passages it was given
    sentences: list[str] = field(default_factory=list)
    audio: list[tuple[bytes, int]] = field(default_factory=list)


class TurnRunner:
    """Runs turns: a cached reply, or the core's reply spoken by TTS; then the turn's record."""

    def __init__(
        self,
        downstream: Downstream,
        recorder: TurnRecorder,
        cache: ReplyCache,
        *,
        record_wait_s: float = 0.25,
        grounding: Grounding | None = None,
    ) -> None:
        self.downstream = downstream
        self.recorder = recorder
        self.cache = cache
        self._record_wait_s = record_wait_s
        self._grounding = grounding or Grounding(downstream)

    async def run(self, turn: Turn, output: TurnOutput, *, admit: Admit | None = None) -> None:
        """Answer the turn (after ``admit`` lets it through, where given) and record it.

        Whatever stops it is in its record: an interruption, or a failure. A turn that cannot be
        served raises what its caller is answered with: a VoicemeshError or a relayed status (an
        unexpected error becomes INTERNAL, logged once); the caller's hanging up raises StreamClosed.
        """
        with tracer.start_as_current_span("turn", attributes={"voicemesh.request_id": turn.request_id}):
            reply = _Reply()
            admission: Admission | None = None
            try:
                if admit is not None:
                    admission = await admit()
                await self._answer(turn, output, reply, admission)
            except (asyncio.CancelledError, StreamClosed):
                self._record(turn, output, reply, interrupted=True)
                raise
            except (VoicemeshError, RelayedStatus) as exc:
                code, message = to_status(exc)
                self._record(turn, output, reply, interrupted=True, failure=f"{code.name}: {message}")
                raise
            except Exception as exc:
                code, message = to_status(exc)  # a bug: logged here, with its traceback
                self._record(turn, output, reply, interrupted=True, failure=f"{code.name}: {message}")
                raise RelayedStatus(code, message) from exc
            finally:
                if admission is not None:
                    admission.release()
            output.complete = True
            if (landed := self._record(turn, output, reply, interrupted=False)) is not None:
                # The next turn should find this one as context; but never hold the reply up for long.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(landed), self._record_wait_s)
            done = gateway_pb2.TurnDone(
                transcript=turn.text,
                reply_text=reply.text,
                session_id=turn.session_id,
                context_turns=max(reply.context_turns, 0),
                citations=reply.citations,
                prompt_tokens=reply.prompt_tokens,
                cached_prompt_tokens=reply.cached_prompt_tokens,
                finish_reason=reply.finish_reason,
            )
            await output(done)

    def _record(
        self, turn: Turn, output: TurnOutput, reply: _Reply, *, interrupted: bool, failure: str = ""
    ) -> asyncio.Future[None] | None:
        """Hand the turn to the recorder now, or when a held turn is confirmed (a discarded one is not
        a turn the user had)."""
        request = core_pb2.RecordTurnRequest(
            request_id=turn.request_id,
            session_id=turn.session_id,
            user_id=turn.owner,
            transcript=turn.text,
            reply_text=reply.text or output.reply_text,
            route=reply.route,
            timings_ms=output.clock.marks,
            interrupted=interrupted,
            failure=failure,
        )
        request.ended_at.GetCurrentTime()
        if output.confirmed:
            return self.recorder.submit(request)
        output.on_release(lambda: self.recorder.submit(request))
        return None

    async def _answer(
        self, turn: Turn, output: TurnOutput, reply: _Reply, admission: Admission | None = None
    ) -> None:
        # The grounding's events go out with the reply's first, not before it: a turn that fails
        # before any reply has sent nothing, so the SDK may still try it again.
        grounding: list[ReplyEvent] = []

        async def hold(event: ReplyEvent) -> None:
            grounding.append(event)

        passages = await self._grounding.passages(turn, hold)
        if not turn.retrieval.off:
            output.clock.mark("retrieval")
        for index, passage in enumerate(passages, start=1):
            citation = citation_of(index, passage)
            reply.citations.append(citation)
            grounding.append(citation)
        reply_config = turn.reply
        key = cache_key(
            turn.owner,
            turn.text,
            reply_config.synthesize_audio,
            reply_config.voice,
            reply_config.sample_rate_hz,
            reply_config.max_sentences,
        )
        # A reply grounded in documents is neither taken from the cache nor kept there: the
        # documents may change under the same words.
        cacheable_turn = turn.fresh_session and not passages
        if cacheable_turn and (cached := self.cache.get(key)) is not None:
            if await self._still_current(turn.owner, cached):
                for event in grounding:
                    await output(event)
                await _replay(cached, output, reply)
                return
            self.cache.forget(key)
        await self._generate(
            turn, output, reply, passages, grounding, keep_audio=cacheable_turn, admission=admission
        )
        # A reply its sentence budget ended is whole for that budget; one cut by its token budget is not.
        whole = reply.finish_reason in ("stop", "sentences")
        cacheable = reply.context_turns == 0 and whole and not reply.audio_failed
        if cacheable_turn and cacheable and reply.text and reply.user_version >= 0:
            entry = CachedReply(
                reply.model, reply.text, reply.sentences, reply.audio, user_version=reply.user_version
            )
            self.cache.put(key, entry)

    async def _still_current(self, user_id: str, cached: CachedReply) -> bool:
        """Whether the user's data is still what the reply was made under. Asked of the core, not of
        this gateway's memory: the user may have been deleted or changed through another replica.
        An anonymous caller has no data; a core that cannot say means no."""
        if not user_id:
            return True
        try:
            async with self.downstream.guard("core", slot=False) as core:
                request = core_pb2.GetUserVersionRequest(user_id=user_id)
                answer = await core.GetUserVersion(request, timeout=USER_VERSION_TIMEOUT_S)
        except (RelayedStatus, Overloaded) as exc:
            log.info("cached reply not used: the user's data version is unknown (%s)", exc)
            return False
        return int(answer.version) == cached.user_version

    async def _generate(
        self,
        turn: Turn,
        output: TurnOutput,
        reply: _Reply,
        passages: list[retrieval_pb2.Passage],
        grounding: list[ReplyEvent],
        *,
        keep_audio: bool,
        admission: Admission | None = None,
    ) -> None:
        downstream = self.downstream
        to_tts: asyncio.Queue[str | None] = asyncio.Queue()
        request = core_pb2.RespondRequest(
            request_id=turn.request_id,
            session_id=turn.session_id,
            text=turn.text,
            user_id=turn.owner,
            passages=passages,
            max_sentences=turn.reply.max_sentences,
            over_limit=admission.over_limit if admission else "",
        )

        async def call_core() -> AsyncGenerator[core_pb2.RespondResponse, None]:
            # Each attempt takes a replica of its own, so a retry goes wherever the breakers allow.
            async with downstream.guard("core", turn.deadline) as core:
                timeout = turn.deadline.timeout_for("core")
                call = core.Respond(request, timeout=timeout, metadata=outgoing_metadata())
                async with contextlib.aclosing(responses(call)) as stream:
                    async for response in stream:
                        yield response

        async def take(response: core_pb2.RespondResponse) -> None:
            kind = response.WhichOneof("event")
            if kind == "route":
                reply.route = f"{response.route.tier}/{response.route.model}"
                reply.model = response.route.model
                for event in grounding:
                    await output(event)
                grounding.clear()
                await output(response.route)
            elif kind == "text_delta":
                if turn.reply.synthesize_audio:
                    await to_tts.put(response.text_delta)
                await output(response.text_delta)
            elif kind == "sentence":
                reply.sentences.append(response.sentence.text)
                await output(response.sentence)
            elif kind == "done":
                done = response.done
                reply.text = done.text
                reply.finish_reason = done.finish_reason
                reply.context_turns = done.context_turns
                reply.user_version = done.user_version
                reply.prompt_tokens = done.prompt_tokens
                reply.cached_prompt_tokens = done.cached_prompt_tokens
                # Durations inside the core: set, not marked, as they are not times since
                # the end of speech.
                output.clock.marks["core_queue_ms"] = done.queue_ms
                output.clock.marks["core_prefill_ms"] = done.prefill_ms

        async def read() -> None:
            # Closed however the turn ends: one cancelled while it waits to send gives its core
            # slot back, and stops the core's decoding, there and then.
            stream = retrying_stream(call_core, CORE_RETRIES, turn.deadline.at)
            async with contextlib.aclosing(stream):
                async for response in stream:
                    await take(response)

        async def think() -> None:
            try:
                try:
                    await read()
                except RelayedStatus as exc:
                    wait = admission.wait_for_room if admission else None
                    if not (
                        request.over_limit and wait and exc.code() == grpc.StatusCode.FAILED_PRECONDITION
                    ):
                        raise
                    # Over the llm limit with no other tier to go to: wait for room under the limit
                    # (until the turn's deadline; refused past it), then ask as usual.
                    await wait(turn.deadline.at)
                    request.over_limit = ""
                    await read()
            finally:
                to_tts.put_nowait(None)

        async def speak() -> None:
            async def requests() -> AsyncIterator[tts_pb2.StreamingSynthesizeRequest]:
                config = tts_pb2.SynthesisConfig(
                    voice=turn.reply.voice,
                    sample_rate_hz=turn.reply.sample_rate_hz,
                    request_id=turn.request_id,
                )
                yield tts_pb2.StreamingSynthesizeRequest(config=config)
                while (delta := await to_tts.get()) is not None:
                    yield tts_pb2.StreamingSynthesizeRequest(text_delta=delta)

            try:
                async with downstream.guard("tts", turn.deadline) as tts:
                    timeout = turn.deadline.timeout_for("tts")
                    call = tts.StreamingSynthesize(requests(), timeout=timeout, metadata=outgoing_metadata())
                    async with contextlib.aclosing(responses(call)) as stream:
                        async for response in stream:
                            if keep_audio:
                                reply.audio.append(
                                    (response.audio.audio_content, response.audio.sample_rate_hz)
                                )
                            await output(response.audio)
            except (RelayedStatus, Overloaded) as exc:
                # Speech is lost, not the answer: say so, and let the text reply run to its end.
                code, message = to_status(exc)
                log.warning("reply audio failed: %s: %s", code.name, message)
                reply.audio_failed = True
                await output(gateway_pb2.ReplyAudioFailed(code=code.value[0], message=message))

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(think())
                if turn.reply.synthesize_audio:
                    group.create_task(speak())
        except BaseExceptionGroup as failed:
            raise first_error(failed) from None  # the one precise failure, as its caller should see it


async def _replay(cached: CachedReply, output: TurnOutput, reply: _Reply) -> None:
    reply.route, reply.model, reply.text = f"cache/{cached.model}", cached.model, cached.text
    for event in replay(cached, "gateway"):
        await output(event)
