"""Find and validate the runner's `metrics.json` result files.

The report reads only these files, so it can be rebuilt at any time from a (partial) run folder. Files that are
not run results (a plain `qadistill evaluate` output has no model/method/role keys) or that cannot be parsed are
skipped with one summary warning, so one stray file never blocks a report of many hours of runs.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qadistill.errors import QADistillError

logger = logging.getLogger("qadistill.report")

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
ROLES = ("teacher", "student")
MAX_LISTED = 5


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
        raise ValueError(f"'role' must be 'teacher' or 'student', got {obj['role']!r}")
    for key in ("shots", "seed", "total"):
        if not _is_int(obj[key]) or (key != "seed" and obj[key] < 0):
            raise ValueError(f"{key!r} must be a non-negative integer, got {obj[key]!r}")
    for key in ("params", "teacher_params"):
        if not _is_int(obj[key]) or obj[key] <= 0:
            raise ValueError(f"{key!r} must be a positive integer, got {obj[key]!r}")
    for key in ("exact", "f1", "rouge_l"):
        if not _is_number(obj[key]):
            raise ValueError(f"{key!r} must be a finite number, got {obj[key]!r}")
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
    )


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def collect_results(run_dir: Path) -> list[ResultRecord]:
    """All usable results below `run_dir`, one per (model, method, dataset, shots, split, seed).

    Unusable files are skipped with one warning that counts them and names the first few with their reason.
    When two files hold the same seed of the same configuration (a re-run in another folder), the newer file is
    kept and a warning names both, so a seed is never counted twice.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise QADistillError(f"run folder {run_dir} does not exist or is not a folder")
    files = sorted(p for p in run_dir.rglob(RESULT_FILE) if p.is_file())
    skipped: list[str] = []
    by_key: dict[tuple, ResultRecord] = {}
    for path in files:
        try:
            obj = json.loads(path.read_text(encoding="utf-8"))
            record = parse_result(obj, path)
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            skipped.append(f"{_relative(path, run_dir)} (unreadable JSON: {exc})")
            continue
        except ValueError as exc:
            skipped.append(f"{_relative(path, run_dir)} ({exc})")
            continue
        key = (*record.group_key, record.seed)
        previous = by_key.get(key)
        if previous is not None:
            newer, older = sorted((previous, record), key=lambda r: r.path.stat().st_mtime, reverse=True)
            logger.warning(
                "duplicate result for %s / %s on %s (%d-shot, %s, seed %d): using %s, ignoring %s",
                record.model,
                record.method,
                record.dataset,
                record.shots,
                record.split,
                record.seed,
                _relative(newer.path, run_dir),
                _relative(older.path, run_dir),
            )
            record = newer
        by_key[key] = record
    if skipped:
        listed = "; ".join(skipped[:MAX_LISTED])
        more = f"; and {len(skipped) - MAX_LISTED} more" if len(skipped) > MAX_LISTED else ""
        logger.warning(
            "skipped %d of %d %s files under %s that are not usable run results: %s%s",
            len(skipped),
            len(files),
            RESULT_FILE,
            run_dir,
            listed,
            more,
        )
    if not by_key:
        raise QADistillError(
            f"no evaluation results ({RESULT_FILE} with model/method/dataset/shots/split/seed/params/scores) "
            f"found under {run_dir}"
        )
    return list(by_key.values())
