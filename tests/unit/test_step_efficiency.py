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


class NoAccelerator:
    """What `clip_gradients` asks of accelerate in one process."""

    @staticmethod
    def clip_grad_norm_(params, max_norm):
        return torch.nn.utils.clip_grad_norm_(params, max_norm)


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
    assert tied_embedding_gradient(cheap, single_process=single_process).mode == (
        "in_place" if single_process else "sparse"
    )
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
    assert tied_embedding_gradient(cheap, single_process=True).mode == "in_place"
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


# ------------------------------------------------------------------------- factored tied gradient (one process)


def _train_windows(model, optimizer, windows, cfg, tied=None):
    """The loops' update: micro-batch backwards, clip, step, reset; returns the gradient norms."""
    from qadistill.train.common import finish_window

    norms = []
    for window in windows:
        for ids in window:
            _loss(model, ids).backward()
        norms.append(clip_gradients(NoAccelerator(), model, cfg, tied))
        finish_window(optimizer, tied, apply=True)
    return norms


@pytest.mark.parametrize("micro_batches", [1, 2, 5], ids=["one", "accumulated", "folded"])
def test_factored_tied_gradient_trains_like_the_dense_gradient(micro_batches):
    """Clipped norm, AdamW update and its state as with autograd's dense gradient; the padding row gets no
    embedding gradient. Five micro-batches of 8 answer rows outgrow the dense gradient (40 x (300 + 32) > 300 x 32):
    the factors are folded into it and the result is still the same."""
    gen = torch.Generator().manual_seed(7)
    windows = [[torch.randint(0, VOCAB, (2, 10), generator=gen) for _ in range(micro_batches)] for _ in range(3)]
    cfg = TrainConfig(lr=1e-2, max_grad_norm=0.5)
    dense, cheap = _tied_model(2), _tied_model(2)
    for model in (dense, cheap):
        model.get_input_embeddings().padding_idx = int(windows[0][0][0, 0])
    dense_opt, cheap_opt = build_optimizer(dense, cfg), build_optimizer(cheap, cfg)
    tied = tied_embedding_gradient(cheap, single_process=True, optimizer=cheap_opt)
    assert tied.mode == "factored"
    weight = cheap.get_input_embeddings().weight
    folded = []
    original_fold = tied.factored._fold
    tied.factored._fold = lambda: (folded.append(True), original_fold())

    dense_norms = _train_windows(dense, dense_opt, windows, cfg)
    cheap_norms = _train_windows(cheap, cheap_opt, windows, cfg, tied)

    assert weight.grad is None and not tied.factored.pending  # never a dense .grad; reset after each window
    assert bool(folded) == (micro_batches == 5)
    assert min(dense_norms) > cfg.max_grad_norm  # clipping took part
    torch.testing.assert_close(cheap_norms, dense_norms, rtol=1e-5, atol=0)
    for (name, a), (_, b) in zip(dense.named_parameters(), cheap.named_parameters(), strict=True):
        # the key bias gets a 0 gradient up to rounding (softmax ignores a shift): its AdamW step is noise
        if "k_proj.bias" not in name:
            torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=name)
    for key in ("exp_avg", "exp_avg_sq", "step"):
        torch.testing.assert_close(cheap_opt.state[weight][key], dense_opt.state[dense.lm_head.weight][key])


def test_factored_tied_gradient_state_is_checkpointed_with_the_optimizer():
    """Its AdamW state lives in the optimizer: saved and loaded with it, a resumed run continues identically."""
    gen = torch.Generator().manual_seed(8)
    windows = [[torch.randint(0, VOCAB, (2, 10), generator=gen)] for _ in range(4)]
    cfg = TrainConfig(lr=1e-2, max_grad_norm=1.0)
    straight = _tied_model(3)
    straight_opt = build_optimizer(straight, cfg)
    _train_windows(
        straight,
        straight_opt,
        windows,
        cfg,
        tied_embedding_gradient(straight, single_process=True, optimizer=straight_opt),
    )

    first = _tied_model(3)
    first_opt = build_optimizer(first, cfg)
    _train_windows(
        first, first_opt, windows[:2], cfg, tied_embedding_gradient(first, single_process=True, optimizer=first_opt)
    )
    resumed = _tied_model(3)
    resumed.load_state_dict(first.state_dict())
    resumed_opt = build_optimizer(resumed, cfg)
    resumed_opt.load_state_dict(first_opt.state_dict())
    _train_windows(
        resumed,
        resumed_opt,
        windows[2:],
        cfg,
        tied_embedding_gradient(resumed, single_process=True, optimizer=resumed_opt),
    )
    for (name, a), (_, b) in zip(straight.named_parameters(), resumed.named_parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=0, msg=name)


def test_factored_tied_gradient_only_with_a_fused_adamw_and_never_under_autocast():
    model = _tied_model()
    unfused = build_optimizer(model, TrainConfig(), torch.device("meta"))
    assert tied_embedding_gradient(model, single_process=True, optimizer=unfused).mode == "in_place"
    model = _tied_model()
    tied_embedding_gradient(model, single_process=True, optimizer=build_optimizer(model, TrainConfig()))
    ids = torch.randint(0, VOCAB, (2, 8))
    with torch.autocast("cpu", dtype=torch.bfloat16), pytest.raises(RuntimeError, match="autocast"):
        _loss(model, ids)


@pytest.mark.parametrize("device", [None, torch.device("meta")], ids=["fused", "foreach"])
def test_adamw_state_allocated_up_front_trains_identically(device):
    from qadistill.train.adamw_rows import allocate_adamw_state

    ids = torch.randint(0, VOCAB, (2, 10), generator=torch.Generator().manual_seed(9))
    lazy, eager = _tied_model(4), _tied_model(4)
    lazy_opt, eager_opt = (
        build_optimizer(lazy, TrainConfig(lr=1e-2), device),
        build_optimizer(eager, TrainConfig(lr=1e-2), device),
    )
    allocate_adamw_state(eager_opt)
    assert len(eager_opt.state) == len(list(eager.parameters())) and not lazy_opt.state
    for model, optimizer in ((lazy, lazy_opt), (eager, eager_opt)):
        for _ in range(2):
            _loss(model, ids).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    for a, b in zip(lazy.parameters(), eager.parameters(), strict=True):
        torch.testing.assert_close(b, a, rtol=0, atol=0)
    assert str(lazy_opt.state_dict()) == str(eager_opt.state_dict())
