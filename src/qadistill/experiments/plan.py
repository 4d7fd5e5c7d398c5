"""From an experiment config to an ordered list of stages, each with its own folder under the run dir.

For every dataset x prompt mode x teacher, in this order:

1. the teacher is fine-tuned once, with the first seed (`<ds>/<k>shot/<teacher>/teacher/train`);
2. the fine-tuned teacher is evaluated for every seed and eval split (`.../teacher/seed<s>/eval/<split>`): the
   same weights, but the seed draws the one-shot demonstrations, so the teacher's row carries a spread like the
   students' and retention a propagated error; with `evaluate_untuned`, the teacher's base model too
   (`.../untuned/seed<s>/eval/<split>`, role "untuned": a baseline, never a student);
3. each student is prepared once, with the first seed, shared by all its methods and seeds: a pruned student gets
   the fine-tuned teacher's weights with layers removed (`.../<student>/prune`: by a preset, indices, or
   importance measured on training prompts of the same dataset and prompt mode), then its `init` steps: healing
   by distillation at every position (`.../<student>/heal`) and fine-tuning that keeps the best validation
   (`.../<student>/sft`), each starting from the previous one's model;
4. for each seed, student and method, the student is trained from its prepared weights
   (`.../<student>/<method>/seed<s>/train`) and evaluated on every eval split (`.../seed<s>/eval/<split>`).

A stage is finished when its result file exists (`train_result.json`, `metrics.json`, or the pruned model's
`model/config.json`); each is written atomically, so an interrupted stage leaves no result file behind.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from qadistill.config import PruneConfig
from qadistill.errors import QADistillError
from qadistill.experiments.config import ExperimentConfig, MethodSpec, StudentSpec, TeacherSpec, check_name
from qadistill.formatting import format_params

StageKind = Literal["finetune", "distill", "prune", "heal", "sft_init", "evaluate"]
RESULT_FILES: dict[str, str] = {
    "finetune": "train_result.json",
    "distill": "train_result.json",
    "heal": "train_result.json",
    "sft_init": "train_result.json",
    "prune": "model/config.json",
    "evaluate": "metrics.json",
}
TRAINING_KINDS = ("finetune", "distill", "heal", "sft_init")
INIT_KINDS = ("prune", "heal", "sft_init")
"""Stages that prepare a student's starting weights; a training depends on the last of them."""
Role = Literal["teacher", "student", "untuned"]
MODEL_SUBDIR = "model"
STAGE_LOCK_FILE = ".stage.lock"
"""Held (flock) by the process computing a stage."""
# Rough question counts of each dataset's pooled sources, for compute estimates when no cap is set.
NOMINAL_QUESTIONS: dict[str, int] = {"squad_v2": 142_192, "mlqa-en": 12_738, "mlqa-de": 5_029}


@dataclass(frozen=True)
class Stage:
    """One unit of work. `id` is its folder relative to the run dir; `deps` are ids that must finish first.

    `model` / `role` / `method` / `teacher` are the report's names for the model a stage trains or evaluates;
    `params` / `teacher_params` are planned parameter counts (None when unknown without loading the model).
    """

    id: str
    kind: StageKind
    dataset: str
    shots: int
    seed: int
    teacher: str
    model: str
    role: Role
    method: str
    deps: tuple[str, ...] = ()
    student: str | None = None
    method_name: str | None = None
    split: str | None = None
    params: int | None = None
    teacher_params: int | None = None
    spec: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def result_file(self) -> str:
        return RESULT_FILES[self.kind]

    @property
    def is_training(self) -> bool:
        return self.kind in TRAINING_KINDS

    def folder(self, run_dir: Path) -> Path:
        return Path(run_dir) / self.id

    def result_path(self, run_dir: Path) -> Path:
        return self.folder(run_dir) / self.result_file

    def done(self, run_dir: Path) -> bool:
        return self.result_path(run_dir).is_file()

    def lock_path(self, run_dir: Path) -> Path:
        return self.folder(run_dir) / STAGE_LOCK_FILE


@dataclass
class Plan:
    """The stages of an experiment in dependency order, with lookup by id."""

    config: ExperimentConfig
    stages: list[Stage]
    by_id: dict[str, Stage] = field(init=False)

    def __post_init__(self) -> None:
        self.by_id = {s.id: s for s in self.stages}

    @property
    def trainings(self) -> list[Stage]:
        return [s for s in self.stages if s.is_training]

    @property
    def evaluations(self) -> list[Stage]:
        return [s for s in self.stages if s.kind == "evaluate"]

    def fingerprint(self, stage: Stage) -> str:
        """Hash of everything that determines a stage's result: its own settings and its dependencies'."""
        return _fingerprint(self, stage.id)


def _fingerprint(plan: Plan, stage_id: str) -> str:
    stage = plan.by_id[stage_id]
    doc = {"spec": stage.spec, "deps": [_fingerprint(plan, d) for d in stage.deps]}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:16]


def shots_dir(shots: int) -> str:
    return f"{shots}shot"


def check_stage_path(stage_id: str, run_dir: Path | None = None) -> str:
    """Refuse a stage id that could leave the run dir (absolute, `..`, empty parts); returns it."""
    parts = stage_id.split("/")
    if stage_id.startswith("/") or "\\" in stage_id or any(p in ("", ".", "..") for p in parts):
        raise QADistillError(f"stage path {stage_id!r} would leave the run folder")
    for part in parts:
        try:
            check_name(part, "stage path component")
        except ValueError as exc:
            raise QADistillError(f"stage path {stage_id!r}: {exc}") from None
    if run_dir is not None:
        root = Path(run_dir).resolve()
        if not (root / stage_id).resolve().is_relative_to(root):
            raise QADistillError(f"stage path {stage_id!r} resolves outside the run folder {run_dir}")
    return stage_id


# ------------------------------------------------------------------------------------------ parameter counts


@lru_cache(maxsize=64)
def _base_config(spec: str):
    """A model's transformers config without weights: from the registry, or a local folder's config.json."""
    from qadistill.models import get_model_info

    info = get_model_info(spec)
    if info is not None:
        return info.config()
    path = Path(spec).expanduser()
    if path.is_dir() and (path / "config.json").is_file():
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(str(path))
    return None


def pruned_config(config, keep: str | list[int]):
    """The config of `config`'s model with only the `keep` layers (as `prune_layers` builds it)."""
    from qadistill.models import resolve_keep

    n = config.num_hidden_layers
    kept = resolve_keep(keep, n)
    pruned = copy.deepcopy(config)
    pruned.num_hidden_layers = len(kept)
    layer_types = getattr(pruned, "layer_types", None)
    if isinstance(layer_types, list) and len(layer_types) == n:
        pruned.layer_types = [layer_types[i] for i in kept]
    if isinstance(getattr(pruned, "max_window_layers", None), int):
        pruned.max_window_layers = sum(1 for i in kept if i < config.max_window_layers)
    return pruned


@lru_cache(maxsize=256)
def _count(spec: str, keep: str | tuple[int, ...] | None) -> int | None:
    from qadistill.models import count_params_from_config, param_count

    try:
        if keep is None:
            return param_count(spec)
        config = _base_config(spec)
        if config is None:
            return None
        return count_params_from_config(pruned_config(config, list(keep) if isinstance(keep, tuple) else keep))
    except QADistillError:
        return None


def planned_params(spec: str, keep: str | list[int] | None = None) -> int | None:
    """Parameters of a model spec (or of it pruned to `keep`), from configs only; None when that needs a download."""
    return _count(spec, tuple(keep) if isinstance(keep, list) else keep)


# -------------------------------------------------------------------------------------------------- plan


def _data_spec(config: ExperimentConfig, dataset: str) -> dict[str, Any]:
    return {"dataset": dataset, **config.data.model_dump(mode="json")}


def _student_params(teacher: TeacherSpec, student: StudentSpec) -> int | None:
    if student.model is not None:
        return planned_params(student.model)
    if isinstance(student.prune, PruneConfig):
        # A measured selection's indices are only known after calibration, but every decoder block of the
        # supported architectures has the same size, so the count depends only on how many are kept: count the
        # first `keep` layers.
        return planned_params(teacher.model, list(range(student.prune.keep)))
    return planned_params(teacher.model, student.prune_keep)


def _prune_spec(config: ExperimentConfig, student: StudentSpec, data: dict, prompt: dict, seed: int) -> dict:
    """What determines a pruned initialisation: the selection, and for a measured one its calibration prompts
    (data, prompt format, answer budget and seed). Presets and indices keep their original one-key spec."""
    prune = student.prune
    if not isinstance(prune, PruneConfig):
        return {"prune": prune}
    if prune.method == "spread":
        return {"prune": {"method": "spread", "keep": prune.keep}}
    return {
        "prune": prune.model_dump(mode="json"),
        "data": data,
        "prompt": prompt,
        "max_answer_tokens": config.train.max_answer_tokens,
        "seed": seed,
    }


def plan_experiment(config: ExperimentConfig, run_dir: Path | None = None) -> Plan:
    """All stages of `config` in dependency order (see the module docstring); stage ids are checked path-safe."""
    stages: list[Stage] = []
    for dataset in config.datasets:
        for shots in config.shots:
            for teacher in config.teachers:
                stages += _teacher_block(config, dataset, shots, teacher)
    for stage in stages:
        check_stage_path(stage.id, run_dir)
    return Plan(config=config, stages=stages)


@dataclass(frozen=True)
class _Block:
    """What every stage of one dataset x prompt mode x teacher shares."""

    config: ExperimentConfig
    base: str
    data: dict[str, Any]
    prompt: dict[str, Any]
    common: dict[str, Any]

    @property
    def load(self) -> dict[str, Any]:
        return self.config.load.model_dump(mode="json")


def _teacher_block(config: ExperimentConfig, dataset: str, shots: int, teacher: TeacherSpec) -> list[Stage]:
    t_params = planned_params(teacher.model)
    block = _Block(
        config=config,
        base=f"{dataset}/{shots_dir(shots)}/{teacher.name}",
        data=_data_spec(config, dataset),
        prompt={**config.prompt.model_dump(mode="json"), "shots": shots},
        common={"dataset": dataset, "shots": shots, "teacher": teacher.name, "teacher_params": t_params},
    )
    first = config.first_seed
    t_train = Stage(
        id=f"{block.base}/teacher/train",
        kind="finetune",
        seed=first,
        model=teacher.name,
        role="teacher",
        method="teacher",
        params=t_params,
        spec={
            "model": teacher.model,
            "data": block.data,
            "prompt": block.prompt,
            "load": block.load,
            "train": config.teacher_train(teacher).model_dump(mode="json"),
            "seed": first,
        },
        **block.common,
    )
    stages = [t_train]
    for seed in config.seeds:
        stages += _evaluations(t_train, block, seed, folder=f"{block.base}/teacher/seed{seed}")
    if config.evaluate_untuned:
        for seed in config.seeds:
            stages += _untuned_evaluations(block, teacher, seed, t_params)
    starts: dict[str, Stage | None] = {}
    for student in teacher.students:
        init = _student_init(block, teacher, student, t_train)
        stages += init
        starts[student.name] = init[-1] if init else None
    for seed in config.seeds:
        for student in teacher.students:
            for method in config.methods:
                train = _student_training(block, teacher, student, method, seed, t_train, starts[student.name])
                stages.append(train)
                stages += _evaluations(train, block, seed)
    return stages


def _student_init(block: _Block, teacher: TeacherSpec, student: StudentSpec, t_train: Stage) -> list[Stage]:
    """The stages that prepare a student once: prune, then its `init` steps, each from the previous model."""
    config, first = block.config, block.config.first_seed
    params = _student_params(teacher, student)
    stages: list[Stage] = []
    if student.prune is not None:
        stages.append(
            Stage(
                id=f"{block.base}/{student.name}/prune",
                kind="prune",
                seed=first,
                model=student.name,
                role="student",
                method="prune",
                student=student.name,
                deps=(t_train.id,),
                params=params,
                spec=_prune_spec(config, student, block.data, block.prompt, first),
                **block.common,
            )
        )
    for step in student.init:
        previous = stages[-1] if stages else None
        spec: dict[str, Any] = {
            "student": student.model if previous is None else None,
            "data": block.data,
            "prompt": block.prompt,
            "load": block.load,
            "seed": first,
        }
        if step == "heal":
            spec |= {
                "train": config.heal_train().model_dump(mode="json"),
                "distill": config.heal_distill().model_dump(mode="json"),
                "teacher_load": config.teacher_load_config.model_dump(mode="json"),
            }
        else:
            spec["train"] = config.sft_train().model_dump(mode="json")
        deps = ([previous.id] if previous is not None else []) + ([t_train.id] if step == "heal" else [])
        stages.append(
            Stage(
                id=f"{block.base}/{student.name}/{step}",
                kind="heal" if step == "heal" else "sft_init",
                seed=first,
                model=student.name,
                role="student",
                method=f"init-{step}",
                student=student.name,
                deps=tuple(deps),
                params=params,
                spec=spec,
                **block.common,
            )
        )
    return stages


def _student_training(
    block: _Block,
    teacher: TeacherSpec,
    student: StudentSpec,
    method: MethodSpec,
    seed: int,
    t_train: Stage,
    start: Stage | None,
) -> Stage:
    config = block.config
    deps = [t_train.id] if method.kind == "distill" else []
    if start is not None:
        deps.append(start.id)
    spec: dict[str, Any] = {
        "student": student.model if start is None else None,
        "data": block.data,
        "prompt": block.prompt,
        "load": block.load,
        "teacher_load": config.teacher_load_config.model_dump(mode="json") if method.kind == "distill" else None,
        "train": config.method_train(method).model_dump(mode="json"),
        "seed": seed,
    }
    if method.kind == "distill":
        spec["distill"] = config.method_distill(method).model_dump(mode="json")
    return Stage(
        id=f"{block.base}/{student.name}/{method.name}/seed{seed}/train",
        kind=method.kind,
        seed=seed,
        model=student.name,
        role="student",
        method=method.display,
        student=student.name,
        method_name=method.name,
        deps=tuple(dict.fromkeys(deps)),
        params=_student_params(teacher, student),
        spec=spec,
        **block.common,
    )


def _evaluations(trained: Stage, block: _Block, seed: int, folder: str | None = None) -> list[Stage]:
    """One evaluation per eval split of the model `trained` made, with `seed` (under `folder`, default beside it)."""
    folder = folder or trained.id.removesuffix("/train")
    return [
        Stage(
            id=f"{folder}/eval/{split}",
            kind="evaluate",
            dataset=trained.dataset,
            shots=trained.shots,
            seed=seed,
            teacher=trained.teacher,
            model=trained.model,
            role=trained.role,
            method=trained.method,
            student=trained.student,
            method_name=trained.method_name,
            split=split,
            deps=(trained.id,),
            params=trained.params,
            teacher_params=trained.teacher_params,
            spec=_eval_spec(block, split, seed),
        )
        for split in block.config.eval_splits
    ]


def _untuned_evaluations(block: _Block, teacher: TeacherSpec, seed: int, params: int | None) -> list[Stage]:
    """The teacher's base model, not fine-tuned, on every eval split: the baseline a tuned model must beat."""
    return [
        Stage(
            id=f"{block.base}/untuned/seed{seed}/eval/{split}",
            kind="evaluate",
            seed=seed,
            model=teacher.name,
            role="untuned",
            method="untuned",
            split=split,
            params=params,
            spec={**_eval_spec(block, split, seed), "model": teacher.model},
            **block.common,
        )
        for split in block.config.eval_splits
    ]


def _eval_spec(block: _Block, split: str, seed: int) -> dict[str, Any]:
    return {
        "split": split,
        "seed": seed,
        "data": block.data,
        "prompt": block.prompt,
        "generation": block.config.generation.model_dump(mode="json"),
        "load": block.config.eval_load_config.model_dump(mode="json"),
    }


# ------------------------------------------------------------------------------------------- compute estimate


@lru_cache(maxsize=32)
def _dataset_questions(dataset: str, data_dir: Path | None = None) -> int | None:
    """Questions in the dataset's pool: the packaged set, or the local files in `data_dir` (counted, as a run
    would read them), else a nominal size of the hub copy."""
    from qadistill.data.sources import get_dataset_info, load_examples, local_paths, resolve_data_dir

    info = get_dataset_info(dataset)
    folder = resolve_data_dir(data_dir) if info.resource is None else None
    if info.resource is not None or local_paths(info, folder):
        return len(load_examples(dataset, folder))
    return NOMINAL_QUESTIONS.get(dataset)


def eval_questions(config: ExperimentConfig, dataset: str, split: str) -> int | None:
    """Questions an evaluation of `split` scores: the cap, else the split's share of the dataset's pool."""
    splits = config.data.splits
    cap = {"validation": splits.max_validation, "test": splits.max_test}.get(split)
    pool = _dataset_questions(dataset, config.data.data_dir)
    share = None if pool is None else round(pool * getattr(splits, split))
    if cap is not None:
        return cap if share is None else min(cap, share)
    return share


def train_questions(config: ExperimentConfig, dataset: str) -> int | None:
    """Questions in the training split: the cap, else the split's share of the dataset's pool."""
    splits = config.data.splits
    pool = _dataset_questions(dataset)
    share = None if pool is None or splits.train_unanswerable is not None else round(pool * splits.train)
    if splits.max_train is not None:
        return splits.max_train if share is None else min(splits.max_train, share)
    return share


def train_tokens(plan: Plan, stage: Stage) -> int | None:
    """Upper bound of tokens a training stage processes: steps x batch x accumulation x (prompt + answer budget);
    a budget in epochs is turned into steps with the training split's size (None when that is unknown)."""
    train = stage.spec["train"]
    per_step = train["batch_size"] * train["grad_accum"]
    steps = train["max_steps"]
    if steps is None:
        questions = train_questions(plan.config, stage.dataset)
        if questions is None:
            return None
        steps = max(1, math.ceil(train["epochs"] * questions / per_step))
    per_example = stage.spec["prompt"]["max_prompt_tokens"] + train["max_answer_tokens"]
    return steps * per_step * per_example


def stage_flops(plan: Plan, stage: Stage) -> float | None:
    """Estimated FLOPs: training 6·N·tokens (+ 2·N_teacher·tokens for the teacher's forward passes when
    distilling), evaluation 2·N·questions·(prompt budget + max_new_tokens); None when a count is unknown."""
    if stage.kind == "prune":
        return 0.0
    if stage.params is None:
        return None
    if stage.is_training:
        tokens = train_tokens(plan, stage)
        if tokens is None:
            return None
        flops = 6.0 * stage.params * tokens
        if stage.kind in ("distill", "heal"):
            if stage.teacher_params is None:
                return None
            flops += 2.0 * stage.teacher_params * tokens
        return flops
    questions = eval_questions(plan.config, stage.dataset, stage.split or "validation")
    if questions is None:
        return None
    per_question = stage.spec["prompt"]["max_prompt_tokens"] + stage.spec["generation"]["max_new_tokens"]
    return 2.0 * stage.params * questions * per_question


def _flops_text(value: float | None) -> str:
    if value is None:
        return "?"
    for scale, suffix in ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G")):
        if value >= scale:
            return f"{value / scale:.3g} {suffix}"
    return f"{value:.3g} "


def _duration_text(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.3g} hours"
    if seconds >= 60:
        return f"{seconds / 60:.3g} minutes"
    return f"{seconds:.3g} seconds"


def format_plan(plan: Plan, run_dir: Path | None = None) -> str:
    """The dry-run table: per teacher/model/method the number of trainings and evaluations, parameters, FLOPs."""
    groups: OrderedDict[tuple, dict[str, Any]] = OrderedDict()
    total_train = total_eval = 0.0
    unknown = False
    for stage in plan.stages:
        if stage.kind == "prune":
            continue
        key = (stage.teacher, stage.model, stage.role, stage.method)
        group = groups.setdefault(
            key, {"params": stage.params, "train": 0, "eval": 0, "train_flops": 0.0, "eval_flops": 0.0, "done": 0}
        )
        flops = stage_flops(plan, stage)
        unknown |= flops is None
        which = "train" if stage.is_training else "eval"
        group[which] += 1
        group[f"{which}_flops"] = None if flops is None or group[f"{which}_flops"] is None else (
            group[f"{which}_flops"] + flops
        )  # fmt: skip
        if run_dir is not None and stage.done(run_dir):
            group["done"] += 1
        if flops is not None:
            if stage.is_training:
                total_train += flops
            else:
                total_eval += flops
    columns = ("teacher", "model", "role", "method", "params", "trainings", "evals", "train FLOPs", "eval FLOPs")
    header: tuple[str, ...] = (*columns, "done") if run_dir is not None else columns
    lines = [header]
    for (teacher, model, role, method), g in groups.items():
        row: tuple[str, ...] = (
            teacher, model, role, method, format_params(g["params"]), str(g["train"]), str(g["eval"]),
            _flops_text(g["train_flops"]), _flops_text(g["eval_flops"]),
        )  # fmt: skip
        if run_dir is not None:
            row += (str(g["done"]),)
        lines.append(row)
    right = {"params", "trainings", "evals", "train FLOPs", "eval FLOPs", "done"}
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]

    def render(cells) -> str:
        return "  ".join(
            c.rjust(w) if h in right else c.ljust(w) for c, w, h in zip(cells, widths, header, strict=True)
        ).rstrip()

    config = plan.config
    n_prune = sum(1 for s in plan.stages if s.kind == "prune")
    out = [
        f"experiment {config.name}: {len(config.teachers)} teacher(s), "
        f"{sum(len(t.students) for t in config.teachers)} student(s), {len(config.methods)} method(s), "
        f"datasets {', '.join(config.datasets)}, shots {', '.join(map(str, config.shots))}, "
        f"seeds {', '.join(map(str, config.seeds))}, eval splits {', '.join(config.eval_splits)}",
        f"stages: {len(plan.stages)} ({len(plan.trainings)} trainings, {len(plan.evaluations)} evaluations, "
        f"{n_prune} pruned initialisations)",
        "",
        render(lines[0]),
        "  ".join("-" * w for w in widths),
        *(render(line) for line in lines[1:]),
        "",
        f"estimated compute: training {_flops_text(total_train)}FLOPs, evaluation {_flops_text(total_eval)}FLOPs, "
        f"total {_flops_text(total_train + total_eval)}FLOPs"
        + (" (some counts unknown: marked '?')" if unknown else ""),
        f"  = {_duration_text((total_train + total_eval) / 1e14)} at a sustained 100 TFLOP/s "
        "(training 6·N·tokens, +2·N_teacher·tokens when distilling; evaluation 2·N·tokens; tokens are upper "
        "bounds from max_steps × batch × accumulation × (prompt budget + answer budget))",
    ]
    return "\n".join(out)
