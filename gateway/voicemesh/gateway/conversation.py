"""The turns of one Converse stream: when each starts, and when the user's speech cuts one short.

Turns run one at a time. Two things make them start earlier or end sooner than a plain queue would:

- Preemptive generation. While the user pauses, the STT decodes the utterance as it stands (its
  speculative result). The reply starts on that text at once, with its events held back; when the
  final transcript arrives and matches, they are released and the reply goes on, already some way
  along. If it does not match, or the user speaks again, the speculative reply is cancelled.
- Barge-in. Speech that starts while a reply is being made or still playing cancels the reply's
  core and TTS calls (the cancellation reaches the services, which stop generating) and tells the
  client to stop playback. A reply that had not spoken yet gives its transcript to the next turn,
  since the user was evidently not done.

Every turn's task is a child of ``run``: when the stream ends or its caller goes away, every turn
still running is cancelled with it, and its slots are free at once. A turn that cannot be served
(a limit, an overloaded or dead hop) ends with a ``turn_failed`` event that says why, and the
conversation goes on; only the stream's own faults end the stream.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from voicemesh.common.errors import Overloaded, VoicemeshError
from voicemesh.common.metrics import BARGE_INS, PREEMPTIVE
from voicemesh.common.pump import StreamClosed
from voicemesh.common.replies import ReplyEvent
from voicemesh.gateway.deadlines import Deadline
from voicemesh.gateway.events import ConverseEvent
from voicemesh.gateway.throttle import Admission
from voicemesh.gateway.turns import Admit, EmitReply, Turn, TurnClock, TurnOutput, TurnRunner
from voicemesh.rpc.status import RelayedStatus, to_status
from voicemesh.v1 import gateway_pb2 as pb

log = logging.getLogger(__name__)

Send = Callable[[int, ConverseEvent], Awaitable[None]]


def same_words(a: str, b: str) -> bool:
    """Equal up to case and punctuation: what matters for the reply to a transcript."""

    def words(text: str) -> list[str]:
        return re.findall(r"[\w']+", text.lower())

    return words(a) == words(b)


@dataclass
class _Running:
    index: int
    text: str
    output: TurnOutput
    task: asyncio.Task[None]

    def active(self) -> bool:
        """Still being made, or its audio still playing at the client. A reply whose text and audio
        are all out is not interrupted by speech, though its task may still wait on its record."""
        making = not self.task.done() and not self.output.complete
        return making or time.monotonic() < self.output.playing_until()


class Conversation:
    def __init__(
        self,
        runner: TurnRunner,
        config: pb.ConverseConfig,
        request_id: str,
        session_id: str,
        send: Send,
        *,
        new_session: bool,
        preemptive: bool,
        deadline: Callable[[], Deadline],
        admit: Admit,
        tenant: str = "default",
    ) -> None:
        self._runner = runner
        self._config = config
        self._tenant = tenant
        self._new_session = new_session  # the server made the session: nothing came before its first turn
        self._request_id = request_id
        self._session_id = session_id
        self._send = send
        self.preemptive = preemptive
        self._deadline = deadline  # a new turn's deadline
        self._admit = admit  # counts a reply against its caller's limits, or refuses it
        self._clocks: dict[int, TurnClock] = {}  # started when the STT says the user stopped
        self._queue: asyncio.Queue[tuple[int, str, TurnClock] | None] = asyncio.Queue()
        self._current: _Running | None = None
        self._speculative: _Running | None = None
        self._turns: asyncio.TaskGroup | None = None  # owns every turn's task, while ``run`` runs
        self._carry = ""  # transcript of an interrupted turn that never spoke

    # Events from the STT stream, in order.

    async def speech_started(self, index: int) -> None:
        self._drop_speculative()
        current = self._current
        if current is not None and not self._config.no_barge_in and current.active():
            await self._interrupt(current, index)

    def speech_ended(self, index: int) -> None:
        self._clocks[index] = TurnClock()

    def spoke_on(self, index: int) -> None:
        """The user spoke on after the pause a speculative reply started in (a partial came, or the
        STT said so): the reply answers words that are not the whole turn."""
        if self._speculative is not None and self._speculative.index == index:
            self._drop_speculative()

    def speculative(self, index: int, text: str) -> None:
        if not self.preemptive or not text.strip() or self._turns is None:
            return
        if self._current is not None and not self._current.task.done():
            return  # one reply at a time: a preemptive one would compete with it
        self._drop_speculative()
        output = TurnOutput(self._emitter(index), held=True)
        self._speculative = self._start(index, self._with_carry(text), output, admit=None)

    def refused(self, index: int) -> None:
        """A final transcript whose turn may not go on (its voice did not match): no reply at all."""
        self._clocks.pop(index, None)
        self._drop_speculative()

    async def final(self, index: int, text: str) -> None:
        clock = self._clocks.pop(index, None) or TurnClock()
        clock.mark("final_transcript")
        if not text.strip():
            return
        text = self._with_carry(text)
        self._carry = ""
        spec = self._speculative
        if (
            spec is not None
            and spec.index == index
            and same_words(spec.text, text)
            and not spec.output.failed
        ):
            try:
                admission: Admission | None = await self._admit()  # charged when it becomes a real turn
            except Overloaded:
                admission = None  # over a limit: it goes the usual way, and is refused there with the reason
            if admission is not None and admission.over_limit:
                admission.release()  # its reply came from the usual tier, which this turn may not use
                admission = None
            if admission is not None:
                release = admission.release
                spec.task.add_done_callback(lambda _task: release())
                self._speculative = None
                PREEMPTIVE.labels("kept").inc()
                await self._settled()
                self._current = spec
                await spec.output.release(clock)
                return
        self._drop_speculative()
        await self._queue.put((index, text, clock))

    async def run(self) -> None:
        """Answer queued transcripts in order until ``close``; then wait for the last reply."""
        try:
            async with asyncio.TaskGroup() as turns:
                self._turns = turns
                while (item := await self._queue.get()) is not None:
                    index, text, clock = item
                    await self._settled()
                    output = TurnOutput(self._emitter(index), clock)
                    self._current = self._start(index, text, output, admit=self._admit)
                await self._settled()
                self._drop_speculative()
        finally:
            self._turns = None

    def close(self) -> None:
        self._queue.put_nowait(None)

    # Internals.

    def _start(self, index: int, text: str, output: TurnOutput, *, admit: Admit | None) -> _Running:
        assert self._turns is not None, "turns start only while the conversation runs"
        request_id = f"{self._request_id}.{index}"
        first = self._new_session and self._current is None
        turn = Turn(
            text,
            self._session_id,
            request_id,
            self._config.reply,
            self._deadline(),
            self._config.user_id,
            first,
            self._tenant,
            self._config.retrieval,
        )
        task = self._turns.create_task(self._turn(index, turn, output, admit))
        return _Running(index, text, output, task)

    async def _turn(self, index: int, turn: Turn, output: TurnOutput, admit: Admit | None) -> None:
        """One turn's task: it never ends the conversation; a turn it cannot serve fails alone."""
        try:
            await self._runner.run(turn, output, admit=admit)
        except StreamClosed:
            return  # the caller hung up: the task group is being cancelled anyway
        except (VoicemeshError, RelayedStatus) as failed:
            if not output.confirmed:
                output.failed = True  # a speculative reply: if its transcript stands, it runs again
                return
            code, message = to_status(failed)
            log.warning("turn %s failed: %s: %s", turn.request_id, code.name, message)
            if not output.closed:
                await self._send(index, pb.TurnFailed(code=code.value[0], message=message))

    def _emitter(self, index: int) -> EmitReply:
        async def emit(event: ReplyEvent) -> None:
            await self._send(index, event)

        return emit

    def _with_carry(self, text: str) -> str:
        return f"{self._carry} {text}" if self._carry else text

    async def _settled(self) -> None:
        """Wait for the current reply's work to end (cancelled, failed or finished)."""
        if self._current is not None:
            await asyncio.wait([self._current.task])

    async def _interrupt(self, turn: _Running, by_index: int) -> None:
        BARGE_INS.inc()
        output = turn.output
        output.closed = True  # whatever the cancelled task still emits is dropped
        if output.audio_s == 0 and not turn.task.done():
            self._carry = turn.text  # it never spoke: the user was still going
        turn.task.cancel()
        event = pb.ReplyInterrupted(
            by_utterance_index=by_index, audio_sent_s=output.audio_s, reply_text=output.reply_text
        )
        await self._send(turn.index, event)

    def _drop_speculative(self) -> None:
        if self._speculative is not None:
            PREEMPTIVE.labels("discarded").inc()
            self._speculative.output.closed = True
            self._speculative.task.cancel()
            self._speculative = None
