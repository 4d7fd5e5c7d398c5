"""Distillation from the teacher-logit cache end to end: tiny Pythia pair with the real GPT-NeoX tokenizer.

The first run builds the cache; later runs (another seed, a pruned student) load it and never load the teacher
(unless to prune it); with k = V the cached run follows the live one; resuming gives the uninterrupted run.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from pydantic import ValidationError
from safetensors.torch import load_file

import qadistill.models.loading as loading
from qadistill.models import build_tiny_model, load_real_tokenizer, save_model
from qadistill.train.config import DistillJob, fingerprint
from qadistill.train.distill import run_distill

pytestmark = pytest.mark.slow

NEOX_VOCAB = 50277


@pytest.fixture(scope="module")
def pythia(shared_data: Path, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cache-models")
    tokenizer = load_real_tokenizer("pythia", shared_data / "tokenizers")
    teacher = build_tiny_model("pythia", tokenizer, hidden_size=64, num_layers=4, num_heads=4, seed=1)
    student = build_tiny_model("pythia", tokenizer, hidden_size=32, num_layers=2, num_heads=4, seed=2)
    return {
        "teacher": save_model(teacher, tokenizer, root / "teacher"),
        "student": save_model(student, tokenizer, root / "student"),
    }


def make_job(pythia, out: Path, data_dir: Path, cache_dir: Path | None, *, student=None, train=None, distill=None):
    cache = {"enabled": cache_dir is not None, "k": 16, "dir": cache_dir, "batch_size": 4}
    return DistillJob(
        teacher=str(pythia["teacher"]),
        student=student or str(pythia["student"]),
        out_dir=out,
        data={"dataset": "squad_v2", "data_dir": data_dir, "splits": {"max_train": 8}},
        prompt={"max_prompt_tokens": 96},
        train={"max_steps": 4, "batch_size": 4, "lr": 3e-3, "eval_interval": 2, "eval_examples": 4} | (train or {}),
        distill={"kd_ratio": 0.5, "off_policy": {"enabled": False}, "teacher_cache": cache} | (distill or {}),
    )


def train_records(out: Path) -> list[dict]:
    rows = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "train_seconds"} for r in rows]


@pytest.fixture
def teacher_must_not_load(pythia, monkeypatch):
    """Loading the teacher's weights fails; its tokenizer may still be read."""
    real = loading.load_model

    def guarded(spec, **kwargs):
        if Path(str(spec)).resolve() == pythia["teacher"].resolve():
            raise AssertionError("the teacher was loaded although its cache exists")
        return real(spec, **kwargs)

    monkeypatch.setattr(loading, "load_model", guarded)


def test_cache_is_built_once_and_reused_without_the_teacher(pythia, shared_data, tmp_path, request):
    cache_dir = tmp_path / "cache"
    first = run_distill(make_job(pythia, tmp_path / "seed0", shared_data, cache_dir), progress=False)
    assert first["teacher_source"] == "cache" and first["teacher_cache"]["built"]
    key = first["teacher_cache_key"]
    assert (cache_dir / key / "meta.json").is_file() and (cache_dir / key / "shard-00000.safetensors").is_file()
    meta = json.loads((cache_dir / key / "meta.json").read_text())
    assert first["teacher_cache"]["k"] == meta["k"] == 16 and first["teacher_cache"]["positions"] == meta["n_positions"]
    assert first["teacher_layers"] == 4 and first["teacher_params"] > first["student_params"]
    saved = json.loads((tmp_path / "seed0" / "train_result.json").read_text())
    assert saved["teacher_source"] == "cache" and saved["teacher_cache_key"] == key

    request.getfixturevalue("teacher_must_not_load")
    with pytest.raises(AssertionError, match="teacher was loaded"):  # the guard works: no cache, teacher needed
        run_distill(make_job(pythia, tmp_path / "nocache", shared_data, tmp_path / "empty"), progress=False)
    other_seed = make_job(pythia, tmp_path / "seed1", shared_data, cache_dir).model_copy(update={"seed": 1})
    second = run_distill(other_seed, progress=False)
    assert second["teacher_cache_key"] == key and not second["teacher_cache"]["built"]
    assert second["teacher_params"] == first["teacher_params"] and second["steps"] == 4
    from transformers import AutoModelForCausalLM

    student = AutoModelForCausalLM.from_pretrained(tmp_path / "seed1" / "model")
    assert student.config.hidden_size == 32
    assert sorted(p.name for p in cache_dir.iterdir() if not p.name.endswith(".json")) == [key]


def test_pruned_student_reuses_the_cache(pythia, shared_data, tmp_path):
    cache_dir = tmp_path / "cache"
    run_distill(make_job(pythia, tmp_path / "a", shared_data, cache_dir, train={"max_steps": 1}), progress=False)
    pruned = make_job(pythia, tmp_path / "p", shared_data, cache_dir, student="prune:half", train={"max_steps": 2})
    result = run_distill(pruned, progress=False)  # the teacher is loaded to be pruned, the cache is reused
    assert not result["teacher_cache"]["built"] and result["student_layers"] == 2


def test_cache_with_k_equal_to_the_vocabulary_follows_the_live_run(pythia, shared_data, tmp_path):
    """Sparse with k = V is the dense divergence: the same losses up to float rounding."""
    live = run_distill(make_job(pythia, tmp_path / "live", shared_data, None), progress=False)
    assert live["teacher_source"] == "live" and live["teacher_cache_key"] is None
    full = make_job(pythia, tmp_path / "cached", shared_data, tmp_path / "cache")
    full.distill.teacher_cache.k = NEOX_VOCAB + 100  # capped at the shared vocabulary
    cached = run_distill(full, progress=False)
    assert cached["teacher_cache"]["k"] == NEOX_VOCAB
    a, b = train_records(tmp_path / "live"), train_records(tmp_path / "cached")
    assert [r["type"] for r in a] == [r["type"] for r in b]
    for ra, rb in zip(a, b, strict=True):
        for field in ("loss", "ce", "divergence", "val_ce"):
            if field in ra:
                assert rb[field] == pytest.approx(ra[field], rel=1e-4, abs=1e-6), (ra["step"], field)


def test_resume_with_the_cache_is_identical(pythia, shared_data, tmp_path):
    cache_dir = tmp_path / "cache"
    train = {"max_steps": 5, "grad_accum": 2, "checkpoint_interval": 2}
    straight = make_job(pythia, tmp_path / "straight", shared_data, cache_dir, train=train)
    run_distill(straight, progress=False)

    def crash(step: int, _record: dict) -> None:
        if step == 3:
            raise RuntimeError("simulated crash")

    job = straight.model_copy(update={"out_dir": tmp_path / "crashed"})
    with pytest.raises(RuntimeError, match="simulated"):
        run_distill(job, progress=False, on_step=crash)
    moved = job.model_copy(update={"resume": True})  # the cache's folder is not part of the run's settings
    moved.distill.teacher_cache.dir = tmp_path / "elsewhere"
    assert fingerprint(moved) == fingerprint(job)
    result = run_distill(moved, progress=False)
    assert result["resumed"] and result["teacher_cache"]["built"]  # rebuilt in the new folder, same key
    assert train_records(tmp_path / "crashed") == train_records(tmp_path / "straight")
    wa = load_file(tmp_path / "straight" / "model" / "model.safetensors")
    wb = load_file(tmp_path / "crashed" / "model" / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[n], wb[n]) for n in wa)


def test_cache_and_adaptive_off_policy_are_refused(pythia, shared_data, tmp_path):
    with pytest.raises(ValidationError, match=r"off_policy\.enabled=false.*live teacher"):
        make_job(pythia, tmp_path / "x", shared_data, tmp_path / "cache", distill={"off_policy": {}})
    assert not (tmp_path / "cache").exists()
