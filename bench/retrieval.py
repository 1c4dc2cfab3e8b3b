"""Retrieval quality and speed of the RAG service, on labelled questions among real distractors.

    python bench/retrieval.py [--sizes labelled,10000,100000] [--queries 0] [--answers 0]
                              [--rerank-up-to 20000] [--cache DIR] [--rebuild]

The labelled set is chatterbot-corpus's English conversations: each conversation's opening line is
a question, the line that answers it a passage (one document per distinct answer). Around them,
``--sizes`` gives how many passages the collection holds in all: the rest are real documentation,
the files of /usr/share/doc (HTML, text, READMEs, changelogs) split by the service itself.

For each size it starts a real RAG process on an index folder kept in ``--cache`` (built through
Ingest the first time, then reused while the corpus and settings are the same; ``--rebuild`` builds
it again) and asks every question over gRPC, once per configuration: BM25 alone, dense alone
(exact, IVF-PQ, IVF-PQ re-scored), both fused (reciprocal rank, weighted), fused then reranked; and
as a reference, all-mpnet-base-v2 scanning every passage exactly. It reports recall@5 and MRR@10,
the search's P50/P95 per stage (server timings) and over the wire, bytes per passage, ingestion's
passages per second, and how long a replica takes to open the index (in process, and a new
process until it serves). Writes bench/results/retrieval.json.

The rerank stage's vectors (all-mpnet-base-v2 over every passage, computed in the background at
ingestion) take hours past some 20,000 passages on 2 cores; a size above ``--rerank-up-to`` is built
and measured with the reranker off (``none``), and says so. What a reranked search costs does not
grow with the collection: it scores the 50 fused candidates' stored vectors.

Goals: hybrid + rerank ≥ the best single retriever + 5 points recall@5; IVF-PQ re-scored within 1
point of exact; Search P95 ≤ 50 ms at 100k passages without the reranker, ≤ 150 ms with it.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from voicemesh.common.components import RAG
from voicemesh.rpc.launcher import backend_channel, start_service, stop_processes, wait_serving
from voicemesh.rpc.launcher import service_env as env
from voicemesh.v1 import retrieval_pb2 as pb
from voicemesh.v1 import retrieval_pb2_grpc as pb_grpc

DOCS = Path("/usr/share/doc")
COLLECTION = pb.Collection(tenant="bench", user_id="", name="retrieval")
CONFIGS: dict[str, pb.SearchOptions] = {
    "bm25": pb.SearchOptions(skip_dense=True, skip_rerank=True),
    "dense exact": pb.SearchOptions(skip_keyword=True, skip_rerank=True, exact=True),
    "dense ivf-pq": pb.SearchOptions(skip_keyword=True, skip_rerank=True, skip_rescore=True),
    "dense ivf-pq + rescore": pb.SearchOptions(skip_keyword=True, skip_rerank=True),
    "hybrid rrf": pb.SearchOptions(skip_rerank=True, fusion=pb.FUSION_RECIPROCAL_RANK),
    "hybrid weighted": pb.SearchOptions(skip_rerank=True, fusion=pb.FUSION_WEIGHTED),
    "hybrid rrf + rerank": pb.SearchOptions(fusion=pb.FUSION_RECIPROCAL_RANK),
    "hybrid weighted + rerank": pb.SearchOptions(fusion=pb.FUSION_WEIGHTED),
}
STAGES = ("embed_ms", "dense_ms", "keyword_ms", "fusion_ms", "rerank_ms", "total_ms")


def labelled() -> tuple[list[str], list[str], dict[str, set[int]]]:
    """(answers, questions, question → indices of the answers that answer it)."""
    import chatterbot_corpus
    import yaml

    root = Path(chatterbot_corpus.__file__).parent / "data" / "english"
    answers: dict[str, int] = {}
    relevant: dict[str, set[int]] = {}
    for path in sorted(root.glob("*.yml")):
        for conversation in yaml.safe_load(path.read_text()).get("conversations", []):
            if len(conversation) < 2 or not all(isinstance(s, str) for s in conversation[:2]):
                continue
            question, answer = conversation[0].strip(), conversation[1].strip()
            if question and answer:
                index = answers.setdefault(answer, len(answers))
                relevant.setdefault(question, set()).add(index)
    return list(answers), list(relevant), relevant


def distractor_files() -> list[tuple[str, bytes, str]]:
    """(source, bytes, media type) of the documentation on this machine, in a fixed order."""
    found = []
    for path in sorted(DOCS.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        name, data = path.name, path.read_bytes()
        if name.endswith(".gz"):
            try:
                data = gzip.decompress(data)
            except (OSError, EOFError):
                continue
            name = name[:-3]
        lower = name.lower()
        if lower.endswith((".html", ".htm")):
            kind = "text/html"
        elif lower.endswith((".txt", ".md")) or lower.startswith(
            ("readme", "faq", "news", "changelog", "changes")
        ):
            kind = "text/markdown" if lower.endswith(".md") else "text/plain"
        else:
            continue
        found.append((str(path), data, kind))
    return found


def distractors(passages: int) -> list[pb.Document]:
    """Documentation files, in a fixed order, adding up to at most ``passages`` passages (counted as
    the service splits them, with its default passage length)."""
    from voicemesh.rag.documents import DocumentError, parse
    from voicemesh.rag.passages import split

    chosen: list[pb.Document] = []
    total = 0
    for source, data, kind in distractor_files() if passages > 0 else []:
        try:
            count = len(split(source, parse(source, "", kind, data)))
        except DocumentError:
            continue
        if total + count > passages:
            continue
        chosen.append(pb.Document(document_id=source, source=source, media_type=kind, data=data))
        total += count
        if total >= passages * 0.999:
            break
    return chosen


async def ingest(stub: Any, documents: list[pb.Document]) -> pb.IngestResponse:
    async def requests() -> Any:
        yield pb.IngestRequest(config=pb.IngestConfig(request_id="bench", collection=COLLECTION))
        for document in documents:
            yield pb.IngestRequest(document=document)

    response: pb.IngestResponse = await stub.Ingest(requests(), timeout=6 * 3600)
    return response


async def wait_reranked(stub: Any) -> pb.StatsResponse:
    while True:
        stats: pb.StatsResponse = await stub.Stats(pb.StatsRequest(collection=COLLECTION))
        if "still being computed" not in stats.reranker:
            return stats
        print(f"  {stats.reranker}", flush=True)
        await asyncio.sleep(30)


def kept_build(folder: Path, digest: str, rebuild: bool) -> dict[str, Any] | None:
    """What an earlier run built in ``folder`` for the same corpus; else the folder, emptied."""
    manifest = folder / "bench.json"
    if manifest.exists() and not rebuild:
        known = json.loads(manifest.read_text())
        if known.get("digest") == digest:
            return dict(known["build"])
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    return None


def rag_env(folder: Path, rerank: bool) -> dict[str, str]:
    settings: dict[str, Any] = {"index_dir": folder, "log_level": "WARNING"}
    if not rerank:
        settings["reranker"] = "none"
    return env("rag", **settings)


async def build(folder: Path, size: int, answers: list[str], rebuild: bool, rerank: bool) -> dict[str, Any]:
    """The index of ``size`` passages in ``folder`` (kept between runs), and how it was built."""
    answer_docs = [
        pb.Document(document_id=f"answer-{i}", source=f"chatterbot/{i}", title="", text=a)
        for i, a in enumerate(answers)
    ]
    digest = hashlib.sha256(json.dumps([size, answers, rerank]).encode()).hexdigest()
    if (known := kept_build(folder, digest, rebuild)) is not None:
        return known
    rag = await start_service(RAG, rag_env(folder, rerank), 300)
    try:
        async with backend_channel(rag.address) as channel:
            stub = pb_grpc.RetrievalServiceStub(channel)
            documents = answer_docs + distractors(size - len(answers))
            started = time.monotonic()
            done = await ingest(stub, documents)
            if done.errors:
                print(f"  {len(done.errors)} documents refused, e.g. {done.errors[0]}", flush=True)
            ingested_s = time.monotonic() - started
            stats = await wait_reranked(stub)
            built = {
                "passages": stats.passages,
                "documents": stats.documents,
                "ingest_passages_per_s": round(stats.passages / ingested_s, 1),
                "ingest_s": round(ingested_s, 1),
                "rerank_vectors_s": round(time.monotonic() - started - ingested_s, 1),
            }
    finally:
        await stop_processes([rag])
    (folder / "bench.json").write_text(json.dumps({"digest": digest, "build": built}))
    return built


def score(found: list[pb.Passage], relevant: set[int]) -> tuple[bool, float]:
    ids = [
        int(p.document_id.removeprefix("answer-")) if p.document_id.startswith("answer-") else -1
        for p in found
    ]
    hit5 = any(i in relevant for i in ids[:5])
    mrr = next((1 / rank for rank, i in enumerate(ids[:10], 1) if i in relevant), 0.0)
    return hit5, mrr


def pct(values: list[float]) -> dict[str, float]:
    array = np.array(values) if values else np.zeros(1)
    return {
        "p50": round(float(np.percentile(array, 50)), 2),
        "p95": round(float(np.percentile(array, 95)), 2),
    }


async def measure(
    address: str, questions: list[str], relevant: dict[str, set[int]], configs: dict[str, Any]
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with backend_channel(address) as channel:
        stub = pb_grpc.RetrievalServiceStub(channel)
        for name, options in configs.items():
            hits, mrrs, wire = [], [], []
            stages: dict[str, list[float]] = {stage: [] for stage in STAGES}
            for question in questions:
                started = time.perf_counter()
                reply = await stub.Search(
                    pb.SearchRequest(query=question, top_k=10, collection=COLLECTION, options=options),
                    timeout=30,
                )
                wire.append((time.perf_counter() - started) * 1000)
                hit, mrr = score(list(reply.passages), relevant[question])
                hits.append(hit)
                mrrs.append(mrr)
                for stage in STAGES:
                    stages[stage].append(getattr(reply.timings, stage))
            results[name] = {
                "recall_at_5": round(100 * float(np.mean(hits)), 1),
                "mrr_at_10": round(100 * float(np.mean(mrrs)), 1),
                "wire_ms": pct(wire),
                **{stage: pct(v) for stage, v in stages.items() if any(v)},
            }
            row = results[name]
            print(
                f"  {name:<26} R@5 {row['recall_at_5']:5.1f}  MRR@10 {row['mrr_at_10']:5.1f}  "
                f"server P50 {row['total_ms']['p50']:6.1f} P95 {row['total_ms']['p95']:6.1f} ms",
                flush=True,
            )
    return results


def mpnet_reference(folder: Path, questions: list[str], relevant: dict[str, set[int]]) -> dict[str, float]:
    """all-mpnet-base-v2 over every passage, exactly: what the reranker's model does as a retriever."""
    import sqlite3

    from voicemesh.rag.embedding import Embedder, bundled

    collection = next(p for p in folder.glob("*/CURRENT"))
    generation = collection.parent / collection.read_text().strip()
    meta = json.loads((generation / "meta.json").read_text())
    vectors = (
        np.fromfile(generation / "rerank.f16", dtype=np.float16)
        .reshape(meta["passages"], -1)
        .astype(np.float32)
    )
    with sqlite3.connect(generation / "passages.sqlite") as db:
        documents = [d for (d,) in db.execute("SELECT document_id FROM passages ORDER BY row")]
    queries = Embedder(bundled("mpnet")).embed(questions)
    hits, mrrs = [], []
    for question, query in zip(questions, queries, strict=True):
        order = np.argsort(-(vectors @ query))[:10]
        found = [pb.Passage(document_id=documents[i]) for i in order]
        hit, mrr = score(found, relevant[question])
        hits.append(hit)
        mrrs.append(mrr)
    return {
        "recall_at_5": round(100 * float(np.mean(hits)), 1),
        "mrr_at_10": round(100 * float(np.mean(mrrs)), 1),
    }


async def start_times(folder: Path, question: str, rerank: bool) -> dict[str, float]:
    """A replica on an existing index: a new process until SERVING, and its first search."""
    started = time.monotonic()
    rag = await start_service(RAG, rag_env(folder, rerank), 300)
    try:
        await wait_serving(rag.address, 120)
        serving = time.monotonic() - started
        async with backend_channel(rag.address) as channel:
            stub = pb_grpc.RetrievalServiceStub(channel)
            first = time.monotonic()
            await stub.Search(pb.SearchRequest(query=question, collection=COLLECTION), timeout=60)
            first_search = time.monotonic() - first
    finally:
        await stop_processes([rag])
    opened = open_generation_s(folder)
    return {
        "process_to_serving_s": round(serving, 2),
        "first_search_s": round(first_search, 3),
        "open_index_s": opened,
    }


def open_generation_s(folder: Path) -> float:
    from voicemesh.rag.generation import Generation

    pointer = next(p for p in folder.glob("*/CURRENT"))
    started = time.perf_counter()
    Generation(pointer.parent / pointer.read_text().strip())
    return round(time.perf_counter() - started, 4)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="labelled,10000,100000")
    parser.add_argument("--queries", type=int, default=0, help="questions asked per configuration (0: all)")
    parser.add_argument(
        "--cache", type=Path, default=Path.home() / ".cache" / "voicemesh-bench" / "retrieval"
    )
    parser.add_argument("--answers", type=int, default=0, help="labelled answers kept (0: all)")
    parser.add_argument(
        "--rerank-up-to", type=int, default=20000, help="larger sizes run with the reranker off"
    )
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "retrieval.json")
    args = parser.parse_args()
    answers, questions, relevant = labelled()
    if args.answers:  # a smaller labelled set: the first answers, and the questions they answer
        answers = answers[: args.answers]
        relevant = {q: {i for i in r if i < args.answers} for q, r in relevant.items()}
        relevant = {q: r for q, r in relevant.items() if r}
        questions = [q for q in questions if q in relevant]
    if args.queries:
        questions = questions[:: max(1, len(questions) // args.queries)][: args.queries]
    print(f"{len(answers)} answers, {len(questions)} questions")
    report: dict[str, Any] = {"answers": len(answers), "questions": len(questions), "sizes": {}}
    for size_name in args.sizes.split(","):
        size = len(answers) if size_name == "labelled" else int(size_name)
        folder = args.cache / f"{size}"
        print(f"{size} passages", flush=True)
        rerank = size <= args.rerank_up_to
        built = await build(folder, size, answers, args.rebuild, rerank)
        rag = await start_service(RAG, rag_env(folder, rerank), 300)
        try:
            async with backend_channel(rag.address) as channel:
                stats = await pb_grpc.RetrievalServiceStub(channel).Stats(
                    pb.StatsRequest(collection=COLLECTION)
                )
            configs = dict(CONFIGS)
            if not stats.dense_index.startswith("IVF-PQ"):
                configs = {k: v for k, v in configs.items() if "ivf-pq" not in k}
            if not rerank:
                configs = {k: v for k, v in configs.items() if "rerank" not in k}
            results = await measure(rag.address, questions, relevant, configs)
        finally:
            await stop_processes([rag])
        if rerank:  # its vectors are the rerank stage's
            results["mpnet exact (reference)"] = mpnet_reference(folder, questions, relevant)
            reference = results["mpnet exact (reference)"]["recall_at_5"]
            print(f"  {'mpnet exact (reference)':<26} R@5 {reference:5.1f}")
        per_passage = {part: round(b / max(stats.passages, 1), 1) for part, b in stats.bytes.items()}
        report["sizes"][str(size)] = {
            "build": built,
            "dense_index": stats.dense_index,
            "keyword_index": stats.keyword_index,
            "embedder": stats.embedder,
            "reranker": stats.reranker,
            "bytes_per_passage": per_passage,
            "start": await start_times(folder, questions[0], rerank),
            "results": results,
        }
    print_table(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


def print_table(report: dict[str, Any]) -> None:
    for size, entry in report["sizes"].items():
        print(f"\n{size} passages — {entry['dense_index']}; {entry['keyword_index']}")
        print(f"{'configuration':<28}{'R@5':>6}{'MRR@10':>8}{'P50 ms':>8}{'P95 ms':>8}")
        for name, row in entry["results"].items():
            total = row.get("total_ms", {})
            print(
                f"{name:<28}{row['recall_at_5']:6.1f}{row['mrr_at_10']:8.1f}"
                f"{total.get('p50', float('nan')):8.1f}{total.get('p95', float('nan')):8.1f}"
            )
        print(f"bytes per passage: {entry['bytes_per_passage']}")
        print(f"ingest: {entry['build']}; start: {entry['start']}")


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    asyncio.run(main())
    sys.exit(0)
