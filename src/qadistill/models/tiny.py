"""Tiny, randomly initialised models of the real architectures for tests and benchmarks.

They run the same transformers code as Pythia / Qwen2.5 / SmolLM2 and take the real tokenizers, so the
data, training and evaluation code paths are exercised exactly, in seconds on a CPU.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from qadistill.errors import QADistillError
from qadistill.models.families import DEFAULT_VOCAB, build_config
from qadistill.models.loading import prepare_tokenizer, set_pad_token_id

Family = Literal["pythia", "qwen2.5", "llama"]

# Real tokenizer folders inside the shared data's tokenizers/ directory.
TOKENIZER_DIRS: dict[str, str] = {"pythia": "gpt-neox-20b", "qwen2.5": "qwen2.5"}


def _round_up(value: float, multiple: int = 8) -> int:
    return int(-(-value // multiple) * multiple)


def _default_intermediate(family: str, hidden_size: int) -> int:
    """The real models' MLP ratios: GPT-NeoX 4x, Qwen2.5-0.5B 4864/896, SmolLM2-135M 1536/576."""
    ratio = {"pythia": 4.0, "qwen2.5": 4864 / 896, "llama": 1536 / 576}[family]
    return _round_up(hidden_size * ratio)


def build_tiny_model(  # noqa: PLR0913  keyword-only sizes of a test model, all defaulted
    family: Family,
    tokenizer: PreTrainedTokenizerBase | None = None,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int | None = None,
    intermediate_size: int | None = None,
    vocab_size: int | None = None,
    seed: int = 0,
    max_position_embeddings: int = 2048,
) -> PreTrainedModel:
    """A small random causal LM of `family`, deterministic for a given `seed`, in eval mode.

    The vocabulary defaults to the real embedding size (50,304 / 151,936 / 49,152); it must cover the
    tokenizer when one is given, whose bos/eos/pad ids are copied into the config. Qwen2.5 and Llama use
    grouped-query attention with `num_heads // 2` kv heads by default, like the real models.
    """
    if family not in DEFAULT_VOCAB:
        raise QADistillError(f"unknown model family '{family}'; use pythia, qwen2.5 or llama")
    vocab = vocab_size or DEFAULT_VOCAB[family]
    if tokenizer is not None and len(tokenizer) > vocab:
        raise QADistillError(f"vocab_size {vocab} is smaller than the tokenizer ({len(tokenizer)} tokens)")
    if num_kv_heads is None and family != "pythia":
        num_kv_heads = num_heads // 2 if num_heads % 2 == 0 else num_heads
    config = build_config(
        family,
        hidden_size=hidden_size,
        num_layers=num_layers,
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        intermediate_size=intermediate_size or _default_intermediate(family, hidden_size),
        vocab_size=vocab,
        max_position_embeddings=max_position_embeddings,
    )
    if tokenizer is not None:
        for attr in ("bos_token_id", "eos_token_id", "pad_token_id"):
            value = getattr(tokenizer, attr)
            if value is not None:
                setattr(config, attr, value)
    with torch.random.fork_rng(devices=[]):  # deterministic without disturbing the caller's RNG
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    if tokenizer is not None:
        set_pad_token_id(model, tokenizer)
    model.eval()
    return model


def load_real_tokenizer(family: Family, tokenizers_dir: Path) -> PreTrainedTokenizerBase:
    """The real tokenizer of `family` from the shared data's tokenizers/ folder, prepared (left padding)."""
    tokenizers_dir = Path(tokenizers_dir)
    tokenizer: PreTrainedTokenizerBase
    if family == "pythia":
        from transformers import PreTrainedTokenizerFast

        path = tokenizers_dir / TOKENIZER_DIRS["pythia"] / "tokenizer.json"
        if not path.is_file():
            raise QADistillError(f"GPT-NeoX tokenizer file {path} does not exist")
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_file=str(path), eos_token="<|endoftext|>", pad_token="<|padding|>"
        )
    elif family == "qwen2.5":
        folder = tokenizers_dir / TOKENIZER_DIRS["qwen2.5"]
        if not folder.is_dir():
            raise QADistillError(f"Qwen2.5 tokenizer folder {folder} does not exist")
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
    else:
        raise QADistillError(
            f"no real tokenizer file for family '{family}' in {tokenizers_dir}; for llama use the SmolLM2 "
            "tokenizer (load_tokenizer('smollm2-135m-instruct'))"
        )
    return prepare_tokenizer(tokenizer)
