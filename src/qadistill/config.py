"""Typed, validated settings shared by the commands and the experiment grid.

Every model rejects unknown keys, so a typo in a YAML config or an override fails loudly instead of being ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Strict(BaseModel):
    """Base for configs: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SplitConfig(Strict):
    """How one labelled pool is split by article, and optional caps for small runs.

    The split seed is separate from the training seeds: every seed of a study is scored on the same questions,
    so the spread over seeds measures training, not test-set sampling. `eval_from: dev` splits as the paper does
    (its test set is the held-out dev set): train and demo_pool from the dataset's official training data,
    validation and test from its dev data, each side by article with its fractions rescaled; `pool` splits all
    files together (the only choice for MLQA, which has no training data). `train_unanswerable` draws the
    training questions with that share of unanswerable ones (SQuAD v2's dev data is about half unanswerable, the
    shared training file 7%); without `max_train`, as many as the share allows.
    """

    train: float = Field(0.7, ge=0, le=1)
    validation: float = Field(0.1, ge=0, le=1)
    test: float = Field(0.1, ge=0, le=1)
    demo_pool: float = Field(0.1, ge=0, le=1)
    seed: int = 0
    max_train: int | None = Field(None, gt=0)
    max_validation: int | None = Field(None, gt=0)
    max_test: int | None = Field(None, gt=0)
    eval_from: Literal["pool", "dev"] = "pool"
    train_unanswerable: float | None = Field(None, ge=0, le=1)

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> SplitConfig:
        total = self.train + self.validation + self.test + self.demo_pool
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"split fractions must sum to 1, got {total:g}")
        if self.eval_from == "dev" and (self.train + self.demo_pool == 0 or self.validation + self.test == 0):
            raise ValueError("eval_from 'dev' needs a positive train or demo_pool and validation or test fraction")
        return self


class DataConfig(Strict):
    """Which dataset, where its files are, and how it is split."""

    dataset: str = "squad_v2"
    data_dir: Path | None = None
    strict: bool = False
    splits: SplitConfig = SplitConfig()


class PromptConfig(Strict):
    """Prompt format: shots, plain text or chat template, token budget (contexts are truncated to fit)."""

    shots: Literal[0, 1] = 0
    style: Literal["auto", "plain", "chat"] = "auto"
    max_prompt_tokens: int = Field(768, ge=32)


class GenerationConfig(Strict):
    """Greedy decoding settings for evaluation.

    `batch_size`: sequences decoded together (on the CPU each decoding step reads all weights once per batch).
    `max_new_tokens`: answers are short spans, so a small bound caps the cost of a rambling model.
    `prefill`: `per_prompt` runs each prompt at its exact length over shared prefixes (`qadistill.prefix_decoding`),
    `batched` uses `generate` on padded batches; `auto` picks per_prompt on the CPU, batched elsewhere.
    """

    batch_size: int = Field(32, gt=0)
    max_new_tokens: int = Field(32, gt=0)
    prefill: Literal["auto", "per_prompt", "batched"] = "auto"


class ModelLoadConfig(Strict):
    """How model weights are loaded. Pickle weights and remote code are refused unless switched on."""

    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    allow_pickle: bool = False
    trust_remote_code: bool = False


class PruneConfig(Strict):
    """Which layers a pruned student keeps: `keep` of the teacher's layers, chosen by `method`.

    `block_influence` (ShortGPT) keeps the layers that change their input most, `block` (Gromov et al.) drops the
    contiguous run of layers whose ends are closest, both measured on `calibration_examples` training prompts with
    their gold answers; `spread` keeps evenly spaced layers (first and last included) and measures nothing.
    """

    method: Literal["block_influence", "block", "spread"]
    keep: int = Field(ge=1)
    calibration_examples: int = Field(64, ge=1)


def first_difference(old: Any, new: Any, path: str = "") -> str:
    """The first setting in which two nested settings documents differ, as `key.sub (old -> new)`.

    What error messages name when a checkpoint or a finished stage was made with other settings than the current.
    """
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            if old.get(key, "<absent>") != new.get(key, "<absent>"):
                return first_difference(old.get(key, "<absent>"), new.get(key, "<absent>"), f"{path}.{key}")
        return path.lstrip(".")
    return f"{path.lstrip('.') or 'value'} ({old!r} -> {new!r})"
