"""The embedded model, decoding every turn in flight together: continuous batching over llama.cpp.

One llama.cpp context holds a sequence per slot. Each step feeds every generating slot its last
token, and newly admitted prompts as much as the batch has room for, decodes once, and samples each
slot's next token from its own row of logits: eight turns cost a step about three times what one
does, instead of waiting for each other. Turns join between steps and leave when they end, hit their
budget or are cancelled (the caller went away, the user barged in); a cancelled turn's slot is free
at the next step. This is llama.cpp's ``batched`` example and its server's slots, without a server.

A slot keeps its KV state after its turn, and a turn takes the free slot that holds the most of its
prompt: the same user's next turn starts with the same system prompt, profile and exchanges, so it
is computed only past them. When the oldest exchange has slid out of the context, the rest of what
the slot holds is moved back into place rather than computed again (llama.cpp's server does the
same with ``--cache-reuse``: the moved part's state was computed with the dropped exchange still
before it, a small inexactness for a large saving).

The model knows its capacity: a turn waits for a slot only while its queue limit and its caller's
deadline allow, judged from how long turns hold a slot, and is refused at once otherwise.
"""

from __future__ import annotations

import asyncio
import codecs
import ctypes
import logging
import os
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import llama_cpp
from llama_cpp import _internals as internals
from llama_cpp.llama_chat_format import Jinja2ChatFormatter, format_chatml

from voicemesh.common.errors import ModelFailure, Overloaded
from voicemesh.common.metrics import (
    BACKGROUND_RESTARTS,
    LLM_BATCH_SEQUENCES,
    LLM_PROMPT_TOKENS,
    LLM_QUEUE_SECONDS,
    LLM_QUEUED,
    LLM_SEQUENCES,
    LLM_STEP_SECONDS,
    LLM_THREADS,
    TURNS_SHED,
    WORK_STOPPED,
)
from voicemesh.common.spare_cores import SpareCores
from voicemesh.core.models import Delta, Message, Usage, bundled_gguf, fit_context

log = logging.getLogger(__name__)

GGML_LOG_LEVEL_ERROR = 4  # ggml's NONE, DEBUG, INFO, WARN, ERROR (llama-cpp-python's _logger is older)
PENALTY_LAST_N = 64  # tokens the repeat penalty looks back over (llama.cpp's default)
_END = object()


@dataclass(frozen=True)
class Capacity:
    """How many turns the model decodes at once, and how long one may wait for a slot."""

    slots: int = 16
    cache_tokens: int = 8192  # KV cells shared by every slot (held prompts included)
    # Tokens one decode step takes: a token of each generating slot, then prompts. Smaller steps
    # keep the replies under way flowing while a long prompt is read.
    batch_tokens: int = 256
    queue_max: int = 64
    queue_wait_s: float = 3.0  # a spoken reply that starts later than this is not worth starting
    reuse_chunk: int = 16  # shortest run of held tokens moved into place instead of computed; 0: off


class _Turn:
    """One reply: what the caller's task and the decode thread share."""

    def __init__(self, tokens: list[int], max_tokens: int, temperature: float, deadline: float | None):
        self.tokens = tokens
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.loop = asyncio.get_running_loop()
        self.out: asyncio.Queue[Any] = asyncio.Queue()
        self.enqueued = time.monotonic()
        self.wait_until = self.enqueued  # set at admission: when it gives up on a slot
        self.deadline = deadline
        self.cancelled = False  # set by the caller's task; read by the decode thread between steps
        self.ended = False

    def send(self, item: Any) -> None:
        self.loop.call_soon_threadsafe(self.out.put_nowait, item)

    def end(self, item: Any = _END) -> None:
        if not self.ended:
            self.ended = True
            self.send(item)


@dataclass
class _Slot:
    seq: int
    tokens: list[int] = field(default_factory=list)  # what this sequence's KV state holds, in order
    turn: _Turn | None = None
    pending: list[int] = field(default_factory=list)  # prompt tokens still to decode
    sampler: Any = None
    text: Any = None  # incremental UTF-8 decoder: a character may span tokens
    last_token: int = 0
    generated: int = 0
    started: bool = False  # its first token sampled
    cached: int = 0
    shared_to: int = 0  # its cells before this position may be another sequence's too
    admitted_at: float = 0.0
    used_at: float = 0.0


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def reuse_plan(
    held: Sequence[int], prompt: Sequence[int], min_chunk: int
) -> tuple[int, list[tuple[int, int, int]]]:
    """How much of ``prompt`` a sequence holding ``held`` already has: their common prefix, then
    runs of at least ``min_chunk`` held tokens found further on, each moved back to where the prompt
    has it (llama.cpp server's cache reuse). Returns the prompt tokens covered and the moves, each
    ``(start, end, shift)``: held positions [start, end) move by ``shift`` (negative), the cells
    between the previous run and this one being dropped."""
    covered = common_prefix(held, prompt)
    at_held = covered
    moves = []
    while min_chunk and at_held < len(held) and covered < len(prompt):
        run = 0
        while (
            at_held + run < len(held)
            and covered + run < len(prompt)
            and held[at_held + run] == prompt[covered + run]
        ):
            run += 1
        if run >= min_chunk:
            moves.append((at_held, at_held + run, covered - at_held))
            at_held += run
            covered += run
        else:
            at_held += 1
    return covered, moves


class BatchedLlama:
    """A GGUF model run by llama.cpp in this process, every turn in flight in one batch."""

    tier = "local"

    def __init__(
        self,
        path: Path | None = None,
        *,
        context: int = 2048,
        threads: int = 0,
        seed: int = 0,
        capacity: Capacity | None = None,
    ) -> None:
        self.path = path or bundled_gguf()
        if not self.path.is_file():
            raise FileNotFoundError(f"no GGUF model at {self.path}")
        self.name = self.path.stem
        self.capacity = capacity or Capacity()
        if self.capacity.cache_tokens < context:
            raise ValueError(f"cache_tokens {self.capacity.cache_tokens} is less than one turn's {context}")
        self._context = context
        self._seed = seed
        llama_cpp.llama_backend_init()
        llama_cpp.llama_log_set(_llama_log, ctypes.c_void_p(0))
        self._model = internals.LlamaModel(
            path_model=str(self.path), params=llama_cpp.llama_model_default_params(), verbose=False
        )
        params = llama_cpp.llama_context_default_params()
        params.n_ctx = self.capacity.cache_tokens
        params.n_batch = params.n_ubatch = self.capacity.batch_tokens
        params.n_seq_max = self.capacity.slots
        params.kv_unified = True  # one pool of cells: a turn takes as many as it needs
        # llama.cpp's own default is half the cores: one thread on a 2-core box, half the speed.
        # Unless told how many, a step uses the cores the other processes leave idle (spare_cores).
        self._threads = threads or os.cpu_count() or 1
        self._spare = None if threads else SpareCores(self._threads)
        params.n_threads = params.n_threads_batch = self._threads
        LLM_THREADS.set(self._threads)
        self._ctx = internals.LlamaContext(model=self._model, params=params, verbose=False)
        self._batch = internals.LlamaBatch(
            n_tokens=self.capacity.batch_tokens, embd=0, n_seq_max=1, verbose=False
        )
        self._vocab = llama_cpp.llama_model_get_vocab(self._model.model)
        self._format = _chat_formatter(self._model)
        # Moving state needs a model whose positions can be shifted (not every architecture's can).
        # A move costs a pass over the whole cache at the next step (about 8 µs a cell on 2 cores,
        # against about 2.4 ms a prompt token read): worth it for the runs an exchange makes.
        self._reuse_chunk = (
            self.capacity.reuse_chunk if llama_cpp.llama_memory_can_shift(self._ctx.memory) else 0
        )
        self._piece = ctypes.create_string_buffer(256)
        self._slots = [_Slot(seq) for seq in range(self.capacity.slots)]
        self._queue: deque[_Turn] = deque()
        self._in_flight = 0
        self._hold_s = 1.0  # how long a turn holds a slot, smoothed: what a queued turn waits for
        # A step costs about _step_s plus _token_s a token fed, each smoothed over the steps that
        # show it: long prompt chunks the per-token cost, single tokens the fixed part.
        self._token_s = 0.003
        self._step_s = 0.005
        self._shifted = False  # state was moved since the last step
        self._turns = 0
        self._wake = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="llama-batch", daemon=True)
        self._thread.start()

    # ---- the caller's side (event loop) ----

    def count(self, text: str) -> int:
        return len(self._model.tokenize(text.encode(), add_bos=False, special=False))

    def prompt_tokens(self, messages: Sequence[Message]) -> list[int]:
        prompt = self._format(messages)
        return list(self._model.tokenize(prompt.encode(), add_bos=True, special=True))

    async def stream(
        self, messages: Sequence[Message], max_tokens: int, temperature: float, *, deadline: float | None
    ) -> AsyncGenerator[Delta, None]:
        fitted, budget = fit_context(messages, self.count, self._context, max_tokens)
        turn = _Turn(self.prompt_tokens(fitted), budget, temperature, deadline)
        self._submit(turn)
        try:
            while True:
                item = await turn.out.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            if not turn.ended:
                turn.cancelled = True
                with self._wake:
                    self._wake.notify()

    def _submit(self, turn: _Turn) -> None:
        """Queue the turn, or refuse it now if its first token could not come within its limits."""
        cap = self.capacity
        with self._wake:
            if self._closed:
                raise ModelFailure("the local model is shutting down")
            waiting = len(self._queue)
            limit = cap.queue_wait_s
            if turn.deadline is not None:
                limit = min(limit, turn.deadline - turn.enqueued)
            wait = self._expected_wait(turn, waiting)
            if waiting >= cap.queue_max:
                self._shed(turn, "queue_full", f"{waiting} turns are waiting already (queue_max)", wait)
            if wait > limit:
                nearer = turn.deadline is not None and limit < cap.queue_wait_s
                self._shed(
                    turn,
                    "deadline" if nearer else "queue_wait",
                    f"its first token is about {wait:.1f} s away, "
                    f"past this turn's {max(limit, 0):.1f} s to wait",
                    wait,
                )
            turn.wait_until = turn.enqueued + limit
            self._queue.append(turn)
            LLM_QUEUED.set(len(self._queue))
            self._wake.notify()

    def _expected_wait(self, turn: _Turn, waiting: int) -> float:
        """Seconds until the turn's first token, from what the decode thread has measured: a slot
        (turns queued beyond the free slots each wait for one to end), then every prompt read before
        its own and its own uncached part, a step at a time beside the replies under way. The slots'
        state is read without the decode thread's help: an estimate, which is all it is used as."""
        cap = self.capacity
        slot_wait = max(0, waiting + 1 - (cap.slots - self._in_flight)) * self._hold_s / cap.slots
        busy = [s for s in self._slots if s.turn is not None]
        generating = sum(not s.pending for s in busy)
        free = [s for s in self._slots if s.turn is None] or self._slots
        own = len(turn.tokens) - max(reuse_plan(s.tokens, turn.tokens, self._reuse_chunk)[0] for s in free)
        ahead = sum(len(s.pending) for s in busy) + sum(len(t.tokens) for t in self._queue) + own
        steps = -(-ahead // max(1, cap.batch_tokens - generating))
        return slot_wait + steps * self._step_s + (ahead + steps * generating) * self._token_s

    def _shed(self, turn: _Turn, reason: str, why: str, retry_s: float) -> None:
        TURNS_SHED.labels(reason).inc()
        cap = self.capacity
        raise Overloaded(
            f"the local model is at capacity ({self._in_flight} of {cap.slots} slots decoding, "
            f"{len(self._queue)} turns waiting): {why}; retry in {max(retry_s, 0.5):.1f} s",
            retry_after_s=max(retry_s, 0.5),
        )

    def close(self) -> None:
        with self._wake:
            self._closed = True
            self._wake.notify()
        self._thread.join(timeout=5)

    # ---- the decode thread ----

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._closed and not self._queue and not self._in_flight:
                    self._wake.wait()
                if self._closed:
                    break
                admitted = self._take_admissible()
            try:
                for turn, slot in admitted:
                    self._admit(turn, slot)
                if self._in_flight:
                    self._step()
            except Exception as exc:  # a failed step fails its turns, never the thread
                BACKGROUND_RESTARTS.labels("llama-batch").inc()
                log.exception("a decode step failed; its turns end with an error and the cache is cleared")
                self._reset(ModelFailure(f"the local model failed: {exc}"))
        self._reset(ModelFailure("the local model is shutting down"))

    def _take_admissible(self) -> list[tuple[_Turn, _Slot]]:
        """Pair waiting turns with free slots (held under the lock); refuse those out of time."""
        now = time.monotonic()
        taken: list[tuple[_Turn, _Slot]] = []
        free = [slot for slot in self._slots if slot.turn is None]
        kept: deque[_Turn] = deque()
        for turn in self._queue:
            if turn.cancelled:
                WORK_STOPPED.labels("llama").inc()
                turn.end()
            elif free and self._room_for(turn, free):
                slot = self._best_slot(turn, free)
                free.remove(slot)
                slot.turn = turn  # claimed now, so the count of slots in use is right at once
                self._in_flight += 1
                taken.append((turn, slot))
            elif now >= turn.wait_until:
                TURNS_SHED.labels("queue_wait").inc()
                turn.end(
                    Overloaded(
                        f"the local model is at capacity ({self._in_flight} of {self.capacity.slots} "
                        f"slots decoding): no slot came free in {now - turn.enqueued:.1f} s; retry in "
                        f"{self._hold_s:.1f} s",
                        retry_after_s=self._hold_s,
                    )
                )
            else:
                kept.append(turn)
        self._queue = kept
        LLM_QUEUED.set(len(kept))
        LLM_SEQUENCES.set(self._in_flight)
        return taken

    def _room_for(self, turn: _Turn, free: list[_Slot]) -> bool:
        """Whether the cache can hold the turn with every turn in flight at its budget, once idle
        slots' kept prompts are given up (oldest first)."""
        needed = len(turn.tokens) + turn.max_tokens
        busy = sum(
            len(s.tokens) + len(s.pending) + s.turn.max_tokens - s.generated for s in self._slots if s.turn
        )
        held = sum(len(s.tokens) for s in free)
        if busy + needed > self.capacity.cache_tokens:
            return False
        for slot in sorted(free, key=lambda s: s.used_at):
            if busy + held + needed <= self.capacity.cache_tokens:
                break
            held -= len(slot.tokens)
            slot.tokens, slot.shared_to = [], 0
            llama_cpp.llama_memory_seq_rm(self._ctx.memory, slot.seq, -1, -1)
        return True

    def _best_slot(self, turn: _Turn, free: list[_Slot]) -> _Slot:
        """The free slot that holds more of the prompt than any other slot could share (the
        caller's own earlier turns); else an empty one, else the least recently used. A slot that
        holds only what others hold too (the system prompt) is left to the caller it served:
        ``_admit`` shares that part from wherever it is."""
        prefix = {s.seq: common_prefix(s.tokens, turn.tokens) for s in self._slots}
        ranked = [*sorted(prefix.values(), reverse=True), 0]

        def value(slot: _Slot) -> tuple[int, bool, float]:
            elsewhere = ranked[1] if prefix[slot.seq] == ranked[0] else ranked[0]
            covered = reuse_plan(slot.tokens, turn.tokens, self._reuse_chunk)[0]
            return (max(0, covered - elsewhere), not slot.tokens, -slot.used_at)

        return max(free, key=value)

    def _admit(self, turn: _Turn, slot: _Slot) -> None:
        memory = self._ctx.memory
        tokens = turn.tokens
        reused, moves = reuse_plan(slot.tokens, tokens, self._reuse_chunk)
        if moves and moves[0][0] < slot.shared_to:
            # llama.cpp moves a cell for every sequence that holds it: shared cells stay put.
            reused, moves = common_prefix(slot.tokens, tokens), []
        donor = max(self._slots, key=lambda s: common_prefix(s.tokens, tokens))
        shared = common_prefix(donor.tokens, tokens)
        if shared > reused:
            # Another slot, busy or idle, begins as this prompt does (the same system prompt, a
            # new caller): its cells are shared, not read again (one unified cache; llama.cpp
            # frees a cell once no sequence holds it).
            llama_cpp.llama_memory_seq_rm(memory, slot.seq, -1, -1)
            llama_cpp.llama_memory_seq_cp(memory, donor.seq, slot.seq, 0, shared)
            donor.shared_to = max(donor.shared_to, shared)
            slot.tokens, slot.shared_to = donor.tokens[:shared], shared
            reused, moves = shared, []
        for start, end, shift in moves:
            llama_cpp.llama_memory_seq_rm(memory, slot.seq, start + shift, start)
            llama_cpp.llama_memory_seq_add(memory, slot.seq, start, end, shift)
            self._shifted = True
        # At least the prompt's last token is decoded again: its logits give the first reply token.
        reused = min(reused, len(tokens) - 1)
        llama_cpp.llama_memory_seq_rm(memory, slot.seq, reused, -1)
        slot.tokens = tokens[:reused]
        slot.shared_to = min(slot.shared_to, reused)
        slot.pending = tokens[reused:]
        slot.cached = reused
        slot.generated = 0
        slot.started = False
        slot.admitted_at = time.monotonic()
        slot.sampler = self._sampler(turn.temperature)
        slot.text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        LLM_QUEUE_SECONDS.observe(slot.admitted_at - turn.enqueued)
        LLM_PROMPT_TOKENS.labels("cached").inc(reused)
        LLM_PROMPT_TOKENS.labels("computed").inc(len(tokens) - reused)

    def _sampler(self, temperature: float) -> Any:
        """A sampler chain for one turn (freed with its slot), set as llama-cpp-python's
        create_chat_completion set it, so replies read as before."""
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        links = [llama_cpp.llama_sampler_init_penalties(self._model.n_vocab(), PENALTY_LAST_N, 1.1, 0.0, 0.0)]
        if temperature <= 0:
            links.append(llama_cpp.llama_sampler_init_greedy())
        else:
            self._turns += 1
            links += [
                llama_cpp.llama_sampler_init_top_k(40),
                llama_cpp.llama_sampler_init_top_p(0.95, 1),
                llama_cpp.llama_sampler_init_min_p(0.05, 1),
                llama_cpp.llama_sampler_init_temp(temperature),
                llama_cpp.llama_sampler_init_dist(self._seed + self._turns),
            ]
        for link in links:
            llama_cpp.llama_sampler_chain_add(chain, link)  # the chain owns it now
        # The penalty sees only the reply (as llama-cpp-python's did): a passage's words in the
        # prompt are there to be repeated.
        return chain

    def _step(self) -> None:
        now = time.monotonic()
        for slot in self._slots:
            turn = slot.turn
            if turn is None:
                continue
            if turn.cancelled:
                WORK_STOPPED.labels("llama").inc()  # counted where the work really ends
                self._release(slot)
            elif not slot.started and now >= turn.wait_until:
                # Its first token would come after its caller stopped waiting: shed it now (what
                # it read stays in the slot, for the retry).
                TURNS_SHED.labels("first_token").inc()
                turn.end(
                    Overloaded(
                        f"the local model is at capacity ({self._in_flight} of {self.capacity.slots} slots "
                        f"decoding): no first token within {now - turn.enqueued:.1f} s; retry in "
                        f"{self._hold_s:.1f} s",
                        retry_after_s=self._hold_s,
                    )
                )
                self._release(slot)
        batch = self._batch.batch
        batch.n_tokens = 0
        rows: list[tuple[_Slot, int]] = []  # slots that get a token from this step, and their row
        fed: list[tuple[_Slot, list[int]]] = []
        generating = [s for s in self._slots if s.turn is not None and not s.pending]
        prefilling = sorted((s for s in self._slots if s.turn and s.pending), key=lambda s: s.admitted_at)
        room = self.capacity.batch_tokens
        for slot in generating:
            self._add(slot, [slot.last_token], logits=True)
            rows.append((slot, batch.n_tokens - 1))
            fed.append((slot, [slot.last_token]))
            room -= 1
        for slot in prefilling:
            if room <= 0:
                break
            chunk = slot.pending[:room]
            last = len(chunk) == len(slot.pending)
            self._add(slot, chunk, logits=last)
            if last:
                rows.append((slot, batch.n_tokens - 1))
            fed.append((slot, chunk))
            room -= len(chunk)
        if not batch.n_tokens:
            return
        if self._spare is not None and (threads := self._spare.threads()) != self._threads:
            llama_cpp.llama_set_n_threads(self._ctx.ctx, threads, threads)
            self._threads = threads
            LLM_THREADS.set(threads)
        started = time.monotonic()
        code = llama_cpp.llama_decode(self._ctx.ctx, batch)
        took = time.monotonic() - started
        if code != 0:
            raise RuntimeError(f"llama_decode returned {code}")
        LLM_STEP_SECONDS.observe(took)
        if not self._shifted:  # a step after a move also re-ropes the cache: not what a token costs
            if batch.n_tokens >= 32:
                self._token_s += 0.1 * (max(took - self._step_s, 0.0) / batch.n_tokens - self._token_s)
            else:
                self._step_s += 0.1 * (max(took - self._token_s * batch.n_tokens, 0.0) - self._step_s)
        self._shifted = False
        for slot, tokens in fed:
            slot.tokens.extend(tokens)
            if slot.pending:
                slot.pending = slot.pending[len(tokens) :]
        LLM_BATCH_SEQUENCES.observe(len(rows))
        for slot, row in rows:
            self._next_token(slot, llama_cpp.llama_sampler_sample(slot.sampler, self._ctx.ctx, row))

    def _add(self, slot: _Slot, tokens: list[int], *, logits: bool) -> None:
        batch = self._batch.batch
        start = len(slot.tokens)
        for i, token in enumerate(tokens):
            j = batch.n_tokens
            batch.token[j] = token
            batch.pos[j] = start + i
            batch.n_seq_id[j] = 1
            batch.seq_id[j][0] = slot.seq
            batch.logits[j] = logits and i == len(tokens) - 1
            batch.n_tokens += 1

    def _next_token(self, slot: _Slot, token: int) -> None:
        turn = slot.turn
        assert turn is not None
        if not slot.started:
            slot.started = True
            queued, prefill = slot.admitted_at - turn.enqueued, time.monotonic() - slot.admitted_at
            turn.send(Delta(usage=Usage(len(turn.tokens), slot.cached, queued, prefill)))
        if llama_cpp.llama_vocab_is_eog(self._vocab, token):
            self._finish(slot, "stop")
            return
        slot.generated += 1
        size = llama_cpp.llama_token_to_piece(self._vocab, token, self._piece, len(self._piece), 0, False)
        text = slot.text.decode(self._piece.raw[: max(size, 0)])
        if text:
            turn.send(Delta(text))
        if slot.generated >= turn.max_tokens:
            self._finish(slot, "length")
        else:
            slot.last_token = token

    def _finish(self, slot: _Slot, reason: str) -> None:
        turn = slot.turn
        assert turn is not None
        tail = slot.text.decode(b"", final=True)
        turn.send(Delta(tail, reason))
        turn.end()
        held = time.monotonic() - slot.admitted_at
        self._hold_s += 0.2 * (held - self._hold_s)
        self._release(slot)

    def _release(self, slot: _Slot) -> None:
        """Free the slot for the next turn; its KV state stays, for a prompt that starts the same."""
        if slot.turn is not None:
            slot.turn.end()
        slot.turn = None
        slot.pending = []
        if slot.sampler is not None:
            llama_cpp.llama_sampler_free(slot.sampler)
            slot.sampler = None
        slot.used_at = time.monotonic()
        with self._wake:
            self._in_flight -= 1
            LLM_SEQUENCES.set(self._in_flight)

    def _reset(self, error: Exception) -> None:
        """End every turn with ``error`` and forget the cache: after a failed decode its state is unknown."""
        for slot in self._slots:
            if slot.turn is not None:
                slot.turn.end(error)
                self._release(slot)
            slot.tokens, slot.shared_to = [], 0
        llama_cpp.llama_memory_clear(self._ctx.memory, True)
        if self._closed:
            with self._wake:
                for turn in self._queue:
                    turn.end(error)
                self._queue.clear()


def _log_errors(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    """llama.cpp's errors into the core's log; its load and graph chatter (and its warning that a
    unified cache is longer than one sequence was trained on: no sequence here is) nowhere."""
    if level == GGML_LOG_LEVEL_ERROR:
        log.error("llama.cpp: %s", text.decode(errors="replace").rstrip())


_llama_log = llama_cpp.llama_log_callback(_log_errors)  # kept: llama.cpp holds only the pointer


def _chat_formatter(model: internals.LlamaModel) -> Any:
    """Messages to prompt text by the GGUF's own chat template (ChatML where it has none)."""
    template = model.metadata().get("tokenizer.chat_template")
    if not template:
        return lambda messages: format_chatml(messages=list(messages)).prompt
    eos = model.token_eos()
    bos = model.token_bos()
    formatter = Jinja2ChatFormatter(
        template=template,
        eos_token=model.token_get_text(eos) if eos != -1 else "",
        bos_token=model.token_get_text(bos) if bos != -1 else "",
    )
    return lambda messages: formatter(messages=list(messages)).prompt
