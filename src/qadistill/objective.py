"""The training objective at the answer positions, computed a few rows at a time together with its gradient.

`answer_objective` returns the same loss, and gives the logits the same gradient, as the pure functions in
`qadistill.losses` composed by hand::

    distillation_loss(answer_cross_entropy(logits, labels, mask),
                      get_divergence(name)(logits[..., :vocab], teacher[..., :vocab], mask, ...), kd_ratio)

(tests check both against each other for every divergence). What differs is memory and speed: with a 152k-row
vocabulary every (N, V) temporary of that composition (upcast, log-softmax of student and teacher, exp,
differences, products and as many again in backward) is ~20 MB for 32 answer tokens, and a dozen of them are
alive at once. Here they exist for `chunk_rows` rows at a time: each chunk's loss is differentiated right away
(`torch.autograd.grad`) into one gradient buffer the size of the logits, which backward hands on. The chunks
are small enough to stay in cache, so this is also faster on the CPU (measured with `benchmarks/distill_step.py`).

The gradient is only computed when it will be used (grad mode on and logits that require grad).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from qadistill.losses import (
    ROW_KERNELS,
    as_bool_mask,
    check_temperature,
    check_weight,
    distillation_loss,
    scaled_logits,
    working_dtype,
)

DEFAULT_CHUNK_ROWS = 4


class ObjectiveTerms(NamedTuple):
    """`loss` carries the gradient; `ce` and `divergence` are detached means over the answer tokens, for logs
    (`divergence` is None without a teacher)."""

    loss: torch.Tensor
    ce: torch.Tensor
    divergence: torch.Tensor | None


class _PrecomputedGradient(torch.autograd.Function):
    """Returns `value`; backward gives `logits` the gradient computed in forward, scaled by the incoming one."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, value: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(grad)
        return value.clone()

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        (grad,) = ctx.saved_tensors  # used once: scaled in place
        return grad.mul_(grad_output.to(grad.dtype)), None, None


def answer_objective(  # noqa: PLR0913  the loss terms, then keyword-only loss options with defaults
    student_logits: torch.Tensor,
    labels: torch.Tensor,
    mask: torch.Tensor,
    teacher_logits: torch.Tensor | None = None,
    *,
    divergence: str | None = None,
    kd_ratio: float = 0.0,
    temperature: float = 1.0,
    vocab: int | None = None,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    **params: Any,
) -> ObjectiveTerms:
    """(1 - kd_ratio) * CE + kd_ratio * divergence, both means over the positions where `mask` is true.

    `student_logits` (..., V) predict `labels` (...); CE uses the whole row at temperature 1, as
    `answer_cross_entropy`. The divergence (a name from `qadistill.losses.DIVERGENCES`, with `params` such as
    `alpha` or `beta`) compares the first `vocab` columns (default: all) of student and teacher at `temperature`.
    The teacher may be an inference-mode tensor; it gets no gradient. Without a teacher, only CE (kd_ratio 0).
    """
    check_weight("kd_ratio", kd_ratio)
    check_temperature(temperature)
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    mask = as_bool_mask(mask, student_logits.shape[:-1], "the logits")
    if labels.shape != mask.shape:
        raise ValueError(f"labels have shape {tuple(labels.shape)}, expected {tuple(mask.shape)}")
    kernel = _row_kernel(divergence, teacher_logits, kd_ratio)
    width = student_logits.shape[-1] if vocab is None else vocab
    if teacher_logits is not None:
        if teacher_logits.shape[:-1] != student_logits.shape[:-1]:
            raise ValueError(
                f"teacher logits {tuple(teacher_logits.shape)} and student logits {tuple(student_logits.shape)} "
                "differ in their leading dimensions"
            )
        if not 0 < width <= min(student_logits.shape[-1], teacher_logits.shape[-1]):
            raise ValueError(f"vocab {width} exceeds the logits' last dimension")

    students = student_logits.detach().reshape(-1, student_logits.shape[-1])
    teachers = None if teacher_logits is None else teacher_logits.detach().reshape(-1, teacher_logits.shape[-1])
    targets = labels.reshape(-1).long()
    rows = mask.reshape(-1).nonzero().squeeze(1)
    n = max(rows.numel(), 1)
    want_grad = torch.is_grad_enabled() and student_logits.requires_grad
    grad = _gradient_buffer(students, rows) if want_grad else None
    sums = {key: students.new_zeros((), dtype=torch.float64) for key in ("loss", "ce", "div")}
    for chunk in rows.split(chunk_rows):
        z = students.index_select(0, chunk).requires_grad_(want_grad)
        with torch.enable_grad() if want_grad else torch.no_grad():
            ce, div = _chunk_terms(z, targets[chunk], teachers, chunk, kernel, width, temperature, params)
            loss = (ce if div is None else distillation_loss(ce, div, kd_ratio)) / n
            if grad is not None:
                (grad_rows,) = torch.autograd.grad(loss, z)
                grad.index_copy_(0, chunk, grad_rows)
        sums["loss"] += loss.detach().double()
        sums["ce"] += ce.detach().double()
        if div is not None:
            sums["div"] += div.detach().double()
    working = working_dtype(students.dtype)
    value = sums["loss"].to(working)
    if grad is not None:
        value = _PrecomputedGradient.apply(student_logits, value, grad.view_as(student_logits))
    div_mean = (sums["div"] / n).to(working) if kernel is not None else None
    return ObjectiveTerms(value, (sums["ce"] / n).to(working), div_mean)


def _gradient_buffer(students: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """(N, V) buffer for the logits' gradient: the selected rows are written chunk by chunk, the others are 0."""
    if rows.numel() == students.shape[0]:  # every row selected (the common case): nothing to zero
        return torch.empty_like(students)
    return torch.zeros_like(students)


def _row_kernel(divergence: str | None, teacher_logits: torch.Tensor | None, kd_ratio: float):
    if divergence is None:
        if kd_ratio > 0.0:
            raise ValueError("kd_ratio > 0 needs a divergence and teacher logits")
        return None
    if divergence not in ROW_KERNELS:
        raise ValueError(f"unknown divergence {divergence!r}; valid names: {', '.join(ROW_KERNELS)}")
    if teacher_logits is None:
        raise ValueError(f"the divergence {divergence!r} needs teacher logits")
    return ROW_KERNELS[divergence]


def _chunk_terms(
    z: torch.Tensor,
    targets: torch.Tensor,
    teachers: torch.Tensor | None,
    chunk: torch.Tensor,
    kernel,
    width: int,
    temperature: float,
    params: dict[str, Any],
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Sums over the chunk's rows of CE and of the divergence (None without a kernel)."""
    if kernel is None or teachers is None:
        return _ce_sum(z, targets), None
    lq = F.log_softmax(scaled_logits(z[:, :width], temperature), dim=-1)
    with torch.no_grad():
        lp = F.log_softmax(scaled_logits(teachers.index_select(0, chunk)[:, :width], temperature), dim=-1)
    div = kernel(lq, lp.to(lq.dtype), **params).sum()
    if temperature == 1.0 and width == z.shape[-1]:  # CE from the same log-softmax
        picked = lq.gather(1, targets.unsqueeze(1)).squeeze(1)
        # a target whose logit is -inf has CE +inf (as F.cross_entropy), not the finite stand-in for log 0
        return -torch.where(torch.isneginf(z.gather(1, targets.unsqueeze(1)).squeeze(1)), -math.inf, picked).sum(), div
    return _ce_sum(z, targets), div


def _ce_sum(z: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(z.to(working_dtype(z.dtype)), targets, reduction="sum")
