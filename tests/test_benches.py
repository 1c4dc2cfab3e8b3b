"""Every bench still runs: a tiny run of each, as the README runs it, must finish and write its JSON.

The numbers of these runs mean nothing (the runs are far too small); the point is that no change to
the mesh breaks a bench unseen.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def run_bench(script: str, out: Path, *args: str, timeout_s: float = 600) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, str(BENCH / script), *args, "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report: dict[str, Any] = json.loads(out.read_text())
    return report


@pytest.mark.timeout(600)
def test_latency_bench(tmp_path: Path) -> None:
    report = run_bench(
        "latency.py",
        tmp_path / "latency.json",
        *("--turns", "2", "--preemptive", "on", "--retrieval", "both", "--cache-hits", "1", "--no-peers"),
        *("--endpointing", "both"),
    )
    assert set(report["runs"]) == {
        f"{mode} endpointing, preemptive on, retrieval {retrieval}"
        for mode in ("semantic", "fixed")
        for retrieval in ("on", "off")
    }
    assert {"retrieval_costs_s", "semantic_saves_s", "cache_hits"} <= set(report)


@pytest.mark.timeout(600)
def test_crowd_bench(tmp_path: Path) -> None:
    report = run_bench(
        "crowd.py", tmp_path / "crowd.json", "--talkers", "2", "--seconds", "8", "--interrupt", "on"
    )
    (run,) = report["runs"]
    (level,) = run["levels"]
    assert run["interrupt"] and level["talkers"] == 2 and level["turns"] >= 1
    assert not run["error_lines"] and not run["internal"], (run["error_lines"], run["internal"])


@pytest.mark.timeout(300)
def test_load_bench(tmp_path: Path) -> None:
    report = run_bench("load.py", tmp_path / "load.json", "--levels", "4", "--seconds", "1")
    assert [level["streams"] for level in report["levels"]] == [4]


@pytest.mark.timeout(300)
def test_stores_bench(tmp_path: Path) -> None:
    report = run_bench("stores.py", tmp_path / "stores.json", "--ops", "20", "--turns", "40")
    assert len(report["sessions"]) == 3 and len(report["history"]) == 2


@pytest.mark.timeout(600)
def test_stream_memory_bench(tmp_path: Path) -> None:
    report = run_bench(
        "stream_memory.py", tmp_path / "stream_memory.json", "--streams", "2", "--slow-readers", "1"
    )
    assert report


@pytest.mark.timeout(600)
def test_wakeword_bench(tmp_path: Path) -> None:
    report = run_bench("wakeword.py", tmp_path / "wakeword.json", "--minutes", "0.2")
    assert "vad_rtf_one_core" in report and "per_stream_kib" in report


@pytest.mark.timeout(600)
def test_chaos_bench(tmp_path: Path) -> None:
    report = run_bench(
        "chaos.py",
        tmp_path / "chaos.json",
        "--talkers",
        "1",
        "--seconds",
        "14",
        "--period",
        "6",
        "--events",
        "stt,redis",
    )
    assert report["served"] >= 1 and "lost" in report and "error_lines" in report
    assert set(report["failed_during"]) == set(report["down_s"]) == set(report["recovery_s"])


@pytest.mark.timeout(600)
def test_retrieval_bench(tmp_path: Path) -> None:
    report = run_bench(
        "retrieval.py",
        tmp_path / "retrieval.json",
        *("--sizes", "labelled,400", "--answers", "60", "--queries", "10", "--cache", str(tmp_path / "c")),
    )
    assert set(report["sizes"]) == {"60", "400"}
    for entry in report["sizes"].values():
        configs = {"bm25", "dense exact", "hybrid rrf + rerank", "mpnet exact (reference)"}
        assert configs <= set(entry["results"])
        assert entry["build"]["passages"] >= 60 and entry["bytes_per_passage"]


@pytest.mark.timeout(300)
def test_speaker_bench(tmp_path: Path) -> None:
    report = run_bench(
        "speaker.py", tmp_path / "speaker.json", "--speakers", "3", "--tests", "1", "--turns", "1"
    )
    assert report["separation"]["speakers"] == 3 and 0 <= report["separation"]["eer"] <= 1
    assert len(report["critical_path"]) == 2


@pytest.mark.timeout(600)
def test_wer_bench(tmp_path: Path) -> None:
    report = run_bench(
        "wer.py", tmp_path / "wer.json", *("--sentences", "1", "--recorded", "1", "--concurrency", "3")
    )
    rows = report["wer_percent"]
    assert set(rows) == {"recorded", "clean", "noise", "pauses", "wake", "all"}
    assert set(rows["all"]) == {
        "direct (beam 5)",
        "direct greedy",
        "mesh semantic",
        "mesh fixed",
        "mesh edge",
    }


def test_recorded_speech_fetch(tmp_path: Path) -> None:
    """`python bench/recorded.py fetch`, as make install runs it: here the corpus is already in the
    venv, so the run must finish at once, and its index must name every clip with its words."""
    result = subprocess.run(
        [sys.executable, str(BENCH / "recorded.py"), "fetch"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "recorded speech: 14 clips" in result.stdout
    index = json.loads((Path(sys.prefix) / "share/voicemesh/recorded-speech/clips.json").read_text())
    assert len(index) == 14 and all(clip["text"] and clip["source"] for clip in index)
