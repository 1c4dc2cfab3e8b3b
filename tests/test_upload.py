"""A Converse stream's audio for one STT attempt after another (voicemesh.gateway.upload)."""

from __future__ import annotations

import asyncio

from voicemesh.gateway.upload import Upload


async def test_a_retry_gets_every_chunk_in_order_even_while_the_dead_attempt_reads_on() -> None:
    upload = Upload(replay_cap=1 << 20)
    dead = upload.reader()
    for n in range(3):
        await upload.put(b"%d" % n)
    assert [await anext(dead) for _ in range(3)] == [b"0", b"1", b"2"]
    stealing = asyncio.create_task(anext(dead))  # gRPC's poller of the failed call reads on ...
    await asyncio.sleep(0)
    retry = upload.reader()  # ... while the stream starts again on another replica
    await upload.put(b"3")
    upload.finish()
    assert [chunk async for chunk in retry] == [b"0", b"1", b"2", b"3"]  # the whole utterance, once
    (stolen,) = await asyncio.gather(stealing, return_exceptions=True)
    assert isinstance(stolen, StopAsyncIteration)  # the dead reader stopped, and took nothing


async def test_once_answered_nothing_is_kept_for_a_replay_and_the_caller_is_held_back() -> None:
    upload = Upload(replay_cap=1 << 20, window=2)
    reader = upload.reader()
    await upload.put(b"a")
    await upload.put(b"b")
    third = asyncio.create_task(upload.put(b"c"))  # two chunks ahead of the STT: the caller waits
    await asyncio.sleep(0.01)
    assert not third.done()
    assert await anext(reader) == b"a"
    upload.answered()
    await asyncio.wait_for(third, 1)
    assert not upload.replayable
    assert [await anext(reader), await anext(reader)] == [b"b", b"c"]
    upload.finish()
    assert [chunk async for chunk in upload.reader()] == []  # what was sent is not held any more


async def test_audio_past_the_replay_cap_is_not_held_for_a_replay() -> None:
    upload = Upload(replay_cap=10)
    reader = upload.reader()
    for _ in range(3):
        await upload.put(b"12345")
        await anext(reader)
    assert not upload.replayable
