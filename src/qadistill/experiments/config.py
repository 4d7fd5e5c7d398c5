"""The typed experiment config: which teachers, students, methods, datasets, prompt modes, seeds and settings.

A config is YAML validated by pydantic: unknown keys and out-of-range values are errors, reported on one line
naming the key (`config configs/x.yaml: train.lr: Input should be greater than 0`). Command-line overrides
(`train.lr=1e-4`) are applied to the YAML before validation, so they are checked exactly like the file.
Each method (and each teacher) may carry its own `train` / `distill` overrides on top of the shared sections,
which is how hyperparameter sweeps are written; the merged settings are validated when the config is loaded.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from qadistill.config import GenerationConfig, ModelLoadConfig, PruneConfig, SplitConfig, Strict
from qadistill.errors import QADistillError, format_validation_error
from qadistill.experiments.executor_config import ExecutorConfig, LocalExecutor
from qadistill.io import atomic_write_text
from qadistill.overrides import apply_overrides
from qadistill.tracking import TrackingConfig
from qadistill.train.config import DistillConfig, TrainConfig
from qadistill.yaml_safe import load_yaml

RESOLVED_CONFIG = "config.resolved.yaml"
DIVERGENCE_NAMES = ("forward_kl", "reverse_kl", "skl", "srkl", "jsd", "tvd")
PRUNE_PRESETS = ("half", "quarter", "every_other")
PRUNE_METHODS = ("block_influence", "block", "spread")
Shots = Literal[0, 1]
EvalSplit = Literal["validation", "test"]
ALL_SHOTS: tuple[Shots, ...] = (0, 1)
EVAL_SPLITS: tuple[EvalSplit, ...] = ("validation", "test")

# A name becomes one folder name under the run dir: no separators, no "..", no leading dot or dash.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,79}$")


def check_name(value: str, what: str = "name") -> str:
    """A name that is safe as one path component (it cannot escape the run dir); ValueError otherwise."""
    if not isinstance(value, str) or not _NAME.match(value) or ".." in value:
        raise ValueError(
            f"{what} {value!r} must be 1-80 characters of letters, digits, '_', '-', '+', '.', start with a letter "
            "or digit and contain no '..' (it names a folder)"
        )
    return value


def deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`base` updated by `extra`, recursing into nested mappings (neither input is modified)."""
    merged = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


InitStep = Literal["heal", "sft"]


class StudentSpec(Strict):
    """A student of one teacher: a model spec (hub id, registry name, folder) or the teacher with layers pruned.

    `prune` is `half`, `quarter`, `every_other`, a list of layer indices to keep, or `{method, keep,
    calibration_examples}` (`PruneConfig`: `block_influence` or `block` measured on training prompts, or evenly
    `spread`). The pruned copy is taken from the fine-tuned teacher of the same dataset and prompt mode, so
    distilled and fine-tuned students start alike.
    `init` prepares the student once before its methods train it (DistiLLM's pipeline): `heal` distils the
    teacher into a pruned student at every position (`init.heal` settings), `sft` fine-tunes it on the task and
    keeps its best validation (`init.sft`); `[heal, sft]` does both, in that order. Every method of the student
    (distillation and the fine-tuned baseline alike) continues from the result with the same budget.
    """

    name: str
    model: str | None = None
    prune: PruneConfig | list[int] | Literal["half", "quarter", "every_other"] | None = None
    init: list[InitStep] = Field(default_factory=list)

    @field_validator("init", mode="before")
    @classmethod
    def _init_list(cls, value: Any) -> Any:
        if value is None or value == "none":
            return []
        return [value] if isinstance(value, str) else value

    @field_validator("init")
    @classmethod
    def _init_order(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value) or value not in ([], ["heal"], ["sft"], ["heal", "sft"]):
            raise ValueError(f"init {value} must be one of: sft, heal, [heal, sft]")
        return value

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        return check_name(value, "student name")

    @field_validator("prune", mode="before")
    @classmethod
    def _prune(cls, value: Any) -> Any:
        """One clear message per form (a union's errors would list every form's complaint)."""
        if value is None or isinstance(value, PruneConfig):
            return value
        if isinstance(value, dict):
            try:
                return PruneConfig.model_validate(value)
            except ValidationError as exc:
                raise ValueError(format_validation_error(exc)) from None
        if isinstance(value, list):
            if not value:
                raise ValueError("prune keeps no layers (empty list)")
            if not all(isinstance(i, int) and not isinstance(i, bool) for i in value):
                raise ValueError(f"prune {value} must list layer indices (integers)")
            if len(set(value)) != len(value):
                raise ValueError(f"prune {value} repeats a layer")
            return value
        if isinstance(value, str) and value in PRUNE_PRESETS:
            return value
        raise ValueError(
            f"unknown layer selection {value!r}; use {', '.join(PRUNE_PRESETS)}, a list of layer indices or "
            f"{{method: {'|'.join(PRUNE_METHODS)}, keep: N}}"
        )

    @model_validator(mode="after")
    def _one_source(self) -> StudentSpec:
        if (self.model is None) == (self.prune is None):
            raise ValueError(f"student {self.name!r} needs exactly one of 'model' or 'prune'")
        if "heal" in self.init and self.prune is None:
            raise ValueError(f"student {self.name!r}: init heal is for pruned students (it has no 'prune')")
        return self

    @property
    def prune_keep(self) -> str | list[int] | None:
        """The preset or indices of a `prune` given in that form (None for a `PruneConfig`)."""
        return None if isinstance(self.prune, PruneConfig) else self.prune

    def check_prune(self, teacher_layers: int) -> None:
        """Refuse a `prune` the teacher's `teacher_layers` cannot satisfy; ValueError naming the student."""
        prune = self.prune
        if isinstance(prune, PruneConfig) and prune.keep >= teacher_layers:
            raise ValueError(
                f"student {self.name!r}: prune.keep {prune.keep} must be below the teacher's {teacher_layers} layers"
            )
        if isinstance(prune, list):
            bad = [i for i in prune if not -teacher_layers <= i < teacher_layers]
            if bad:
                raise ValueError(
                    f"student {self.name!r}: prune index {bad[0]} is out of range for a teacher with {teacher_layers} "
                    "layers"
                )
            if len({i % teacher_layers for i in prune}) != len(prune):
                raise ValueError(f"student {self.name!r}: prune {prune} repeats a layer")


class TeacherSpec(Strict):
    """A teacher model and its students. `train` overrides the shared training settings for the teacher only."""

    name: str
    model: str
    students: list[StudentSpec] = Field(min_length=1)
    train: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        return check_name(value, "teacher name")

    @model_validator(mode="after")
    def _prunable(self) -> TeacherSpec:
        """Pruned students' layer counts against the teacher's, where that is known without loading weights."""
        from qadistill.models import known_layer_count

        if any(s.prune is not None for s in self.students):
            layers = known_layer_count(self.model)
            if layers is not None:
                for student in self.students:
                    student.check_prune(layers)
        return self

    @model_validator(mode="after")
    def _unique_students(self) -> TeacherSpec:
        names = [s.name for s in self.students]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"teacher {self.name!r} lists student {dupes[0]!r} twice")
        if self.name in names:
            raise ValueError(f"student {self.name!r} has the name of its teacher")
        return self


class MethodSpec(Strict):
    """How a student is trained: distilled from its teacher with a divergence, or fine-tuned on the gold answers.

    `adaptive` switches on DistiLLM's adaptive off-policy sampling (student-generated outputs in a replay buffer).
    `label` is the method as the report shows it; it defaults to `finetune` or `distill-<divergence>[+adaptive]`
    and must be set when two methods would otherwise share it (sweeps). `train` / `distill` override the shared
    sections for this method only.
    """

    name: str
    kind: Literal["distill", "finetune"]
    divergence: Literal["forward_kl", "reverse_kl", "skl", "srkl", "jsd", "tvd"] | None = None
    adaptive: bool = False
    label: str | None = None
    train: dict[str, Any] = Field(default_factory=dict)
    distill: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        return check_name(value, "method name")

    @field_validator("label")
    @classmethod
    def _label(cls, value: str | None) -> str | None:
        if value is not None and (not value.strip() or "\n" in value or value == "teacher"):
            raise ValueError(f"label {value!r} must be a non-empty one-line string other than 'teacher'")
        return value

    @model_validator(mode="after")
    def _kind_fields(self) -> MethodSpec:
        if self.kind == "distill" and self.divergence is None:
            raise ValueError(f"distill method {self.name!r} needs a divergence ({', '.join(DIVERGENCE_NAMES)})")
        if self.kind == "finetune":
            if self.divergence is not None or self.adaptive:
                raise ValueError(f"finetune method {self.name!r} takes no divergence or adaptive setting")
            if self.distill:
                raise ValueError(f"finetune method {self.name!r} takes no distill settings")
        return self

    @property
    def display(self) -> str:
        """The report's method key."""
        if self.label is not None:
            return self.label
        if self.kind == "finetune":
            return "finetune"
        return f"distill-{self.divergence}" + ("+adaptive" if self.adaptive else "")


class HealSettings(Strict):
    """How pruned students are healed: distillation from the fine-tuned teacher at every position (forward KL by
    default), with `train` / `distill` overriding the shared sections. Off-policy sampling and the teacher cache
    do not apply (always off)."""

    train: dict[str, Any] = Field(default_factory=dict)
    distill: dict[str, Any] = Field(default_factory=lambda: {"divergence": "forward_kl"})


class SftSettings(Strict):
    """How students are initialised by fine-tuning (DistiLLM's "init" stage): `train` overrides the shared
    section; by default the weights of the lowest validation CE are kept."""

    train: dict[str, Any] = Field(default_factory=lambda: {"keep": "best", "select_metric": "val_ce"})


class InitSection(Strict):
    heal: HealSettings = HealSettings()
    sft: SftSettings = SftSettings()


def merge_train(base: TrainConfig, extra: dict[str, Any]) -> TrainConfig:
    """`base` updated by the overrides `extra`; a budget given in `extra` (steps or epochs) replaces the other."""
    doc = deep_merge(base.model_dump(), extra)
    for budget, other in (("epochs", "max_steps"), ("max_steps", "epochs")):
        if extra.get(budget) is not None and other not in extra:
            doc[other] = None
    return TrainConfig.model_validate(doc)


class DataSection(Strict):
    """Where data files are (None: $QADISTILL_DATA_DIR, else the hub or the packaged demo sets) and how pools split."""

    data_dir: Path | None = None
    strict: bool = False
    splits: SplitConfig = SplitConfig()


class PromptSection(Strict):
    """Prompt settings shared by every stage (the prompt modes are the top-level `shots` list)."""

    style: Literal["auto", "plain", "chat"] = "auto"
    max_prompt_tokens: int = Field(768, ge=32)


class ExperimentConfig(Strict):
    """One experiment grid. See `configs/study.yaml` for a complete, commented example.

    `load` is how trained models are loaded (keep float32: the optimizer updates these weights; `train.precision`
    bf16 is autocast), `teacher_load` the frozen teacher while distilling and `eval_load` evaluation (both default
    to `load`). `keep_models: false` deletes a student's model folder (and a pruned initialisation) once no stage
    of the plan needs it any more; teachers are always kept. A finished training's `checkpoint/` (weights and
    optimizer state, only needed to resume) is deleted unless `keep_checkpoints` is true.

    `launcher` runs every training stage in processes of its own, e.g. `accelerate launch --config_file
    configs/accelerate/ddp.yaml --num_processes 8` (multi-GPU DDP/FSDP) or `torchrun --nproc_per_node 4`: the stage
    runs as `<launcher> -m qadistill finetune|distill --config <stage>/launch_job.yaml`. Evaluations stay in this
    process. None (default): trainings run in this process too.

    `executor` says where stages run: `{kind: local}` (default) in this process, `{kind: slurm, partition: ...}`
    each as a SLURM job (`executor_config.py`, docs/clusters.md).
    `tracking` (off by default) sends every stage to the named trackers as a run of its own, named
    `<run_name or name>/<stage id>` and tagged with its teacher, student, method, dataset, shots and seed; local
    trackers write under `<run folder>/tracking` unless `tracking.dir` says otherwise.
    """

    name: str = "experiment"
    teachers: list[TeacherSpec] = Field(min_length=1)
    methods: list[MethodSpec] = Field(min_length=1)
    datasets: list[str] = Field(min_length=1)
    shots: list[Shots] = Field(default_factory=lambda: list(ALL_SHOTS), min_length=1)
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2, 3, 4], min_length=1)
    eval_splits: list[EvalSplit] = Field(default_factory=lambda: list(EVAL_SPLITS), min_length=1)
    data: DataSection = DataSection()
    prompt: PromptSection = PromptSection()
    generation: GenerationConfig = GenerationConfig()
    load: ModelLoadConfig = ModelLoadConfig()
    teacher_load: ModelLoadConfig | None = None
    eval_load: ModelLoadConfig | None = None
    keep_models: bool = True
    keep_checkpoints: bool = False
    launcher: str | None = None
    evaluate_untuned: bool = False
    executor: ExecutorConfig = LocalExecutor()
    train: TrainConfig = TrainConfig()
    distill: DistillConfig = DistillConfig()
    init: InitSection = InitSection()
    tracking: TrackingConfig = TrackingConfig()

    @field_validator("name")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        return check_name(value, "experiment name")

    @field_validator("datasets")
    @classmethod
    def _known_datasets(cls, value: list[str]) -> list[str]:
        from qadistill.data.sources import DATASETS

        for name in value:
            if name not in DATASETS:
                raise ValueError(f"unknown dataset {name!r}; valid names: {', '.join(sorted(DATASETS))}")
        return _unique(value, "dataset")

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, value: list[int]) -> list[int]:
        if any(s < 0 for s in value):
            raise ValueError("seeds must be non-negative")
        return _unique(value, "seed")

    @field_validator("shots", "eval_splits")
    @classmethod
    def _unique_items(cls, value: list) -> list:
        return _unique(value, "value")

    @model_validator(mode="after")
    def _method_decides(self) -> ExperimentConfig:
        for method in self.methods:
            off_policy = method.distill.get("off_policy")
            if "divergence" in method.distill or (isinstance(off_policy, dict) and "enabled" in off_policy):
                raise ValueError(
                    f"method {method.name!r}: set the divergence and adaptive off-policy with the method's "
                    "'divergence' and 'adaptive' keys, not inside its 'distill' section"
                )
        return self

    @model_validator(mode="after")
    def _unique_names(self) -> ExperimentConfig:
        teachers = [t.name for t in self.teachers]
        for name in teachers:
            if teachers.count(name) > 1:
                raise ValueError(f"teacher name {name!r} is used twice")
        owner: dict[str, str] = {}
        for teacher in self.teachers:
            for student in teacher.students:
                if student.name in teachers:
                    raise ValueError(f"student {student.name!r} of teacher {teacher.name!r} has a teacher's name")
                if student.name in owner:  # the report keys results by model name, so names must be unique
                    raise ValueError(
                        f"student name {student.name!r} is used by teachers {owner[student.name]!r} and "
                        f"{teacher.name!r}; give each student its own name"
                    )
                owner[student.name] = teacher.name
        methods = [m.name for m in self.methods]
        labels = [m.display for m in self.methods]
        for name in methods:
            if methods.count(name) > 1:
                raise ValueError(f"method name {name!r} is used twice")
        for label in labels:
            if labels.count(label) > 1:
                raise ValueError(f"two methods share the report label {label!r}; set 'label' on each of them")
        return self

    @property
    def first_seed(self) -> int:
        return self.seeds[0]

    def teacher_train(self, teacher: TeacherSpec) -> TrainConfig:
        """The training settings of a teacher's fine-tuning: `train` updated by the teacher's own `train`."""
        return merge_train(self.train, teacher.train)

    def method_train(self, method: MethodSpec) -> TrainConfig:
        """A method's training settings: `train` updated by the method's own `train`."""
        return merge_train(self.train, method.train)

    def heal_train(self) -> TrainConfig:
        return merge_train(self.train, self.init.heal.train)

    def heal_distill(self) -> DistillConfig:
        """`distill` updated by `init.heal.distill`, at every position, with the live teacher and no sampling."""
        doc = deep_merge(self.distill.model_dump(), self.init.heal.distill)
        doc["positions"] = "all"
        doc["off_policy"]["enabled"] = False
        doc["teacher_cache"]["enabled"] = False
        return DistillConfig.model_validate(doc)

    def sft_train(self) -> TrainConfig:
        return merge_train(self.train, self.init.sft.train)

    def method_distill(self, method: MethodSpec) -> DistillConfig:
        """A distillation method's settings: `distill`, then the method's own `distill`, then its divergence and
        adaptive switch (which always come from the method). Adaptive methods always use the live teacher: their
        student-generated outputs can only be scored by it, so a shared `teacher_cache` applies to the others."""
        doc = deep_merge(self.distill.model_dump(), method.distill)
        doc["divergence"] = method.divergence
        off_policy = doc.get("off_policy")
        if isinstance(off_policy, dict):
            off_policy["enabled"] = method.adaptive
        if method.adaptive and isinstance(doc.get("teacher_cache"), dict):
            doc["teacher_cache"]["enabled"] = False
        return DistillConfig.model_validate(doc)

    @property
    def teacher_load_config(self) -> ModelLoadConfig:
        """How the frozen teacher is loaded while distilling (default: like the trained models, `load`)."""
        return self.teacher_load if self.teacher_load is not None else self.load

    @property
    def eval_load_config(self) -> ModelLoadConfig:
        """How models are loaded for evaluation (default: `load`)."""
        return self.eval_load if self.eval_load is not None else self.load

    def check_overrides(self) -> None:
        """Validate every teacher's and method's merged settings; raises ValidationError-derived QADistillError."""
        for i, teacher in enumerate(self.teachers):
            _validated(lambda t=teacher: self.teacher_train(t), ("teachers", i, "train"))
        for i, method in enumerate(self.methods):
            _validated(lambda m=method: self.method_train(m), ("methods", i, "train"))
            if method.kind == "distill":
                _validated(lambda m=method: self.method_distill(m), ("methods", i, "distill"))
        steps = {step for teacher in self.teachers for student in teacher.students for step in student.init}
        if "heal" in steps:
            _validated(self.heal_train, ("init", "heal", "train"))
            _validated(self.heal_distill, ("init", "heal", "distill"))
        if "sft" in steps:
            _validated(self.sft_train, ("init", "sft", "train"))


def _unique(values: list, what: str) -> list:
    seen = set()
    for value in values:
        if value in seen:
            raise ValueError(f"{what} {value!r} is listed twice")
        seen.add(value)
    return values


class _NestedError(Exception):
    """A ValidationError of a merged sub-config, with the location prefix it belongs under."""

    def __init__(self, prefix: tuple, error: ValidationError) -> None:
        super().__init__(str(error))
        self.prefix = prefix
        self.error = error


def _validated(build, prefix: tuple) -> Any:
    try:
        return build()
    except ValidationError as exc:
        raise _NestedError(prefix, exc) from None


# ---------------------------------------------------------------------------------------------- loading


def _origin_note(loc: str, overrides: Sequence[str]) -> str:
    for text in reversed(overrides):
        key = text.partition("=")[0].strip()
        if loc == key or loc.startswith(key + ".") or key.startswith(loc + "."):
            return f" (from override {text!r})"
    return ""


def config_from_dict(doc: Any, *, source: str = "config", overrides: Sequence[str] = ()) -> ExperimentConfig:
    """Validate a parsed config document (after applying `overrides`); one-line QADistillError on any problem."""
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise QADistillError(f"{source}: the top level must be a mapping of keys, not {type(doc).__name__}")
    doc = apply_overrides(copy.deepcopy(doc), overrides)
    try:
        config = ExperimentConfig.model_validate(doc)
        config.check_overrides()
    except ValidationError as exc:
        text = format_validation_error(exc)
        raise QADistillError(f"{source}: {text}{_origin_note(text.partition(':')[0], overrides)}") from None
    except _NestedError as exc:
        text = format_validation_error(exc.error, exc.prefix)
        raise QADistillError(f"{source}: {text}{_origin_note(text.partition(':')[0], overrides)}") from None
    return config


def read_yaml(path: Path) -> Any:
    """Parse a YAML file; unreadable or malformed files become one-line QADistillErrors."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise QADistillError(f"config {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise QADistillError(f"config {path}: cannot read it ({exc})") from None
    try:
        return load_yaml(text, f"config {path}")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise QADistillError(f"config {path}: invalid YAML{where}: {problem}") from None


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> ExperimentConfig:
    """Read, override and validate an experiment config file."""
    path = Path(path)
    return config_from_dict(read_yaml(path), source=f"config {path}", overrides=list(overrides))


def resolved_dict(config: ExperimentConfig) -> dict[str, Any]:
    """The config with every default filled in, as plain YAML-ready data (loadable as a config again).

    `distill.divergence` and `distill.off_policy.enabled` are left out: each method sets them.
    """
    return config.model_dump(mode="json", exclude={"distill": {"divergence": True, "off_policy": {"enabled": True}}})


def resolved_yaml(config: ExperimentConfig) -> str:
    return yaml.safe_dump(resolved_dict(config), sort_keys=False, allow_unicode=True, default_flow_style=None)


def save_resolved(config: ExperimentConfig, run_dir: Path) -> Path:
    """Write `config.resolved.yaml` into the run dir (atomically); returns its path."""
    path = Path(run_dir) / RESOLVED_CONFIG
    atomic_write_text(path, resolved_yaml(config))
    return path
