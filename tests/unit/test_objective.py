"""answer_objective: the chunked CE/KD objective gives the pure losses' value and gradient, in less memory."""

from __future__ import annotations

import itertools

import pytest
import torch

from qadistill.losses import DIVERGENCES, answer_cross_entropy, distillation_loss, get_divergence
from qadistill.objective import answer_objective

B, A, V = 3, 5, 40


def _inputs(seed: int, *, teacher_extra: int = 0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    student = (torch.randn(B, A, V, generator=g) * 3).to(dtype)
    teacher = (torch.randn(B, A, V + teacher_extra, generator=g) * 3).to(dtype)
    labels = torch.randint(0, V, (B, A), generator=g)
    mask = torch.rand(B, A, generator=g) > 0.3
    mask[0, 0] = True
    return student, teacher, labels, mask


def _reference(student, teacher, labels, mask, name, kd_ratio, temperature, width, params):
    ce = answer_cross_entropy(student, labels, mask)
    div = get_divergence(name)(student[..., :width], teacher[..., :width], mask, temperature=temperature, **params)
    return distillation_loss(ce, div, kd_ratio), ce, div


PARAMS = {"skl": {"alpha": 0.2}, "srkl": {"alpha": 0.3}, "jsd": {"beta": 0.3}}
CASES = list(itertools.product(sorted(DIVERGENCES), [0.0, 0.4, 1.0], [1.0, 2.0], [None, 31]))


@pytest.mark.parametrize(("name", "kd_ratio", "temperature", "vocab"), CASES)
def test_value_and_gradient_equal_the_pure_losses(name, kd_ratio, temperature, vocab):
    student, teacher, labels, mask = _inputs(hash((name, kd_ratio, temperature, vocab)) % 1000, teacher_extra=3)
    width = vocab or V
    params = PARAMS.get(name, {})
    s_ref, s_new = student.clone().requires_grad_(), student.clone().requires_grad_()
    loss, ce, div = _reference(s_ref, teacher, labels, mask, name, kd_ratio, temperature, width, params)
    (loss * 1.7).backward()
    terms = answer_objective(
        s_new, labels, mask, teacher, divergence=name, kd_ratio=kd_ratio, temperature=temperature, vocab=vocab,
        chunk_rows=2, **params,
    )  # fmt: skip
    (terms.loss * 1.7).backward()
    torch.testing.assert_close(terms.loss, loss, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(terms.ce, ce.detach(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(terms.divergence, div.detach(), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(s_new.grad, s_ref.grad, rtol=1e-9, atol=1e-12)
    assert not terms.ce.requires_grad and not terms.divergence.requires_grad


@pytest.mark.parametrize("chunk_rows", [1, 3, 4, 100])
def test_chunk_size_does_not_change_the_result(chunk_rows):
    student, teacher, labels, mask = _inputs(1)
    results = []
    for rows in (chunk_rows, 7):
        s = student.clone().requires_grad_()
        terms = answer_objective(s, labels, mask, teacher, divergence="srkl", kd_ratio=0.5, chunk_rows=rows)
        terms.loss.backward()
        results.append((terms.loss.detach(), s.grad))
    torch.testing.assert_close(results[0], results[1], rtol=1e-12, atol=1e-14)


def test_cross_entropy_only_without_a_teacher():
    student, _, labels, mask = _inputs(2)
    s_ref, s_new = student.clone().requires_grad_(), student.clone().requires_grad_()
    answer_cross_entropy(s_ref, labels, mask).backward()
    terms = answer_objective(s_new, labels, mask)
    terms.loss.backward()
    assert terms.divergence is None
    torch.testing.assert_close(terms.loss, terms.ce)
    torch.testing.assert_close(s_new.grad, s_ref.grad)


def test_masked_rows_get_exactly_zero_gradient_even_if_nan():
    student, teacher, labels, mask = _inputs(3)
    student[~mask] = float("nan")
    teacher[~mask] = float("nan")
    s = student.clone().requires_grad_()
    terms = answer_objective(s, labels, mask, teacher, divergence="reverse_kl", kd_ratio=1.0)
    terms.loss.backward()
    assert torch.isfinite(terms.loss)
    assert torch.equal(s.grad[~mask], torch.zeros_like(s.grad[~mask]))
    assert torch.isfinite(s.grad[mask]).all()


def test_empty_mask_gives_zero_attached_to_the_graph():
    student, teacher, labels, _ = _inputs(4)
    s = student.clone().requires_grad_()
    terms = answer_objective(s, labels, torch.zeros(B, A, dtype=torch.bool), teacher, divergence="jsd", kd_ratio=0.5)
    terms.loss.backward()
    assert terms.loss.item() == 0.0 and terms.ce.item() == 0.0
    assert torch.equal(s.grad, torch.zeros_like(s.grad))


def test_no_gradient_work_in_no_grad_mode_and_inference_teacher():
    student, teacher, labels, mask = _inputs(5, dtype=torch.float32)
    with torch.inference_mode():
        frozen_teacher = teacher.clone()  # an inference tensor, as the loop's teacher logits
    s = student.clone().requires_grad_()
    with torch.no_grad():
        quiet = answer_objective(s, labels, mask, frozen_teacher, divergence="skl", kd_ratio=0.5)
    assert not quiet.loss.requires_grad
    live = answer_objective(s, labels, mask, frozen_teacher, divergence="skl", kd_ratio=0.5)
    live.loss.backward()
    torch.testing.assert_close(quiet.loss, live.loss.detach())
    assert s.grad is not None and torch.isfinite(s.grad).all()


def test_extreme_and_minus_inf_logits_stay_finite_in_fp32_and_bf16():
    for dtype in (torch.float32, torch.bfloat16):
        student, teacher, labels, mask = _inputs(6, dtype=torch.float32)
        student[..., 5:] = -float("inf")
        student[..., 0] = 80.0
        teacher[..., 1] = 1e4
        labels.fill_(0)
        s = student.to(dtype).requires_grad_()
        for name in DIVERGENCES:
            s.grad = None
            terms = answer_objective(s, labels, mask, teacher.to(dtype), divergence=name, kd_ratio=0.5)
            terms.loss.backward()
            assert not torch.isnan(terms.loss), (dtype, name)
            assert s.grad.dtype == dtype and not torch.isnan(s.grad).any(), (dtype, name)


def test_bf16_matches_fp32_closely():
    student, teacher, labels, mask = _inputs(7, dtype=torch.float32)
    exact = answer_objective(student, labels, mask, teacher, divergence="srkl", kd_ratio=0.5).loss
    rough = answer_objective(student.bfloat16(), labels, mask, teacher.bfloat16(), divergence="srkl", kd_ratio=0.5)
    assert rough.loss.dtype == torch.float32
    torch.testing.assert_close(rough.loss, exact, rtol=0.03, atol=0.03)


def test_target_with_minus_inf_logit_has_infinite_cross_entropy_as_the_pure_loss():
    student, _, labels, mask = _inputs(8, dtype=torch.float32)
    student[0, 0, labels[0, 0]] = -float("inf")
    teacher = torch.zeros_like(student)
    reference = answer_cross_entropy(student, labels, mask)
    terms = answer_objective(student, labels, mask, teacher, divergence="forward_kl", kd_ratio=0.5)
    assert torch.isinf(reference) and torch.isinf(terms.ce) and torch.isinf(terms.loss)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kd_ratio": 0.5}, "needs a divergence"),
        ({"divergence": "kl", "kd_ratio": 0.5, "teacher": True}, "unknown divergence 'kl'"),
        ({"divergence": "jsd", "kd_ratio": 0.5}, "needs teacher logits"),
        ({"divergence": "jsd", "kd_ratio": 1.5, "teacher": True}, "kd_ratio must be in"),
        ({"divergence": "jsd", "kd_ratio": 0.5, "teacher": True, "vocab": V + 1}, "exceeds"),
        ({"divergence": "jsd", "kd_ratio": 0.5, "teacher": True, "temperature": 0.0}, "temperature"),
        ({"divergence": "jsd", "kd_ratio": 0.5, "teacher": True, "chunk_rows": 0}, "chunk_rows"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    student, teacher, labels, mask = _inputs(9)
    use_teacher = kwargs.pop("teacher", False)
    with pytest.raises(ValueError, match=message):
        answer_objective(student, labels, mask, teacher if use_teacher else None, **kwargs)


def test_mismatched_shapes_are_named():
    student, teacher, labels, mask = _inputs(10)
    with pytest.raises(ValueError, match="labels have shape"):
        answer_objective(student, labels[:, :2], mask)
    with pytest.raises(ValueError, match="leading dimensions"):
        answer_objective(student, labels, mask, teacher[:2], divergence="tvd", kd_ratio=0.5)
