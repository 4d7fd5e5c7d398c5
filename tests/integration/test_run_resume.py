"""`qadistill run` killed in the middle of a training continues where it stopped when run again.

Tiny Pythia-architecture models with the real GPT-NeoX tokenizer, a small SQuAD v2-format file: the killed run,
resumed, must recompute no finished stage (result files untouched), resume the interrupted training from its
checkpoint, and end with the same summary.csv as an uninterrupted run in another folder.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from qadistill.experiments.config import RESOLVED_CONFIG, load_config
from qadistill.experiments.plan import plan_experiment
from qadistill.experiments.runner import RUN_LOG
from qadistill.study import run_study

REPO = Path(__file__).resolve().parents[2]
KILLED_STAGE = "squad_v2/0shot/tiny-teacher/tiny-half/srkl-adaptive/seed0/train"

pytestmark = pytest.mark.slow

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()


def write_squad_file(data_dir: Path) -> None:
    """A small SQuAD v2 file (8 articles, answerable and unanswerable questions) where `squad_v2` looks for it."""
    articles = []
    for a in range(8):
        paragraphs = []
        for p in range(2):
            town = WORDS[(a + p + 1) % len(WORDS)]
            context = f"The {WORDS[a]} river flows past {town} town. It is {a * 10 + p} miles long."
            qas = [
                {
                    "id": f"q{a}-{p}-0",
                    "question": f"Which town does the {WORDS[a]} river pass?",
                    "answers": [{"text": town, "answer_start": context.index(f"{town} town")}],
                    "is_impossible": False,
                },
                {"id": f"q{a}-{p}-1", "question": "Who built the bridge?", "answers": [], "is_impossible": True},
            ]
            paragraphs.append({"context": context, "qas": qas})
        articles.append({"title": f"Article {a}", "paragraphs": paragraphs})
    folder = data_dir / "squad_v2"
    folder.mkdir(parents=True)
    (folder / "dev-v2.0.labelled-half.json").write_text(json.dumps({"version": "v2.0", "data": articles}))


@pytest.fixture(scope="module")
def experiment(tmp_path_factory, neox_tokenizer_dir: Path) -> Path:
    """A config file using tiny saved models and the tiny data; returns its path."""
    from qadistill.models import build_tiny_model, load_real_tokenizer, save_model

    root = tmp_path_factory.mktemp("resume")
    tokenizer = load_real_tokenizer("pythia", neox_tokenizer_dir.parent)
    save_model(build_tiny_model("pythia", tokenizer, num_layers=4, hidden_size=32, num_heads=2), tokenizer, root / "t")
    write_squad_file(root / "data")
    config = {
        "name": "tiny",
        "teachers": [
            {
                "name": "tiny-teacher",
                "model": str(root / "t"),
                "train": {"max_steps": 3},
                "students": [{"name": "tiny-half", "prune": "half"}],
            }
        ],
        "methods": [
            # the stage that gets killed: long enough to be caught between checkpoints
            {
                "name": "srkl-adaptive",
                "kind": "distill",
                "divergence": "srkl",
                "adaptive": True,
                "train": {"max_steps": 12, "checkpoint_interval": 2},
            },
            {"name": "finetune", "kind": "finetune"},
        ],  # fmt: skip
        "datasets": ["squad_v2"],
        "shots": [0],
        "seeds": [0],
        "eval_splits": ["validation"],
        "data": {
            "data_dir": str(root / "data"),
            "splits": {"train": 0.5, "validation": 0.2, "test": 0.2, "demo_pool": 0.1},
        },
        "prompt": {"max_prompt_tokens": 64},
        "generation": {"batch_size": 8, "max_new_tokens": 4},
        "train": {
            "max_steps": 3,
            "batch_size": 2,
            "lr": 1e-3,
            "checkpoint_interval": 0,
            "eval_interval": 2,
            "eval_examples": 4,
            "max_answer_tokens": 6,
        },
        "distill": {"off_policy": {"max_new_tokens": 4, "capacity": 8}},
    }
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def cli_command(config: Path, out: Path) -> list[str]:
    """`qadistill run CONFIG --out OUT`, through the installed console script once `run` is registered in the
    CLI, else through the same command function mounted on a stand-in app."""

    exe = Path(sys.executable).with_name("qadistill")
    return [str(exe), "run", str(config), "--out", str(out)]


def results_mtimes(run_dir: Path, config: Path) -> dict[str, int]:
    plan = plan_experiment(load_config(config))
    return {s.id: s.result_path(run_dir).stat().st_mtime_ns for s in plan.stages if s.done(run_dir)}


def test_killed_run_resumes_without_recomputing(experiment: Path, tmp_path: Path) -> None:
    # reference: one uninterrupted run, in process
    reference = tmp_path / "reference"
    run_study(load_config(experiment), reference, progress=False, echo=lambda _: None)
    expected = (reference / "report" / "summary.csv").read_text(encoding="utf-8")

    # the same command, killed (SIGKILL, no chance to clean up) once the distillation has a checkpoint
    run_dir = tmp_path / "killed"
    stage_dir = run_dir / KILLED_STAGE
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(cli_command(experiment, run_dir), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 240
        while not (stage_dir / "checkpoint" / "state.json").is_file():
            assert proc.poll() is None, proc.stdout.read().decode(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "no checkpoint appeared"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=60)
    assert not (stage_dir / "train_result.json").exists(), "the training finished before it could be killed"
    checkpoint_step = json.loads((stage_dir / "checkpoint" / "state.json").read_text())["step"]
    assert 0 < checkpoint_step < 12
    before = results_mtimes(run_dir, experiment)
    assert "squad_v2/0shot/tiny-teacher/teacher/train" in before  # the teacher finished before the kill
    assert KILLED_STAGE not in before

    # run the same command again: it continues where it stopped
    done = subprocess.run(cli_command(experiment, run_dir), capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    after = results_mtimes(run_dir, experiment)
    assert set(after) == {s.id for s in plan_experiment(load_config(experiment)).stages}
    for stage_id, mtime in before.items():
        assert after[stage_id] == mtime, f"finished stage {stage_id} was recomputed"
    result = json.loads((stage_dir / "train_result.json").read_text())
    assert result["resumed"] is True and result["steps"] == 12
    assert not (stage_dir / "checkpoint").exists()  # a finished training's checkpoint is removed
    assert (run_dir / "report" / "summary.csv").read_text(encoding="utf-8") == expected
    assert "dataset" in done.stdout and "tiny-half" in done.stdout  # the summary table is printed
    assert (run_dir / RESOLVED_CONFIG).is_file()
    log = (run_dir / RUN_LOG).read_text(encoding="utf-8")
    assert f"stage {KILLED_STAGE} (distill) started" in log and "report written" in log

    # a third run has nothing left to do and rewrites no result
    again = subprocess.run(cli_command(experiment, run_dir), capture_output=True, text=True, env=env, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert results_mtimes(run_dir, experiment) == after


def test_changed_settings_do_not_reuse_finished_stages(experiment: Path, tmp_path: Path) -> None:
    """A finished stage computed with other settings is an error naming the stage, not a stale result."""
    from qadistill.errors import QADistillError

    run_dir = tmp_path / "run"
    config = load_config(experiment, ["seeds=[0]", "methods=[{name: finetune, kind: finetune}]"])
    run_study(config, run_dir, progress=False, echo=lambda _: None)
    changed = load_config(experiment, ["seeds=[0]", "methods=[{name: finetune, kind: finetune}]", "train.lr=0.5"])
    with pytest.raises(QADistillError, match=r"finished stage .*teacher/train was computed with other settings"):
        run_study(changed, run_dir, progress=False, echo=lambda _: None)
    # adding a seed keeps every finished stage valid
    mtimes = results_mtimes(run_dir, experiment)
    grown = load_config(experiment, ["seeds=[0, 1]", "methods=[{name: finetune, kind: finetune}]"])
    outcome = run_study(grown, run_dir, progress=False, echo=lambda _: None)
    assert set(outcome.ran) == {
        "squad_v2/0shot/tiny-teacher/teacher/seed1/eval/validation",  # the same teacher, the new seed's prompts
        "squad_v2/0shot/tiny-teacher/tiny-half/finetune/seed1/train",
        "squad_v2/0shot/tiny-teacher/tiny-half/finetune/seed1/eval/validation",
    }
    assert all(results_mtimes(run_dir, experiment)[k] == v for k, v in mtimes.items())
