"""The study end to end: run (or resume) an experiment grid, then report it; and the embedded demo.

This sits above both `experiments` (which computes result files) and `report` (which reads them), so neither
imports the other; the CLI's `run`, `report` and `demo` commands are thin wrappers of these functions.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

from qadistill.experiments.config import ExperimentConfig
from qadistill.experiments.demo import demo_config
from qadistill.experiments.runner import RUN_LOG, RunOutcome, run_experiment, run_logging
from qadistill.report import ReportPaths, summary_table_text, write_report


def report_lines(run_dir: Path, paths: ReportPaths) -> list[str]:
    """The summary table (read back from the CSV just written) and where the report's files are."""
    with paths.summary_csv.open(encoding="utf-8", newline="") as handle:
        table = summary_table_text(list(csv.DictReader(handle)))
    lines = [table, "", f"summary: {paths.summary_csv}", f"report:  {paths.report_md}"]
    lines += [f"plot:    {plot}" for plot in paths.plots]
    if paths.progress.missing:
        lines.append(paths.progress.text(run_dir))
    return lines


def run_study(
    config: ExperimentConfig,
    out_dir: str | Path,
    *,
    dry_run: bool = False,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> RunOutcome:
    """`run_experiment`, then, once every stage is finished, the report (summary.csv, report.md, plots); the
    summary table is echoed with where the files are."""
    outcome = run_experiment(config, out_dir, dry_run=dry_run, progress=progress, echo=echo)
    if outcome.complete:
        with run_logging(outcome.run_dir):
            paths = write_report(outcome.run_dir)
            logging.getLogger("qadistill.experiments").info("report written to %s", paths.report_md)
        outcome.summary_csv, outcome.report_md = paths.summary_csv, paths.report_md
        lines = report_lines(outcome.run_dir, paths)
        outcome.table = lines[0]
        for line in [*lines, f"log:     {outcome.run_dir / RUN_LOG}"]:
            echo(line)
    return outcome


def run_demo(
    out_dir: str | Path = Path("runs/demo"),
    data_dir: str | Path | None = None,
    *,
    overrides: Sequence[str] = (),
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> RunOutcome:
    """The embedded demo (`qadistill/configs/demo.yaml`) into `out_dir`, resumable like any run, then its report."""
    config = demo_config(data_dir, overrides)
    if any(t.model.lower() == "smollm2-135m-instruct" for t in config.teachers):
        from qadistill.models import ensure_smollm2

        ensure_smollm2()  # converted once by `qadistill setup`; afterwards offline
    return run_study(config, out_dir, progress=progress, echo=echo)
