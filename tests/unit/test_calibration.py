"""Calibration prompts for measured layer selection: real SQuAD v2 training questions encoded exactly as training
encodes them, chosen by the seed; and `choose_layers` for every form of `prune`."""

from __future__ import annotations

from pathlib import Path

import pytest

from qadistill.config import DataConfig, PromptConfig, PruneConfig
from qadistill.data.prepare import prepare_data, prompt_format
from qadistill.data.splits import cap
from qadistill.errors import QADistillError
from qadistill.models import build_tiny_model, load_real_tokenizer, spread_layers
from qadistill.train.batching import encode_examples
from qadistill.train.calibration import calibration_sequences, choose_layers


@pytest.fixture(scope="module")
def tokenizer(shared_data: Path):
    return load_real_tokenizer("pythia", shared_data / "tokenizers")


@pytest.fixture(scope="module")
def prepared(shared_data: Path):
    return prepare_data(DataConfig(dataset="squad_v2", data_dir=shared_data))


@pytest.mark.parametrize("shots", [0, 1])
def test_calibration_sequences_are_training_sequences(prepared, tokenizer, shots: int) -> None:
    fmt = prompt_format(prepared, PromptConfig(shots=shots, max_prompt_tokens=256))
    sequences = calibration_sequences(prepared, fmt, tokenizer, count=6, seed=3, max_answer_tokens=16)
    chosen = cap(prepared.split("train"), 6, 3)
    demo_pool = prepared.split("demo_pool") if shots else []
    expected = encode_examples(chosen, fmt, tokenizer, demo_pool, 3, 16)
    assert sequences == [(*e.prompt, *e.answer) for e in expected]  # prompt + gold answer, as training sees them
    train_ids = {ex.id for ex in prepared.split("train")}
    assert len(sequences) == 6 and {ex.id for ex in chosen} <= train_ids
    assert all(s[-1] == tokenizer.eos_token_id for s in sequences if len(s) < 256 + 16)
    if shots:  # the demonstration's context makes one-shot prompts longer
        zero = prompt_format(prepared, PromptConfig(shots=0, max_prompt_tokens=256))
        zero_shot = calibration_sequences(prepared, zero, tokenizer, count=6, seed=3, max_answer_tokens=16)
        assert sum(map(len, sequences)) > sum(map(len, zero_shot))


def test_calibration_depends_only_on_the_seed(prepared, tokenizer) -> None:
    fmt = prompt_format(prepared, PromptConfig(shots=1, max_prompt_tokens=128))
    first = calibration_sequences(prepared, fmt, tokenizer, count=5, seed=0, max_answer_tokens=8)
    again = calibration_sequences(prepared, fmt, tokenizer, count=5, seed=0, max_answer_tokens=8)
    other = calibration_sequences(prepared, fmt, tokenizer, count=5, seed=1, max_answer_tokens=8)
    assert first == again and first != other


def test_choose_layers_for_every_form(prepared, tokenizer) -> None:
    model = build_tiny_model("pythia", tokenizer, num_layers=6, hidden_size=32, num_heads=2)
    assert choose_layers(model, tokenizer, "half").kept == [0, 2, 5]
    explicit = choose_layers(model, tokenizer, [5, 0])
    assert (explicit.method, explicit.kept, explicit.scores) == ("indices", [0, 5], None)
    spread = choose_layers(model, tokenizer, PruneConfig(method="spread", keep=4))
    assert spread.kept == spread_layers(6, 4) == [0, 2, 3, 5] and spread.scores is None

    prompt = PromptConfig(shots=0, max_prompt_tokens=96)
    prune = PruneConfig(method="block_influence", keep=4, calibration_examples=5)
    choice = choose_layers(model, tokenizer, prune, data=prepared, prompt=prompt, seed=2, max_answer_tokens=8)
    assert len(choice.kept) == 4 and len(choice.scores) == 6 and choice.sequences == 5
    assert choice.calibration == {
        "split": "train", "examples": 5, "seed": 2, "shots": 0, "max_prompt_tokens": 96, "max_answer_tokens": 8,
    }  # fmt: skip
    block = choose_layers(
        model, tokenizer, prune.model_copy(update={"method": "block"}), data=prepared, prompt=prompt, seed=2,
        max_answer_tokens=8,
    )  # fmt: skip
    dropped = block.dropped
    assert len(block.scores) == 5 and dropped == list(range(dropped[0], dropped[0] + 2))
    assert block.to_json()["dropped"] == dropped

    with pytest.raises(QADistillError, match="needs data and prompt"):
        choose_layers(model, tokenizer, prune)
    with pytest.raises(QADistillError, match="between 1 and 5"):
        choose_layers(model, tokenizer, PruneConfig(method="spread", keep=6))
