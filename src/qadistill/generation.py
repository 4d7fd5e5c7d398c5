"""Batched greedy answer generation: left padding, KV cache, length-sorted batches, stop at newline or EOS.

Prompt processing (prefill) is most of an evaluation's work: a QA prompt has hundreds of tokens, an answer a few.
Two things keep it small on the CPU:

* The prefix that every prompt shares (system prompt, instructions) is run once; its KV cache is reused.
* Each prompt's remainder is run on its own, at its exact length. Batched prefill pads every prompt to the
  longest of its batch (28% extra work on 32 SQuAD questions in batches of 16), and on the CPU a batch of one is
  as efficient per token. The per-prompt caches are then laid out left-padded side by side, and the answers are
  decoded in batches, where batching pays: one pass over the weights serves every row.

On a GPU, where one prompt leaves the device mostly idle, prompts are prefilled in batches (`prefill="batched"`).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import torch
from tqdm.auto import tqdm

from qadistill.tokenize import left_pad, prompt_ids


@dataclass(frozen=True)
class GenerationSettings:
    """Decoding settings. Answers are short spans, so a small `max_new_tokens` bounds the cost of a rambling model."""

    batch_size: int = 16
    max_new_tokens: int = 32
    prefill: Literal["auto", "per_prompt", "batched"] = "auto"
    """auto: per prompt (over the shared prefix's cache) on the CPU, batched elsewhere."""


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
    per_prompt = settings.prefill == "per_prompt" or (settings.prefill == "auto" and device.type == "cpu")
    shared = _shared_prefix(model, encoded, device) if per_prompt else None
    for batch in tqdm(batches, desc="generating", unit="batch", disable=not progress, leave=False):
        ids, mask = left_pad([encoded[i] for i in batch], pad_id)
        cache = {}
        if shared is not None:  # everything but each prompt's last token is already in the cache
            prefilled = _prefilled_cache(model, shared, [encoded[i] for i in batch], device)
            cache = {_cache_argument(model): prefilled} if prefilled is not None else {}
        generated = model.generate(
            input_ids=ids.to(device),
            attention_mask=mask.to(device),
            max_new_tokens=settings.max_new_tokens,
            do_sample=False,
            num_beams=1,
            eos_token_id=stops,
            pad_token_id=pad_id,
            **cache,
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


# ------------------------------------------------------------------------------------- per-prompt prefill


@dataclass(frozen=True)
class SharedPrefix:
    """The tokens every prompt starts with and their KV cache, per layer (keys, values) of shape (1, H, P, D)."""

    length: int
    layers: tuple[tuple[torch.Tensor, torch.Tensor], ...]


def _cache_argument(model) -> str:
    """transformers renamed generate's `past_key_values` to `cache` (5.x); use whichever this version takes."""
    return _cache_argument_of(type(model))


@lru_cache(maxsize=32)
def _cache_argument_of(model_class: type) -> str:
    return "cache" if "cache" in inspect.signature(model_class.forward).parameters else "past_key_values"


def _new_cache(model, layers=None):
    from transformers import DynamicCache

    return DynamicCache(ddp_cache_data=layers, config=model.config)


def _run(model, cache, tokens: Sequence[int], start: int, device) -> None:
    """Append `tokens` (at positions start, start + 1, ...) to `cache`; the logits are not needed."""
    ids = torch.tensor([list(tokens)], device=device)
    positions = torch.arange(start, start + len(tokens), device=device).unsqueeze(0)
    model(input_ids=ids, position_ids=positions, use_cache=True, logits_to_keep=1, **{_cache_argument(model): cache})


def _shared_prefix(model, encoded: Sequence[Sequence[int]], device) -> SharedPrefix:
    """Run the longest common prefix of all prompts once (leaving every prompt at least one token of its own)."""
    first, length = encoded[0], min(len(e) for e in encoded) - 1
    for other in encoded[1:]:
        length = next((i for i in range(length) if other[i] != first[i]), length)
    if length <= 0:
        return SharedPrefix(0, ())
    cache = _new_cache(model)
    _run(model, cache, first[:length], 0, device)
    return SharedPrefix(length, tuple((layer.keys, layer.values) for layer in cache.layers))


def _prefilled_cache(model, shared: SharedPrefix, prompts: Sequence[Sequence[int]], device):
    """A KV cache for the batch `left_pad(prompts)` holding every prompt but its last token, each row computed on
    its own (over the shared prefix), then placed right-aligned: row b's cache fills the last len_b - 1 of the
    max_len - 1 columns; the columns before are zeros that the attention mask hides."""
    width = max(len(p) for p in prompts) - 1
    rows: list[list[tuple[torch.Tensor, torch.Tensor]] | None] = []
    for prompt in prompts:
        cache = _new_cache(model, [(k.clone(), v.clone()) for k, v in shared.layers] or None)
        if len(prompt) - 1 > shared.length:
            _run(model, cache, prompt[shared.length : -1], shared.length, device)
        rows.append([(layer.keys, layer.values) for layer in cache.layers] if len(prompt) > 1 else None)
    template = next((row for row in rows if row is not None), None)
    if template is None:  # one-token prompts only: nothing to cache
        return None
    layers = []
    for index, (key_like, value_like) in enumerate(template):
        keys = [row[index][0] if row else key_like[:, :, :0] for row in rows]
        values = [row[index][1] if row else value_like[:, :, :0] for row in rows]
        layers.append(
            (torch.cat([_left_pad_time(k, width) for k in keys]), torch.cat([_left_pad_time(v, width) for v in values]))
        )
    return _new_cache(model, layers)


def _left_pad_time(tensor: torch.Tensor, width: int) -> torch.Tensor:
    """(1, H, L, D) -> (1, H, width, D) with zeros in front."""
    return torch.nn.functional.pad(tensor, (0, 0, width - tensor.shape[2], 0))
