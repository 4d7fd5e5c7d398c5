"""The experiment config: validation with one-line errors naming the key, overrides, the resolved config."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from qadistill.errors import QADistillError
from qadistill.experiments.config import (
    RESOLVED_CONFIG,
    ExperimentConfig,
    config_from_dict,
    load_config,
    save_resolved,
)
from qadistill.overrides import apply_overrides, parse_scalar, split_override

BASE: dict = {
    "name": "unit",
    "teachers": [
        {
            "name": "pythia-410m",
            "model": "EleutherAI/pythia-410m",
            "students": [{"name": "pythia-70m", "model": "EleutherAI/pythia-70m"}, {"name": "p-half", "prune": "half"}],
        }
    ],
    "methods": [
        {"name": "srkl-adaptive", "kind": "distill", "divergence": "srkl", "adaptive": True},
        {"name": "finetune", "kind": "finetune"},
    ],
    "datasets": ["squad_v2"],
}


def make(overrides: list[str] | None = None, **changes) -> ExperimentConfig:
    doc = copy.deepcopy(BASE)
    doc.update(changes)
    return config_from_dict(doc, source="config x.yaml", overrides=overrides or [])


def error_of(overrides: list[str] | None = None, **changes) -> str:
    with pytest.raises(QADistillError) as info:
        make(overrides, **changes)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_defaults_are_filled_in() -> None:
    config = make()
    assert config.seeds == [0, 1, 2, 3, 4]
    assert config.shots == [0, 1]
    assert config.eval_splits == ["validation", "test"]
    assert config.first_seed == 0
    assert [m.display for m in config.methods] == ["distill-srkl+adaptive", "finetune"]


def test_unknown_keys_are_rejected_with_their_path() -> None:
    assert error_of(bogus=1) == "config x.yaml: bogus: unknown key"
    assert error_of(train={"lrr": 1e-4}) == "config x.yaml: train.lrr: unknown key"
    teachers = copy.deepcopy(BASE["teachers"])
    teachers[0]["students"][0]["size"] = 3
    assert error_of(teachers=teachers) == "config x.yaml: teachers.0.students.0.size: unknown key"


def test_out_of_range_values_are_rejected_with_their_path() -> None:
    assert error_of(train={"lr": -1}) == "config x.yaml: train.lr: Input should be greater than 0"
    assert "generation.max_new_tokens: Input should be greater than 0" in error_of(generation={"max_new_tokens": 0})
    assert "shots.0: Input should be 0 or 1" in error_of(shots=[2])
    assert "seeds: seeds must be non-negative" in error_of(seeds=[-1])
    assert "eval_splits.0" in error_of(eval_splits=["train"])
    assert "data.splits: split fractions must sum to 1" in error_of(data={"splits": {"train": 0.9}})
    assert "unknown dataset 'squad'" in error_of(datasets=["squad"])
    assert "listed twice" in error_of(seeds=[0, 0])


def test_student_needs_exactly_one_source_and_valid_prune() -> None:
    teachers = copy.deepcopy(BASE["teachers"])
    teachers[0]["students"] = [{"name": "s"}]
    assert "needs exactly one of 'model' or 'prune'" in error_of(teachers=teachers)
    teachers[0]["students"] = [{"name": "s", "model": "x", "prune": "half"}]
    assert "needs exactly one of 'model' or 'prune'" in error_of(teachers=teachers)
    teachers[0]["students"] = [{"name": "s", "prune": "third"}]
    assert error_of(teachers=teachers).startswith("config x.yaml: teachers.0.students.0.prune")
    teachers[0]["students"] = [{"name": "s", "prune": [0, 0]}]
    assert "repeats a layer" in error_of(teachers=teachers)


def _students(*students: dict) -> list[dict]:
    teachers = copy.deepcopy(BASE["teachers"])
    teachers[0]["students"] = list(students)
    return teachers


def test_measured_prune_is_accepted() -> None:
    from qadistill.config import PruneConfig

    config = make(teachers=_students({"name": "bi", "prune": {"method": "block_influence", "keep": 20}}))
    prune = config.teachers[0].students[0].prune
    assert prune == PruneConfig(method="block_influence", keep=20, calibration_examples=64)
    assert config.teachers[0].students[0].prune_keep is None
    config = make(teachers=_students({"name": "b", "prune": {"method": "block", "keep": 3, "calibration_examples": 8}}))
    assert config.teachers[0].students[0].prune.calibration_examples == 8
    # the resolved config is loadable again with the same value
    again = config_from_dict(yaml.safe_load(yaml.safe_dump(config.model_dump(mode="json"))))
    assert again.teachers[0].students[0].prune == config.teachers[0].students[0].prune


def test_bad_measured_prune_is_one_clear_line() -> None:
    where = "config x.yaml: teachers.0.students.0.prune: "

    def prune_error(prune) -> str:
        return error_of(teachers=_students({"name": "s", "prune": prune}))

    assert prune_error({"method": "middle", "keep": 2}).startswith(
        where + "method: Input should be 'block_influence', 'block' or 'spread'"
    )
    assert prune_error({"method": "block", "keep": 0}) == where + "keep: Input should be greater than or equal to 1"
    assert prune_error({"method": "block"}) == where + "keep: required key is missing"
    assert prune_error({"method": "block", "keep": 2, "calibration_examples": 0}).startswith(
        where + "calibration_examples: Input should be greater than or equal to 1"
    )
    assert prune_error({"method": "block", "keep": 2, "tokens": "all"}) == where + "tokens: unknown key"
    assert prune_error("third").startswith(where + "unknown layer selection 'third'; use half, quarter, every_other")
    assert prune_error(5).startswith(where + "unknown layer selection 5")
    assert prune_error(["a", 1]) == where + "prune ['a', 1] must list layer indices (integers)"
    assert prune_error([]) == where + "prune keeps no layers (empty list)"
    # keep against the teacher's layers, known without loading: the registry (pythia-410m has 24 layers)
    assert "student 's': prune.keep 24 must be below the teacher's 24 layers" in prune_error(
        {"method": "block_influence", "keep": 24}
    )
    assert "prune index 24 is out of range for a teacher with 24 layers" in prune_error([0, 24])
    assert "repeats a layer" in prune_error([0, -24])
    make(teachers=_students({"name": "s", "prune": {"method": "spread", "keep": 23}}, {"name": "t", "prune": [-1]}))


def test_prune_keep_checked_against_a_local_teacher_folder(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"num_hidden_layers": 6}')
    teachers = [
        {"name": "t", "model": str(tmp_path), "students": [{"name": "s", "prune": {"method": "block", "keep": 6}}]}
    ]
    assert "prune.keep 6 must be below the teacher's 6 layers" in error_of(teachers=teachers)
    teachers[0]["students"][0]["prune"]["keep"] = 5
    make(teachers=teachers)
    teachers[0]["model"] = "some-org/unknown-model"  # unknown without a download: checked when pruning
    teachers[0]["students"][0]["prune"]["keep"] = 500
    make(teachers=teachers)


@pytest.mark.parametrize("bad", ["../escape", "/abs", "a/b", ".hidden", "", "x..y", "a\\b", "sp ace"])
def test_names_that_could_escape_the_run_dir_are_rejected(bad: str) -> None:
    teachers = copy.deepcopy(BASE["teachers"])
    teachers[0]["students"][0]["name"] = bad
    assert "teachers.0.students.0.name" in error_of(teachers=teachers)
    methods = copy.deepcopy(BASE["methods"])
    methods[1]["name"] = bad
    assert "methods.1.name" in error_of(methods=methods)


def test_names_must_be_unique() -> None:
    methods = copy.deepcopy(BASE["methods"]) + [{"name": "finetune", "kind": "finetune", "label": "ft2"}]
    assert "method name 'finetune' is used twice" in error_of(methods=methods)
    methods = copy.deepcopy(BASE["methods"]) + [{"name": "ft2", "kind": "finetune"}]
    assert "share the report label 'finetune'" in error_of(methods=methods)
    teachers = copy.deepcopy(BASE["teachers"]) * 2
    assert "teacher name 'pythia-410m' is used twice" in error_of(teachers=teachers)
    teachers = copy.deepcopy(BASE["teachers"]) + [
        {"name": "other", "model": "EleutherAI/pythia-160m", "students": [{"name": "pythia-70m", "prune": "half"}]}
    ]
    assert "student name 'pythia-70m' is used by teachers" in error_of(teachers=teachers)


def test_method_fields_must_match_their_kind() -> None:
    assert "needs a divergence" in error_of(methods=[{"name": "d", "kind": "distill"}])
    bad = [{"name": "f", "kind": "finetune", "divergence": "skl"}]
    assert "takes no divergence" in error_of(methods=bad)
    bad = [{"name": "d", "kind": "distill", "divergence": "srkl", "distill": {"divergence": "skl"}}]
    assert "'divergence' and 'adaptive' keys" in error_of(methods=bad)


def test_method_overrides_are_merged_and_validated() -> None:
    methods = copy.deepcopy(BASE["methods"])
    methods[0]["train"] = {"lr": 3e-4}
    methods[0]["distill"] = {"skew_alpha": 0.3, "off_policy": {"capacity": 7}}
    config = make(methods=methods, train={"lr": 1e-5, "max_steps": 9})
    train = config.method_train(config.methods[0])
    assert (train.lr, train.max_steps) == (3e-4, 9)
    assert config.method_train(config.methods[1]).lr == 1e-5
    distill = config.method_distill(config.methods[0])
    assert (distill.divergence, distill.skew_alpha, distill.off_policy.capacity) == ("srkl", 0.3, 7)
    assert distill.off_policy.enabled is True  # from the method's `adaptive`
    methods[0]["train"] = {"lr": -1}
    assert error_of(methods=methods) == "config x.yaml: methods.0.train.lr: Input should be greater than 0"
    methods[0]["train"] = {"learning_rate": 1}
    assert error_of(methods=methods) == "config x.yaml: methods.0.train.learning_rate: unknown key"
    teachers = copy.deepcopy(BASE["teachers"])
    teachers[0]["train"] = {"max_steps": 0}
    assert "teachers.0.train.max_steps: Input should be greater than 0" in error_of(teachers=teachers)


def test_non_adaptive_method_switches_off_policy_off() -> None:
    config = make(methods=[{"name": "skl", "kind": "distill", "divergence": "skl"}])
    assert config.method_distill(config.methods[0]).off_policy.enabled is False
    assert config.methods[0].display == "distill-skl"


# ------------------------------------------------------------------------------------------------ overrides


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1e-4", 1e-4),
        ("2.5E+3", 2500.0),
        ("3", 3),
        ("true", True),
        ("null", None),
        ("[0, 1]", [0, 1]),
        ("[1e-4, x]", [1e-4, "x"]),
        ("bf16", "bf16"),
        ("", ""),
    ],
)
def test_override_values_use_yaml_typing(text: str, value) -> None:
    assert parse_scalar(text) == value


def test_split_override() -> None:
    assert split_override("train.lr=1e-4") == (["train", "lr"], 1e-4)
    assert split_override("data.data_dir = /x/y") == (["data", "data_dir"], "/x/y")
    for bad in ("train.lr", "=3", "train..lr=1", "a b=1"):
        with pytest.raises(QADistillError, match="override"):
            split_override(bad)


def test_overrides_of_nested_keys_lists_and_named_items() -> None:
    config = make(
        [
            "train.lr=1e-4",
            "data.splits.max_test=5",
            "seeds=[3, 4]",
            "teachers.0.model=EleutherAI/pythia-160m",
            "teachers.pythia-410m.students.p-half.prune=quarter",
            "methods.finetune.train.max_steps=7",
            "distill.off_policy.capacity=11",
            "generation.max_new_tokens=8",
        ]
    )
    assert config.train.lr == 1e-4
    assert config.data.splits.max_test == 5
    assert config.seeds == [3, 4]
    assert config.teachers[0].model == "EleutherAI/pythia-160m"
    assert config.teachers[0].students[1].prune == "quarter"
    assert config.method_train(config.methods[1]).max_steps == 7
    assert config.distill.off_policy.capacity == 11
    assert config.generation.max_new_tokens == 8


def test_override_errors_name_the_override() -> None:
    assert error_of(["train.lr=-1"]) == (
        "config x.yaml: train.lr: Input should be greater than 0 (from override 'train.lr=-1')"
    )
    assert "train.nope: unknown key" in error_of(["train.nope=1"])
    assert "no index 3" in error_of(["teachers.3.model=x"])
    assert "no item named 'ghost'" in error_of(["methods.ghost.train.lr=1"])
    assert "name is a str, not a mapping or list" in error_of(["name.x=1"])


def test_apply_overrides_leaves_unrelated_keys() -> None:
    doc = {"a": {"b": 1, "c": 2}}
    assert apply_overrides(doc, ["a.b=5", "d.e=x"]) == {"a": {"b": 5, "c": 2}, "d": {"e": "x"}}


# --------------------------------------------------------------------------------------------- files


def test_load_config_file_errors(tmp_path: Path) -> None:
    with pytest.raises(QADistillError, match="no such file"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("teachers: [\n", encoding="utf-8")
    with pytest.raises(QADistillError, match=r"invalid YAML at line \d+"):
        load_config(bad)
    listed = tmp_path / "list.yaml"
    listed.write_text("- 1\n", encoding="utf-8")
    with pytest.raises(QADistillError, match="top level must be a mapping"):
        load_config(listed)
    ok = tmp_path / "ok.yaml"
    ok.write_text(yaml.safe_dump({**BASE, "train": {"lr": 0}}), encoding="utf-8")
    with pytest.raises(QADistillError) as info:
        load_config(ok)
    assert str(info.value) == f"config {ok}: train.lr: Input should be greater than 0"


def test_resolved_config_is_saved_and_loads_back(tmp_path: Path) -> None:
    source = tmp_path / "x.yaml"
    source.write_text(yaml.safe_dump(BASE), encoding="utf-8")
    config = load_config(source, ["train.lr=1e-4", "methods.srkl-adaptive.distill.skew_alpha=0.3"])
    path = save_resolved(config, tmp_path / "run")
    assert path == tmp_path / "run" / RESOLVED_CONFIG
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert doc["train"]["lr"] == 1e-4
    assert doc["seeds"] == [0, 1, 2, 3, 4]  # defaults are written out
    assert "divergence" not in doc["distill"]  # set per method
    assert load_config(path) == config


def test_repository_configs_are_valid() -> None:
    root = Path(__file__).resolve().parents[2] / "configs"
    names = sorted(p.name for p in root.glob("*.yaml"))
    assert {"study.yaml", "demo.yaml", "sweep_distill_hparams.yaml", "icl_threshold_map.yaml"} <= set(names)
    for path in root.glob("*.yaml"):
        load_config(path)
