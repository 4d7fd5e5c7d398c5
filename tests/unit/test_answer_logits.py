"""answer_logits: the LM head runs on the answer positions only, and gives exactly the full forward's logits there."""

from __future__ import annotations

import pytest
import torch

from qadistill.modeling import answer_logits, position_ids_for
from qadistill.models import build_tiny_model
from qadistill.train.batching import TokenizedExample, collate

VOCAB = 512
PAD = 1


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    items = []
    for prompt_len, answer_len in ((7, 3), (12, 1), (4, 5)):
        ids = torch.randint(2, VOCAB, (prompt_len + answer_len,), generator=g).tolist()
        items.append(TokenizedExample(tuple(ids[:prompt_len]), tuple(ids[prompt_len:])))
    return items, collate(items, PAD)


def _full_slice(model, batch):
    out = model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        position_ids=position_ids_for(batch.attention_mask),
        use_cache=False,
    ).logits
    a = batch.answer_len
    return out[:, -a - 1 : -1]


@pytest.mark.parametrize("family", ["pythia", "qwen2.5", "llama"])
def test_equals_slice_of_full_logits(family):
    model = build_tiny_model(family, hidden_size=32, num_layers=2, num_heads=4, vocab_size=VOCAB, seed=3)
    _, batch = _batch()
    with torch.no_grad():
        got = answer_logits(model, batch.input_ids, batch.attention_mask, batch.answer_len)
        want = _full_slice(model, batch)
    assert got.shape == (3, batch.answer_len, VOCAB)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", ["pythia", "qwen2.5"])
def test_head_sees_only_answer_positions(family):
    model = build_tiny_model(family, hidden_size=32, num_layers=2, num_heads=4, vocab_size=VOCAB, seed=0)
    _, batch = _batch()
    seen = []
    handle = model.get_output_embeddings().register_forward_hook(lambda m, inp, out: seen.append(inp[0].shape))
    try:
        with torch.no_grad():
            answer_logits(model, batch.input_ids, batch.attention_mask, batch.answer_len)
    finally:
        handle.remove()
    assert seen == [torch.Size([3, batch.answer_len, 32])]


def test_left_padding_does_not_change_a_row():
    """A row's answer logits are the same alone and left-padded in a batch (positions follow the mask)."""
    model = build_tiny_model("qwen2.5", hidden_size=32, num_layers=2, num_heads=4, vocab_size=VOCAB, seed=1)
    items, batch = _batch()
    alone = collate([items[0]], PAD)
    with torch.no_grad():
        batched = answer_logits(model, batch.input_ids, batch.attention_mask, batch.answer_len)
        single = answer_logits(model, alone.input_ids, alone.attention_mask, alone.answer_len)
    n = len(items[0].answer)
    torch.testing.assert_close(batched[0, -n:], single[0], atol=1e-4, rtol=1e-4)


def test_peft_wrapped_model_and_gradients():
    from peft import LoraConfig, get_peft_model

    base = build_tiny_model("llama", hidden_size=32, num_layers=2, num_heads=4, vocab_size=VOCAB, seed=2)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", task_type="CAUSAL_LM"))
    _, batch = _batch()
    got = answer_logits(model, batch.input_ids, batch.attention_mask, batch.answer_len)
    with torch.no_grad():
        want = _full_slice(model, batch)
    torch.testing.assert_close(got.detach(), want, atol=1e-5, rtol=1e-5)
    got.float().logsumexp(-1).mean().backward()
    assert any(p.grad is not None for n, p in model.named_parameters() if "lora_" in n)


def test_rejects_bad_answer_length():
    model = build_tiny_model("llama", hidden_size=32, num_layers=1, num_heads=4, vocab_size=VOCAB)
    _, batch = _batch()
    with pytest.raises(ValueError, match="answer_len"):
        answer_logits(model, batch.input_ids, batch.attention_mask, batch.input_ids.shape[1])


@pytest.mark.parametrize("family", ["pythia", "qwen2.5", "llama"])
@pytest.mark.parametrize("checkpointing", [False, True])
def test_training_gradients_equal_the_full_forward(family, checkpointing):
    """Projecting only the answer positions changes no gradient, with or without activation checkpointing."""
    from qadistill.train.config import TrainConfig
    from qadistill.train.optim import prepare_trainable

    models = [
        prepare_trainable(
            build_tiny_model(family, hidden_size=32, num_layers=2, num_heads=4, vocab_size=VOCAB, seed=4),
            TrainConfig(gradient_checkpointing=checkpointing),
        )
        for _ in range(2)
    ]
    _, batch = _batch(1)
    answer_logits(models[0], batch.input_ids, batch.attention_mask, batch.answer_len).square().mean().backward()
    _full_slice(models[1], batch).square().mean().backward()
    for (name, a), (_, b) in zip(models[0].named_parameters(), models[1].named_parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-6, rtol=1e-4, msg=name)
