"""Unit tests for qadistill.losses: every divergence against its textbook formula, plus the numeric edge cases."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from qadistill import losses
from qadistill.losses import (
    DIVERGENCES,
    SPARSE_DIVERGENCES,
    answer_cross_entropy,
    distillation_loss,
    get_divergence,
    get_sparse_divergence,
)

NAMES = ["forward_kl", "reverse_kl", "skl", "srkl", "jsd", "tvd"]
B, T, V = 3, 5, 11
NEG_INF = float("-inf")


# ---------------------------------------------------------------------------------------------------------------
# Reference formulas, written plainly in float64
# ---------------------------------------------------------------------------------------------------------------


def _kl(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """sum a log(a / b) with 0 log 0 = 0 (xlogy), +inf where a > 0 = b."""
    return (torch.xlogy(a, a) - torch.xlogy(a, b)).sum(-1)


def _direct_rows(name: str, p: torch.Tensor, q: torch.Tensor, alpha: float = 0.1, beta: float = 0.5):
    if name == "forward_kl":
        return _kl(p, q)
    if name == "reverse_kl":
        return _kl(q, p)
    if name == "skl":
        return _kl(p, alpha * p + (1 - alpha) * q)
    if name == "srkl":
        return _kl(q, (1 - alpha) * p + alpha * q)
    if name == "jsd":
        m = beta * p + (1 - beta) * q
        return beta * _kl(p, m) + (1 - beta) * _kl(q, m)
    if name == "tvd":
        return 0.5 * (p - q).abs().sum(-1)
    raise AssertionError(name)


def direct(name, student, teacher, mask, temperature=1.0, **params):
    p = torch.softmax(teacher.double() / temperature, dim=-1)
    q = torch.softmax(student.double() / temperature, dim=-1)
    rows = _direct_rows(name, p, q, **params)[mask]
    return rows.sum() / max(rows.numel(), 1)


def rand_logits(*shape, scale=3.0, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(*shape, generator=g, dtype=torch.float64) * scale).to(dtype)


def rand_mask(seed=0, p=0.6):
    g = torch.Generator().manual_seed(seed + 1000)
    mask = torch.rand(B, T, generator=g) < p
    mask[0, 0] = True
    mask[-1, -1] = False
    return mask


def params_for(name):
    return {"skl": {"alpha": 0.3}, "srkl": {"alpha": 0.3}, "jsd": {"beta": 0.2}}.get(name, {})


# ---------------------------------------------------------------------------------------------------------------
# Dense divergences: values
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("temperature", [1.0, 2.0])
@pytest.mark.parametrize("name", NAMES)
def test_dense_matches_direct_formula(name, temperature):
    for seed in range(3):
        s, t, mask = rand_logits(B, T, V, seed=seed), rand_logits(B, T, V, seed=seed + 50), rand_mask(seed)
        for params in ({}, params_for(name)):
            got = DIVERGENCES[name](s, t, mask, temperature=temperature, **params)
            want = direct(name, s, t, mask, temperature, **params)
            assert got.dtype == torch.float32 and got.dim() == 0
            torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_zero_for_identical_inputs(name):
    for scale in (1.0, 30.0, 1e4):
        x = rand_logits(B, T, V, scale=scale, seed=3)
        got = DIVERGENCES[name](x, x.clone(), rand_mask(3))
        assert abs(got.item()) < 1e-6


@pytest.mark.parametrize("name", NAMES)
def test_non_negative_per_position(name):
    for seed in range(4):
        s, t = rand_logits(B, T, V, scale=6.0, seed=seed), rand_logits(B, T, V, scale=6.0, seed=seed + 7)
        for idx in range(B * T):
            one = torch.zeros(B * T, dtype=torch.bool)
            one[idx] = True
            assert DIVERGENCES[name](s, t, one.view(B, T), **params_for(name)).item() >= -1e-6


def _disjoint_pair():
    """Teacher all on token 0, student all on token 1 (up to e^-1e4)."""
    s = torch.zeros(B, T, V)
    t = torch.zeros(B, T, V)
    t[..., 0] = 1e4
    s[..., 1] = 1e4
    return s, t


def test_jsd_bounded_by_ln2():
    s, t = _disjoint_pair()
    mask = torch.ones(B, T, dtype=torch.bool)
    value = losses.jsd(s, t, mask).item()
    assert value <= math.log(2) + 1e-6
    assert value == pytest.approx(math.log(2), abs=1e-5)
    for beta in (0.1, 0.7):  # the generalised form is bounded by the binary entropy H(beta) <= ln 2
        h = -(beta * math.log(beta) + (1 - beta) * math.log(1 - beta))
        assert losses.jsd(s, t, mask, beta=beta).item() == pytest.approx(h, abs=1e-5)
    for seed in range(3):
        r = losses.jsd(rand_logits(B, T, V, scale=20, seed=seed), rand_logits(B, T, V, scale=20, seed=seed + 1), mask)
        assert r.item() <= math.log(2) + 1e-6


def test_tvd_at_most_one():
    s, t = _disjoint_pair()
    mask = torch.ones(B, T, dtype=torch.bool)
    value = losses.tvd(s, t, mask).item()
    assert value <= 1 + 1e-6
    assert value == pytest.approx(1.0, abs=1e-5)


def test_skew_with_alpha_to_zero_is_the_plain_kl():
    s, t, mask = rand_logits(B, T, V, seed=1), rand_logits(B, T, V, seed=2), rand_mask(1)
    fkl, rkl = losses.forward_kl(s, t, mask), losses.reverse_kl(s, t, mask)
    assert losses.skew_forward_kl(s, t, mask, alpha=0.0).item() == pytest.approx(fkl.item(), rel=1e-6)
    assert losses.skew_reverse_kl(s, t, mask, alpha=0.0).item() == pytest.approx(rkl.item(), rel=1e-6)
    # alpha -> 0 converges (the mixture caps log(p / q) at log(1 / alpha), so convergence is slow for large gaps)
    gaps_f, gaps_r = [], []
    for alpha in (1e-2, 1e-4, 1e-6, 1e-9, 1e-12):
        skl = losses.skew_forward_kl(s, t, mask, alpha=alpha)
        srkl = losses.skew_reverse_kl(s, t, mask, alpha=alpha)
        torch.testing.assert_close(skl.double(), direct("skl", s, t, mask, alpha=alpha), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(srkl.double(), direct("srkl", s, t, mask, alpha=alpha), rtol=1e-5, atol=1e-6)
        gaps_f.append(abs(skl.item() - fkl.item()))
        gaps_r.append(abs(srkl.item() - rkl.item()))
    assert gaps_f == sorted(gaps_f, reverse=True) and gaps_r == sorted(gaps_r, reverse=True)
    assert gaps_f[-1] < 1e-5 * fkl.item() and gaps_r[-1] < 1e-5 * rkl.item()
    # ... and the skew genuinely changes the value away from 0, shrinking to 0 at alpha = 1
    assert losses.skew_forward_kl(s, t, mask, alpha=0.5).item() < 0.9 * fkl.item()
    assert abs(losses.skew_reverse_kl(s, t, mask, alpha=1.0).item()) < 1e-7


@pytest.mark.parametrize("name", NAMES)
def test_temperature_equals_scaled_logits(name):
    s, t, mask = rand_logits(B, T, V, seed=4), rand_logits(B, T, V, seed=5), rand_mask(4)
    for temp in (0.5, 2.0, 7.0):
        got = DIVERGENCES[name](s, t, mask, temperature=temp)
        want = DIVERGENCES[name](s / temp, t / temp, mask)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7)
    assert not torch.allclose(DIVERGENCES[name](s, t, mask, temperature=2.0), DIVERGENCES[name](s, t, mask))


# ---------------------------------------------------------------------------------------------------------------
# Dense divergences: masking, extremes, gradients
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_masked_positions_have_no_effect(name):
    s, t, mask = rand_logits(B, T, V, seed=6), rand_logits(B, T, V, seed=7), rand_mask(6)
    s1 = s.clone().requires_grad_(True)
    base = DIVERGENCES[name](s1, t, mask)
    base.backward()

    garbage_s, garbage_t = s.clone(), t.clone()
    garbage_s[~mask] = rand_logits(int((~mask).sum()), V, scale=50, seed=8)
    garbage_t[~mask] = rand_logits(int((~mask).sum()), V, scale=50, seed=9)
    garbage_s[~mask, 0] = float("nan")
    garbage_t[~mask, 1] = float("inf")
    garbage_t[~mask, 2] = float("nan")
    s2 = garbage_s.requires_grad_(True)
    changed = DIVERGENCES[name](s2, garbage_t, mask)
    changed.backward()

    assert torch.equal(base, changed)
    assert torch.equal(s1.grad, s2.grad)
    assert torch.all(s2.grad[~mask] == 0) and torch.isfinite(s2.grad).all()
    assert s2.grad[mask].abs().sum() > 0


def _value_and_grad(fn, s, t, mask, **params):
    s = s.clone().requires_grad_(True)
    value = fn(s, t, mask, **params)
    value.backward()
    return value, s.grad


@pytest.mark.parametrize("name", NAMES)
def test_extreme_logits_finite(name):
    fn, mask = DIVERGENCES[name], rand_mask(10)
    g = torch.Generator().manual_seed(10)
    s = torch.where(torch.rand(B, T, V, generator=g) < 0.5, 1e4, -1e4) + torch.randn(B, T, V, generator=g)
    t = torch.where(torch.rand(B, T, V, generator=g) < 0.5, 1e4, -1e4) + torch.randn(B, T, V, generator=g)
    value, grad = _value_and_grad(fn, s, t, mask)
    assert torch.isfinite(value) and torch.isfinite(grad).all()
    if name in ("skl", "srkl", "jsd", "tvd"):  # bounded divergences: also compare with the reference
        torch.testing.assert_close(value.double(), direct(name, s, t, mask), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_shared_neg_inf_vocab_entries(name):
    """Padded vocabulary entries (-inf in both) change nothing: same as dropping those entries."""
    s, t, mask = rand_logits(B, T, V, seed=11), rand_logits(B, T, V, seed=12), rand_mask(11)
    s_pad, t_pad = s.clone(), t.clone()
    s_pad[..., -3:] = NEG_INF
    t_pad[..., -3:] = NEG_INF
    value, grad = _value_and_grad(DIVERGENCES[name], s_pad, t_pad, mask)
    assert torch.isfinite(value) and torch.isfinite(grad).all()
    assert torch.all(grad[..., -3:] == 0)
    want = DIVERGENCES[name](s[..., :-3], t[..., :-3], mask)
    torch.testing.assert_close(value, want, rtol=1e-5, atol=1e-7)


# Which one-sided zero-probability entries keep each divergence finite.
_FINITE_WHEN_TEACHER_ZERO = ["forward_kl", "skl", "srkl", "jsd", "tvd"]  # p = 0 < q
_FINITE_WHEN_STUDENT_ZERO = ["reverse_kl", "skl", "srkl", "jsd", "tvd"]  # q = 0 < p


@pytest.mark.parametrize("side", ["teacher", "student"])
@pytest.mark.parametrize("name", NAMES)
def test_one_sided_neg_inf(name, side):
    s, t, mask = rand_logits(B, T, V, seed=13), rand_logits(B, T, V, seed=14), rand_mask(13)
    (t if side == "teacher" else s)[..., :2] = NEG_INF
    finite = name in (_FINITE_WHEN_TEACHER_ZERO if side == "teacher" else _FINITE_WHEN_STUDENT_ZERO)
    value, grad = _value_and_grad(DIVERGENCES[name], s, t, mask)
    assert not torch.isnan(value)
    if finite:
        assert torch.isfinite(value) and torch.isfinite(grad).all()
        torch.testing.assert_close(value.double(), direct(name, s, t, mask), rtol=1e-5, atol=1e-6)
    else:  # the true divergence is +inf: reported as huge or inf, never NaN
        assert value.item() > 1e30


@pytest.mark.parametrize("name", NAMES)
def test_bf16_inputs(name):
    s = rand_logits(B, T, V, scale=8, seed=15, dtype=torch.bfloat16)
    t = rand_logits(B, T, V, scale=8, seed=16, dtype=torch.bfloat16)
    mask = rand_mask(15)
    value, grad = _value_and_grad(DIVERGENCES[name], s, t, mask)
    assert value.dtype == torch.float32 and torch.isfinite(value)
    assert grad.dtype == torch.bfloat16 and torch.isfinite(grad).all()
    torch.testing.assert_close(value, DIVERGENCES[name](s.float(), t.float(), mask))


@pytest.mark.parametrize("name", NAMES)
def test_empty_mask_is_zero_with_grad(name):
    s, t = rand_logits(B, T, V, seed=17), rand_logits(B, T, V, seed=18)
    s[0, 0, 0] = float("nan")  # never selected
    empty = torch.zeros(B, T, dtype=torch.bool)
    value, grad = _value_and_grad(DIVERGENCES[name], s, t, empty)
    assert value.item() == 0.0 and value.requires_grad
    assert torch.equal(grad, torch.zeros_like(grad))


def test_srkl_gradient_flows_through_the_mixture():
    s, t, mask = rand_logits(B, T, V, seed=19), rand_logits(B, T, V, seed=20), rand_mask(19)
    alpha = 0.4
    _, got = _value_and_grad(losses.skew_reverse_kl, s, t, mask, alpha=alpha)

    s64 = s.double().requires_grad_(True)
    direct("srkl", s64, t, mask, alpha=alpha).backward()
    torch.testing.assert_close(got.double(), s64.grad, rtol=1e-4, atol=1e-6)

    # A version that stops the gradient inside the mixture is measurably different.
    s64d = s.double().requires_grad_(True)
    p = torch.softmax(t.double(), -1)
    q = torch.softmax(s64d, -1)
    rows = _kl(q, (1 - alpha) * p + alpha * q.detach())[mask]
    (rows.sum() / rows.numel()).backward()
    assert (s64d.grad - s64.grad).abs().max() > 1e-3


@pytest.mark.parametrize("name", NAMES)
def test_dense_gradcheck_float64(name):
    s = rand_logits(2, 2, 5, seed=21, dtype=torch.float64).requires_grad_(True)
    t = rand_logits(2, 2, 5, seed=22, dtype=torch.float64)
    t[..., 0] += 0.37  # keep p != q elementwise so |p - q| stays differentiable for tvd
    mask = torch.tensor([[True, False], [True, True]])
    assert torch.autograd.gradcheck(lambda x: DIVERGENCES[name](x, t, mask, temperature=1.5), (s,))


def test_teacher_gets_no_gradient():
    s = rand_logits(B, T, V, seed=23).requires_grad_(True)
    t = rand_logits(B, T, V, seed=24).requires_grad_(True)
    losses.skew_reverse_kl(s, t, rand_mask(23)).backward()
    assert t.grad is None and s.grad is not None


# ---------------------------------------------------------------------------------------------------------------
# Sparse (top-k cached teacher) divergences
# ---------------------------------------------------------------------------------------------------------------


def topk_cache(teacher_logits: torch.Tensor, k: int, temperature: float = 1.0):
    """What a teacher-logit cache stores: top-k ids and their full-vocabulary log-probabilities."""
    logprobs = F.log_softmax(teacher_logits.double() / temperature, dim=-1)
    values, ids = logprobs.topk(k, dim=-1)
    return ids, values.to(teacher_logits.dtype)


def _sparse(name, s, ids, lps, mask, **params):
    return SPARSE_DIVERGENCES[name](s, ids, lps, mask, **params)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", NAMES)
def test_sparse_exact_for_topk_supported_teacher(name, dtype):
    k = 4
    s, mask = rand_logits(B, T, V, seed=30, dtype=dtype), rand_mask(30)
    t = rand_logits(B, T, V, seed=31, dtype=dtype)
    g = torch.Generator().manual_seed(32)
    support = torch.rand(B, T, V, generator=g).argsort(-1)[..., :k]
    outside = torch.ones(B, T, V, dtype=torch.bool).scatter(-1, support, False)
    t = t.masked_fill(outside, NEG_INF)
    if name == "reverse_kl":  # KL(q || p) is infinite unless the student shares the teacher's support
        s = s.masked_fill(outside, NEG_INF)
    ids, lps = topk_cache(t, k)
    assert set(ids.flatten().tolist()) <= set(range(V))
    params = params_for(name)
    got = _sparse(name, s, ids, lps, mask, **params)
    want = DIVERGENCES[name](s, t, mask, **params)
    tol = 1e-10 if dtype == torch.float64 else 1e-5
    assert torch.isfinite(got)
    torch.testing.assert_close(got, want, rtol=tol, atol=tol)


@pytest.mark.parametrize("name", NAMES)
def test_sparse_dense_teacher_full_k_matches_dense(name):
    s, t, mask = rand_logits(B, T, V, seed=33), rand_logits(B, T, V, seed=34), rand_mask(33)
    want = DIVERGENCES[name](s, t, mask)
    for k in (V - 1, V):  # k = V - 1: the tail bucket is a single token, so nothing is collapsed
        ids, lps = topk_cache(t, k)
        torch.testing.assert_close(_sparse(name, s, ids, lps, mask), want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_sparse_is_lower_bound_increasing_in_k(name):
    """Data-processing inequality: collapsing outcomes never increases the divergence (per position)."""
    # float64 end to end: in fp32 the teacher tail derived as 1 - sum(exp(top-k)) carries ~1e-7 rounding, which
    # matters when the true tail is that small (see test_sparse_close_to_dense_for_peaked_teacher_and_large_k).
    params = params_for(name)
    for seed in range(3):
        s = rand_logits(B, T, V, scale=4, seed=35 + seed, dtype=torch.float64)
        t = rand_logits(B, T, V, scale=4, seed=45 + seed, dtype=torch.float64)
        for idx in range(B * T):
            one = torch.zeros(B * T, dtype=torch.bool)
            one[idx] = True
            one = one.view(B, T)
            dense = DIVERGENCES[name](s, t, one, **params).item()
            previous = 0.0
            for k in (1, 2, 4, 7, V - 1):
                ids, lps = topk_cache(t, k)
                value = _sparse(name, s, ids, lps, one, **params).item()
                assert previous - 1e-6 <= value <= dense + 1e-6
                previous = value
            assert previous == pytest.approx(dense, rel=1e-4, abs=1e-6)


def test_sparse_close_to_dense_for_peaked_teacher_and_large_k():
    s, mask = rand_logits(B, T, V, seed=36), rand_mask(36)
    t = rand_logits(B, T, V, scale=10, seed=37)
    ids, lps = topk_cache(t, V - 3)
    for name in ["forward_kl", "skl", "srkl", "jsd", "tvd"]:
        dense = DIVERGENCES[name](s, t, mask).item()
        assert _sparse(name, s, ids, lps, mask).item() == pytest.approx(dense, rel=1e-3)
    # Reverse KL is dominated by the tokens the teacher deems near-impossible, exactly what the tail lumps
    # together, so the bound stays loose; with an fp32 cache the tail derived as 1 - sum(exp(top-k)) is also
    # too imprecise at k = V - 1. Passing the tail log-prob explicitly restores the exact value.
    full = F.log_softmax(t.double(), -1)
    ids, lps = topk_cache(t, V - 1)
    tail = torch.logsumexp(full.scatter(-1, ids, NEG_INF), -1).float()
    got = losses.sparse_reverse_kl(s, ids, lps, mask, teacher_tail_logprobs=tail)
    torch.testing.assert_close(got, losses.reverse_kl(s, t, mask), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_sparse_temperature_uses_cache_at_that_temperature(name):
    s, t, mask = rand_logits(B, T, V, seed=38), rand_logits(B, T, V, seed=39), rand_mask(38)
    ids, lps = topk_cache(t, V, temperature=2.0)
    got = _sparse(name, s, ids, lps, mask, temperature=2.0)
    torch.testing.assert_close(got, DIVERGENCES[name](s, t, mask, temperature=2.0), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_sparse_masked_positions_have_no_effect(name):
    s, t, mask = rand_logits(B, T, V, seed=40), rand_logits(B, T, V, seed=41), rand_mask(40)
    ids, lps = topk_cache(t, 3)
    base = _sparse(name, s, ids, lps, mask)
    s2, ids2, lps2 = s.clone(), ids.clone(), lps.clone()
    s2[~mask] = float("nan")
    ids2[~mask] = -1  # padding ids that would crash gather if they were ever used
    lps2[~mask] = float("nan")
    assert torch.equal(base, _sparse(name, s2, ids2, lps2, mask))


@pytest.mark.parametrize("name", NAMES)
def test_sparse_empty_mask_and_bf16(name):
    s, t = rand_logits(B, T, V, seed=42, dtype=torch.bfloat16), rand_logits(B, T, V, seed=43)
    ids, lps = topk_cache(t, 3)
    lps = lps.to(torch.bfloat16)
    mask = rand_mask(42)
    value, grad = _value_and_grad(lambda x, i, m: _sparse(name, x, i, lps, m), s, ids, mask)
    assert value.dtype == torch.float32 and torch.isfinite(value) and torch.isfinite(grad).all()
    empty = torch.zeros(B, T, dtype=torch.bool)
    value, grad = _value_and_grad(lambda x, i, m: _sparse(name, x, i, lps, m), s, ids, empty)
    assert value.item() == 0.0 and torch.equal(grad, torch.zeros_like(grad))


@pytest.mark.parametrize("name", ["srkl", "forward_kl", "jsd"])
def test_sparse_gradcheck_float64(name):
    s = rand_logits(2, 2, 7, seed=44, dtype=torch.float64).requires_grad_(True)
    t = rand_logits(2, 2, 7, seed=45, dtype=torch.float64)
    ids, lps = topk_cache(t, 3)
    mask = torch.tensor([[True, True], [False, True]])
    fn = SPARSE_DIVERGENCES[name]
    assert torch.autograd.gradcheck(lambda x: fn(x, ids, lps, mask, temperature=1.0), (s,))


def test_sparse_explicit_teacher_tail():
    """A cache that stores the tail log-prob directly gives the same answer as deriving it from 1 - sum."""
    s, t, mask = rand_logits(B, T, V, seed=46), rand_logits(B, T, V, seed=47), rand_mask(46)
    ids, lps = topk_cache(t, 3)
    full = F.log_softmax(t.double(), -1)
    tail = torch.logsumexp(full.scatter(-1, ids, NEG_INF), -1).float()
    for name in NAMES:
        derived = _sparse(name, s, ids, lps, mask)
        explicit = SPARSE_DIVERGENCES[name](s, ids, lps, mask, teacher_tail_logprobs=tail)
        torch.testing.assert_close(derived, explicit, rtol=1e-5, atol=1e-6)


def test_sparse_reverse_kl_teacher_tail_rounding_to_zero():
    """Top-k mass that rounds to >= 1 means tail 0: huge (not NaN) reverse KL, finite SRKL."""
    s, mask = rand_logits(B, T, V, seed=48), rand_mask(48)
    ids = torch.arange(3).expand(B, T, 3).contiguous()
    lps = torch.log(torch.tensor([0.5, 0.3, 0.2000001])).expand(B, T, 3).contiguous()
    assert _sparse("reverse_kl", s, ids, lps, mask).item() > 1e30
    assert torch.isfinite(_sparse("srkl", s, ids, lps, mask))


# ---------------------------------------------------------------------------------------------------------------
# Registry, cross-entropy, mixing, validation
# ---------------------------------------------------------------------------------------------------------------


def test_registries():
    assert list(DIVERGENCES) == NAMES and list(SPARSE_DIVERGENCES) == NAMES
    assert get_divergence("srkl") is losses.skew_reverse_kl
    assert get_sparse_divergence("skl") is losses.sparse_skew_forward_kl
    with pytest.raises(ValueError, match="forward_kl, reverse_kl, skl, srkl, jsd, tvd"):
        get_divergence("kl")
    with pytest.raises(ValueError, match="valid names"):
        get_sparse_divergence("akl")


def test_invalid_arguments():
    s, t, mask = rand_logits(B, T, V), rand_logits(B, T, V), rand_mask()
    with pytest.raises(ValueError, match="alpha"):
        losses.skew_forward_kl(s, t, mask, alpha=1.5)
    with pytest.raises(ValueError, match="beta"):
        losses.jsd(s, t, mask, beta=-0.1)
    with pytest.raises(ValueError, match="temperature"):
        losses.forward_kl(s, t, mask, temperature=0.0)
    with pytest.raises(ValueError, match="shared vocabulary"):
        losses.forward_kl(s, t[..., :-1], mask)
    with pytest.raises(ValueError, match="mask"):
        losses.forward_kl(s, t, mask[:, :-1])
    ids, lps = topk_cache(t, 3)
    with pytest.raises(ValueError, match="top-k"):
        losses.sparse_forward_kl(s, ids, lps[..., :2], mask)


def test_integer_mask_is_accepted():
    s, t, mask = rand_logits(B, T, V, seed=49), rand_logits(B, T, V, seed=50), rand_mask(49)
    assert torch.equal(losses.forward_kl(s, t, mask.long()), losses.forward_kl(s, t, mask))


def test_answer_cross_entropy():
    s, mask = rand_logits(B, T, V, seed=51), rand_mask(51)
    labels = torch.randint(0, V, (B, T), generator=torch.Generator().manual_seed(51))
    want = F.cross_entropy(s[mask].double(), labels[mask])
    garbage = s.clone()
    garbage[~mask] = float("nan")
    labels_garbage = labels.masked_fill(~mask, -5)
    got = answer_cross_entropy(garbage, labels_garbage, mask)
    torch.testing.assert_close(got.double(), want, rtol=1e-6, atol=1e-7)

    x = s.clone().requires_grad_(True)
    value = answer_cross_entropy(x, labels, torch.zeros(B, T, dtype=torch.bool))
    value.backward()
    assert value.item() == 0.0 and torch.equal(x.grad, torch.zeros_like(x.grad))


def test_distillation_loss_mixing():
    ce, div = torch.tensor(2.0), torch.tensor(6.0)
    assert distillation_loss(ce, div, 0.0).item() == 2.0
    assert distillation_loss(ce, div, 1.0).item() == 6.0
    assert distillation_loss(ce, div, 0.25).item() == pytest.approx(0.75 * 2 + 0.25 * 6)
    assert distillation_loss(ce, torch.tensor(float("inf")), 0.0).item() == 2.0  # not 0 * inf = NaN
    with pytest.raises(ValueError, match="kd_ratio"):
        distillation_loss(ce, div, 1.2)
