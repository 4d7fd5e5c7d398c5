"""From a loaded model and a job to a `Run` the loop can train: data, trainable model, optimizer, validation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from qadistill.train.config import Job, TrainConfig
from qadistill.train.data import TrainingData, load_training_data, write_run_files
from qadistill.train.distributed import check_sharding
from qadistill.train.optim import (
    build_optimizer,
    prepare_trainable,
    sparse_tied_embedding_gradient,
    trainable_param_count,
)
from qadistill.train.state import RunPaths
from qadistill.train.validation import Validator


@dataclass
class Run:
    """A prepared run: the job, its files, the accelerator, the (wrapped and raw) model, optimizer and data."""

    job: Job
    paths: RunPaths
    accelerator: Any
    model: torch.nn.Module
    raw_model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    tokenizer: Any
    data: TrainingData
    validator: Validator
    total_steps: int
    trainable_params: int
    sharded: str | None = None


def prepare_run(
    job: Job, model: torch.nn.Module, tokenizer, accelerator, *, context_tokens: int | None, off_policy: bool = False
) -> Run:
    """Encode the data, make the model trainable (LoRA, checkpointing), build AdamW, wrap both for the launch
    (DDP / FSDP / DeepSpeed), write the job and split files, and size the budget and validation."""
    cfg, paths = job.train, RunPaths(job.out_dir)
    data = load_training_data(job, tokenizer, context_tokens)
    model = prepare_trainable(model, cfg)
    trainable = trainable_param_count(model)
    optimizer = build_optimizer(model, cfg, accelerator.device)
    sharded = check_sharding(accelerator, cfg, resume=job.resume, off_policy=off_policy)  # FSDP / DeepSpeed / None
    wrapped, optimizer = accelerator.prepare(model, optimizer)
    raw_model = accelerator.unwrap_model(wrapped)
    if sharded is None:  # after the DDP wrap, which would otherwise expect a sparse gradient for the tied weight
        sparse_tied_embedding_gradient(raw_model)
    if accelerator.is_main_process:
        write_run_files(job, data, paths)
    world = accelerator.num_processes
    validator = Validator(cfg, data, tokenizer, job.seed, cfg.steps_per_epoch(len(data.train), world))
    return Run(
        job=job,
        paths=paths,
        accelerator=accelerator,
        model=wrapped,
        raw_model=raw_model,
        optimizer=optimizer,
        tokenizer=tokenizer,
        data=data,
        validator=validator,
        total_steps=cfg.total_steps(len(data.train), world),
        trainable_params=trainable,
        sharded=sharded,
    )


def save_final_model(model, tokenizer, paths: RunPaths, cfg: TrainConfig) -> Path:
    """The final model as a standard Hugging Face folder (LoRA adapters merged into the weights)."""
    from qadistill.models import save_model

    if cfg.lora.enabled:
        model = model.merge_and_unload()
    return save_model(model, tokenizer, paths.model)
