"""What makes a training step cheaper must not change it: the fused AdamW, the sparse gradient of a tied embedding
lookup, and one tokenizer shared by teacher and student."""

from __future__ import annotations

from pathlib import Path

import torch

from qadistill.modeling import answer_logits
from qadistill.models import build_tiny_model, same_tokenizer_files
from qadistill.objective import answer_objective
from qadistill.train.config import TrainConfig
from qadistill.train.optim import build_optimizer, sparse_tied_embedding_gradient

VOCAB = 300


def _tied_model(seed: int = 0):
    model = build_tiny_model("qwen2.5", hidden_size=32, num_layers=2, num_heads=4, vocab_size=VOCAB, seed=seed)
    assert model.get_input_embeddings().weight is model.get_output_embeddings().weight
    return model


def _loss(model, ids):
    mask = torch.ones_like(ids)
    logits = answer_logits(model, ids, mask, 4)
    labels = ids[:, -4:]
    return answer_objective(logits, labels, torch.ones_like(labels, dtype=torch.bool)).loss


def test_optimizer_is_fused_on_cpu_and_trains_like_the_loop_version():
    fused_model, plain_model = _tied_model(1), _tied_model(1)
    fused = build_optimizer(fused_model, TrainConfig(lr=1e-2))
    unfused = build_optimizer(plain_model, TrainConfig(lr=1e-2), torch.device("meta"))  # no fused kernel there
    assert fused.defaults["fused"] and not unfused.defaults["fused"]
    ids = torch.randint(0, VOCAB, (2, 10), generator=torch.Generator().manual_seed(1))
    for model, optimizer in ((fused_model, fused), (plain_model, unfused)):
        for _ in range(3):
            _loss(model, ids).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    for a, b in zip(fused_model.parameters(), plain_model.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)  # updates are ~1e-2 per step


def test_sparse_tied_embedding_gradient_gives_the_dense_gradient_and_training():
    dense, sparse = _tied_model(2), _tied_model(2)
    assert sparse_tied_embedding_gradient(sparse) and sparse.get_input_embeddings().sparse
    ids = torch.randint(0, VOCAB, (3, 12), generator=torch.Generator().manual_seed(2))
    optimizers = [build_optimizer(model, TrainConfig(lr=1e-2)) for model in (dense, sparse)]
    for _ in range(3):
        for model in (dense, sparse):  # two micro-batches: the second adds into an existing dense .grad
            _loss(model, ids).backward()
            _loss(model, ids.flip(0)).backward()
        weight = sparse.get_input_embeddings().weight
        assert weight.grad is not None and weight.grad.layout == torch.strided  # AdamW only takes dense
        torch.testing.assert_close(weight.grad, dense.get_input_embeddings().weight.grad, rtol=1e-5, atol=1e-7)
        for optimizer in optimizers:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    for a, b in zip(dense.parameters(), sparse.parameters(), strict=True):  # Adam scales rounding noise of
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)  # near-zero gradients up to ~lr; updates are ~1e-2


def test_sparse_embedding_gradient_is_left_off_where_it_cannot_apply():
    untied = build_tiny_model("pythia", hidden_size=32, num_layers=2, num_heads=4, vocab_size=VOCAB)
    frozen = _tied_model()
    frozen.get_input_embeddings().weight.requires_grad_(False)
    for model in (untied, frozen):  # an untied embedding's own sparse .grad would reach AdamW
        assert not sparse_tied_embedding_gradient(model) and not model.get_input_embeddings().sparse


def _tokenizer_folder(folder: Path, template: str = "{{ x }}") -> Path:
    folder.mkdir()
    (folder / "tokenizer.json").write_text('{"model": {"vocab": {"a": 0}}}', "utf-8")
    (folder / "tokenizer_config.json").write_text('{"eos_token": "a"}', "utf-8")
    (folder / "chat_template.jinja").write_text(template, "utf-8")
    (folder / "model.safetensors").write_bytes(folder.name.encode())  # weights differ: irrelevant
    return folder


def test_same_tokenizer_files(tmp_path: Path):
    folder, twin = _tokenizer_folder(tmp_path / "a"), _tokenizer_folder(tmp_path / "b")
    assert same_tokenizer_files(folder, folder)
    assert same_tokenizer_files(folder, twin)
    assert not same_tokenizer_files(folder, _tokenizer_folder(tmp_path / "c", "{{ messages }}"))
    (twin / "merges.txt").write_text("a b", "utf-8")
    assert not same_tokenizer_files(folder, twin)  # a file only one of them has
    assert not same_tokenizer_files(folder, "Qwen/Qwen2.5-0.5B")
