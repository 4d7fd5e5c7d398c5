"""Distillation the DistiLLM way: (1 - kd_ratio) * CE + kd_ratio * divergence (default skew reverse KL) on the
answer positions, with adaptive off-policy student-generated outputs (see `offpolicy.py`).

Teacher and student share one tokenizer; their embedding matrices may have different row counts (Qwen2.5-7B
152,064 vs 151,936), so both are compared on the tokenizer's first N = len(tokenizer) logits. The teacher runs
without gradients under `torch.inference_mode()` and, like the student, projects only the answer positions.
On student-generated batches the CE term is taken on the sampled tokens, as in DistiLLM.
"""

from __future__ import annotations

import time
from typing import Any

import torch

from qadistill.errors import QADistillError
from qadistill.losses import answer_cross_entropy, distillation_loss, get_divergence
from qadistill.train.answer_logits import answer_logits
from qadistill.train.batching import DataOrder, collate
from qadistill.train.common import (
    RunPaths,
    StepHook,
    TrainLog,
    accumulating,
    build_optimizer,
    check_finite,
    checkpoint_due,
    clip_gradients,
    eval_due,
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
from qadistill.train.config import DistillJob
from qadistill.train.offpolicy import FRESH_STUDENT, REPLAY, AdaptiveOffPolicy, ReplayBuffer, sample_student_answers
from qadistill.train.signals import graceful_stop


def load_student(job: DistillJob, teacher, teacher_tokenizer):
    """The student: a model spec of its own, or the teacher with only some of its layers (`prune:half` ...)."""
    from qadistill.models import load_model_and_tokenizer, prune_layers, resolve_dtype

    keep = job.prune_keep()
    if keep is None:
        return load_model_and_tokenizer(job.student, **job.load.model_dump())
    student = prune_layers(teacher, keep).to(resolve_dtype(job.load.dtype))
    return student, teacher_tokenizer


def run_distill(job: DistillJob, *, progress: bool = True, on_step: StepHook | None = None) -> dict[str, Any]:
    """Distill `job.teacher` into `job.student`; writes the same files as `run_finetune`.

    The result counts the micro-batches of each kind (ground_truth / fresh_student / replay) and records the final
    off-policy threshold and both parameter counts.
    """
    from accelerate.utils import set_seed

    from qadistill.models import check_same_tokenizer, load_model_and_tokenizer, param_count

    cfg, dcfg, opc, paths = job.train, job.distill, job.distill.off_policy, RunPaths(job.out_dir)
    if opc.enabled and not cfg.eval_interval:
        raise QADistillError("adaptive off-policy distillation needs train.eval_interval > 0 (it follows val CE)")
    if (done := finished_result(job, paths)) is not None:
        return done
    set_seed(job.seed)
    accelerator = make_accelerator(cfg.precision)
    teacher, tokenizer = load_model_and_tokenizer(job.teacher, **job.teacher_load.model_dump())
    student, student_tokenizer = load_student(job, teacher, tokenizer)
    vocab = check_same_tokenizer(tokenizer, student_tokenizer, teacher, student)
    teacher = teacher.requires_grad_(False).eval().to(accelerator.device)
    data = load_training_data(job, student_tokenizer)
    sizes = {"teacher_params": param_count(teacher), "student_params": param_count(student)}
    layers = {"teacher_layers": teacher.config.num_hidden_layers, "student_layers": student.config.num_hidden_layers}
    student = prepare_trainable(student, cfg)
    trainable = trainable_param_count(student)
    optimizer = build_optimizer(student, cfg)
    model, optimizer = accelerator.prepare(student, optimizer)
    raw_model = accelerator.unwrap_model(model)
    state, replay_state, resumed = start_or_resume(job, paths, raw_model, optimizer)
    policy, buffer = AdaptiveOffPolicy(opc, job.seed), ReplayBuffer(opc.capacity)
    if resumed:
        policy.load_state_dict(state.offpolicy)
        buffer.load_state_dict(replay_state or [])
    if accelerator.is_main_process:
        write_run_files(job, data, paths)
    log = TrainLog(paths.log, resume_step=state.step if resumed else None, enabled=accelerator.is_main_process)
    order = DataOrder(
        len(data.train), cfg.batch_size, job.seed, rank=accelerator.process_index, world_size=accelerator.num_processes
    )
    order.position = state.data_position
    pad_id = student_tokenizer.pad_token_id
    val_batches = fixed_batches(data.validation, cfg.eval_batch_size, pad_id)
    divergence, div_params = get_divergence(dcfg.divergence), dcfg.divergence_params()
    if not resumed and opc.enabled:  # DistiLLM measures the starting point: the threshold's first reference
        state.last_val_ce = validation_ce(model, val_batches, accelerator.device)
        policy.update(state.last_val_ce)
        log.write({"type": "eval", "step": 0, "val_ce": state.last_val_ce, "threshold": policy.threshold})

    bar = progress_bar(cfg.max_steps, state.step, "distill", progress and accelerator.is_main_process)
    with graceful_stop() as stop, bar:
        while state.step < cfg.max_steps:
            started = time.perf_counter()
            step = state.step + 1
            # one accumulation window; each micro-batch is ground truth, fresh student samples or a replay batch
            kinds, batches = [], []
            for _ in range(cfg.grad_accum):
                items = [data.train[i] for i in order.next_indices()]
                kind = policy.choose(state.step, cfg.max_steps, buffer)
                if kind == FRESH_STUDENT:
                    with accelerator.autocast():
                        items = sample_student_answers(raw_model, student_tokenizer, items, opc, vocab)
                    buffer.extend(items)
                elif kind == REPLAY:
                    items = buffer.sample(cfg.batch_size, policy.rng)
                kinds.append(kind)
                batches.append(collate(items, pad_id).to(accelerator.device))
            window_tokens = window_answer_tokens(batches, accelerator)
            lr = set_lr(optimizer, lr_at(state.step, cfg))

            # forward/backward: teacher (no grad) and student on the answer positions of the shared vocabulary
            step_loss, step_ce, step_div, finite = 0.0, 0.0, 0.0, True
            for i, batch in enumerate(batches):
                with torch.inference_mode():
                    teacher_logits = answer_logits(teacher, batch.input_ids, batch.attention_mask, batch.answer_len)
                teacher_logits = teacher_logits[..., :vocab].clone()  # a normal tensor, usable next to autograd
                with accumulating(accelerator, model, last=i == len(batches) - 1):
                    logits = answer_logits(model, batch.input_ids, batch.attention_mask, batch.answer_len)
                    labels, mask = batch.targets()
                    ce = answer_cross_entropy(logits, labels, mask)
                    div = divergence(
                        logits[..., :vocab], teacher_logits, mask, temperature=dcfg.temperature, **div_params
                    )
                    weight = window_weight(batch, window_tokens, accelerator.num_processes)
                    loss = distillation_loss(ce, div, dcfg.kd_ratio) * weight
                    if not (finite := check_finite(loss.detach(), "the loss", step, cfg, paths)):
                        break
                    accelerator.backward(loss)
                    step_loss += float(loss.detach())
                    step_ce += float(ce.detach()) * weight
                    step_div += float(div.detach()) * weight

            # update (or skip the step when nan_policy is skip and something was not finite)
            grad_norm = clip_gradients(accelerator, model, cfg) if finite else float("nan")
            finite = finite and check_finite(grad_norm, "the gradient norm", step, cfg, paths)
            if finite:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step_loss, step_ce, step_div = (mean_over_processes(v, accelerator) for v in (step_loss, step_ce, step_div))

            # bookkeeping and log
            state.step, state.data_position = step, order.position
            for kind in kinds:
                state.kinds[kind] += 1
            state.tokens += sum(b.n_tokens for b in batches)
            state.answer_tokens += int(sum(b.n_answer_tokens for b in batches))
            state.seconds += time.perf_counter() - started
            if finite:
                state.add_loss(step_loss)
            else:
                state.skipped_steps += 1
            record = {
                "type": "train",
                "step": step,
                "loss": step_loss if finite else None,
                "ce": step_ce if finite else None,
                "divergence": step_div if finite else None,
                "lr": lr,
                "grad_norm": grad_norm if finite else None,
                "answer_tokens": int(window_tokens),
                "kinds": {k: kinds.count(k) for k in sorted(set(kinds))},
                "threshold": policy.threshold,
                "replay_buffer": len(buffer),
                "skipped": not finite,
                "train_seconds": round(state.seconds, 3),
            }
            log.write(record)
            bar.update(1)
            bar.set_postfix(loss=f"{step_loss:.4f}", phi=f"{policy.threshold:.1f}")
            if on_step is not None:
                on_step(step, record)

            # validation (moves the off-policy threshold), checkpoint, graceful stop
            if eval_due(step, cfg) and val_batches:
                state.last_val_ce = validation_ce(model, val_batches, accelerator.device)
                raised = policy.update(state.last_val_ce)
                log.write(
                    {"type": "eval", "step": step, "val_ce": state.last_val_ce}
                    | {"threshold": policy.threshold, "threshold_raised": raised}
                )
            if checkpoint_due(step, cfg) or stop.requested:
                state.offpolicy = policy.state_dict()
                accelerator.wait_for_everyone()
                if accelerator.is_main_process:
                    write_checkpoint(paths, raw_model, optimizer, state, buffer.state_dict())
            if stop.requested:
                raise interrupted(stop, state, paths)

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        save_final_model(raw_model, student_tokenizer, paths, cfg)
    state.offpolicy = policy.state_dict()
    return summarize(
        state,
        paths,
        write=accelerator.is_main_process,
        method="distill",
        teacher=job.teacher,
        student=job.student,
        **sizes,
        **layers,
        trainable_params=trainable,
        shared_vocab=vocab,
        divergence=dcfg.divergence,
        kd_ratio=dcfg.kd_ratio,
        adaptive_off_policy=opc.enabled,
        final_threshold=policy.threshold,
        replay_buffer=len(buffer),
        lora=cfg.lora.enabled,
        precision=cfg.precision,
        train_examples=len(data.train),
        resumed=resumed,
    )
