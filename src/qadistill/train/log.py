"""What a run reports: `train_log.jsonl` (one record per step or validation), the progress bar, the result file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from qadistill.io import WriteError, atomic_write_json, atomic_write_text
from qadistill.models.card import read_facts, training_facts, write_card
from qadistill.tracking import Tracking
from qadistill.train.state import LoopState, RunPaths


class TrainLog:
    """`train_log.jsonl`: one JSON record per step ("type": "train") or validation ("type": "eval").

    A resumed run first drops the records written after its checkpoint, so the log reads like one run. With a
    `tracker` (`qadistill.tracking`) every record also goes to it; leaving the `with` block closes the tracker.
    """

    def __init__(
        self, path: Path, *, resume_step: int | None, enabled: bool = True, tracker: Tracking | None = None
    ) -> None:
        self.path, self.enabled, self.tracker = path, enabled, tracker
        if not enabled:
            return
        kept = []
        if resume_step is not None and path.is_file():
            for line in path.read_text("utf-8").splitlines():
                if line.strip() and json.loads(line).get("step", 0) <= resume_step:
                    kept.append(line + "\n")
        atomic_write_text(path, "".join(kept))

    def write(self, record: dict[str, Any]) -> None:
        if self.enabled:
            try:
                with self.path.open("a", encoding="utf-8") as handle:
                    handle.write(json.dumps(record) + "\n")
            except OSError as exc:  # a full disk: one line naming the file
                raise WriteError(f"cannot write {self.path}: {exc.strerror or exc}") from None
        if self.tracker is not None:
            self.tracker.log_record(record)

    def __enter__(self) -> TrainLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.tracker is not None:
            self.tracker.finish()


def progress_bar(total: int, initial: int, desc: str, enabled: bool):
    return tqdm(total=total, initial=initial, desc=desc, unit="step", disable=not enabled, dynamic_ncols=True)


def summarize(state: LoopState, paths: RunPaths, *, write: bool = True, **extra: Any) -> dict[str, Any]:
    """The result summary, also written to `train_result.json` (last: the run is finished once it exists)."""
    seconds, recent = state.seconds, state.recent_losses
    result = {
        **extra,
        "steps": state.step,
        "micro_batches": state.data_position,
        "step_kinds": state.kinds,
        "skipped_steps": state.skipped_steps,
        "final_train_loss": recent[-1] if recent else None,
        "final_train_loss_avg10": sum(recent) / len(recent) if recent else None,
        "first_val_ce": state.first_val_ce,
        "final_val_ce": state.last_val_ce,
        "kept_step": state.best_step if state.best_step is not None else state.step,
        "best_value": state.best_value,
        "validations": state.validations,
        "seconds": round(seconds, 3),
        "tokens": state.tokens,
        "loss_tokens": state.loss_tokens,
        "tokens_per_second": round(state.tokens / seconds, 2) if seconds > 0 else None,
        "loss_tokens_per_second": round(state.loss_tokens / seconds, 2) if seconds > 0 else None,
        "model_dir": str(paths.model),
        "log": str(paths.log),
    }
    if write:
        write_training_card(paths, result)  # before the result file, which marks the run finished
        atomic_write_json(paths.result, result)
    return result


def write_training_card(paths: RunPaths, result: dict[str, Any]) -> None:
    """The final model's README.md model card, from the saved job, split ids and result. A student trained from a
    pruned initialisation states its size against the teacher that initialisation came from."""
    if not (paths.model.is_dir() and paths.job.is_file()):
        return
    job = json.loads(paths.job.read_text(encoding="utf-8"))
    splits = json.loads((paths.out_dir / "split_ids.json").read_text(encoding="utf-8"))
    init = read_facts(Path(job["model"])) if "model" in job and Path(job["model"]).is_dir() else None
    if init is not None:
        job["reference_params"] = init.get("reference_params")
    write_card(paths.model, training_facts(job, result, {name: len(ids) for name, ids in splits.items()}))
