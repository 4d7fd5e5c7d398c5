"""Batched greedy answer generation: left padding, KV cache, stop at newline or EOS, bounded new tokens.

Prompt processing (prefill) is most of an evaluation's work: a QA prompt has hundreds of tokens, an answer a few.
On the CPU (`prefill="auto"` or `"per_prompt"`), `qadistill.prefix_decoding` runs every prompt at its exact length
and each shared prefix once (the instructions of all prompts; the context of questions on the same paragraph), then
decodes the batch, dropping rows as they stop. On a GPU, where one prompt leaves the device mostly idle, prompts are
prefilled in length-sorted, padded batches and decoded with transformers' `generate` (`prefill="batched"`), which
is also the path for models whose generation config changes greedy search (a repetition penalty, ...) and for
caches with sliding windows.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import torch
from tqdm.auto import tqdm

from qadistill.config import GenerationConfig
from qadistill.prefix_decoding import (
    decode_order,
    greedy_decode,
    group_by_prefix,
    plain_greedy,
    prefill_batch,
    run_prefix,
    shared_prefix_length,
)
from qadistill.tokenize import left_pad, prompt_ids


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
    settings: GenerationConfig | None = None,
    *,
    progress: bool = True,
) -> list[str]:
    """Greedy-decode every prompt and return the raw generated text (special tokens removed), in input order.

    Each sequence stops at EOS or its first newline, after at most `settings.max_new_tokens` tokens.
    """
    settings = settings if settings is not None else GenerationConfig()
    encoded = [prompt_ids(tokenizer, p) for p in prompts]
    stops = stop_token_ids(tokenizer, model)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    per_prompt = settings.prefill == "per_prompt" or (settings.prefill == "auto" and device.type == "cpu")
    if per_prompt and plain_greedy(model):
        tokens = _per_prompt_tokens(model, encoded, settings, stops, pad_id, device, progress)
    else:
        tokens = _generate_tokens(model, encoded, settings, stops, pad_id, device, progress)
    return [_decode_until_stop(tokenizer, t, stops) for t in tokens]


def _batches(order: list[int], size: int, progress: bool):
    """Consecutive slices of `order`, behind a progress bar that goes away when done."""
    batches = [order[i : i + size] for i in range(0, len(order), size)]
    return tqdm(batches, desc="generating", unit="batch", disable=not progress, leave=False)


def _per_prompt_tokens(model, encoded, settings, stops, pad_id, device, progress) -> list[list[int]]:
    """Prefill per prompt over shared prefixes, then greedy decoding (`qadistill.prefix_decoding`), batch by batch."""
    if not encoded:
        return []
    root = run_prefix(model, encoded[0][: shared_prefix_length(encoded)], device)
    order = decode_order(encoded, group_by_prefix(encoded, root.length))
    outputs: list[list[int]] = [[] for _ in encoded]
    for batch in _batches(order, settings.batch_size, progress):
        prompts = [encoded[i] for i in batch]
        generated = greedy_decode(
            model,
            prefill_batch(model, prompts, root, device, settings.max_new_tokens),
            [p[-1] for p in prompts],
            [len(p) for p in prompts],
            stops=stops,
            max_new_tokens=settings.max_new_tokens,
            device=device,
        )
        for index, tokens in zip(batch, generated, strict=True):
            outputs[index] = tokens
    return outputs


def _generate_tokens(model, encoded, settings, stops, pad_id, device, progress) -> list[list[int]]:
    """transformers' `generate` on length-sorted, left-padded batches."""
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]), reverse=True)
    outputs: list[list[int]] = [[] for _ in encoded]
    for batch in _batches(order, settings.batch_size, progress):
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
        for row, index in enumerate(batch):
            outputs[index] = generated[row, ids.shape[1] :].tolist()
    return outputs


def _decode_until_stop(tokenizer, tokens: list[int], stops: Sequence[int]) -> str:
    """Decode up to and including the first stop token (a newline token keeps its text; EOS is dropped)."""
    stop_set = set(stops)
    for position, token in enumerate(tokens):
        if token in stop_set:
            tokens = tokens[: position + 1]
            break
    return tokenizer.decode(tokens, skip_special_tokens=True)
