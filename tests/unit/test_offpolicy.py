"""DistiLLM's adaptive off-policy scheme: threshold updates, step-kind choice, replay buffer, student sampling."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import torch

from qadistill.models import build_tiny_model, load_real_tokenizer
from qadistill.train.batching import TokenizedExample, collate
from qadistill.train.config import OffPolicyConfig
from qadistill.train.offpolicy import (
    FRESH_STUDENT,
    GROUND_TRUTH,
    REPLAY,
    AdaptiveOffPolicy,
    ReplayBuffer,
    sample_student_answers,
)


def _items(n: int, start: int = 0) -> list[TokenizedExample]:
    return [TokenizedExample((1, 2, i), (i, 0), f"q{i}") for i in range(start, start + n)]


# ------------------------------------------------------------------------------------------------- threshold


def test_threshold_rises_when_validation_ce_gets_worse_by_eps():
    policy = AdaptiveOffPolicy(OffPolicyConfig(init_threshold=0.0, loss_eps=0.1), seed=0)
    assert policy.update(2.0) is False and policy.reference == 2.0  # first check: the reference
    assert policy.update(1.5) is False and policy.threshold == 0.0  # improving: no change, reference kept
    assert policy.update(2.05) is False  # worse than 2.0, but by less than eps
    assert policy.update(2.1) is True and policy.threshold == pytest.approx(0.1)
    assert policy.reference == 2.1  # DistiLLM resets the reference when the threshold rises
    assert policy.update(2.15) is False
    for _ in range(20):
        policy.update(policy.reference + 1.0)
    assert policy.threshold == 1.0  # capped


def test_threshold_rises_when_validation_ce_stalls():
    stall = AdaptiveOffPolicy(OffPolicyConfig(init_threshold=0.2, loss_eps=0.0), seed=0)
    stall.update(3.0)
    assert stall.update(3.0) is True and stall.threshold == pytest.approx(0.3)  # eps 0: no change counts as worse
    not_better = AdaptiveOffPolicy(OffPolicyConfig(loss_eps=0.05, raise_when="not_better"), seed=0)
    not_better.update(3.0)
    assert not_better.update(2.98) is True  # improved, but by less than eps
    assert not_better.update(2.5) is False and not_better.reference == 2.5
    assert not_better.threshold == pytest.approx(0.1)


def test_disabled_policy_always_uses_ground_truth():
    policy = AdaptiveOffPolicy(OffPolicyConfig(enabled=False, init_threshold=1.0), seed=0)
    assert {policy.choose(s, 10, ReplayBuffer(4)) for s in range(10)} == {GROUND_TRUTH}
    assert policy.update(1.0) is False and policy.update(5.0) is False


# ----------------------------------------------------------------------------------------------- step kinds


def test_choice_follows_distillm_rule():
    empty, full = ReplayBuffer(4), ReplayBuffer(4)
    full.extend(_items(4))
    zero = AdaptiveOffPolicy(OffPolicyConfig(init_threshold=0.0), seed=0)
    assert {zero.choose(0, 100, empty) for _ in range(200)} == {GROUND_TRUTH}
    one = AdaptiveOffPolicy(OffPolicyConfig(init_threshold=1.0), seed=0)
    assert {one.choose(50, 100, empty) for _ in range(200)} == {FRESH_STUDENT}  # buffer not full: always sample
    late = Counter(one.choose(99, 100, full) for _ in range(2000))  # phi_t = 0.01: almost only replays
    assert late[REPLAY] > 1900 and late[GROUND_TRUTH] == 0
    half = AdaptiveOffPolicy(OffPolicyConfig(init_threshold=0.6), seed=0)
    mid = Counter(half.choose(50, 100, full) for _ in range(4000))  # phi = 0.6, phi_t = 0.3
    assert mid[FRESH_STUDENT] / 4000 == pytest.approx(0.3, abs=0.03)
    assert mid[REPLAY] / 4000 == pytest.approx(0.3, abs=0.03)
    assert mid[GROUND_TRUTH] / 4000 == pytest.approx(0.4, abs=0.03)


@pytest.mark.parametrize(("ratio", "expected"), [("decreasing", 0.25), ("constant", 0.5), ("increasing", 0.75)])
def test_replay_ratio_shapes(ratio, expected):
    policy = AdaptiveOffPolicy(OffPolicyConfig(init_threshold=1.0, replay_ratio=ratio), seed=0)
    assert policy.sampling_threshold(75, 100) == pytest.approx(expected)


def test_policy_state_round_trip_continues_the_same_draws():
    policy = AdaptiveOffPolicy(OffPolicyConfig(init_threshold=0.5), seed=3)
    buffer = ReplayBuffer(2)
    buffer.extend(_items(2))
    policy.update(1.0)
    for _ in range(5):
        policy.choose(1, 10, buffer)
    copy = AdaptiveOffPolicy(OffPolicyConfig(init_threshold=0.5), seed=99)
    copy.load_state_dict(policy.state_dict())
    assert [policy.choose(2, 10, buffer) for _ in range(50)] == [copy.choose(2, 10, buffer) for _ in range(50)]
    assert copy.reference == 1.0 and copy.threshold == 0.5


# ------------------------------------------------------------------------------------------------- buffer


def test_replay_buffer_capacity_and_sampling():
    buffer = ReplayBuffer(capacity=5)
    buffer.extend(_items(3))
    assert len(buffer) == 3 and not buffer.full
    buffer.extend(_items(4, start=3))
    assert len(buffer) == 5 and buffer.full
    assert [it.id for it in buffer.items] == ["q2", "q3", "q4", "q5", "q6"]  # oldest evicted first
    sample = buffer.sample(3, random.Random(0))
    assert len({it.id for it in sample}) == 3
    assert len(buffer.sample(10, random.Random(0))) == 5
    restored = ReplayBuffer(5)
    restored.load_state_dict(buffer.state_dict())
    assert list(restored.items) == list(buffer.items)


# ------------------------------------------------------------------------------------------- student samples


class _FakeGenerate(torch.nn.Module):
    """A stand-in whose generate() returns fixed continuations (to test the EOS cut deterministically)."""

    def __init__(self, continuations):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.continuations = continuations

    def generate(self, input_ids, attention_mask, generation_config, logits_processor):
        assert generation_config.do_sample and generation_config.top_k == 0
        return torch.cat([input_ids, torch.tensor(self.continuations)], dim=1)


class _Tok:
    pad_token_id = eos_token_id = 0


def test_student_answers_are_cut_after_the_first_eos():
    prompts = [TokenizedExample((5, 6, 7), (9, 0), "a"), TokenizedExample((8,), (9, 0), "b")]
    fake = _FakeGenerate([[11, 12, 0, 0], [13, 14, 15, 16]])  # row 0 stopped (then padding == eos), row 1 did not
    cfg = OffPolicyConfig(max_new_tokens=4)
    answers = sample_student_answers(fake, _Tok(), prompts, cfg, vocab_size=100)
    assert [a.answer for a in answers] == [(11, 12, 0), (13, 14, 15, 16)]
    assert [a.prompt for a in answers] == [p.prompt for p in prompts]
    batch = collate(answers, pad_id=0)  # re-laid with left padding: the answers sit at the end
    assert batch.input_ids.tolist() == [[5, 6, 7, 11, 12, 0], [0, 8, 13, 14, 15, 16]]
    assert batch.answer_mask.tolist() == [[False] * 3 + [True] * 3, [False] * 2 + [True] * 4]


def test_real_sampling_stays_in_the_tokenizer_vocabulary(qwen_tokenizer_dir):
    tokenizer = load_real_tokenizer("qwen2.5", qwen_tokenizer_dir.parent)
    model = build_tiny_model("qwen2.5", tokenizer, hidden_size=32, num_layers=1, num_heads=4, seed=0)
    n = len(tokenizer)
    with torch.no_grad():  # put all the mass on embedding rows past the tokenizer
        model.get_output_embeddings().weight[n:] = model.get_output_embeddings().weight[n:] * 0 + 1.0
    prompts = [TokenizedExample(tuple(tokenizer("Hello there")["input_ids"]), (0,), "x")] * 3
    model.train()
    torch.manual_seed(0)
    answers = sample_student_answers(model, tokenizer, prompts, OffPolicyConfig(max_new_tokens=6), vocab_size=n)
    assert model.training  # restored
    for a in answers:
        assert 1 <= len(a.answer) <= 6 and max(a.answer) < n
