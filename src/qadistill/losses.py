"""Distillation losses: token-level divergences between teacher and student next-token distributions.

Follows DistiLLM (Ko et al. 2024): besides forward/reverse KL it offers the *skew* KL (SKL) and skew reverse KL
(SRKL), whose mixture in the second argument keeps the divergence finite and its gradient bounded when the student
puts (almost) no mass where the teacher does, or vice versa.

Conventions shared by every divergence here:

* ``p`` is the teacher, ``q`` the student: ``p = softmax(teacher_logits / T)``, ``q = softmax(student_logits / T)``.
* Dense forms take ``(student_logits, teacher_logits, mask)`` with shapes ``(..., V)``, ``(..., V)``, ``(...)``
  (normally ``(B, T, V)`` and ``(B, T)``) and return the mean over positions where ``mask`` is true of the
  per-position divergence, in nats, as a 0-dim float32 tensor (float64 if the inputs are float64).
* Masked positions are *selected first* (``logits[mask]``), so whatever sits at other positions, NaN included,
  never enters the computation and gets an exact zero gradient. An empty mask gives 0 (still attached to the
  student's graph), never NaN.
* The arithmetic is done in fp32 log space (bf16/fp16 inputs are upcast after selection). ``-inf`` logits (masked
  vocabulary entries) are replaced by the most negative finite number, which ``exp`` turns into an exact 0, so
  ``0 * log 0`` terms vanish without NaN values or NaN gradients. A divergence that is truly infinite (e.g. forward
  KL where the teacher has mass on a token the student gives probability exactly 0) comes out as a huge finite
  number (~1e38) or ``+inf``, never NaN; the skew forms are finite there (``alpha > 0``).
* The teacher never receives gradient (detached inside). No ``T**2`` factor is applied; that is the caller's choice.

Sparse forms (``sparse_*``) take a cached teacher stored as top-k ids and log-probabilities per position; see
:func:`sparse_forward_kl` for the exact semantics.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, overload

import torch
import torch.nn.functional as F

Divergence = Callable[..., torch.Tensor]

__all__ = [
    "DIVERGENCES",
    "ROW_KERNELS",
    "SPARSE_DIVERGENCES",
    "Divergence",
    "answer_cross_entropy",
    "distillation_loss",
    "forward_kl",
    "get_divergence",
    "get_sparse_divergence",
    "jsd",
    "reverse_kl",
    "skew_forward_kl",
    "skew_reverse_kl",
    "sparse_forward_kl",
    "sparse_jsd",
    "sparse_reverse_kl",
    "sparse_skew_forward_kl",
    "sparse_skew_reverse_kl",
    "sparse_tvd",
    "tvd",
]


# ---------------------------------------------------------------------------------------------------------------
# Helpers: selection, dtype, log-probabilities
# ---------------------------------------------------------------------------------------------------------------


def working_dtype(dtype: torch.dtype) -> torch.dtype:
    """fp32 for everything except float64, which is kept (lets tests use gradcheck)."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _neg_big(dtype: torch.dtype) -> float:
    """Stand-in for log 0: finite, so no inf - inf, and exp() of it is exactly 0."""
    return torch.finfo(dtype).min


def as_bool_mask(mask: torch.Tensor, leading_shape: torch.Size, what: str) -> torch.Tensor:
    if tuple(mask.shape) != tuple(leading_shape):
        raise ValueError(f"mask has shape {tuple(mask.shape)} but {what} has leading shape {tuple(leading_shape)}")
    return mask if mask.dtype == torch.bool else mask != 0


def check_temperature(temperature: float) -> None:
    if not temperature > 0 or not math.isfinite(temperature):
        raise ValueError(f"temperature must be a positive finite number, got {temperature!r}")


def check_weight(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value!r}")


def scaled_logits(selected: torch.Tensor, temperature: float) -> torch.Tensor:
    """(N, V) selected logits -> fp32 logits / T with -inf replaced by the finite stand-in for log 0."""
    z = selected.to(working_dtype(selected.dtype))
    if temperature != 1.0:
        z = z / temperature
    return z.clamp(min=_neg_big(z.dtype))  # only -inf moves (NaN stays NaN); its gradient is 0, as masking


def _log_mix(la: torch.Tensor, lb: torch.Tensor, w: float) -> torch.Tensor:
    """log(w * exp(la) + (1 - w) * exp(lb)), elementwise and stable (pairwise logsumexp)."""
    if w == 0.0:
        return lb
    if w == 1.0:
        return la
    return torch.logaddexp(la + math.log(w), lb + math.log1p(-w))


# ---------------------------------------------------------------------------------------------------------------
# Row kernels: (lq, lp) log-probabilities of shape (N, C) -> per-row divergence (N,)
# ---------------------------------------------------------------------------------------------------------------


def _kl_rows(la: torch.Tensor, lb: torch.Tensor) -> torch.Tensor:
    """KL(a || b) per row from log-probabilities. Rows where a = 0 contribute 0 * finite = 0."""
    return (la.exp() * (la - lb)).sum(-1)


def _rows_forward_kl(lq: torch.Tensor, lp: torch.Tensor) -> torch.Tensor:
    return _kl_rows(lp, lq)


def _rows_reverse_kl(lq: torch.Tensor, lp: torch.Tensor) -> torch.Tensor:
    return _kl_rows(lq, lp)


def _rows_skl(lq: torch.Tensor, lp: torch.Tensor, alpha: float = 0.1) -> torch.Tensor:
    check_weight("alpha", alpha)
    return _kl_rows(lp, _log_mix(lp, lq, alpha))


def _rows_srkl(lq: torch.Tensor, lp: torch.Tensor, alpha: float = 0.1) -> torch.Tensor:
    check_weight("alpha", alpha)
    # The mixture keeps its dependence on q: the gradient flows through both arguments of the KL.
    return _kl_rows(lq, _log_mix(lq, lp, alpha))


def _rows_jsd(lq: torch.Tensor, lp: torch.Tensor, beta: float = 0.5) -> torch.Tensor:
    check_weight("beta", beta)
    lm = _log_mix(lp, lq, beta)
    return beta * _kl_rows(lp, lm) + (1.0 - beta) * _kl_rows(lq, lm)


def _rows_tvd(lq: torch.Tensor, lp: torch.Tensor) -> torch.Tensor:
    return 0.5 * (lp.exp() - lq.exp()).abs().sum(-1)


def _mean_rows(per_row: torch.Tensor) -> torch.Tensor:
    """Mean over rows; an empty selection gives 0 that is still connected to the graph."""
    return per_row.sum() / max(per_row.shape[0], 1)


# ---------------------------------------------------------------------------------------------------------------
# Dense divergences
# ---------------------------------------------------------------------------------------------------------------


def _dense(
    kernel: Callable[..., torch.Tensor],
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    mask: torch.Tensor,
    temperature: float,
    **params: Any,
) -> torch.Tensor:
    check_temperature(temperature)
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student logits {tuple(student_logits.shape)} and teacher logits {tuple(teacher_logits.shape)} "
            "differ in shape (slice both to the shared vocabulary first)"
        )
    mask = as_bool_mask(mask, student_logits.shape[:-1], "the logits")
    lq = F.log_softmax(scaled_logits(student_logits[mask], temperature), dim=-1)
    with torch.no_grad():
        lp = F.log_softmax(scaled_logits(teacher_logits.detach()[mask], temperature), dim=-1).to(lq.dtype)
    return _mean_rows(kernel(lq, lp, **params))


def forward_kl(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor, *, temperature: float = 1.0
) -> torch.Tensor:
    """Forward KL(p || q): mode-covering; the classic word-level KD objective."""
    return _dense(_rows_forward_kl, student_logits, teacher_logits, mask, temperature)


def reverse_kl(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor, *, temperature: float = 1.0
) -> torch.Tensor:
    """Reverse KL(q || p), the true KL (student entropy term included): mode-seeking."""
    return _dense(_rows_reverse_kl, student_logits, teacher_logits, mask, temperature)


def skew_forward_kl(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    mask: torch.Tensor,
    *,
    temperature: float = 1.0,
    alpha: float = 0.1,
) -> torch.Tensor:
    """DistiLLM's skew KL (SKL): KL(p || alpha p + (1 - alpha) q). alpha = 0 is the forward KL."""
    return _dense(_rows_skl, student_logits, teacher_logits, mask, temperature, alpha=alpha)


def skew_reverse_kl(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    mask: torch.Tensor,
    *,
    temperature: float = 1.0,
    alpha: float = 0.1,
) -> torch.Tensor:
    """DistiLLM's skew reverse KL (SRKL): KL(q || (1 - alpha) p + alpha q). alpha = 0 is the reverse KL.

    The gradient flows through q in both places (the first argument and inside the mixture).
    """
    return _dense(_rows_srkl, student_logits, teacher_logits, mask, temperature, alpha=alpha)


def jsd(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    mask: torch.Tensor,
    *,
    temperature: float = 1.0,
    beta: float = 0.5,
) -> torch.Tensor:
    """Generalised Jensen-Shannon: beta KL(p || M) + (1 - beta) KL(q || M), M = beta p + (1 - beta) q (<= ln 2)."""
    return _dense(_rows_jsd, student_logits, teacher_logits, mask, temperature, beta=beta)


def tvd(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, mask: torch.Tensor, *, temperature: float = 1.0
) -> torch.Tensor:
    """Total variation distance 1/2 sum |p - q| (in [0, 1])."""
    return _dense(_rows_tvd, student_logits, teacher_logits, mask, temperature)


# ---------------------------------------------------------------------------------------------------------------
# Sparse (top-k cached teacher) divergences
# ---------------------------------------------------------------------------------------------------------------


def _teacher_tail(lt_k: torch.Tensor, vocab_size: int) -> torch.Tensor:
    """log(1 - sum exp(lt_k)) per row, (N, 1); the stand-in for log 0 when the top-k mass rounds to >= 1.

    Done in float64: the tail is a difference of numbers near 1, so fp32 would lose most of its digits.
    """
    neg_big = _neg_big(lt_k.dtype)
    k = lt_k.shape[-1]
    if k >= vocab_size:  # no outcome left in the tail: its mass is 0 by definition, not the rounding residue
        return lt_k.new_full((lt_k.shape[0], 1), neg_big)
    lse = torch.logsumexp(lt_k.double(), dim=-1, keepdim=True).clamp(max=0.0)
    mass = -torch.expm1(lse)
    tail = torch.where(mass > 0, torch.log(mass.clamp(min=torch.finfo(torch.float64).tiny)), neg_big)
    return tail.to(lt_k.dtype).clamp(min=neg_big)


def _sparse(
    kernel: Callable[..., torch.Tensor],
    student_logits: torch.Tensor,
    teacher_topk_ids: torch.Tensor,
    teacher_topk_logprobs: torch.Tensor,
    mask: torch.Tensor,
    temperature: float,
    teacher_tail_logprobs: torch.Tensor | None,
    **params: Any,
) -> torch.Tensor:
    check_temperature(temperature)
    if teacher_topk_ids.shape != teacher_topk_logprobs.shape:
        raise ValueError(
            f"teacher top-k ids {tuple(teacher_topk_ids.shape)} and log-probs "
            f"{tuple(teacher_topk_logprobs.shape)} differ in shape"
        )
    if teacher_topk_ids.shape[:-1] != student_logits.shape[:-1]:
        raise ValueError(
            f"teacher top-k tensors {tuple(teacher_topk_ids.shape)} do not match student logits "
            f"{tuple(student_logits.shape)} in their leading dimensions"
        )
    vocab_size, k = student_logits.shape[-1], teacher_topk_ids.shape[-1]
    if not 1 <= k <= vocab_size:
        raise ValueError(f"top-k size {k} must be between 1 and the vocabulary size {vocab_size}")
    mask = as_bool_mask(mask, student_logits.shape[:-1], "the logits")

    ids = teacher_topk_ids[mask].long()
    z = scaled_logits(student_logits[mask], temperature)
    neg_big = _neg_big(z.dtype)
    lse_all = torch.logsumexp(z, dim=-1, keepdim=True)
    ls_k = z.gather(-1, ids) - lse_all
    if k >= vocab_size:
        ls_tail = z.new_full((z.shape[0], 1), neg_big)
    else:
        # Student tail mass, computed directly over the non-top-k entries (no 1 - sum cancellation).
        ls_tail = torch.logsumexp(z.scatter(-1, ids, neg_big), dim=-1, keepdim=True) - lse_all
    lq = torch.cat([ls_k, ls_tail], dim=-1).clamp(min=neg_big)

    with torch.no_grad():
        lt_k = teacher_topk_logprobs.detach()[mask].to(z.dtype)
        lt_k = lt_k.masked_fill(torch.isneginf(lt_k), neg_big)
        if teacher_tail_logprobs is not None:
            as_bool_mask(teacher_tail_logprobs, student_logits.shape[:-1], "the logits (teacher tail)")
            lt_tail = teacher_tail_logprobs.detach()[mask].to(z.dtype).unsqueeze(-1)
            lt_tail = lt_tail.masked_fill(torch.isneginf(lt_tail), neg_big)
        else:
            lt_tail = _teacher_tail(lt_k, vocab_size)
        lp = torch.cat([lt_k, lt_tail], dim=-1)
    return _mean_rows(kernel(lq, lp, **params))


_SPARSE_DOC = """

    Sparse form for a cached teacher. ``student_logits`` is dense ``(..., V)``; ``teacher_topk_ids`` ``(..., k)``
    int64 (distinct ids per position) and ``teacher_topk_logprobs`` ``(..., k)`` hold the teacher's top-k tokens and
    their log-probabilities, a log-softmax over the FULL vocabulary. Both distributions are collapsed onto k + 1
    outcomes, the k ids plus one "tail" bucket: the teacher's tail mass is ``1 - sum exp(topk_logprobs)`` (computed
    in float64; 0 when k = V or when it rounds to <= 0) unless ``teacher_tail_logprobs`` ``(...)`` gives its log
    directly (better when the cache can store it, computed stably); the student's is a log-sum-exp over its
    non-top-k logits. The divergence is then computed on the two (k + 1)-outcome distributions.

    This is exact when the teacher puts all its mass on the k ids (tail = 0) and otherwise a lower bound on the
    dense divergence, by the data-processing inequality (collapsing outcomes cannot increase an f-divergence).

    ``temperature`` scales the student logits only: the cached log-probs must already be at that temperature,
    i.e. ``log_softmax(teacher_logits / T)`` over the full vocabulary. A cache built at T = 1 is only valid with
    ``temperature=1`` (re-normalising needs the full teacher row).
    """


def sparse_forward_kl(
    student_logits: torch.Tensor,
    teacher_topk_ids: torch.Tensor,
    teacher_topk_logprobs: torch.Tensor,
    mask: torch.Tensor,
    *,
    temperature: float = 1.0,
    teacher_tail_logprobs: torch.Tensor | None = None,
) -> torch.Tensor:
    """Forward KL(p || q) against a top-k cached teacher."""
    return _sparse(
        _rows_forward_kl,
        student_logits,
        teacher_topk_ids,
        teacher_topk_logprobs,
        mask,
        temperature,
        teacher_tail_logprobs,
    )


def sparse_reverse_kl(
    student_logits: torch.Tensor,
    teacher_topk_ids: torch.Tensor,
    teacher_topk_logprobs: torch.Tensor,
    mask: torch.Tensor,
    *,
    temperature: float = 1.0,
    teacher_tail_logprobs: torch.Tensor | None = None,
) -> torch.Tensor:
    """Reverse KL(q || p) against a top-k cached teacher.

    Caution: if the cached top-k mass rounds to 1 the teacher tail is 0 and any student tail mass makes this
    huge (the true reverse KL against that teacher is infinite); prefer SRKL, or pass ``teacher_tail_logprobs``.
    """
    return _sparse(
        _rows_reverse_kl,
        student_logits,
        teacher_topk_ids,
        teacher_topk_logprobs,
        mask,
        temperature,
        teacher_tail_logprobs,
    )


def sparse_skew_forward_kl(
    student_logits: torch.Tensor,
    teacher_topk_ids: torch.Tensor,
    teacher_topk_logprobs: torch.Tensor,
    mask: torch.Tensor,
    *,
    temperature: float = 1.0,
    alpha: float = 0.1,
    teacher_tail_logprobs: torch.Tensor | None = None,
) -> torch.Tensor:
    """Skew KL (SKL) KL(p || alpha p + (1 - alpha) q) against a top-k cached teacher."""
    return _sparse(
        _rows_skl,
        student_logits,
        teacher_topk_ids,
        teacher_topk_logprobs,
        mask,
        temperature,
        teacher_tail_logprobs,
        alpha=alpha,
    )


def sparse_skew_reverse_kl(
    student_logits: torch.Tensor,
    teacher_topk_ids: torch.Tensor,
    teacher_topk_logprobs: torch.Tensor,
    mask: torch.Tensor,
    *,
    temperature: float = 1.0,
    alpha: float = 0.1,
    teacher_tail_logprobs: torch.Tensor | None = None,
) -> torch.Tensor:
    """Skew reverse KL (SRKL) KL(q || (1 - alpha) p + alpha q) against a top-k cached teacher."""
    return _sparse(
        _rows_srkl,
        student_logits,
        teacher_topk_ids,
        teacher_topk_logprobs,
        mask,
        temperature,
        teacher_tail_logprobs,
        alpha=alpha,
    )


def sparse_jsd(
    student_logits: torch.Tensor,
    teacher_topk_ids: torch.Tensor,
    teacher_topk_logprobs: torch.Tensor,
    mask: torch.Tensor,
    *,
    temperature: float = 1.0,
    beta: float = 0.5,
    teacher_tail_logprobs: torch.Tensor | None = None,
) -> torch.Tensor:
    """Generalised Jensen-Shannon divergence against a top-k cached teacher."""
    return _sparse(
        _rows_jsd,
        student_logits,
        teacher_topk_ids,
        teacher_topk_logprobs,
        mask,
        temperature,
        teacher_tail_logprobs,
        beta=beta,
    )


def sparse_tvd(
    student_logits: torch.Tensor,
    teacher_topk_ids: torch.Tensor,
    teacher_topk_logprobs: torch.Tensor,
    mask: torch.Tensor,
    *,
    temperature: float = 1.0,
    teacher_tail_logprobs: torch.Tensor | None = None,
) -> torch.Tensor:
    """Total variation distance against a top-k cached teacher."""
    return _sparse(
        _rows_tvd,
        student_logits,
        teacher_topk_ids,
        teacher_topk_logprobs,
        mask,
        temperature,
        teacher_tail_logprobs,
    )


for _fn in (
    sparse_forward_kl,
    sparse_reverse_kl,
    sparse_skew_forward_kl,
    sparse_skew_reverse_kl,
    sparse_jsd,
    sparse_tvd,
):
    _fn.__doc__ = (_fn.__doc__ or "") + _SPARSE_DOC
del _fn


# ---------------------------------------------------------------------------------------------------------------
# Registries, cross-entropy and the CE/KD mix
# ---------------------------------------------------------------------------------------------------------------

DIVERGENCES: dict[str, Divergence] = {
    "forward_kl": forward_kl,
    "reverse_kl": reverse_kl,
    "skl": skew_forward_kl,
    "srkl": skew_reverse_kl,
    "jsd": jsd,
    "tvd": tvd,
}

ROW_KERNELS: dict[str, Callable[..., torch.Tensor]] = {
    "forward_kl": _rows_forward_kl,
    "reverse_kl": _rows_reverse_kl,
    "skl": _rows_skl,
    "srkl": _rows_srkl,
    "jsd": _rows_jsd,
    "tvd": _rows_tvd,
}
"""Per-row kernels `(lq, lp, **params) -> (N,)` behind the dense divergences, for `qadistill.objective`."""

SPARSE_DIVERGENCES: dict[str, Divergence] = {
    "forward_kl": sparse_forward_kl,
    "reverse_kl": sparse_reverse_kl,
    "skl": sparse_skew_forward_kl,
    "srkl": sparse_skew_reverse_kl,
    "jsd": sparse_jsd,
    "tvd": sparse_tvd,
}


def get_divergence(name: str) -> Divergence:
    """The dense divergence registered under `name`; ValueError naming the valid ones otherwise."""
    try:
        return DIVERGENCES[name]
    except KeyError:
        raise ValueError(f"unknown divergence {name!r}; valid names: {', '.join(DIVERGENCES)}") from None


def get_sparse_divergence(name: str) -> Divergence:
    """The sparse (top-k teacher) divergence registered under `name`; ValueError naming the valid ones otherwise."""
    try:
        return SPARSE_DIVERGENCES[name]
    except KeyError:
        valid = ", ".join(SPARSE_DIVERGENCES)
        raise ValueError(f"unknown sparse divergence {name!r}; valid names: {valid}") from None


def answer_cross_entropy(student_logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean token cross-entropy (nats, temperature 1) over positions where `mask` is true; also the SFT loss.

    No shifting happens here: ``labels[..., t]`` must be the token that ``student_logits[..., t, :]`` predicts, and
    must be a valid id wherever ``mask`` is true. An empty mask gives 0, attached to the graph.
    """
    mask = as_bool_mask(mask, student_logits.shape[:-1], "the logits")
    if labels.shape != mask.shape:
        raise ValueError(f"labels have shape {tuple(labels.shape)}, expected {tuple(mask.shape)}")
    z = student_logits[mask]
    z = z.to(working_dtype(z.dtype))
    total = F.cross_entropy(z, labels[mask].long(), reduction="sum")
    return total / max(z.shape[0], 1)


@overload
def distillation_loss(ce_loss: torch.Tensor, divergence_value: torch.Tensor, kd_ratio: float) -> torch.Tensor: ...


@overload
def distillation_loss(ce_loss: float, divergence_value: float, kd_ratio: float) -> float: ...


def distillation_loss(
    ce_loss: torch.Tensor | float, divergence_value: torch.Tensor | float, kd_ratio: float
) -> torch.Tensor | float:
    """(1 - kd_ratio) * CE + kd_ratio * divergence: the one place where the two objectives are mixed.

    At kd_ratio 0 or 1 the unused term is dropped rather than multiplied by 0 (so an infinite term cannot
    turn the loss into NaN).
    """
    check_weight("kd_ratio", kd_ratio)
    if kd_ratio == 0.0:
        return ce_loss
    if kd_ratio == 1.0:
        return divergence_value
    return (1.0 - kd_ratio) * ce_loss + kd_ratio * divergence_value
