"""Typed settings of fine-tuning and distillation runs, and the jobs that bundle them with data and prompts.

Every model rejects unknown keys (`Strict`), so a typo in a YAML file or a `key=value` override fails loudly.
"""

from __future__ import annotations

import copy
import math
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from qadistill.config import DataConfig, ModelLoadConfig, PromptConfig, PruneConfig, Strict, first_difference
from qadistill.tracking import TrackingConfig

DivergenceName = Literal["forward_kl", "reverse_kl", "skl", "srkl", "jsd", "tvd"]


class LoraSettings(Strict):
    """LoRA adapters (peft). `target_modules="all-linear"` adapts every linear layer except the LM head."""

    enabled: bool = False
    r: int = Field(16, gt=0)
    alpha: int = Field(32, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"


SelectMetric = Literal["rouge_l", "f1", "exact", "val_ce"]


class TrainConfig(Strict):
    """Optimisation, budget, precision, checkpointing and validation settings shared by every training run.

    A step is one optimizer update over `grad_accum` micro-batches of `batch_size` questions (per process).
    The budget is `max_steps` or `epochs` (passes over the training split), exactly one of them; without either,
    1000 steps. The loss of a step is the sum of token losses divided by the number of loss tokens in the whole
    accumulation window. The learning rate warms up linearly for `warmup_steps`, then decays to
    `min_lr_ratio * lr` by the last step (linear or cosine) or stays constant.

    Validation runs every `eval_interval` steps (`epoch`: once per pass over the training split; 0: never) on a
    fixed subset of `eval_examples` validation questions, and after the last step. It always measures the
    answer-token CE; with `keep: best` it also scores greedy answers on the same questions (`select_metric`
    EM/F1/ROUGE-L, as DistiLLM selects by ROUGE-L; `val_ce` selects by the CE alone) and the run keeps the weights
    of the best validation, recording its step. `keep: last` keeps the weights after the last step.
    """

    max_steps: int | None = Field(None, gt=0)
    epochs: float | None = Field(None, gt=0)
    batch_size: int = Field(8, gt=0)
    grad_accum: int = Field(1, gt=0)
    lr: float = Field(2e-5, gt=0, le=3.4e38)  # finite in float32 (AdamW state); a config error beyond
    weight_decay: float = Field(0.01, ge=0)
    adam_betas: tuple[float, float] = (0.9, 0.999)
    adam_eps: float = Field(1e-8, gt=0)
    warmup_steps: int = Field(0, ge=0)
    schedule: Literal["linear", "cosine", "constant"] = "cosine"
    min_lr_ratio: float = Field(0.0, ge=0, le=1)
    max_grad_norm: float | None = Field(1.0, gt=0)
    precision: Literal["fp32", "bf16"] = "fp32"
    gradient_checkpointing: bool = False
    lora: LoraSettings = LoraSettings()
    max_answer_tokens: int = Field(64, gt=1)
    checkpoint_interval: int = Field(100, ge=0)
    eval_interval: int | Literal["epoch"] = Field("epoch")
    eval_examples: int = Field(64, gt=0)
    eval_batch_size: int = Field(8, gt=0)
    eval_max_new_tokens: int = Field(32, gt=0)
    keep: Literal["best", "last"] = "last"
    select_metric: SelectMetric = "rouge_l"
    nan_policy: Literal["stop", "skip"] = "stop"
    # nan_policy skip: the run fails once more than this share of its steps so far were skipped (after at least
    # 10 steps), rather than ending with weights that trained on a handful of steps.
    max_skipped_fraction: float = Field(0.1, ge=0, le=1)

    @model_validator(mode="before")
    @classmethod
    def _default_budget(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("max_steps") is None and data.get("epochs") is None:
            return {**data, "max_steps": 1000}
        return data

    @model_validator(mode="after")
    def _one_budget(self) -> TrainConfig:
        if self.max_steps is not None and self.epochs is not None:
            raise ValueError("set exactly one of max_steps and epochs (set the other to null)")
        if self.keep == "best" and not self.validates:
            raise ValueError("keep: best needs validation (eval_interval > 0 or 'epoch')")
        return self

    @property
    def validates(self) -> bool:
        return self.eval_interval != 0

    def total_steps(self, train_examples: int, world_size: int = 1) -> int:
        """The step budget: `max_steps`, or `epochs` passes over `train_examples` (at least one step)."""
        if self.max_steps is not None:
            return self.max_steps
        epochs = self.epochs if self.epochs is not None else 1.0  # the validator ensures one of the two
        return max(1, math.ceil(epochs * train_examples / self.examples_per_step(world_size)))

    def steps_per_epoch(self, train_examples: int, world_size: int = 1) -> int:
        return max(1, math.ceil(train_examples / self.examples_per_step(world_size)))

    def examples_per_step(self, world_size: int = 1) -> int:
        return self.batch_size * self.grad_accum * world_size


class OffPolicyConfig(Strict):
    """DistiLLM's adaptive off-policy use of student-generated outputs (SGO).

    Each micro-batch draws r ~ U(0, 1). With threshold phi and the decayed phi_t = phi * (1 - step / max_steps)
    ("decreasing"; "constant" = phi / 2, "increasing" = phi * step / max_steps): fresh student samples when
    r < phi_t, or when r < phi while the replay buffer is not yet full; a replay batch when r < phi; the ground
    truth otherwise. phi starts at `init_threshold` and rises by 0.1 (capped at 1) at a validation check when the
    student's validation CE is at least `loss_eps` above the reference (`raise_when="worse"`, DistiLLM's rule;
    the reference is reset to the current value when phi rises) or, with `raise_when="not_better"`, when it is
    not at least `loss_eps` below the best value so far.
    """

    enabled: bool = True
    init_threshold: float = Field(0.0, ge=0, le=1)
    loss_eps: float = Field(0.1, ge=0)
    threshold_step: float = Field(0.1, gt=0, le=1)
    raise_when: Literal["worse", "not_better"] = "worse"
    capacity: int = Field(1000, gt=0)
    replay_ratio: Literal["decreasing", "constant", "increasing"] = "decreasing"
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int = Field(32, gt=0)


class TeacherCacheConfig(Strict):
    """Distil from a cache of the teacher's top-k log-probabilities instead of a live teacher (`teacher_cache.py`).

    One teacher pass over the training prompts stores, for every answer position, the top-`k` token ids, their
    log-probabilities and the remaining tail mass under `dir/<key>/` (`dir` null: `$QADISTILL_CACHE/teacher_logits`
    or `~/.cache/qadistill/teacher_logits`); the key hashes the teacher weights, tokenizer, training token ids,
    prompt format, k and temperature, so every student and seed with the same prompts reuses it. The loss then uses
    the sparse form of the divergence (top-k plus tail; a lower bound on the dense value, exact when the teacher's
    tail mass is 0), and the teacher is never loaded when the cache exists. Adaptive off-policy steps score the
    student's own samples, which only a live teacher can do: the cache needs `off_policy.enabled: false`.
    `batch_size` is the batch of the teacher pass that builds the cache.
    """

    enabled: bool = False
    k: int = Field(64, gt=0)
    dir: Path | None = None
    batch_size: int = Field(16, gt=0)


class DistillConfig(Strict):
    """The distillation objective: (1 - kd_ratio) * CE + kd_ratio * divergence.

    `positions: answer` compares teacher and student where the answer is predicted (the study's objective);
    `all` at every position of prompt and answer, which is how a pruned student is healed before it learns the
    task (it needs the live teacher and no off-policy sampling).
    """

    divergence: DivergenceName = "srkl"
    positions: Literal["answer", "all"] = "answer"
    skew_alpha: float = Field(0.1, ge=0, le=1)
    jsd_beta: float = Field(0.5, gt=0, lt=1)
    temperature: float = Field(1.0, gt=0)
    kd_ratio: float = Field(1.0, ge=0, le=1)
    off_policy: OffPolicyConfig = OffPolicyConfig()
    teacher_cache: TeacherCacheConfig = TeacherCacheConfig()

    @model_validator(mode="after")
    def _compatible(self) -> DistillConfig:
        if self.teacher_cache.enabled and self.off_policy.enabled:
            raise ValueError(
                "teacher_cache.enabled needs off_policy.enabled=false: adaptive off-policy steps train on the "
                "student's own samples, which only the live teacher can score (set one of the two to false)"
            )
        if self.positions == "all" and (self.off_policy.enabled or self.teacher_cache.enabled):
            raise ValueError("positions: all needs off_policy.enabled=false and teacher_cache.enabled=false")
        return self

    def divergence_params(self) -> dict[str, Any]:
        if self.divergence in ("skl", "srkl"):
            return {"alpha": self.skew_alpha}
        if self.divergence == "jsd":
            return {"beta": self.jsd_beta}
        return {}


_PRUNE = re.compile(r"^prune:(half|quarter|every_other|\d+(,\d+)*|(block_influence|block|spread):[1-9]\d*)$")


class FinetuneJob(Strict):
    """Supervised fine-tuning of `model` on the training split's QA prompts (loss on answer tokens only)."""

    model: str
    out_dir: Path
    data: DataConfig = DataConfig()
    prompt: PromptConfig = PromptConfig()
    load: ModelLoadConfig = ModelLoadConfig()
    train: TrainConfig = TrainConfig()
    tracking: TrackingConfig = TrackingConfig()
    seed: int = 0
    resume: bool = False


class DistillJob(Strict):
    """Distillation of `teacher` into `student`: a model spec, or `prune:half|quarter|every_other|0,2,5` to make
    the student from the teacher by keeping a subset of its layers, or `prune:<method>:<keep>` to keep `keep`
    layers chosen by `block_influence` or `block` (measured on 64 training prompts) or `spread` evenly. `load`
    applies to the student, `teacher_load` to the teacher (e.g. dtype bfloat16 for a cheaper frozen teacher)."""

    teacher: str
    student: str
    out_dir: Path
    data: DataConfig = DataConfig()
    prompt: PromptConfig = PromptConfig()
    load: ModelLoadConfig = ModelLoadConfig()
    teacher_load: ModelLoadConfig = ModelLoadConfig()
    train: TrainConfig = TrainConfig()
    distill: DistillConfig = DistillConfig()
    tracking: TrackingConfig = TrackingConfig()
    seed: int = 0
    resume: bool = False

    @model_validator(mode="after")
    def _check_student(self) -> DistillJob:
        if self.student.startswith("prune:") and not _PRUNE.match(self.student):
            raise ValueError(
                f"student {self.student!r}: use prune:half, prune:quarter, prune:every_other, prune:0,2,5 or "
                "prune:block_influence|block|spread:<layers to keep>"
            )
        if self.distill.off_policy.enabled and not self.train.validates:
            raise ValueError(
                "adaptive off-policy distillation needs validation (train.eval_interval > 0 or 'epoch'): its "
                "threshold follows the validation CE"
            )
        return self

    def prune_keep(self) -> str | list[int] | PruneConfig | None:
        """The layers to keep when the student is pruned from the teacher (a preset, indices or a `PruneConfig`
        with the default calibration size), else None."""
        if not self.student.startswith("prune:"):
            return None
        keep = self.student.removeprefix("prune:")
        if ":" in keep:
            method, count = keep.split(":")
            return PruneConfig(method=method, keep=int(count))
        return [int(i) for i in keep.split(",")] if keep[0].isdigit() else keep


Job = FinetuneJob | DistillJob


def fingerprint(job: Job) -> dict[str, Any]:
    """What must not change between a run and its resumption: everything but `resume`, how often it saves, how
    many skipped steps it tolerates, where / in what batches the teacher cache is built (its key covers what it
    holds) and where it is tracked.

    Paths are resolved, so `--out k4` and `--out /abs/k4` (or a model given as `./m` and `m`) are the same run;
    `out_dir` stays in the document but `fingerprint_difference` only uses it to compare the other paths relative
    to it (a run folder moved together with the models inside it still resumes).
    """
    doc = job.model_dump(mode="json", exclude={"resume", "tracking"})
    for name in ("checkpoint_interval", "max_skipped_fraction"):  # when to save, when to give up: not the result
        doc["train"].pop(name, None)
    if isinstance(job, DistillJob):
        for name in ("dir", "batch_size"):
            doc["distill"]["teacher_cache"].pop(name, None)
    doc["out_dir"] = _resolved(job.out_dir)
    for key in _MODEL_KEYS:
        if key in doc and Path(doc[key]).expanduser().exists():  # a local model folder or file, not a hub id
            doc[key] = _resolved(doc[key])
    if doc["data"].get("data_dir") is not None:
        doc["data"]["data_dir"] = _resolved(doc["data"]["data_dir"])
    return doc


# Settings that are paths (or may be): compared as the same when they resolve to the same place, or when they lie
# at the same place relative to their run folder.
_MODEL_KEYS = ("model", "teacher", "student")
_PATH_KEYS = (*_MODEL_KEYS, "data.data_dir")


def _resolved(path: str | Path) -> str:
    return str(Path(path).expanduser().resolve())


def _get(doc: dict[str, Any], dotted: str) -> Any:
    value: Any = doc
    for part in filter(None, dotted.split(".")):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _same_place(old: Any, new: Any, saved_out: Any, current_out: Any) -> bool:
    """Whether two values of a path setting name the same thing: at the same place relative to their output
    folders (a run folder moved with the models inside it), or a relative path of an older fingerprint that
    resolves to the current one."""
    if not isinstance(old, str) or not isinstance(new, str) or not Path(new).is_absolute():
        return False
    if not Path(old).is_absolute():
        return _resolved(old) == new
    if not isinstance(saved_out, str) or not isinstance(current_out, str):
        return False
    return os.path.relpath(old, _resolved(saved_out)) == os.path.relpath(new, current_out)


def fingerprint_difference(saved: dict[str, Any], current: dict[str, Any]) -> str | None:
    """The first setting that differs between a checkpoint's fingerprint and the current job's, as
    `key (old -> new)`; None when the checkpoint belongs to this job. The output folder itself is not a setting."""
    saved, current = copy.deepcopy(saved), copy.deepcopy(current)
    saved_out, current_out = saved.pop("out_dir", None), current.pop("out_dir", None)
    for dotted in _PATH_KEYS:
        *parents, key = dotted.split(".")
        old_parent, new_parent = _get(saved, ".".join(parents)), _get(current, ".".join(parents))
        if not isinstance(old_parent, dict) or not isinstance(new_parent, dict):
            continue
        old, new = old_parent.get(key), new_parent.get(key)
        if old != new and _same_place(old, new, saved_out, current_out):
            new_parent[key] = old
    return None if saved == current else first_difference(saved, current)
