"""The plan: stage order and counts, path safety, fingerprints, parameter counts and the dry-run table."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from qadistill.errors import QADistillError
from qadistill.experiments.commands import run_command
from qadistill.experiments.config import config_from_dict, load_config
from qadistill.experiments.plan import check_stage_path, plan_experiment, planned_params
from qadistill.experiments.runner import run_experiment

REPO = Path(__file__).resolve().parents[2]

GRID: dict = {
    "name": "grid",
    "teachers": [
        {
            "name": "pythia-1b",
            "model": "EleutherAI/pythia-1b",
            "students": [
                {"name": "pythia-160m", "model": "EleutherAI/pythia-160m"},
                {"name": "pythia-1b-half", "prune": "half"},
            ],
        },
        {
            "name": "qwen2.5-1.5b",
            "model": "Qwen/Qwen2.5-1.5B",
            "students": [{"name": "qwen2.5-0.5b", "model": "Qwen/Qwen2.5-0.5B"}],
        },
    ],
    "methods": [
        {"name": "srkl", "kind": "distill", "divergence": "srkl", "adaptive": True},
        {"name": "skl", "kind": "distill", "divergence": "skl", "adaptive": True},
        {"name": "finetune", "kind": "finetune"},
    ],
    "datasets": ["squad_v2", "mlqa-de"],
    "shots": [0, 1],
    "seeds": [3, 1, 2],
    "eval_splits": ["validation", "test"],
}


def grid(**changes):
    doc = copy.deepcopy(GRID)
    doc.update(changes)
    return config_from_dict(doc)


def test_stage_counts() -> None:
    plan = plan_experiment(grid())
    cells = 2 * 2  # datasets x shots
    students = 3  # over both teachers
    trainings = cells * (2 + students * 3 * 3)  # teachers once + students x methods x seeds
    assert len(plan.trainings) == trainings
    assert len(plan.evaluations) == trainings * 2  # every trained model on both eval splits
    assert sum(s.kind == "prune" for s in plan.stages) == cells  # one pruned student
    assert len({s.id for s in plan.stages}) == len(plan.stages)


def test_dependencies_come_first_and_teachers_precede_their_students() -> None:
    plan = plan_experiment(grid())
    position = {s.id: i for i, s in enumerate(plan.stages)}
    for stage in plan.stages:
        for dep in stage.deps:
            assert position[dep] < position[stage.id], (dep, stage.id)
    for stage in plan.stages:
        if stage.role == "student":
            teacher_train = "/".join(stage.id.split("/")[:3] + ["teacher", "train"])
            assert position[teacher_train] < position[stage.id]
    distills = [s for s in plan.trainings if s.kind == "distill"]
    assert all(any(d.endswith("/teacher/train") for d in s.deps) for s in distills)
    pruned = [s for s in plan.trainings if s.model == "pythia-1b-half"]
    assert pruned and all(any(d.endswith("/pythia-1b-half/init") for d in s.deps) for s in pruned)


def test_teacher_trained_and_evaluated_once_with_the_first_seed() -> None:
    plan = plan_experiment(grid())
    teacher_stages = [s for s in plan.stages if s.role == "teacher"]
    assert {s.seed for s in teacher_stages} == {3}
    assert len([s for s in teacher_stages if s.is_training]) == 2 * 2 * 2
    evals = [s for s in teacher_stages if s.kind == "evaluate"]
    assert len(evals) == 2 * 2 * 2 * 2
    assert all(s.method == "teacher" for s in teacher_stages)
    student_seeds = {s.seed for s in plan.stages if s.role == "student" and s.kind != "prune"}
    assert student_seeds == {1, 2, 3}


def test_stage_metadata_has_the_report_names() -> None:
    plan = plan_experiment(grid())
    stage = plan.by_id["mlqa-de/1shot/pythia-1b/pythia-160m/skl/seed2/eval/test"]
    assert (stage.model, stage.role, stage.method, stage.dataset, stage.shots, stage.split, stage.seed) == (
        "pythia-160m", "student", "distill-skl+adaptive", "mlqa-de", 1, "test", 2,
    )  # fmt: skip
    assert (stage.teacher, stage.params, stage.teacher_params) == ("pythia-1b", 162_322_944, 1_011_781_632)
    assert stage.result_file == "metrics.json"
    assert plan.by_id[stage.deps[0]].result_file == "train_result.json"


def test_stage_paths_stay_inside_the_run_dir(tmp_path: Path) -> None:
    plan = plan_experiment(grid(), tmp_path)
    root = tmp_path.resolve()
    for stage in plan.stages:
        assert stage.folder(tmp_path).resolve().is_relative_to(root)
        assert check_stage_path(stage.id) == stage.id
    for bad in ("../x/train", "/etc/train", "a//b", "a/./b", "a/../b", "a\\b", ".git/x"):
        with pytest.raises(QADistillError, match="stage path"):
            check_stage_path(bad, tmp_path)


def test_fingerprints_follow_settings_and_dependencies() -> None:
    base = plan_experiment(grid())
    changed = plan_experiment(
        grid(methods=[*GRID["methods"][:2], {"name": "finetune", "kind": "finetune", "train": {"lr": 1e-3}}])
    )
    for stage in base.stages:
        other = changed.by_id[stage.id]
        moved = base.fingerprint(stage) != changed.fingerprint(other)
        assert moved == (stage.method_name == "finetune"), stage.id
    teacher_lr = plan_experiment(grid(train={"lr": 1e-3}))
    assert all(base.fingerprint(s) != teacher_lr.fingerprint(teacher_lr.by_id[s.id]) for s in base.stages)
    # a pruned student's stages depend on the teacher's training through the init stage
    overridden = copy.deepcopy(GRID["teachers"])
    overridden[0]["train"] = {"max_steps": 5}
    teacher_only = plan_experiment(grid(teachers=overridden))
    for stage in base.stages:
        moved = base.fingerprint(stage) != teacher_only.fingerprint(teacher_only.by_id[stage.id])
        under_first_teacher = stage.teacher == "pythia-1b"
        needs_teacher = (
            stage.role == "teacher" or stage.method_name in ("srkl", "skl") or stage.model == "pythia-1b-half"
        )
        assert moved == (under_first_teacher and needs_teacher), stage.id


def test_pruned_parameter_count_matches_prune_layers(tmp_path: Path) -> None:
    from qadistill.models import build_tiny_model, param_count, prune_layers, save_model

    model = build_tiny_model("llama", num_layers=6, hidden_size=32, num_heads=4, vocab_size=512)
    save_model(model, None, tmp_path / "m")
    for keep in ("half", "quarter", [0, 5]):
        assert planned_params(str(tmp_path / "m"), keep) == param_count(prune_layers(model, keep))
    assert planned_params(str(tmp_path / "m")) == param_count(model)
    assert planned_params("no/such-model-anywhere") is None
    smollm2_half = planned_params("smollm2-135m-instruct", "half")
    assert smollm2_half is not None and 70e6 < smollm2_half < 90e6  # 15 of 30 layers + the tied embedding


@pytest.fixture()
def no_model_loading(monkeypatch):
    """Fail the test if anything tries to load weights or tokenizers."""
    import qadistill.models as models
    import qadistill.models.loading as loading

    def refuse(*args, **kwargs):
        raise AssertionError("the dry run loaded a model")

    for module in (models, loading):
        for name in ("load_model", "load_model_and_tokenizer", "load_tokenizer"):
            monkeypatch.setattr(module, name, refuse)


def test_dry_run_of_the_study_config(tmp_path: Path, no_model_loading) -> None:
    lines: list[str] = []
    out = tmp_path / "study"
    outcome = run_experiment(load_config(REPO / "configs" / "study.yaml"), out, dry_run=True, echo=lines.append)
    text = "\n".join(lines)
    assert not out.exists()  # nothing ran, nothing was written
    assert outcome.ran == []
    trainings = 3 * 2 * (2 + 8 * 3 * 5)
    assert f"({trainings} trainings, {2 * trainings} evaluations, 0 pruned initialisations)" in text
    for params in ("2.78B", "1.41B", "1.01B", "405M", "162M", "70.4M", "7.62B", "3.09B", "1.54B", "494M"):
        assert params in text
    for name in ("pythia-2.8b", "pythia-70m", "qwen2.5-7b", "qwen2.5-0.5b", "distill-srkl+adaptive", "finetune"):
        assert name in text
    assert "estimated compute: training" in text and "EFLOPs" in text
    assert "?" not in text.split("estimated compute")[0]  # every count is known without downloads


def test_dry_run_via_the_command(tmp_path: Path, no_model_loading) -> None:
    app = typer.Typer()
    app.command("run")(run_command)
    app.command("noop")(lambda: None)  # keep `run` a named subcommand
    result = CliRunner().invoke(
        app,
        ["run", str(REPO / "configs" / "study.yaml"), "--out", str(tmp_path / "o"), "--dry-run", "seeds=[0]",
         "datasets=[squad_v2]", "shots=[0]"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "stages: 78 (26 trainings, 52 evaluations" in result.output
    assert "seeds 0, eval splits" in result.output
    assert not (tmp_path / "o").exists()
    bad = CliRunner().invoke(app, ["run", str(REPO / "configs" / "study.yaml"), "--dry-run", "train.lr=0"])
    assert isinstance(bad.exception, QADistillError)
    assert "train.lr: Input should be greater than 0 (from override 'train.lr=0')" in str(bad.exception)
