"""Batched greedy generation gives the same answers as one sequence at a time, and stops at a newline."""

from __future__ import annotations

import pytest

from qadistill.generation import GenerationSettings, generate_answers, stop_token_ids
from qadistill.models import build_tiny_model, load_real_tokenizer


@pytest.fixture(scope="module")
def tiny_pythia(shared_data):
    tokenizer = load_real_tokenizer("pythia", shared_data / "tokenizers")
    model = build_tiny_model("pythia", tokenizer, hidden_size=64, num_layers=2, num_heads=4, seed=3).eval()
    return model, tokenizer


PROMPTS = [
    "Context: The mill stands by the river.\nQuestion: Where is the mill?\nAnswer:",
    "Question: Who?\nAnswer:",
    "Context: A long context " + "with many words " * 20 + "\nQuestion: What?\nAnswer:",
    "Hello",
    "Context: Zwei Brücken über die Straße.\nFrage: Wie viele?\nAntwort:",
]


def test_batched_equals_one_at_a_time(tiny_pythia):
    model, tokenizer = tiny_pythia
    settings = GenerationSettings(batch_size=4, max_new_tokens=12)
    batched = generate_answers(model, tokenizer, PROMPTS, settings, progress=False)
    single = [generate_answers(model, tokenizer, [p], GenerationSettings(1, 12), progress=False)[0] for p in PROMPTS]
    assert batched == single
    assert any(text.strip() for text in batched)


def test_generation_stops_at_first_newline(tiny_pythia):
    model, tokenizer = tiny_pythia
    newline = tokenizer("\n", add_special_tokens=False)["input_ids"][0]
    assert newline in stop_token_ids(tokenizer, model)
    # Force the model to emit a newline as its 3rd token: push the LM head towards it after two steps.
    calls = {"n": 0}

    def push_newline(module, inputs, output):
        calls["n"] += 1
        if calls["n"] >= 3:
            output = output.clone()
            output[..., newline] += 1e4
        return output

    handle = model.get_output_embeddings().register_forward_hook(push_newline)
    try:
        text = generate_answers(model, tokenizer, [PROMPTS[0]], GenerationSettings(1, 20), progress=False)[0]
    finally:
        handle.remove()
    assert text.endswith("\n") and text.count("\n") == 1
    assert len(tokenizer(text, add_special_tokens=False)["input_ids"]) <= 3


SHARED_PREFIX_PROMPTS = [
    "Answer with a span.\n\nContext: " + c + "\nQuestion: " + q + "\nAnswer:"
    for c, q in [
        ("The mill stands by the river.", "Where is the mill?"),
        ("The mill stands by the river.", "What stands by the river?"),
        ("A long context " + "with many words " * 15, "What?"),
        ("Kurz.", "Wer?"),
    ]
] + ["Answer", "x"]


@pytest.mark.parametrize("family", ["pythia", "qwen2.5"])
def test_per_prompt_prefill_equals_batched_prefill_and_plain_generate(shared_data, family):
    """Prefill per prompt over the shared prefix's cache, then batched decoding: the same tokens as prefilling
    the padded batch at once, and as one plain `generate` per prompt."""
    import torch

    from qadistill.tokenize import prompt_ids

    tokenizer = load_real_tokenizer(family, shared_data / "tokenizers")
    model = build_tiny_model(family, tokenizer, hidden_size=64, num_layers=2, num_heads=4, seed=5).eval()
    results = {
        mode: generate_answers(
            model, tokenizer, SHARED_PREFIX_PROMPTS, GenerationSettings(3, 10, prefill=mode), progress=False
        )
        for mode in ("per_prompt", "batched")
    }
    assert results["per_prompt"] == results["batched"]
    stops = stop_token_ids(tokenizer, model)
    for prompt, answer in zip(SHARED_PREFIX_PROMPTS, results["per_prompt"], strict=True):
        ids = torch.tensor([prompt_ids(tokenizer, prompt)])
        with torch.inference_mode():
            out = model.generate(
                input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=10, do_sample=False,
                eos_token_id=stops, pad_token_id=tokenizer.pad_token_id,
            )  # fmt: skip
        assert answer == tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
