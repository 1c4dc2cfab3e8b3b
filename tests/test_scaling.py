"""Horizontal scaling on loopback: three STT replicas behind one gateway target, one killed mid-run."""

from __future__ import annotations

import asyncio
import signal

import grpc
import pytest

from voicemesh.client.sdk import AsyncClient, wav_chunks
from voicemesh.common.audio import WavAudio
from voicemesh.common.components import CORE, GATEWAY, STT
from voicemesh.common.metrics import scrape
from voicemesh.common.retry import RetryPolicy
from voicemesh.rpc.launcher import Process, free_port, start_service, stop_processes, wait_serving
from voicemesh.rpc.launcher import service_env as env

TURNS = 30
KILL_AFTER = 15  # turns started when the third replica is killed
STREAMS = 'voicemesh_rpcs_total{code="OK",method="SpeechToText/StreamingRecognize"}'
ACTIVE = 'voicemesh_active_rpcs{method="SpeechToText/StreamingRecognize"}'


def streams_seen(metrics: dict[str, float]) -> float:
    """Streams a replica has finished or is serving."""
    return metrics.get(STREAMS, 0.0) + metrics.get(ACTIVE, 0.0)


@pytest.mark.timeout(420)
async def test_three_stt_replicas_share_30_turns_and_one_dies_without_losing_later_turns(speak) -> None:  # type: ignore[no-untyped-def]
    speech = speak("What is two plus two?", pad_s=0.6)
    audio = list(wav_chunks(WavAudio(speech.pcm, speech.sample_rate_hz)))
    stts = list(
        await asyncio.gather(
            *(start_service(STT, env("stt", workers=1), 180, name=f"stt{n}") for n in range(3))
        )
    )
    # 30 turns at once: the core may take longer than its 3 s to start some (this test is of the
    # STT replicas; the core's shedding is tested in tests/test_crowd.py).
    core = await start_service(CORE, env("core", max_tokens=16, llm_queue_wait_s=120), 180)
    gateway = await start_service(
        GATEWAY,
        env(
            "gateway",
            stt_target=",".join(stt.address for stt in stts),  # one name, three replicas
            core_target=core.address,
            tts_target="127.0.0.1:1",
            limit_stt_per_min=1000,
            limit_llm_per_min=1000,
            max_queue_wait_s=120,
            preemptive_generation="false",
        ),
        120,
    )
    processes: list[Process] = [*stts, core, gateway]
    started = 0
    kill_now = asyncio.Event()

    async def turn(client: AsyncClient) -> tuple[int, str]:
        nonlocal started
        index = started = started + 1
        if started == KILL_AFTER:
            kill_now.set()
        try:
            events = [e async for e in client.converse(audio, speak=False)]
        except grpc.aio.AioRpcError as error:
            return index, f"{error.code().name}: {error.details()}"
        kinds = [e.WhichOneof("event") for e in events]
        return index, "ok" if kinds.count("turn_done") == 1 else f"no turn_done: {kinds}"

    try:
        for process in (*stts, core, gateway):
            await wait_serving(process.address, 60)
        async with AsyncClient(gateway.address, timeout_s=300) as client:
            tasks = []
            killed_at = 0
            for _ in range(TURNS):
                tasks.append(asyncio.create_task(turn(client)))
                await asyncio.sleep(0.05)  # all 30 overlap: every reply waits on the one core
                if kill_now.is_set() and not killed_at:
                    doomed = await asyncio.to_thread(scrape, stts[2].metrics)
                    assert streams_seen(doomed) >= 1  # it had taken work before it died
                    stts[2].proc.send_signal(signal.SIGKILL)
                    killed_at = started
            results = await asyncio.gather(*tasks)

        after_kill = [outcome for index, outcome in results if index > killed_at]
        assert after_kill and all(outcome == "ok" for outcome in after_kill), after_kill
        failed = [outcome for _, outcome in results if outcome != "ok"]
        # Only streams the dead replica had already answered can fail; the others start again elsewhere.
        # Each failure has the real status, with the hop named.
        assert all(outcome.startswith("UNAVAILABLE: stt: ") for outcome in failed), failed
        assert len(failed) <= KILL_AFTER // 3 + 1
        for survivor in stts[:2]:
            assert (await asyncio.to_thread(scrape, survivor.metrics))[STREAMS] >= 5
    finally:
        await stop_processes(processes, 20)


@pytest.mark.timeout(240)
async def test_a_dns_target_keeps_working_while_its_pod_goes_and_comes_back() -> None:
    """The gateway reaches the core by dns:/// (as in k8s/) and finds it again after a restart."""
    port = free_port()
    core = await start_service(CORE, env("core", port=port, max_tokens=8), 180)
    gateway = await start_service(
        GATEWAY,
        env(
            "gateway",
            core_target=f"dns:///localhost:{port}",
            stt_target="127.0.0.1:1",
            tts_target="127.0.0.1:1",
            breaker_reset_timeout_s=1,
        ),
        120,
    )
    processes = [core, gateway]

    async def answered(client: AsyncClient) -> bool:
        try:
            return any([e.WhichOneof("event") == "turn_done" async for e in client.ask("Say hi.")])
        except grpc.aio.AioRpcError:
            return False

    try:
        async with AsyncClient(gateway.address, timeout_s=20, retry=RetryPolicy(attempts=1)) as client:
            assert all([await answered(client) for _ in range(3)])
            core.proc.send_signal(signal.SIGKILL)
            await core.proc.wait()
            assert not await answered(client)  # gone: refused at once, not hung
            core = processes[0] = await start_service(CORE, env("core", port=port, max_tokens=8), 180)
            back = False
            for _ in range(40):  # reconnect backoff is capped at 2 s, the breaker resets after 1 s
                if back := await answered(client):
                    break
                await asyncio.sleep(0.25)
            assert back
    finally:
        await stop_processes(processes, 20)
