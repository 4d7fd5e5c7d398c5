"""The one training loop: fine-tuning, distillation and healing differ only in their objective and batch source.

Each step takes one accumulation window of micro-batches from the source, runs forward and backward on each (the
loss of a micro-batch weighted by its share of the window's loss tokens, so every token weighs the same however
the tokens fall into micro-batches and processes), clips, updates, logs, and validates and checkpoints when due.
SIGINT/SIGTERM finish the step, save a checkpoint and raise `TrainingInterrupted`; a NaN loss or gradient stops
the run (`nan_policy: stop`) or skips the step (`skip`).
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from contextlib import nullcontext
from typing import Any

import torch

from qadistill.tracking import start_tracking
from qadistill.train.config import fingerprint
from qadistill.train.distributed import (
    finite_everywhere,
    save_gathered_model,
    stop_requested,
    stopped_without_checkpoint,
    sum_over_processes,
)
from qadistill.train.log import TrainLog, progress_bar
from qadistill.train.objectives import Objective
from qadistill.train.optim import clip_gradients, lr_at, set_lr
from qadistill.train.setup import Run, save_final_model
from qadistill.train.signals import NonFiniteLoss, graceful_stop
from qadistill.train.sources import GroundTruth, MicroBatch
from qadistill.train.state import LoopState, interrupted, start_or_resume, write_checkpoint
from qadistill.train.validation import improved, prune_best, restore_best, save_best

logger = logging.getLogger("qadistill.train")


def train(
    run: Run, objective: Objective, source: GroundTruth, *, desc: str, progress: bool = True, on_step=None
) -> LoopState:
    """Train `run.raw_model` to `run.total_steps` (resuming from a checkpoint when the job says so) and save it.

    `on_step(step, record)` is called after every step (tests use it to interrupt a run).
    """
    cfg, acc, paths = run.job.train, run.accelerator, run.paths
    state, replay, resumed = start_or_resume(run.job, paths, run.raw_model, run.optimizer)
    if resumed:
        source.load_state_dict(state.source or {"position": state.data_position}, replay)
    resume_step, main = state.step if resumed else None, acc.is_main_process
    tracker = start_tracking(
        run.job.tracking, run.job.out_dir, fingerprint(run.job), resume_step=resume_step, enabled=main
    )
    log = TrainLog(paths.log, resume_step=resume_step, enabled=main, tracker=tracker)
    if not resumed and run.validator.enabled:  # the starting point: the off-policy threshold's first reference
        validate(run, state, source, log)

    bar = progress_bar(run.total_steps, state.step, desc, progress and acc.is_main_process)
    with graceful_stop() as stop, bar, log:
        while state.step < run.total_steps:
            started = time.perf_counter()
            step = state.step + 1
            window = source.window(state.step, run.total_steps)
            window_tokens = sum_over_processes(sum(objective.loss_tokens(m.batch) for m in window), acc)
            lr = set_lr(run.optimizer, lr_at(state.step, cfg, run.total_steps))

            sums, finite = forward_backward(run, objective, window, window_tokens, step)
            grad_norm = clip_gradients(acc, run.model, cfg) if finite else math.nan
            finite = finite and check_finite(grad_norm, "the gradient norm", step, run)
            if finite:  # else nan_policy is skip: the window's gradients are dropped
                run.optimizer.step()
            run.optimizer.zero_grad(set_to_none=True)

            state.step, state.data_position = step, source.position
            kinds = Counter(m.kind for m in window)
            for kind, count in kinds.items():
                state.kinds[kind] += count
            state.tokens += int(sum_over_processes(sum(m.batch.n_tokens for m in window), acc))
            state.loss_tokens += int(window_tokens)
            state.seconds += time.perf_counter() - started
            if finite:
                state.add_loss(sums["loss"])
            else:
                skipped(state, step, run)
            record = {
                "type": "train",
                "step": step,
                **{name: value if finite else None for name, value in sums.items()},
                "lr": lr,
                "grad_norm": grad_norm if finite else None,
                "loss_tokens": int(window_tokens),
                "kinds": dict(kinds),
                **source.log_fields(),
                "skipped": not finite,
                "train_seconds": round(state.seconds, 3),
            }
            log.write(record)
            bar.update(1)
            bar.set_postfix(loss=f"{sums['loss']:.4f}")
            if on_step is not None:
                on_step(step, record)

            if run.validator.due(step, run.total_steps):
                validate(run, state, source, log)
            stopping = stop_requested(stop, acc)  # decided together: no process runs on alone
            if checkpoint_due(step, run) or (stopping and not run.sharded):
                save_progress(run, state, source)
            if stopping:
                raise (
                    stopped_without_checkpoint(stop, step, run.sharded)
                    if run.sharded
                    else interrupted(stop, state, paths)
                )

    save_model(run, state)
    return state


def forward_backward(
    run: Run, objective: Objective, window: list[MicroBatch], window_tokens: float, step: int
) -> tuple[dict[str, float], bool]:
    """Backward of every micro-batch of the window; returns the window's mean loss terms and whether all were finite.

    The factor `num_processes` undoes the gradient averaging over processes.
    """
    acc, sums = run.accelerator, {"loss": 0.0}
    for i, micro in enumerate(window):
        last = i == len(window) - 1
        with nullcontext() if last else acc.no_sync(run.model):  # one gradient all-reduce per window
            terms = objective(run.model, micro)
            weight = objective.loss_tokens(micro.batch) * acc.num_processes / window_tokens
            loss = terms.loss * weight
            if not check_finite(finite_everywhere(loss.detach(), acc), "the loss", step, run):  # all skip, or none
                return sums, False
            acc.backward(loss)
            sums["loss"] += float(loss.detach())
            for name in ("ce", "divergence"):
                if (value := getattr(terms, name)) is not None:
                    sums[name] = sums.get(name, 0.0) + float(value) * weight
            del terms, loss  # the graph's nodes go now, not when the next micro-batch replaces them
    return {name: mean_over_processes(value, acc) for name, value in sums.items()}, True


def validate(run: Run, state: LoopState, source: GroundTruth, log: TrainLog) -> None:
    """Validation CE (and the selection metric when keeping the best weights); every process takes the same
    decisions (off-policy threshold, best step) from the values averaged over processes."""
    acc, step, validator = run.accelerator, state.step, run.validator
    scores = validator.run(run.model, run.raw_model, acc.device, candidate=step > 0)
    scores = {name: mean_over_processes(value, acc) for name, value in scores.items()}
    state.last_val_ce = scores["val_ce"]
    if step == 0:
        state.first_val_ce = scores["val_ce"]
    record: dict[str, Any] = {"type": "eval", "step": step, **scores, **source.on_validation(scores["val_ce"])}
    if (
        step > 0
        and run.job.train.keep == "best"
        and improved(value := validator.selection_value(scores), state.best_value)
    ):
        state.best_step, state.best_value = step, value
        if acc.is_main_process:
            save_best(run.paths.best, run.raw_model, step)
        acc.wait_for_everyone()
        record["best"] = True
    state.validations.append({"step": step, **scores})
    log.write(record)


def save_progress(run: Run, state: LoopState, source: GroundTruth) -> None:
    """A checkpoint (main process), after which best weights of older steps are no longer needed."""
    acc = run.accelerator
    state.source = source.state_dict()
    acc.wait_for_everyone()
    if acc.is_main_process:
        write_checkpoint(run.paths, run.raw_model, run.optimizer, state, source.replay_state())
        prune_best(run.paths.best, state.best_step)
    acc.wait_for_everyone()


def save_model(run: Run, state: LoopState) -> None:
    """The kept weights (best validation or last step) as a Hugging Face folder, written atomically."""
    acc = run.accelerator
    acc.wait_for_everyone()
    if run.job.train.keep == "best" and state.best_step is not None:
        restore_best(run.paths.best, run.raw_model, state.best_step)
        if acc.is_main_process:
            prune_best(run.paths.best, state.best_step)  # what a resume before the result file needs
    if run.sharded:  # gather the shards on every process; the main one saves
        save_gathered_model(acc, run.model, run.tokenizer, run.paths.model)
    elif acc.is_main_process:
        save_final_model(run.raw_model, run.tokenizer, run.paths, run.job.train)
    acc.wait_for_everyone()  # no process returns before the model is on disk


MIN_STEPS_BEFORE_GIVING_UP = 10
"""`nan_policy: skip` judges the share of skipped steps only from this many steps on (one early skip is no trend)."""


def skipped(state: LoopState, step: int, run: Run) -> None:
    """Count a skipped step, say so, and give up once too many of the steps so far were skipped: a run that
    skipped most of its steps would otherwise end normally with weights trained on a handful of them."""
    state.skipped_steps += 1
    limit = run.job.train.max_skipped_fraction
    logger.warning(
        "step %d skipped: its loss or gradient was not finite (%d skipped so far)", step, state.skipped_steps
    )
    if step >= MIN_STEPS_BEFORE_GIVING_UP and state.skipped_steps > limit * step:
        raise NonFiniteLoss(
            f"{state.skipped_steps} of {step} steps were skipped (not finite), more than train.max_skipped_fraction "
            f"= {limit}; the model was not saved (lower the learning rate, or raise train.max_skipped_fraction)",
            step=step,
        )


def checkpoint_due(step: int, run: Run) -> bool:
    interval = run.job.train.checkpoint_interval
    return bool(interval) and step % interval == 0 and step < run.total_steps


def mean_over_processes(value: float, accelerator) -> float:
    if accelerator.num_processes == 1:
        return value
    return float(accelerator.reduce(torch.tensor(value, device=accelerator.device), reduction="mean"))


def check_finite(value: float | torch.Tensor, what: str, step: int, run: Run) -> bool:
    """True when `value` is finite. Otherwise False under `nan_policy: skip` (the caller skips the step), or
    `NonFiniteLoss` naming the step and the last good checkpoint under `nan_policy: stop`."""
    from qadistill.train.checkpoint import has_checkpoint, read_state

    if math.isfinite(float(value)):
        return True
    if run.job.train.nan_policy == "skip":
        return False
    folder = run.paths.checkpoint
    if has_checkpoint(folder):
        kept = f"the last good checkpoint {folder} (step {read_state(folder)['step']}) is kept"
    else:
        kept = "no checkpoint had been written yet"
    raise NonFiniteLoss(
        f"{what} is {float(value)} at step {step}; training stopped without saving the model, {kept} "
        "(lower the learning rate, or set train.nan_policy=skip)",
        step=step,
    )
