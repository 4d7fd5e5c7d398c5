"""Supervised fine-tuning and DistiLLM-style distillation for extractive QA.

Names are loaded on first use, so importing `qadistill.train.commands` (for the CLI) stays cheap.

* `run_finetune(FinetuneJob)` / `run_distill(DistillJob)`: one run each, returning the result summary.
* `TrainConfig`, `DistillConfig`, `OffPolicyConfig`, `LoraSettings`: the typed settings of a job.
* `TrainingInterrupted` (SIGINT/SIGTERM, after a checkpoint; CLI exit 130), `NonFiniteLoss` (NaN/Inf; exit 2).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "FinetuneJob": "qadistill.train.config",
    "DistillJob": "qadistill.train.config",
    "TrainConfig": "qadistill.train.config",
    "DistillConfig": "qadistill.train.config",
    "OffPolicyConfig": "qadistill.train.config",
    "LoraSettings": "qadistill.train.config",
    "run_finetune": "qadistill.train.finetune",
    "run_distill": "qadistill.train.distill",
    "TrainingInterrupted": "qadistill.train.signals",
    "NonFiniteLoss": "qadistill.train.signals",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'qadistill.train' has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
