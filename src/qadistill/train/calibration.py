"""Choosing a pruned student's layers: calibration sequences from the training split, then the measured scores.

The calibration sequences are training sequences exactly as fine-tuning and distillation encode them (the same
prompt format, zero- or one-shot, the context cut around the gold span, the gold answer and EOS), so the layers
are scored on the inputs the student will train on. Which questions (and one-shot demonstrations) are used
depends only on the seed. The scoring itself is `qadistill.models.layer_importance`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from qadistill.config import DataConfig, PromptConfig, PruneConfig
from qadistill.data.prepare import PreparedData, prepare_data, prompt_format
from qadistill.data.splits import cap
from qadistill.errors import QADistillError
from qadistill.models.layer_importance import LayerChoice, check_keep, measure_layers
from qadistill.models.pruning import resolve_keep, spread_layers
from qadistill.prompts import PromptFormat, fit_to_context
from qadistill.train.batching import encode_examples

logger = logging.getLogger("qadistill.train")

CALIBRATION_BATCH = 4


def calibration_sequences(
    prepared: PreparedData, fmt: PromptFormat, tokenizer, *, count: int, seed: int, max_answer_tokens: int
) -> list[tuple[int, ...]]:
    """Token ids (prompt + gold answer + EOS) of `count` training questions chosen by `seed`."""
    chosen = cap(prepared.split("train"), count, seed)
    demo_pool = prepared.split("demo_pool") if fmt.shots == 1 else []
    encoded = encode_examples(chosen, fmt, tokenizer, demo_pool, seed, max_answer_tokens)
    return [(*item.prompt, *item.answer) for item in encoded]


def choose_layers(
    model,
    tokenizer,
    prune: PruneConfig | str | Sequence[int],
    *,
    data: PreparedData | DataConfig | None = None,
    prompt: PromptConfig | None = None,
    seed: int = 0,
    max_answer_tokens: int = 32,
) -> LayerChoice:
    """The layers of `model` a pruned student keeps, with the scores that chose them.

    `prune` is a measured or spread `PruneConfig` (the measured methods need `data` and `prompt` for the
    calibration prompts), a preset name (`half` ...) or explicit indices.
    """
    from qadistill.models import context_length

    n = model.config.num_hidden_layers
    if not isinstance(prune, PruneConfig):
        kept = resolve_keep(prune, n)
        return LayerChoice(prune if isinstance(prune, str) else "indices", n, len(kept), kept)
    check_keep(prune.keep, n)
    if prune.method == "spread":
        return LayerChoice("spread", n, prune.keep, spread_layers(n, prune.keep))
    if data is None or prompt is None:
        raise QADistillError(f"prune method {prune.method} needs data and prompt settings (calibration)")
    prepared = data if isinstance(data, PreparedData) else prepare_data(data)
    fmt = fit_to_context(prompt_format(prepared, prompt), context_length(model), max_answer_tokens + 1)
    sequences = calibration_sequences(
        prepared, fmt, tokenizer, count=prune.calibration_examples, seed=seed, max_answer_tokens=max_answer_tokens
    )
    choice = measure_layers(
        model, sequences, method=prune.method, keep=prune.keep, pad_id=tokenizer.pad_token_id,
        batch_size=CALIBRATION_BATCH,
    )  # fmt: skip
    choice.calibration = {
        "split": "train",
        "examples": len(sequences),
        "seed": seed,
        "shots": fmt.shots,
        "max_prompt_tokens": fmt.max_prompt_tokens,
        "max_answer_tokens": max_answer_tokens,
    }
    logger.info("layer selection %s", choice.describe())
    return choice
