"""Distillation the DistiLLM way: (1 - kd_ratio) * CE + kd_ratio * divergence (default skew reverse KL) on the
answer positions, with adaptive off-policy student-generated outputs (see `offpolicy.py`).

Teacher and student share one tokenizer; their embedding matrices may have different row counts (Qwen2.5-7B
152,064 vs 151,936), so both are compared on the tokenizer's first N = len(tokenizer) logits. The teacher runs
without gradients under `torch.inference_mode()` and, like the student, projects only the answer positions.
On student-generated batches the CE term is taken on the sampled tokens, as in DistiLLM.

With `distill.teacher_cache.enabled` the teacher's top-k log-probabilities come from a cache built by one teacher
pass (`teacher_cache.py`) and the loss uses the sparse form of the divergence; the teacher is loaded only to build
the cache (or to make a pruned student) and freed before training. Adaptive off-policy steps need the live teacher,
so the two cannot be combined. The result records `teacher_source` ("live" or "cache") and the cache key.
"""

from __future__ import annotations

import gc
import time
from typing import Any

import torch

from qadistill.errors import QADistillError
from qadistill.losses import answer_cross_entropy, distillation_loss, get_sparse_divergence
from qadistill.objective import answer_objective
from qadistill.runtime import return_free_memory
from qadistill.train.adamw_rows import allocate_adamw_state
from qadistill.train.answer_logits import answer_logits, logits_storage_reusable
from qadistill.train.batching import Batch, DataOrder, collate
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
from qadistill.train.config import DistillConfig, DistillJob
from qadistill.train.distributed import (
    check_sharding,
    finite_everywhere,
    save_gathered_model,
    stop_requested,
    stopped_without_checkpoint,
    sum_over_processes,
)
from qadistill.train.offpolicy import FRESH_STUDENT, REPLAY, AdaptiveOffPolicy, ReplayBuffer, sample_student_answers
from qadistill.train.signals import graceful_stop
from qadistill.train.teacher_cache import CachedTargets, CacheSetup, prepare_cache, resolve_cache_root


def load_student(job: DistillJob, teacher, teacher_tokenizer):
    """The student: a model spec of its own, or the teacher with only some of its layers (`prune:half` ...)."""
    from qadistill.models import load_model_and_tokenizer, prune_layers, resolve_dtype, same_tokenizer_files

    keep = job.prune_keep()
    if keep is None:  # the teacher's tokenizer, already loaded, when the student's files are the same
        shared = teacher_tokenizer if same_tokenizer_files(job.teacher, job.student) else None
        return load_model_and_tokenizer(job.student, tokenizer=shared, **job.load.model_dump())
    student = prune_layers(teacher, keep).to(resolve_dtype(job.load.dtype))
    return student, teacher_tokenizer


def load_teacher(job: DistillJob, device):
    """The frozen teacher and its tokenizer, on `device`."""
    from qadistill.models import load_model_and_tokenizer

    teacher, tokenizer = load_model_and_tokenizer(job.teacher, **job.teacher_load.model_dump())
    return teacher.requires_grad_(False).eval().to(device), tokenizer


def load_models(job: DistillJob, device, *, live_teacher: bool):
    """(teacher or None, teacher tokenizer, student, student tokenizer).

    Without a live teacher (the cache) only the teacher's tokenizer is read, unless the student is pruned from it.
    """
    from qadistill.models import load_tokenizer

    if live_teacher or job.prune_keep() is not None:
        teacher, tokenizer = load_teacher(job, device)
        return teacher, tokenizer, *load_student(job, teacher, tokenizer)
    tokenizer = load_tokenizer(job.teacher, trust_remote_code=job.teacher_load.trust_remote_code)
    return None, tokenizer, *load_student(job, None, tokenizer)


def check_teacher_cache(job: DistillJob) -> None:
    """The cache and adaptive off-policy steps exclude each other: say so before anything is loaded."""
    dcfg = job.distill
    if dcfg.teacher_cache.enabled and dcfg.off_policy.enabled:
        raise QADistillError(
            "distill.teacher_cache.enabled needs distill.off_policy.enabled=false: adaptive off-policy steps train "
            "on the student's own samples, which only the live teacher can score (set one of the two to false)"
        )


def run_distill(job: DistillJob, *, progress: bool = True, on_step: StepHook | None = None) -> dict[str, Any]:
    """Distill `job.teacher` into `job.student`; writes the same files as `run_finetune`.

    The result counts the micro-batches of each kind (ground_truth / fresh_student / replay) and records the final
    off-policy threshold and both parameter counts.
    """
    from accelerate.utils import set_seed

    from qadistill.models import check_same_tokenizer, context_length, param_count

    cfg, dcfg, opc, paths = job.train, job.distill, job.distill.off_policy, RunPaths(job.out_dir)
    if opc.enabled and not cfg.eval_interval:
        raise QADistillError("adaptive off-policy distillation needs train.eval_interval > 0 (it follows val CE)")
    if (done := finished_result(job, paths)) is not None:
        return done
    check_teacher_cache(job)
    set_seed(job.seed)
    accelerator = make_accelerator(cfg.precision)
    cache_cfg = dcfg.teacher_cache
    teacher, tokenizer, student, student_tokenizer = load_models(
        job, accelerator.device, live_teacher=not cache_cfg.enabled
    )
    vocab = check_same_tokenizer(tokenizer, student_tokenizer, teacher, student)
    contexts = [c for c in (context_length(student), teacher and context_length(teacher)) if c]
    data = load_training_data(job, student_tokenizer, min(contexts, default=None))
    cached: CacheSetup | None = None
    if cache_cfg.enabled:  # build or load the cache; the teacher is freed before training
        with torch.random.fork_rng(devices=[]):  # building or loading leaves the RNG as it was: same run either way
            cached = prepare_cache(
                root=resolve_cache_root(cache_cfg.dir),
                teacher_spec=job.teacher,
                teacher_dtype=job.teacher_load.dtype,
                tokenizer=tokenizer,
                examples=data.train,
                prompt=data.fmt,
                vocab=vocab,
                k=cache_cfg.k,
                temperature=dcfg.temperature,
                batch_size=cache_cfg.batch_size,
                pad_id=student_tokenizer.pad_token_id,
                teacher=teacher,
                load_teacher=lambda: _checked_teacher(job, accelerator.device, tokenizer),
                is_main=accelerator.is_main_process,
                wait=accelerator.wait_for_everyone,
                progress=progress and accelerator.is_main_process,
            )
        teacher = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        meta = cached.cache.meta
        t_params, t_layers = meta["teacher_params"], meta["teacher_layers"]
    else:
        t_params, t_layers = param_count(teacher), teacher.config.num_hidden_layers
    sizes = {"teacher_params": t_params, "student_params": param_count(student)}
    layers = {"teacher_layers": t_layers, "student_layers": student.config.num_hidden_layers}
    return_free_memory()  # what loading parsed and freed (tokenizer, data files)
    student = prepare_trainable(student, cfg)
    trainable = trainable_param_count(student)
    optimizer = build_optimizer(student, cfg, accelerator.device)
    sharded = check_sharding(accelerator, cfg, resume=job.resume, off_policy=opc.enabled)  # FSDP / DeepSpeed / None
    model, optimizer = accelerator.prepare(student, optimizer)
    raw_model = accelerator.unwrap_model(model)
    tied = cheaper_gradients(raw_model, optimizer, cfg, sharded=sharded, single_process=accelerator.num_processes == 1)
    state, replay_state, resumed = start_or_resume(job, paths, raw_model, optimizer)
    if not resumed:  # moments now, below the step's short-lived tensors (train/adamw_rows.py)
        allocate_adamw_state(optimizer)
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
    overwrite_logits = logits_storage_reusable(raw_model)  # the objective may write the gradient over them
    val_batches = fixed_batches(data.validation, cfg.eval_batch_size, pad_id)
    if not resumed and opc.enabled:  # DistiLLM measures the starting point: the threshold's first reference
        state.last_val_ce = mean_over_processes(validation_ce(model, val_batches, accelerator.device), accelerator)
        policy.update(state.last_val_ce)
        log.write({"type": "eval", "step": 0, "val_ce": state.last_val_ce, "threshold": policy.threshold})

    bar = progress_bar(cfg.max_steps, state.step, "distill", progress and accelerator.is_main_process)
    with graceful_stop() as stop, bar:
        while state.step < cfg.max_steps:
            started = time.perf_counter()
            step = state.step + 1
            # one accumulation window; each micro-batch is ground truth, fresh student samples or a replay batch
            kinds, batches, picked = [], [], []
            for _ in range(cfg.grad_accum):
                picked.append(order.next_indices())
                items = [data.train[i] for i in picked[-1]]
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
                if cached is None:
                    with torch.inference_mode():
                        target = answer_logits(teacher, batch.input_ids, batch.attention_mask, batch.answer_len)
                else:  # ground-truth batches only (no off-policy): the cached rows of these examples
                    target = cached.cache.batch(picked[i], batch.answer_len, accelerator.device)
                with accumulating(accelerator, model, last=i == len(batches) - 1):
                    logits = answer_logits(model, batch.input_ids, batch.attention_mask, batch.answer_len)
                    ce, div, objective = distillation_terms(
                        logits, batch, target, dcfg, vocab, overwrite_logits=overwrite_logits
                    )
                    del logits, target  # the objective keeps the gradient, not the logits
                    weight = window_weight(batch, window_tokens, accelerator.num_processes)
                    loss = objective * weight
                    loss_value = finite_everywhere(loss.detach(), accelerator)  # all processes skip, or none
                    if not (finite := check_finite(loss_value, "the loss", step, cfg, paths)):
                        break
                    accelerator.backward(loss)
                    step_loss += float(loss.detach())
                    step_ce += float(ce.detach()) * weight
                    step_div += float(div.detach()) * weight
                    del ce, div, objective, loss  # the graph's nodes go now, not when the next step replaces them

            # update (or skip the step when nan_policy is skip and something was not finite)
            grad_norm = clip_gradients(accelerator, model, cfg, tied) if finite else float("nan")
            finite = finite and check_finite(grad_norm, "the gradient norm", step, cfg, paths)
            finish_window(optimizer, tied, apply=finite)
            step_loss, step_ce, step_div = (mean_over_processes(v, accelerator) for v in (step_loss, step_ce, step_div))

            # bookkeeping and log
            state.step, state.data_position = step, order.position
            for kind in kinds:
                state.kinds[kind] += 1
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
                val_ce = validation_ce(model, val_batches, accelerator.device)
                state.last_val_ce = mean_over_processes(val_ce, accelerator)  # same policy decisions everywhere
                raised = policy.update(state.last_val_ce)
                log.write(
                    {"type": "eval", "step": step, "val_ce": state.last_val_ce}
                    | {"threshold": policy.threshold, "threshold_raised": raised}
                )
            stopping = stop_requested(stop, accelerator)  # decided together: no process runs on alone
            if checkpoint_due(step, cfg) or (stopping and not sharded):
                state.offpolicy = policy.state_dict()
                accelerator.wait_for_everyone()
                if accelerator.is_main_process:
                    write_checkpoint(paths, raw_model, optimizer, state, buffer.state_dict())
                accelerator.wait_for_everyone()
            if stopping:
                raise stopped_without_checkpoint(stop, step, sharded) if sharded else interrupted(stop, state, paths)

    accelerator.wait_for_everyone()
    if sharded:  # gather the shards on every process; the main one saves
        save_gathered_model(accelerator, model, student_tokenizer, paths.model)
    elif accelerator.is_main_process:
        save_final_model(raw_model, student_tokenizer, paths, cfg)
    accelerator.wait_for_everyone()  # no process returns before the model is on disk
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
        teacher_source="live" if cached is None else "cache",
        teacher_cache_key=None if cached is None else cached.cache.key,
        teacher_cache=None if cached is None else cached.summary(),
    )


def distillation_terms(
    logits: torch.Tensor,
    batch: Batch,
    target: torch.Tensor | CachedTargets,
    dcfg: DistillConfig,
    vocab: int,
    *,
    overwrite_logits: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(CE, divergence, (1 - kd_ratio) CE + kd_ratio divergence) of a micro-batch's answer tokens.

    `target` is the live teacher's answer logits (then `qadistill.objective` computes everything a few rows at a
    time, gradient included, into the logits' own storage with `overwrite_logits`) or the teacher cache's top-k
    rows of these examples (the sparse divergences).
    """
    labels, mask = batch.targets()
    if isinstance(target, torch.Tensor):
        terms = answer_objective(
            logits,
            labels,
            mask,
            target,
            divergence=dcfg.divergence,
            kd_ratio=dcfg.kd_ratio,
            temperature=dcfg.temperature,
            vocab=vocab,
            overwrite_logits=overwrite_logits,
            **dcfg.divergence_params(),
        )
        return terms.ce, terms.divergence, terms.loss
    ce = answer_cross_entropy(logits, labels, mask)
    div = get_sparse_divergence(dcfg.divergence)(
        logits[..., :vocab],
        target.ids,
        target.logprobs,
        mask,
        temperature=dcfg.temperature,
        teacher_tail_logprobs=target.tail,
        **dcfg.divergence_params(),
    )
    return ce, div, distillation_loss(ce, div, dcfg.kd_ratio)


def _checked_teacher(job: DistillJob, device, tokenizer):
    """The teacher, loaded to build the cache: same tokenizer and enough embedding rows, as a live teacher."""
    from qadistill.models import check_same_tokenizer

    teacher, teacher_tokenizer = load_teacher(job, device)
    check_same_tokenizer(teacher_tokenizer, tokenizer, teacher)
    return teacher
