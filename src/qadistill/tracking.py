"""Experiment tracking through accelerate's tracker integrations (TensorBoard, Weights & Biases, MLflow, trackio).

Off by default. A training run forwards every record it writes to `train_log.jsonl` here (numbers as scalars,
nested dicts flattened to `kind/name`, at the record's step), so what a tracker shows equals the log by
construction; a grid run opens one tracker run per stage, tagged with its teacher, student, method, dataset,
shots and seed, and logs each evaluation's metrics per split. Nothing here imports the training code.
"""

from __future__ import annotations

import importlib.util
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from qadistill.config import Strict
from qadistill.errors import QADistillError

TRACKERS: dict[str, tuple[str, str]] = {
    "tensorboard": ("tensorboard", "tensorboard"),
    "wandb": ("wandb", "wandb"),
    "mlflow": ("mlflow", "mlflow"),
    "trackio": ("trackio", "trackio"),
}
"""Tracker name -> (module it needs, pip package that provides it)."""


class TrackingConfig(Strict):
    """Where training curves and evaluation metrics go besides our own files.

    `report_to`: tracker names (empty: off). `project`: the project / experiment they group runs under.
    `run_name`: this run's name (default: the output folder's name; a grid run uses the stage id).
    `tags`: key -> value labels of the run (a grid run adds teacher, student, method, dataset, shots, seed).
    `dir`: where local trackers write (TensorBoard event files, wandb's offline files; default
    `<output folder>/tracking`).
    """

    report_to: list[str] = Field(default_factory=list)
    project: str = "qadistill"
    run_name: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    dir: Path | None = None

    @field_validator("report_to", mode="before")
    @classmethod
    def _known_trackers(cls, value: Any) -> Any:
        names = [value] if isinstance(value, str) else value
        if isinstance(names, list):
            for name in names:
                if name not in TRACKERS:
                    raise ValueError(f"unknown tracker {name!r} (choose from {', '.join(TRACKERS)})")
            if len(set(names)) != len(names):
                raise ValueError(f"a tracker is named twice in {names}")
        return names

    @property
    def enabled(self) -> bool:
        return bool(self.report_to)


def check_installed(names: list[str]) -> None:
    """Fail before any work when a tracker's package is missing, naming what to install."""
    for name in names:
        module, package = TRACKERS[name]
        if importlib.util.find_spec(module) is None:
            raise QADistillError(f"tracker {name!r} is not installed: pip install {package}")


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as one level with `/`-joined keys."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat |= flatten(value, f"{name}/")
        else:
            flat[name] = value
    return flat


def record_scalars(record: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of one train_log.jsonl record as `<type>/<name>` scalars (booleans as 0/1; None, text and
    non-finite values left out, as a tracker cannot plot them)."""
    kind = record.get("type", "train")
    scalars = {}
    for key, value in flatten({k: v for k, v in record.items() if k not in ("type", "step")}).items():
        if isinstance(value, bool):
            value = int(value)
        if isinstance(value, int | float) and math.isfinite(value):
            scalars[f"{kind}/{key}"] = value
    return scalars


def _hparams(config: Mapping[str, Any]) -> dict[str, Any]:
    """A run's settings as flat str/int/float/bool values, which every tracker accepts."""
    out = {}
    for key, value in flatten(config).items():
        out[key] = value if isinstance(value, str | int | float | bool) else json.dumps(value, default=str)
    return out


class Tracking:
    """The open tracker runs of one training run or evaluation; `log` goes to all of them."""

    def __init__(self, trackers: list[Any]) -> None:
        self.trackers = trackers

    def log(self, values: Mapping[str, float], step: int | None) -> None:
        if values:
            for tracker in self.trackers:
                tracker.log(dict(values), step=step)

    def log_record(self, record: Mapping[str, Any]) -> None:
        """One train_log.jsonl record at its own step."""
        self.log(record_scalars(record), record.get("step"))

    def finish(self) -> None:
        for tracker in self.trackers:
            tracker.finish()
        self.trackers = []


def start_tracking(
    cfg: TrackingConfig,
    out_dir: Path,
    config: Mapping[str, Any],
    *,
    resume_step: int | None = None,
    enabled: bool = True,
) -> Tracking | None:
    """Open one run in every tracker of `cfg` and store `config` (the job) as its hyperparameters; None when
    tracking is off or on any process but the main one. A resumed TensorBoard run drops its events after
    `resume_step`, like train_log.jsonl does."""
    if not (cfg.enabled and enabled):
        return None
    check_installed(cfg.report_to)
    run_name = cfg.run_name or Path(out_dir).resolve().name
    folder = Path(cfg.dir) if cfg.dir is not None else Path(out_dir) / "tracking"
    trackers = [_tracker(name, cfg, run_name, folder, resume_step) for name in cfg.report_to]
    for tracker in trackers:
        tracker.start()
        tracker.store_init_configuration(_hparams({**config, "tags": cfg.tags}))
    return Tracking(trackers)


def _tracker(name: str, cfg: TrackingConfig, run_name: str, folder: Path, resume_step: int | None):
    """accelerate's tracker class for `name`, set up for this run (not started)."""
    from accelerate import tracking

    folder.mkdir(parents=True, exist_ok=True)
    tags = [f"{k}:{v}" for k, v in cfg.tags.items()]
    if name == "tensorboard":
        purge = {"purge_step": resume_step + 1} if resume_step is not None else {}
        return tracking.TensorBoardTracker(run_name, folder / cfg.project, **purge)
    if name == "wandb":  # accelerate passes its first argument to wandb.init as the project
        return tracking.WandBTracker(cfg.project, name=run_name, dir=str(folder), tags=tags or None)
    if name == "mlflow":
        return tracking.MLflowTracker(experiment_name=cfg.project, run_name=run_name, tags=dict(cfg.tags) or None)
    return tracking.TrackioTracker(cfg.project, name=run_name)


def log_evaluation(cfg: TrackingConfig, out_dir: Path, split: str, metrics: Mapping[str, Any]) -> None:
    """One evaluation's numeric metrics as `eval_<split>/<metric>` in a run of its own (a grid's eval stage)."""
    tracking = start_tracking(cfg, out_dir, {"split": split})
    if tracking is None:
        return
    values = {
        f"eval_{split}/{k}": v for k, v in metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)
    }
    tracking.log(values, step=0)
    tracking.finish()
