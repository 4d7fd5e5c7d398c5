"""What the processes of a multi-process run (`accelerate launch` / `torchrun`: DDP, FSDP, DeepSpeed) do together.

Every process runs the same loop on its own share of each global batch (`DataOrder`). A decision that changes
which collective operations a process runs next (skip a step on a NaN, stop on a signal, save) must come out the
same on every process, or the others wait forever in the next all-reduce; such decisions are reduced over the
processes here. With one process every helper is a no-op without communication.

With FSDP or DeepSpeed the unwrapped model holds shards (FSDP, ZeRO-3) or the optimizer state is split (ZeRO-1/2),
so what needs the whole model or optimizer in one process (resumable checkpoints, LoRA merges, sampling from the
student) is refused up front, and the final weights are gathered from all processes before the main one saves.
"""

from __future__ import annotations

import math
import os
from typing import Any

import torch

from qadistill.errors import QADistillError
from qadistill.train.signals import StopRequest, TrainingInterrupted


def check_launch(accelerator) -> None:
    """Refuse a launch whose processes would each train alone: `torchrun` on a machine without GPUs needs
    `ACCELERATE_USE_CPU=1`, or accelerate silently gives every process a world of one (and N copies of the run)."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    if world > accelerator.num_processes:
        raise QADistillError(
            f"launched as {world} processes, but accelerate set up {accelerator.num_processes}: for multi-process "
            "training on CPUs set ACCELERATE_USE_CPU=1 (gloo backend)"
        )


def any_process(flag: bool, accelerator) -> bool:
    """True on every process when `flag` is true on at least one of them (a collective: all must call it)."""
    if accelerator.num_processes == 1:
        return flag
    count = accelerator.reduce(torch.tensor(float(flag), device=accelerator.device), reduction="sum")
    return float(count) > 0


def finite_everywhere(value: float | torch.Tensor, accelerator) -> float:
    """`value` when it is finite on every process; NaN when it is finite here but not on another process.

    A NaN loss on one process must skip (or stop) the step on all of them: a process that skipped the backward
    pass would leave the others waiting in the gradient all-reduce.
    """
    value = float(value)
    if any_process(not math.isfinite(value), accelerator) and math.isfinite(value):
        return float("nan")
    return value


def sum_over_processes(value: float, accelerator) -> float:
    if accelerator.num_processes == 1:
        return value
    return float(accelerator.reduce(torch.tensor(float(value), device=accelerator.device), reduction="sum"))


def stop_requested(stop: StopRequest, accelerator) -> bool:
    """Whether any process got SIGINT/SIGTERM (a collective, once per step).

    A signal reaches the processes at slightly different moments; deciding locally would let one process save
    and exit while the others start the next step's all-reduce.
    """
    stopping = any_process(stop.requested, accelerator)
    if stopping and not stop.requested:
        stop.signal_name = "a signal to another process"
    return stopping


# ------------------------------------------------------------------------------------------ FSDP, DeepSpeed


def sharding(accelerator) -> str | None:
    """`FSDP` or `DeepSpeed` when accelerate shards the model or its optimizer state; None for one process / DDP."""
    from accelerate.utils import DistributedType

    if accelerator.distributed_type == DistributedType.FSDP:
        return "FSDP"
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        return "DeepSpeed"
    return None


def check_sharding(accelerator, cfg, *, resume: bool, off_policy: bool = False) -> str | None:
    """Before `accelerator.prepare`: refuse what a sharded run cannot do yet, and fill in DeepSpeed's batch size.

    Returns `sharding(accelerator)`. DeepSpeed runs its optimizer step inside `accelerator.backward`, so a step
    must be a single micro-batch (`grad_accum` 1; scale with processes or `batch_size`), and it clips gradients
    itself (`gradient_clipping` is set from `train.max_grad_norm`).
    """
    name = sharding(accelerator)
    if name is None:
        return None
    refused = []
    if cfg.lora.enabled:
        refused.append("LoRA (train.lora.enabled)")
    if off_policy:
        refused.append("adaptive off-policy sampling (distill.off_policy.enabled)")
    if cfg.checkpoint_interval:
        refused.append("checkpoints (set train.checkpoint_interval=0)")
    if cfg.keep == "best":
        refused.append("keeping the best validation's weights (set train.keep=last)")
    if resume:
        refused.append("--resume")
    if name == "DeepSpeed":
        plugin = accelerator.state.deepspeed_plugin
        if cfg.grad_accum > 1 or plugin.deepspeed_config.get("gradient_accumulation_steps", 1) not in (1, "auto"):
            refused.append("gradient accumulation (set train.grad_accum=1 and gradient_accumulation_steps: 1)")
        plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = cfg.batch_size
        plugin.deepspeed_config["gradient_accumulation_steps"] = 1
        plugin.deepspeed_config["gradient_clipping"] = cfg.max_grad_norm or 0.0
    if refused:
        raise QADistillError(
            f"{name} training does not support {'; '.join(refused)}; use DDP (configs/accelerate/ddp.yaml) for these"
        )
    return name


def save_gathered_model(accelerator, model, tokenizer, out_dir) -> None:
    """Gather the full weights of a sharded `model` (every process must call this) and save a Hugging Face folder
    from the main process, atomically."""
    from qadistill.io import atomic_dir

    state_dict: dict[str, Any] = accelerator.get_state_dict(model)
    if not accelerator.is_main_process:
        return
    bad = next((n for n, t in state_dict.items() if t.is_floating_point() and not torch.isfinite(t).all()), None)
    if bad is not None:
        raise QADistillError(f"model weight '{bad}' has NaN or Inf values; refusing to save it to {out_dir}")
    with atomic_dir(out_dir) as tmp:
        accelerator.unwrap_model(model).save_pretrained(str(tmp), state_dict=state_dict)
        tokenizer.save_pretrained(str(tmp))


def stopped_without_checkpoint(stop: StopRequest, step: int, name: str) -> TrainingInterrupted:
    return TrainingInterrupted(
        f"stopped by {stop.signal_name} after step {step}; {name} runs write no checkpoint, so the run cannot be "
        "resumed (start it again)",
        step=step,
        checkpoint=None,
    )
