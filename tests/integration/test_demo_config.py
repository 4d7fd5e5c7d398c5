"""The embedded demo: its packaged config, its plan and, with the converted SmolLM2, a shrunken real run."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from qadistill.experiments.config import load_config
from qadistill.experiments.demo import demo_config, demo_config_text
from qadistill.experiments.plan import format_plan, plan_experiment
from qadistill.study import run_demo

REPO = Path(__file__).resolve().parents[2]


def test_packaged_demo_config_is_the_repository_one() -> None:
    assert demo_config_text() == (REPO / "configs" / "demo.yaml").read_text(encoding="utf-8")
    assert demo_config() == load_config(REPO / "configs" / "demo.yaml")


def test_demo_grid() -> None:
    config = demo_config()
    assert [t.model for t in config.teachers] == ["smollm2-135m-instruct"]
    assert [s.prune for s in config.teachers[0].students] == ["half", "quarter"]
    assert {(m.kind, m.divergence, m.adaptive) for m in config.methods} == {
        ("distill", "srkl", True),
        ("finetune", None, False),
    }
    assert config.shots == [0, 1] and len(config.seeds) == 2 and config.eval_splits == ["validation", "test"]
    plan = plan_experiment(config)
    per_mode_trainings = 1 + 2 * 2 * 2  # teacher + students x methods x seeds
    assert len(plan.trainings) == len(config.datasets) * 2 * per_mode_trainings
    per_mode_evaluated = 2 + 2 * 2 * 2  # the teacher for each seed + every student training
    assert len(plan.evaluations) == len(config.datasets) * 2 * per_mode_evaluated * 2  # both splits


def test_demo_students_keep_half_and_a_quarter_of_the_layers() -> None:
    from qadistill.models import get_model_info, resolve_keep

    layers = get_model_info("smollm2-135m-instruct").num_layers
    assert layers == 30
    assert len(resolve_keep("half", layers)) == 15
    assert len(resolve_keep("quarter", layers)) == 8


def test_demo_dry_run_shows_parameter_counts() -> None:
    plan = plan_experiment(demo_config())
    text = format_plan(plan)
    assert "smollm2-135m-half" in text and "smollm2-135m-quarter" in text
    params = {s.model: s.params for s in plan.stages}
    assert params["smollm2-135m"] == 134_515_008
    assert 75e6 < params["smollm2-135m-half"] < 85e6
    assert 50e6 < params["smollm2-135m-quarter"] < 60e6
    assert "135M" in text and "?" not in text.split("estimated compute")[0]


def test_data_dir_switches_the_demo_to_squad_v2(tmp_path: Path) -> None:
    config = demo_config(tmp_path)
    assert config.datasets == ["squad_v2"]
    assert config.data.data_dir == tmp_path


def smollm2_ready() -> bool:
    from qadistill.models.smollm2 import is_converted, smollm2_dir

    return is_converted(smollm2_dir())


@pytest.mark.slow
@pytest.mark.skipif(not smollm2_ready(), reason="SmolLM2-135M-Instruct is not converted (run `qadistill setup`)")
def test_shrunken_demo_runs_end_to_end_on_smollm2(tmp_path: Path) -> None:
    """The real demo path (SmolLM2 teacher, pruned student, distill + finetune, report) at a tiny size."""
    shrink = [
        "shots=[0]",
        "seeds=[0]",
        "eval_splits=[validation]",
        "teachers.0.students=[{name: smollm2-135m-quarter, prune: quarter}]",
        "teachers.0.train.max_steps=1",
        "train.max_steps=2",
        "train.batch_size=2",
        "train.eval_interval=2",
        "prompt.max_prompt_tokens=128",
        "train.eval_examples=2",
        "data.splits.max_validation=3",
        "generation.max_new_tokens=4",
    ]
    lines: list[str] = []
    outcome = run_demo(tmp_path / "demo", overrides=shrink, progress=False, echo=lines.append)
    assert (
        len(outcome.ran) == len(outcome.plan.stages) == 1 + 1 + 1 + 2 * 2
    )  # teacher, its eval, init, 2 x (train, eval)
    with outcome.summary_csv.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {(r["model"], r["method"]) for r in rows} == {
        ("smollm2-135m", "teacher"),
        ("smollm2-135m-quarter", "finetune"),
        ("smollm2-135m-quarter", "distill-srkl+adaptive"),
    }
    assert "smollm2-135m-quarter" in "\n".join(lines)
    # keep_models: false removed the student models once evaluated; the teacher stays
    assert not any((tmp_path / "demo").rglob("seed0/train/model"))
    assert (tmp_path / "demo" / "demo-en" / "0shot" / "smollm2-135m" / "teacher" / "train" / "model").is_dir()
