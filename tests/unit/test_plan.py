"""The plan: stage order and counts, path safety, fingerprints, parameter counts and the dry-run table."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from qadistill.cli import run as run_command
from qadistill.errors import QADistillError
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
    evaluated = cells * (2 * 3 + students * 3 * 3)  # teachers for every seed, students once per training
    assert len(plan.evaluations) == evaluated * 2  # on both eval splits
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
    assert pruned and all(any(d.endswith("/pythia-1b-half/prune") for d in s.deps) for s in pruned)


def test_teacher_trained_once_and_evaluated_for_every_seed() -> None:
    plan = plan_experiment(grid())
    teacher_stages = [s for s in plan.stages if s.role == "teacher"]
    assert {s.seed for s in teacher_stages if s.is_training} == {3}
    assert len([s for s in teacher_stages if s.is_training]) == 2 * 2 * 2
    evals = [s for s in teacher_stages if s.kind == "evaluate"]
    assert len(evals) == 2 * 2 * 2 * 3 * 2 and {s.seed for s in evals} == {1, 2, 3}
    assert all(plan.by_id[s.deps[0]].is_training and plan.by_id[s.deps[0]].seed == 3 for s in evals)
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
    evaluations = 2 * 3 * 2 * (2 * 5 + 8 * 3 * 5)  # splits x cells x (teachers per seed + student trainings)
    assert f"({trainings} trainings, {evaluations} evaluations, 0 pruned initialisations)" in text
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


def test_student_preparation_chain_prune_heal_sft() -> None:
    """A pruned student is pruned, healed and fine-tuned once (first seed); every method of every seed starts from
    the last of these, distillation and the fine-tuned baseline alike."""
    teachers = copy.deepcopy(GRID["teachers"])
    teachers[0]["students"][1]["init"] = ["heal", "sft"]
    teachers[0]["students"][0]["init"] = "sft"
    plan = plan_experiment(grid(teachers=teachers, init={"heal": {"train": {"max_steps": 7}}}))
    base = "squad_v2/0shot/pythia-1b"
    prune, heal, sft = (plan.by_id[f"{base}/pythia-1b-half/{step}"] for step in ("prune", "heal", "sft"))
    assert (prune.kind, heal.kind, sft.kind) == ("prune", "heal", "sft_init")
    assert heal.deps == (prune.id, f"{base}/teacher/train") and sft.deps == (heal.id,)
    assert heal.spec["distill"]["positions"] == "all" and heal.spec["distill"]["divergence"] == "forward_kl"
    assert not heal.spec["distill"]["off_policy"]["enabled"] and heal.spec["train"]["max_steps"] == 7
    assert sft.spec["train"]["keep"] == "best" and sft.spec["train"]["select_metric"] == "val_ce"
    assert {s.seed for s in (prune, heal, sft)} == {3}
    for stage in plan.trainings:
        if stage.id.startswith(f"{base}/pythia-1b-half/") and stage.kind in ("distill", "finetune"):
            assert sft.id in stage.deps and stage.spec["student"] is None
    own_model_sft = plan.by_id[f"{base}/pythia-160m/sft"]
    assert own_model_sft.deps == () and own_model_sft.spec["student"] == "EleutherAI/pythia-160m"
    finetuned = plan.by_id[f"{base}/pythia-160m/finetune/seed1/train"]
    assert finetuned.deps == (own_model_sft.id,)


def test_init_settings_are_validated() -> None:
    teachers = copy.deepcopy(GRID["teachers"])
    teachers[0]["students"][0]["init"] = "heal"  # not pruned
    with pytest.raises(QADistillError, match="init heal is for pruned students"):
        grid(teachers=teachers)
    teachers[0]["students"][0]["init"] = ["sft", "heal"]
    with pytest.raises(QADistillError, match="must be one of"):
        grid(teachers=teachers)
    teachers[0]["students"][0]["init"] = "sft"
    with pytest.raises(QADistillError, match="init.sft.train"):
        grid(teachers=teachers, init={"sft": {"train": {"keep": "best", "eval_interval": 0}}})


def test_a_budget_override_replaces_the_other_budget() -> None:
    config = grid(train={"max_steps": 50}, methods=[{"name": "ft", "kind": "finetune", "train": {"epochs": 2}}])
    method_train = config.method_train(config.methods[0])
    assert (method_train.epochs, method_train.max_steps) == (2, None)
    with pytest.raises(QADistillError, match="exactly one of max_steps and epochs"):
        grid(train={"max_steps": 50, "epochs": 1})


def test_untuned_baseline_is_evaluated_for_every_seed() -> None:
    plan = plan_experiment(grid(evaluate_untuned=True))
    untuned = [s for s in plan.stages if s.role == "untuned"]
    assert len(untuned) == 2 * 2 * 2 * 3 * 2  # cells x teachers x seeds x splits
    assert all(s.kind == "evaluate" and not s.deps and s.method == "untuned" for s in untuned)
    assert {s.spec["model"] for s in untuned} == {"EleutherAI/pythia-1b", "Qwen/Qwen2.5-1.5B"}


def test_measured_prune_stage_carries_its_calibration_settings() -> None:
    teachers = copy.deepcopy(GRID["teachers"])
    teachers[0]["students"] = [
        {"name": "bi", "prune": {"method": "block_influence", "keep": 12}},
        {"name": "sp", "prune": {"method": "spread", "keep": 12, "calibration_examples": 9}},
        {"name": "half", "prune": "half"},
    ]
    plan = plan_experiment(grid(teachers=teachers, datasets=["squad_v2"], shots=[1]))
    base = "squad_v2/1shot/pythia-1b"
    measured = plan.by_id[f"{base}/bi/prune"]
    assert measured.kind == "prune" and measured.seed == 3  # the first seed
    assert measured.spec["prune"] == {"method": "block_influence", "keep": 12, "calibration_examples": 64}
    assert measured.spec["data"]["dataset"] == "squad_v2" and measured.spec["prompt"]["shots"] == 1
    assert measured.spec["seed"] == 3 and measured.spec["max_answer_tokens"] == plan.config.train.max_answer_tokens
    # nothing is measured for spread and presets: their specs (and so finished runs' fingerprints) stay minimal
    assert plan.by_id[f"{base}/sp/prune"].spec == {"prune": {"method": "spread", "keep": 12}}
    assert plan.by_id[f"{base}/half/prune"].spec == {"prune": "half"}
    # pythia-1b has 16 layers of one size: 12 kept layers have one count, whichever they are
    assert (
        measured.params
        == plan.by_id[f"{base}/sp/prune"].params
        == planned_params("EleutherAI/pythia-1b", [0, 3] + list(range(6, 16)))
    )
    assert measured.params < plan.by_id[f"{base}/teacher/train"].params


def test_measured_prune_parameter_count_matches_any_pruning(tmp_path: Path) -> None:
    from qadistill.models import build_tiny_model, param_count, prune_layers, save_model

    model = build_tiny_model("qwen2.5", num_layers=6, hidden_size=32, num_heads=4, vocab_size=512)
    save_model(model, None, tmp_path / "m")
    teachers = [
        {
            "name": "t",
            "model": str(tmp_path / "m"),
            "students": [{"name": "s", "prune": {"method": "block", "keep": 4}}],
        }
    ]
    plan = plan_experiment(grid(teachers=teachers, datasets=["squad_v2"], shots=[0]))
    stage = plan.by_id["squad_v2/0shot/t/s/prune"]
    assert (
        stage.params == param_count(prune_layers(model, [1, 2, 4, 5])) == param_count(prune_layers(model, [0, 1, 2, 3]))
    )
