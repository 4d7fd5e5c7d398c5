"""Next-token logits at the answer positions only: the vocabulary projection never runs over the prompt.

With left padding every answer ends at the last column, so the logits that predict the last A tokens of each
row come from input positions T-A-1 .. T-2. The last token is never needed as an input, so the model runs on
`input_ids[:, :-1]` and the LM head is applied to its last A positions (`logits_to_keep=A`, which transformers'
causal LMs support). A (B, T, V) tensor over the prompt is never made: with Qwen2.5's 152k-row head and
700-token prompts that tensor alone would be ~0.4 GB per row in fp32.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import torch

logger = logging.getLogger("qadistill.train")


def core_model(model: torch.nn.Module) -> torch.nn.Module:
    """The transformers model inside DDP / peft wrappers."""
    while hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
        model = model.module
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


@functools.lru_cache(maxsize=32)
def _accepts_logits_to_keep(forward_owner: type) -> bool:
    try:
        return "logits_to_keep" in inspect.signature(forward_owner.forward).parameters
    except (TypeError, ValueError):
        return False


POSITIONWISE_AFTER_ATTENTION = frozenset({"llama", "qwen2", "gpt_neox", "mistral"})
"""Architectures whose last decoder layer mixes positions only in its attention (MLP and norms act per position)."""


LINEAR_HEAD_ARCHITECTURES = frozenset({"llama", "qwen2", "gpt_neox", "mistral"})
"""Architectures whose logits are the LM head's output itself (no soft cap or scaling op that keeps its output for
backward): once the loss has read them, their storage may hold the gradient (`answer_objective(overwrite_logits)`)."""


def _model_type(core: torch.nn.Module) -> str | None:
    return getattr(getattr(core, "config", None), "model_type", None)


def logits_storage_reusable(model: torch.nn.Module) -> bool:
    """Whether `model`'s answer logits may be overwritten after the loss has read them (see above)."""
    return _model_type(core_model(model)) in LINEAR_HEAD_ARCHITECTURES


def _checkpointing(model: torch.nn.Module) -> bool:
    return bool(getattr(model, "is_activation_checkpointing", None) or model.__dict__.get("gradient_checkpointing"))


def _make_contiguous(module: torch.nn.Module, args: tuple) -> tuple:
    return (args[0].contiguous(), *args[1:]) if args and isinstance(args[0], torch.Tensor) else args


def _last_positions_mlp_hooks(model: torch.nn.Module, keep: int) -> list[tuple[torch.nn.Module, str, object]]:
    """Hooks that run the last decoder layer's MLP on the last `keep` positions only (zeros elsewhere), or none
    where that is not safe (other architectures; activation checkpointing, whose recomputation runs unhooked)."""
    core = core_model(model)
    layers = getattr(core.get_decoder(), "layers", None) if hasattr(core, "get_decoder") else None
    mlp = getattr(layers[-1], "mlp", None) if layers else None
    if _model_type(core) not in POSITIONWISE_AFTER_ATTENTION or not isinstance(mlp, torch.nn.Module):
        return []
    if model.training and _checkpointing(core):
        return []
    length: list[int] = []

    def tail(module: torch.nn.Module, args: tuple) -> tuple:
        length.append(args[0].shape[1])
        return (args[0][:, -keep:], *args[1:])

    def pad_back(module: torch.nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.pad(output, (0, 0, length.pop() - output.shape[1], 0))

    return [(mlp, "pre", tail), (mlp, "post", pad_back)]


@contextmanager
def _hooked(hooks: list[tuple[torch.nn.Module, str, object]]) -> Iterator[None]:
    handles = [
        module.register_forward_pre_hook(fn) if kind == "pre" else module.register_forward_hook(fn)
        for module, kind, fn in hooks
    ]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def last_layer_mlp_on_last_positions(model: torch.nn.Module, keep: int):
    """Context: the last decoder layer's MLP runs on the last `keep` positions only (where that changes no value
    that is read: prefill keeps only the KV cache, which the last layer's MLP does not feed)."""
    return _hooked(_last_positions_mlp_hooks(model, keep))


@contextmanager
def _answer_position_hooks(model: torch.nn.Module, keep: int) -> Iterator[None]:
    """Shortcuts that change no value, only work, while the model computes the last `keep` positions' logits.

    * The LM head gets a contiguous copy of those positions' hidden states: `logits_to_keep` hands it a strided
      (B, A, H) slice, which `F.linear` runs as a batched matmul against the head broadcast per row (~60 ms
      instead of ~35 ms for 32 positions of a 152k x 256 head on two CPU cores).
    * The last decoder layer's MLP runs on those positions only: after the last attention nothing mixes
      positions, so the prompt positions' MLP output there is never read (a quarter of a 4-layer model's MLP work).
    """
    head = core_model(model).get_output_embeddings()
    hooks = [(head, "pre", _make_contiguous)] if isinstance(head, torch.nn.Module) else []
    hooks += _last_positions_mlp_hooks(model, keep)
    with _hooked(hooks):
        yield


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
    if _accepts_logits_to_keep(type(core_model(model))):
        with _answer_position_hooks(model, answer_len):
            logits = model(**kwargs, logits_to_keep=answer_len).logits
    else:  # a model without logits_to_keep: correct, but projects every position
        logger.warning("%s has no logits_to_keep; computing full logits", type(core_model(model)).__name__)
        logits = model(**kwargs).logits
    return logits if logits.shape[1] == answer_len else logits[:, -answer_len:]
