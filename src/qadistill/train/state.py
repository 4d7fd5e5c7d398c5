"""A run's folder, the loop's progress that a checkpoint restores, and starting fresh or resuming.

A run writes `model/` (the final weights), `checkpoint/` (to resume), `best/` (the best validation's weights with
`keep: best`), `train_log.jsonl`, `train_result.json` (written last: the run is finished when it exists) and
`job.json`.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from qadistill.errors import QADistillError
from qadistill.train.checkpoint import CHECKPOINT_DIR, has_checkpoint, load_checkpoint, read_state, save_checkpoint
from qadistill.train.config import Job, fingerprint, fingerprint_difference
from qadistill.train.signals import StopRequest, TrainingInterrupted

STEP_KINDS = ("ground_truth", "fresh_student", "replay")


@dataclass(frozen=True)
class RunPaths:
    """Where a run writes: the final model, the checkpoint, the best weights, the log, the result and the job."""

    out_dir: Path

    @property
    def model(self) -> Path:
        return self.out_dir / "model"

    @property
    def checkpoint(self) -> Path:
        return self.out_dir / CHECKPOINT_DIR

    @property
    def best(self) -> Path:
        return self.out_dir / "best"

    @property
    def log(self) -> Path:
        return self.out_dir / "train_log.jsonl"

    @property
    def result(self) -> Path:
        return self.out_dir / "train_result.json"

    @property
    def job(self) -> Path:
        return self.out_dir / "job.json"


@dataclass
class LoopState:
    """Everything about the loop's progress a checkpoint must restore (besides weights, optimizer and RNG)."""

    fingerprint: dict[str, Any]
    step: int = 0
    data_position: int = 0
    tokens: int = 0
    loss_tokens: int = 0
    seconds: float = 0.0
    kinds: dict[str, int] = field(default_factory=lambda: dict.fromkeys(STEP_KINDS, 0))
    skipped_steps: int = 0
    recent_losses: list[float] = field(default_factory=list)
    first_val_ce: float | None = None
    last_val_ce: float | None = None
    best_step: int | None = None
    best_value: float | None = None
    validations: list[dict[str, Any]] = field(default_factory=list)
    source: dict[str, Any] | None = None
    resumed: bool = False

    def add_loss(self, loss: float) -> None:
        self.recent_losses = [*self.recent_losses, loss][-10:]


def finished_result(job: Job, paths: RunPaths) -> dict[str, Any] | None:
    """With `resume`, a run that already finished with the same settings returns its saved result."""
    if not (job.resume and paths.result.is_file() and paths.model.is_dir() and paths.job.is_file()):
        return None
    try:
        saved = type(job).model_validate(json.loads(paths.job.read_text("utf-8")))
        result = json.loads(paths.result.read_text("utf-8"))
    except (OSError, ValueError):
        return None
    return result if fingerprint_difference(fingerprint(saved), fingerprint(job)) is None else None


def start_or_resume(
    job: Job, paths: RunPaths, model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[LoopState, list[dict[str, Any]] | None, bool]:
    """A fresh state, or (with `resume` and a checkpoint) the restored one; returns (state, replay, resumed).

    A fresh run removes any old checkpoint and best weights, so nothing from another run is resumed by mistake.
    """
    expected = fingerprint(job)
    if job.resume and has_checkpoint(paths.checkpoint):
        saved = read_state(paths.checkpoint)
        if (diff := fingerprint_difference(saved.get("fingerprint") or {}, expected)) is not None:
            raise QADistillError(
                f"checkpoint {paths.checkpoint} was written with other settings ({diff}); resume with the same "
                f"settings, or delete {paths.checkpoint} to start this training over"
            )
        doc, replay = load_checkpoint(paths.checkpoint, model=model, optimizer=optimizer)
        return LoopState(**{**doc, "resumed": True}), replay, True
    shutil.rmtree(paths.checkpoint, ignore_errors=True)
    shutil.rmtree(paths.best, ignore_errors=True)
    return LoopState(fingerprint=expected), None, False


def write_checkpoint(paths: RunPaths, model, optimizer, state: LoopState, replay=None) -> None:
    save_checkpoint(paths.checkpoint, model=model, optimizer=optimizer, state=asdict(state), replay=replay)


def interrupted(stop: StopRequest, state: LoopState, paths: RunPaths) -> TrainingInterrupted:
    return TrainingInterrupted(
        f"stopped by {stop.signal_name} after step {state.step}; checkpoint saved to {paths.checkpoint}; "
        "run again with --resume to continue",
        step=state.step,
        checkpoint=paths.checkpoint,
    )
