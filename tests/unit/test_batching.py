"""Batching: answers at the end of left-padded rows, masks (not pad ids) mark what trains, window-normalised loss."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from qadistill.data.examples import Answer, QAExample
from qadistill.losses import answer_cross_entropy
from qadistill.modeling import answer_logits
from qadistill.models import build_tiny_model, load_real_tokenizer
from qadistill.prompts import PromptFormat, build_prompt
from qadistill.tokenize import prompt_ids
from qadistill.train.batching import DataOrder, TokenizedExample, collate, encode_example, encode_examples
from qadistill.train.config import TrainConfig
from qadistill.train.loop import forward_backward
from qadistill.train.objectives import AnswerCE
from qadistill.train.optim import lr_at, make_accelerator
from qadistill.train.sources import MicroBatch

CONTEXT = (
    "The Normans were the people who in the 10th and 11th centuries gave their name to Normandy, a region in France."
)


def _example(qid: str, question: str, answer: str | None, context: str = CONTEXT) -> QAExample:
    answers = (Answer(answer, context.index(answer)),) if answer else ()
    return QAExample(qid, "Normans", context, question, answers)


EXAMPLES = [
    _example("q1", "In what country is Normandy located?", "France"),
    _example("q2", "When did the Normans give their name to Normandy?", "10th and 11th centuries"),
    _example("q3", "Who founded the Roman Empire?", None),
]


# ------------------------------------------------------------------------------------------ synthetic ids


def test_collate_puts_answers_at_the_end_and_masks_them():
    items = [
        TokenizedExample((5, 6, 7), (8, 9)),
        TokenizedExample((5,), (8, 9, 10, 11)),
        TokenizedExample((1, 2, 3, 4, 5), (0,)),
    ]
    batch = collate(items, pad_id=0)  # pad id 0 is also a real answer token of the last row
    assert batch.input_ids.shape == (3, 6)
    assert batch.answer_len == 4
    assert batch.input_ids[0].tolist() == [0, 5, 6, 7, 8, 9]
    assert batch.attention_mask[0].tolist() == [0, 1, 1, 1, 1, 1]
    assert batch.answer_mask[0].tolist() == [False, False, False, False, True, True]
    assert batch.answer_mask[2].tolist() == [False] * 5 + [True]  # the answer token equal to the pad id trains
    labels, mask = batch.targets()
    assert labels.shape == mask.shape == (3, 4)
    assert labels[1].tolist() == [8, 9, 10, 11] and mask[1].all()
    assert mask[0].tolist() == [False, False, True, True]
    assert batch.n_answer_tokens == 7 and batch.n_tokens == 16


def test_data_order_is_seeded_covers_each_epoch_and_resumes():
    order = DataOrder(10, 3, seed=7)
    first = [order.next_indices() for _ in range(10)]  # 30 items = 3 epochs
    flat = [i for batch in first for i in batch]
    for epoch in range(3):
        assert sorted(flat[epoch * 10 : epoch * 10 + 10]) == list(range(10))
    assert flat[:10] != flat[10:20]  # each epoch has its own order
    resumed = DataOrder(10, 3, seed=7)
    resumed.position = 4
    assert [resumed.next_indices() for _ in range(6)] == first[4:]
    assert DataOrder(10, 3, seed=8).next_indices() != first[0]


def test_data_order_splits_micro_batches_between_processes():
    single = DataOrder(12, 2, seed=0)
    stream = [single.next_indices() for _ in range(6)]
    ranks = [DataOrder(12, 2, seed=0, rank=r, world_size=2) for r in range(2)]
    per_rank = [[o.next_indices() for _ in range(3)] for o in ranks]
    assert per_rank[0] == stream[0::2] and per_rank[1] == stream[1::2]


def test_learning_rate_schedule():
    cfg = TrainConfig(max_steps=10, lr=1.0, warmup_steps=2, schedule="linear")
    lrs = [lr_at(s, cfg, 10) for s in range(10)]
    assert lrs[:3] == [0.5, 1.0, 1.0]
    assert lrs[-1] == pytest.approx(1 / 8) and all(a >= b for a, b in zip(lrs[1:], lrs[2:], strict=False))
    cosine = TrainConfig(max_steps=10, lr=1.0, schedule="cosine", min_lr_ratio=0.1)
    assert lr_at(0, cosine, 10) == 1.0 and lr_at(9, cosine, 10) > 0.1
    assert lr_at(7, TrainConfig(max_steps=10, lr=0.3, schedule="constant"), 10) == 0.3


# ----------------------------------------------------------------------------------- window-normalised loss


def test_loss_is_normalised_over_the_accumulation_window():
    """Two micro-batches with 2 and 9 answer tokens: the step's gradient is that of sum(token CE) / 11."""
    model = build_tiny_model("pythia", hidden_size=32, num_layers=2, num_heads=4, vocab_size=256, seed=0)
    g = torch.Generator().manual_seed(0)

    def item(p, a):
        ids = torch.randint(2, 256, (p + a,), generator=g).tolist()
        return TokenizedExample(tuple(ids[:p]), tuple(ids[p:]))

    window = [collate([item(6, 2)], 1), collate([item(4, 5), item(8, 4)], 1)]
    n_window = sum(b.n_answer_tokens for b in window)
    assert n_window == 11

    run = SimpleNamespace(accelerator=make_accelerator(), model=model, job=SimpleNamespace(train=TrainConfig()))
    micro = [MicroBatch("ground_truth", batch) for batch in window]
    sums, finite = forward_backward(run, AnswerCE(), micro, float(n_window), step=1)  # what the loop does
    total = sums["loss"]
    assert finite and sums["ce"] == pytest.approx(total)
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()

    hand_sum = 0.0  # by hand: every answer token of the window, one at a time, from the full forward's logits
    for batch in window:
        full = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
        for row in range(batch.input_ids.shape[0]):
            for t in torch.nonzero(batch.answer_mask[row]).flatten().tolist():
                hand_sum = hand_sum + F.cross_entropy(full[row, t - 1], batch.input_ids[row, t])
    hand = hand_sum / n_window
    hand.backward()
    assert total == pytest.approx(float(hand.detach()), rel=1e-4)
    for name, param in model.named_parameters():
        torch.testing.assert_close(grads[name], param.grad, atol=1e-6, rtol=1e-4, msg=name)

    means = [float(answer_cross_entropy(*_logits_and_targets(model, b)).detach()) for b in window]
    assert sum(means) / 2 != pytest.approx(float(hand.detach()), rel=1e-3)  # not a mean of micro-batch means


def _logits_and_targets(model, batch):
    logits = answer_logits(model, batch.input_ids, batch.attention_mask, batch.answer_len)
    return (logits, *batch.targets())


# ------------------------------------------------------------------------------------- real tokenizers


@pytest.fixture(scope="module")
def neox(neox_tokenizer_dir):
    return load_real_tokenizer("pythia", neox_tokenizer_dir.parent)


@pytest.fixture(scope="module")
def qwen(qwen_tokenizer_dir):
    return load_real_tokenizer("qwen2.5", qwen_tokenizer_dir.parent)


def test_plain_prompt_answer_has_space_and_eos(neox):
    assert neox.pad_token == "<|padding|>" and neox.pad_token_id != neox.eos_token_id
    fmt = PromptFormat(style="plain", max_prompt_tokens=128)
    enc = encode_example(EXAMPLES[0], fmt, neox, None, 64)
    assert list(enc.prompt) == prompt_ids(neox, build_prompt(EXAMPLES[0], fmt, neox, keep_answer=True))
    assert enc.answer[-1] == neox.eos_token_id
    assert neox.decode(enc.answer[:-1]) == " France"
    unanswerable = encode_example(EXAMPLES[2], fmt, neox, None, 64)
    assert neox.decode(unanswerable.answer[:-1]) == " unanswerable"


def test_pad_equal_to_eos_still_trains_the_eos(qwen):
    """Qwen2.5: pad == eos. The final EOS is in the mask; the left padding with the same id is not."""
    assert qwen.pad_token_id == qwen.eos_token_id
    fmt = PromptFormat(style="auto", max_prompt_tokens=128)  # Qwen has a chat template: chat prompts
    items = encode_examples(EXAMPLES, fmt, qwen, [], 0, 64)
    assert qwen.decode(items[0].answer[:-1]) == "France"  # chat answers have no leading space
    batch = collate(items, qwen.pad_token_id)
    eos = qwen.eos_token_id
    for row, it in enumerate(items):
        assert batch.input_ids[row, -1] == eos and batch.answer_mask[row, -1]
        padding = batch.attention_mask[row] == 0
        assert (batch.input_ids[row][padding] == eos).all()
        assert not batch.answer_mask[row][padding].any()
        assert int(batch.answer_mask[row].sum()) == len(it.answer)
    labels, mask = batch.targets()
    assert int(mask.sum()) == sum(len(it.answer) for it in items)
    assert (labels[mask] == eos).sum() == len(items)


def test_one_shot_prompts_and_long_answers_are_cut_without_eos(neox):
    fmt = PromptFormat(shots=1, style="plain", max_prompt_tokens=256)
    demo_pool = [_example("d1", "What is the capital of France?", "Paris", "Paris is the capital of France.")]
    items = encode_examples(EXAMPLES[:2], fmt, neox, demo_pool, 0, 3)
    assert "What is the capital of France?" in neox.decode(items[0].prompt)
    assert len(items[1].answer) == 3 and items[1].answer[-1] != neox.eos_token_id
    assert items[0].answer[-1] == neox.eos_token_id  # short enough: untouched
