"""Average results over seeds and relate every student to its teacher (parameter reduction, retention)."""

from __future__ import annotations

import csv
import io
import logging
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from qadistill.report.collect import ResultRecord

logger = logging.getLogger("qadistill.report")

SPLIT_ORDER = {"train": 0, "validation": 1, "test": 2}


@dataclass(frozen=True)
class SummaryRow:
    """One (model, method, dataset, shots, split): mean and sample std over seeds, and the teacher comparison.

    `retention_*` is 100 * mean / teacher's mean on the same dataset, shots and split (100 for the teacher itself);
    None when the teacher row is missing or its mean is 0. `param_reduction` is relative to `teacher_params`.
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
    # Not CSV columns: used by the plots and findings.
    teacher_params: int = 0
    seeds: tuple[int, ...] = ()
    teacher_em: tuple[float, float] | None = None  # (mean, std) of the teacher row
    teacher_rouge_l: tuple[float, float] | None = None

    @property
    def is_teacher(self) -> bool:
        return self.role == "teacher"


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
    "params",
    "param_reduction",
    "retention_em",
    "retention_rouge_l",
    "n_questions",
)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1); the std of a single seed is 0."""
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else 0.0)


def _most_common(values: Iterable[Any], what: str, key: tuple) -> Any:
    counts = Counter(values)
    value = counts.most_common(1)[0][0]
    if len(counts) > 1:
        logger.warning(
            "results of %s / %s on %s (%d-shot, %s) disagree on %s (%s); using %s",
            *key,
            what,
            ", ".join(map(str, sorted(counts))),
            value,
        )
    return value


def method_order(method: str) -> tuple[int, str]:
    """Teacher, then the fine-tuned baseline, then the distillation variants alphabetically."""
    if method == "teacher":
        return (0, method)
    if method == "finetune":
        return (1, method)
    if method.startswith("distill-"):
        return (2, method)
    return (3, method)


def split_order(split: str) -> tuple[int, str]:
    return (SPLIT_ORDER.get(split, len(SPLIT_ORDER)), split)


def _retention(student_mean: float, teacher: tuple[float, float] | None) -> float | None:
    if teacher is None or teacher[0] == 0:
        return None
    return 100.0 * student_mean / teacher[0]


def summarize(records: Iterable[ResultRecord]) -> list[SummaryRow]:
    """One row per (model, method, dataset, shots, split), sorted by dataset, shots, split, then teacher first and
    students by parameters (largest first) and method."""
    groups: dict[tuple, list[ResultRecord]] = defaultdict(list)
    for record in records:
        groups[record.group_key].append(record)

    base: list[dict[str, Any]] = []
    for key, group in groups.items():
        group.sort(key=lambda r: r.seed)
        em = mean_std([r.exact for r in group])
        f1 = mean_std([r.f1 for r in group])
        rl = mean_std([r.rouge_l for r in group])
        role = _most_common((r.role for r in group), "role", key)
        params = _most_common((r.params for r in group), "params", key)
        teacher_params = _most_common((r.teacher_params for r in group), "teacher_params", key)
        base.append(
            {
                "model": key[0],
                "role": role,
                "method": key[1],
                "dataset": key[2],
                "shots": key[3],
                "split": key[4],
                "teacher": key[0] if role == "teacher" else _most_common((r.teacher for r in group), "teacher", key),
                "n_seeds": len(group),
                "em": em,
                "f1": f1,
                "rl": rl,
                "params": params,
                "teacher_params": params if role == "teacher" else teacher_params,
                "n_questions": _most_common((r.total for r in group), "total (questions)", key),
                "seeds": tuple(r.seed for r in group),
            }
        )

    # The teacher of (dataset, shots, split): prefer method "teacher" if a teacher model appears more than once.
    teachers: dict[tuple, dict[str, Any]] = {}
    for row in sorted(base, key=lambda r: method_order(r["method"]), reverse=True):
        if row["role"] == "teacher":
            teachers[(row["model"], row["dataset"], row["shots"], row["split"])] = row

    rows: list[SummaryRow] = []
    for row in base:
        teacher_row = teachers.get((row["teacher"], row["dataset"], row["shots"], row["split"]))
        t_em = teacher_row["em"] if teacher_row else None
        t_rl = teacher_row["rl"] if teacher_row else None
        reduction = 0.0 if row["role"] == "teacher" else 100.0 * (1.0 - row["params"] / row["teacher_params"])
        rows.append(
            SummaryRow(
                model=row["model"],
                role=row["role"],
                method=row["method"],
                dataset=row["dataset"],
                shots=row["shots"],
                split=row["split"],
                teacher=row["teacher"],
                n_seeds=row["n_seeds"],
                em_mean=row["em"][0],
                em_std=row["em"][1],
                f1_mean=row["f1"][0],
                f1_std=row["f1"][1],
                rouge_l_mean=row["rl"][0],
                rouge_l_std=row["rl"][1],
                params=row["params"],
                param_reduction=reduction,
                retention_em=_retention(row["em"][0], t_em),
                retention_rouge_l=_retention(row["rl"][0], t_rl),
                n_questions=row["n_questions"],
                teacher_params=row["teacher_params"],
                seeds=row["seeds"],
                teacher_em=t_em,
                teacher_rouge_l=t_rl,
            )
        )
    rows.sort(key=sort_key)
    return rows


def sort_key(row: SummaryRow) -> tuple:
    """Dataset, shots, split; within them each teacher family (largest teacher first), teacher row first, then
    students by parameters descending, then method."""
    return (
        row.dataset,
        row.shots,
        split_order(row.split),
        -row.teacher_params,
        row.teacher,
        not row.is_teacher,
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
    """The summary as CSV text (floats rounded to 6 decimals; missing retention is an empty cell)."""
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


def format_params(value: Any) -> str:
    """Human-readable parameter count: 2.78B, 410M, 135M."""
    if value is None:
        return "-"
    number = float(value)
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if number >= scale:
            return f"{number / scale:.3g}{suffix}"
    return f"{number:.0f}"


def summary_table_text(summary_rows: Iterable[SummaryRow | Mapping[str, Any]]) -> str:
    """The summary as an aligned plain-text table for the terminal (accepts SummaryRow or summary.csv dicts)."""
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
        "params",
        "reduct.%",
        "ret.EM%",
        "ret.RL%",
    )
    right = {"shots", "seeds", "EM", "F1", "ROUGE-L", "params", "reduct.%", "ret.EM%", "ret.RL%"}
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
                format_params(_get(row, "params")),
                _num(_get(row, "param_reduction"), 1),
                _num(_get(row, "retention_em"), 1),
                _num(_get(row, "retention_rouge_l"), 1),
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
