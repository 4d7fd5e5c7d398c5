"""Find and validate the runner's `metrics.json` result files.

The report reads only these files, so it can be rebuilt at any time from a (partial) run folder. Files that are
not run results (a plain `qadistill evaluate` output has no model/method/role keys) or that cannot be parsed are
skipped with one summary warning, so one stray file never blocks a report of many hours of runs.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from qadistill.errors import QADistillError
from qadistill.results import RESULT_FILE, ResultRecord, parse_result

logger = logging.getLogger("qadistill.report")

MAX_LISTED = 5


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
