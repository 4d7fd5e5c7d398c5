"""Fault injection: `qadistill run` on a tiny grid is killed with SIGKILL at random moments, again and again; after
each kill every result that exists is whole (and so are the files it vouches for); a final clean rerun ends with
summary.csv, every predictions file and every weight file bit-identical to an uninterrupted run.

A kill can land anywhere: while a model loads, between two training steps, inside a checkpoint or model save,
between a result and the next stage, while the report is written. `QADISTILL_FAULT_KILLS` (default 10) and
`QADISTILL_FAULT_SEED` (default 16) change how many kills and where.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from robustness_support import CONSOLE_SCRIPT, OFFLINE_ENV, metrics_without_timing, qadistill
from safetensors import safe_open

from qadistill.experiments.config import load_config
from qadistill.experiments.plan import plan_experiment

pytestmark = pytest.mark.slow

KILLS = int(os.environ.get("QADISTILL_FAULT_KILLS", "10"))
SEED = int(os.environ.get("QADISTILL_FAULT_SEED", "16"))


def write_grid(folder: Path, model: Path) -> Path:
    """Teacher fine-tuning, a pruned student distilled (adaptive off-policy, a replay buffer) and fine-tuned, all
    checkpointing every step, so kills land in saves as often as between them."""
    config = {
        "name": "faults",
        "teachers": [{"name": "t", "model": str(model), "students": [{"name": "s", "prune": "half"}]}],
        "methods": [
            {"name": "srkl", "kind": "distill", "divergence": "srkl", "adaptive": True},
            {"name": "ft", "kind": "finetune"},
        ],
        "datasets": ["demo-en"],
        "shots": [0],
        "seeds": [0],
        "eval_splits": ["validation"],
        "data": {"splits": {"max_train": 16, "max_validation": 6, "max_test": 4}},
        "prompt": {"max_prompt_tokens": 96},
        "generation": {"batch_size": 6, "max_new_tokens": 3},
        "train": {"max_steps": 6, "batch_size": 2, "lr": 1.0e-3, "checkpoint_interval": 1, "eval_interval": 3,
                  "eval_examples": 4, "max_answer_tokens": 8},
        "distill": {"off_policy": {"max_new_tokens": 3, "capacity": 8, "init_threshold": 0.5}},
    }  # fmt: skip
    path = folder / "faults.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def assert_results_whole(run: Path, config: Path) -> int:
    """Every finished stage's result and what it vouches for are complete; returns how many stages are finished."""
    plan = plan_experiment(load_config(config))
    finished = 0
    for stage in plan.stages:
        if not stage.done(run):
            continue
        finished += 1
        folder = stage.folder(run)
        if stage.kind == "evaluate":
            metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
            lines = (folder / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
            assert len(lines) == metrics["total"], stage.id
            continue
        model = folder / "model"
        if stage.is_training:
            json.loads((folder / "train_result.json").read_text(encoding="utf-8"))
        json.loads((model / "config.json").read_text(encoding="utf-8"))
        with safe_open(str(model / "model.safetensors"), framework="pt") as weights:
            assert list(weights.keys()), stage.id
    return finished


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else -1


def files(run: Path, pattern: str) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob(pattern))}


def test_random_kills_then_a_clean_rerun_give_the_uninterrupted_outputs(pythia_dir: Path, tmp_path: Path):
    config = write_grid(tmp_path, pythia_dir)
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    started = time.monotonic()
    done = qadistill("run", config, "--out", reference, timeout=900)
    assert done.code == 0, done.stderr[-3000:]
    duration = time.monotonic() - started

    rng = random.Random(SEED)
    interrupted = []
    env = {**os.environ, **OFFLINE_ENV}
    for _ in range(KILLS):
        log_size = _size(killed / "run.log")
        proc = subprocess.Popen(
            [str(CONSOLE_SCRIPT), "run", str(config), "--out", str(killed)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
        )  # fmt: skip
        while proc.poll() is None and _size(killed / "run.log") == log_size:  # imports done, lock taken
            time.sleep(0.05)
        try:
            proc.wait(timeout=rng.uniform(0.0, duration / 4))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
            interrupted.append(assert_results_whole(killed, config))
        else:
            assert proc.returncode == 0
    assert interrupted, "no kill landed before the run finished"

    final = qadistill("run", config, "--out", killed, timeout=900)
    assert final.code == 0, final.stderr[-3000:]
    assert (killed / "report" / "summary.csv").read_bytes() == (reference / "report" / "summary.csv").read_bytes()
    for pattern in ("predictions.jsonl", "*.safetensors"):
        got, want = files(killed, pattern), files(reference, pattern)
        assert got.keys() == want.keys() and got == want, pattern
    for metrics in reference.rglob("metrics.json"):
        rel = metrics.parent.relative_to(reference)
        ours, theirs = (metrics_without_timing(r / rel) for r in (killed, reference))
        assert {k: v for k, v in ours.items() if k != "model_dir"} == {
            k: v for k, v in theirs.items() if k != "model_dir"
        }
    # nothing left behind: no temporary files, no checkpoint of a finished training
    assert not [p for p in killed.rglob("*") if p.name.endswith((".tmp", ".old", ".corrupt"))]
    assert not list(killed.rglob("checkpoint"))
    print(f"{len(interrupted)} of {KILLS} kills interrupted the run; finished stages at each: {interrupted}")
