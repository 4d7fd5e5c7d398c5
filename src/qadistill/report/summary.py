"""Average results over seeds and relate every student to its teacher (parameter reduction, retention), flagging
collapsed models so that no retention is ever reported for them."""

from __future__ import annotations

import csv
import io
import logging
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from qadistill.formatting import format_params
from qadistill.report.collapse import collapse_reasons
from qadistill.report.collect import ResultRecord
from qadistill.report.stats import mean_std, retention, retention_error

logger = logging.getLogger("qadistill.report")

SPLIT_ORDER = {"train": 0, "validation": 1, "test": 2}
ROLE_ORDER = {"teacher": 0, "untuned": 1, "student": 2}
# SummaryRow score prefix -> ResultRecord attribute; the first three are in every result file.
SCORES = {
    "em": "exact",
    "f1": "f1",
    "rouge_l": "rouge_l",
    "hasans_em": "hasans_exact",
    "hasans_f1": "hasans_f1",
    "noans_em": "noans_exact",
    "noans_f1": "noans_f1",
    "abstention": "abstention",
}

__all__ = ["CSV_COLUMNS", "SummaryRow", "format_params", "summarize", "summary_csv_text", "summary_table_text"]


@dataclass(frozen=True)
class SummaryRow:
    """One (model, method, dataset, shots, split): mean and sample std over seeds, and the teacher comparison.

    `retention_*` is 100 * mean / teacher's mean on the same dataset, shots and split (100 for the teacher itself),
    with `retention_*_err` its propagated seed std (`stats.retention_error`); None when the teacher row is missing
    or 0, when this model is flagged (`flag`: why it counts as collapsed) or when its teacher is. `param_reduction`
    is relative to `teacher_params` (exact counts); `param_reduction_nominal` uses the sizes in the registry
    models' names, or the exact counts when either side has no nominal size (`nominal_known` False). Optional
    scores (HasAns/NoAns, abstention, always-abstain) are None when any seed's result file lacks them.
    """

    model: str
    role: str
    method: str
    dataset: str
    shots: int
    split: str
    teacher: str
    n_seeds: int
    em_mean: float
    em_std: float
    f1_mean: float
    f1_std: float
    rouge_l_mean: float
    rouge_l_std: float
    params: int
    param_reduction: float
    retention_em: float | None
    retention_rouge_l: float | None
    n_questions: int
    hasans_em_mean: float | None = None
    hasans_em_std: float | None = None
    hasans_f1_mean: float | None = None
    hasans_f1_std: float | None = None
    noans_em_mean: float | None = None
    noans_em_std: float | None = None
    noans_f1_mean: float | None = None
    noans_f1_std: float | None = None
    abstention_mean: float | None = None
    abstention_std: float | None = None
    always_abstain_em: float | None = None
    always_abstain_f1: float | None = None
    always_abstain_rouge_l: float | None = None
    nominal_params: int | None = None
    param_reduction_nominal: float = 0.0
    retention_em_err: float | None = None
    retention_rouge_l_err: float | None = None
    flag: str = ""
    # Not CSV columns: used by the plots and findings.
    teacher_params: int = 0
    teacher_nominal_params: int | None = None
    seeds: tuple[int, ...] = ()
    per_seed: dict[str, dict[int, float]] = field(default_factory=dict, compare=False)
    teacher_em: tuple[float, float] | None = None  # (mean, std) of the teacher row
    teacher_rouge_l: tuple[float, float] | None = None
    teacher_flag: str = ""  # the teacher's own flag (then no retention is reported for this row)

    @property
    def is_teacher(self) -> bool:
        return self.role == "teacher"

    @property
    def is_student(self) -> bool:
        return self.role == "student"

    @property
    def nominal_known(self) -> bool:
        """Whether the nominal reduction comes from nominal sizes on both sides (else from exact counts)."""
        return self.nominal_params is not None and self.teacher_nominal_params is not None


CSV_COLUMNS = (
    "model",
    "role",
    "method",
    "dataset",
    "shots",
    "split",
    "teacher",
    "n_seeds",
    "em_mean",
    "em_std",
    "f1_mean",
    "f1_std",
    "rouge_l_mean",
    "rouge_l_std",
    "hasans_em_mean",
    "hasans_em_std",
    "hasans_f1_mean",
    "hasans_f1_std",
    "noans_em_mean",
    "noans_em_std",
    "noans_f1_mean",
    "noans_f1_std",
    "abstention_mean",
    "abstention_std",
    "always_abstain_em",
    "always_abstain_f1",
    "always_abstain_rouge_l",
    "params",
    "param_reduction",
    "nominal_params",
    "param_reduction_nominal",
    "retention_em",
    "retention_em_err",
    "retention_rouge_l",
    "retention_rouge_l_err",
    "flag",
    "n_questions",
)


def _most_common(values: Iterable[Any], what: str, key: tuple) -> Any:
    counts = Counter(values)
    value = counts.most_common(1)[0][0]
    if len(counts) > 1:
        logger.warning(
            "results of %s / %s on %s (%d-shot, %s) disagree on %s (%s); using %s",
            *key,
            what,
            ", ".join(map(str, sorted(counts, key=str))),
            value,
        )
    return value


def method_order(method: str) -> tuple[int, str]:
    """Teacher, then the untuned baseline and the fine-tuned baseline, then the distillation variants."""
    if method == "teacher":
        return (0, method)
    if method == "untuned":
        return (1, method)
    if method == "finetune":
        return (2, method)
    if method.startswith("distill-"):
        return (3, method)
    return (4, method)


def split_order(split: str) -> tuple[int, str]:
    return (SPLIT_ORDER.get(split, len(SPLIT_ORDER)), split)


def _score_stats(group: Sequence[ResultRecord]) -> tuple[dict[str, tuple[float, float] | None], dict]:
    """(mean, std) per score prefix (None when any seed lacks it) and the per-seed values, keyed by seed."""
    stats: dict[str, tuple[float, float] | None] = {}
    per_seed: dict[str, dict[int, float]] = {}
    for prefix, attr in SCORES.items():
        values = [getattr(r, attr) for r in group]
        if any(v is None for v in values):
            stats[prefix] = None
            continue
        stats[prefix] = mean_std(values)
        per_seed[prefix] = {r.seed: v for r, v in zip(group, values, strict=True)}
    return stats, per_seed


def _aggregate(key: tuple, group: list[ResultRecord]) -> dict[str, Any]:
    """One group's seeds averaged, with the fields all its result files must agree on."""
    group.sort(key=lambda r: r.seed)
    role = _most_common((r.role for r in group), "role", key)
    params = _most_common((r.params for r in group), "params", key)
    nominal = _most_common((r.nominal_params for r in group), "nominal_params", key)
    stats, per_seed = _score_stats(group)
    is_teacher = role == "teacher"
    tp, tn = "teacher_params", "teacher_nominal_params"
    return {
        "model": key[0],
        "role": role,
        "method": key[1],
        "dataset": key[2],
        "shots": key[3],
        "split": key[4],
        "teacher": key[0] if is_teacher else _most_common((r.teacher for r in group), "teacher", key),
        "n_seeds": len(group),
        "stats": stats,
        "per_seed": per_seed,
        "params": params,
        "teacher_params": params if is_teacher else _most_common((r.teacher_params for r in group), tp, key),
        "nominal": nominal,
        "teacher_nominal": nominal if is_teacher else _most_common((r.teacher_nominal_params for r in group), tn, key),
        "n_questions": _most_common((r.total for r in group), "total (questions)", key),
        "seeds": tuple(r.seed for r in group),
    }


def abstain_baselines(records: Iterable[ResultRecord]) -> dict[tuple[str, str, int], tuple[float, float, float]]:
    """Always-abstain (EM, F1, ROUGE-L) per question set (dataset, split, number of questions): every model of a
    run is scored on the same questions there, whatever its prompt format."""
    found: dict[tuple[str, str, int], Counter] = defaultdict(Counter)
    for record in records:
        if record.always_abstain is not None:
            found[(record.dataset, record.split, record.total)][record.always_abstain] += 1
    out = {}
    for key, counts in found.items():
        out[key] = counts.most_common(1)[0][0]
        if len(counts) > 1:
            logger.warning("results on %s %s (%d questions) disagree on the always-abstain baseline", *key)
    return out


def _mean(stats: dict[str, tuple[float, float] | None], prefix: str) -> float | None:
    value = stats.get(prefix)
    return None if value is None else value[0]


def _flag(row: dict[str, Any], abstain: tuple[float, float, float] | None, untuned: dict[str, Any] | None) -> str:
    """Why a teacher or student counts as collapsed ("" when it does not); untuned baselines are not flagged."""
    if row["role"] == "untuned":
        return ""
    reasons = collapse_reasons(
        em=row["stats"]["em"][0],
        abstention=_mean(row["stats"], "abstention"),
        hasans_f1=_mean(row["stats"], "hasans_f1"),
        always_abstain_em=abstain[0] if abstain is not None else None,
        untuned_hasans_f1=_mean(untuned["stats"], "hasans_f1") if untuned is not None else None,
    )
    return "; ".join(reasons)


def summarize(records: Iterable[ResultRecord]) -> list[SummaryRow]:
    """One row per (model, method, dataset, shots, split), sorted by dataset, shots, split, then teacher first, its
    untuned baseline, and students by parameters (largest first) and method."""
    records = list(records)
    groups: dict[tuple, list[ResultRecord]] = defaultdict(list)
    for record in records:
        groups[record.group_key].append(record)
    base = [_aggregate(key, group) for key, group in groups.items()]
    baselines = abstain_baselines(records)

    # The teacher of (dataset, shots, split): prefer method "teacher" if a teacher model appears more than once.
    teachers: dict[tuple, dict[str, Any]] = {}
    for row in sorted(base, key=lambda r: method_order(r["method"]), reverse=True):
        if row["role"] == "teacher":
            teachers[(row["model"], row["dataset"], row["shots"], row["split"])] = row
    untuned = {(r["teacher"], r["dataset"], r["shots"], r["split"]): r for r in base if r["role"] == "untuned"}
    for row in base:
        row["abstain"] = baselines.get((row["dataset"], row["split"], row["n_questions"]))
        row["flag"] = _flag(row, row["abstain"], untuned.get((row["teacher"], *_setting(row))))
    rows = [_summary_row(row, teachers) for row in base]
    rows.sort(key=sort_key)
    return rows


def _reductions(row: dict[str, Any]) -> tuple[float, float]:
    """(exact, nominal) parameter reduction in %; nominal falls back to exact when a nominal size is unknown."""
    if row["role"] == "teacher":
        return 0.0, 0.0
    exact = 100.0 * (1.0 - row["params"] / row["teacher_params"])
    if row["nominal"] is None or row["teacher_nominal"] is None:
        return exact, exact
    return exact, 100.0 * (1.0 - row["nominal"] / row["teacher_nominal"])


def _summary_row(row: dict[str, Any], teachers: dict[tuple, dict[str, Any]]) -> SummaryRow:
    stats = row["stats"]
    teacher = None if row["role"] == "untuned" else teachers.get((row["teacher"], *_setting(row)))
    t_em = teacher["stats"]["em"] if teacher else None
    t_rl = teacher["stats"]["rouge_l"] if teacher else None
    t_flag = teacher["flag"] if teacher else ""
    withheld = row["role"] == "untuned" or bool(row["flag"] or t_flag)
    exact, nominal = _reductions(row)
    optional: dict[str, Any] = {}
    for prefix in ("hasans_em", "hasans_f1", "noans_em", "noans_f1", "abstention"):
        value = stats[prefix]
        optional[f"{prefix}_mean"], optional[f"{prefix}_std"] = value if value is not None else (None, None)
    if row["abstain"] is not None:
        optional |= dict(
            zip(("always_abstain_em", "always_abstain_f1", "always_abstain_rouge_l"), row["abstain"], strict=True)
        )
    retained = {}
    for prefix, teacher_stats in (("em", t_em), ("rouge_l", t_rl)):
        mean, std = stats[prefix]
        retained[f"retention_{prefix}"] = None if withheld else retention(mean, teacher_stats)
        err = 0.0 if row["role"] == "teacher" else retention_error(mean, std, teacher_stats)
        retained[f"retention_{prefix}_err"] = None if withheld or retained[f"retention_{prefix}"] is None else err
    return SummaryRow(
        model=row["model"],
        role=row["role"],
        method=row["method"],
        dataset=row["dataset"],
        shots=row["shots"],
        split=row["split"],
        teacher=row["teacher"],
        n_seeds=row["n_seeds"],
        em_mean=stats["em"][0],
        em_std=stats["em"][1],
        f1_mean=stats["f1"][0],
        f1_std=stats["f1"][1],
        rouge_l_mean=stats["rouge_l"][0],
        rouge_l_std=stats["rouge_l"][1],
        params=row["params"],
        param_reduction=exact,
        n_questions=row["n_questions"],
        nominal_params=row["nominal"],
        param_reduction_nominal=nominal,
        flag=row["flag"],
        teacher_params=row["teacher_params"],
        teacher_nominal_params=row["teacher_nominal"],
        seeds=row["seeds"],
        per_seed=row["per_seed"],
        teacher_em=t_em,
        teacher_rouge_l=t_rl,
        teacher_flag=t_flag,
        **optional,
        **retained,
    )


def _setting(row: dict[str, Any]) -> tuple[str, int, str]:
    return (row["dataset"], row["shots"], row["split"])


def sort_key(row: SummaryRow) -> tuple:
    """Dataset, shots, split; within them each teacher family (largest teacher first), teacher row first, then its
    untuned baseline, then students by parameters descending, then method."""
    return (
        row.dataset,
        row.shots,
        split_order(row.split),
        -row.teacher_params,
        row.teacher,
        ROLE_ORDER.get(row.role, len(ROLE_ORDER)),
        -row.params,
        row.model,
        method_order(row.method),
    )


def _csv_value(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(round(value, 6))
    return value


def summary_csv_text(rows: Sequence[SummaryRow]) -> str:
    """The summary as CSV text (floats rounded to 6 decimals; a missing value is an empty cell)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        values = asdict(row)
        writer.writerow([_csv_value(values[col]) for col in CSV_COLUMNS])
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------------------
# Terminal table
# ---------------------------------------------------------------------------------------------------------


def _get(row: SummaryRow | Mapping[str, Any], key: str) -> Any:
    value = row.get(key) if isinstance(row, Mapping) else getattr(row, key)
    return None if value == "" else value


def _num(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    return "-" if math.isnan(number) else f"{number:.{digits}f}"


def summary_table_text(summary_rows: Iterable[SummaryRow | Mapping[str, Any]]) -> str:
    """The summary as an aligned plain-text table for the terminal (accepts SummaryRow or summary.csv dicts).

    Flagged (collapsed) models show "COLLAPSED" and no retention; report.md says why."""
    header = (
        "dataset",
        "shots",
        "split",
        "model",
        "method",
        "seeds",
        "EM",
        "F1",
        "ROUGE-L",
        "HasAns F1",
        "abst.%",
        "params",
        "reduct.%",
        "ret.EM%",
        "ret.RL%",
        "flag",
    )
    right = {"shots", "seeds", "EM", "F1", "ROUGE-L", "HasAns F1", "abst.%", "params", "reduct.%", "ret.EM%", "ret.RL%"}
    lines = [header]
    for row in summary_rows:
        lines.append(
            (
                str(_get(row, "dataset")),
                str(_get(row, "shots")),
                str(_get(row, "split")),
                str(_get(row, "model")),
                str(_get(row, "method")),
                str(_get(row, "n_seeds")),
                f"{_num(_get(row, 'em_mean'))} ± {_num(_get(row, 'em_std'))}",
                f"{_num(_get(row, 'f1_mean'))} ± {_num(_get(row, 'f1_std'))}",
                f"{_num(_get(row, 'rouge_l_mean'))} ± {_num(_get(row, 'rouge_l_std'))}",
                _num(_get(row, "hasans_f1_mean")),
                _num(_get(row, "abstention_mean"), 1),
                format_params(_get(row, "params")),
                _num(_get(row, "param_reduction"), 1),
                _num(_get(row, "retention_em"), 1),
                _num(_get(row, "retention_rouge_l"), 1),
                "COLLAPSED" if _get(row, "flag") else "",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]

    def render(cells: Sequence[str]) -> str:
        parts = [
            cell.rjust(width) if name in right else cell.ljust(width)
            for cell, width, name in zip(cells, widths, header, strict=True)
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([render(lines[0]), rule, *(render(line) for line in lines[1:])])
