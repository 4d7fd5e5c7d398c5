"""Before a standalone training starts: what its `--out` already holds decides whether it resumes or is refused.

Running the same command again continues: an `--out` that holds a checkpoint or a finished run with the same
settings is resumed (or its result returned); one with other settings is refused, naming the first differing
setting, unless `overwrite`. The training holds the output folder's lock (the same as `qadistill run`'s), so a
second command writing there fails at once instead of interleaving with the first.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from qadistill.errors import QADistillError
from qadistill.io import ensure_dir, remove_stale_temps, run_lock
from qadistill.train.checkpoint import has_checkpoint, read_state
from qadistill.train.config import Job, fingerprint, fingerprint_difference

OUTPUTS = ("model", "checkpoint", "best", "train_log.jsonl", "train_result.json", "job.json", "split_ids.json")
"""What a training writes into its output folder (`state.RunPaths`, the runner's launch file)."""


def main_process() -> bool:
    return os.environ.get("RANK", "0") == "0"  # multi-process launches: the main process locks and prints


def _existing_run(job: Job) -> tuple[str, dict[str, Any], str] | None:
    """(what it is, its settings' fingerprint, what running again does) for a training already in `job.out_dir`:
    a finished run, else a checkpoint; None when there is nothing to lose."""
    out = Path(job.out_dir)
    if all((out / name).exists() for name in ("train_result.json", "model", "job.json")):
        try:
            saved = type(job).model_validate(json.loads((out / "job.json").read_text(encoding="utf-8")))
        except (OSError, ValueError):
            raise QADistillError(
                f"{out} holds a finished run whose job.json is unreadable; add --overwrite to start over, or use "
                "another --out"
            ) from None
        return f"the finished run in {out}", fingerprint(saved), "its result is shown again"
    if has_checkpoint(out / "checkpoint"):
        state = read_state(out / "checkpoint")
        what = f"the checkpoint {out / 'checkpoint'} (step {state.get('step')})"
        return what, state.get("fingerprint") or {}, "training resumes from it"
    return None


def resume_or_refuse(job: Job, *, overwrite: bool) -> tuple[Job, str | None]:
    """The job to run (resumed when `--out` holds a checkpoint or finished run with the same settings; refused,
    naming the first differing setting, when it holds one with other settings; started over with `overwrite`),
    and what to tell the user about it."""
    if overwrite and job.resume:
        raise QADistillError("--resume and --overwrite exclude each other: continue the run, or start it over")
    if overwrite:  # a partial new run must never look finished with the old result
        (Path(job.out_dir) / "train_result.json").unlink(missing_ok=True)
        return job, None
    if (existing := _existing_run(job)) is None:
        return job, None
    what, saved, action = existing
    if (diff := fingerprint_difference(saved, fingerprint(job))) is not None:
        raise QADistillError(
            f"{what} was made with other settings ({diff}); run with the same settings to continue it, add "
            "--overwrite to start over, or use another --out"
        )
    note = None if job.resume else f"{what} has the same settings: {action} (--overwrite starts over)"
    return job.model_copy(update={"resume": True}), note


@contextlib.contextmanager
def holding(out_dir: Path, command: str) -> Iterator[None]:
    """The output folder's lock (main process only), and what killed writes left there removed."""
    if not main_process():
        yield
        return
    ensure_dir(out_dir)
    with run_lock(out_dir, f"qadistill {command}"):
        remove_stale_temps(out_dir, OUTPUTS)
        yield
