"""Turn a run folder's `metrics.json` results into summary.csv, report.md and the study's figures.

The report reads only result files, so it can be rebuilt at any time (also from a partial run) and never touches
models or data. matplotlib is imported only when plots are drawn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from qadistill.errors import QADistillError
from qadistill.io import atomic_write_text
from qadistill.report.collect import ResultRecord, collect_results
from qadistill.report.findings import Finding, Findings, compute_findings
from qadistill.report.progress import Progress, run_progress
from qadistill.report.summary import CSV_COLUMNS, SummaryRow, summarize, summary_csv_text, summary_table_text

__all__ = [
    "CSV_COLUMNS",
    "Finding",
    "Findings",
    "Progress",
    "ReportPaths",
    "ResultRecord",
    "SummaryRow",
    "collect_results",
    "compute_findings",
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
    progress: Progress = Progress()


def write_report(run_dir: Path, out_dir: Path | None = None) -> ReportPaths:
    """Summarize every usable `metrics.json` below `run_dir` into `out_dir` (default `run_dir/report`).

    Writes summary.csv, scores_<dataset>.png per dataset, retention_vs_reduction.png (when any student has a
    teacher result) and report.md, each atomically. Raises QADistillError when no usable result exists. On a
    partial run (evaluations of its plan without results), report.md ends with what is missing.
    """
    from qadistill.report.markdown import render_report
    from qadistill.report.plots import plot_file_name, plot_retention, plot_scores

    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir is not None else run_dir / "report"
    progress = run_progress(run_dir)
    try:
        records = collect_results(run_dir)
    except QADistillError:
        if progress.missing:
            raise QADistillError(f"no evaluation results under {run_dir} yet; {progress.text(run_dir)}") from None
        raise
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
    text = render_report(run_dir, records, rows, findings, plots, out_dir)
    if progress.missing:
        text += f"\n## Incomplete run\n\n{progress.text(run_dir)}.\n"
    atomic_write_text(report_md, text)
    return ReportPaths(summary_csv=summary_csv, report_md=report_md, plots=plots, progress=progress)
