"""The core with many turns at once, through a real core process: batched decoding, prompt reuse,
voice-sized replies, and load shed with a clear answer."""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator

import grpc
import pytest
from conftest import busy_cores
from prometheus_client import REGISTRY

from voicemesh.common.components import CORE
from voicemesh.common.metrics import scrape
from voicemesh.common.spare_cores import SpareCores, threads_for
from voicemesh.core.batched_llama import BatchedLlama, Capacity, common_prefix
from voicemesh.core.models import Delta
from voicemesh.core.reply_budget import SENTENCE_GRACE_TOKENS, ReplyBudget
from voicemesh.rpc.launcher import Process, backend_channel, service_env, start_service, stop_processes
from voicemesh.v1 import core_pb2 as pb
from voicemesh.v1 import core_pb2_grpc as pb_grpc
from voicemesh.v1 import retrieval_pb2

# Questions the small model answers from its passage under greedy decoding, alone or batched.
FACTS = {
    "What is the door code?": ("The door code is 4417.", "4417"),
    "What is the gate code?": ("The gate code is 9032.", "9032"),
    "What is the room number?": ("The room number is 238.", "238"),
}
STORY = "Tell me a long story about a brave knight, a dragon and a castle, with many details."


def grounded(question: str, request_id: str) -> pb.RespondRequest:
    fact, _ = FACTS[question]
    passage = retrieval_pb2.Passage(title="House notes", text=fact)
    return pb.RespondRequest(request_id=request_id, text=question, passages=[passage])


async def collect(stub: pb_grpc.CoreServiceStub, request: pb.RespondRequest) -> list[pb.RespondResponse]:
    return [r async for r in stub.Respond(request, timeout=60)]


def done_of(responses: list[pb.RespondResponse]) -> pb.ReplyDone:
    assert responses[-1].WhichOneof("event") == "done", responses
    return responses[-1].done


def deltas(responses: list[pb.RespondResponse]) -> str:
    return "".join(r.text_delta for r in responses if r.WhichOneof("event") == "text_delta")


@pytest.fixture(scope="module")
async def core() -> AsyncIterator[Process]:
    process = await start_service(CORE, service_env("core", llm_slots=4), 180)
    yield process
    await stop_processes([process])


async def test_turns_at_once_decode_in_one_batch_and_each_answers_its_own_question(core: Process) -> None:
    before = scrape(core.metrics)
    async with backend_channel(core.address) as channel:
        stub = pb_grpc.CoreServiceStub(channel)
        questions = list(FACTS)
        replies = await asyncio.gather(
            *(collect(stub, grounded(q, f"own-{n}")) for n, q in enumerate(questions))
        )
        # The same prompts again: each is computed only past what an earlier turn left in the cache.
        again = await collect(stub, grounded(questions[0], "own-again"))
    after = scrape(core.metrics)
    for question, responses in zip(questions, replies, strict=True):
        text = done_of(responses).text.lower()
        own = FACTS[question][1]
        others = [word for q, (_, word) in FACTS.items() if q != question]
        assert own in text and not any(word in text for word in others), (question, text)
    steps = after["voicemesh_llm_batch_sequences_count"] - before.get(
        "voicemesh_llm_batch_sequences_count", 0
    )
    single = after['voicemesh_llm_batch_sequences_bucket{le="1.0"}'] - before.get(
        'voicemesh_llm_batch_sequences_bucket{le="1.0"}', 0
    )
    assert steps - single > 0, "no decode step carried more than one turn"
    reused = done_of(again)
    assert reused.prompt_tokens > 0 and reused.cached_prompt_tokens >= reused.prompt_tokens - 1
    assert reused.prefill_ms >= 0 and reused.queue_ms >= 0
    assert after['voicemesh_llm_prompt_tokens_total{source="cached"}'] > before.get(
        'voicemesh_llm_prompt_tokens_total{source="cached"}', 0
    )


@pytest.mark.timeout(240)
async def test_a_new_callers_first_turn_shares_the_start_of_the_prompt_a_busy_slot_holds() -> None:
    core = await start_service(CORE, service_env("core", llm_slots=2), 180)
    try:
        async with backend_channel(core.address) as channel:
            stub = pb_grpc.CoreServiceStub(channel)
            story = stub.Respond(
                pb.RespondRequest(request_id="donor", text=STORY, max_sentences=3), timeout=120
            )
            told = []
            async for response in story:
                told.append(response)
                if response.WhichOneof("event") == "text_delta":
                    break  # the story's slot holds its prompt and is generating; the other is empty
            # A different question, in the empty slot of a core that never used it.
            newcomer = await collect(stub, grounded("What is the door code?", "newcomer"))
            told += [r async for r in story]
        metrics = scrape(core.metrics)
    finally:
        await stop_processes([core])
    done = done_of(newcomer)
    assert "4417" in done.text, done.text  # its own answer, from cells another sequence wrote
    assert 0 < done.cached_prompt_tokens < done.prompt_tokens, done
    assert metrics['voicemesh_llm_prompt_tokens_total{source="cached"}'] == done.cached_prompt_tokens
    assert done_of(told).text and 1 <= metrics["voicemesh_llm_threads"] <= (os.cpu_count() or 1)


def test_a_step_uses_as_many_threads_as_other_processes_leave_cores_idle() -> None:
    assert [threads_for(busy, 2, 2) for busy in (0.0, 0.4, 0.6, 1.5, 2.0)] == [2, 2, 1, 1, 1]
    assert threads_for(0.0, 8, 4) == 4
    cores = os.cpu_count() or 1
    spare = SpareCores(cores, every_s=0.2)
    with busy_cores():
        time.sleep(0.5)
        spare.threads()  # from here on it reads a box whose every core is busy
        time.sleep(0.5)
        assert spare.threads() == 1


def test_a_burst_of_work_elsewhere_does_not_take_a_steps_threads() -> None:
    """A single talker's speech is decoded and synthesised in bursts beside the reply: 0.15 s of
    every core busy leaves a step its threads; only a load that lasts takes them."""
    cores = os.cpu_count() or 1
    spare = SpareCores(cores, every_s=0.1)
    time.sleep(0.3)
    assert spare.threads() == cores  # an idle box
    with busy_cores():
        time.sleep(0.15)
    assert spare.threads() > cores // 2
    with busy_cores():
        for _ in range(15):
            time.sleep(0.1)
            spare.threads()
        assert spare.threads() == 1


async def test_cancelling_one_turn_leaves_the_other_intact(core: Process) -> None:
    stopped = 'voicemesh_work_stopped_total{kind="llama"}'
    before = scrape(core.metrics).get(stopped, 0)
    async with backend_channel(core.address) as channel:
        stub = pb_grpc.CoreServiceStub(channel)
        long = stub.Respond(
            pb.RespondRequest(request_id="cancel-me", text=STORY, max_sentences=50), timeout=60
        )
        seen = 0
        async for response in long:
            seen += response.WhichOneof("event") == "text_delta"
            if seen == 1:
                other = asyncio.create_task(collect(stub, grounded("What is the door code?", "intact")))
            if seen == 3:
                long.cancel()
                break
        text = done_of(await other).text
    assert "4417" in text, text
    for _ in range(50):  # the decode thread frees the slot at its next step
        metrics = scrape(core.metrics)
        if metrics[stopped] > before and metrics["voicemesh_llm_sequences"] == 0:
            break
        await asyncio.sleep(0.1)
    assert metrics[stopped] == before + 1 and metrics["voicemesh_llm_sequences"] == 0


async def test_a_reply_stops_at_its_sentence_budget_on_a_sentence_end(core: Process) -> None:
    async with backend_channel(core.address) as channel:
        stub = pb_grpc.CoreServiceStub(channel)
        one = await collect(stub, pb.RespondRequest(request_id="one", text=STORY, max_sentences=1))
        short = await collect(
            stub, pb.RespondRequest(request_id="short", text=STORY, max_tokens=6, max_sentences=50)
        )
    done = done_of(one)
    sentences = [r.sentence.text for r in one if r.WhichOneof("event") == "sentence"]
    assert done.finish_reason == "sentences" and len(sentences) == 1, (done, sentences)
    assert done.text == deltas(one).strip() == sentences[0] and re.search(r"[.!?…]$", done.text)
    # Past its token budget the reply runs on to the end of its sentence, and no further.
    cut = done_of(short)
    assert cut.finish_reason == "length" and 6 < cut.completion_tokens <= 6 + SENTENCE_GRACE_TOKENS
    assert cut.text == deltas(short).strip() and re.search(r"[.!?…]$", cut.text), cut.text


def test_the_reply_budget_lets_out_whole_sentences_and_whole_words() -> None:
    budget = ReplyBudget(sentences=1, tokens=100)
    assert [budget.push(p)[0] for p in ["A spider", " has eight", " legs."]] == [
        "A spider",
        " has eight",
        " legs.",
    ]
    # The sentence is known to have ended only when the next word starts; that word is not said.
    assert budget.push(" It") == ("", ["A spider has eight legs."]) and budget.stopped == "sentences"
    # Over the token budget with no sentence end in sight: the word under way is finished, no more.
    words = ReplyBudget(sentences=0, tokens=2)
    assert [words.push(p)[0] for p in ["Once", " up"]] == ["Once", " up"]
    held = [words.push(p)[0] for p in ["on"] + [" and"] * (SENTENCE_GRACE_TOKENS - 1)]
    assert held == [""] * (SENTENCE_GRACE_TOKENS - 1) + ["on"] and words.stopped == "length"


@pytest.mark.timeout(240)
async def test_a_core_at_capacity_sheds_the_next_turn_with_the_limit_and_a_time_to_retry() -> None:
    core = await start_service(
        CORE, service_env("core", llm_slots=1, llm_queue_max=1, max_tokens=400, local_reply_sentences=0), 180
    )
    try:
        async with backend_channel(core.address) as channel:
            stub = pb_grpc.CoreServiceStub(channel)
            busy = stub.Respond(pb.RespondRequest(request_id="busy", text=STORY), timeout=120)
            await anext(aiter(busy))  # its route: the one slot is taken
            # A caller who will wait 0.3 s is told at once that a slot is further off than that.
            started = asyncio.get_running_loop().time()
            with pytest.raises(grpc.aio.AioRpcError) as short:
                await collect_with_timeout(stub, "short-deadline", 0.3)
            assert asyncio.get_running_loop().time() - started < 0.25
            # One may wait in the queue; the next one past it is refused for the queue.
            waiting = asyncio.create_task(collect_with_timeout(stub, "queued", 60))
            await asyncio.sleep(0.5)
            with pytest.raises(grpc.aio.AioRpcError) as full:
                await collect_with_timeout(stub, "one-too-many", 60)
            busy.cancel()
            assert done_of(await waiting).text  # the queued turn got the slot once it was free
        metrics = scrape(core.metrics)
    finally:
        await stop_processes([core])
    for refused in (short.value, full.value):
        assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "the local model is at capacity" in (refused.details() or "")
        assert re.search(r"retry in \d+\.\d s", refused.details() or ""), refused.details()
    assert "past this turn's 0.3 s to wait" in (short.value.details() or "")
    assert "waiting already (queue_max)" in (full.value.details() or "")
    assert metrics['voicemesh_turns_shed_total{reason="deadline"}'] == 1
    assert metrics['voicemesh_turns_shed_total{reason="queue_full"}'] == 1


async def collect_with_timeout(
    stub: pb_grpc.CoreServiceStub, request_id: str, timeout_s: float
) -> list[pb.RespondResponse]:
    request = pb.RespondRequest(request_id=request_id, text="What is two plus two?")
    return [r async for r in stub.Respond(request, timeout=timeout_s)]


async def test_cells_two_turns_share_stay_put_when_one_slot_moves_its_state() -> None:
    """llama.cpp moves a cell for every sequence that holds it: a slot whose start another turn
    shares gives up cache reuse by moves rather than shift that turn's state under it (which
    corrupts that turn silently, or fails the step once its last cell moves)."""
    model = BatchedLlama(capacity=Capacity(slots=3, queue_wait_s=120))

    def reply(messages: list[dict[str, str]], tokens: int) -> AsyncGenerator[Delta, None]:
        return model.stream(messages, tokens, 0.0, deadline=None)

    try:
        system = {"role": "system", "content": "You are a helpful assistant who tells long stories."}
        first = [system, {"role": "user", "content": "Describe a castle in a few sentences."}]
        told = [*first, {"role": "assistant", "content": await _text(reply(first, 60))}]
        # The same caller goes on with a long story (the slot that holds the exchange is busy) ...
        asked = [*told, {"role": "user", "content": STORY}]
        story = reply(asked, 400)
        assert await anext(story) is not None
        # ... and a second caller whose prompt starts the same shares those cells, in another slot,
        # the first words of the story's request among them.
        other = reply([*told, {"role": "user", "content": STORY.replace("knight", "princess")}], 400)
        assert await anext(other) is not None
        await story.aclose()
        for _ in range(100):  # the decode thread frees the story's slot at its next step
            if REGISTRY.get_sample_value("voicemesh_llm_sequences") == 1:
                break
            await asyncio.sleep(0.05)
        # The first caller's next prompt has left the first exchange out (as a context that is
        # full does): its slot's state would be moved back to fit, the start of the cells the
        # second caller's turn shares among them. It reads those tokens again instead.
        again = [system, {"role": "user", "content": STORY}]
        continued = asyncio.create_task(_text(other))
        first_delta = await anext(reply(again, 40))
        assert first_delta.usage is not None
        prefix = common_prefix(model.prompt_tokens(asked), model.prompt_tokens(again))
        assert first_delta.usage.cached_tokens == prefix, first_delta.usage
        assert "princess" in (await continued).lower()
    finally:
        model.close()


async def _text(deltas: AsyncGenerator[Delta, None]) -> str:
    return "".join([delta.text async for delta in deltas])
