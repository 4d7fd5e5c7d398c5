"""Supervised fine-tuning on QA prompts: cross-entropy on the answer tokens (span + EOS) only.

One plain loop on `accelerate`: each step takes `grad_accum` left-padded micro-batches, runs the model with the
LM head on the answer positions only, and divides the summed token losses by the answer tokens of the whole
window, so every answer token weighs the same however the tokens fall into micro-batches.
"""

from __future__ import annotations

import time
from typing import Any

from qadistill.losses import answer_cross_entropy
from qadistill.runtime import return_free_memory
from qadistill.train.adamw_rows import allocate_adamw_state
from qadistill.train.answer_logits import answer_logits
from qadistill.train.batching import DataOrder, collate
from qadistill.train.common import (
    RunPaths,
    StepHook,
    TrainLog,
    accumulating,
    build_optimizer,
    cheaper_gradients,
    check_finite,
    checkpoint_due,
    clip_gradients,
    eval_due,
    finish_window,
    finished_result,
    fixed_batches,
    interrupted,
    load_training_data,
    lr_at,
    make_accelerator,
    mean_over_processes,
    prepare_trainable,
    progress_bar,
    save_final_model,
    set_lr,
    start_or_resume,
    summarize,
    trainable_param_count,
    validation_ce,
    window_answer_tokens,
    window_weight,
    write_checkpoint,
    write_run_files,
)
from qadistill.train.config import FinetuneJob
from qadistill.train.distributed import (
    check_sharding,
    finite_everywhere,
    save_gathered_model,
    stop_requested,
    stopped_without_checkpoint,
    sum_over_processes,
)
from qadistill.train.offpolicy import GROUND_TRUTH
from qadistill.train.signals import graceful_stop


def run_finetune(job: FinetuneJob, *, progress: bool = True, on_step: StepHook | None = None) -> dict[str, Any]:
    """Fine-tune `job.model`; writes model/, train_log.jsonl, train_result.json, split_ids.json, job.json.

    `on_step(step, record)` is called after every step (tests use it to interrupt a run).
    Raises `TrainingInterrupted` after saving a checkpoint on SIGINT/SIGTERM, `NonFiniteLoss` on a NaN loss.
    """
    from accelerate.utils import set_seed

    from qadistill.models import context_length, load_model_and_tokenizer, param_count

    cfg, paths = job.train, RunPaths(job.out_dir)
    if (done := finished_result(job, paths)) is not None:
        return done
    set_seed(job.seed)
    accelerator = make_accelerator(cfg.precision)
    model, tokenizer = load_model_and_tokenizer(job.model, **job.load.model_dump())
    data = load_training_data(job, tokenizer, context_length(model))
    params = param_count(model)
    return_free_memory()  # what loading parsed and freed (tokenizer, data files)
    model = prepare_trainable(model, cfg)
    trainable = trainable_param_count(model)
    optimizer = build_optimizer(model, cfg, accelerator.device)
    sharded = check_sharding(accelerator, cfg, resume=job.resume)  # "FSDP" / "DeepSpeed" / None (1 process, DDP)
    model, optimizer = accelerator.prepare(model, optimizer)
    raw_model = accelerator.unwrap_model(model)
    tied = cheaper_gradients(raw_model, optimizer, cfg, sharded=sharded, single_process=accelerator.num_processes == 1)
    state, _, resumed = start_or_resume(job, paths, raw_model, optimizer)
    if not resumed:  # moments now, below the step's short-lived tensors (train/adamw_rows.py)
        allocate_adamw_state(optimizer)
    if accelerator.is_main_process:
        write_run_files(job, data, paths)
    log = TrainLog(paths.log, resume_step=state.step if resumed else None, enabled=accelerator.is_main_process)
    order = DataOrder(
        len(data.train), cfg.batch_size, job.seed, rank=accelerator.process_index, world_size=accelerator.num_processes
    )
    order.position = state.data_position
    pad_id = tokenizer.pad_token_id
    val_batches = fixed_batches(data.validation, cfg.eval_batch_size, pad_id)

    bar = progress_bar(cfg.max_steps, state.step, "finetune", progress and accelerator.is_main_process)
    with graceful_stop() as stop, bar:
        while state.step < cfg.max_steps:
            started = time.perf_counter()
            step = state.step + 1
            # one accumulation window of micro-batches, in the resumable data order
            batches = [
                collate([data.train[i] for i in order.next_indices()], pad_id).to(accelerator.device)
                for _ in range(cfg.grad_accum)
            ]
            window_tokens = window_answer_tokens(batches, accelerator)
            lr = set_lr(optimizer, lr_at(state.step, cfg))

            # forward/backward: sum of answer-token CE over the window / answer tokens in the window
            step_loss, finite = 0.0, True
            for i, batch in enumerate(batches):
                with accumulating(accelerator, model, last=i == len(batches) - 1):
                    logits = answer_logits(model, batch.input_ids, batch.attention_mask, batch.answer_len)
                    labels, mask = batch.targets()
                    weight = window_weight(batch, window_tokens, accelerator.num_processes)
                    loss = answer_cross_entropy(logits, labels, mask) * weight
                    del logits  # the loss keeps what its backward needs
                    loss_value = finite_everywhere(loss.detach(), accelerator)  # all processes skip, or none
                    if not (finite := check_finite(loss_value, "the loss", step, cfg, paths)):
                        break
                    accelerator.backward(loss)
                    step_loss += float(loss.detach())
                    del loss  # the graph's nodes go now, not when the next step replaces them

            # update (or skip the step when nan_policy is skip and something was not finite)
            grad_norm = clip_gradients(accelerator, model, cfg, tied) if finite else float("nan")
            finite = finite and check_finite(grad_norm, "the gradient norm", step, cfg, paths)
            finish_window(optimizer, tied, apply=finite)
            step_loss = mean_over_processes(step_loss, accelerator)

            # bookkeeping and log
            state.step, state.data_position = step, order.position
            state.kinds[GROUND_TRUTH] += len(batches)
            state.tokens += int(sum_over_processes(sum(b.n_tokens for b in batches), accelerator))
            state.answer_tokens += int(window_tokens)
            state.seconds += time.perf_counter() - started
            if finite:
                state.add_loss(step_loss)
            else:
                state.skipped_steps += 1
            record = {
                "type": "train",
                "step": step,
                "loss": step_loss if finite else None,
                "lr": lr,
                "grad_norm": grad_norm if finite else None,
                "answer_tokens": int(window_tokens),
                "skipped": not finite,
                "train_seconds": round(state.seconds, 3),
            }
            log.write(record)
            bar.update(1)
            bar.set_postfix(loss=f"{step_loss:.4f}")
            if on_step is not None:
                on_step(step, record)

            # validation, checkpoint, graceful stop
            if eval_due(step, cfg) and val_batches:
                state.last_val_ce = validation_ce(model, val_batches, accelerator.device)
                log.write({"type": "eval", "step": step, "val_ce": state.last_val_ce})
            stopping = stop_requested(stop, accelerator)  # decided together: no process runs on alone
            if checkpoint_due(step, cfg) or (stopping and not sharded):
                accelerator.wait_for_everyone()
                if accelerator.is_main_process:
                    write_checkpoint(paths, raw_model, optimizer, state)
                accelerator.wait_for_everyone()
            if stopping:
                raise stopped_without_checkpoint(stop, step, sharded) if sharded else interrupted(stop, state, paths)

    accelerator.wait_for_everyone()
    if sharded:  # gather the shards on every process; the main one saves
        save_gathered_model(accelerator, model, tokenizer, paths.model)
    elif accelerator.is_main_process:
        save_final_model(raw_model, tokenizer, paths, cfg)
    accelerator.wait_for_everyone()  # no process returns before the model is on disk
    return summarize(
        state,
        paths,
        write=accelerator.is_main_process,
        method="finetune",
        model=job.model,
        params=params,
        trainable_params=trainable,
        lora=cfg.lora.enabled,
        precision=cfg.precision,
        train_examples=len(data.train),
        resumed=resumed,
    )
