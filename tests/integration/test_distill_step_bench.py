"""Smoke test of `benchmarks/distill_step.py`: tiny sizes, one timed step, the JSON shape and a sanity check.

Both sides see the same models, rows and divergence, so their first losses (before any update) must agree: that
checks that the benchmark compares the same computation, not only that it runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trl")

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "benchmarks" / "distill_step.py"
TINY = [
    "--synthetic-tokens",
    "--vocab", "512",
    "--batch-size", "2",
    "--prompt-len", "16",
    "--answer-len", "4",
    "--teacher-hidden", "32",
    "--teacher-layers", "1",
    "--teacher-heads", "2",
    "--student-hidden", "16",
    "--student-layers", "1",
    "--student-heads", "2",
    "--warmup", "1",
    "--steps", "1",
    "--threads", "1",
]  # fmt: skip


@pytest.mark.slow
def test_distill_step_benchmark_prints_one_json_line(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TMPDIR=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), *TINY],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stdout
    result = json.loads(lines[0])

    for side in ("qadistill", "trl"):
        data = result[side]
        for key in ("step_s", "tokens_per_s", "peak_rss_mb", "baseline_rss_mb", "peak_delta_mb", "cpu_s"):
            assert isinstance(data[key], int | float), (side, key)
        assert data["step_s"] > 0 and data["peak_rss_mb"] > 0
        assert data["tokens_per_step"] == 2 * (16 + 4)
        rounding = 0.5e-4 / data["step_s"]  # step_s is printed to 4 decimals; a tiny step is a few milliseconds
        assert data["tokens_per_s"] == pytest.approx(data["tokens_per_step"] / data["step_s"], rel=0.01 + rounding)
        assert len(data["step_times_s"]) == 1
        assert len(data["losses"]) == 2
        assert data["threads"] == 1
    assert result["trl"]["gradient_checkpointing"] is False

    ratio = result["ratio"]
    assert set(ratio["targets_met"]) == {"tokens_per_s_at_least_20x", "peak_rss_at_most_1_6"}
    # same models, rows and divergence (reverse KL = GKD beta 1): the loss before any update is the same number
    assert ratio["first_loss_rel_diff"] < 1e-4
    setup = result["setup"]
    assert setup["vocab"] == 512 and setup["shared_vocab"] == 512
    assert setup["tokenizer"].startswith("synthetic")
    assert "beta 1.0" in setup["divergence"]


def test_paired_ratios_pair_each_repeat_with_its_own_peer():
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        from distill_step import paired_ratios
    finally:
        sys.path.remove(str(SCRIPT.parent))
    ours = {"runs_step_s": [0.5, 0.4, 0.25]}
    trl = {"runs_step_s": [10.0, 6.0, 7.5]}  # ratios 20, 15, 30: median 20, where the medians' ratio is 7.5/0.4
    assert paired_ratios(ours, trl) == {"median": 20.0, "min": 15.0, "max": 30.0}
    assert paired_ratios({"step_s": 0.5}, {"step_s": 9.0}) is None  # one repeat: nothing to pair
