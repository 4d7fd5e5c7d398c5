"""Validation during training: answer-token CE on a fixed validation subset, and (to keep the best weights) the
greedy answers' EM / F1 / ROUGE-L on the same questions, scored exactly as `qadistill evaluate` scores them.

With `keep: best` the weights of the best validation are kept in `best/` (trainable tensors) and restored before
the final model is saved; the chosen step is recorded in the result. Step 0 (before training) is measured but is
no candidate: the kept weights are always trained ones.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from qadistill.config import GenerationConfig
from qadistill.errors import QADistillError
from qadistill.evaluate import predict, score_predictions
from qadistill.losses import answer_cross_entropy
from qadistill.modeling import answer_logits
from qadistill.train.batching import Batch
from qadistill.train.checkpoint import trainable_tensors
from qadistill.train.config import TrainConfig
from qadistill.train.data import TrainingData, fixed_batches
from qadistill.train.optim import autocast

METRIC_KEYS = ("exact", "f1", "rouge_l")


@dataclass
class Validator:
    """The fixed validation batches and questions of one run, and when to use them."""

    cfg: TrainConfig
    data: TrainingData
    tokenizer: Any
    seed: int
    steps_per_epoch: int

    def __post_init__(self) -> None:
        self.batches = fixed_batches(self.data.validation, self.cfg.eval_batch_size, self.tokenizer.pad_token_id)

    @property
    def enabled(self) -> bool:
        return bool(self.batches)

    @property
    def by_generation(self) -> bool:
        return self.cfg.keep == "best" and self.cfg.select_metric != "val_ce"

    def due(self, step: int, total_steps: int) -> bool:
        """After every `eval_interval` steps (or epoch) and after the last step."""
        if not self.enabled:
            return False
        interval = self.steps_per_epoch if self.cfg.eval_interval == "epoch" else int(self.cfg.eval_interval)
        return step == total_steps or step % interval == 0

    def run(
        self, model: torch.nn.Module, raw_model: torch.nn.Module, device: torch.device, *, candidate: bool = True
    ) -> dict[str, float]:
        """`val_ce` of `model` (as trained: wrapped for DDP/FSDP), and for a `candidate` of best-keeping by
        generation, EM / F1 / ROUGE-L of `raw_model`'s greedy answers."""
        was_training = model.training
        model.eval()
        try:
            scores = {"val_ce": self.answer_ce(model, device)}
            if candidate and self.by_generation:
                scores |= self.generation_scores(raw_model, device)
        finally:
            model.train(was_training)
        return scores

    def answer_ce(self, model: torch.nn.Module, device: torch.device) -> float:
        return answer_ce(model, self.batches, device, self.cfg.precision)

    def generation_scores(self, model: torch.nn.Module, device: torch.device) -> dict[str, float]:
        """EM, F1 and ROUGE-L (0-100) of greedy answers to the validation questions."""
        settings = GenerationConfig(batch_size=self.cfg.eval_batch_size, max_new_tokens=self.cfg.eval_max_new_tokens)
        with autocast(self.cfg.precision, device):
            predictions = predict(
                model,
                self.tokenizer,
                self.data.validation_questions,
                self.data.fmt,
                self.data.demo_pool,
                self.seed,
                settings,
                progress=False,
            )
        _, metrics = score_predictions(predictions, scorer=self.data.prepared.scorer, lang=self.data.fmt.lang)
        return {key: float(metrics[key]) for key in METRIC_KEYS}

    def selection_value(self, scores: dict[str, float]) -> float:
        """The number best-keeping maximises (the CE is negated)."""
        if self.cfg.select_metric == "val_ce":
            return -scores["val_ce"]
        return scores[self.cfg.select_metric]


@torch.inference_mode()
def answer_ce(model: torch.nn.Module, batches: list[Batch], device: torch.device, precision: str = "fp32") -> float:
    """Answer-token CE of `model` on `batches` (sum of token losses / tokens): the validation CE."""
    total, tokens = 0.0, 0
    for batch in batches:
        batch = batch.to(device)
        with autocast(precision, device):
            logits = answer_logits(model, batch.input_ids, batch.attention_mask, batch.answer_len)
        labels, mask = batch.targets()
        total += float(answer_cross_entropy(logits.float(), labels, mask)) * batch.n_answer_tokens
        tokens += batch.n_answer_tokens
    return total / max(tokens, 1)


def improved(value: float, best: float | None) -> bool:
    return math.isfinite(value) and (best is None or value > best)


def _best_file(folder: Path, step: int) -> Path:
    return folder / f"step-{step:08d}.safetensors"


def save_best(folder: Path, model: torch.nn.Module, step: int) -> None:
    """The trainable weights of the best validation so far, one file per step (written to a temporary name,
    then renamed). Older files stay until a checkpoint records the newer best step (`prune_best`), so a run
    resumed from any checkpoint finds the weights of the best step its state names."""
    folder.mkdir(parents=True, exist_ok=True)
    target = _best_file(folder, step)
    partial = target.with_suffix(".tmp")
    save_file(trainable_tensors(model), str(partial))
    os.replace(partial, target)


def prune_best(folder: Path, keep_step: int | None) -> None:
    """Remove best-weight files of every step but `keep_step` (and unfinished temporary files)."""
    if not folder.is_dir():
        return
    keep = None if keep_step is None else _best_file(folder, keep_step)
    for path in folder.iterdir():
        if path != keep:
            path.unlink(missing_ok=True)


def restore_best(folder: Path, model: torch.nn.Module, step: int) -> None:
    """Load the weights of the best validation (at `step`) into `model`'s trainable parameters, by name."""
    path = _best_file(folder, step)
    if not path.is_file():
        raise QADistillError(f"the best weights of step {step} are missing ({path}); train again without --resume")
    tensors = load_file(str(path))
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in tensors.items():
            params[name].copy_(value)
