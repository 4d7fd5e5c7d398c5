"""Distillation end to end: tiny Pythia and Qwen2.5 pairs (teacher 152,064 rows vs student 151,936), pruned
students, different tokenizers, and DistiLLM's adaptive off-policy scheme in a real run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from qadistill.errors import QADistillError
from qadistill.models import build_tiny_model, load_real_tokenizer, save_model
from qadistill.train.config import DistillJob
from qadistill.train.distill import run_distill

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def tiny(shared_data: Path, tmp_path_factory) -> dict[str, Path]:
    """Teacher (4 layers, d=64) and student (2 layers, d=32) folders per family; the Qwen teacher has 152,064 rows."""
    root = tmp_path_factory.mktemp("pairs")
    folders = {}
    for family, teacher_rows in (("pythia", None), ("qwen2.5", 152064)):
        tokenizer = load_real_tokenizer(family, shared_data / "tokenizers")
        teacher = build_tiny_model(
            family, tokenizer, hidden_size=64, num_layers=4, num_heads=4, vocab_size=teacher_rows, seed=1
        )
        student = build_tiny_model(family, tokenizer, hidden_size=32, num_layers=2, num_heads=4, seed=2)
        folders[f"{family}-teacher"] = save_model(teacher, tokenizer, root / f"{family}-teacher")
        folders[f"{family}-student"] = save_model(student, tokenizer, root / f"{family}-student")
    return folders


def make_job(teacher: Path, student: str, out: Path, data_dir: Path, train=None, distill=None) -> DistillJob:
    return DistillJob(
        teacher=str(teacher),
        student=student,
        out_dir=out,
        data={"dataset": "squad_v2", "data_dir": data_dir, "splits": {"max_train": 8}},
        prompt={"max_prompt_tokens": 96},
        train={"max_steps": 8, "batch_size": 4, "lr": 3e-3, "eval_interval": 2, "eval_examples": 4} | (train or {}),
        distill=distill or {},
    )


def records(out: Path, kind: str) -> list[dict]:
    return [r for r in map(json.loads, (out / "train_log.jsonl").read_text().splitlines()) if r["type"] == kind]


def test_pythia_pair_with_adaptive_off_policy(tiny, shared_data, tmp_path):
    out = tmp_path / "pythia"
    off_policy = {"init_threshold": 0.6, "capacity": 6, "max_new_tokens": 6}
    job = make_job(
        tiny["pythia-teacher"],
        str(tiny["pythia-student"]),
        out,
        shared_data,
        train={"max_steps": 10, "grad_accum": 2},
        distill={"kd_ratio": 0.5, "off_policy": off_policy},
    )
    result = run_distill(job, progress=False)

    kinds = result["step_kinds"]
    assert sum(kinds.values()) == result["micro_batches"] == 20
    assert kinds["fresh_student"] >= 1 and kinds["replay"] >= 1 and kinds["ground_truth"] >= 1
    train = records(out, "train")
    assert [sum(r["kinds"].values()) for r in train] == [2] * 10
    assert all(r["replay_buffer"] <= 6 for r in train) and result["replay_buffer"] == 6
    assert all(r["loss"] == pytest.approx(0.5 * r["ce"] + 0.5 * r["divergence"], rel=1e-4) for r in train)
    assert result["teacher_params"] > result["student_params"] > 0
    assert (result["teacher_layers"], result["student_layers"]) == (4, 2)
    assert result["shared_vocab"] == 50277 and result["divergence"] == "srkl"
    assert records(out, "eval")[0]["step"] == 0  # the threshold's first reference is measured before training

    from transformers import AutoModelForCausalLM

    student = AutoModelForCausalLM.from_pretrained(out / "model")
    assert student.config.num_hidden_layers == 2 and student.config.hidden_size == 32


def test_qwen_pair_with_different_embedding_rows_learns(tiny, shared_data, tmp_path):
    out = tmp_path / "qwen"
    job = make_job(
        tiny["qwen2.5-teacher"],
        str(tiny["qwen2.5-student"]),
        out,
        shared_data,
        train={"max_steps": 12, "eval_interval": 0},
        distill={"divergence": "srkl", "off_policy": {"enabled": False}},
    )
    result = run_distill(job, progress=False)
    assert result["shared_vocab"] == 151665  # compared on the tokenizer's rows, not 152,064 vs 151,936
    assert result["step_kinds"] == {"ground_truth": 12, "fresh_student": 0, "replay": 0}
    divergences = [r["divergence"] for r in records(out, "train")]
    assert sum(divergences[-3:]) / 3 < divergences[0]  # the student moves towards the teacher

    from transformers import AutoModelForCausalLM

    student = AutoModelForCausalLM.from_pretrained(out / "model")
    assert student.get_input_embeddings().weight.shape[0] == 151936


@pytest.mark.parametrize("divergence", ["forward_kl", "jsd", "tvd"])
def test_other_divergences_and_temperature(tiny, shared_data, tmp_path, divergence):
    job = make_job(
        tiny["qwen2.5-teacher"],
        str(tiny["qwen2.5-student"]),
        tmp_path / divergence,
        shared_data,
        train={"max_steps": 2, "eval_interval": 0},
        distill={"divergence": divergence, "temperature": 2.0, "off_policy": {"enabled": False}},
    )
    result = run_distill(job, progress=False)
    assert result["divergence"] == divergence and result["final_train_loss"] >= 0


def test_pruned_student_from_the_teacher(tiny, shared_data, tmp_path):
    job = make_job(
        tiny["pythia-teacher"],
        "prune:half",
        tmp_path / "pruned",
        shared_data,
        train={"max_steps": 2, "eval_interval": 0},
        distill={"off_policy": {"enabled": False}},
    )
    job = job.model_copy(update={"teacher_load": job.teacher_load.model_copy(update={"dtype": "bfloat16"})})
    result = run_distill(job, progress=False)  # a bf16 teacher; the pruned student trains in fp32
    assert (result["teacher_layers"], result["student_layers"]) == (4, 2)
    assert result["student_params"] < result["teacher_params"]
    teacher = load_file_weights(tiny["pythia-teacher"])
    student = load_file_weights(tmp_path / "pruned" / "model")
    assert all(t.dtype == torch.float32 for t in student.values())
    key = "gpt_neox.layers.{}.mlp.dense_h_to_4h.weight"
    assert key.format(1) in student and key.format(2) not in student and key.format(3) in teacher
    assert student[key.format(1)].shape == teacher[key.format(3)].shape  # same width, fewer layers


def load_file_weights(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(folder / "model.safetensors")


def test_different_tokenizers_are_refused(tiny, shared_data, tmp_path):
    job = make_job(tiny["pythia-teacher"], str(tiny["qwen2.5-student"]), tmp_path / "bad", shared_data)
    with pytest.raises(QADistillError, match="different tokenizers"):
        run_distill(job, progress=False)


def test_threshold_rises_when_validation_ce_stalls(tiny, shared_data, tmp_path):
    """lr ~ 0: the student does not change, so its validation CE stalls; with eps 0 every check raises phi."""
    out = tmp_path / "stall"
    job = make_job(
        tiny["pythia-teacher"],
        str(tiny["pythia-student"]),
        out,
        shared_data,
        train={"max_steps": 6, "lr": 1e-30, "eval_interval": 2},
        distill={"off_policy": {"init_threshold": 0.0, "loss_eps": 0.0, "capacity": 4, "max_new_tokens": 4}},
    )
    result = run_distill(job, progress=False)
    evals = records(out, "eval")
    assert [e["step"] for e in evals] == [0, 2, 4, 6]
    assert len({e["val_ce"] for e in evals}) == 1
    assert [e["threshold"] for e in evals] == pytest.approx([0.0, 0.1, 0.2, 0.3])
    assert result["final_threshold"] == pytest.approx(0.3)
    train = records(out, "train")
    assert all(r["kinds"] == {"ground_truth": 1} for r in train[:2])  # phi = 0 before the first rise


def test_adaptive_needs_validation_checks(tiny, shared_data, tmp_path):
    with pytest.raises(ValidationError, match="eval_interval"):
        make_job(tiny["pythia-teacher"], "prune:half", tmp_path / "x", shared_data, train={"eval_interval": 0})


def test_job_settings_prune_specs_and_overrides(tmp_path):
    """Job validation without training: student specs, dotted overrides, one-line errors."""
    from qadistill.jobs import apply_overrides, build_job, read_config_file

    base = {"teacher": "t", "out_dir": str(tmp_path)}
    assert DistillJob(**base, student="prune:0,2").prune_keep() == [0, 2]
    assert DistillJob(**base, student="prune:quarter").prune_keep() == "quarter"
    assert DistillJob(**base, student="some/model").prune_keep() is None
    config = tmp_path / "job.yaml"
    config.write_text("student: prune:half\ndistill:\n  kd_ratio: 0.5\n")
    doc = apply_overrides({**base, **read_config_file(config)}, ["distill.off_policy.capacity=7", "train.lr=1e-4"])
    job = build_job(DistillJob, doc, "distill job")
    assert job.distill.off_policy.capacity == 7 and job.train.lr == 1e-4 and job.distill.kd_ratio == 0.5
    assert job.distill.divergence == "srkl" and job.distill.divergence_params() == {"alpha": 0.1}
    with pytest.raises(QADistillError, match="distill.divergence"):
        build_job(DistillJob, {**doc, "distill": {"divergence": "kl"}}, "distill job")
    with pytest.raises(QADistillError, match="student: missing"):
        build_job(DistillJob, base, "distill job")
    with pytest.raises(QADistillError, match="key=value"):
        apply_overrides({}, ["train.lr"])
