"""The study's figures, drawn with matplotlib's object API on the Agg canvas (no pyplot state, no display).

`scores_<dataset>.png`: grouped EM / ROUGE-L bars per model and method, one panel per (shots, split).
`retention_vs_reduction.png`: retention of the teacher's score against parameter reduction, per method.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from qadistill.report.findings import shots_label
from qadistill.report.summary import SummaryRow, method_order, sort_key, split_order

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.typing import FillStyleType

METRIC_COLORS = {"EM": "#3b6ea8", "ROUGE-L": "#e08a2c"}
METHOD_MARKERS = ("o", "s", "D", "^", "v", "P", "X", "*")
FAMILY_FILLS: tuple[FillStyleType, ...] = ("full", "none", "left", "bottom")
MAX_VALUE_LABELS = 8  # bar value labels only while there is room for them


def plot_file_name(prefix: str, name: str) -> str:
    """A safe file name for a dataset name (`mlqa-de` stays, odd characters become `_`)."""
    return f"{prefix}_{re.sub(r'[^A-Za-z0-9._-]+', '_', name)}.png"


def save_figure(fig: Figure, path: Path) -> None:
    """Render to a temporary file in the target folder, then rename: readers never see half a PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, format="png", dpi=130)
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a report is meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _new_figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


# ---------------------------------------------------------------------------------------------------------
# Scores per dataset
# ---------------------------------------------------------------------------------------------------------


def _entries(rows: Sequence[SummaryRow]) -> list[tuple[str, str]]:
    """(model, method) in summary order: teacher first, then students by size and method."""
    seen: dict[tuple[str, str], None] = {}
    for row in sorted(rows, key=lambda r: sort_key(r)[3:]):
        seen.setdefault((row.model, row.method), None)
    return list(seen)


def _score_panel(ax: Axes, rows: Sequence[SummaryRow], entries: list[tuple[str, str]], labels: bool) -> None:
    by_entry = {(r.model, r.method): r for r in rows}
    width = 0.38
    for offset, (label, metric) in zip((-width / 2, width / 2), (("EM", "em"), ("ROUGE-L", "rouge_l")), strict=True):
        xs, means, stds = [], [], []
        for i, entry in enumerate(entries):
            row = by_entry.get(entry)
            if row is None:
                continue
            xs.append(i + offset)
            means.append(getattr(row, f"{metric}_mean"))
            stds.append(getattr(row, f"{metric}_std"))
        ax.bar(
            xs,
            means,
            width,
            yerr=stds,
            capsize=3,
            color=METRIC_COLORS[label],
            label=label,
            error_kw={"elinewidth": 1, "ecolor": "#333333"},
        )
        if labels:
            for x, mean, std in zip(xs, means, stds, strict=True):
                ax.annotate(
                    f"{mean:.1f}",
                    (x, mean + std),
                    xytext=(0, 2),
                    textcoords="offset points",
                    ha="center",
                    va="bottom",
                    fontsize=7,
                )
    for i, entry in enumerate(entries):
        if entry not in by_entry:
            ax.text(i, 1, "no result", rotation=90, ha="center", va="bottom", fontsize=7, color="#777777")
    # Shade the teacher(s) so the reference bars stand out from the students.
    for i, (model, _method) in enumerate(entries):
        row = next((r for r in rows if r.model == model and r.is_teacher), None)
        if row is not None:
            ax.axvspan(i - 0.5, i + 0.5, color="#000000", alpha=0.06, lw=0)
    ax.set_xlim(-0.6, len(entries) - 0.4)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def plot_scores(rows: Sequence[SummaryRow], dataset: str, path: Path) -> Path:
    """Grouped EM / ROUGE-L bars (mean ± seed std) per model and method; one panel per (shots, split)."""
    rows = [r for r in rows if r.dataset == dataset]
    shots = sorted({r.shots for r in rows})
    splits = sorted({r.split for r in rows}, key=split_order)
    entries = _entries(rows)
    rotate = len(entries) > 4
    value_labels = len(entries) <= MAX_VALUE_LABELS
    panels = [(shot, split) for shot in shots for split in splits]
    # Side by side while the panels stay narrow; one column for many models so the figure stays readable.
    ncols = len(splits) if len(entries) <= MAX_VALUE_LABELS else 1
    nrows = math.ceil(len(panels) / ncols)
    panel_width = max(4.8 if ncols > 1 else 7.0, 0.95 * len(entries) + 1.2)
    panel_height = 3.6 + (1.0 if rotate else 0.4)
    fig = _new_figure(panel_width * ncols, panel_height * nrows + 0.6)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True).ravel()
    top = max((max(r.em_mean + r.em_std, r.rouge_l_mean + r.rouge_l_std) for r in rows), default=100.0)
    ymax = min(108.0, max(10.0, top * 1.15 + 3))
    tick_labels = [f"{model}\n{method}" for model, method in entries]
    for k, (shot, split) in enumerate(panels):
        ax = axes[k]
        panel = [r for r in rows if r.shots == shot and r.split == split]
        _score_panel(ax, panel, entries, value_labels)
        seeds = sorted({r.n_seeds for r in panel})
        seed_note = f"{'/'.join(map(str, seeds))} seed{'s' if seeds != [1] else ''}" if seeds else "no results"
        ax.set_title(f"{shots_label(shot)}, {split} ({seed_note})", fontsize=10)
        ax.set_ylim(0, ymax)
        ax.set_xticks(range(len(entries)))
        if rotate:
            ax.set_xticklabels(tick_labels, rotation=35, ha="right", rotation_mode="anchor", fontsize=8)
        else:
            ax.set_xticklabels(tick_labels, fontsize=8)
        if k % ncols == 0:
            ax.set_ylabel("score (0-100)")
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=2, fontsize=9)
    sep = " " if panel_width * ncols >= 9 else "\n"
    fig.suptitle(f"{dataset}: EM and ROUGE-L per model and method{sep}(mean ± std over seeds)", fontsize=11)
    save_figure(fig, path)
    return path


# ---------------------------------------------------------------------------------------------------------
# Retention vs parameter reduction
# ---------------------------------------------------------------------------------------------------------


def _preferred_split(rows: Sequence[SummaryRow], dataset: str) -> str | None:
    splits = sorted({r.split for r in rows if r.dataset == dataset}, key=split_order)
    return "test" if "test" in splits else (splits[-1] if splits else None)


def _model_axis(ax: Axes, points: dict[str, float], span: float) -> None:
    """Model names on a top axis at their reductions; models closer than ~4% of the axis share one label."""
    ordered = sorted(points.items(), key=lambda item: item[1])
    merged: list[tuple[float, list[str]]] = []
    for model, x in ordered:
        if merged and x - merged[-1][0] < 0.04 * span:
            merged[-1][1].append(model)
        else:
            merged.append((x, [model]))
    top = ax.secondary_xaxis("top")
    top.set_xticks([x for x, _ in merged])
    top.set_xticklabels(["\n".join(names) for _, names in merged], fontsize=7, rotation=30, ha="left")
    top.tick_params(length=2, pad=1)


@dataclass(frozen=True)
class _RetentionStyle:
    """How the retention figure draws its students: a color and marker per method, a fill per teacher (students
    of different teachers share a panel), and the x range every panel shares."""

    methods: list[str]
    colors: dict[str, str]
    markers: dict[str, str]
    fills: dict[str, FillStyleType]
    xlim: tuple[float, float]
    span: float

    @classmethod
    def of(cls, students: Sequence[SummaryRow]) -> _RetentionStyle:
        methods = sorted({r.method for r in students}, key=method_order)
        families = sorted({(r.teacher_params, r.teacher) for r in students}, key=lambda t: (-t[0], t[1]))
        lo, hi = min(r.param_reduction for r in students), max(r.param_reduction for r in students)
        if hi - lo < 10.0:  # a few nearby sizes: show at least 10 points of reduction around them
            lo, hi = (lo + hi) / 2 - 5.0, (lo + hi) / 2 + 5.0
        span = hi - lo
        return cls(
            methods=methods,
            colors={m: f"C{i % 10}" for i, m in enumerate(methods)},
            markers={m: METHOD_MARKERS[i % len(METHOD_MARKERS)] for i, m in enumerate(methods)},
            fills={name: FAMILY_FILLS[i % len(FAMILY_FILLS)] for i, (_, name) in enumerate(families)},
            xlim=(lo - 0.12 * span, min(hi + 0.12 * span, 101.0)),
            span=span,
        )


def _retention_points(ax: Axes, panel: Sequence[SummaryRow], metric: str, style: _RetentionStyle) -> None:
    """One error-bar series per (method, teacher); methods dodge sideways so equal sizes do not hide each other."""
    dodge = 0.015 * style.span
    for k, method in enumerate(style.methods):
        shift = (k - (len(style.methods) - 1) / 2) * dodge
        for family, fill in style.fills.items():
            points = [
                r
                for r in panel
                if r.method == method and r.teacher == family and getattr(r, f"retention_{metric}") is not None
            ]
            if not points:
                continue
            ax.errorbar(
                [r.param_reduction + shift for r in points],
                [getattr(r, f"retention_{metric}") for r in points],
                yerr=[getattr(r, f"retention_{metric}_err") or 0.0 for r in points],
                fmt=style.markers[method],
                color=style.colors[method],
                fillstyle=fill,
                mfc="white" if fill == "none" else style.colors[method],
                capsize=3,
                ms=6,
                lw=1,
                label=method,
            )


def _retention_legend(fig: Figure, style: _RetentionStyle) -> None:
    """One legend under the panels: each method once, and the teacher fills when there is more than one."""
    handles: dict[str, Artist] = {}
    for ax in fig.axes:
        for handle, name in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(name, handle)
    if len(style.fills) > 1:
        from matplotlib.lines import Line2D

        for family, fill in style.fills.items():
            handles[f"students of {family}"] = Line2D(
                [], [], ls="", marker="o", color="#555555", fillstyle=fill, mfc="white" if fill == "none" else None
            )
    fig.legend(
        list(handles.values()), list(handles), loc="outside lower center", ncols=min(len(handles), 6), fontsize=9
    )


def plot_retention(rows: Sequence[SummaryRow], path: Path) -> Path | None:
    """Retention (EM, ROUGE-L) vs parameter reduction per method with propagated seed-std error bars; one row
    per dataset (its test split when present) and one column per (shots, metric). None when nothing to plot."""
    # Flagged (collapsed) students and untuned baselines carry no retention, so they are never drawn here.
    students = [r for r in rows if r.is_student and (r.retention_em is not None or r.retention_rouge_l is not None)]
    datasets = sorted({r.dataset for r in students})
    if not datasets:
        return None
    chosen = {d: _preferred_split(students, d) for d in datasets}
    students = [r for r in students if r.split == chosen[r.dataset]]
    style = _RetentionStyle.of(students)
    shots = sorted({r.shots for r in students})
    columns = [(s, label, metric) for s in shots for label, metric in (("EM", "em"), ("ROUGE-L", "rouge_l"))]

    fig = _new_figure(4.2 * len(columns), 3.9 * len(datasets) + 0.8)
    axes = fig.subplots(len(datasets), len(columns), squeeze=False, sharey="row")
    for i, dataset in enumerate(datasets):
        for j, (shot, label, metric) in enumerate(columns):
            ax = axes[i][j]
            panel = [r for r in students if r.dataset == dataset and r.shots == shot]
            ax.axhline(100.0, color="#555555", ls="--", lw=1, label="teacher (100%)")
            _retention_points(ax, panel, metric, style)
            ax.set_xlim(*style.xlim)
            ax.grid(alpha=0.3)
            ax.set_axisbelow(True)
            if panel:
                _model_axis(ax, {r.model: r.param_reduction for r in panel}, style.span)
            ax.set_title(f"{dataset} ({chosen[dataset]}), {shots_label(shot)}: {label}", fontsize=10)
            if i == len(datasets) - 1:
                ax.set_xlabel("parameter reduction vs teacher (%)")
            if j == 0:
                ax.set_ylabel("retention of teacher score (%)")
    _retention_legend(fig, style)
    fig.suptitle("Retention of the teacher's score vs parameter reduction (mean ± propagated seed std)", fontsize=11)
    save_figure(fig, path)
    return path
