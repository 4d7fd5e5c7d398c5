"""Turn a run folder's `metrics.json` results into summary.csv, report.md and the study's figures.

The report reads only result files, so it can be rebuilt at any time (also from a partial run) and never touches
models or data. matplotlib is imported only when plots are drawn.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import typer

from qadistill.io import atomic_write_text
from qadistill.report.collect import ResultRecord, collect_results
from qadistill.report.findings import Finding, Findings, compute_findings
from qadistill.report.summary import CSV_COLUMNS, SummaryRow, summarize, summary_csv_text, summary_table_text

__all__ = [
    "CSV_COLUMNS",
    "Finding",
    "Findings",
    "ReportPaths",
    "ResultRecord",
    "SummaryRow",
    "collect_results",
    "compute_findings",
    "report_command",
    "summarize",
    "summary_table_text",
    "write_report",
]


@dataclass(frozen=True)
class ReportPaths:
    """Where the report's files were written."""

    summary_csv: Path
    report_md: Path
    plots: list[Path] = field(default_factory=list)


def write_report(run_dir: Path, out_dir: Path | None = None) -> ReportPaths:
    """Summarize every usable `metrics.json` below `run_dir` into `out_dir` (default `run_dir/report`).

    Writes summary.csv, scores_<dataset>.png per dataset, retention_vs_reduction.png (when any student has a
    teacher result) and report.md, each atomically. Raises QADistillError when no usable result exists.
    """
    from qadistill.report.markdown import render_report
    from qadistill.report.plots import plot_file_name, plot_retention, plot_scores

    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "report"
    records = collect_results(run_dir)
    rows = summarize(records)
    findings = compute_findings(rows)
    out_dir.mkdir(parents=True, exist_ok=True)

    summary_csv = out_dir / "summary.csv"
    atomic_write_text(summary_csv, summary_csv_text(rows))
    plots = [plot_scores(rows, d, out_dir / plot_file_name("scores", d)) for d in sorted({r.dataset for r in rows})]
    retention = plot_retention(rows, out_dir / "retention_vs_reduction.png")
    if retention is not None:
        plots.append(retention)
    report_md = out_dir / "report.md"
    atomic_write_text(report_md, render_report(run_dir, records, rows, findings, plots, out_dir))
    return ReportPaths(summary_csv=summary_csv, report_md=report_md, plots=plots)


def report_command(
    run_dir: Annotated[Path, typer.Argument(help="Run folder; every metrics.json below it is read.")],
    out: Annotated[Path | None, typer.Option("--out", help="Output folder (default: RUN_DIR/report).")] = None,
) -> None:
    """Summarize a run's results: summary.csv, report.md with tables and findings, and plots."""
    paths = write_report(run_dir, out)
    # The table comes from the CSV just written, so the results are not read (and warned about) twice.
    with paths.summary_csv.open(encoding="utf-8", newline="") as handle:
        typer.echo(summary_table_text(list(csv.DictReader(handle))))
    typer.echo("")
    typer.echo(f"summary: {paths.summary_csv}")
    typer.echo(f"report:  {paths.report_md}")
    for plot in paths.plots:
        typer.echo(f"plot:    {plot}")
