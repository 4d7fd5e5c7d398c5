"""Batched greedy generation gives the same answers as one sequence at a time, and stops at a newline."""

from __future__ import annotations

import pytest

from qadistill.config import GenerationConfig
from qadistill.generation import generate_answers, stop_token_ids
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
    settings = GenerationConfig(batch_size=4, max_new_tokens=12)
    batched = generate_answers(model, tokenizer, PROMPTS, settings, progress=False)
    single = [
        generate_answers(model, tokenizer, [p], GenerationConfig(batch_size=1, max_new_tokens=12), progress=False)[0]
        for p in PROMPTS
    ]
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
        text = generate_answers(
            model, tokenizer, [PROMPTS[0]], GenerationConfig(batch_size=1, max_new_tokens=20), progress=False
        )[0]
    finally:
        handle.remove()
    assert text.endswith("\n") and text.count("\n") == 1
    assert len(tokenizer(text, add_special_tokens=False)["input_ids"]) <= 3


LONG_CONTEXT = "The mill stands by the river, " + "where the old road crosses the water and the carts wait, " * 3
SHARED_PREFIX_PROMPTS = [
    "Answer with a span.\n\nContext: " + c + "\nQuestion: " + q + "\nAnswer:"
    for c, q in [
        (LONG_CONTEXT, "Where is the mill?"),
        (LONG_CONTEXT, "What stands by the river?"),
        ("A long context " + "with many words " * 15, "What?"),
        (LONG_CONTEXT, "Who waits?"),
        ("Kurz.", "Wer?"),
    ]
] + ["Answer", "x"]


def _plain_generate(model, tokenizer, prompt: str, max_new_tokens: int) -> str:
    import torch

    from qadistill.tokenize import prompt_ids

    ids = torch.tensor([prompt_ids(tokenizer, prompt)])
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens, do_sample=False,
            eos_token_id=stop_token_ids(tokenizer, model), pad_token_id=tokenizer.pad_token_id,
        )  # fmt: skip
    return tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


@pytest.mark.parametrize("family", ["pythia", "qwen2.5", "llama"])
def test_per_prompt_prefill_equals_batched_prefill_and_plain_generate(shared_data, family):
    """Prefill per prompt over shared prefixes (all prompts' and the three questions on one context), decode on a
    static cache dropping rows as they stop: the same tokens as `generate` on padded batches, and as one plain
    `generate` per prompt."""
    from qadistill.prefix_decoding import group_by_prefix, shared_prefix_length
    from qadistill.tokenize import prompt_ids

    tokenizer = load_real_tokenizer("qwen2.5" if family == "llama" else family, shared_data / "tokenizers")
    vocab = 151_936 if family == "llama" else None  # the Llama architecture with a tokenizer that is here
    model = build_tiny_model(family, tokenizer, hidden_size=64, num_layers=2, num_heads=4, vocab_size=vocab, seed=5)
    model.eval()
    encoded = [prompt_ids(tokenizer, p) for p in SHARED_PREFIX_PROMPTS]
    groups = group_by_prefix(encoded, shared_prefix_length(encoded))
    assert sorted(len(g) for g in groups)[-1] == 3  # the questions on LONG_CONTEXT share their prefix
    results = {
        mode: generate_answers(
            model,
            tokenizer,
            SHARED_PREFIX_PROMPTS,
            GenerationConfig(batch_size=4, max_new_tokens=10, prefill=mode),
            progress=False,
        )
        for mode in ("per_prompt", "batched")
    }
    assert results["per_prompt"] == results["batched"]
    assert len({len(tokenizer(a)["input_ids"]) for a in results["per_prompt"]}) > 1  # rows stopped at different steps
    for prompt, answer in zip(SHARED_PREFIX_PROMPTS, results["per_prompt"], strict=True):
        assert answer == _plain_generate(model, tokenizer, prompt, 10)


def test_models_whose_greedy_search_is_not_plain_use_generate(tiny_pythia):
    """A repetition penalty in the model's generation config (or a sliding-window cache) is left to `generate`;
    the answers still equal one plain `generate` per prompt."""
    from qadistill.prefix_decoding import plain_greedy

    model, tokenizer = tiny_pythia
    assert plain_greedy(model)
    model.generation_config.repetition_penalty = 1.5
    try:
        assert not plain_greedy(model)
        answers = generate_answers(
            model,
            tokenizer,
            PROMPTS,
            GenerationConfig(batch_size=4, max_new_tokens=8, prefill="per_prompt"),
            progress=False,
        )
        assert answers == [_plain_generate(model, tokenizer, p, 8) for p in PROMPTS]
    finally:
        model.generation_config.repetition_penalty = 1.0


def test_sliding_window_models_fall_back_to_generate(shared_data):
    from qadistill.prefix_decoding import plain_greedy

    tokenizer = load_real_tokenizer("qwen2.5", shared_data / "tokenizers")
    model = build_tiny_model("qwen2.5", tokenizer, hidden_size=64, num_layers=2, num_heads=4, seed=1).eval()
    model.config.use_sliding_window, model.config.sliding_window, model.config.max_window_layers = True, 8, 0
    model.config.layer_types = ["sliding_attention"] * 2
    assert not plain_greedy(model)


def test_prefix_groups_and_decode_order():
    from qadistill.prefix_decoding import MIN_SHARED_TOKENS, decode_order, group_by_prefix, shared_prefix_length

    root = [7, 7, 7]
    context = list(range(100, 100 + MIN_SHARED_TOKENS))
    prompts = [
        root + context + [1, 2, 3],  # 0: with 1 and 3, shares root + context
        root + [9] * 30,  # 1: alone, longest
        root + context + [4, 5],  # 2
        root + context[:-1] + [6, 6, 6, 6],  # 3: one token short of the group's bar
        root + [8],  # 4
    ]
    assert shared_prefix_length(prompts) == 3
    assert shared_prefix_length([[1, 2], [1, 2, 3]]) == 1  # each prompt keeps its last token
    groups = group_by_prefix(prompts, 3)
    assert sorted(map(sorted, groups)) == [[0, 2], [1], [3], [4]]
    order = decode_order(prompts, groups)
    assert order[0] == 1 and abs(order.index(0) - order.index(2)) == 1  # longest first, a group stays together
    assert sorted(order) == list(range(5))


@pytest.mark.parametrize("family", ["pythia", "qwen2.5"])
def test_every_decoding_step_sees_what_a_full_forward_sees(shared_data, family):
    """The logits of each row at each decoding step (rows leaving as they stop) equal those of
    one forward pass over that row's prompt and answer so far, without any cache."""
    import torch

    from qadistill.prefix_decoding import extend_prefix, greedy_decode, prefill_batch, run_prefix, shared_prefix_length
    from qadistill.tokenize import prompt_ids

    tokenizer = load_real_tokenizer(family, shared_data / "tokenizers")
    model = build_tiny_model(family, tokenizer, hidden_size=64, num_layers=2, num_heads=4, seed=7).eval()
    with torch.no_grad():  # sharper attention, so that a wrong position or mask changes the logits visibly
        for name, param in model.named_parameters():
            if any(key in name for key in ("q_proj", "k_proj", "query_key_value")):
                param.mul_(8.0)
        head = model.get_output_embeddings()  # a head of its own: a tiny tied model only repeats its input token
        head.weight = torch.nn.Parameter(torch.randn(head.weight.shape, generator=torch.Generator().manual_seed(0)))
    prompts = [prompt_ids(tokenizer, p) for p in SHARED_PREFIX_PROMPTS[:5]]
    seen = []
    handle = model.register_forward_hook(lambda module, args, output: seen.append(output.logits[:, -1].clone()))

    def decode(stops):
        with torch.inference_mode():
            root = run_prefix(model, prompts[0][: shared_prefix_length(prompts)], "cpu")
            assert extend_prefix(model, root, [], "cpu") is root
            batch = prefill_batch(model, prompts, root, "cpu", max_new_tokens=12)
            seen.clear()  # only the decoding steps
            return greedy_decode(
                model, batch, [p[-1] for p in prompts], [len(p) for p in prompts], stops=stops, max_new_tokens=12,
                device="cpu",
            )  # fmt: skip

    unstopped = decode([])
    stops: list[int] = []  # a stop set under which rows leave at different steps
    for row, step in ((0, 1), (3, 4), (2, 7), (1, 9)):
        if not set(unstopped[row][:step]) & set(stops):
            stops.append(unstopped[row][step])
    answers = decode(stops)
    handle.remove()
    for full, answer in zip(unstopped, answers, strict=True):
        cut = next((i + 1 for i, token in enumerate(full) if token in stops), len(full))
        assert answer == full[:cut]
    assert len({len(a) for a in answers}) > 2
    for step, logits in enumerate(seen):
        active = [row for row, answer in enumerate(answers) if len(answer) > step]
        assert logits.shape[0] == len(active)
        for logit_row, row in zip(logits, active, strict=True):
            ids = torch.tensor([prompts[row] + answers[row][:step]])
            with torch.inference_mode():
                expected = model(input_ids=ids).logits[0, -1]
            torch.testing.assert_close(logit_row, expected, rtol=1e-4, atol=1e-4)


def test_one_token_prompts_decode_without_a_prefilled_cache(tiny_pythia):
    model, tokenizer = tiny_pythia
    prompts = ["x", "Hello"]
    assert all(len(tokenizer(p)["input_ids"]) == 1 for p in prompts)
    answers = generate_answers(
        model,
        tokenizer,
        prompts,
        GenerationConfig(batch_size=4, max_new_tokens=6, prefill="per_prompt"),
        progress=False,
    )
    assert answers == [_plain_generate(model, tokenizer, p, 6) for p in prompts]
