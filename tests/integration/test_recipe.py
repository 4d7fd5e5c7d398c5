"""DistiLLM's whole recipe on tiny real-architecture models: budgets in epochs, best-checkpoint selection by a
validation metric, healing at every position, the init stage before distillation, and resuming in the middle of
each of them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from training_support import Crash, crash_at, tiny_pythia_pair

from qadistill.train.config import DistillJob, FinetuneJob
from qadistill.train.distill import run_distill
from qadistill.train.finetune import run_finetune

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def pythia(shared_data: Path, tmp_path_factory) -> dict[str, Path]:
    return tiny_pythia_pair(shared_data / "tokenizers", tmp_path_factory.mktemp("recipe-models"), teacher_layers=4)


def common(out: Path, data_dir: Path, train: dict) -> dict:
    return {
        "out_dir": out,
        "data": {"dataset": "squad_v2", "data_dir": data_dir, "splits": {"max_train": 12}},
        "prompt": {"max_prompt_tokens": 96},
        "train": {"batch_size": 4, "lr": 3e-3, "eval_examples": 4, "eval_max_new_tokens": 4} | train,
    }


def records(out: Path, kind: str) -> list[dict]:
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    return [r for r in rows if r["type"] == kind]


def weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(out / "model" / "model.safetensors")


def test_epochs_budget_and_validation_once_per_epoch(pythia, shared_data, tmp_path):
    """12 questions in batches of 4: 3 steps an epoch; 2 epochs are 6 steps, validated after steps 3 and 6."""
    job = FinetuneJob(model=str(pythia["student"]), **common(tmp_path / "run", shared_data, {"epochs": 2}))
    result = run_finetune(job, progress=False)
    assert result["steps"] == 6 and result["micro_batches"] == 6
    assert [r["step"] for r in records(tmp_path / "run", "eval")] == [0, 3, 6]
    assert result["first_val_ce"] is not None and result["final_val_ce"] is not None
    assert result["kept_step"] == 6  # keep: last


def test_keep_best_restores_the_best_validation_weights(pythia, shared_data, tmp_path):
    """With a learning rate that makes the run worse after a while, the kept weights are those of the best
    validation (by the CE, or by ROUGE-L of greedy answers), not the last step's; the result names the step. With a
    constant rate, a run stopped at that step (keep: last) has exactly the kept weights."""
    train = {"max_steps": 6, "lr": 0.5, "warmup_steps": 0, "eval_interval": 1, "schedule": "constant"}
    for metric in ("val_ce", "rouge_l"):
        out = tmp_path / metric
        cfg = train | {"keep": "best", "select_metric": metric}
        job = FinetuneJob(model=str(pythia["student"]), **common(out, shared_data, cfg))
        result = run_finetune(job, progress=False)
        evals = [r for r in records(out, "eval") if r["step"] > 0]
        value = (lambda r: -r["val_ce"]) if metric == "val_ce" else (lambda r: r["rouge_l"])
        best = max(evals, key=value)  # max keeps the first of equal values, as the loop does
        assert result["kept_step"] == best["step"] and [r["step"] for r in evals if r.get("best")][-1] == best["step"]
        if metric == "val_ce":
            assert best["step"] < 6, "the test needs a run whose last step is not its best"
        to_best = common(tmp_path / f"{metric}-to-best", shared_data, train | {"max_steps": best["step"]})
        run_finetune(FinetuneJob(model=str(pythia["student"]), **to_best), progress=False)
        for name, tensor in weights(tmp_path / f"{metric}-to-best").items():
            assert torch.equal(tensor, weights(out)[name]), (metric, name)
        assert [p.name for p in (out / "best").iterdir()] == [f"step-{best['step']:08d}.safetensors"]


def test_keep_best_resumes_to_the_same_choice(pythia, shared_data, tmp_path):
    train = {"max_steps": 6, "lr": 3e-2, "eval_interval": 2, "checkpoint_interval": 2, "keep": "best"}
    train |= {"select_metric": "val_ce", "schedule": "constant"}
    straight = FinetuneJob(model=str(pythia["student"]), **common(tmp_path / "straight", shared_data, train))
    expected = run_finetune(straight, progress=False)
    job = FinetuneJob(model=str(pythia["student"]), **common(tmp_path / "crashed", shared_data, train))
    with pytest.raises(Crash):
        run_finetune(job, progress=False, on_step=crash_at(5))
    resumed = run_finetune(job.model_copy(update={"resume": True}), progress=False)
    assert resumed["kept_step"] == expected["kept_step"] and resumed["resumed"]
    for name, tensor in weights(tmp_path / "straight").items():
        assert torch.equal(tensor, weights(tmp_path / "crashed")[name]), name


def test_healing_objective_is_the_divergence_over_every_position(pythia, shared_data, tmp_path):
    """One healing step's logged divergence equals forward KL over all real positions computed by hand."""
    from qadistill.data.prepare import prepare_data, prompt_format
    from qadistill.losses import forward_kl
    from qadistill.models import load_model_and_tokenizer
    from qadistill.train.batching import DataOrder, collate, encode_examples

    train = {"max_steps": 1, "warmup_steps": 0, "eval_interval": 0}
    distill = {"divergence": "forward_kl", "positions": "all", "off_policy": {"enabled": False}}
    job = DistillJob(
        teacher=str(pythia["teacher"]),
        student="prune:0,3",
        distill=distill,
        **common(tmp_path / "h", shared_data, train),
    )
    result = run_distill(job, progress=False)
    logged = records(tmp_path / "h", "train")[0]["divergence"]

    teacher, tokenizer = load_model_and_tokenizer(str(pythia["teacher"]))
    from qadistill.models import prune_layers

    student = prune_layers(teacher, [0, 3])
    prepared = prepare_data(job.data)
    fmt = prompt_format(prepared, job.prompt)
    examples = encode_examples(prepared.split("train"), fmt, tokenizer, [], 0, job.train.max_answer_tokens)
    batch = collate([examples[i] for i in DataOrder(len(examples), 4, 0).next_indices()], tokenizer.pad_token_id)
    with torch.no_grad():
        t = teacher(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        s = student(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
    real = batch.attention_mask.bool()
    mask = real[:, :-1] & real[:, 1:]
    expected = forward_kl(s[:, :-1], t[:, :-1], mask)
    assert logged == pytest.approx(float(expected), rel=1e-4)
    assert result["positions"] == "all" and result["loss_tokens"] == int(mask.sum())


def test_healing_resumes_identically(pythia, shared_data, tmp_path):
    train = {"max_steps": 4, "eval_interval": 2, "checkpoint_interval": 2}
    distill = {"divergence": "forward_kl", "positions": "all", "off_policy": {"enabled": False}}

    def job(out):
        return DistillJob(
            teacher=str(pythia["teacher"]), student="prune:0,3", distill=distill, **common(out, shared_data, train)
        )

    run_distill(job(tmp_path / "straight"), progress=False)
    with pytest.raises(Crash):
        run_distill(job(tmp_path / "crashed"), progress=False, on_step=crash_at(3))
    run_distill(job(tmp_path / "crashed").model_copy(update={"resume": True}), progress=False)
    for name, tensor in weights(tmp_path / "straight").items():
        assert torch.equal(tensor, weights(tmp_path / "crashed")[name]), name


def test_grid_prepares_students_once_and_evaluates_teachers_for_every_seed(pythia, shared_data, tmp_path):
    """prune (block influence) -> heal -> sft once per student; both methods of both seeds start from the sft
    model; teacher and untuned base model evaluated for every seed; the report has all of them."""
    import csv

    from qadistill.experiments.config import config_from_dict
    from qadistill.study import run_study

    config = config_from_dict(
        {
            "name": "recipe",
            "teachers": [
                {
                    "name": "teacher",
                    "model": str(pythia["teacher"]),
                    "students": [
                        {"name": "bi2", "prune": {"method": "block_influence", "keep": 2}, "init": ["heal", "sft"]}
                    ],
                }
            ],
            "methods": [
                {"name": "srkl", "kind": "distill", "divergence": "srkl", "adaptive": True},
                {"name": "ft", "kind": "finetune"},
            ],
            "datasets": ["squad_v2"],
            "shots": [0],
            "seeds": [0, 1],
            "eval_splits": ["validation"],
            "evaluate_untuned": True,
            "data": {"data_dir": str(shared_data), "splits": {"max_train": 8, "max_validation": 4}},
            "prompt": {"max_prompt_tokens": 96},
            "generation": {"batch_size": 4, "max_new_tokens": 4},
            "train": {"max_steps": 2, "batch_size": 4, "lr": 3e-3, "eval_interval": 1, "eval_examples": 4},
            "distill": {"off_policy": {"capacity": 4, "max_new_tokens": 4}},
            "init": {"heal": {"train": {"max_steps": 2}}, "sft": {"train": {"max_steps": 2}}},
        }
    )
    run = tmp_path / "run"
    outcome = run_study(config, run, progress=False, echo=lambda _: None)
    base = run / "squad_v2" / "0shot" / "teacher"
    pruning = json.loads((base / "bi2" / "prune" / "model" / "pruning.json").read_text())
    assert pruning["method"] == "block_influence" and len(pruning["kept"]) == 2
    heal = json.loads((base / "bi2" / "heal" / "train_result.json").read_text())
    assert heal["positions"] == "all" and heal["first_val_ce"] is not None and heal["final_val_ce"] is not None
    sft = json.loads((base / "bi2" / "sft" / "train_result.json").read_text())
    assert 1 <= sft["kept_step"] <= 2
    for method in ("srkl", "ft"):
        for seed in (0, 1):
            job = json.loads((base / "bi2" / method / f"seed{seed}" / "train" / "job.json").read_text())
            start = job["student"] if method == "srkl" else job["model"]
            assert Path(start) == base / "bi2" / "sft" / "model"
    for seed in (0, 1):
        assert (base / "teacher" / f"seed{seed}" / "eval" / "validation" / "metrics.json").is_file()
        untuned = json.loads((base / "untuned" / f"seed{seed}" / "eval" / "validation" / "metrics.json").read_text())
        assert untuned["role"] == "untuned" and untuned["model_dir"] == str(pythia["teacher"])
    assert not (base / "bi2" / "sft" / "best").exists() and not (base / "bi2" / "sft" / "checkpoint").exists()
    rows = list(csv.DictReader(outcome.summary_csv.open()))
    teacher_rows = [r for r in rows if r["role"] == "teacher"]
    assert teacher_rows and all(r["n_seeds"] == "2" for r in teacher_rows)
    assert any(r["role"] == "untuned" for r in rows)
