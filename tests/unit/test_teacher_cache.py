"""The teacher-logit cache: top-k rows, build/load roundtrip, keys, retrieval by example index, and the sparse
loss from the cache against the live teacher and against the dense loss (tiny models, small vocabulary)."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
import torch

from qadistill.errors import QADistillError
from qadistill.losses import get_divergence, get_sparse_divergence
from qadistill.modeling import answer_logits
from qadistill.models import build_tiny_model
from qadistill.train.batching import TokenizedExample, collate
from qadistill.train.teacher_cache import (
    CacheSettings,
    CacheTeacher,
    build_cache,
    cache_key,
    examples_fingerprint,
    files_fingerprint,
    load_cache,
    model_fingerprint,
    prepare_cache,
    resolve_cache_root,
    tokenizer_fingerprint,
    topk_logprobs,
)

VOCAB = 300  # the model's rows; the "tokenizer" has the first 280 (as with Qwen2.5's padded embeddings)
SHARED = 280
PAD = 0
DIVERGENCES = ["forward_kl", "reverse_kl", "skl", "srkl", "jsd", "tvd"]


def params(name: str) -> dict:
    return {"skl": {"alpha": 0.1}, "srkl": {"alpha": 0.1}, "jsd": {"beta": 0.5}}.get(name, {})


@pytest.fixture(scope="module")
def teacher():
    return build_tiny_model("pythia", hidden_size=32, num_layers=2, num_heads=4, vocab_size=VOCAB, seed=3)


@pytest.fixture(scope="module")
def examples() -> list[TokenizedExample]:
    rng = random.Random(0)
    out = []
    for i in range(11):
        prompt = tuple(rng.randrange(1, SHARED) for _ in range(rng.randint(3, 12)))
        answer = tuple(rng.randrange(1, SHARED) for _ in range(rng.randint(1, 5)))
        out.append(TokenizedExample(prompt, answer, f"q{i}"))
    return out


def build(teacher, examples, folder: Path, *, k: int = 8, batch_size: int = 4, temperature: float = 1.0) -> Path:
    build_cache(
        teacher,
        examples,
        folder,
        key=folder.name,
        key_doc={},
        settings=CacheSettings(vocab=SHARED, k=k, temperature=temperature, batch_size=batch_size, pad_id=PAD),
        info={"teacher_params": 1, "teacher_layers": 2},
        progress=False,
    )
    return folder


def live_logits(teacher, items: list[TokenizedExample]):
    batch = collate(items, PAD)
    with torch.inference_mode():
        logits = answer_logits(teacher, batch.input_ids, batch.attention_mask, batch.answer_len)[..., :SHARED]
    return logits, batch


def test_topk_rows_are_log_probabilities_with_a_stable_tail():
    torch.manual_seed(0)
    logits = torch.randn(5, 50) * 3
    ids, logprobs, tail = topk_logprobs(logits, 7, temperature=2.0)
    full = torch.log_softmax(logits / 2.0, dim=-1)
    assert torch.equal(ids, full.topk(7).indices)
    torch.testing.assert_close(logprobs, full.gather(-1, ids))
    rest = full.scatter(-1, ids, float("-inf")).logsumexp(-1)
    torch.testing.assert_close(tail, rest)
    torch.testing.assert_close((torch.cat([logprobs, tail[:, None]], -1)).logsumexp(-1), torch.zeros(5))
    # a peaked row: 1 - sum(exp(top-k)) rounds to 0 in fp32, the stored tail keeps its value
    peaked = torch.zeros(1, 50)
    peaked[0, 0] = 40.0
    _, lp, tail = topk_logprobs(peaked, 1)
    assert 1 - lp.exp().sum() == 0 and tail.item() == pytest.approx(math.log(49) - 40.0, abs=1e-5)
    _, _, none_left = topk_logprobs(logits, 50)
    assert torch.isneginf(none_left).all()


def test_build_load_roundtrip_and_retrieval_by_example_index(teacher, examples, tmp_path, monkeypatch):
    monkeypatch.setattr("qadistill.train.teacher_cache.EXAMPLES_PER_SHARD", 4)  # 11 examples -> 3 shards
    folder = build(teacher, examples, tmp_path / "key1")
    meta = json.loads((folder / "meta.json").read_text())
    assert [s["file"] for s in meta["shards"]] == [f"shard-0000{i}.safetensors" for i in range(3)]
    assert meta["n_positions"] == sum(len(ex.answer) for ex in examples)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary folder left behind

    cache = load_cache(folder, examples)
    assert len(cache) == len(examples) and cache.k == 8
    assert cache.ids.dtype == torch.int32 and cache.logprobs.dtype == torch.float32
    # any batch composition: the rows of example i sit in the last len(answer_i) answer columns of its row
    picks = [7, 2, 10, 2]
    items = [examples[i] for i in picks]
    logits, batch = live_logits(teacher, items)
    rows = cache.batch(picks, batch.answer_len)
    _, mask = batch.targets()
    ids, logprobs, tail = topk_logprobs(logits[mask], 8)
    assert torch.equal(rows.ids[mask], ids)
    torch.testing.assert_close(rows.logprobs[mask], logprobs, rtol=0, atol=1e-5)
    torch.testing.assert_close(rows.tail[mask], tail, rtol=0, atol=1e-5)
    assert (rows.ids[~mask] == 0).all()


@pytest.mark.parametrize("name", DIVERGENCES)
def test_sparse_loss_from_cache_equals_live_top_k(teacher, examples, tmp_path, name):
    """The cache holds exactly what top-k'ing the live teacher gives: the same sparse loss."""
    cache = load_cache(build(teacher, examples, tmp_path / "c", batch_size=len(examples)), examples)
    picks = [3, 0, 9, 5, 1]
    logits, batch = live_logits(teacher, [examples[i] for i in picks])
    _, mask = batch.targets()
    student = torch.randn(*mask.shape, SHARED, generator=torch.Generator().manual_seed(1)) * 2
    ids, logprobs, tail = (t.reshape(*mask.shape, -1).squeeze(-1) for t in topk_logprobs(logits, 8))
    sparse = get_sparse_divergence(name)
    live = sparse(student, ids, logprobs, mask, teacher_tail_logprobs=tail, **params(name))
    rows = cache.batch(picks, batch.answer_len)
    cached = sparse(student, rows.ids, rows.logprobs, mask, teacher_tail_logprobs=rows.tail, **params(name))
    torch.testing.assert_close(cached, live, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("name", DIVERGENCES)
def test_sparse_from_cache_vs_dense(teacher, examples, tmp_path, name):
    """k = V: the dense value; k < V: a lower bound (data processing); k = V - 1: nearly the dense value."""
    picks = list(range(6))
    logits, batch = live_logits(teacher, [examples[i] for i in picks])
    _, mask = batch.targets()
    student = torch.randn(*mask.shape, SHARED, generator=torch.Generator().manual_seed(2))
    dense = get_divergence(name)(student, logits, mask, **params(name))
    sparse = get_sparse_divergence(name)
    values = {}
    for k in (4, 64, SHARED - 1, SHARED):
        cache = load_cache(build(teacher, examples, tmp_path / f"k{k}", k=k), examples)
        rows = cache.batch(picks, batch.answer_len)
        values[k] = sparse(student, rows.ids, rows.logprobs, mask, teacher_tail_logprobs=rows.tail, **params(name))
    torch.testing.assert_close(values[SHARED], dense, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(values[SHARED - 1], dense, rtol=1e-3, atol=1e-4)
    assert values[4] <= values[64] + 1e-6 and values[64] <= dense + 1e-6


def test_temperature_is_applied_when_building(teacher, examples, tmp_path):
    cache = load_cache(build(teacher, examples, tmp_path / "t2", k=SHARED, temperature=2.0), examples)
    logits, batch = live_logits(teacher, examples[:3])
    _, mask = batch.targets()
    student = torch.randn(*mask.shape, SHARED, generator=torch.Generator().manual_seed(3))
    rows = cache.batch([0, 1, 2], batch.answer_len)
    sparse = get_sparse_divergence("forward_kl")(
        student, rows.ids, rows.logprobs, mask, temperature=2.0, teacher_tail_logprobs=rows.tail
    )
    dense = get_divergence("forward_kl")(student, logits, mask, temperature=2.0)
    torch.testing.assert_close(sparse, dense, rtol=1e-5, atol=1e-6)


def test_first_published_build_wins_and_damage_is_reported(teacher, examples, tmp_path):
    folder = build(teacher, examples, tmp_path / "race", k=4)
    first = (folder / "meta.json").read_text()
    build(teacher, examples, folder, k=4)  # a concurrent build finishing second: discarded
    assert (folder / "meta.json").read_text() == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["race"]
    with pytest.raises(QADistillError, match="do not match the training examples"):
        load_cache(folder, examples[:-1])
    (folder / "shard-00000.safetensors").write_bytes(b"garbage")
    with pytest.raises(QADistillError, match="damaged.*delete the folder"):
        load_cache(folder, examples)


class StubTokenizer:
    def __init__(self, extra: str | None = None) -> None:
        self.vocab = {f"t{i}": i for i in range(SHARED)} | ({extra: SHARED} if extra else {})
        self.bos_token, self.eos_token, self.unk_token = None, "t1", None
        self.all_special_tokens = ["t1"]

    def get_vocab(self):
        return dict(self.vocab)

    def __len__(self) -> int:
        return len(self.vocab)


def key_of(**changes) -> str:
    parts = {
        "teacher": "w",
        "teacher_dtype": "float32",
        "tokenizer": tokenizer_fingerprint(StubTokenizer()),
        "examples": "e",
        "prompt": {"shots": 0},
        "vocab": SHARED,
        "k": 64,
        "temperature": 1.0,
    }
    return cache_key(**(parts | changes))[0]


def test_key_follows_weights_tokenizer_data_prompt_k_and_temperature(teacher, examples, tmp_path):
    assert key_of() == key_of()
    for change in (
        {"teacher": "w2"},
        {"teacher_dtype": "bfloat16"},
        {"tokenizer": tokenizer_fingerprint(StubTokenizer("extra"))},
        {"examples": "e2"},
        {"prompt": {"shots": 1}},
        {"k": 32},
        {"temperature": 2.0},
    ):
        assert key_of(**change) != key_of(), change
    # the parts themselves: weights (tensors or files), data
    other = build_tiny_model("pythia", hidden_size=32, num_layers=2, num_heads=4, vocab_size=VOCAB, seed=4)
    assert model_fingerprint(teacher) == model_fingerprint(teacher) != model_fingerprint(other)
    assert examples_fingerprint(examples) == examples_fingerprint(list(examples))
    assert examples_fingerprint(examples) != examples_fingerprint(examples[::-1])
    changed = TokenizedExample(examples[0].prompt, examples[0].answer[:-1] + (5,), examples[0].id)
    assert examples_fingerprint([changed, *examples[1:]]) != examples_fingerprint(examples)
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    a.write_bytes(b"weights")
    b.write_bytes(b"weights")
    memo = tmp_path / "memo.json"
    assert files_fingerprint([a], memo) == files_fingerprint([a], memo)  # second time from the memo
    b.write_bytes(b"weightz")
    assert files_fingerprint([a], memo) != files_fingerprint([b], memo)


def test_prepare_builds_once_then_never_loads_the_teacher(teacher, examples, tmp_path, monkeypatch):
    monkeypatch.setattr("qadistill.train.teacher_cache.teacher_weight_files", lambda spec: None)
    settings = CacheSettings(vocab=SHARED, k=16, temperature=1.0, batch_size=4, pad_id=PAD)
    kwargs = {"root": tmp_path, "tokenizer": StubTokenizer(), "examples": examples, "prompt": {"shots": 0}}
    kwargs |= {"progress": False}

    def in_memory(model, load) -> CacheTeacher:
        return CacheTeacher(spec="in-memory", dtype="float32", model=model, load=load)

    loads = []
    first = prepare_cache(teacher=in_memory(None, lambda: loads.append(1) or teacher), settings=settings, **kwargs)
    assert first.built and loads == [1]
    summary = first.summary()
    assert summary["key"] == first.cache.key and summary["k"] == 16 and summary["built"]
    # with the teacher in hand (a pruned student) the cache is found again, and nothing is loaded
    held = in_memory(teacher, lambda: pytest.fail("loaded"))
    again = prepare_cache(teacher=held, settings=settings, **kwargs)
    assert not again.built and again.cache.key == first.cache.key
    k8 = CacheSettings(vocab=SHARED, k=8, temperature=1.0, batch_size=4, pad_id=PAD)
    assert prepare_cache(teacher=held, settings=k8, **kwargs).cache.key != first.cache.key
    huge_k = CacheSettings(vocab=SHARED, k=10**6, temperature=1.0, batch_size=4, pad_id=PAD)
    huge = prepare_cache(teacher=held, settings=huge_k, **kwargs)
    assert huge.cache.k == SHARED  # k is capped at the shared vocabulary


def test_default_cache_root_follows_qadistill_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("QADISTILL_CACHE", str(tmp_path))
    assert resolve_cache_root(None) == tmp_path / "teacher_logits"
    assert resolve_cache_root(tmp_path / "x") == tmp_path / "x"
