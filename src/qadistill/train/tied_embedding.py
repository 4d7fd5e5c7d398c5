"""The gradient of a weight shared by the input embedding and the LM head (Qwen2.5 0.5B-3B, SmolLM2, test models).

The head's gradient is dense (V x H: every vocabulary row gets some of the softmax); the embedding's touches only
the rows of the batch's tokens. Left alone, autograd builds a dense V x H zero gradient for the embedding, fills
those rows and adds the two V x H tensors into a third: with a 152k vocabulary, two ~80 MB tensors more than the
gradient itself at the step's memory peak, and a fresh one every step, which the allocator places wherever the
step's smaller tensors left room (on the CPU the heap grows by another gradient's size). Three ways around it:

* `factored` (one process, fp32, fused AdamW): the gradient is never made whole. The head's part is the product
  G^T X of the logits' gradient G (N x V) and the head's input X (N x H), kept as those two factors (N answer
  positions: far fewer than H in QA distillation); the embedding's part as its rows. Clipping takes the norm and
  AdamW the update a block of rows at a time, each block's gradient made from the factors when it is needed
  (`adamw_rows.py`), so the V x H gradient buffer (~80 MB for a 152k x 128 embedding, ~550 MB for Qwen2.5-0.5B's)
  never exists. When a window's factors would outgrow the dense gradient they are folded into one.
  The training loop asks for this and calls `clip_gradients(..., tied)` / `finish_window(..., tied)`.
* `in_place` (one process otherwise): the weight leaves autograd's accumulation. The head's backward writes its
  product into one gradient buffer kept for the whole run (overwriting it when `.grad` was reset, adding to it in a
  gradient-accumulation window) and the embedding's backward adds the batch's rows into it (the head runs last
  in the forward, so its backward runs first). No V x H tensor besides the gradient, and the same one each step.
* DDP (`sparse`): DDP reduces a gradient when autograd accumulates it, so both parts must reach autograd; a
  sparse embedding gradient at least saves the dense zero tensor.

Never under FSDP or DeepSpeed, which own the gradients.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Literal

import torch

from qadistill.train.adamw_rows import begin_row_update, supports_row_updates, update_rows

TiedGradientMode = Literal["factored", "in_place", "sparse"]
BLOCK_BYTES = {"cpu": 2**21}
"""Size of the row blocks in which a factored gradient is made: 2 MiB on the CPU (stays in cache), else 64 MiB
(fewer kernel launches on a GPU)."""


def _rows_without_padding(ids: torch.Tensor, grad: torch.Tensor, embedding: torch.nn.Embedding):
    """The embedding's gradient as (row ids, rows); as F.embedding, the padding row gets none."""
    rows, values = ids.reshape(-1), grad.reshape(-1, grad.shape[-1]).to(embedding.weight.dtype)
    if embedding.padding_idx is not None:
        keep = rows != embedding.padding_idx
        rows, values = rows[keep], values[keep]
    return rows, values


@dataclass
class _GradientBuffer:
    """`in_place`: the tied weight's gradient storage, reused by every step (the optimizer resets `.grad`)."""

    weight: torch.nn.Parameter
    storage: torch.Tensor | None = None

    def _start(self) -> torch.Tensor:
        """An uninitialised buffer that becomes `weight.grad`; the caller fills all of it."""
        if self.storage is None or self.storage.shape != self.weight.shape:
            self.storage = torch.empty_like(self.weight, memory_format=torch.contiguous_format)
        self.weight.grad = self.storage
        return self.storage

    def add_head(self, grad: torch.Tensor, hidden: torch.Tensor) -> None:
        """Add G^T X (grad: N x V, hidden: N x H)."""
        if (existing := self.weight.grad) is None:
            torch.mm(grad.t(), hidden, out=self._start())
        else:
            existing.addmm_(grad.t(), hidden)

    def add_rows(self, rows: torch.Tensor, values: torch.Tensor) -> None:
        if (target := self.weight.grad) is None:  # no head in this graph (or it ran under autocast)
            target = self._start().zero_()
        target.index_add_(0, rows, values)


@dataclass
class FactoredGradient:
    """`factored`: one accumulation window's gradient of the tied weight as head factors and embedding rows."""

    weight: torch.nn.Parameter
    heads: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)  # (G: N x V, X: N x H)
    rows: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)  # (ids: M, values: M x H)
    dense: torch.Tensor | None = None  # the factors folded in, once they outgrew it
    scale: float = 1.0  # the clipping factor, applied as each block is made
    _sorted: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def pending(self) -> bool:
        return bool(self.heads or self.rows) or self.dense is not None

    def add_head(self, grad: torch.Tensor, hidden: torch.Tensor) -> None:
        self.heads.append((grad.detach(), hidden.detach()))  # the saved input still has its grad_fn
        vocab, width = self.weight.shape
        if self.dense is not None or sum(g.shape[0] for g, _ in self.heads) * (vocab + width) > vocab * width:
            self._fold()  # never more than one dense gradient's worth of factors

    def add_rows(self, rows: torch.Tensor, values: torch.Tensor) -> None:
        self.rows.append((rows, values.detach()))
        self._sorted = None

    def _fold(self) -> None:
        if self.dense is None:
            self.dense = torch.zeros_like(self.weight, memory_format=torch.contiguous_format)
        for grad, hidden in self.heads:
            self.dense.addmm_(grad.t(), hidden)
        self.heads.clear()

    def blocks(self) -> list[slice]:
        vocab, width = self.weight.shape
        block_bytes = BLOCK_BYTES.get(self.weight.device.type, 2**26)
        size = max(1, block_bytes // (width * self.weight.element_size()))
        return [slice(start, min(start + size, vocab)) for start in range(0, vocab, size)]

    def block(self, rows: slice) -> torch.Tensor:
        """The gradient of `weight[rows]` (times `scale`): head factors first, then the embedding's rows."""
        heads = self.heads
        if self.dense is not None:
            out = self.dense[rows].clone()
        elif heads:  # the first product is written, not added to zeros
            out, heads = torch.mm(heads[0][0][:, rows].t(), heads[0][1]), heads[1:]
        else:
            out = self.weight.new_zeros(rows.stop - rows.start, self.weight.shape[1])
        for grad, hidden in heads:
            out.addmm_(grad[:, rows].t(), hidden)
        ids, values = self._sorted_rows()
        lo, hi = torch.searchsorted(ids, torch.tensor([rows.start, rows.stop], device=ids.device)).tolist()
        if hi > lo:
            out.index_add_(0, ids[lo:hi] - rows.start, values[lo:hi])
        return out.mul_(self.scale) if self.scale != 1.0 else out

    def _sorted_rows(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._sorted is None:
            width = self.weight.shape[1]
            ids = torch.cat([r for r, _ in self.rows]) if self.rows else self.weight.new_empty(0, dtype=torch.long)
            values = torch.cat([v for _, v in self.rows]) if self.rows else self.weight.new_empty(0, width)
            order = ids.argsort(stable=True)
            self._sorted = (ids[order], values[order])
        return self._sorted

    @torch.no_grad()
    def norm(self) -> torch.Tensor:
        """The 2-norm of the whole gradient, block by block."""
        block_norms = torch.stack([torch.linalg.vector_norm(self.block(rows)) for rows in self.blocks()])
        return torch.linalg.vector_norm(block_norms)

    @torch.no_grad()
    def step(self, optimizer: Any) -> None:
        """The AdamW update of the whole weight, block by block (after the optimizer's own step)."""
        state, group = begin_row_update(optimizer, self.weight)
        for rows in self.blocks():
            update_rows(self.weight, state, group, rows, self.block(rows))

    def clear(self) -> None:
        self.heads.clear()
        self.rows.clear()
        self.dense, self.scale, self._sorted = None, 1.0, None


class _EmbeddingRowsIntoGradient(torch.autograd.Function):
    """Embedding lookup whose backward hands the rows' gradient to the sink (buffer or factors).

    `anchor` is an empty tensor that requires grad: it puts the output into the graph without making the weight
    an input of it (the weight is reached through the module, which autograd does not look into).
    """

    @staticmethod
    def forward(ctx, anchor: torch.Tensor, ids: torch.Tensor, embedding: torch.nn.Embedding, sink) -> torch.Tensor:
        ctx.save_for_backward(ids)
        ctx.embedding, ctx.sink = embedding, sink
        return torch.nn.functional.embedding(ids, embedding.weight.detach(), embedding.padding_idx)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[None, None, None, None]:
        (ids,) = ctx.saved_tensors
        ctx.sink.add_rows(*_rows_without_padding(ids, grad, ctx.embedding))
        return None, None, None, None


class _HeadIntoGradient(torch.autograd.Function):
    """`F.linear(hidden, weight)`; the backward hands the weight's gradient factors to the sink itself."""

    @staticmethod
    def forward(ctx, hidden: torch.Tensor, head: torch.nn.Linear, sink) -> torch.Tensor:
        ctx.save_for_backward(hidden)
        ctx.head, ctx.sink = head, sink
        return torch.nn.functional.linear(hidden, head.weight.detach())

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None]:
        (hidden,) = ctx.saved_tensors
        ctx.sink.add_head(grad.reshape(-1, grad.shape[-1]), hidden.reshape(-1, hidden.shape[-1]))
        grad_hidden = grad @ ctx.head.weight.detach() if ctx.needs_input_grad[0] else None
        return grad_hidden, None, None


def _training(weight: torch.nn.Parameter) -> bool:
    return torch.is_grad_enabled() and weight.requires_grad


def _embedding_forward(embedding: torch.nn.Embedding, sink, ids: torch.Tensor) -> torch.Tensor:
    if not _training(embedding.weight):
        return type(embedding).forward(embedding, ids)
    anchor = torch.empty(0, device=embedding.weight.device, requires_grad=True)
    return _EmbeddingRowsIntoGradient.apply(anchor, ids, embedding, sink)


def _head_forward(head: torch.nn.Linear, sink, hidden: torch.Tensor) -> torch.Tensor:
    """Under autocast the head keeps its own forward (`in_place` only): autograd then accumulates its (bf16 ->
    fp32 cast, so fresh) gradient into `.grad` before the embedding's backward adds the rows, which also works."""
    if not _training(head.weight):
        return type(head).forward(head, hidden)
    if torch.is_autocast_enabled(hidden.device.type):
        if isinstance(sink, FactoredGradient):
            raise RuntimeError("the factored tied-embedding gradient is for fp32 training; autocast is on")
        return type(head).forward(head, hidden)
    return _HeadIntoGradient.apply(hidden.contiguous(), head, sink)


@dataclass
class TiedGradient:
    """What `tied_embedding_gradient` set up; `factored` is the window's gradient in factored mode, else None."""

    mode: TiedGradientMode
    factored: FactoredGradient | None = None


def tied_embedding_gradient(
    model: torch.nn.Module, *, single_process: bool, optimizer: Any = None
) -> TiedGradient | None:
    """Set up the cheaper gradient for a tied, trainable embedding (see the module docstring).

    Call it on the unwrapped model after `accelerate.prepare` (DDP then sees the model as it was built). Pass the
    optimizer for `factored` mode (fp32 runs only: the caller's choice; it needs a fused AdamW). Returns what was
    set up, or None when the model has no tied trainable `nn.Embedding` / bias-free `nn.Linear` head, or uses
    options this does not reproduce (`max_norm`, `scale_grad_by_freq`, an already sparse embedding).
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
        if optimizer is not None and supports_row_updates(optimizer) and embedding.weight.dtype == torch.float32:
            sink = FactoredGradient(embedding.weight)
            tied = TiedGradient("factored", sink)
        else:
            sink = _GradientBuffer(embedding.weight)
            tied = TiedGradient("in_place")
        embedding.forward = functools.partial(_embedding_forward, embedding, sink)
        head.forward = functools.partial(_head_forward, head, sink)
        return tied
    embedding.sparse = True
    return TiedGradient("sparse")
