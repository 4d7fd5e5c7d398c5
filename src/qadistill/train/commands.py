"""`qadistill finetune` and `qadistill distill`: options (or a YAML job plus key=value overrides) -> one run.

Settings are layered: the `--config` YAML file, then the options given on the command line, then trailing
`key=value` overrides with dotted keys (`train.lr=1e-4 distill.off_policy.capacity=500`). The heavy libraries
are imported only when a command runs. A run stopped by SIGINT/SIGTERM saves a checkpoint and exits with 130.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

ConfigFile = Annotated[
    Path | None, typer.Option("--config", help="YAML job file (keys as in job.json); options override it.")
]
Overrides = Annotated[
    list[str] | None, typer.Argument(help="Dotted key=value overrides, e.g. train.lr=1e-4 train.warmup_steps=10.")
]
Out = Annotated[Path | None, typer.Option("--out", help="Output folder (model/, train_log.jsonl, ...).")]
Dataset = Annotated[str | None, typer.Option(help="squad_v2, mlqa-en, mlqa-de, demo-en or demo-de.")]
DataDir = Annotated[Path | None, typer.Option("--data-dir", help="Folder with squad_v2/ and mlqa/ files.")]
Shots = Annotated[int | None, typer.Option(help="Prompt format: 0 (zero-shot) or 1 (one-shot).")]
Seed = Annotated[int | None, typer.Option(help="Training seed (data order, sampling, LoRA init).")]
MaxSteps = Annotated[int | None, typer.Option(help="Optimizer steps.")]
BatchSize = Annotated[int | None, typer.Option(help="Questions per micro-batch (per process).")]
GradAccum = Annotated[int | None, typer.Option(help="Micro-batches per optimizer step.")]
Lr = Annotated[float | None, typer.Option(help="Peak learning rate.")]
Lora = Annotated[bool | None, typer.Option("--lora/--no-lora", help="Train LoRA adapters (merged on save).")]
Bf16 = Annotated[bool | None, typer.Option("--bf16/--fp32", help="bf16 autocast (default fp32).")]
Resume = Annotated[bool, typer.Option("--resume", help="Continue from the checkpoint in --out.")]
LimitTrain = Annotated[int | None, typer.Option(help="Train on at most this many questions (seeded subset).")]
Progress = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")]
AllowPickle = Annotated[bool, typer.Option("--allow-pickle", help="Allow loading pickle (.bin) weights.")]


def _set(doc: dict[str, Any], dotted: str, value: Any) -> None:
    """Set a dotted key when the option was given (None = not given)."""
    if value is None:
        return
    *sections, key = dotted.split(".")
    for section in sections:
        doc = doc.setdefault(section, {})
    doc[key] = value


def _layered(config: Path | None, options: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    from qadistill.train.config import apply_overrides, read_config_file

    doc = read_config_file(config)
    for dotted, value in options.items():
        _set(doc, dotted, str(value) if isinstance(value, Path) else value)
    return apply_overrides(doc, overrides or [])


def _source(kind: str, config: Path | None) -> str:
    """How a validation error names the job: the config file when one was given."""
    return f"{kind} (config {config})" if config is not None else kind


def _common_options(**kw: Any) -> dict[str, Any]:
    return {
        "out_dir": kw["out"],
        "data.dataset": kw["dataset"],
        "data.data_dir": kw["data_dir"],
        "data.splits.max_train": kw["limit_train"],
        "prompt.shots": kw["shots"],
        "seed": kw["seed"],
        "train.max_steps": kw["max_steps"],
        "train.batch_size": kw["batch_size"],
        "train.grad_accum": kw["grad_accum"],
        "train.lr": kw["lr"],
        "train.lora.enabled": kw["lora"],
        "train.precision": None if kw["bf16"] is None else ("bf16" if kw["bf16"] else "fp32"),
        "resume": kw["resume"] or None,
        "load.allow_pickle": kw["allow_pickle"] or None,
    }


def _run(runner, job) -> None:
    from qadistill.train.signals import TrainingInterrupted

    try:
        result = runner(job)
    except TrainingInterrupted as stop:
        typer.echo(str(stop), err=True)
        raise typer.Exit(130) from None
    if os.environ.get("RANK", "0") == "0":  # multi-process launches: the main process prints the result
        typer.echo(json.dumps(result, indent=2, ensure_ascii=False))


def finetune_command(
    overrides: Overrides = None,
    model: Annotated[str | None, typer.Option(help="Model spec: hub id, local folder, .gguf, registry name.")] = None,
    out: Out = None,
    dataset: Dataset = None,
    data_dir: DataDir = None,
    shots: Shots = None,
    seed: Seed = None,
    max_steps: MaxSteps = None,
    batch_size: BatchSize = None,
    grad_accum: GradAccum = None,
    lr: Lr = None,
    lora: Lora = None,
    bf16: Bf16 = None,
    resume: Resume = False,
    limit_train: LimitTrain = None,
    config: ConfigFile = None,
    allow_pickle: AllowPickle = False,
    progress: Progress = True,
) -> None:
    """Fine-tune a causal LM on QA prompts (loss on answer tokens); writes model/, train_log.jsonl, train_result."""
    from qadistill.train.config import FinetuneJob, build_job
    from qadistill.train.finetune import run_finetune

    options = _common_options(**locals()) | {"model": model}
    job = build_job(FinetuneJob, _layered(config, options, overrides), _source("finetune job", config))
    _run(lambda j: run_finetune(j, progress=progress), job)


def distill_command(
    overrides: Overrides = None,
    teacher: Annotated[str | None, typer.Option(help="Teacher model spec.")] = None,
    student: Annotated[
        str | None, typer.Option(help="Student model spec, or prune:half|quarter|every_other|0,2,5 of the teacher.")
    ] = None,
    out: Out = None,
    dataset: Dataset = None,
    data_dir: DataDir = None,
    shots: Shots = None,
    seed: Seed = None,
    max_steps: MaxSteps = None,
    batch_size: BatchSize = None,
    grad_accum: GradAccum = None,
    lr: Lr = None,
    lora: Lora = None,
    bf16: Bf16 = None,
    divergence: Annotated[
        str | None, typer.Option(help="forward_kl, reverse_kl, skl, srkl (default), jsd or tvd.")
    ] = None,
    kd_ratio: Annotated[float | None, typer.Option(help="Weight of the divergence vs CE (default 1.0).")] = None,
    skew_alpha: Annotated[float | None, typer.Option(help="Skew of skl/srkl (default 0.1).")] = None,
    adaptive: Annotated[
        bool | None, typer.Option("--adaptive/--no-adaptive", help="DistiLLM adaptive off-policy student outputs.")
    ] = None,
    resume: Resume = False,
    limit_train: LimitTrain = None,
    config: ConfigFile = None,
    allow_pickle: AllowPickle = False,
    progress: Progress = True,
) -> None:
    """Distill a teacher into a student (DistiLLM: skew KL + adaptive off-policy); writes the same files as finetune."""
    from qadistill.train.config import DistillJob, build_job
    from qadistill.train.distill import run_distill

    options = _common_options(**locals()) | {
        "teacher": teacher,
        "student": student,
        "distill.divergence": divergence,
        "distill.kd_ratio": kd_ratio,
        "distill.skew_alpha": skew_alpha,
        "distill.off_policy.enabled": adaptive,
        "teacher_load.allow_pickle": allow_pickle or None,
    }
    job = build_job(DistillJob, _layered(config, options, overrides), _source("distill job", config))
    _run(lambda j: run_distill(j, progress=progress), job)
