"""Typed, validated settings shared by the commands and the experiment grid.

Every model rejects unknown keys, so a typo in a YAML config or an override fails loudly instead of being ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Strict(BaseModel):
    """Base for configs: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class SplitConfig(Strict):
    """How one labelled pool is split by article, and optional caps for small runs.

    The split seed is separate from the training seeds: every seed of a study is scored on the same questions,
    so the spread over seeds measures training, not test-set sampling.
    """

    train: float = Field(0.7, ge=0, le=1)
    validation: float = Field(0.1, ge=0, le=1)
    test: float = Field(0.1, ge=0, le=1)
    demo_pool: float = Field(0.1, ge=0, le=1)
    seed: int = 0
    max_train: int | None = Field(None, gt=0)
    max_validation: int | None = Field(None, gt=0)
    max_test: int | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _fractions_sum_to_one(self) -> SplitConfig:
        total = self.train + self.validation + self.test + self.demo_pool
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"split fractions must sum to 1, got {total:g}")
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
    """Greedy decoding settings for evaluation (`batch_size`: sequences decoded together)."""

    batch_size: int = Field(32, gt=0)
    max_new_tokens: int = Field(32, gt=0)


class ModelLoadConfig(Strict):
    """How model weights are loaded. Pickle weights and remote code are refused unless switched on."""

    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    allow_pickle: bool = False
    trust_remote_code: bool = False
