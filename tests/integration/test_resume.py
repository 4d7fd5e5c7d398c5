"""Resuming after a crash gives the same run: the same loss log and bitwise-equal final weights (CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from training_support import Crash, crash_at, tiny_pythia_pair

from qadistill.errors import QADistillError
from qadistill.train.config import DistillJob, FinetuneJob
from qadistill.train.distill import run_distill
from qadistill.train.finetune import run_finetune

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pythia(shared_data: Path, tmp_path_factory) -> dict[str, Path]:
    return tiny_pythia_pair(shared_data / "tokenizers", tmp_path_factory.mktemp("resume-models"), teacher_layers=2)


def common(out: Path, data_dir: Path, train: dict) -> dict:
    return {
        "out_dir": out,
        "data": {"dataset": "squad_v2", "data_dir": data_dir, "splits": {"max_train": 12}},
        "prompt": {"max_prompt_tokens": 96},
        "train": {"batch_size": 4, "lr": 3e-3, "warmup_steps": 2, "eval_examples": 4} | train,
    }


def loss_log(out: Path) -> list[dict]:
    """The log without wall-clock fields."""
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "train_seconds"} for r in rows]


def assert_same_weights(a: Path, b: Path) -> None:
    wa, wb = load_file(a / "model" / "model.safetensors"), load_file(b / "model" / "model.safetensors")
    assert wa.keys() == wb.keys()
    for name in wa:
        assert torch.equal(wa[name], wb[name]), name


def test_finetune_resume_is_bitwise_identical(pythia, shared_data, tmp_path):
    train = {"max_steps": 7, "grad_accum": 2, "checkpoint_interval": 3, "eval_interval": 2}
    straight = FinetuneJob(model=str(pythia["student"]), **common(tmp_path / "straight", shared_data, train))
    run_finetune(straight, progress=False)

    job = straight.model_copy(update={"out_dir": tmp_path / "crashed"})
    with pytest.raises(Crash):
        run_finetune(job, progress=False, on_step=crash_at(5))  # last checkpoint: step 3
    assert json.loads((tmp_path / "crashed" / "checkpoint" / "state.json").read_text())["step"] == 3
    result = run_finetune(job.model_copy(update={"resume": True}), progress=False)

    assert result["resumed"] and result["steps"] == 7
    assert loss_log(tmp_path / "crashed") == loss_log(tmp_path / "straight")
    assert_same_weights(tmp_path / "crashed", tmp_path / "straight")


def test_lora_finetune_resume_is_bitwise_identical(pythia, shared_data, tmp_path):
    lora = {"enabled": True, "r": 4, "alpha": 8, "dropout": 0.1}  # dropout: the RNG state must be restored too
    train = {"max_steps": 4, "checkpoint_interval": 2, "eval_interval": 0, "lora": lora}
    straight = FinetuneJob(model=str(pythia["student"]), **common(tmp_path / "straight", shared_data, train))
    run_finetune(straight, progress=False)
    job = straight.model_copy(update={"out_dir": tmp_path / "crashed"})
    with pytest.raises(Crash):
        run_finetune(job, progress=False, on_step=crash_at(3))
    run_finetune(job.model_copy(update={"resume": True}), progress=False)
    assert loss_log(tmp_path / "crashed") == loss_log(tmp_path / "straight")
    assert_same_weights(tmp_path / "crashed", tmp_path / "straight")


def test_distill_resume_with_off_policy_state_is_identical(pythia, shared_data, tmp_path):
    """Fresh samples, replays, the threshold and the buffer all continue as if nothing had happened."""
    train = {"max_steps": 8, "checkpoint_interval": 4, "eval_interval": 2}
    off_policy = {"init_threshold": 1.0, "replay_ratio": "constant", "capacity": 6, "max_new_tokens": 5}
    settings = common(tmp_path / "straight", shared_data, train) | {"distill": {"off_policy": off_policy}}
    straight = DistillJob(teacher=str(pythia["teacher"]), student=str(pythia["student"]), **settings)
    expected = run_distill(straight, progress=False)
    assert expected["step_kinds"]["fresh_student"] > 0 and expected["step_kinds"]["replay"] > 0
    after = [r["kinds"] for r in loss_log(tmp_path / "straight") if r["type"] == "train" and r["step"] > 4]
    assert any("fresh_student" in kinds for kinds in after)  # sampling after the checkpoint: torch RNG matters

    job = straight.model_copy(update={"out_dir": tmp_path / "crashed"})
    with pytest.raises(Crash):
        run_distill(job, progress=False, on_step=crash_at(6))
    assert len(json.loads((tmp_path / "crashed" / "checkpoint" / "replay.json").read_text())) <= 6
    result = run_distill(job.model_copy(update={"resume": True}), progress=False)

    assert result["resumed"]
    assert result["step_kinds"] == expected["step_kinds"]
    assert result["final_threshold"] == expected["final_threshold"]
    assert loss_log(tmp_path / "crashed") == loss_log(tmp_path / "straight")
    assert_same_weights(tmp_path / "crashed", tmp_path / "straight")


def test_resume_checks_settings_and_finished_runs(pythia, shared_data, tmp_path):
    train = {"max_steps": 3, "checkpoint_interval": 1, "eval_interval": 0}
    job = FinetuneJob(model=str(pythia["student"]), **common(tmp_path / "run", shared_data, train))
    with pytest.raises(Crash):
        run_finetune(job, progress=False, on_step=crash_at(2))
    changed = job.model_copy(update={"resume": True, "seed": 1})
    with pytest.raises(QADistillError, match="other settings"):
        run_finetune(changed, progress=False)

    first = run_finetune(job.model_copy(update={"resume": True}), progress=False)
    again = run_finetune(job.model_copy(update={"resume": True}), progress=False)  # finished: nothing to do
    assert again == first

    no_checkpoints = job.model_copy(update={"train": job.train.model_copy(update={"checkpoint_interval": 0})})
    with pytest.raises(Crash):  # a fresh run (no resume) discards the old checkpoint before training
        run_finetune(no_checkpoints, progress=False, on_step=crash_at(1))
    assert not (tmp_path / "run" / "checkpoint").exists()
