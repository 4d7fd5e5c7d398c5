"""Every model folder we write has a README.md model card with Hub metadata and how it was made; the folder loads
with plain transformers in a process that never imports qadistill; a grid run adds evaluations to the cards and
sends each stage to its own tracker run, tagged."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from qadistill.experiments.config import load_config
from qadistill.models import build_tiny_model, load_real_tokenizer, save_model
from qadistill.models.card import add_evaluation, read_facts
from qadistill.study import run_study
from qadistill.train.config import DistillJob, FinetuneJob
from qadistill.train.distill import run_distill
from qadistill.train.finetune import run_finetune

pytestmark = pytest.mark.slow

PLAIN_LOAD = """
import json, sys
from huggingface_hub import ModelCard
from transformers import AutoModelForCausalLM, AutoTokenizer
folder = sys.argv[1]
model = AutoModelForCausalLM.from_pretrained(folder)
tokenizer = AutoTokenizer.from_pretrained(folder)
card = ModelCard.load(f"{folder}/README.md")
ids = tokenizer("Question: who?", return_tensors="pt")["input_ids"]
logits = model(ids).logits
assert "qadistill" not in sys.modules
print(json.dumps({"data": card.data.to_dict(), "text": card.text, "params": sum(p.numel() for p in model.parameters()),
                  "finite": bool(logits.isfinite().all())}))
"""


def load_plainly(folder: Path) -> dict:
    """Load the folder and its card in a fresh interpreter with transformers and huggingface_hub only."""
    done = subprocess.run([sys.executable, "-c", PLAIN_LOAD, str(folder)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def teacher(shared_data: Path, tmp_path_factory) -> Path:
    tokenizer = load_real_tokenizer("pythia", shared_data / "tokenizers")
    model = build_tiny_model("pythia", tokenizer, hidden_size=32, num_layers=4, num_heads=2, seed=0)
    return save_model(model, tokenizer, tmp_path_factory.mktemp("tiny") / "teacher")


def settings(data_dir: Path) -> dict:
    return {
        "data": {"dataset": "squad_v2", "data_dir": data_dir, "splits": {"max_train": 8}},
        "prompt": {"max_prompt_tokens": 64},
        "train": {"max_steps": 2, "batch_size": 2, "lr": 1e-3, "eval_interval": 2, "eval_examples": 2},
    }


def test_finetuned_model_has_a_card_and_loads_with_plain_transformers(teacher, shared_data, tmp_path):
    run_finetune(FinetuneJob(model=str(teacher), out_dir=tmp_path / "ft", **settings(shared_data)), progress=False)
    loaded = load_plainly(tmp_path / "ft" / "model")
    assert loaded["finite"]
    data = loaded["data"]
    assert data["library_name"] == "transformers"
    assert data["datasets"] == ["rajpurkar/squad_v2"]
    assert {"qadistill", "extractive-qa", "fine-tuned"} <= set(data["tags"])
    assert "base_model" not in data  # a local folder is not a Hub id
    assert "model-index" not in data  # nothing evaluated yet
    text = loaded["text"]
    assert "supervised fine-tuning" in text and f"- **Initialised from:** {teacher}" in text
    assert f"**Parameters:** {loaded['params']:,}" in text
    splits = json.loads((tmp_path / "ft" / "split_ids.json").read_text())
    assert f"train {len(splits['train']):,}" in text and "| lr | 0.001 |" in text and "Not evaluated yet." in text


def test_distilled_student_card_states_teacher_divergence_and_reduction(teacher, shared_data, tmp_path):
    job = DistillJob(
        teacher=str(teacher),
        student="prune:half",
        out_dir=tmp_path / "kd",
        distill={"divergence": "skl", "off_policy": {"enabled": False}},
        **settings(shared_data),
    )
    result = run_distill(job, progress=False)
    loaded = load_plainly(tmp_path / "kd" / "model")
    text = loaded["text"]
    assert "knowledge-distillation" in loaded["data"]["tags"]
    assert f"- **Teacher:** {teacher}" in text and "- **Divergence:** skl (kd_ratio 1.0" in text
    reduction = 100 * (1 - result["student_params"] / result["teacher_params"])
    assert loaded["params"] == result["student_params"]
    assert f"{result['student_params']:,} ({result['teacher_params']:,} in the teacher: {reduction:.1f}% fewer)" in text

    # an evaluation finishing later adds its metrics to the card's metadata (model-index) and body
    metrics = {"exact": 12.5, "f1": 20.25, "rouge_l": 19.0, "total": 8}
    result = {"dataset": "squad_v2", "split": "test", "shots": 0, "seed": 0, "metrics": metrics, "command": "cmd"}
    assert add_evaluation(tmp_path / "kd" / "model", result)
    data = load_plainly(tmp_path / "kd" / "model")["data"]
    (entry,) = data["model-index"][0]["results"]
    assert {m["type"]: m["value"] for m in entry["metrics"]} == {"exact_match": 12.5, "f1": 20.25, "rouge": 19.0}
    assert entry["dataset"]["split"] == "test"


def test_grid_run_cards_evaluations_and_tracker_runs(teacher, shared_data, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    config = {
        "name": "tiny",
        "teachers": [
            {"name": "t", "model": str(teacher), "students": [{"name": "half", "prune": "half"}]},
        ],
        "methods": [{"name": "ft", "kind": "finetune"}],
        "datasets": ["squad_v2"],
        "shots": [0],
        "seeds": [0],
        "eval_splits": ["validation"],
        "data": {"data_dir": str(shared_data), "splits": {"max_train": 8, "max_validation": 4, "max_test": 4}},
        "prompt": {"max_prompt_tokens": 64},
        "generation": {"batch_size": 4, "max_new_tokens": 4},
        "train": {"max_steps": 2, "batch_size": 2, "lr": 1e-3, "eval_interval": 0, "checkpoint_interval": 0},
        "tracking": {"report_to": ["tensorboard"], "project": "study"},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    run_dir = tmp_path / "run"
    run_study(load_config(path), run_dir, progress=False, echo=lambda _: None)

    base = run_dir / "squad_v2" / "0shot" / "t"
    init = read_facts(base / "half" / "prune" / "model")
    assert init["kept_layers"] == [0, 3] and init["source_layers"] == 4
    trainings = {base / "teacher" / "train": base / "teacher" / "seed0", base / "half" / "ft" / "seed0" / "train": None}
    for train_dir, eval_parent in trainings.items():
        card = load_plainly(train_dir / "model")
        metrics_path = (eval_parent or train_dir.parent) / "eval" / "validation" / "metrics.json"
        metrics = json.loads(metrics_path.read_text())
        (entry,) = card["data"]["model-index"][0]["results"]
        values = {m["type"]: m["value"] for m in entry["metrics"]}
        assert values["exact_match"] == round(metrics["exact"], 4) and values["f1"] == round(metrics["f1"], 4)
        assert f"qadistill run {run_dir / 'config.resolved.yaml'}" in card["text"]
    student = read_facts(base / "half" / "ft" / "seed0" / "train" / "model")
    assert student["reference_params"] == init["reference_params"]  # size stated against the teacher

    # one tracker run per stage, named after it, tagged with what the report compares
    logdir = run_dir / "tracking" / "study" / "tiny" / "squad_v2" / "0shot" / "t" / "half" / "ft" / "seed0"
    train_events = EventAccumulator(str(logdir / "train"))
    train_events.Reload()
    assert [e.step for e in train_events.Scalars("train/loss")] == [1, 2]
    eval_events = EventAccumulator(str(logdir / "eval" / "validation"))
    eval_events.Reload()
    metrics = json.loads((base / "half" / "ft" / "seed0" / "eval" / "validation" / "metrics.json").read_text())
    assert eval_events.Scalars("eval_validation/f1")[0].value == pytest.approx(metrics["f1"], rel=1e-6)
    hparams = next(logdir.joinpath("train").rglob("hparams.yml"))
    tags = {k.removeprefix("tags/"): v for k, v in yaml.safe_load(hparams.read_text()).items() if k.startswith("tags/")}
    assert tags | {"experiment": "tiny"} == {
        "experiment": "tiny",
        "stage": "finetune",
        "teacher": "t",
        "student": "half",
        "method": tags["method"],
        "dataset": "squad_v2",
        "shots": "0",
        "seed": "0",
    }
