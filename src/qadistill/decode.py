"""Greedy decoding of a prefilled batch, one token per row per step, with finished rows leaving the batch.

The loop is what `generate` does for greedy search (float32 logits of the last position, argmax, stop at a stop
token or after `max_new_tokens`) without its per-step overhead, on a preallocated cache, and it drops a row as
soon as it has stopped: answers are a few tokens, but a batch would otherwise run every row until its slowest
one stops, and on the CPU each step reads every remaining row's keys and values. It applies only where
`generate` would not change the logits before the argmax (`plain_greedy`): models whose generation config asks
for a repetition penalty or the like are decoded with `generate` itself.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch

from qadistill.prefill import PrefilledBatch, cache_argument


def plain_greedy(model, *, stops: Sequence[int], pad_id: int | None, max_new_tokens: int) -> bool:
    """Whether `generate(do_sample=False, ...)` would use no logits processor for this model, i.e. greedy search is
    a plain argmax. Asks transformers itself (its processor list for the model's generation config with our
    settings); if that cannot be asked, says no, and `generate` is used."""
    config = copy.deepcopy(getattr(model, "generation_config", None))
    build = getattr(model, "_get_logits_processor", None)
    if config is None or build is None:
        return False
    try:
        config.update(
            do_sample=False, num_beams=1, max_new_tokens=max_new_tokens, eos_token_id=list(stops), pad_token_id=pad_id
        )
        processors = build(generation_config=config, input_ids_seq_length=1, device="cpu")
    except (TypeError, ValueError, AttributeError):
        return False
    return len(processors) == 0


def greedy_decode(
    model,
    batch: PrefilledBatch,
    last_tokens: Sequence[int],
    lengths: Sequence[int],
    *,
    stops: Sequence[int],
    max_new_tokens: int,
    device,
) -> list[list[int]]:
    """The generated tokens of each row, up to and including its first stop token.

    Row b's prompt has `lengths[b]` tokens, all but the last (`last_tokens[b]`, fed first) already in `batch`.
    """
    rows = list(range(len(lengths)))
    outputs: list[list[int]] = [[] for _ in rows]
    width, trimmed = batch.width, 0  # slots dropped from the front of the cache (padding of every row left)
    tokens = torch.tensor(list(last_tokens), device=device)
    positions = torch.tensor(list(lengths), device=device) - 1  # a row's next position, counted from its first token
    slots = torch.arange(width + max_new_tokens, device=device)
    mask = (slots.unsqueeze(0) >= width - positions.unsqueeze(1)).long()  # left padding hidden; later slots causal
    stop_ids = torch.tensor(sorted(set(stops)), device=device)
    cache_kwarg = cache_argument(model)
    for step in range(max_new_tokens):
        logits = model(
            input_ids=tokens.unsqueeze(1),
            attention_mask=mask,
            position_ids=positions.unsqueeze(1),
            cache_position=torch.tensor([width - trimmed + step], device=device),
            use_cache=True,
            **{cache_kwarg: batch.cache},
        ).logits
        tokens = logits[:, -1].to(torch.float32).argmax(dim=-1)
        for row, token in zip(rows, tokens.tolist(), strict=True):
            outputs[row].append(token)
        running = ~torch.isin(tokens, stop_ids)
        if step == max_new_tokens - 1 or not bool(running.any()):
            break
        if not bool(running.all()):
            keep = running.nonzero().squeeze(1)
            tokens, positions, mask = tokens[keep], positions[keep], mask[keep]
            padding = int(mask.argmax(dim=1).min())  # leading slots that are padding for every remaining row
            _keep_rows(batch.cache, keep, padding)
            rows, mask, trimmed = [rows[i] for i in keep.tolist()], mask[:, padding:], trimmed + padding
        positions = positions + 1
    return outputs


def _keep_rows(cache, keep: torch.Tensor, padding: int) -> None:
    """Shrink every layer of a static cache to the rows `keep` and drop its first `padding` slots (one copy of what
    remains; attention then reads neither the rows that stopped nor padding that no row needs)."""
    for layer in cache.layers:
        if getattr(layer, "is_initialized", False):
            layer.keys = layer.keys[keep, :, padding:]
            layer.values = layer.values[keep, :, padding:]
            layer.batch_size = int(keep.numel())
            layer.max_cache_len -= padding
            layer.cumulative_length.sub_(padding)
