"""History survives what goes wrong around it: a locked SQLite, a failed write, a shutdown with turns
still queued on the gateway or in the core. Every turn is recorded exactly once afterwards.
(A PostgreSQL outage is tests/test_memory.py's, the slot-starved core tests/test_nothing_stuck.py's.)"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import threading
from pathlib import Path

import grpc
import pytest

from voicemesh.client import AsyncClient, RetryPolicy
from voicemesh.common.components import CORE, GATEWAY
from voicemesh.common.metrics import scrape
from voicemesh.rpc.launcher import (
    Process,
    backend_channel,
    free_port,
    gateway_channel,
    service_env,
    start_service,
    stop_processes,
    wait_serving,
)
from voicemesh.storage.history import SqliteHistoryStore, TurnRecord
from voicemesh.v1 import core_pb2, core_pb2_grpc, user_data_pb2, user_data_pb2_grpc
from voicemesh.v1 import gateway_pb2 as pb
from voicemesh.v1 import gateway_pb2_grpc as pb_grpc


def hold_lock(path: Path, seconds: float) -> threading.Thread:
    """Another process's writer: an exclusive lock on the database for ``seconds``."""
    ready = threading.Event()

    def hold() -> None:
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("BEGIN EXCLUSIVE")
        ready.set()
        threading.Event().wait(seconds)
        db.execute("ROLLBACK")
        db.close()

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    ready.wait(5)
    return thread


async def history(
    address: str, user: str, want: int, timeout_s: float = 30, *, core: bool = False
) -> list[user_data_pb2.HistoryTurn]:
    """The user's turns once there are ``want`` of them (or what there is when the time is up),
    from the gateway, or with ``core`` from the core itself (over mTLS, as the gateway asks it)."""
    async with backend_channel(address) if core else gateway_channel(address) as channel:
        users = user_data_pb2_grpc.UserDataServiceStub(channel)
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            try:
                data = await users.GetUserData(user_data_pb2.GetUserDataRequest(user_id=user), timeout=5)
                if len(data.turns) >= want or asyncio.get_running_loop().time() > deadline:
                    return list(data.turns)
            except grpc.aio.AioRpcError:
                if asyncio.get_running_loop().time() > deadline:
                    raise
            await asyncio.sleep(0.2)


def record(session: str, user: str, n: int) -> core_pb2.RecordTurnRequest:
    request = core_pb2.RecordTurnRequest(
        request_id=f"{session}.{n}", session_id=session, user_id=user, transcript=f"Turn number {n}."
    )
    request.ended_at.GetCurrentTime()
    return request


async def test_a_failed_sqlite_write_is_rolled_back_and_later_writes_land(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    store = SqliteHistoryStore(path, busy_timeout_s=0.1)
    holder = hold_lock(path, 1.0)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        await store.append([TurnRecord("ada", "s1", "Hello.", "Hi.", turn_id="s1.0")])
    holder.join()
    await store.append([TurnRecord("ada", "s1", "Again.", "Hi again.", turn_id="s1.1")])
    await store.put_profile("ada", {"name": "Ada"})
    await store.close()
    reopened = SqliteHistoryStore(path)  # what another process sees: only what was committed
    assert [t.transcript for t in await reopened.recent("ada")] == ["Again."]
    assert await reopened.profile("ada") == {"name": "Ada"}
    await reopened.close()


async def test_a_turn_written_twice_is_kept_once_and_its_newest_copy_wins(tmp_path: Path) -> None:
    store = SqliteHistoryStore(tmp_path / "history.db")
    attempt = TurnRecord("ada", "s1", "Hello.", "", interrupted=True, turn_id="s1.0", at=100.0)
    answered = TurnRecord("ada", "s1", "Hello.", "Hi there.", turn_id="s1.0", at=101.0)
    await store.append([answered])
    await store.append([attempt])  # an older attempt's record arriving late changes nothing
    await store.append([answered])  # nor does the same record sent again
    (kept,) = await store.recent("ada")
    assert kept.reply == "Hi there." and not kept.interrupted
    await store.close()


@pytest.mark.timeout(180)
async def test_turns_recorded_while_sqlite_is_locked_land_once(tmp_path: Path) -> None:
    path = tmp_path / "history.db"
    core = await start_service(CORE, service_env("core", history_url=f"sqlite:///{path}"), 180)
    try:
        async with backend_channel(core.address) as channel:
            stub = core_pb2_grpc.CoreServiceStub(channel)
            await stub.RecordTurn(record("s1", "ada", 0))
            await history(core.address, "ada", 1, core=True)
            holder = hold_lock(path, 1.0)
            sent = [record("s1", "ada", n) for n in range(1, 6)]
            for request in sent:
                await stub.RecordTurn(request)
            await stub.RecordTurn(sent[2])  # the gateway's retry of one it thought lost
            holder.join()
        turns = await history(core.address, "ada", 6, core=True)
        assert [t.transcript for t in turns] == [f"Turn number {n}." for n in range(6)]
    finally:
        await stop_processes([core])


@pytest.mark.timeout(240)
async def test_turns_the_core_never_took_survive_the_gateway_being_stopped(tmp_path: Path) -> None:
    """The core is down: the gateway queues each ended turn; SIGTERM spills them to its folder, and
    the next gateway to start there sends them once the core is up."""
    spill = tmp_path / "spill"
    core_port = free_port()
    settings = {
        "core_target": f"127.0.0.1:{core_port}",
        "stt_target": "127.0.0.1:1",
        "tts_target": "127.0.0.1:1",
    }
    gateway = await start_service(
        GATEWAY, service_env("gateway", spill_dir=spill, flush_s=1, **settings), 120
    )
    processes: list[Process] = [gateway]
    try:
        await wait_serving(gateway.address, 60)
        async with gateway_channel(gateway.address) as channel:
            stub = pb_grpc.GatewayServiceStub(channel)
            for n in range(3):
                request = pb.AskRequest(
                    text=f"Question {n}?", user_id="ada-spilled", session_id="s1", request_id=f"s1.{n}"
                )
                with pytest.raises(grpc.aio.AioRpcError) as failed:
                    async for _ in stub.Ask(request, timeout=20):
                        pass
                assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
        gateway.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(gateway.proc.wait(), 30) == 0
        (spilled,) = spill.glob("records-*.spill")
        assert len(spilled.read_text().splitlines()) == 3

        core = await start_service(CORE, service_env("core", port=core_port), 180)
        processes.append(core)
        gateway = await start_service(GATEWAY, service_env("gateway", spill_dir=spill, **settings), 120)
        processes.append(gateway)
        turns = await history(gateway.address, "ada-spilled", 3)
        assert sorted(t.transcript for t in turns) == ["Question 0?", "Question 1?", "Question 2?"]
        assert all(t.failure.startswith("UNAVAILABLE: core: ") for t in turns)
        async with asyncio.timeout(10):
            while list(spill.iterdir()):  # noqa: ASYNC110  (delivered: nothing is left to send twice)
                await asyncio.sleep(0.1)
    finally:
        await stop_processes(processes)


@pytest.mark.timeout(240)
async def test_turns_the_store_never_took_survive_the_core_being_stopped(tmp_path: Path) -> None:
    """SQLite is locked past the core's shutdown: the core spills its queued turns, and the next core
    to start with that folder writes them."""
    path, spill = tmp_path / "history.db", tmp_path / "spill"
    settings = {"history_url": f"sqlite:///{path}", "spill_dir": spill, "flush_s": 1}
    core = await start_service(CORE, service_env("core", **settings), 180)
    processes = [core]
    try:
        async with backend_channel(core.address) as channel:
            await core_pb2_grpc.CoreServiceStub(channel).RecordTurn(record("s1", "ada", 0))
            await history(core.address, "ada", 1, core=True)
            holder = hold_lock(path, 12.0)
            for n in range(1, 4):
                await core_pb2_grpc.CoreServiceStub(channel).RecordTurn(record("s1", "ada", n))
        core.proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(core.proc.wait(), 30) == 0
        (spilled,) = spill.glob("history-*.spill")
        assert len(spilled.read_text().splitlines()) == 3
        holder.join()

        core = await start_service(CORE, service_env("core", **settings), 180)
        processes.append(core)
        turns = await history(core.address, "ada", 4, core=True)
        assert [t.transcript for t in turns] == [f"Turn number {n}." for n in range(4)]
    finally:
        await stop_processes(processes)


@pytest.mark.timeout(240)
async def test_an_ask_the_sdk_retried_is_one_turn_in_history(tmp_path: Path) -> None:
    """The core is down: the SDK tries the Ask three times, and the gateway records each failed
    attempt. They carry one request id, so once the core is back the history holds one turn."""
    core_port = free_port()
    settings = {
        "core_target": f"127.0.0.1:{core_port}",
        "stt_target": "127.0.0.1:1",
        "tts_target": "127.0.0.1:1",
    }
    gateway = await start_service(GATEWAY, service_env("gateway", **settings), 120)
    processes = [gateway]
    try:
        await wait_serving(gateway.address, 60)
        async with AsyncClient(
            gateway.address, retry=RetryPolicy(attempts=3, base_s=0.05, cap_s=0.1)
        ) as client:
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                async for _ in client.ask("Hello there?", user_id="ada-retried"):
                    pass
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
        core = await start_service(CORE, service_env("core", port=core_port), 180)
        processes.append(core)
        async with asyncio.timeout(30):
            while scrape(gateway.metrics).get("voicemesh_records_queued"):  # noqa: ASYNC110
                await asyncio.sleep(0.1)
        sent = scrape(gateway.metrics)['voicemesh_records_sent_total{result="ok"}']
        assert sent == 3  # each attempt's record reached the core ...
        assert len(await history(gateway.address, "ada-retried", 2, timeout_s=2)) == 1  # ... and is one turn
    finally:
        await stop_processes(processes)
