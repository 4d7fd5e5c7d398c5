"""`launcher:` runs each training stage of `qadistill run` in processes of its own (as under accelerate launch),
with the same results as running it in process."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml
from test_run_resume import write_squad_file  # tests/integration is on sys.path (rootdir-less test modules)

from qadistill.experiments.config import load_config
from qadistill.study import run_study

pytestmark = pytest.mark.slow


def _config(root: Path, model: Path, launcher: str | None) -> Path:
    config = {
        "name": "launch",
        "teachers": [{"name": "t", "model": str(model), "students": [{"name": "s", "prune": "half"}]}],
        "methods": [{"name": "srkl", "kind": "distill", "divergence": "srkl", "adaptive": False}],
        "datasets": ["squad_v2"],
        "shots": [0],
        "seeds": [0],
        "eval_splits": ["validation"],
        "data": {"data_dir": str(root / "data"), "splits": {"train": 0.5, "validation": 0.2, "test": 0.2,
                                                            "demo_pool": 0.1}},
        "prompt": {"max_prompt_tokens": 64},
        "generation": {"batch_size": 8, "max_new_tokens": 4},
        "train": {"max_steps": 2, "batch_size": 2, "lr": 1e-3, "checkpoint_interval": 0, "eval_interval": 0,
                  "max_answer_tokens": 6},
        "launcher": launcher,
    }  # fmt: skip
    path = root / f"{'launched' if launcher else 'inprocess'}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def test_launched_trainings_match_in_process_ones(tmp_path: Path, neox_tokenizer_dir: Path) -> None:
    from qadistill.models import build_tiny_model, load_real_tokenizer, save_model

    tokenizer = load_real_tokenizer("pythia", neox_tokenizer_dir.parent)
    model = tmp_path / "model"
    save_model(build_tiny_model("pythia", tokenizer, num_layers=4, hidden_size=32, num_heads=2), tokenizer, model)
    write_squad_file(tmp_path / "data")

    summaries = {}
    for launcher in (None, sys.executable):
        out = tmp_path / ("launched" if launcher else "inprocess")
        run_study(load_config(_config(tmp_path, model, launcher)), out, progress=False, echo=lambda _: None)
        summaries[launcher] = (out / "report" / "summary.csv").read_text(encoding="utf-8")
    launched = tmp_path / "launched"
    assert len(list(launched.rglob("launch_job.yaml"))) == 2  # the teacher's and the student's training
    assert not list((tmp_path / "inprocess").rglob("launch_job.yaml"))
    assert summaries[None] == summaries[sys.executable]
