"""Numerical faults through `qadistill finetune`: a NaN / Inf loss stops the run naming the step and keeps the last
good checkpoint (or, with `train.nan_policy=skip`, skips that step); NaN weights are never written, neither as a
checkpoint nor as the final model.

The library loops' NaN handling is tested in `tests/integration/test_finetune.py`; here the faults are a real
blow-up (learning rate 1e30) and injected ones, seen as a user sees them: exit status, one line, the files left.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from robustness_support import FINETUNE_ARGS, FINETUNE_OVERRIDES, assert_one_line_error
from safetensors.torch import load_file

from qadistill.errors import QADistillError
from qadistill.models import build_tiny_model, load_model, save_model

VOCAB_ROWS = 50304  # the tiny Pythia's LM head (the real Pythia embedding size)


def finetune(cli, model: Path, out: Path, max_steps: int, *extra: str, lr: str = "1e-3"):
    args = ["finetune", "--model", model, "--out", out, "--max-steps", str(max_steps), *FINETUNE_ARGS]
    return cli(*args, "--lr", lr, *FINETUNE_OVERRIDES, *extra)


def train_records(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if line.strip()]
    return [r for r in rows if r["type"] == "train"]


def all_finite(tensors: dict[str, torch.Tensor]) -> bool:
    return all(torch.isfinite(t).all() for t in tensors.values())


def test_exploding_learning_rate_stops_naming_the_step_and_keeps_the_last_good_checkpoint(
    cli, pythia_dir: Path, tmp_path: Path
):
    """lr=1e30: step 1 is finite but throws the weights to ~1e30, so the next loss is NaN."""
    out = tmp_path / "run"
    result = finetune(cli, pythia_dir, out, 4, "train.checkpoint_interval=1", lr="1e30")
    line = assert_one_line_error(result, "training stopped without saving the model", "train.nan_policy=skip")
    match = re.match(
        r"error: the loss is nan at step (\d+); .* the last good checkpoint (\S+) \(step (\d+)\) is kept", line
    )
    assert match, line
    step, folder, kept = int(match[1]), Path(match[2]), int(match[3])
    assert folder == out / "checkpoint" and kept == step - 1
    assert json.loads((folder / "state.json").read_text())["step"] == kept
    assert all_finite(load_file(folder / "trainable.safetensors"))
    assert [r["step"] for r in train_records(out)] == list(range(1, step))
    assert not (out / "model").exists() and not (out / "train_result.json").exists()


def test_skip_policy_skips_the_non_finite_step_and_finishes(cli, pythia_dir: Path, tmp_path: Path):
    calls = {"n": 0}

    def nan_on_second_training_forward(module, _inputs, output):
        if isinstance(module, torch.nn.Linear) and module.out_features == VOCAB_ROWS and torch.is_grad_enabled():
            calls["n"] += 1
            return output * float("nan") if calls["n"] == 2 else None
        return None

    out = tmp_path / "run"
    handle = torch.nn.modules.module.register_module_forward_hook(nan_on_second_training_forward)
    try:
        result = finetune(cli, pythia_dir, out, 4, "train.nan_policy=skip")
    finally:
        handle.remove()
    assert result.code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["steps"] == 4 and summary["skipped_steps"] == 1
    records = train_records(out)
    assert [(r["skipped"], r["loss"] is None) for r in records] == [(False, False), (True, True)] + [(False, False)] * 2
    assert all_finite(load_file(out / "model" / "model.safetensors"))


def poison_weights_after_step(monkeypatch, step: int) -> None:
    """The optimizer of the next run writes NaN into one weight right after its `step`-th update."""
    import qadistill.train.setup as setup_module

    real = setup_module.build_optimizer

    def build_optimizer(model, cfg, device=None):
        optimizer = real(model, cfg, device)
        update, calls = optimizer.step, {"n": 0}

        def poisoned_step(*args, **kwargs):
            result = update(*args, **kwargs)
            calls["n"] += 1
            if calls["n"] == step:
                with torch.no_grad():
                    optimizer.param_groups[0]["params"][0].fill_(float("nan"))
            return result

        optimizer.step = poisoned_step
        return optimizer

    monkeypatch.setattr(setup_module, "build_optimizer", build_optimizer)


def test_nan_weights_are_never_saved_as_the_model(cli, pythia_dir: Path, tmp_path: Path, monkeypatch):
    """With nan_policy=skip the run reaches the end with NaN weights: the model is refused, nothing is written."""
    poison_weights_after_step(monkeypatch, 2)
    out = tmp_path / "run"
    result = finetune(cli, pythia_dir, out, 4, "train.nan_policy=skip", "train.checkpoint_interval=0")
    assert_one_line_error(result, "has NaN or Inf values; refusing to save it to", out / "model")
    assert [r["skipped"] for r in train_records(out)] == [False, False, True, True]
    assert not (out / "model").exists() and not (out / "train_result.json").exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".model.")]  # no temp folder either


def test_nan_weights_are_never_saved_as_a_checkpoint(cli, pythia_dir: Path, tmp_path: Path, monkeypatch):
    poison_weights_after_step(monkeypatch, 2)
    out = tmp_path / "run"
    result = finetune(cli, pythia_dir, out, 4, "train.checkpoint_interval=1")
    assert_one_line_error(result, "has NaN or Inf values; refusing to write a checkpoint to", out / "checkpoint")
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["step"] == 1  # the last good checkpoint is still there, whole
    assert all_finite(load_file(out / "checkpoint" / "trainable.safetensors"))
    assert not (out / "model").exists()


def test_save_model_refusing_nan_keeps_the_previous_model(tmp_path: Path):
    good = build_tiny_model("pythia", hidden_size=16, num_layers=1, num_heads=2, vocab_size=64, seed=0)
    folder = save_model(good, None, tmp_path / "model")
    bad = build_tiny_model("pythia", hidden_size=16, num_layers=1, num_heads=2, vocab_size=64, seed=1)
    with torch.no_grad():
        bad.lm_head.weight[3, 5] = float("inf")
    with pytest.raises(QADistillError, match=r"^model weight 'lm_head.weight' has NaN or Inf values; refusing"):
        save_model(bad, None, folder)
    reloaded, expected = load_model(folder).state_dict(), good.state_dict()
    assert reloaded.keys() == expected.keys() and all(torch.equal(reloaded[k], expected[k]) for k in expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_learning_rate_beyond_float32_is_a_config_error(cli, pythia_dir: Path, tmp_path: Path):
    result = finetune(cli, pythia_dir, tmp_path / "run", 2, lr="1e39")
    assert_one_line_error(result, "train.lr")
