"""The gradient of a weight shared by the input embedding and the LM head (Qwen2.5 0.5B-3B, SmolLM2, test models).

The head's gradient is dense (V x H: every vocabulary row gets some of the softmax); the embedding's touches only
the rows of the batch's tokens. Left alone, autograd builds a dense V x H zero gradient for the embedding, fills
those rows and adds the two V x H tensors into a third: with a 152k vocabulary, two ~80 MB tensors more than the
gradient itself at the step's memory peak, and a fresh one every step, which the allocator places wherever the
step's smaller tensors left room (on the CPU the heap grows by another gradient's size). Two ways around it, both
leaving one dense gradient on the parameter (what clipping, fused AdamW and checkpoints expect):

* one process (`in_place`): the weight leaves autograd's accumulation. The head's backward writes its product
  into one gradient buffer kept for the whole run (overwriting it when `.grad` was reset, adding to it in a
  gradient-accumulation window) and the embedding's backward adds the batch's rows into it (the head runs last
  in the forward, so its backward runs first). No V x H tensor besides the gradient, and the same one each step.
* DDP (`sparse`): DDP reduces a gradient when autograd accumulates it, so both parts must reach autograd; a
  sparse embedding gradient at least saves the dense zero tensor.

Never under FSDP or DeepSpeed, which own the gradients.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Literal

import torch

TiedGradientMode = Literal["in_place", "sparse"]


@dataclass
class _GradientBuffer:
    """The tied weight's gradient storage, reused by every step (the optimizer resets `.grad` to None)."""

    weight: torch.nn.Parameter
    storage: torch.Tensor | None = None

    def current(self) -> torch.Tensor | None:
        """`weight.grad` if this step already has one, else None."""
        return self.weight.grad

    def start(self) -> torch.Tensor:
        """An uninitialised buffer that becomes `weight.grad`; the caller fills all of it."""
        if self.storage is None or self.storage.shape != self.weight.shape:
            self.storage = torch.empty_like(self.weight, memory_format=torch.contiguous_format)
        self.weight.grad = self.storage
        return self.storage


class _HeadIntoGradient(torch.autograd.Function):
    """`F.linear(hidden, weight)`; the backward writes the weight's gradient into the shared buffer itself."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, head: torch.nn.Linear, buffer: _GradientBuffer) -> torch.Tensor:
        ctx.save_for_backward(hidden)
        ctx.head, ctx.buffer = head, buffer
        return torch.nn.functional.linear(hidden, head.weight.detach())

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        (hidden,) = ctx.saved_tensors
        weight = ctx.head.weight
        flat_grad = grad.reshape(-1, grad.shape[-1]).t()  # (V, N)
        flat_hidden = hidden.reshape(-1, hidden.shape[-1])  # (N, H)
        if (existing := ctx.buffer.current()) is None:
            torch.mm(flat_grad, flat_hidden, out=ctx.buffer.start())
        else:
            existing.addmm_(flat_grad, flat_hidden)
        grad_hidden = grad @ weight.detach() if ctx.needs_input_grad[0] else None
        return grad_hidden, None, None


class _EmbeddingRowsIntoGradient(torch.autograd.Function):
    """Embedding lookup whose backward adds the rows' gradient into the shared buffer.

    `anchor` is an empty tensor that requires grad: it puts the output into the graph without making the weight
    an input of it (the weight is reached through the module, which autograd does not look into).
    """

    @staticmethod
    def forward(
        ctx, anchor: torch.Tensor, ids: torch.Tensor, embedding: torch.nn.Embedding, buffer: _GradientBuffer
    ) -> torch.Tensor:
        ctx.save_for_backward(ids)
        ctx.embedding, ctx.buffer = embedding, buffer
        return torch.nn.functional.embedding(ids, embedding.weight.detach(), embedding.padding_idx)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[None, None, None, None]:
        (ids,) = ctx.saved_tensors
        weight, padding_idx = ctx.embedding.weight, ctx.embedding.padding_idx
        rows, values = ids.reshape(-1), grad.reshape(-1, grad.shape[-1]).to(weight.dtype)
        if padding_idx is not None:  # as F.embedding: the padding row gets no gradient
            keep = rows != padding_idx
            rows, values = rows[keep], values[keep]
        if (target := ctx.buffer.current()) is None:  # no head in this graph (or it ran under autocast, below)
            target = ctx.buffer.start().zero_()
        target.index_add_(0, rows, values)
        return None, None, None, None


def _training(weight: torch.nn.Parameter) -> bool:
    return torch.is_grad_enabled() and weight.requires_grad


def _embedding_forward(embedding: torch.nn.Embedding, buffer: _GradientBuffer, ids: torch.Tensor) -> torch.Tensor:
    if not _training(embedding.weight):
        return type(embedding).forward(embedding, ids)
    anchor = torch.empty(0, device=embedding.weight.device, requires_grad=True)
    return _EmbeddingRowsIntoGradient.apply(anchor, ids, embedding, buffer)


def _head_forward(head: torch.nn.Linear, buffer: _GradientBuffer, hidden: torch.Tensor) -> torch.Tensor:
    """Under autocast the head keeps its own forward: autograd then accumulates its (bf16 -> fp32 cast, so fresh)
    gradient into `.grad` before the embedding's backward adds the rows, which also works."""
    if not _training(head.weight) or torch.is_autocast_enabled(hidden.device.type):
        return type(head).forward(head, hidden)
    return _HeadIntoGradient.apply(hidden.contiguous(), head, buffer)


def tied_embedding_gradient(model: torch.nn.Module, *, single_process: bool) -> TiedGradientMode | None:
    """Set up the cheaper gradient for a tied, trainable embedding (see the module docstring).

    Call it on the unwrapped model after `accelerate.prepare` (DDP then sees the model as it was built). Returns
    the mode applied, or None when the model has no tied trainable `nn.Embedding` / bias-free `nn.Linear` head,
    or uses options this does not reproduce (`max_norm`, `scale_grad_by_freq`, an already sparse embedding).
    """
    from qadistill.train.answer_logits import core_model

    core = core_model(model)
    embedding, head = core.get_input_embeddings(), core.get_output_embeddings()
    if type(embedding) is not torch.nn.Embedding or type(head) is not torch.nn.Linear or head.bias is not None:
        return None
    if embedding.weight is not head.weight or not embedding.weight.requires_grad:
        return None
    if embedding.max_norm is not None or embedding.scale_grad_by_freq or embedding.sparse:
        return None
    replaced = "forward" in embedding.__dict__ or "forward" in head.__dict__  # e.g. accelerate's device-map hooks
    if single_process and not replaced:
        buffer = _GradientBuffer(embedding.weight)
        embedding.forward = functools.partial(_embedding_forward, embedding, buffer)
        head.forward = functools.partial(_head_forward, head, buffer)
        return "in_place"
    embedding.sparse = True
    return "sparse"
