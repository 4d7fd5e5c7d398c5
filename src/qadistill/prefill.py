"""Prompt processing (prefill) for CPU decoding: each token of a prompt set is run once, where possible.

* Prefixes are shared. The prefix common to all prompts (system prompt, instructions) runs once per call, and
  prompts that share more than that (questions on the same context: SQuAD has ~5 per paragraph) run their
  common prefix once per decode batch. A prompt then runs only what is its own.
* Nothing is padded while it is computed: on the CPU a prompt alone is as efficient per token as a padded batch,
  which would also compute every pad position (28% extra on 32 SQuAD questions in batches of 16).
* The per-prompt caches are copied into one preallocated cache per decode batch (transformers' `StaticCache`),
  right-aligned so that the batch is left-padded, with room for every answer token: decoding writes into it in
  place instead of concatenating every layer's keys and values anew at every step.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from dataclasses import dataclass

import torch

MIN_SHARED_TOKENS = 16
"""A group of prompts shares its prefix's computation only when that prefix is at least this much longer than
the prefix all prompts share (shorter ones save less than the copies cost)."""


@dataclass(frozen=True)
class PrefixCache:
    """The KV cache of `length` leading tokens: per layer (keys, values) of shape (1, heads, length, head_dim)."""

    length: int
    layers: tuple[tuple[torch.Tensor, torch.Tensor], ...] = ()


@dataclass(frozen=True)
class PrefilledBatch:
    """A decode batch's cache: row b holds its prompt but the last token in the last `len_b - 1` of `width` slots;
    slots from `width` on are free for the answer."""

    cache: object  # transformers.StaticCache
    width: int


def cache_argument(model) -> str:
    """transformers renamed the forward's `past_key_values` to `cache` (5.x); use whichever this model takes."""
    return _cache_argument_of(type(model))


@functools.lru_cache(maxsize=32)
def _cache_argument_of(model_class: type) -> str:
    return "cache" if "cache" in inspect.signature(model_class.forward).parameters else "past_key_values"


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    length = min(len(a), len(b))
    return next((i for i in range(length) if a[i] != b[i]), length)


def shared_prefix_length(prompts: Sequence[Sequence[int]]) -> int:
    """Tokens every prompt starts with, leaving each prompt at least its last token (the first decoding input)."""
    first, length = prompts[0], min(len(p) for p in prompts) - 1
    for other in prompts[1:]:
        length = common_prefix_length(first[:length], other[:length])
    return max(length, 0)


def group_by_prefix(prompts: Sequence[Sequence[int]], floor: int) -> list[list[int]]:
    """Indices of `prompts` in groups whose cached parts (all but the last token) share at least
    `floor + MIN_SHARED_TOKENS` leading tokens. In lexicographic order prompts with a common prefix are adjacent,
    so one pass joins each prompt to its predecessor's group or starts a new one."""
    if not prompts:
        return []
    order = sorted(range(len(prompts)), key=lambda i: list(prompts[i]))
    groups = [[order[0]]]
    for previous, current in zip(order, order[1:], strict=False):
        shared = common_prefix_length(prompts[previous][:-1], prompts[current][:-1])
        if shared >= floor + MIN_SHARED_TOKENS:
            groups[-1].append(current)
        else:
            groups.append([current])
    return groups


def decode_order(prompts: Sequence[Sequence[int]], groups: list[list[int]]) -> list[int]:
    """Groups longest first (a decode batch's cache is as wide as its longest prompt), each group's members
    together and longest first: consecutive slices of this order are the decode batches."""
    members = [sorted(group, key=lambda i: -len(prompts[i])) for group in groups]
    members.sort(key=lambda group: -len(prompts[group[0]]))
    return [i for group in members for i in group]


def run_prefix(model, tokens: Sequence[int], device) -> PrefixCache:
    """The KV cache of `tokens` from position 0."""
    return extend_prefix(model, PrefixCache(0), tokens, device)


def extend_prefix(model, prefix: PrefixCache, tokens: Sequence[int], device) -> PrefixCache:
    """`prefix` followed by `tokens`, computed over the prefix's cache (which is left as it was)."""
    if not tokens:
        return prefix
    from transformers import DynamicCache

    cache = DynamicCache(ddp_cache_data=prefix.layers or None, config=model.config)  # concatenates, never in place
    ids = torch.tensor([list(tokens)], device=device)
    positions = torch.arange(prefix.length, prefix.length + len(tokens), device=device).unsqueeze(0)
    _run_for_cache(model, input_ids=ids, position_ids=positions, use_cache=True, cache=cache)
    return PrefixCache(prefix.length + len(tokens), tuple((layer.keys, layer.values) for layer in cache.layers))


def _run_for_cache(model, *, cache, **inputs) -> None:
    """Run the decoder stack only: prefill keeps the keys and values, no hidden state or logit of its own (the
    last token of a prompt is the first decoding input). The LM head (~10 ms per prompt for a 49k x 576 head on
    two cores) and the last layer's MLP (which feeds no cache) are skipped."""
    from qadistill.train.answer_logits import last_layer_mlp_on_last_positions

    decoder = getattr(model, "base_model", model)
    if decoder is model:  # no separate decoder stack: the whole model, one position's logits
        model(**inputs, logits_to_keep=1, **{cache_argument(model): cache})
        return
    with last_layer_mlp_on_last_positions(model, 1):
        decoder(**inputs, **{cache_argument(decoder): cache})


def prefill_batch(
    model, prompts: Sequence[Sequence[int]], root: PrefixCache, max_new_tokens: int, device
) -> PrefilledBatch | None:
    """Every prompt but its last token, over `root` (a prefix of all of them), into one static cache with room for
    `max_new_tokens` answer tokens. None when this model's static cache is not a plain one per layer (sliding
    windows and the like): the caller then decodes another way."""
    from transformers import StaticCache
    from transformers.cache_utils import StaticLayer

    width = max(len(p) for p in prompts) - 1
    cache = StaticCache(config=model.config, max_cache_len=width + max_new_tokens)
    if any(type(layer) is not StaticLayer for layer in cache.layers):
        return None
    if width == 0:  # one-token prompts: nothing to cache, the first decoding step sizes the cache itself
        return PrefilledBatch(cache, 0)
    for group in group_by_prefix(prompts, root.length):
        group_prompts = [prompts[i] for i in group]
        shared = shared_prefix_length(group_prompts) if len(group) > 1 else root.length
        start = extend_prefix(model, root, group_prompts[0][root.length : shared], device)
        for row in group:
            prompt = prompts[row]
            own = extend_prefix(model, start, prompt[start.length : len(prompt) - 1], device)
            _place_row(cache, own, row, len(prompts), width)
    return PrefilledBatch(cache, width)


def _place_row(cache, own: PrefixCache, row: int, batch_size: int, width: int) -> None:
    """Copy one prompt's cache into row `row`, right-aligned at slot `width` (allocating the layers on first use)."""
    if own.length == 0:  # a one-token prompt: all its slots stay masked padding
        return
    for layer, (keys, values) in zip(cache.layers, own.layers, strict=True):
        if not layer.is_initialized:
            empty_keys = keys.new_empty((batch_size, keys.shape[1], 0, keys.shape[3]))
            empty_values = values.new_empty((batch_size, values.shape[1], 0, values.shape[3]))
            layer.lazy_initialization(empty_keys, empty_values)
            layer.cumulative_length.fill_(width)
        layer.keys[row, :, width - own.length : width] = keys[0]
        layer.values[row, :, width - own.length : width] = values[0]
