"""Fine-tuning end to end on tiny Pythia and Qwen2.5 models with the real tokenizers and real SQuAD v2 questions."""

from __future__ import annotations

import json
import math
import signal
from pathlib import Path

import pytest
import torch
import typer
from safetensors.torch import load_file
from typer.testing import CliRunner

from qadistill.cli import finetune as finetune_command
from qadistill.errors import QADistillError
from qadistill.models import build_tiny_model, load_real_tokenizer, save_model
from qadistill.train.config import FinetuneJob
from qadistill.train.finetune import run_finetune
from qadistill.train.signals import NonFiniteLoss, TrainingInterrupted, graceful_stop

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny_models(shared_data: Path, tmp_path_factory) -> dict[str, Path]:
    """Saved tiny Pythia and Qwen2.5 model folders (random weights, real tokenizers)."""
    root = tmp_path_factory.mktemp("tiny")
    folders = {}
    for family in ("pythia", "qwen2.5"):
        tokenizer = load_real_tokenizer(family, shared_data / "tokenizers")
        model = build_tiny_model(family, tokenizer, hidden_size=64, num_layers=2, num_heads=4, seed=0)
        folders[family] = save_model(model, tokenizer, root / family)
    return folders


def make_job(model: Path, out: Path, data_dir: Path, **train) -> FinetuneJob:
    settings = {"max_steps": 8, "batch_size": 4, "lr": 3e-3, "eval_interval": 4, "eval_examples": 4} | train
    return FinetuneJob(
        model=str(model),
        out_dir=out,
        data={"dataset": "squad_v2", "data_dir": data_dir, "splits": {"max_train": 8}},
        prompt={"max_prompt_tokens": 96},
        train=settings,
    )


def train_records(out: Path) -> list[dict]:
    lines = (out / "train_log.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == "train"]


def check_saved_model(folder: Path, vocab_rows: int) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert model.get_input_embeddings().weight.shape[0] == vocab_rows
    ids = tokenizer("Question: who?", return_tensors="pt")["input_ids"]
    assert torch.isfinite(model(ids).logits).all()


@pytest.mark.parametrize(("family", "rows"), [("pythia", 50304), ("qwen2.5", 151936)])
def test_finetune_reduces_loss_and_saves_a_loadable_model(tiny_models, shared_data, tmp_path, family, rows):
    job = make_job(tiny_models[family], tmp_path / "run", shared_data, max_steps=12, grad_accum=2)
    if family == "qwen2.5":  # chat prompts with a one-shot demonstration
        job = job.model_copy(update={"prompt": job.prompt.model_copy(update={"shots": 1, "max_prompt_tokens": 160})})
    result = run_finetune(job, progress=False)

    records = train_records(tmp_path / "run")
    assert [r["step"] for r in records] == list(range(1, 13))
    first, last = records[0]["loss"], sum(r["loss"] for r in records[-3:]) / 3
    assert last < first - 0.5, (first, last)  # 8 questions seen 3 times: the loss must fall clearly
    assert result["steps"] == 12 and result["micro_batches"] == 24
    assert result["step_kinds"] == {"ground_truth": 24, "fresh_student": 0, "replay": 0}
    assert result["params"] == result["trainable_params"] > 0
    assert result["tokens_per_second"] > 0 and math.isfinite(result["final_val_ce"])
    assert json.loads((tmp_path / "run" / "train_result.json").read_text()) == result
    split_ids = json.loads((tmp_path / "run" / "split_ids.json").read_text())
    assert len(split_ids["train"]) == 8
    check_saved_model(tmp_path / "run" / "model", rows)


def test_lora_bf16_gradient_checkpointing_saves_merged_weights(tiny_models, shared_data, tmp_path):
    job = make_job(
        tiny_models["pythia"],
        tmp_path / "lora",
        shared_data,
        max_steps=3,
        lr=1e-2,
        eval_interval=0,
        precision="bf16",
        gradient_checkpointing=True,
        lora={"enabled": True, "r": 4, "alpha": 8},
    )
    result = run_finetune(job, progress=False)
    assert result["lora"] and result["trainable_params"] < result["params"] / 10
    weights = load_file(tmp_path / "lora" / "model" / "model.safetensors")
    assert not any("lora" in name for name in weights)
    base = load_file(tiny_models["pythia"] / "model.safetensors")
    changed = [n for n in base if not torch.equal(base[n], weights[n])]
    assert changed and all("attention" in n or "mlp" in n for n in changed)  # adapters merged into linears
    check_saved_model(tmp_path / "lora" / "model", 50304)


def _nan_after(training_forwards: int, vocab_rows: int):
    """A global forward hook that turns the LM head's output into NaN from the n-th training forward on."""
    calls = {"n": 0}

    def hook(module, _inputs, output):
        if isinstance(module, torch.nn.Linear) and module.out_features == vocab_rows and torch.is_grad_enabled():
            calls["n"] += 1
            if calls["n"] >= training_forwards:
                return output * float("nan")
        return None

    return torch.nn.modules.module.register_module_forward_hook(hook)


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_checkpoint(tiny_models, shared_data, tmp_path):
    out = tmp_path / "nan"
    job = make_job(tiny_models["pythia"], out, shared_data, max_steps=6, checkpoint_interval=2, eval_interval=0)
    handle = _nan_after(5, 50304)  # the 5th training forward = step 5
    try:
        with pytest.raises(NonFiniteLoss, match="at step 5") as info:
            run_finetune(job, progress=False)
    finally:
        handle.remove()
    assert info.value.step == 5 and "step 4" in str(info.value)
    assert isinstance(info.value, QADistillError)
    state = json.loads((out / "checkpoint" / "state.json").read_text())
    assert state["step"] == 4
    ckpt = load_file(out / "checkpoint" / "trainable.safetensors")
    assert all(torch.isfinite(t).all() for t in ckpt.values())
    assert not (out / "model").exists()
    assert [r["step"] for r in train_records(out)] == [1, 2, 3, 4]


def test_nan_policy_skip_skips_the_step_and_finishes(tiny_models, shared_data, tmp_path):
    out = tmp_path / "skip"
    job = make_job(tiny_models["pythia"], out, shared_data, max_steps=4, eval_interval=0, nan_policy="skip")
    calls = {"n": 0}

    def hook(module, _inputs, output):  # only the 2nd training forward is NaN
        if isinstance(module, torch.nn.Linear) and module.out_features == 50304 and torch.is_grad_enabled():
            calls["n"] += 1
            return output * float("nan") if calls["n"] == 2 else None
        return None

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        result = run_finetune(job, progress=False)
    finally:
        handle.remove()
    assert result["skipped_steps"] == 1 and result["steps"] == 4
    assert [r["skipped"] for r in train_records(out)] == [False, True, False, False]
    check_saved_model(out / "model", 50304)


def test_sigint_saves_a_checkpoint_and_raises_training_interrupted(tiny_models, shared_data, tmp_path):
    out = tmp_path / "sigint"
    job = make_job(tiny_models["pythia"], out, shared_data, max_steps=5, checkpoint_interval=0, eval_interval=0)

    def interrupt(step, _record):
        if step == 2:
            signal.raise_signal(signal.SIGINT)

    previous = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainingInterrupted, match="SIGINT after step 2") as info:
        run_finetune(job, progress=False, on_step=interrupt)
    assert isinstance(info.value, KeyboardInterrupt) and info.value.step == 2
    assert signal.getsignal(signal.SIGINT) is previous  # handlers restored
    assert json.loads((out / "checkpoint" / "state.json").read_text())["step"] == 2
    assert not (out / "model").exists()
    resumed = run_finetune(job.model_copy(update={"resume": True}), progress=False)
    assert resumed["resumed"] and resumed["steps"] == 5
    assert [r["step"] for r in train_records(out)] == [1, 2, 3, 4, 5]


def test_graceful_stop_handles_sigterm_and_a_second_signal_stops_at_once():
    previous = signal.getsignal(signal.SIGTERM)
    with graceful_stop() as stop:
        assert not stop.requested
        signal.raise_signal(signal.SIGTERM)
        assert stop.requested and stop.signal_name == "SIGTERM"
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) is previous


def test_cli_command_runs_and_maps_an_interruption_to_130(tiny_models, shared_data, tmp_path, monkeypatch):
    app = typer.Typer()
    app.command("finetune")(finetune_command)
    app.command("other")(lambda: None)
    config = tmp_path / "job.yaml"
    config.write_text("train:\n  eval_interval: 0\n  lr: 0.001\nprompt:\n  max_prompt_tokens: 96\n")
    args = ["finetune", "--model", str(tiny_models["pythia"]), "--out", str(tmp_path / "cli"), "--data-dir"]
    args += [str(shared_data), "--limit-train", "4", "--max-steps", "2", "--batch-size", "2", "--no-progress"]
    args += ["--config", str(config), "train.warmup_steps=1"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["steps"] == 2
    job = json.loads((tmp_path / "cli" / "job.json").read_text())
    assert job["train"]["lr"] == 0.001 and job["train"]["warmup_steps"] == 1 and job["data"]["splits"]["max_train"] == 4

    def stopped(job, progress):
        raise TrainingInterrupted("stopped by SIGTERM after step 1", step=1, checkpoint=None)

    monkeypatch.setattr("qadistill.train.finetune.run_finetune", stopped)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 130 and "SIGTERM" in result.output
