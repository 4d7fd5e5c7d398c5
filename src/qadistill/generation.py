"""Batched greedy answer generation: left padding, KV cache, length-sorted batches, stop at newline or EOS."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import torch
from tqdm.auto import tqdm

from qadistill.tokenize import left_pad, prompt_ids


@dataclass(frozen=True)
class GenerationSettings:
    """Decoding settings. Answers are short spans, so a small `max_new_tokens` bounds the cost of a rambling model."""

    batch_size: int = 16
    max_new_tokens: int = 32


@lru_cache(maxsize=8)
def _newline_token_ids(tokenizer) -> tuple[int, ...]:
    vocab_size = len(tokenizer)
    pieces = tokenizer.batch_decode([[i] for i in range(vocab_size)])
    return tuple(i for i, piece in enumerate(pieces) if "\n" in piece)


def stop_token_ids(tokenizer, model=None) -> list[int]:
    """EOS ids (tokenizer's and the model's generation config's) plus every token that decodes to a newline."""
    ids = set(_newline_token_ids(tokenizer))
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    config_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if isinstance(config_eos, int):
        ids.add(config_eos)
    elif config_eos:
        ids.update(config_eos)
    return sorted(ids)


@torch.inference_mode()
def generate_answers(
    model,
    tokenizer,
    prompts: Sequence[str],
    settings: GenerationSettings = GenerationSettings(),
    *,
    progress: bool = True,
) -> list[str]:
    """Greedy-decode every prompt and return the raw generated text (special tokens removed), in input order.

    Prompts are sorted by length so each batch pads little; each sequence stops at EOS or its first newline,
    and a batch stops when all of its sequences have.
    """
    encoded = [prompt_ids(tokenizer, p) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]), reverse=True)
    stops = stop_token_ids(tokenizer, model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    outputs: list[str] = [""] * len(prompts)
    batches = [order[i : i + settings.batch_size] for i in range(0, len(order), settings.batch_size)]
    for batch in tqdm(batches, desc="generating", unit="batch", disable=not progress, leave=False):
        ids, mask = left_pad([encoded[i] for i in batch], pad_id)
        generated = model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=settings.max_new_tokens,
            do_sample=False,
            num_beams=1,
            eos_token_id=stops,
            pad_token_id=pad_id,
        )
        new_tokens = generated[:, ids.shape[1] :].tolist()
        for row, index in enumerate(batch):
            outputs[index] = _decode_until_stop(tokenizer, new_tokens[row], stops)
    return outputs


def _decode_until_stop(tokenizer, tokens: list[int], stops: Sequence[int]) -> str:
    """Decode up to and including the first stop token (a newline token keeps its text; EOS is dropped)."""
    stop_set = set(stops)
    for position, token in enumerate(tokens):
        if token in stop_set:
            tokens = tokens[: position + 1]
            break
    return tokenizer.decode(tokens, skip_special_tokens=True)
