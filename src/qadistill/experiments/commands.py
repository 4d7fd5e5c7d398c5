"""Typer commands `qadistill run` and `qadistill demo` (registered in `qadistill.cli`).

Heavy modules (torch, transformers) are imported inside the commands, so `qadistill --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def run_command(
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
    """Run an experiment grid resumably: rerun the same command after an interruption to continue."""
    from qadistill.experiments.config import load_config
    from qadistill.experiments.runner import run_experiment

    cfg = load_config(config, overrides or [])
    run_experiment(cfg, out if out is not None else Path("runs") / cfg.name, dry_run=dry_run, echo=typer.echo)


def demo_command(
    out: Annotated[Path, typer.Option("--out", help="Run folder.")] = Path("runs/demo"),
    data_dir: Annotated[
        Path | None,
        typer.Option("--data-dir", help="Use real SQuAD v2 files from this folder instead of the demo data."),
    ] = None,
) -> None:
    """A small real study on the CPU (about 15 minutes): SmolLM2-135M teacher, two pruned students, report."""
    from qadistill.experiments.demo import run_demo

    run_demo(out, data_dir=data_dir, echo=typer.echo)
