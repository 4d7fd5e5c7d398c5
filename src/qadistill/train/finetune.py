"""Supervised fine-tuning on QA prompts: cross-entropy on the answer tokens (span + EOS) only."""

from __future__ import annotations

from typing import Any

from accelerate.utils import set_seed

from qadistill.models import context_length, load_model_and_tokenizer, param_count
from qadistill.train.config import FinetuneJob
from qadistill.train.log import summarize
from qadistill.train.loop import train
from qadistill.train.objectives import AnswerCE
from qadistill.train.optim import make_accelerator
from qadistill.train.setup import prepare_run
from qadistill.train.sources import GroundTruth
from qadistill.train.state import RunPaths, finished_result


def run_finetune(job: FinetuneJob, *, progress: bool = True, on_step=None) -> dict[str, Any]:
    """Fine-tune `job.model`; writes model/, train_log.jsonl, train_result.json, split_ids.json, job.json.

    `on_step(step, record)` is called after every step (tests use it to interrupt a run).
    Raises `TrainingInterrupted` after saving a checkpoint on SIGINT/SIGTERM, `NonFiniteLoss` on a NaN loss.
    """
    if (done := finished_result(job, RunPaths(job.out_dir))) is not None:
        return done
    set_seed(job.seed)
    accelerator = make_accelerator()
    model, tokenizer = load_model_and_tokenizer(job.model, **job.load.model_dump())
    params = param_count(model)
    run = prepare_run(job, model, tokenizer, accelerator, context_tokens=context_length(model))
    cfg = job.train
    source = GroundTruth(
        run.data.train, cfg.batch_size, cfg.grad_accum, job.seed, tokenizer.pad_token_id, accelerator.device
    )
    state = train(run, AnswerCE(cfg.precision), source, desc="finetune", progress=progress, on_step=on_step)
    return summarize(
        state,
        run.paths,
        write=accelerator.is_main_process,
        method="finetune",
        model=job.model,
        params=params,
        trainable_params=run.trainable_params,
        lora=cfg.lora.enabled,
        precision=cfg.precision,
        train_examples=len(run.data.train),
        resumed=state.resumed,
    )
