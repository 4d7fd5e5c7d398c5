"""The study's findings, computed from the summary rows, each as one sentence with its numbers.

(a) best retention at the largest parameter reduction, (b) one-shot minus zero-shot, (c) distilled minus
fine-tuned students of the same size, (d) validation-test gaps larger than the seed noise.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from qadistill.report.summary import SummaryRow, sort_key

TOLERANCE = 1e-9
METRICS = (("EM", "em"), ("ROUGE-L", "rouge_l"))


@dataclass(frozen=True)
class Finding:
    """One computed statement; `data` holds its numbers for tests and machine use."""

    kind: str
    text: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Findings:
    retention_at_max_reduction: list[Finding]
    one_shot_gain: list[Finding]
    distill_vs_finetune: list[Finding]
    val_test_gaps: list[Finding]
    val_test_pairs_checked: int

    def all(self) -> list[Finding]:
        return [
            *self.retention_at_max_reduction,
            *self.one_shot_gain,
            *self.distill_vs_finetune,
            *self.val_test_gaps,
        ]


def shots_label(shots: int) -> str:
    return {0: "zero-shot", 1: "one-shot"}.get(shots, f"{shots}-shot")


def _mean(row: SummaryRow, metric: str) -> float:
    return getattr(row, f"{metric}_mean")


def _std(row: SummaryRow, metric: str) -> float:
    return getattr(row, f"{metric}_std")


def pooled_std(n1: int, s1: float, n2: int, s2: float) -> float | None:
    """Pooled sample std of two seed groups; None when neither has more than one seed."""
    dof = n1 + n2 - 2
    if dof <= 0:
        return None
    return math.sqrt(((n1 - 1) * s1**2 + (n2 - 1) * s2**2) / dof)


def retention_at_max_reduction(rows: Sequence[SummaryRow]) -> list[Finding]:
    """(a) Per dataset, shots, split and teacher: among the students with the largest parameter reduction, the
    best EM and ROUGE-L retention and the method that reached it."""
    groups: dict[tuple, list[SummaryRow]] = defaultdict(list)
    for row in rows:
        if not row.is_teacher:
            groups[(row.dataset, row.shots, row.split, row.teacher)].append(row)
    out = []
    for (dataset, shots, split, teacher), students in groups.items():
        top = max(r.param_reduction for r in students)
        smallest = [r for r in students if r.param_reduction >= top - TOLERANCE]
        models = ", ".join(sorted({r.model for r in smallest}))
        prefix = (
            f"{dataset}, {shots_label(shots)}, {split} (teacher {teacher}): at the largest parameter reduction, "
            f"{top:.2f}% ({models}),"
        )
        data: dict[str, Any] = {
            "dataset": dataset,
            "shots": shots,
            "split": split,
            "teacher": teacher,
            "param_reduction": top,
        }
        parts = []
        for label, metric in METRICS:
            scored = [r for r in smallest if getattr(r, f"retention_{metric}") is not None]
            if not scored:
                parts.append(f"no {label} retention (teacher result missing or 0)")
                continue
            best = max(scored, key=lambda r, m=metric: (getattr(r, f"retention_{m}"), r.method))
            value = getattr(best, f"retention_{metric}")
            data[f"best_retention_{metric}"] = value
            data[f"best_method_{metric}"] = best.method
            data[f"best_model_{metric}"] = best.model
            parts.append(
                f"the best {label} retention is {value:.2f}% ({best.model}, {best.method}: "
                f"{_mean(best, metric):.2f} ± {_std(best, metric):.2f} vs teacher "
                f"{getattr(best, f'teacher_{metric}')[0]:.2f})"
            )
        if "best_method_em" not in data and "best_method_rouge_l" not in data:
            parts = ["retention cannot be computed (teacher result missing or 0)"]
        out.append(Finding("retention_at_max_reduction", f"{prefix} {' and '.join(parts)}.", data))
    return out


def one_shot_gain(rows: Sequence[SummaryRow]) -> list[Finding]:
    """(b) One-shot minus zero-shot EM and ROUGE-L per model and method, dataset and split."""
    by_key = {(r.model, r.method, r.dataset, r.split, r.shots): r for r in rows}
    out = []
    for row in rows:
        if row.shots != 0 or (row.model, row.method, row.dataset, row.split, 1) not in by_key:
            continue
        one = by_key[(row.model, row.method, row.dataset, row.split, 1)]
        data: dict[str, Any] = {"model": row.model, "method": row.method, "dataset": row.dataset, "split": row.split}
        parts = []
        for label, metric in METRICS:
            diff = _mean(one, metric) - _mean(row, metric)
            data[f"{metric}_diff"] = diff
            parts.append(f"{label} {diff:+.2f} ({_mean(row, metric):.2f} → {_mean(one, metric):.2f})")
        text = f"{row.model} / {row.method}, {row.dataset} {row.split}: one-shot minus zero-shot {', '.join(parts)}."
        out.append(Finding("one_shot_gain", text, data))
    return out


def _noise_note(diff: float, pooled: float | None) -> str:
    if pooled is None:
        return "single seed, no std"
    if abs(diff) > pooled + TOLERANCE:
        return f"exceeds the pooled seed std {pooled:.2f}"
    return f"within the pooled seed std {pooled:.2f}"


def distill_vs_finetune(rows: Sequence[SummaryRow]) -> list[Finding]:
    """(c) Each distillation method minus the fine-tuned baseline of the same student, dataset, shots and split."""
    finetuned = {(r.model, r.dataset, r.shots, r.split): r for r in rows if r.method == "finetune" and not r.is_teacher}
    out = []
    for row in rows:
        base = finetuned.get((row.model, row.dataset, row.shots, row.split))
        if base is None or row.is_teacher or not row.method.startswith("distill-"):
            continue
        data: dict[str, Any] = {
            "model": row.model,
            "method": row.method,
            "dataset": row.dataset,
            "shots": row.shots,
            "split": row.split,
        }
        parts = []
        for label, metric in METRICS:
            diff = _mean(row, metric) - _mean(base, metric)
            pooled = pooled_std(row.n_seeds, _std(row, metric), base.n_seeds, _std(base, metric))
            data[f"{metric}_diff"] = diff
            data[f"{metric}_pooled_std"] = pooled
            data[f"{metric}_exceeds_std"] = pooled is not None and abs(diff) > pooled + TOLERANCE
            parts.append(f"{label} {diff:+.2f} ({_noise_note(diff, pooled)})")
        text = (
            f"{row.model}, {row.dataset} {shots_label(row.shots)} {row.split}: {row.method} minus finetune "
            f"{', '.join(parts)}."
        )
        out.append(Finding("distill_vs_finetune", text, data))
    return out


def val_test_gaps(rows: Sequence[SummaryRow]) -> tuple[list[Finding], int]:
    """(d) Configurations whose |validation mean - test mean| exceeds the larger of the two seed stds (only with at
    least two seeds on both splits). Returns the flagged ones and how many pairs were checked."""
    by_key = {(r.model, r.method, r.dataset, r.shots, r.split): r for r in rows}
    out = []
    checked = 0
    for row in rows:
        test = by_key.get((row.model, row.method, row.dataset, row.shots, "test"))
        if row.split != "validation" or test is None or row.n_seeds < 2 or test.n_seeds < 2:
            continue
        checked += 1
        parts = []
        data: dict[str, Any] = {
            "model": row.model,
            "method": row.method,
            "dataset": row.dataset,
            "shots": row.shots,
        }
        for label, metric in METRICS:
            gap = _mean(row, metric) - _mean(test, metric)
            limit = max(_std(row, metric), _std(test, metric))
            if abs(gap) > limit + TOLERANCE:
                data[f"{metric}_gap"] = gap
                data[f"{metric}_limit"] = limit
                parts.append(
                    f"{label} validation {_mean(row, metric):.2f} ± {_std(row, metric):.2f} vs test "
                    f"{_mean(test, metric):.2f} ± {_std(test, metric):.2f} (gap {gap:+.2f} exceeds the larger "
                    f"seed std {limit:.2f})"
                )
        if parts:
            text = f"{row.model} / {row.method}, {row.dataset} {shots_label(row.shots)}: {'; '.join(parts)}."
            out.append(Finding("val_test_gap", text, data))
    return out, checked


def compute_findings(rows: Sequence[SummaryRow]) -> Findings:
    """All four kinds of findings, in the summary's order."""
    rows = sorted(rows, key=sort_key)
    gaps, checked = val_test_gaps(rows)
    return Findings(
        retention_at_max_reduction=retention_at_max_reduction(rows),
        one_shot_gain=one_shot_gain(rows),
        distill_vs_finetune=distill_vs_finetune(rows),
        val_test_gaps=gaps,
        val_test_pairs_checked=checked,
    )
