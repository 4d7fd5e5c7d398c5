"""Typed settings of fine-tuning and distillation runs, and the jobs that bundle them with data and prompts.

Every model rejects unknown keys (`Strict`), so a typo in a YAML file or a `key=value` override fails loudly.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from qadistill.config import DataConfig, ModelLoadConfig, PromptConfig, Strict
from qadistill.errors import QADistillError
from qadistill.overrides import apply_overrides  # noqa: F401  (re-exported: `key=value` overrides of jobs)

DivergenceName = Literal["forward_kl", "reverse_kl", "skl", "srkl", "jsd", "tvd"]


class LoraSettings(Strict):
    """LoRA adapters (peft). `target_modules="all-linear"` adapts every linear layer except the LM head."""

    enabled: bool = False
    r: int = Field(16, gt=0)
    alpha: float = Field(32.0, gt=0)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] | Literal["all-linear"] = "all-linear"


class TrainConfig(Strict):
    """Optimisation, precision, checkpointing and validation settings shared by fine-tuning and distillation.

    A step is one optimizer update over `grad_accum` micro-batches of `batch_size` questions (per process).
    The loss of a step is the sum of answer-token losses divided by the number of answer tokens in the whole
    accumulation window. The learning rate warms up linearly for `warmup_steps`, then decays to
    `min_lr_ratio * lr` by `max_steps` (linear or cosine) or stays constant.
    """

    max_steps: int = Field(1000, gt=0)
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
    eval_interval: int = Field(100, ge=0)
    eval_examples: int = Field(64, gt=0)
    eval_batch_size: int = Field(8, gt=0)
    nan_policy: Literal["stop", "skip"] = "stop"


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
    """The distillation objective: (1 - kd_ratio) * CE + kd_ratio * divergence on answer positions."""

    divergence: DivergenceName = "srkl"
    skew_alpha: float = Field(0.1, ge=0, le=1)
    jsd_beta: float = Field(0.5, gt=0, lt=1)
    temperature: float = Field(1.0, gt=0)
    kd_ratio: float = Field(1.0, ge=0, le=1)
    off_policy: OffPolicyConfig = OffPolicyConfig()
    teacher_cache: TeacherCacheConfig = TeacherCacheConfig()

    def divergence_params(self) -> dict[str, float]:
        if self.divergence in ("skl", "srkl"):
            return {"alpha": self.skew_alpha}
        if self.divergence == "jsd":
            return {"beta": self.jsd_beta}
        return {}


_PRUNE = re.compile(r"^prune:(half|quarter|every_other|\d+(,\d+)*)$")


class FinetuneJob(Strict):
    """Supervised fine-tuning of `model` on the training split's QA prompts (loss on answer tokens only)."""

    model: str
    out_dir: Path
    data: DataConfig = DataConfig()
    prompt: PromptConfig = PromptConfig()
    load: ModelLoadConfig = ModelLoadConfig()
    train: TrainConfig = TrainConfig()
    seed: int = 0
    resume: bool = False


class DistillJob(Strict):
    """Distillation of `teacher` into `student`: a model spec, or `prune:half|quarter|every_other|0,2,5` to make
    the student from the teacher by keeping a subset of its layers. `load` applies to the student,
    `teacher_load` to the teacher (e.g. dtype bfloat16 for a cheaper frozen teacher)."""

    teacher: str
    student: str
    out_dir: Path
    data: DataConfig = DataConfig()
    prompt: PromptConfig = PromptConfig()
    load: ModelLoadConfig = ModelLoadConfig()
    teacher_load: ModelLoadConfig = ModelLoadConfig()
    train: TrainConfig = TrainConfig()
    distill: DistillConfig = DistillConfig()
    seed: int = 0
    resume: bool = False

    @model_validator(mode="after")
    def _check_student(self) -> DistillJob:
        if self.student.startswith("prune:") and not _PRUNE.match(self.student):
            raise ValueError(
                f"student {self.student!r}: use prune:half, prune:quarter, prune:every_other or prune:0,2,5"
            )
        return self

    def prune_keep(self) -> str | list[int] | None:
        """The layers to keep when the student is pruned from the teacher, else None."""
        if not self.student.startswith("prune:"):
            return None
        keep = self.student.removeprefix("prune:")
        return [int(i) for i in keep.split(",")] if keep[0].isdigit() else keep


def fingerprint(job: FinetuneJob | DistillJob) -> dict[str, Any]:
    """What must not change between a run and its resumption: everything but `resume`, how often it saves, and
    where / in what batches the teacher cache is built (its key covers what it holds)."""
    doc = job.model_dump(mode="json", exclude={"resume"})
    doc["train"].pop("checkpoint_interval", None)
    if isinstance(job, DistillJob):
        for name in ("dir", "batch_size"):
            doc["distill"]["teacher_cache"].pop(name, None)
    return doc


# ----------------------------------------------------------------------------------------------- YAML + overrides


def read_config_file(path: Path | None) -> dict[str, Any]:
    """A job as a YAML mapping (empty when no file is given)."""
    if path is None:
        return {}
    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise QADistillError(f"cannot read config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise QADistillError(f"config file {path} is not valid YAML: {' '.join(str(exc).split())}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise QADistillError(f"config file {path} must hold a mapping of settings")
    return doc


def build_job(cls: type[FinetuneJob] | type[DistillJob], doc: dict[str, Any], source: str) -> Any:
    """Validate a job, turning pydantic's report into one line that names the offending keys."""
    try:
        return cls.model_validate(doc)
    except ValidationError as exc:
        problems = []
        for err in exc.errors()[:3]:
            where = ".".join(str(p) for p in err["loc"]) or "job"
            message = "missing (give it as an option or in --config)" if err["type"] == "missing" else err["msg"]
            problems.append(f"{where}: {message.removeprefix('Value error, ')}")
        more = f" (+{exc.error_count() - 3} more)" if exc.error_count() > 3 else ""
        raise QADistillError(f"{source}: {'; '.join(problems)}{more}") from None
