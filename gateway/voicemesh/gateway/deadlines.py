"""The time a call has left, handed on to every hop below it.

Each downstream call gets the caller's remaining budget minus a margin, so the hop that runs out
fails first, while there is still time to tell the caller which hop it was; work whose time is
already up is not started.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import grpc

from voicemesh.rpc.handler import Context
from voicemesh.rpc.status import RelayedStatus


@dataclass(frozen=True)
class Budgets:
    """What a call gets when its caller set no deadline, and the margin kept for the reply."""

    ask_s: float
    turn_s: float  # each turn of a Converse stream
    margin_s: float

    def for_ask(self, context: Context) -> Deadline:
        return Deadline.of(context, self.ask_s, self.margin_s)

    def for_stream(self, context: Context) -> float | None:
        """A whole stream's downstream timeout: the caller's deadline less the margin, if it set one."""
        remaining = context.time_remaining()
        return None if remaining is None else max(0.001, remaining - self.margin_s)

    def for_turn(self, context: Context) -> Deadline:
        """The stream's deadline if the caller set one, else a fresh budget for this turn."""
        return Deadline.of(context, self.turn_s, self.margin_s)


@dataclass(frozen=True)
class Deadline:
    at: float  # time.monotonic() when the caller stops waiting
    margin_s: float = 0.05
    from_caller: bool = True  # False: the server's default stood in for a caller that set none

    @classmethod
    def of(cls, context: Context, default_s: float, margin_s: float) -> Deadline:
        remaining = context.time_remaining()
        if remaining is None:
            return cls(time.monotonic() + default_s, margin_s, from_caller=False)
        return cls(time.monotonic() + remaining, margin_s)

    def timeout_for(self, service: str) -> float:
        """Seconds to give a call to ``service``; DEADLINE_EXCEEDED, naming it, if none are left."""
        left = self.at - time.monotonic() - self.margin_s
        if left <= 0:
            raise RelayedStatus(
                grpc.StatusCode.DEADLINE_EXCEEDED, f"{service}: not called, the deadline had already passed"
            )
        return left
