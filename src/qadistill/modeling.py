"""Forward passes on the positions a loss reads: the answer tokens (training, distillation) or every token (healing).

With left padding every answer ends at the last column, so the logits that predict the last A tokens of each row
come from input positions T-A-1 .. T-2. The last token is never needed as an input, so the model runs on
`input_ids[:, :-1]` and the LM head is applied to its last A positions only (`logits_to_keep`, which
transformers' causal LMs support). A (B, T, V) tensor over the prompt is never made: with Qwen2.5's 152k-row head
and 700-token prompts that tensor alone would be ~0.4 GB per row in fp32.
"""

from __future__ import annotations

import inspect
import logging

import torch

logger = logging.getLogger("qadistill.modeling")


def core_model(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers model inside DDP / peft wrappers."""
    while hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
        model = model.module
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def _accepts_logits_to_keep(model: torch.nn.Module) -> bool:
    try:
        return "logits_to_keep" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def position_ids_for(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions counted from each row's first real token, as `generate` does for left-padded prompts."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def answer_logits(
    model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, answer_len: int
) -> torch.Tensor:
    """(B, A, V) logits; `out[:, j]` predicts `input_ids[:, T - A + j]` (A = `answer_len`).

    Equal to `model(input_ids, attention_mask, position_ids=position_ids_for(attention_mask)).logits[:, -A-1:-1]`,
    but computed without the prompt's vocabulary projection. Works for plain, peft- or DDP-wrapped causal LMs.
    """
    if not 0 < answer_len < input_ids.shape[1]:
        raise ValueError(f"answer_len {answer_len} must be in [1, {input_ids.shape[1] - 1}]")
    ids, mask = input_ids[:, :-1], attention_mask[:, :-1]
    kwargs = {"input_ids": ids, "attention_mask": mask, "position_ids": position_ids_for(mask), "use_cache": False}
    if _accepts_logits_to_keep(core_model(model)):
        # Positions as an index tensor, not the int: the head then gets a contiguous (B, A, H) copy instead of a
        # strided view, which torch's CPU matmul runs as a batched matmul over a broadcast weight (teacher head
        # 86 -> 43-64 ms per step in benchmarks/distill_step.py; same logits).
        keep = torch.arange(ids.shape[1] - answer_len, ids.shape[1], device=ids.device)
        logits = model(**kwargs, logits_to_keep=keep).logits
    else:  # a model without logits_to_keep: correct, but projects every position
        logger.warning("%s has no logits_to_keep; computing full logits", type(core_model(model)).__name__)
        logits = model(**kwargs).logits
    return logits if logits.shape[1] == answer_len else logits[:, -answer_len:]


def next_token_logits(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T-1, V) logits; `out[:, t]` predicts `input_ids[:, t + 1]`: every position, for healing a pruned model."""
    ids, mask = input_ids[:, :-1], attention_mask[:, :-1]
    return model(input_ids=ids, attention_mask=mask, position_ids=position_ids_for(mask), use_cache=False).logits
