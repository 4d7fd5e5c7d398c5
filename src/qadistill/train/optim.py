"""The accelerator, the trainable model (LoRA, activation checkpointing), AdamW, the schedule and clipping."""

from __future__ import annotations

import math

import torch

from qadistill.errors import QADistillError
from qadistill.train.config import TrainConfig
from qadistill.train.distributed import check_launch

FUSED_ADAMW_DEVICES = frozenset({"cpu", "cuda", "mps"})


def make_accelerator():
    """An `accelerate.Accelerator`: device placement and the processes of a distributed launch.

    Mixed precision is not asked of accelerate (its process-wide state refuses a second precision in one process,
    and a grid runs fp32 and bf16 stages in one process): the loop autocasts itself (`autocast`).
    """
    from accelerate import Accelerator

    accelerator = Accelerator()
    check_launch(accelerator)  # multi-process: every process must see the others
    return accelerator


def autocast(precision: str, device: torch.device):
    """bf16 autocast around forward passes when `precision` is bf16 (weights and optimizer stay fp32)."""
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def prepare_trainable(model, cfg: TrainConfig):
    """Activation checkpointing, LoRA adapters (peft) if asked for, and train mode."""
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if cfg.lora.enabled:
        from peft import LoraConfig, get_peft_model

        lora = cfg.lora
        peft_config = LoraConfig(
            r=lora.r,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=lora.target_modules,
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, peft_config)
    model.train()
    return model


def sparse_tied_embedding_gradient(model) -> bool:  # a transformers model (or peft-wrapped)
    """Let the input-embedding lookup of a tied embedding give its gradient as the batch's rows only (sparse),
    which autograd adds into the LM head's dense gradient of the same weight: the same sum, without a zero-filled
    vocab x hidden temporary and a dense add per backward (545 MB fp32 for Qwen2.5-0.5B, 1.2 GB for 3B). Measured
    with `benchmarks/distill_step.py --repeats 3` (Qwen2.5 vocabulary): peak RSS above the loaded models 526 -> 455 MB,
    step time 0.56 -> 0.55 s.
    Returns whether it applies: an `nn.Embedding` whose trainable weight is the head's. Untied embeddings keep dense
    gradients (AdamW takes no sparse ones); call it after the DDP wrap, never under FSDP / DeepSpeed (flat shards).
    """
    embedding, head = model.get_input_embeddings(), model.get_output_embeddings()
    tied = isinstance(embedding, torch.nn.Embedding) and head is not None and embedding.weight is head.weight
    if not (tied and embedding.weight.requires_grad):
        return False
    embedding.sparse = True
    return True


def trainable_param_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def build_optimizer(
    model: torch.nn.Module, cfg: TrainConfig, device: torch.device | None = None
) -> torch.optim.Optimizer:
    """AdamW; weight decay on matrices only (not on biases and norm scales).

    The fused implementation where torch has it for `device` (one kernel over all parameters instead of a loop of
    ops with temporaries the size of the parameters: measured 1.4x faster steps with `benchmarks/distill_step.py`).
    """
    decay = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    if not groups:
        raise QADistillError("the model has no trainable parameters")
    params = decay + no_decay
    device_type = device.type if device is not None else params[0].device.type
    fused = device_type in FUSED_ADAMW_DEVICES and all(p.is_floating_point() for p in params)
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.adam_betas, eps=cfg.adam_eps, fused=fused or None)


def lr_at(step: int, cfg: TrainConfig, total_steps: int) -> float:
    """Learning rate of the step with 0-based index `step`: linear warmup, then linear / cosine decay."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    progress = (step - cfg.warmup_steps) / max(1, total_steps - cfg.warmup_steps)
    if cfg.schedule == "linear":
        factor = 1.0 - progress
    else:
        factor = 0.5 * (1.0 + math.cos(math.pi * progress))
    return cfg.lr * (cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * factor)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> float:
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def clip_gradients(accelerator, model: torch.nn.Module, cfg: TrainConfig) -> float:
    """Clip to `max_grad_norm` (if set) and return the total gradient norm before clipping."""
    max_norm = cfg.max_grad_norm if cfg.max_grad_norm is not None else float("inf")
    params = [p for p in model.parameters() if p.requires_grad]
    return float(accelerator.clip_grad_norm_(params, max_norm))
