"""The schema of an evaluation's result file (`metrics.json` of a run's evaluation stage), and its validation.

Both the runner (a damaged result reruns its stage) and the report (which reads only these files) check results
against it, so it lives below both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULT_FILE = "metrics.json"
REQUIRED_KEYS = (
    "model",
    "role",
    "method",
    "dataset",
    "shots",
    "split",
    "seed",
    "params",
    "teacher",
    "teacher_params",
    "exact",
    "f1",
    "rouge_l",
    "total",
)
# "untuned": a teacher's base model evaluated without training, shown as a baseline and never as a student.
ROLES = ("teacher", "student", "untuned")
# Optional float keys (newer runs): metrics.json key -> ResultRecord field.
OPTIONAL_SCORES = {
    "HasAns_exact": "hasans_exact",
    "HasAns_f1": "hasans_f1",
    "NoAns_exact": "noans_exact",
    "NoAns_f1": "noans_f1",
    "abstention_rate": "abstention",
    "always_abstain_exact": "abstain_exact",
    "always_abstain_f1": "abstain_f1",
    "always_abstain_rouge_l": "abstain_rouge_l",
}
# Optional integer keys -> (field, smallest allowed value).
OPTIONAL_COUNTS = {
    "HasAns_total": ("hasans_total", 0),
    "NoAns_total": ("noans_total", 0),
    "nominal_params": ("nominal_params", 1),
    "teacher_nominal_params": ("teacher_nominal_params", 1),
}


@dataclass(frozen=True)
class ResultRecord:
    """One evaluation of one model (one method, dataset, prompt format, split and seed)."""

    model: str
    role: str
    method: str
    dataset: str
    shots: int
    split: str
    seed: int
    params: int
    teacher: str
    teacher_params: int
    exact: float
    f1: float
    rouge_l: float
    total: int
    path: Path
    teacher_source: str | None = None  # distilled students: "live" teacher or "cache" (top-k logit cache)
    # SQuAD v2 groups, the abstention rate and the always-abstain baseline (0-100); None in older result files.
    hasans_exact: float | None = None
    hasans_f1: float | None = None
    noans_exact: float | None = None
    noans_f1: float | None = None
    hasans_total: int | None = None
    noans_total: int | None = None
    abstention: float | None = None
    abstain_exact: float | None = None
    abstain_f1: float | None = None
    abstain_rouge_l: float | None = None
    # The size in a registry model's name (None: pruned or not in the registry; the report then uses exact counts).
    nominal_params: int | None = None
    teacher_nominal_params: int | None = None

    @property
    def always_abstain(self) -> tuple[float, float, float] | None:
        """(EM, F1, ROUGE-L) of always abstaining on these questions: stored by newer runs, else the share of
        unanswerable questions from the group totals (the SQuAD v2 rule; MLQA has none, so 0); None if unknown."""
        if None not in (self.abstain_exact, self.abstain_f1, self.abstain_rouge_l):
            return (self.abstain_exact, self.abstain_f1, self.abstain_rouge_l)  # type: ignore[return-value]
        if self.hasans_total is None and self.noans_total is None:
            return None
        share = 100.0 * (self.noans_total or 0) / self.total if self.total else 0.0
        return (share, share, share)

    @property
    def group_key(self) -> tuple[str, str, str, int, str]:
        """Seeds of the same (model, method, dataset, shots, split) are averaged into one summary row."""
        return (self.model, self.method, self.dataset, self.shots, self.split)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)


def parse_result(obj: Any, path: Path) -> ResultRecord:
    """Validate one parsed metrics.json; raises ValueError naming the first problem (the caller skips the file)."""
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    missing = [key for key in REQUIRED_KEYS if key not in obj]
    if missing:
        raise ValueError(f"missing keys: {', '.join(missing)}")
    for key in ("model", "method", "dataset", "split", "teacher"):
        if not isinstance(obj[key], str) or not obj[key].strip():
            raise ValueError(f"{key!r} must be a non-empty string, got {obj[key]!r}")
    if obj["role"] not in ROLES:
        raise ValueError(f"'role' must be one of {', '.join(ROLES)}, got {obj['role']!r}")
    for key in ("shots", "seed", "total"):
        if not _is_int(obj[key]) or (key != "seed" and obj[key] < 0):
            raise ValueError(f"{key!r} must be a non-negative integer, got {obj[key]!r}")
    for key in ("params", "teacher_params"):
        if not _is_int(obj[key]) or obj[key] <= 0:
            raise ValueError(f"{key!r} must be a positive integer, got {obj[key]!r}")
    for key in ("exact", "f1", "rouge_l"):
        if not _is_number(obj[key]):
            raise ValueError(f"{key!r} must be a finite number, got {obj[key]!r}")
    optional = _optional_fields(obj)
    return ResultRecord(
        model=obj["model"],
        role=obj["role"],
        method=obj["method"],
        dataset=obj["dataset"],
        shots=obj["shots"],
        split=obj["split"],
        seed=obj["seed"],
        params=obj["params"],
        teacher=obj["teacher"],
        teacher_params=obj["teacher_params"],
        exact=float(obj["exact"]),
        f1=float(obj["f1"]),
        rouge_l=float(obj["rouge_l"]),
        total=obj["total"],
        path=path,
        teacher_source=obj.get("teacher_source") if isinstance(obj.get("teacher_source"), str) else None,
        **optional,
    )


def _optional_fields(obj: dict[str, Any]) -> dict[str, Any]:
    """The optional keys present (null counts as absent); a present key of the wrong type is a ValueError."""
    out: dict[str, Any] = {}
    for key, name in OPTIONAL_SCORES.items():
        if obj.get(key) is not None:
            if not _is_number(obj[key]):
                raise ValueError(f"{key!r} must be a finite number, got {obj[key]!r}")
            out[name] = float(obj[key])
    for key, (name, smallest) in OPTIONAL_COUNTS.items():
        if obj.get(key) is not None:
            if not _is_int(obj[key]) or obj[key] < smallest:
                raise ValueError(f"{key!r} must be an integer >= {smallest}, got {obj[key]!r}")
            out[name] = obj[key]
    return out
