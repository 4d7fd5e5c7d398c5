"""Building blocks shared by the fine-tuning and distillation loops (`finetune.py`, `distill.py`).

Each loop reads top to bottom; what they have in common lives here: data encoding, the accelerator, the
optimizer and learning-rate schedule, token-normalised losses, validation CE, the log, the run state that a
checkpoint stores, and the output files.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from qadistill.data.prepare import PreparedData, prepare_data, prompt_format
from qadistill.data.splits import cap, save_split_ids
from qadistill.errors import QADistillError
from qadistill.io import atomic_write_json, atomic_write_text
from qadistill.losses import answer_cross_entropy
from qadistill.prompts import PromptFormat, fit_to_context
from qadistill.train.answer_logits import answer_logits
from qadistill.train.batching import Batch, TokenizedExample, collate, encode_examples
from qadistill.train.checkpoint import CHECKPOINT_DIR, has_checkpoint, load_checkpoint, read_state, save_checkpoint
from qadistill.train.config import DistillJob, FinetuneJob, TrainConfig, fingerprint
from qadistill.train.distributed import check_launch
from qadistill.train.offpolicy import STEP_KINDS
from qadistill.train.signals import NonFiniteLoss, StopRequest, TrainingInterrupted
from qadistill.train.tied_embedding import TiedGradient, tied_embedding_gradient

Job = FinetuneJob | DistillJob
StepHook = Callable[[int, dict[str, Any]], None]


# ------------------------------------------------------------------------------------------------------ files


@dataclass(frozen=True)
class RunPaths:
    """Where a run writes: the final model, the checkpoint, the log, the result and the job itself."""

    out_dir: Path

    @property
    def model(self) -> Path:
        return self.out_dir / "model"

    @property
    def checkpoint(self) -> Path:
        return self.out_dir / CHECKPOINT_DIR

    @property
    def log(self) -> Path:
        return self.out_dir / "train_log.jsonl"

    @property
    def result(self) -> Path:
        return self.out_dir / "train_result.json"

    @property
    def job(self) -> Path:
        return self.out_dir / "job.json"


def finished_result(job: Job, paths: RunPaths) -> dict[str, Any] | None:
    """With `resume`, a run that already finished with the same settings returns its saved result."""
    if not (job.resume and paths.result.is_file() and paths.model.is_dir() and paths.job.is_file()):
        return None
    try:
        saved = type(job).model_validate(json.loads(paths.job.read_text("utf-8")))
        result = json.loads(paths.result.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return result if fingerprint(saved) == fingerprint(job) else None


class TrainLog:
    """`train_log.jsonl`: one JSON record per step ("type": "train") or validation check ("type": "eval").

    A resumed run first drops the records written after its checkpoint, so the log reads like one run.
    """

    def __init__(self, path: Path, *, resume_step: int | None, enabled: bool = True) -> None:
        self.path, self.enabled = path, enabled
        if not enabled:
            return
        kept = []
        if resume_step is not None and path.is_file():
            for line in path.read_text("utf-8").splitlines():
                if line.strip() and json.loads(line).get("step", 0) <= resume_step:
                    kept.append(line + "\n")
        atomic_write_text(path, "".join(kept))

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(json.dumps(record) + "\n")


# ------------------------------------------------------------------------------------------------------- data


@dataclass
class TrainingData:
    """The split data, the prompt format, and the encoded training and fixed validation examples."""

    prepared: PreparedData
    fmt: PromptFormat
    train: list[TokenizedExample]
    validation: list[TokenizedExample]


def load_training_data(job: Job, tokenizer, context_tokens: int | None) -> TrainingData:
    """Split the dataset, build the training prompts and a fixed validation subset (for the CE checks).

    The prompt budget is lowered when prompt + answer would not fit `context_tokens` (the model's context).
    """
    cfg = job.train
    prepared = prepare_data(job.data)
    fmt = fit_to_context(prompt_format(prepared, job.prompt), context_tokens, cfg.max_answer_tokens + 1)
    demo_pool = prepared.split("demo_pool") if fmt.shots == 1 else []
    train = encode_examples(prepared.split("train"), fmt, tokenizer, demo_pool, job.seed, cfg.max_answer_tokens)
    validation: list[TokenizedExample] = []
    if cfg.eval_interval:
        held_out = cap(prepared.split("validation"), cfg.eval_examples, job.data.splits.seed)
        validation = encode_examples(held_out, fmt, tokenizer, demo_pool, job.seed, cfg.max_answer_tokens)
    return TrainingData(prepared, fmt, train, validation)


def write_run_files(job: Job, data: TrainingData, paths: RunPaths) -> None:
    """The job and the question ids of every split, so evaluation can use exactly the held-out questions."""
    paths.out_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(paths.job, job.model_dump(mode="json"))
    save_split_ids(data.prepared.splits, paths.out_dir / "split_ids.json")


# ------------------------------------------------------------------------------------------------ accelerator


def make_accelerator(precision: str):
    """An `accelerate.Accelerator` for this run's precision (device placement, autocast, distributed).

    accelerate keeps one process-wide state that refuses a second precision; a new run in the same process
    (tests, notebooks) with another precision resets it first.
    """
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    wanted = "bf16" if precision == "bf16" else "no"
    current = getattr(AcceleratorState, "_shared_state", {}).get("_mixed_precision")
    if current is not None and current != wanted:
        AcceleratorState._reset_state()
    accelerator = Accelerator(mixed_precision=wanted)
    check_launch(accelerator)  # multi-process: every process must see the others
    return accelerator


def accumulating(accelerator, model, *, last: bool):
    """Skip the gradient all-reduce on every micro-batch of a window but the last."""
    return nullcontext() if last else accelerator.no_sync(model)


def prepare_trainable(model, cfg: TrainConfig):
    """Gradient checkpointing, LoRA adapters (peft) if asked for, and train mode."""
    if cfg.gradient_checkpointing:
        kwargs = {"use_reentrant": False}
        if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x name
            model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
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


def trainable_param_count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ------------------------------------------------------------------------------------------ optimisation


FUSED_ADAMW_DEVICES = frozenset({"cpu", "cuda", "mps"})


def build_optimizer(
    model: torch.nn.Module, cfg: TrainConfig, device: torch.device | None = None
) -> torch.optim.Optimizer:
    """AdamW; weight decay on matrices only (not on biases and norm scales).

    The fused implementation (one kernel over all parameters instead of a loop of ops with temporaries the size
    of the parameters) where torch has it for `device` (the device training runs on; default: the parameters').
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


def lr_at(step: int, cfg: TrainConfig) -> float:
    """Learning rate of the step with 0-based index `step`: linear warmup, then linear / cosine decay."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    if cfg.schedule == "linear":
        factor = 1.0 - progress
    else:
        factor = 0.5 * (1.0 + math.cos(math.pi * progress))
    return cfg.lr * (cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * factor)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> float:
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def clip_gradients(accelerator, model: torch.nn.Module, cfg: TrainConfig, tied: TiedGradient | None = None) -> float:
    """Clip to `max_grad_norm` (if set) and return the total gradient norm before clipping.

    `tied`: with a factored tied-embedding gradient (one process, see `tied_embedding.py`) its norm joins the
    other parameters' and it is scaled by the same factor, as `clip_grad_norm_` would scale a dense one.
    """
    max_norm = cfg.max_grad_norm if cfg.max_grad_norm is not None else float("inf")
    params = [p for p in model.parameters() if p.requires_grad]
    for p in params:  # a sparse embedding gradient that met no dense head gradient (train/tied_embedding.py)
        if p.grad is not None and p.grad.is_sparse:
            p.grad = p.grad.to_dense()
    factored = tied.factored if tied is not None else None
    if factored is None or not factored.pending:
        return float(accelerator.clip_grad_norm_(params, max_norm))
    grads = [p.grad for p in params if p.grad is not None]
    norms = [factored.norm(), *([torch.nn.utils.get_total_norm(grads)] if grads else [])]
    total = torch.linalg.vector_norm(torch.stack(norms))
    torch.nn.utils.clip_grads_with_norm_(params, max_norm, total)
    factored.scale = _clip_factor(float(total), max_norm)
    return float(total)


def _clip_factor(total_norm: float, max_norm: float) -> float:
    """torch's `clip_grad_norm_` factor: max_norm / (norm + 1e-6), at most 1."""
    return min(1.0, max_norm / (total_norm + 1e-6)) if math.isfinite(total_norm) else math.nan


def cheaper_gradients(
    raw_model: torch.nn.Module, optimizer, cfg: TrainConfig, *, sharded: str | None, single_process: bool
) -> TiedGradient | None:
    """The tied embedding's cheaper gradient (`train/tied_embedding.py`; factored in fp32, where it takes the
    optimizer), never under FSDP/DeepSpeed (`sharded`)."""
    if sharded:
        return None
    factored_ok = cfg.precision == "fp32"  # factored needs fp32 (no autocast)
    return tied_embedding_gradient(
        raw_model, single_process=single_process, optimizer=optimizer if factored_ok else None
    )


def finish_window(optimizer, tied: TiedGradient | None, *, apply: bool) -> None:
    """Apply the accumulation window's gradients (unless the step is skipped) and reset them for the next one."""
    factored = tied.factored if tied is not None else None
    if apply:
        optimizer.step()
        if factored is not None and factored.pending:
            factored.step(optimizer)
    optimizer.zero_grad(set_to_none=True)
    if factored is not None:
        factored.clear()


def window_answer_tokens(batches: list[Batch], accelerator) -> float:
    """Answer tokens in the whole accumulation window, over all processes: the loss's denominator."""
    count = torch.tensor(float(sum(b.n_answer_tokens for b in batches)), device=accelerator.device)
    return float(accelerator.reduce(count, reduction="sum"))


def window_weight(batch: Batch, window_tokens: float, num_processes: int) -> float:
    """Turns a micro-batch's mean token loss into its share of sum(token losses) / window tokens.

    The factor `num_processes` undoes the gradient averaging over processes.
    """
    return batch.n_answer_tokens * num_processes / window_tokens


def mean_over_processes(value: float, accelerator) -> float:
    if accelerator.num_processes == 1:
        return value
    return float(accelerator.reduce(torch.tensor(value, device=accelerator.device), reduction="mean"))


def check_finite(value: float | torch.Tensor, what: str, step: int, cfg: TrainConfig, paths: RunPaths) -> bool:
    """True when `value` is finite. Otherwise False under `nan_policy: skip` (the caller skips the step), or
    `NonFiniteLoss` naming the step and the last good checkpoint under `nan_policy: stop`."""
    if math.isfinite(float(value)):
        return True
    if cfg.nan_policy == "skip":
        return False
    if has_checkpoint(paths.checkpoint):
        kept = f"the last good checkpoint {paths.checkpoint} (step {read_state(paths.checkpoint)['step']}) is kept"
    else:
        kept = "no checkpoint had been written yet"
    raise NonFiniteLoss(
        f"{what} is {float(value)} at step {step}; training stopped without saving the model, {kept} "
        "(lower the learning rate, or set train.nan_policy=skip)",
        step=step,
    )


@torch.inference_mode()
def validation_ce(model, batches: list[Batch], device) -> float:
    """Answer-token CE of `model` on the fixed validation batches (sum of token losses / tokens)."""
    was_training = model.training
    model.eval()
    total, tokens = 0.0, 0
    for batch in batches:
        batch = batch.to(device)
        logits = answer_logits(model, batch.input_ids, batch.attention_mask, batch.answer_len)
        labels, mask = batch.targets()
        total += float(answer_cross_entropy(logits.float(), labels, mask)) * batch.n_answer_tokens
        tokens += batch.n_answer_tokens
    model.train(was_training)
    return total / max(tokens, 1)


def fixed_batches(items: list[TokenizedExample], batch_size: int, pad_id: int) -> list[Batch]:
    return [collate(items[i : i + batch_size], pad_id) for i in range(0, len(items), batch_size)]


def progress_bar(total: int, initial: int, desc: str, enabled: bool):
    return tqdm(total=total, initial=initial, desc=desc, unit="step", disable=not enabled, dynamic_ncols=True)


# ----------------------------------------------------------------------------------------------- run state


@dataclass
class LoopState:
    """Everything about the loop's progress a checkpoint must restore (besides weights, optimizer and RNG)."""

    fingerprint: dict[str, Any]
    step: int = 0
    data_position: int = 0
    tokens: int = 0
    answer_tokens: int = 0
    seconds: float = 0.0
    kinds: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STEP_KINDS, 0))
    skipped_steps: int = 0
    recent_losses: list[float] = field(default_factory=list)
    last_val_ce: float | None = None
    offpolicy: dict[str, Any] | None = None

    def add_loss(self, loss: float) -> None:
        self.recent_losses = [*self.recent_losses, loss][-10:]


def start_or_resume(
    job: Job, paths: RunPaths, model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[LoopState, list[dict[str, Any]] | None, bool]:
    """A fresh state, or (with `resume` and a checkpoint) the restored one; returns (state, replay, resumed).

    A fresh run removes any old checkpoint, so nothing from another run can be resumed by mistake.
    """
    expected = fingerprint(job)
    if job.resume and has_checkpoint(paths.checkpoint):
        saved = read_state(paths.checkpoint)
        if saved.get("fingerprint") != expected:
            raise QADistillError(
                f"checkpoint {paths.checkpoint} was written by a run with other settings; resume with the same "
                "settings, or start over without --resume"
            )
        doc, replay = load_checkpoint(paths.checkpoint, model=model, optimizer=optimizer)
        return LoopState(**doc), replay, True
    shutil.rmtree(paths.checkpoint, ignore_errors=True)
    return LoopState(fingerprint=expected), None, False


def write_checkpoint(paths: RunPaths, model, optimizer, state: LoopState, replay=None) -> None:
    save_checkpoint(paths.checkpoint, model=model, optimizer=optimizer, state=asdict(state), replay=replay)


def checkpoint_due(step: int, cfg: TrainConfig) -> bool:
    return bool(cfg.checkpoint_interval) and step % cfg.checkpoint_interval == 0 and step < cfg.max_steps


def eval_due(step: int, cfg: TrainConfig) -> bool:
    return bool(cfg.eval_interval) and step % cfg.eval_interval == 0


def interrupted(stop: StopRequest, state: LoopState, paths: RunPaths) -> TrainingInterrupted:
    return TrainingInterrupted(
        f"stopped by {stop.signal_name} after step {state.step}; checkpoint saved to {paths.checkpoint}; "
        "run again with --resume to continue",
        step=state.step,
        checkpoint=paths.checkpoint,
    )


def save_final_model(model, tokenizer, paths: RunPaths, cfg: TrainConfig) -> Path:
    """The final model as a standard Hugging Face folder (LoRA adapters merged into the weights)."""
    from qadistill.models import save_model

    if cfg.lora.enabled:
        model = model.merge_and_unload()
    return save_model(model, tokenizer, paths.model)


def summarize(state: LoopState, paths: RunPaths, *, write: bool = True, **extra: Any) -> dict[str, Any]:
    """The result summary, also written to `train_result.json`."""
    seconds, recent = state.seconds, state.recent_losses
    result = {
        **extra,
        "steps": state.step,
        "micro_batches": state.data_position,
        "step_kinds": state.kinds,
        "skipped_steps": state.skipped_steps,
        "final_train_loss": recent[-1] if recent else None,
        "final_train_loss_avg10": sum(recent) / len(recent) if recent else None,
        "final_val_ce": state.last_val_ce,
        "seconds": round(seconds, 3),
        "tokens": state.tokens,
        "answer_tokens": state.answer_tokens,
        "tokens_per_second": round(state.tokens / seconds, 2) if seconds > 0 else None,
        "answer_tokens_per_second": round(state.answer_tokens / seconds, 2) if seconds > 0 else None,
        "model_dir": str(paths.model),
        "log": str(paths.log),
    }
    if write:
        atomic_write_json(paths.result, result)
    return result
