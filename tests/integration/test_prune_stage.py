"""The experiment's prune stage with measured layer selection: calibration on real SQuAD v2 training prompts,
the choice and every score saved with the student (`model/pruning.json`), atomically with the model, and the
standalone `distill --student prune:block_influence:N` path."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

from qadistill.config import DataConfig, PromptConfig, PruneConfig
from qadistill.errors import QADistillError
from qadistill.experiments.config import config_from_dict
from qadistill.experiments.plan import plan_experiment
from qadistill.experiments.runner import _Context, _run_stage
from qadistill.models import build_tiny_model, load_model, load_real_tokenizer, save_model
from qadistill.train.calibration import choose_layers
from qadistill.train.config import DistillJob
from qadistill.train.distill import run_distill

pytestmark = pytest.mark.slow

TEACHER_TRAIN = "squad_v2/0shot/tiny/teacher/train"
STUDENTS = [
    {"name": "bi", "prune": {"method": "block_influence", "keep": 3, "calibration_examples": 6}},
    {"name": "blk", "prune": {"method": "block", "keep": 3, "calibration_examples": 6}},
    {"name": "sp", "prune": {"method": "spread", "keep": 3}},
    {"name": "half", "prune": "half"},
]


@pytest.fixture(scope="module")
def teacher(shared_data: Path, tmp_path_factory) -> Path:
    tokenizer = load_real_tokenizer("pythia", shared_data / "tokenizers")
    model = build_tiny_model("pythia", tokenizer, num_layers=5, hidden_size=32, num_heads=2, seed=4)
    return save_model(model, tokenizer, tmp_path_factory.mktemp("teacher") / "model")


def _plan(shared_data: Path, run_dir: Path, teacher: Path):
    config = config_from_dict(
        {
            "name": "prune",
            "teachers": [{"name": "tiny", "model": str(teacher), "students": STUDENTS}],
            "methods": [{"name": "finetune", "kind": "finetune"}],
            "datasets": ["squad_v2"],
            "shots": [0],
            "seeds": [1],
            "data": {"data_dir": str(shared_data), "splits": {"max_train": 40, "max_validation": 8, "max_test": 8}},
            "prompt": {"max_prompt_tokens": 96},
            "train": {"max_answer_tokens": 8},
        }
    )
    plan = plan_experiment(config, run_dir)
    # the teacher's fine-tuning is taken as done: its model is in place
    save_model(*_load(teacher), run_dir / TEACHER_TRAIN / "model")
    return plan


def _load(folder: Path):
    from qadistill.models import load_model_and_tokenizer

    return load_model_and_tokenizer(str(folder))


def test_prune_stages_save_the_choice_with_the_student(shared_data, teacher, tmp_path, caplog) -> None:
    plan = _plan(shared_data, tmp_path, teacher)
    ctx = _Context(plan, tmp_path, progress=False)
    stages = {s.student: s for s in plan.stages if s.kind == "prune"}
    with caplog.at_level(logging.INFO, logger="qadistill"):
        for stage in stages.values():
            _run_stage(ctx, stage)
    teacher_model = load_model(str(teacher))
    for name, stage in stages.items():
        folder = stage.folder(tmp_path) / "model"
        assert stage.done(tmp_path) and (folder / "pruning.json").is_file()
        record = json.loads((folder / "pruning.json").read_text())
        student = load_model(str(folder))
        assert student.config.num_hidden_layers == len(record["kept"]) == record["keep"]
        assert record["dropped"] == [i for i in range(5) if i not in record["kept"]]
        for new, old in enumerate(record["kept"]):  # the kept layers' weights are the teacher's
            key = "attention.query_key_value.weight"
            assert torch.equal(
                student.gpt_neox.layers[new].get_parameter(key), teacher_model.gpt_neox.layers[old].get_parameter(key)
            )
        if name in ("bi", "blk"):
            assert record["calibration"]["examples"] == 6 and record["calibration"]["seed"] == 1
            assert len(record["scores"]) == (5 if name == "bi" else 4)  # block: runs of 2 start at 0..3
        else:
            assert record["scores"] is None
    # the same choice as calling the selection directly with the stage's calibration settings
    data = DataConfig.model_validate(stages["bi"].spec["data"])
    direct = choose_layers(
        teacher_model, _load(teacher)[1], PruneConfig(method="block_influence", keep=3, calibration_examples=6),
        data=data, prompt=PromptConfig(max_prompt_tokens=96), seed=1, max_answer_tokens=8,
    )  # fmt: skip
    saved = json.loads((stages["bi"].folder(tmp_path) / "model" / "pruning.json").read_text())
    assert saved["kept"] == direct.kept and saved["scores"] == pytest.approx(direct.scores, abs=1e-9)
    blk = json.loads((stages["blk"].folder(tmp_path) / "model" / "pruning.json").read_text())
    assert blk["dropped"] == list(range(blk["dropped"][0], blk["dropped"][0] + 2))  # one contiguous run
    assert json.loads((stages["sp"].folder(tmp_path) / "model" / "pruning.json").read_text())["kept"] == [0, 2, 4]
    assert any("block influence of each layer" in r.getMessage() for r in caplog.records)
    assert any("bi/prune: kept layers" in r.getMessage() for r in caplog.records)


def test_a_crash_while_saving_leaves_no_half_result(shared_data, teacher, tmp_path, monkeypatch) -> None:
    from qadistill.models import loading

    plan = _plan(shared_data, tmp_path, teacher)
    stage = next(s for s in plan.stages if s.student == "bi")
    real = loading.write_model_files

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(loading, "write_model_files", crash)
    with pytest.raises(QADistillError, match=r"cannot write .*/model: disk full"):
        _run_stage(_Context(plan, tmp_path, progress=False), stage)
    assert not stage.done(tmp_path) and not (stage.folder(tmp_path) / "model").exists()
    monkeypatch.setattr(loading, "write_model_files", real)
    _run_stage(_Context(plan, tmp_path, progress=False), stage)  # run again: the stage completes
    assert stage.done(tmp_path) and (stage.folder(tmp_path) / "model" / "pruning.json").is_file()


def test_standalone_distill_with_a_measured_pruned_student(shared_data, teacher, tmp_path) -> None:
    job = DistillJob(
        teacher=str(teacher),
        student="prune:block:3",
        out_dir=tmp_path / "run",
        data={"dataset": "squad_v2", "data_dir": shared_data, "splits": {"max_train": 8}},
        prompt={"max_prompt_tokens": 96},
        train={"max_steps": 1, "batch_size": 2, "eval_interval": 0, "max_answer_tokens": 8},
        distill={"off_policy": {"enabled": False}},
    )
    assert job.prune_keep() == PruneConfig(method="block", keep=3)
    result = run_distill(job, progress=False)
    record = json.loads((tmp_path / "run" / "pruning.json").read_text())
    assert (result["teacher_layers"], result["student_layers"]) == (5, 3) == (5, len(record["kept"]))
    assert record["method"] == "block" and len(record["scores"]) == 4 and record["calibration"]["split"] == "train"


@pytest.mark.parametrize("student", ["prune:block_influence:0", "prune:blocks:2", "prune:block_influence"])
def test_standalone_bad_measured_prune(student: str, tmp_path) -> None:
    from qadistill.jobs import build_job

    with pytest.raises(QADistillError, match="prune:block_influence\\|block\\|spread:<layers to keep>"):
        build_job(DistillJob, {"teacher": "t", "student": student, "out_dir": str(tmp_path)}, "distill job")
