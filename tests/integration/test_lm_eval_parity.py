"""lm-evaluation-harness's HF backend on a task written by `qadistill export-lm-eval` gives the same answers and the
same EM / F1 / ROUGE-L as `qadistill evaluate`, on real SQuAD v2 questions (tiny random models and SmolLM2-135M)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qadistill.config import DataConfig, GenerationConfig, PromptConfig
from qadistill.evaluate import EvaluationJob, run_evaluation
from qadistill.lm_eval_task import METRICS, export_from_data, export_from_run, read_questions
from qadistill.models import build_tiny_model, load_real_tokenizer, save_model, smollm2_dir
from qadistill.score import answer_of, score_files
from qadistill.tokenize import prompt_ids

pytestmark = [pytest.mark.slow, pytest.mark.realdata]
lm_eval = pytest.importorskip("lm_eval", reason="lm-eval is a dev dependency: pip install -e '.[dev]'")

SQUAD_DEV = "squad_v2/dev-v2.0.labelled-half.json"


def evaluate_ours(model: Path, out: Path, data_dir: Path, n: int, max_new_tokens: int, shots: int = 0) -> dict:
    job = EvaluationJob(
        model=str(model),
        out_dir=out,
        data=DataConfig(dataset="squad_v2", data_dir=data_dir, splits={"max_validation": n}),
        prompt=PromptConfig(shots=shots, max_prompt_tokens=256),
        generation=GenerationConfig(batch_size=4, max_new_tokens=max_new_tokens),
    )
    return run_evaluation(job, progress=False)


def our_answers(out: Path) -> dict[str, str]:
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    return {r["id"]: r["answer"] for r in rows}


def lm_eval_in_process(model: Path, task_dir: Path, task: str):
    """lm-eval's HF backend through its Python API (what `lm_eval --model hf` runs); also returns the HFLM."""
    import torch
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    device = "cuda" if torch.cuda.is_available() else "cpu"
    lm = HFLM(pretrained=str(model), dtype="float32", batch_size=4, device=device)
    out = simple_evaluate(
        model=lm, tasks=[task], task_manager=TaskManager(include_path=str(task_dir)), log_samples=True
    )
    return lm, out["results"][task], out["samples"][task]


def assert_same_metrics(lm_results: dict, ours: dict) -> None:
    for metric in METRICS:
        if metric in ours:
            assert math.isclose(lm_results[f"{metric},none"], ours[metric], abs_tol=1e-9), metric


def amplify_residual_branches(model, factor: float = 30.0) -> None:
    """A tiny random model with tied embeddings barely changes its input embedding, so it echoes the prompt's last
    token (a newline: an empty answer) for every question; louder attention and MLP outputs make it say something
    different per question, so equal answers on both sides mean something."""
    import torch

    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith(("o_proj.weight", "down_proj.weight")):
                param.mul_(factor)


@pytest.fixture(scope="module")
def tiny_models(shared_data: Path, tmp_path_factory) -> dict[str, Path]:
    """Tiny random Pythia (plain prompts) and Qwen2.5 (chat template) folders with the real tokenizers."""
    root = tmp_path_factory.mktemp("tiny")
    folders = {}
    for family in ("pythia", "qwen2.5"):
        tokenizer = load_real_tokenizer(family, shared_data / "tokenizers")
        model = build_tiny_model(family, tokenizer, hidden_size=64, num_layers=2, num_heads=4, seed=3)
        if model.config.tie_word_embeddings:
            amplify_residual_branches(model)
        folders[family] = save_model(model, tokenizer, root / family)
    return folders


@pytest.mark.parametrize("family,shots", [("pythia", 1), ("qwen2.5", 0)])
def test_tiny_model_same_answers_and_metrics(family, shots, tiny_models, shared_data, tmp_path):
    model = tiny_models[family]
    ours = evaluate_ours(model, tmp_path / "ours", shared_data, n=12, max_new_tokens=6, shots=shots)
    task_dir = export_from_run(tmp_path / "ours", tmp_path / "task")
    task = json.loads((task_dir / "qadistill_task.json").read_text())["task"]

    lm, results, samples = lm_eval_in_process(model, task_dir, task)

    # the token ids lm-eval feeds the model are ours (no BOS or special tokens added or lost)
    tokenizer = lm.tokenizer
    for doc in read_questions(task_dir):
        ids, mask = lm.tok_batch_encode([doc["prompt"]])
        assert ids[0][mask[0].bool()].tolist() == prompt_ids(tokenizer, doc["prompt"])
    # the same question set, answers and aggregate metrics
    theirs = {s["doc"]["id"]: answer_of(s["doc"], s["filtered_resps"][0]) for s in samples}
    assert theirs == our_answers(tmp_path / "ours")
    assert len(set(theirs.values())) > 1  # the random model says different things, so equal answers mean something
    assert len(theirs) == ours["total"] == 12
    assert_same_metrics(results, ours)


def test_export_from_data_matches_the_evaluation_prompts(tiny_models, shared_data, tmp_path):
    """Exporting from the dataset + prompt format + split + seed writes the prompts `evaluate` builds."""
    model = tiny_models["qwen2.5"]
    evaluate_ours(model, tmp_path / "ours", shared_data, n=12, max_new_tokens=6, shots=1)
    task_dir = export_from_data(
        tmp_path / "task",
        model=str(model),
        data=DataConfig(dataset="squad_v2", data_dir=shared_data, splits={"max_validation": 12}),
        prompt=PromptConfig(shots=1, max_prompt_tokens=256),
        split="validation",
        seed=0,
        max_new_tokens=6,
    )
    rows = [json.loads(line) for line in (tmp_path / "ours" / "predictions.jsonl").read_text().splitlines()]
    exported = read_questions(task_dir)
    assert [(d["id"], d["prompt"], d["golds"]) for d in exported] == [(r["id"], r["prompt"], r["golds"]) for r in rows]


def test_smollm2_lm_eval_command_same_as_qadistill_evaluate(shared_data, tmp_path):
    """The documented commands on SmolLM2-135M-Instruct (chat prompts): identical answers and metrics, and
    `qadistill score` on lm-eval's samples file gives the same numbers again."""
    model = smollm2_dir()
    if not (model / "config.json").is_file():
        pytest.skip("SmolLM2-135M-Instruct is not set up (run: qadistill setup)")
    ours = evaluate_ours(model, tmp_path / "ours", shared_data, n=8, max_new_tokens=16)
    task_dir = export_from_run(tmp_path / "ours", tmp_path / "task")
    task = json.loads((task_dir / "qadistill_task.json").read_text())["task"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    lm_eval_cli = [sys.executable, "-m", "lm_eval"]
    command = [
        *lm_eval_cli,
        *("--model", "hf", "--model_args", f"pretrained={model},dtype=float32"),
        *("--include_path", str(task_dir), "--tasks", task, "--batch_size", "32"),
        *("--log_samples", "--output_path", str(tmp_path / "lm_eval")),
    ]
    subprocess.run(command, check=True, env=env, capture_output=True, text=True, timeout=1800)
    results_file = next((tmp_path / "lm_eval").rglob("results_*.json"))
    samples_file = next((tmp_path / "lm_eval").rglob(f"samples_{task}_*.jsonl"))
    results = json.loads(results_file.read_text())["results"][task]
    assert_same_metrics(results, ours)
    samples = [json.loads(line) for line in samples_file.read_text().splitlines()]
    assert {s["doc"]["id"]: answer_of(s["doc"], s["filtered_resps"][0]) for s in samples} == our_answers(
        tmp_path / "ours"
    )
    # our official scorer reads lm-eval's samples file: same numbers over the exported questions
    rescored = score_files(shared_data / SQUAD_DEV, samples_file)
    assert rescored["missing"] == rescored["total"] - ours["total"]
    scale = rescored["total"] / ours["total"]
    assert math.isclose(rescored["exact"] * scale, ours["exact"], abs_tol=1e-9)
    assert math.isclose(rescored["f1"] * scale, ours["f1"], abs_tol=1e-9)
