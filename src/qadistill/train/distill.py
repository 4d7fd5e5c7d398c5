"""Distillation the DistiLLM way: (1 - kd_ratio) * CE + kd_ratio * divergence (default skew reverse KL) on the
answer positions, with adaptive off-policy student-generated outputs (`sources.py`, `offpolicy.py`); or, with
`distill.positions: all`, at every position (healing a pruned student).

Teacher and student share one tokenizer. With `distill.teacher_cache.enabled` the teacher's top-k log-probabilities
come from a cache built by one teacher pass (`teacher_cache.py`); the teacher is loaded only to build the cache (or
to make a pruned student) and freed before training. The result records `teacher_source` ("live" or "cache").
"""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import set_seed

from qadistill.config import PruneConfig
from qadistill.io import atomic_write_json
from qadistill.models import (
    check_same_tokenizer,
    context_length,
    load_model_and_tokenizer,
    load_tokenizer,
    param_count,
    prune_layers,
    resolve_dtype,
    same_tokenizer_files,
)
from qadistill.train.calibration import choose_layers
from qadistill.train.config import DistillJob
from qadistill.train.log import summarize
from qadistill.train.loop import train
from qadistill.train.objectives import AllPositionDistillation, AnswerDistillation
from qadistill.train.optim import make_accelerator
from qadistill.train.setup import Run, prepare_run
from qadistill.train.sources import AdaptiveOffPolicySource, GroundTruth, StudentSampler
from qadistill.train.state import RunPaths, finished_result
from qadistill.train.teacher_cache import CacheSettings, CacheSetup, CacheTeacher, prepare_cache, resolve_cache_root


def load_student(job: DistillJob, teacher, teacher_tokenizer):
    """The student: a model spec of its own, or the teacher with only some of its layers (`prune:half` ...).

    A measured selection (`prune:block_influence:20`) is computed again on a resumed run (it is deterministic:
    same calibration prompts, same choice) and recorded in `<out_dir>/pruning.json`.
    """
    keep = job.prune_keep()
    if keep is None:  # the teacher's tokenizer, already loaded, when the student's files are the same
        shared = teacher_tokenizer if same_tokenizer_files(job.teacher, job.student) else None
        return load_model_and_tokenizer(job.student, tokenizer=shared, **job.load.model_dump())
    if isinstance(keep, PruneConfig):
        choice = choose_layers(
            teacher, teacher_tokenizer, keep, data=job.data, prompt=job.prompt, seed=job.seed,
            max_answer_tokens=job.train.max_answer_tokens,
        )  # fmt: skip
        atomic_write_json(Path(job.out_dir) / "pruning.json", choice.to_json())
        keep = choice.kept
    student: torch.nn.Module = prune_layers(teacher, keep)
    student.to(resolve_dtype(job.load.dtype))
    return student, teacher_tokenizer


def load_teacher(job: DistillJob, device):
    """The frozen teacher and its tokenizer, on `device`."""
    teacher, tokenizer = load_model_and_tokenizer(job.teacher, **job.teacher_load.model_dump())
    return teacher.requires_grad_(False).eval().to(device), tokenizer


def load_models(job: DistillJob, device, *, live_teacher: bool):
    """(teacher or None, teacher tokenizer, student, student tokenizer).

    Without a live teacher (the cache) only the teacher's tokenizer is read, unless the student is pruned from it.
    """
    if live_teacher or job.prune_keep() is not None:
        teacher, tokenizer = load_teacher(job, device)
        return teacher, tokenizer, *load_student(job, teacher, tokenizer)
    tokenizer = load_tokenizer(job.teacher, trust_remote_code=job.teacher_load.trust_remote_code)
    return None, tokenizer, *load_student(job, None, tokenizer)


def run_distill(job: DistillJob, *, progress: bool = True, on_step=None) -> dict[str, Any]:
    """Distill `job.teacher` into `job.student`; writes the same files as `run_finetune`.

    The result counts the micro-batches of each kind (ground_truth / fresh_student / replay) and records the final
    off-policy threshold and both parameter counts.
    """
    if (done := finished_result(job, RunPaths(job.out_dir))) is not None:
        return done
    dcfg, cfg = job.distill, job.train
    set_seed(job.seed)
    accelerator = make_accelerator()
    teacher, tokenizer, student, student_tokenizer = load_models(
        job, accelerator.device, live_teacher=not dcfg.teacher_cache.enabled
    )
    vocab = check_same_tokenizer(tokenizer, student_tokenizer, teacher, student)
    contexts = [c for c in (context_length(student), teacher and context_length(teacher)) if c]
    sizes = {"teacher_params": param_count(teacher) if teacher is not None else None}
    sizes |= {"student_params": param_count(student), "student_layers": student.config.num_hidden_layers}
    sizes["teacher_layers"] = teacher.config.num_hidden_layers if teacher is not None else None
    run = prepare_run(
        job,
        student,
        student_tokenizer,
        accelerator,
        context_tokens=min(contexts, default=None),
        off_policy=dcfg.off_policy.enabled,
    )
    cached = None
    if dcfg.teacher_cache.enabled:  # build or load the cache; the teacher is freed before training
        cached = teacher_cache(run, job, teacher, vocab, progress=progress)
        teacher = None
        gc.collect()
        sizes |= {"teacher_params": cached.cache.meta["teacher_params"]}
        sizes |= {"teacher_layers": cached.cache.meta["teacher_layers"]}
    if dcfg.positions == "all":
        objective: Any = AllPositionDistillation(dcfg, vocab, teacher, cfg.precision)
    else:
        objective = AnswerDistillation(dcfg, vocab, teacher, cached.cache if cached else None, cfg.precision)
    source = batch_source(run, job, vocab)
    state = train(run, objective, source, desc="distill", progress=progress, on_step=on_step)
    return summarize(
        state,
        run.paths,
        write=accelerator.is_main_process,
        method="distill",
        teacher=job.teacher,
        student=job.student,
        **sizes,
        trainable_params=run.trainable_params,
        shared_vocab=vocab,
        divergence=dcfg.divergence,
        positions=dcfg.positions,
        kd_ratio=dcfg.kd_ratio,
        adaptive_off_policy=dcfg.off_policy.enabled,
        **(source.summary() if isinstance(source, AdaptiveOffPolicySource) else {}),
        lora=cfg.lora.enabled,
        precision=cfg.precision,
        train_examples=len(run.data.train),
        resumed=state.resumed,
        teacher_source="live" if cached is None else "cache",
        teacher_cache_key=None if cached is None else cached.cache.key,
        teacher_cache=None if cached is None else cached.summary(),
    )


def batch_source(run: Run, job: DistillJob, vocab: int) -> GroundTruth:
    """Ground truth, or DistiLLM's adaptive off-policy batches sampled from the student."""
    cfg = job.train
    common = (run.data.train, cfg.batch_size, cfg.grad_accum, job.seed, run.tokenizer.pad_token_id)
    opc = job.distill.off_policy
    if not opc.enabled:
        return GroundTruth(*common, run.accelerator.device)
    sampler = StudentSampler(opc, run.raw_model, run.tokenizer, vocab, cfg.precision)
    return AdaptiveOffPolicySource(*common, run.accelerator.device, sampler=sampler)


def teacher_cache(run: Run, job: DistillJob, teacher, vocab: int, *, progress: bool) -> CacheSetup:
    """Build or load the teacher-logit cache of this run's training prompts."""
    acc = run.accelerator
    cache_cfg = job.distill.teacher_cache
    with torch.random.fork_rng(devices=[]):  # building or loading leaves the RNG as it was: same run either way
        return prepare_cache(
            root=resolve_cache_root(cache_cfg.dir),
            teacher=CacheTeacher(
                spec=job.teacher,
                dtype=job.teacher_load.dtype,
                model=teacher,
                load=lambda: _checked_teacher(job, acc.device, run.tokenizer),
            ),
            tokenizer=run.tokenizer,
            examples=run.data.train,
            prompt=run.data.fmt,
            settings=CacheSettings(
                vocab=vocab,
                k=cache_cfg.k,
                temperature=job.distill.temperature,
                batch_size=cache_cfg.batch_size,
                pad_id=run.tokenizer.pad_token_id,
            ),
            processes=acc,
            progress=progress and acc.is_main_process,
        )


def _checked_teacher(job: DistillJob, device, tokenizer):
    """The teacher, loaded to build the cache: same tokenizer and enough embedding rows, as a live teacher."""
    teacher, teacher_tokenizer = load_teacher(job, device)
    check_same_tokenizer(teacher_tokenizer, tokenizer, teacher)
    return teacher
