"""A short fuzz run through every public RPC of every server (the long run is bench/fuzz.py):
random, mutated and wild inputs get a status with a message, never a crash, a hang, INTERNAL or
UNKNOWN. It is also the bench's smoke test."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_benches import run_bench

from voicemesh.common.components import COMPONENTS


@pytest.mark.timeout(900)
def test_fuzzed_inputs_get_clear_statuses_from_every_rpc(tmp_path: Path) -> None:
    report = run_bench("fuzz.py", tmp_path / "fuzz.json", "--inputs", "40", "--log-dir", str(tmp_path))
    assert report["failures"] == {}
    servers = {label.split()[0] for label in report["codes"]}
    assert servers == set(COMPONENTS)
    assert report["rpcs"] == 29 and report["calls"] == 29 * 40
    for label, codes in report["codes"].items():
        assert sum(codes.values()) == 40, label
        assert codes.get("INVALID_ARGUMENT", 0) > 0, (label, codes)  # the malformed ones were named
    for log in tmp_path.glob("*.log"):
        assert "Traceback" not in log.read_text(), log.name
