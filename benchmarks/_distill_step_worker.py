"""One side of `benchmarks/distill_step.py`, in a process of its own so its peak RSS is its own.

    python benchmarks/_distill_step_worker.py {qadistill|trl|qadistill_cached} SPEC.json RESULT.json

SPEC.json (written by the driver) names the saved teacher / student folders, the pre-tokenized rows and the
settings; the worker writes its measurements to RESULT.json (stdout is left to the libraries' own printing).

* qadistill: `qadistill.train.distill.run_distill` itself, the loop behind `qadistill distill`, with its data
  loading replaced by the given rows (`load_training_data` / `write_run_files` are swapped for the run; nothing
  in the step is). Off-policy sampling, validation and checkpoints are off, so every step is a ground-truth step:
  teacher forward (inference mode, answer positions only), student forward/backward, clip, AdamW step.
* trl: `trl.experimental.gkd.GKDTrainer` with `lmbda=0` (off-policy, no generation) and `seq_kd=False` on the same
  rows, as `input_ids` / `attention_mask` / `labels` (-100 on the prompt) batches.

Timing: per step, "core" is the loop's own step time (qadistill: the `train_seconds` the loop measures from the top
of a step to its log record; trl: `on_step_begin` -> `on_step_end`), "iteration" the wall time between the ends of
consecutive steps (includes batch fetching and per-step bookkeeping), "cpu" the process CPU time of an iteration
(all threads; steadier than wall time when other jobs share the cores).

Memory: `ru_maxrss` taken at the end of the last measured step (so saving the final model afterwards does not
count), and the baseline: the RSS after imports and loading both models, their weights read once (loaded weights
only become resident on first use), before the optimizer exists. For qadistill that point is inside `run_distill`:
`check_same_tokenizer`, which it calls with both models, is wrapped to read their weights, and the swapped data
loading, called next, takes the baseline. With the teacher cache there is no teacher in the process.
"""

from __future__ import annotations

import dataclasses
import json
import os
import resource
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any


def rss_mb() -> float:
    """Current resident set size of this process."""
    with open("/proc/self/statm", encoding="ascii") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def touch_weights(model) -> int:
    """Read every weight once: freshly loaded weights are not all resident until first used, and the baseline
    should hold them (the first step would fault them in anyway). Returns 1 for a model, 0 for anything else."""
    import torch

    if not isinstance(model, torch.nn.Module):
        return 0
    with torch.no_grad():
        for tensor in (*model.parameters(), *model.buffers()):
            tensor.detach().sum()
    return 1


def log(message: str) -> None:
    print(f"[{sys.argv[1]}] {message}", file=sys.stderr, flush=True)


def summarize(
    spec: dict[str, Any],
    ends: list[float],
    cpu_ends: list[float],
    cores: list[float],
    baseline: dict[str, float],
    peak: float,
) -> dict[str, Any]:
    """Means over the measured steps (those after the warm-up); tokens count prompt + answer of every row.

    `cpu_s` is the process CPU time (all threads) per iteration: on a shared machine it moves less than wall time
    (with one thread; with more, OpenMP's spin-waiting for descheduled threads inflates it too).
    """
    warmup, total = spec["warmup"], spec["warmup"] + spec["steps"]
    if not len(ends) == len(cpu_ends) == len(cores) == total:
        raise RuntimeError(f"expected {total} steps, timed {len(ends)} / {len(cpu_ends)} / {len(cores)}")
    core = cores[warmup:total]
    iteration = [ends[k] - ends[k - 1] for k in range(warmup, total)]
    cpu = [cpu_ends[k] - cpu_ends[k - 1] for k in range(warmup, total)]
    step_s = sum(core) / len(core)
    tokens = spec["batch_size"] * (spec["prompt_len"] + spec["answer_len"])
    return {
        "step_s": round(step_s, 4),
        "tokens_per_s": round(tokens / step_s, 1),
        "peak_rss_mb": round(peak, 1),
        "baseline_rss_mb": round(baseline["rss"], 1),
        "peak_delta_mb": round(peak - baseline["rss"], 1),
        "iteration_s": round(sum(iteration) / len(iteration), 4),
        "cpu_s": round(sum(cpu) / len(cpu), 4),
        "step_times_s": [round(t, 4) for t in core],
        "tokens_per_step": tokens,
    }


# ----------------------------------------------------------------------------------------------------- qadistill


def run_qadistill(spec: dict[str, Any], *, cached: bool = False) -> dict[str, Any]:
    """`cached`: distill from the project's teacher-logit cache (`distill.teacher_cache`, top-k log-probs + tail,
    sparse divergence) instead of the live teacher; the driver runs this twice, the first run builds the cache."""
    import qadistill.train.distill as distill_mod
    import qadistill.train.setup as setup_mod
    from qadistill.train.batching import TokenizedExample
    from qadistill.train.config import DistillJob
    from qadistill.train.data import TrainingData

    for module, name in (
        (setup_mod, "load_training_data"),
        (setup_mod, "write_run_files"),
        (distill_mod, "check_same_tokenizer"),
    ):
        if not hasattr(module, name):
            raise RuntimeError(f"{module.__name__} has no {name}; update benchmarks/_distill_step_worker.py")
    rows = spec["rows"]
    examples = [TokenizedExample(tuple(r["prompt"]), tuple(r["answer"]), id=f"bench-{i}") for i, r in enumerate(rows)]
    baseline: dict[str, float] = {}
    touched = {"models": 0, "expected": 0}
    check_same_tokenizer = distill_mod.check_same_tokenizer

    def check_and_touch(*args, **kwargs):  # run_distill passes (tokenizer, tokenizer, teacher, student)
        for model in args[2:]:
            touched["expected"] += model is not None  # no teacher when it comes from the cache
            touched["models"] += touch_weights(model)
        return check_same_tokenizer(*args, **kwargs)

    def load_rows(job, tokenizer, *args, **kwargs) -> TrainingData:  # called right after both models are loaded
        baseline.update(rss=rss_mb(), peak=peak_rss_mb())
        log(f"models loaded, RSS {baseline['rss']:.0f} MB")
        return TrainingData(prepared=None, fmt={}, train=examples, validation=[])  # fmt: only the cache key reads it

    distill_mod.check_same_tokenizer = check_and_touch  # called by run_distill right after loading both models
    setup_mod.load_training_data = load_rows
    setup_mod.write_run_files = lambda *args, **kwargs: None

    total = spec["warmup"] + spec["steps"]
    ends: list[float] = []
    cpu_ends: list[float] = []
    seconds: list[float] = []
    losses: list[float | None] = []
    peak = {"mb": 0.0}

    def on_step(step: int, record: dict[str, Any]) -> None:
        ends.append(time.perf_counter())
        cpu_ends.append(time.process_time())
        seconds.append(record["train_seconds"])
        losses.append(record["loss"])
        if step == total:
            peak["mb"] = peak_rss_mb()
        log(f"step {step}/{total}: loss {record['loss']}")

    with tempfile.TemporaryDirectory(prefix="qadistill-bench-") as out_dir:
        job = DistillJob(
            teacher=spec["teacher_dir"],
            student=spec["student_dir"],
            out_dir=Path(out_dir) / "run",
            train={
                "max_steps": total,
                "batch_size": spec["batch_size"],
                "grad_accum": 1,
                "lr": spec["lr"],
                "weight_decay": spec["weight_decay"],
                "warmup_steps": 0,
                "schedule": "constant",
                "max_grad_norm": 1.0,
                "precision": "fp32",
                "gradient_checkpointing": False,
                "max_answer_tokens": max(spec["answer_len"], 2),
                "checkpoint_interval": 0,
                "eval_interval": 0,
            },
            distill={
                "divergence": spec["divergence"],
                "jsd_beta": spec["jsd_beta"],
                "temperature": 1.0,
                "kd_ratio": 1.0,
                "off_policy": {"enabled": False},
                **(
                    {"teacher_cache": {"enabled": True, "dir": spec["cache_dir"], "k": spec["cache_k"]}}
                    if cached
                    else {}
                ),
            },
            seed=0,
        )
        distill_mod.run_distill(job, progress=False, on_step=on_step)
    cores = [b - a for a, b in zip([0.0, *seconds[:-1]], seconds, strict=True)]
    result = summarize(spec, ends, cpu_ends, cores, baseline, peak["mb"])
    result["losses"] = losses
    result["baseline_weights_resident"] = touched["models"] == touched["expected"] > 0
    result["how"] = (
        "qadistill.train.distill.run_distill (the `qadistill distill` loop; data loading swapped for the rows); "
        f"divergence {spec['divergence']}, kd_ratio 1.0, off-policy off, fp32, "
        f"AdamW{' (fused)' if spec['trl_optim'].endswith('fused') else ''}, clip 1.0, constant lr"
    )
    if cached:
        result["how"] += f"; teacher from the teacher-logit cache (top-{spec['cache_k']} + tail, sparse divergence)"
    return result


# ----------------------------------------------------------------------------------------------------------- trl


def run_trl(spec: dict[str, Any]) -> dict[str, Any]:
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl.experimental.gkd import GKDConfig, GKDTrainer

    tokenizer = AutoTokenizer.from_pretrained(spec["student_dir"])
    tokenizer.padding_side = "left"
    teacher = AutoModelForCausalLM.from_pretrained(spec["teacher_dir"], dtype=torch.float32)
    student = AutoModelForCausalLM.from_pretrained(spec["student_dir"], dtype=torch.float32)
    touch_weights(teacher)
    touch_weights(student)
    baseline = {"rss": rss_mb(), "peak": peak_rss_mb()}
    log(f"models loaded, RSS {baseline['rss']:.0f} MB")

    columns: dict[str, list[list[int]]] = {"input_ids": [], "attention_mask": [], "labels": []}
    for row in spec["rows"]:
        ids = [*row["prompt"], *row["answer"]]
        columns["input_ids"].append(ids)
        columns["attention_mask"].append([1] * len(ids))
        columns["labels"].append([-100] * len(row["prompt"]) + list(row["answer"]))
    dataset = Dataset.from_dict(columns)

    def collate(features: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        """Rows are all of one length: stack them (no padding needed)."""
        return {key: torch.tensor([f[key] for f in features]) for key in columns}

    total = spec["warmup"] + spec["steps"]
    begins: list[float] = []
    ends: list[float] = []
    cpu_ends: list[float] = []
    peak = {"mb": 0.0}

    class StepTimer(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            begins.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kwargs):
            ends.append(time.perf_counter())
            cpu_ends.append(time.process_time())
            if state.global_step == total:
                peak["mb"] = peak_rss_mb()
            log(f"step {state.global_step}/{total}")

    losses: list[float] = []

    class LossProbe(GKDTrainer):
        """GKDTrainer, recording each training loss (one float() per step, as qadistill's loop does)."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            out = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            loss = out[0] if return_outputs else out
            if model.training:
                losses.append(float(loss.detach()))
            return out

    # TRL's default is activation (gradient) checkpointing on; qadistill's is off. transformers 5 renamed the option.
    names = {f.name for f in dataclasses.fields(GKDConfig)}
    key = "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"
    no_checkpointing = {key: False}
    with tempfile.TemporaryDirectory(prefix="trl-bench-") as out_dir:
        config = GKDConfig(
            output_dir=out_dir,
            lmbda=0.0,  # never student-generated: the off-policy (supervised) KD step
            beta=spec["gkd_beta"],
            seq_kd=False,
            per_device_train_batch_size=spec["batch_size"],
            gradient_accumulation_steps=1,
            max_steps=total,
            learning_rate=spec["lr"],
            weight_decay=spec["weight_decay"],
            lr_scheduler_type="constant",
            warmup_steps=0,
            max_grad_norm=1.0,
            optim=spec["trl_optim"],  # the kind qadistill's build_optimizer makes (fused or not)
            bf16=False,
            fp16=False,
            use_cpu=True,
            report_to="none",
            logging_steps=10**9,
            save_strategy="no",
            eval_strategy="no",
            disable_tqdm=True,
            dataloader_num_workers=0,
            dataloader_pin_memory=False,
            remove_unused_columns=False,
            dataset_kwargs={"skip_prepare_dataset": True},
            seed=0,
            **no_checkpointing,
        )
        trainer = LossProbe(
            model=student,
            teacher_model=teacher,
            args=config,
            data_collator=collate,
            train_dataset=dataset,
            processing_class=tokenizer,
            callbacks=[StepTimer()],
        )
        trainer.train()
    cores = [b - a for a, b in zip(begins, ends, strict=True)]
    result = summarize(spec, ends, cpu_ends, cores, baseline, peak["mb"])
    result["losses"] = losses
    result["baseline_weights_resident"] = True
    result["gradient_checkpointing"] = bool(
        getattr(student, "is_activation_checkpointing", None) or getattr(student, "is_gradient_checkpointing", False)
    )
    result["how"] = (
        f"trl.experimental.gkd.GKDTrainer (trl {_version('trl')}): lmbda 0.0, seq_kd False, beta {spec['gkd_beta']}, "
        f"fp32, {spec['trl_optim']}, clip 1.0, constant lr, activation checkpointing off, no logging/eval/saving"
    )
    return result


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def main() -> None:
    side, spec_path, out_path = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    spec = json.loads(spec_path.read_text("utf-8"))
    import torch

    torch.set_num_threads(spec["threads"])
    runners = {"qadistill": run_qadistill, "trl": run_trl, "qadistill_cached": partial(run_qadistill, cached=True)}
    if side not in runners:
        raise SystemExit(f"unknown side {side!r}; use qadistill or trl")
    result = runners[side](spec)
    result["threads"] = torch.get_num_threads()
    out_path.write_text(json.dumps(result), "utf-8")


if __name__ == "__main__":
    main()
