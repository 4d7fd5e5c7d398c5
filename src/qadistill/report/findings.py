"""The study's findings, computed from the summary rows, each as one sentence with its numbers.

Collapsed models (flagged, kept out of every retention claim), the trivial baselines, the paper's claim per
family x dataset x prompt format x split x method (the largest parameter reduction at which a student keeps
>= 90% of the teacher's EM and ROUGE-L, by exact and by nominal sizes), one-shot minus zero-shot, distilled minus
fine-tuned with a paired-by-seed t interval, and validation-test gaps larger than the seed noise.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from qadistill.formatting import format_params
from qadistill.report.collapse import COLLAPSE_ABSTENTION
from qadistill.report.stats import CONFIDENCE, paired_difference
from qadistill.report.summary import SummaryRow, sort_key

TOLERANCE = 1e-9
CLAIM_RETENTION = 90.0  # %: the paper's "> 90% retention" threshold, on EM and ROUGE-L both
METRICS = (("EM", "em"), ("ROUGE-L", "rouge_l"))
DIFF_METRICS = (("EM", "em"), ("F1", "f1"), ("ROUGE-L", "rouge_l"))


@dataclass(frozen=True)
class Finding:
    """One computed statement; `data` holds its numbers for tests and machine use."""

    kind: str
    text: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Findings:
    collapsed: list[Finding]
    baselines: list[Finding]
    retention_claims: list[Finding]
    one_shot_gain: list[Finding]
    distill_vs_finetune: list[Finding]
    val_test_gaps: list[Finding]
    val_test_pairs_checked: int

    def all(self) -> list[Finding]:
        return [
            *self.collapsed,
            *self.baselines,
            *self.retention_claims,
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


def _where(row: SummaryRow) -> str:
    return f"{row.dataset}, {shots_label(row.shots)}, {row.split}"


# ---------------------------------------------------------------------------------------------------------
# Collapsed models and trivial baselines
# ---------------------------------------------------------------------------------------------------------


def collapsed_models(rows: Sequence[SummaryRow]) -> list[Finding]:
    """Every flagged teacher or student, with the reasons; each is kept out of every retention claim."""
    out = []
    for row in rows:
        if not row.flag:
            continue
        if row.is_teacher:
            who = f"{row.model} (teacher)"
            consequence = "no retention is reported against it, so its students get no retention claim"
        else:
            who = f"{row.model} / {row.method} (student of {row.teacher})"
            consequence = "its retention is not reported and it is left out of every retention claim"
        text = f"{who}, {_where(row)}: {row.flag}; {consequence}."
        data: dict[str, Any] = {"model": row.model, "method": row.method, "role": row.role, "dataset": row.dataset}
        data |= {"shots": row.shots, "split": row.split, "reasons": row.flag.split("; ")}
        out.append(Finding("collapsed", text, data))
    return out


def trivial_baselines(rows: Sequence[SummaryRow]) -> list[Finding]:
    """Per dataset, prompt format and split: what always abstaining scores on the same questions, and each untuned
    model's scores when it was evaluated."""
    out = []
    seen: set[tuple] = set()
    for row in rows:
        key = (row.dataset, row.shots, row.split)
        if key in seen:
            continue
        seen.add(key)
        same = [r for r in rows if (r.dataset, r.shots, r.split) == key]
        abstain = next((r for r in same if r.always_abstain_em is not None), None)
        parts = []
        data: dict[str, Any] = {"dataset": row.dataset, "shots": row.shots, "split": row.split}
        if abstain is not None:
            data["always_abstain"] = (
                abstain.always_abstain_em,
                abstain.always_abstain_f1,
                abstain.always_abstain_rouge_l,
            )
            parts.append(
                f"always abstaining scores EM {abstain.always_abstain_em:.2f}, F1 {abstain.always_abstain_f1:.2f}, "
                f"ROUGE-L {abstain.always_abstain_rouge_l:.2f} (the share of unanswerable questions)"
            )
        else:
            parts.append("the always-abstain baseline is unknown (result files without HasAns/NoAns counts)")
        for untuned in (r for r in same if r.role == "untuned"):
            data.setdefault("untuned", []).append(untuned.model)
            has_f1 = "" if untuned.hasans_f1_mean is None else f", HasAns F1 {untuned.hasans_f1_mean:.2f}"
            parts.append(
                f"the untuned {untuned.model} scores EM {untuned.em_mean:.2f}, F1 {untuned.f1_mean:.2f}, "
                f"ROUGE-L {untuned.rouge_l_mean:.2f}{has_f1}"
            )
        out.append(Finding("baseline", f"{_where(row)}: {'; '.join(parts)}.", data))
    return out


# ---------------------------------------------------------------------------------------------------------
# The paper's claim
# ---------------------------------------------------------------------------------------------------------


def _keeps(row: SummaryRow) -> bool:
    return (
        row.retention_em is not None
        and row.retention_rouge_l is not None
        and row.retention_em >= CLAIM_RETENTION - TOLERANCE
        and row.retention_rouge_l >= CLAIM_RETENTION - TOLERANCE
    )


def _retained(row: SummaryRow) -> str:
    return (
        f"EM {row.retention_em:.1f} ± {row.retention_em_err or 0.0:.1f}%, "
        f"ROUGE-L {row.retention_rouge_l:.1f} ± {row.retention_rouge_l_err or 0.0:.1f}%"
    )


def _nominal_note(row: SummaryRow) -> str:
    if row.nominal_known:
        return f"{format_params(row.teacher_nominal_params)} → {format_params(row.nominal_params)}"
    if row.nominal_params is None:
        return f"{row.model} has no nominal size (a pruned student or a model outside the registry): exact counts"
    return f"the teacher {row.teacher} has no nominal size (not in the registry): exact counts"


def _claim_text(students: Sequence[SummaryRow], usable: Sequence[SummaryRow]) -> tuple[str, dict[str, Any]]:
    keep = [s for s in usable if _keeps(s)]
    if keep:
        by_exact = max(keep, key=lambda s: (s.param_reduction, s.model))
        by_nominal = max(keep, key=lambda s: (s.param_reduction_nominal, s.model))
        text = (
            f"keeps ≥ {CLAIM_RETENTION:g}% of the teacher's EM and ROUGE-L at up to {by_exact.param_reduction:.1f}% "
            f"fewer parameters by exact counts ({by_exact.model}: {_retained(by_exact)}) and up to "
            f"{by_nominal.param_reduction_nominal:.1f}% by nominal sizes ({by_nominal.model}: "
            f"{_nominal_note(by_nominal)})"
        )
        data = {
            "claimed": True,
            "reduction_exact": by_exact.param_reduction,
            "model_exact": by_exact.model,
            "reduction_nominal": by_nominal.param_reduction_nominal,
            "model_nominal": by_nominal.model,
            "nominal_from_names": by_nominal.nominal_known,
        }
        return text, data
    if usable:
        best = max(usable, key=lambda s: (min(s.retention_em or 0.0, s.retention_rouge_l or 0.0), s.model))
        text = (
            f"no student keeps ≥ {CLAIM_RETENTION:g}% of both; the closest, {best.model} at "
            f"{best.param_reduction:.1f}% fewer parameters, keeps {_retained(best)}"
        )
        return text, {"claimed": False, "closest": best.model}
    if any(s.flag for s in students):
        return "no claim: every student is flagged as collapsed", {"claimed": False}
    return "no claim: no student has a retention (teacher result missing or 0)", {"claimed": False}


def retention_claims(rows: Sequence[SummaryRow]) -> list[Finding]:
    """The paper's claim as stated, per teacher x dataset x prompt format x split x method (never the best method):
    the largest parameter reduction at which a student keeps >= 90% of the teacher's EM and ROUGE-L (means over
    seeds), by exact parameter counts and by nominal sizes. Flagged students are left out, and said to be."""
    teachers = {(r.model, r.dataset, r.shots, r.split): r for r in rows if r.is_teacher}
    groups: dict[tuple, list[SummaryRow]] = defaultdict(list)
    for row in rows:
        if row.is_student:
            groups[(row.teacher, row.dataset, row.shots, row.split, row.method)].append(row)
    out = []
    for (teacher, dataset, shots, split, method), students in groups.items():
        head = students[0]
        data: dict[str, Any] = {"teacher": teacher, "dataset": dataset, "shots": shots, "split": split}
        data["method"] = method
        teacher_row = teachers.get((teacher, dataset, shots, split))
        flagged = sorted({s.model for s in students if s.flag})
        data["excluded"] = flagged
        if teacher_row is None:
            text, extra = "no claim: no teacher result on these questions", {"claimed": False}
        elif teacher_row.flag:
            text = f"no claim: the teacher itself is flagged ({teacher_row.flag}), so no retention is reported"
            extra = {"claimed": False}
        else:
            usable = [s for s in students if not s.flag and None not in (s.retention_em, s.retention_rouge_l)]
            text, extra = _claim_text(students, usable)
        data |= extra
        left_out = f" Left out as collapsed: {', '.join(flagged)}." if flagged and teacher_row is not None else ""
        prefix = f"{_where(head)}, teacher {teacher}, method {method}:"
        out.append(Finding("retention_claim", f"{prefix} {text}.{left_out}", data))
    return out


# ---------------------------------------------------------------------------------------------------------
# Comparisons
# ---------------------------------------------------------------------------------------------------------


def one_shot_gain(rows: Sequence[SummaryRow]) -> list[Finding]:
    """One-shot minus zero-shot EM and ROUGE-L per model and method, dataset and split."""
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


def _interval_note(diff, n_pairs: int) -> str:
    if diff.low is None:
        return f"CI n/a ({n_pairs} seed)"
    verdict = "excludes 0" if diff.excludes_zero else "includes 0"
    return f"{CONFIDENCE:.0%} CI [{diff.low:+.2f}, {diff.high:+.2f}] over {n_pairs} paired seeds, {verdict}"


def distill_vs_finetune(rows: Sequence[SummaryRow]) -> list[Finding]:
    """Each distillation method minus the fine-tuned baseline of the same student, dataset, shots and split, per
    metric, with a t interval over the per-seed differences (seeds paired: same data order and demonstrations)."""
    finetuned = {(r.model, r.dataset, r.shots, r.split): r for r in rows if r.method == "finetune" and r.is_student}
    out = []
    for row in rows:
        base = finetuned.get((row.model, row.dataset, row.shots, row.split))
        if base is None or not row.is_student or not row.method.startswith("distill-"):
            continue
        data: dict[str, Any] = {"model": row.model, "method": row.method, "dataset": row.dataset}
        data |= {"shots": row.shots, "split": row.split}
        parts = []
        for label, metric in DIFF_METRICS:
            diff = paired_difference(row.per_seed.get(metric, {}), base.per_seed.get(metric, {}))
            if diff is None:
                parts.append(f"{label}: no seed in common")
                continue
            data[f"{metric}_diff"], data[f"{metric}_n"] = diff.mean, diff.n
            data[f"{metric}_low"], data[f"{metric}_high"] = diff.low, diff.high
            data[f"{metric}_excludes_zero"] = diff.excludes_zero
            parts.append(f"{label} {diff.mean:+.2f} ({_interval_note(diff, diff.n)})")
        collapsed = [r.method for r in (base, row) if r.flag]
        note = f" Collapsed: {', '.join(collapsed)}; a difference with a collapsed model says little."
        text = (
            f"{row.model}, {row.dataset} {shots_label(row.shots)} {row.split}: {row.method} minus finetune "
            f"{', '.join(parts)}.{note if collapsed else ''}"
        )
        out.append(Finding("distill_vs_finetune", text, data))
    return out


def val_test_gaps(rows: Sequence[SummaryRow]) -> tuple[list[Finding], int]:
    """Configurations whose |validation mean - test mean| exceeds the larger of the two seed stds (only with at
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
    """All findings, in the summary's order."""
    rows = sorted(rows, key=sort_key)
    gaps, checked = val_test_gaps(rows)
    return Findings(
        collapsed=collapsed_models(rows),
        baselines=trivial_baselines(rows),
        retention_claims=retention_claims(rows),
        one_shot_gain=one_shot_gain(rows),
        distill_vs_finetune=distill_vs_finetune(rows),
        val_test_gaps=gaps,
        val_test_pairs_checked=checked,
    )


__all__ = ["COLLAPSE_ABSTENTION", "Finding", "Findings", "compute_findings", "shots_label"]
