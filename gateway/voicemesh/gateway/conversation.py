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
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from voicemesh.common.metrics import BARGE_INS, PREEMPTIVE
from voicemesh.common.replies import ReplyEvent
from voicemesh.gateway.deadlines import Deadline
from voicemesh.gateway.events import ConverseEvent
from voicemesh.gateway.turns import EmitReply, Turn, TurnClock, TurnOutput, TurnRunner
from voicemesh.v1 import gateway_pb2 as pb

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
        """Still being made, or its audio still playing at the client."""
        return not self.task.done() or time.monotonic() < self.output.playing_until()


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
        admit: Callable[[], Awaitable[None]],
    ) -> None:
        self._runner = runner
        self._config = config
        self._new_session = new_session  # the server made the session: nothing came before its first turn
        self._request_id = request_id
        self._session_id = session_id
        self._send = send
        self.preemptive = preemptive
        self._deadline = deadline  # a new turn's deadline
        self._admit = admit  # counts a reply against the tenant's rate limits, or refuses it
        self._clocks: dict[int, TurnClock] = {}  # started when the STT says the user stopped
        self._queue: asyncio.Queue[tuple[int, str, TurnClock] | None] = asyncio.Queue()
        self._current: _Running | None = None
        self._speculative: _Running | None = None
        self._carry = ""  # transcript of an interrupted turn that never spoke

    # Events from the STT stream, in order.

    async def speech_started(self, index: int) -> None:
        self._drop_speculative()
        current = self._current
        if current is not None and not self._config.no_barge_in and current.active():
            await self._interrupt(current, index)

    def speech_ended(self, index: int) -> None:
        self._clocks[index] = TurnClock()

    def partial(self, index: int) -> None:
        """A new partial: the user spoke on after the pause a speculative reply started in."""
        if self._speculative is not None and self._speculative.index == index:
            self._drop_speculative()

    def speculative(self, index: int, text: str) -> None:
        if not self.preemptive or not text.strip():
            return
        if self._current is not None and not self._current.task.done():
            return  # one reply at a time: a preemptive one would compete with it
        self._drop_speculative()
        output = TurnOutput(self._emitter(index), held=True)
        self._speculative = self._start(index, self._with_carry(text), output)

    async def final(self, index: int, text: str) -> None:
        clock = self._clocks.pop(index, None) or TurnClock()
        clock.mark("final_transcript")
        if not text.strip():
            return
        text = self._with_carry(text)
        self._carry = ""
        spec = self._speculative
        if spec is not None and spec.index == index and same_words(spec.text, text):
            self._speculative = None
            PREEMPTIVE.labels("kept").inc()
            try:
                await self._admit()  # charged when it becomes a real turn, not while it might not
            except BaseException:
                spec.task.cancel()
                raise
            await self._settled()
            self._current = spec
            await spec.output.release(clock)
            return
        self._drop_speculative()
        await self._queue.put((index, text, clock))

    async def run(self) -> None:
        """Answer queued transcripts in order until ``close``; then wait for the last reply."""
        while (item := await self._queue.get()) is not None:
            index, text, clock = item
            await self._settled()
            await self._admit()
            self._current = self._start(index, text, TurnOutput(self._emitter(index), clock))
        await self._settled()
        self._drop_speculative()

    def close(self) -> None:
        self._queue.put_nowait(None)

    # Internals.

    def _start(self, index: int, text: str, output: TurnOutput) -> _Running:
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
        )
        task = asyncio.create_task(self._runner.run(turn, output))
        return _Running(index, text, output, task)

    def _emitter(self, index: int) -> EmitReply:
        async def emit(event: ReplyEvent) -> None:
            await self._send(index, event)

        return emit

    def _with_carry(self, text: str) -> str:
        return f"{self._carry} {text}" if self._carry else text

    async def _settled(self) -> None:
        """Wait for the current reply's work to end (cancelled or finished); its errors propagate."""
        if self._current is not None:
            task = self._current.task
            await asyncio.wait([task])
            if not task.cancelled() and (error := task.exception()) is not None:
                raise error

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
            task = self._speculative.task
            self._speculative.output.closed = True
            task.cancel()
            task.add_done_callback(lambda t: t.cancelled() or t.exception())  # its fate no longer matters
            self._speculative = None
