"""The retriever itself, with its real models on real documents: parsing each format, bad documents,
re-ingestion and deletion, generations swapped whole, both BM25 engines, IVF-PQ, the rerank stage
(both kinds), and ingestion that does not slow searches down."""

from __future__ import annotations

import asyncio
import gzip
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import numpy as np
import pytest

from voicemesh.common.blocking import BlockingPool
from voicemesh.rag.config import RagSettings
from voicemesh.rag.documents import DocumentError, parse
from voicemesh.rag.embedding import Embedder, bundled
from voicemesh.rag.engine import IncomingDocument, Retriever, RetrieverSettings, SearchOptions
from voicemesh.rag.generation import DenseSettings
from voicemesh.rag.keyword import RankBm25, SparseBm25, tokenize
from voicemesh.rag.passages import split
from voicemesh.rag.rerank import CrossEncoderReranker, EmbedderReranker
from voicemesh.rag.server import build_engine
from voicemesh.rag.store import CollectionKey

DOCS = Path("/usr/share/doc")
HTML = DOCS / "valgrind/html/faq.html"
PDF = DOCS / "shared-mime-info/shared-mime-info-spec.pdf"
TEXT = DOCS / "socat/FAQ"
REACTOR_V1 = """# Facilities

## The Zorblat reactor

The Zorblat reactor was commissioned in 1987 in Tromsø. It is cooled by sea water.

## Opening hours

The visitor centre is open from nine to five on weekdays.
"""
REACTOR_V2 = REACTOR_V1.replace("commissioned in 1987", "commissioned in 2004")


def real(path: Path) -> Path:
    assert path.exists(), (
        f"{path} is missing: the tests read Debian's packaged documentation "
        "(apt-get install valgrind shared-mime-info socat)"
    )
    return path


def markdown_readme() -> Path:
    """A real Markdown document: the long description of an installed package."""
    import markdown_it

    metadata = next(Path(markdown_it.__file__).parent.parent.glob("markdown_it_py-*.dist-info/METADATA"))
    return metadata


def doc(
    path: Path, *, document_id: str = "", media_type: str = "", data: bytes | None = None
) -> IncomingDocument:
    return IncomingDocument(
        document_id or str(path), str(path), "", media_type, data if data is not None else path.read_bytes()
    )


async def stream(documents: Iterable[IncomingDocument]) -> AsyncIterator[IncomingDocument]:
    for document in documents:
        yield document


def key(name: str) -> CollectionKey:
    return CollectionKey("test", "ada", name)


@pytest.fixture(scope="session")
def dense_embedder() -> Embedder:
    return Embedder(bundled("minilm"))


@pytest.fixture(scope="session")
def mpnet() -> Embedder:
    return Embedder(bundled("mpnet"))


@pytest.fixture
def retriever(tmp_path: Path, dense_embedder: Embedder, mpnet: Embedder) -> Retriever:
    """The service's own engine (its default settings), on a folder of this test's."""
    return Retriever(
        tmp_path / "index",
        dense_embedder,
        EmbedderReranker(mpnet),
        RetrieverSettings(),
        query_pool=BlockingPool(2, "test-query"),
        ingest_pool=BlockingPool(2, "test-ingest", nice=10),
    )


def test_each_format_gives_its_text_title_headings_and_offsets() -> None:
    html = parse(str(HTML), "", "", real(HTML).read_bytes())
    assert html.title == "Valgrind Frequently Asked Questions"
    assert "5. Miscellaneous" in [s.heading for s in html.sections]
    pdf = parse(str(PDF), "", "", real(PDF).read_bytes())
    assert pdf.sections[0].heading == "page 1" and len(pdf.sections) > 10
    assert "Shared MIME-info Database" in pdf.text
    text = parse(str(TEXT), "", "", real(TEXT).read_bytes())
    assert text.title == "FAQ" and "socat" in text.text.lower()
    md = parse("README.md", "", "text/markdown", markdown_readme().read_bytes())
    assert md.sections and all(s.heading for s in md.sections[1:])
    for parsed in (html, pdf, text, md):
        passages = split("doc", parsed)
        assert passages and all(parsed.text[p.start : p.end] == p.text for p in passages)
        assert all(len(p.text.split()) <= 80 for p in passages)
        assert len({p.passage_id for p in passages}) == len(passages)


async def test_bad_documents_get_their_own_error_and_the_rest_go_in(retriever: Retriever) -> None:
    good = real(TEXT)
    broken_pdf = real(PDF).read_bytes()[:5000]
    documents = [
        doc(good),
        doc(Path("junk.bin"), data=bytes(range(256)) * 40),
        doc(Path("empty.txt"), data=b"  \n\n \t"),
        doc(Path("latin1.txt"), data="Caf\xe9 au lait, s'il vous pla\xeet.".encode("latin-1")),
        doc(Path("huge.txt"), data=b"word " * (4 << 20)),
        doc(Path("broken.pdf"), data=broken_pdf),
        doc(Path("scan.html"), data=b"<html><body><img src=x></body></html>"),
        doc(Path("odd.doc"), media_type="application/msword", data=b"hello"),
    ]
    done = await retriever.ingest(key("bad"), stream(documents))
    errors = {Path(e.source).name: e.message for e in done.errors}
    assert done.documents == 1 and done.passages > 5
    assert errors == {
        "junk.bin": "it is binary, not text; send text, Markdown, HTML or PDF",
        "empty.txt": "it has no text",
        "latin1.txt": "it is not UTF-8 text (byte 0xe9 at offset 3); convert it to UTF-8",
        "huge.txt": "it is 20.0 MiB, over the 15 MiB a document may be; split it",
        "broken.pdf": "it is not a readable PDF (Stream has ended unexpectedly)",
        "scan.html": "it has no text",
        "odd.doc": "media type 'application/msword' is not one of text/plain, text/markdown, text/html, "
        "application/pdf",
    }
    found = await retriever.search(key("bad"), "What is socat?", SearchOptions(top_k=3))
    assert found.found and all(f.passage.source == str(good) for f in found.found)
    await retriever.close()


async def test_a_changed_document_replaces_its_passages_and_a_deleted_one_is_gone(
    retriever: Retriever,
) -> None:
    reactor = Path("facilities.md")
    context = [doc(real(TEXT)), doc(markdown_readme(), media_type="text/markdown")]
    first = await retriever.ingest(key("facts"), stream([*context, doc(reactor, data=REACTOR_V1.encode())]))
    assert first.documents == 3
    question = "When was the Zorblat reactor commissioned?"
    found = await retriever.search(key("facts"), question, SearchOptions(top_k=3))
    best = found.found[0].passage
    assert best.source == "facilities.md" and "1987" in best.text and best.heading == "The Zorblat reactor"
    old_ids = {
        f.passage.heading: f.passage.passage_id for f in found.found if f.passage.source == "facilities.md"
    }

    again = await retriever.ingest(key("facts"), stream([doc(reactor, data=REACTOR_V1.encode())]))
    assert (again.documents, again.unchanged, again.generation) == (0, 1, first.generation)

    edited = await retriever.ingest(key("facts"), stream([doc(reactor, data=REACTOR_V2.encode())]))
    assert edited.documents == 1 and edited.generation > first.generation
    for query in (question, "Zorblat reactor 1987", "visitor centre opening hours"):
        texts = [
            f.passage.text
            for f in (await retriever.search(key("facts"), query, SearchOptions(top_k=10))).found
        ]
        assert not any("1987" in t for t in texts)
    now = (await retriever.search(key("facts"), question, SearchOptions(top_k=3))).found
    assert "2004" in now[0].passage.text
    hours = (
        await retriever.search(key("facts"), "When is the visitor centre open?", SearchOptions(top_k=1))
    ).found
    assert hours[0].passage.passage_id == old_ids.get("Opening hours", hours[0].passage.passage_id)

    deleted = await retriever.delete(key("facts"), ["facilities.md"], False)
    assert deleted.documents == 1 and deleted.passages == 2
    for query in (question, "visitor centre opening hours"):
        found = await retriever.search(key("facts"), query, SearchOptions(top_k=10))
        assert all(f.passage.source != "facilities.md" for f in found.found)
    stats = await retriever.stats(key("facts"))
    assert stats.documents == 2 and stats.generation == deleted.generation
    await retriever.close()


async def test_a_search_sees_one_generation_never_a_mix(retriever: Retriever) -> None:
    """Searches run while a document is replaced again and again: every answer comes from one version."""

    def version(n: int) -> IncomingDocument:
        text = "\n\n".join(
            f"Section {i} of the handbook, edition {n}: the rules of room {i}." for i in range(30)
        )
        return doc(Path("handbook.txt"), data=text.encode())

    await retriever.ingest(key("swap"), stream([version(0)]))
    stop = asyncio.Event()
    seen: list[set[str]] = []

    async def search_on() -> None:
        while not stop.is_set():
            found = await retriever.search(
                key("swap"), "rules of the room", SearchOptions(top_k=10, rerank=False)
            )
            seen.append({f.passage.text.split("edition ")[1].split(":")[0] for f in found.found})

    searching = asyncio.create_task(search_on())
    for n in range(1, 6):
        await retriever.ingest(key("swap"), stream([version(n)]))
    stop.set()
    await searching
    assert len(seen) > 10 and all(len(editions) == 1 for editions in seen)
    assert len({edition for editions in seen for edition in editions}) >= 2  # it saw the swaps happen
    last = await retriever.search(key("swap"), "rules of the room", SearchOptions(top_k=10, rerank=False))
    assert {f.passage.text.split("edition ")[1].split(":")[0] for f in last.found} == {"5"}
    await retriever.close()


def test_the_sparse_engine_gives_rank_bm25s_scores() -> None:
    texts = []
    for path in sorted((DOCS / "valgrind/html").glob("*.html"))[:12]:
        parsed = parse(str(path), "", "", path.read_bytes())
        texts += [p.text for p in split(str(path), parsed)]
    corpus = [tokenize(t) for t in texts]
    assert len(corpus) > 300
    reference = RankBm25(corpus)
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        SparseBm25.build(corpus, Path(tmp))
        sparse = SparseBm25(Path(tmp), len(corpus))
        for query in (
            "memory leak definitely lost",
            "the the the of",  # common words, repeated: negative idf floored, each repetition counted
            "valgrind valgrind memcheck",
            "zzzunknownterm",
            "uninitialised value conditional jump",
        ):
            tokens = tokenize(query)
            assert np.allclose(sparse.scores(tokens), reference.scores(tokens), rtol=1e-5, atol=1e-5), query


async def test_past_the_training_size_the_index_is_ivf_pq_and_rescoring_matches_exact(
    tmp_path: Path, dense_embedder: Embedder
) -> None:
    """With a small IVF-PQ (16 lists, 16 centroids: 624 vectors train it), a collection of about
    a thousand passages is IVF-PQ; its re-scored results are the exact search's."""
    dense = DenseSettings(nlist=16, m=8, nbits=4, nprobe=16, rescore=200)
    retriever = Retriever(
        tmp_path,
        dense_embedder,
        None,
        RetrieverSettings(dense=dense),
        query_pool=BlockingPool(2, "q"),
        ingest_pool=BlockingPool(2, "i"),
    )
    small = await retriever.ingest(key("ivf"), stream([doc(real(TEXT))]))
    assert (await retriever.stats(key("ivf"))).dense_index.startswith("exact (flat)")
    files = sorted((DOCS / "valgrind/html").glob("*.html"))
    done = await retriever.ingest(key("ivf"), stream(doc(p) for p in files))
    stats = await retriever.stats(key("ivf"))
    assert small.passages + done.passages == stats.passages >= 624
    assert stats.dense_index == "IVF-PQ nlist=16 m=8 nbits=4, top 200 re-scored exactly"
    assert stats.bytes["dense"] > 0
    agree = 0
    queries = [
        "How do I suppress errors?",
        "What does definitely lost mean?",
        "Can Valgrind run on ARM?",
        "cache profiling with cachegrind",
        "thread errors in helgrind",
    ]
    for query in queries:
        exact = await retriever.search(key("ivf"), query, SearchOptions(top_k=5, keyword=False, exact=True))
        rescored = await retriever.search(key("ivf"), query, SearchOptions(top_k=5, keyword=False))
        agree += [f.passage.passage_id for f in exact.found] == [f.passage.passage_id for f in rescored.found]
    assert agree >= 4
    await retriever.close()


async def test_rerank_vectors_arrive_in_the_background_and_then_rerank(retriever: Retriever) -> None:
    done = await retriever.ingest(
        key("rerank"), stream([doc(real(TEXT)), doc(Path("facilities.md"), data=REACTOR_V1.encode())])
    )
    stats = await retriever.stats(key("rerank"))
    assert "still being computed" in stats.reranker
    before = await retriever.search(
        key("rerank"), "When was the Zorblat reactor commissioned?", SearchOptions(top_k=3)
    )
    assert all(f.stages.rerank == 0 for f in before.found)  # not reranked yet: the fused order stands
    async with asyncio.timeout(120):
        while "still being computed" in (stats := await retriever.stats(key("rerank"))).reranker:  # noqa: ASYNC110
            await asyncio.sleep(0.5)
    assert stats.generation == done.generation + 1 and stats.reranker == "all-mpnet-base-v2, 768-d"
    after = await retriever.search(
        key("rerank"), "When was the Zorblat reactor commissioned?", SearchOptions(top_k=3)
    )
    assert all(f.stages.rerank != 0 for f in after.found)
    assert after.found[0].passage.source == "facilities.md" and "rerank_ms" in after.timings_ms
    assert [f.score for f in after.found] == sorted((f.score for f in after.found), reverse=True)
    # A floor leaves out what is unlike the question before the reranker, which then runs on
    # what is left, or not at all.
    question = "When was the Zorblat reactor commissioned?"
    floored = await retriever.search(key("rerank"), question, SearchOptions(top_k=3, min_dense=0.4))
    assert floored.found and all(f.stages.dense >= 0.4 and f.stages.rerank != 0 for f in floored.found)
    assert len(floored.found) < len(after.found)
    small_talk = await retriever.search(
        key("rerank"), "Tell me a joke.", SearchOptions(top_k=3, min_dense=0.4)
    )
    assert small_talk.found == [] and "rerank_ms" not in small_talk.timings_ms
    await retriever.close()


def tiny_cross_encoder(folder: Path) -> Path:
    """A real (if untrained) BERT cross-encoder, exported to ONNX the way sentence-transformers does,
    with all-MiniLM-L6-v2's tokenizer: the rerank stage must load any such folder and rank by it."""
    import shutil

    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(7)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        num_labels=1,
    )
    model = BertForSequenceClassification(config).eval()
    ids = torch.ones(1, 8, dtype=torch.long)
    folder.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        model,
        (ids, ids, torch.zeros_like(ids)),
        str(folder / "model.onnx"),
        input_names=["input_ids", "attention_mask", "token_type_ids"],
        output_names=["logits"],
        dynamic_axes={
            n: {0: "batch", 1: "tokens"} for n in ("input_ids", "attention_mask", "token_type_ids")
        },
        opset_version=17,
        dynamo=False,
    )
    shutil.copy(bundled("minilm").tokenizer, folder / "tokenizer.json")
    return folder


async def test_a_cross_encoder_folder_reranks_by_its_own_scores(
    tmp_path: Path, dense_embedder: Embedder
) -> None:
    import onnxruntime as ort
    from tokenizers import Tokenizer

    folder = tiny_cross_encoder(tmp_path / "cross-encoder")
    retriever = Retriever(
        tmp_path / "index",
        dense_embedder,
        CrossEncoderReranker(folder),
        RetrieverSettings(rerank_candidates=10),
        query_pool=BlockingPool(2, "q"),
        ingest_pool=BlockingPool(2, "i"),
    )
    await retriever.ingest(key("cross"), stream([doc(real(TEXT))]))
    query = "How do I connect two sockets?"
    found = await retriever.search(key("cross"), query, SearchOptions(top_k=5))
    assert len(found.found) == 5 and "rerank_ms" in found.timings_ms
    # The scores are the model's own logits for each (query, passage) pair, computed apart here.
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    for f in found.found:
        e = tokenizer.encode(query, f.passage.text)
        logit = session.run(
            None,
            {
                "input_ids": np.array([e.ids]),
                "attention_mask": np.array([e.attention_mask]),
                "token_type_ids": np.array([e.type_ids]),
            },
        )[0]
        assert f.stages.rerank == pytest.approx(float(logit[0][0]), abs=1e-4)
        assert f.score == f.stages.rerank
    assert [f.score for f in found.found] == sorted((f.score for f in found.found), reverse=True)
    await retriever.close()


@pytest.mark.timeout(600)
async def test_searches_keep_their_latency_while_a_large_ingest_runs(retriever: Retriever) -> None:
    """Ingestion embeds and builds on threads of lower priority: searches of the same collection
    keep their P95 within twice what it is idle, while hundreds of passages go in."""
    await retriever.ingest(key("busy"), stream([doc(real(TEXT))]))
    queries = [
        "How do I use socat as a proxy?",
        "What is a socket?",
        "How do I forward a port?",
        "Can socat do SSL?",
    ]

    async def p95(count: int) -> float:
        times = []
        for n in range(count):
            started = time.perf_counter()
            await retriever.search(
                key("busy"), queries[n % len(queries)], SearchOptions(top_k=5, rerank=False)
            )
            times.append(time.perf_counter() - started)
            await asyncio.sleep(0.01)
        return float(np.percentile(times, 95))

    await p95(10)
    idle = await p95(60)
    files = sorted((DOCS / "valgrind/html").glob("*.html"))
    ingesting = asyncio.create_task(retriever.ingest(key("busy"), stream(doc(p) for p in files)))
    await asyncio.sleep(1.0)  # into the embedding
    busy = await p95(60)
    assert not ingesting.done(), "the ingest ended before the searches did: make it larger"
    done = await ingesting
    assert done.passages > 500
    assert busy <= 2 * max(idle, 0.005), (
        f"P95 {busy * 1000:.1f} ms while ingesting, {idle * 1000:.1f} ms idle"
    )
    await retriever.close()


def test_the_service_starts_from_its_settings(tmp_path: Path) -> None:
    engine = build_engine(RagSettings.load(index_dir=str(tmp_path)))
    assert engine.description == ("all-MiniLM-L6-v2 int8, 384-d", "all-mpnet-base-v2, 768-d")


def test_a_gzipped_changelog_is_not_taken_for_text() -> None:
    data = gzip.compress(b"some text")
    with pytest.raises(DocumentError, match="binary"):
        parse("changelog.gz", "", "", data)
