"""What makes a training step cheaper must not change it: the tied-embedding gradient written in place (one
process) or sparse (DDP), the fused AdamW, the contiguous LM-head input, and one tokenizer shared by teacher and
student."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from qadistill.models import build_tiny_model, same_tokenizer_files
from qadistill.objective import answer_objective
from qadistill.train.answer_logits import answer_logits
from qadistill.train.common import build_optimizer, clip_gradients
from qadistill.train.config import TrainConfig
from qadistill.train.tied_embedding import tied_embedding_gradient

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


def _assert_same_gradients(reference, model, **tolerance):
    for (name, a), (_, b) in zip(reference.named_parameters(), model.named_parameters(), strict=True):
        assert (a.grad is None) == (b.grad is None), name
        if a.grad is not None:
            assert not b.grad.is_sparse, name
            torch.testing.assert_close(b.grad, a.grad, msg=name, **tolerance)


@pytest.mark.parametrize("single_process", [True, False], ids=["in_place", "sparse"])
def test_tied_embedding_gradient_is_the_dense_gradient(single_process):
    ids = torch.randint(0, VOCAB, (3, 12), generator=torch.Generator().manual_seed(0))
    dense, cheap = _tied_model(), _tied_model()
    assert tied_embedding_gradient(cheap, single_process=single_process) == ("in_place" if single_process else "sparse")
    _loss(dense, ids).backward()
    _loss(cheap, ids).backward()
    _assert_same_gradients(dense, cheap, rtol=1e-5, atol=1e-7)


def test_in_place_tied_gradient_accumulates_resets_and_reuses_its_buffer():
    """Two micro-batches add up; after `zero_grad(set_to_none=True)` the next step starts from zero in the same
    storage; the padding row gets no gradient from the embedding; no-grad forwards are plain."""
    gen = torch.Generator().manual_seed(3)
    batches = [torch.randint(0, VOCAB, (2, 10), generator=gen) for _ in range(3)]
    dense, cheap = _tied_model(), _tied_model()
    for model in (dense, cheap):
        model.get_input_embeddings().padding_idx = int(batches[0][0, 0])
    assert tied_embedding_gradient(cheap, single_process=True) == "in_place"
    weight = cheap.get_input_embeddings().weight
    for model in (dense, cheap):
        _loss(model, batches[0]).backward()
        _loss(model, batches[1]).backward()
    _assert_same_gradients(dense, cheap, rtol=1e-5, atol=1e-7)
    storage = weight.grad.data_ptr()
    for model in (dense, cheap):
        model.zero_grad(set_to_none=True)
        _loss(model, batches[2]).backward()
    _assert_same_gradients(dense, cheap, rtol=1e-5, atol=1e-7)
    assert weight.grad.data_ptr() == storage
    with torch.no_grad():
        torch.testing.assert_close(cheap(batches[2]).logits, dense(batches[2]).logits)


def test_in_place_tied_gradient_without_the_head_and_under_autocast():
    ids = torch.randint(0, VOCAB, (2, 8), generator=torch.Generator().manual_seed(4))
    dense, cheap = _tied_model(), _tied_model()
    tied_embedding_gradient(cheap, single_process=True)
    for model in (dense, cheap):  # only the embedding in the graph: its rows alone, on a zeroed buffer
        model.get_input_embeddings()(ids).square().sum().backward()
    _assert_same_gradients(dense, cheap, rtol=0, atol=0)
    for model in (dense, cheap):  # autocast: the head keeps its own forward, autograd accumulates it first
        model.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            _loss(model, ids).backward()
    _assert_same_gradients(dense, cheap, rtol=1e-3, atol=1e-5)


def test_tied_embedding_gradient_only_for_trainable_tied_embeddings():
    untied = build_tiny_model("pythia", hidden_size=32, num_layers=1, num_heads=4, vocab_size=VOCAB, seed=0)
    assert tied_embedding_gradient(untied, single_process=True) is None
    assert not untied.get_input_embeddings().sparse and "forward" not in untied.get_input_embeddings().__dict__
    frozen = _tied_model()
    frozen.get_input_embeddings().weight.requires_grad_(False)
    assert tied_embedding_gradient(frozen, single_process=False) is None


def test_a_lone_sparse_gradient_is_made_dense_before_clipping():
    model = _tied_model()
    tied_embedding_gradient(model, single_process=False)
    ids = torch.randint(0, VOCAB, (2, 6))
    model.get_input_embeddings()(ids).sum().backward()  # the head never ran: only the sparse part exists
    weight = model.get_input_embeddings().weight
    assert weight.grad.is_sparse

    class NoAccelerator:
        @staticmethod
        def clip_grad_norm_(params, max_norm):
            return torch.nn.utils.clip_grad_norm_(params, max_norm)

    norm = clip_gradients(NoAccelerator(), model, TrainConfig(max_grad_norm=1.0))
    assert not weight.grad.is_sparse and norm > 0
    build_optimizer(model, TrainConfig()).step()  # the fused AdamW accepts it


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


def test_answer_logits_leave_no_hook_behind():
    model = _tied_model()
    ids = torch.randint(0, VOCAB, (2, 9))
    answer_logits(model, ids, torch.ones_like(ids), 3)
    assert not model.get_output_embeddings()._forward_pre_hooks


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
