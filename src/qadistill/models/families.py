"""The model families of the study, their real configurations and sizes, without downloading anything.

Architecture settings are copied from the published config.json files (Pythia / GPT-NeoX, Qwen2.5,
SmolLM2 / Llama), so tiny test models and meta-device parameter counts use the real code paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    GPTNeoXConfig,
    LlamaConfig,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Qwen2Config,
)

from qadistill.errors import QADistillError

Arch = Literal["pythia", "qwen2.5", "llama"]

# Settings shared by every model of a family (from the published config.json files).
PYTHIA_SETTINGS: dict[str, Any] = {
    "hidden_act": "gelu",
    "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.25},
    "use_parallel_residual": True,
    "layer_norm_eps": 1e-5,
    "attention_bias": True,
    "bos_token_id": 0,
    "eos_token_id": 0,
    "tie_word_embeddings": False,
    "initializer_range": 0.02,
}
QWEN25_SETTINGS: dict[str, Any] = {
    "hidden_act": "silu",
    "rms_norm_eps": 1e-6,
    "bos_token_id": 151643,
    "eos_token_id": 151643,
    "use_sliding_window": False,
    "attention_dropout": 0.0,
    "initializer_range": 0.02,
}
SMOLLM2_SETTINGS: dict[str, Any] = {
    "hidden_act": "silu",
    "rms_norm_eps": 1e-5,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "pad_token_id": 2,
    "attention_bias": False,
    "mlp_bias": False,
    "initializer_range": 0.02,
}
DEFAULT_VOCAB: dict[str, int] = {"pythia": 50304, "qwen2.5": 151936, "llama": 49152}
DEFAULT_ROPE_THETA: dict[str, float] = {"pythia": 10000.0, "qwen2.5": 1_000_000.0, "llama": 100_000.0}
DEFAULT_TIED: dict[str, bool] = {"pythia": False, "qwen2.5": True, "llama": True}


def build_config(  # noqa: PLR0913  the sizes of a transformers config, keyword-only, all but three defaulted
    arch: Arch,
    *,
    hidden_size: int,
    num_layers: int,
    num_heads: int,
    num_kv_heads: int | None = None,
    intermediate_size: int,
    vocab_size: int | None = None,
    tie_word_embeddings: bool | None = None,
    max_position_embeddings: int = 2048,
    rope_theta: float | None = None,
) -> PretrainedConfig:
    """A real transformers config of the family `arch` with the given sizes."""
    vocab = vocab_size or DEFAULT_VOCAB.get(arch, 0)
    tied = DEFAULT_TIED.get(arch, False) if tie_word_embeddings is None else tie_word_embeddings
    theta = rope_theta or DEFAULT_ROPE_THETA.get(arch, 10000.0)
    if num_heads <= 0 or hidden_size % num_heads:
        raise QADistillError(f"hidden_size {hidden_size} is not divisible by num_heads {num_heads}")
    sizes: dict[str, Any] = {
        "hidden_size": hidden_size,
        "num_hidden_layers": num_layers,
        "num_attention_heads": num_heads,
        "intermediate_size": intermediate_size,
        "vocab_size": vocab,
        "max_position_embeddings": max_position_embeddings,
        "tie_word_embeddings": tied,
    }
    if arch == "pythia":
        if num_kv_heads not in (None, num_heads):
            raise QADistillError("GPT-NeoX (Pythia) has no grouped-query attention; leave num_kv_heads unset")
        settings = dict(PYTHIA_SETTINGS, tie_word_embeddings=tied)
        settings["rope_parameters"] = dict(settings["rope_parameters"], rope_theta=theta)
        return GPTNeoXConfig(**{**settings, **sizes})
    kv = num_heads if num_kv_heads is None else num_kv_heads
    if kv <= 0 or num_heads % kv:
        raise QADistillError(f"num_heads {num_heads} is not divisible by num_kv_heads {kv}")
    rope = {"rope_type": "default", "rope_theta": theta}
    if arch == "qwen2.5":
        return Qwen2Config(
            **QWEN25_SETTINGS, **sizes, num_key_value_heads=kv, max_window_layers=num_layers, rope_parameters=rope
        )
    if arch == "llama":
        return LlamaConfig(**SMOLLM2_SETTINGS, **sizes, num_key_value_heads=kv, rope_parameters=rope)
    raise QADistillError(f"unknown model family '{arch}'; use pythia, qwen2.5 or llama")


@dataclass(frozen=True)
class ModelInfo:
    """One published model: where it lives on the hub, its architecture and its size."""

    name: str
    hub_id: str
    family: str  # "pythia" | "qwen2.5" | "smollm2"
    arch: Arch
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool
    max_position_embeddings: int
    rope_theta: float
    params_total: int  # exact, = count_params_from_config(self.config()) (checked by the tests)
    params_non_embedding: int  # total minus input embedding and an untied output embedding
    published_total: float  # as the model card / paper states it, to check the table against
    published_non_embedding: float | None = None

    @property
    def nominal_params(self) -> int:
        """The size in the model's name (`qwen2.5-7b` -> 7e9, `smollm2-135m` -> 135e6): what papers compare.

        The paper's "57.1% fewer parameters" is 1 - 3/7 from the names Qwen2.5-7B and -3B; the exact counts give
        59.5%. The report states both.
        """
        size = self.name.rsplit("-", 1)[-1]
        return round(float(size[:-1]) * {"m": 1e6, "b": 1e9}[size[-1]])

    def config(self) -> PretrainedConfig:
        return build_config(
            self.arch,
            hidden_size=self.hidden_size,
            num_layers=self.num_layers,
            num_heads=self.num_heads,
            num_kv_heads=self.num_kv_heads,
            intermediate_size=self.intermediate_size,
            vocab_size=self.vocab_size,
            tie_word_embeddings=self.tie_word_embeddings,
            max_position_embeddings=self.max_position_embeddings,
            rope_theta=self.rope_theta,
        )


def _pythia(size: str, hidden: int, layers: int, heads: int, total: int, non_emb: int) -> ModelInfo:
    return ModelInfo(
        f"pythia-{size}", f"EleutherAI/pythia-{size}", "pythia", "pythia", hidden, layers, heads, heads,
        4 * hidden, 50304, False, 2048, 10000.0, total, non_emb, float(total), float(non_emb),
    )  # fmt: skip


def _qwen(size: str, hidden: int, layers: int, heads: int, kv: int, inter: int, vocab: int, tied: bool,  # noqa: PLR0913  one registry row
          total: int, non_emb: int, published: float, published_non_emb: float) -> ModelInfo:  # fmt: skip
    return ModelInfo(
        f"qwen2.5-{size.lower()}", f"Qwen/Qwen2.5-{size}", "qwen2.5", "qwen2.5", hidden, layers, heads, kv,
        inter, vocab, tied, 32768, 1_000_000.0, total, non_emb, published, published_non_emb,
    )  # fmt: skip


def _smollm2(size: str, hidden: int, layers: int, heads: int, kv: int, inter: int, theta: float,  # noqa: PLR0913  one registry row
             total: int, non_emb: int, published: float) -> ModelInfo:  # fmt: skip
    return ModelInfo(
        f"smollm2-{size.lower()}", f"HuggingFaceTB/SmolLM2-{size}", "smollm2", "llama", hidden, layers, heads,
        kv, inter, 49152, True, 8192, theta, total, non_emb, published,
    )  # fmt: skip


# Pythia totals are the exact numbers of the Pythia README; the others are rounded on the model cards.
_ALL: tuple[ModelInfo, ...] = (
    _pythia("70m", 512, 6, 8, 70_426_624, 18_915_328),
    _pythia("160m", 768, 12, 12, 162_322_944, 85_056_000),
    _pythia("410m", 1024, 24, 16, 405_334_016, 302_311_424),
    _pythia("1b", 2048, 16, 8, 1_011_781_632, 805_736_448),
    _pythia("1.4b", 2048, 24, 16, 1_414_647_808, 1_208_602_624),
    _pythia("2.8b", 2560, 32, 32, 2_775_208_960, 2_517_652_480),
    _qwen("0.5B", 896, 24, 14, 2, 4864, 151936, True, 494_032_768, 357_898_112, 0.49e9, 0.36e9),
    _qwen("1.5B", 1536, 28, 12, 2, 8960, 151936, True, 1_543_714_304, 1_310_340_608, 1.54e9, 1.31e9),
    _qwen("3B", 2048, 36, 16, 2, 11008, 151936, True, 3_085_938_688, 2_774_773_760, 3.09e9, 2.77e9),
    _qwen("7B", 3584, 28, 28, 4, 18944, 152064, False, 7_615_616_512, 6_525_621_760, 7.61e9, 6.53e9),
    _smollm2("135M", 576, 30, 9, 3, 1536, 100_000.0, 134_515_008, 106_203_456, 135e6),
    _smollm2("360M", 960, 32, 15, 5, 2560, 100_000.0, 361_821_120, 314_635_200, 360e6),
    _smollm2("1.7B", 2048, 24, 32, 32, 8192, 130_000.0, 1_711_376_384, 1_610_713_088, 1.7e9),
)
KNOWN_MODELS: dict[str, ModelInfo] = {info.name: info for info in _ALL}
MODEL_FAMILIES: dict[str, tuple[ModelInfo, ...]] = {
    family: tuple(i for i in _ALL if i.family == family) for family in ("pythia", "qwen2.5", "smollm2")
}


def get_model_info(spec: str) -> ModelInfo | None:
    """Registry entry for a name (`pythia-70m`), hub id (`Qwen/Qwen2.5-0.5B`) or its -Instruct variant."""
    key = spec.strip().lower()
    for candidate in (key, key.removesuffix("-instruct")):
        if candidate in KNOWN_MODELS:
            return KNOWN_MODELS[candidate]
        for info in _ALL:
            if info.hub_id.lower() == candidate:
                return info
    return None


def nominal_params(spec: str | None) -> int | None:
    """The nominal size of a registry model (name, hub id or -Instruct variant); None for any other model."""
    info = get_model_info(spec) if spec else None
    return info.nominal_params if info is not None else None


# ------------------------------------------------------------------------------------------ parameters


def _unique_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # parameters() yields a tied tensor once


def count_params_from_config(config: PretrainedConfig, *, exclude_embeddings: bool = False) -> int:
    """Parameters of the causal LM `config` describes, counted on the meta device (no memory, no weights).

    `exclude_embeddings` drops the input embedding and an untied output embedding (the "non-embedding"
    count of the Pythia and Qwen2.5 papers).
    """
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    total = _unique_params(model)
    if exclude_embeddings:
        inp = model.get_input_embeddings().weight
        total -= inp.numel()
        out = model.get_output_embeddings()
        if out is not None and out.weight is not inp:
            total -= out.weight.numel()
    return total


def param_count(spec: str | Path | PreTrainedModel | PretrainedConfig | torch.nn.Module) -> int:
    """Total parameters of a registry model / hub id, a local folder or .gguf (from its config), or a model."""
    if isinstance(spec, torch.nn.Module):
        return _unique_params(spec)
    if isinstance(spec, PretrainedConfig):
        return count_params_from_config(spec)
    path = Path(spec).expanduser()
    if isinstance(spec, str) and not path.exists():
        info = get_model_info(spec)
        if info is not None:
            return info.params_total
    try:
        if path.is_dir() and (path / "config.json").is_file():
            config = AutoConfig.from_pretrained(str(path))
        elif path.is_file() and path.suffix == ".gguf":
            config = AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name)
        else:
            known = ", ".join(KNOWN_MODELS)
            raise QADistillError(
                f"unknown model '{spec}': not a folder with config.json, a .gguf file or one of {known}"
            )
    except (OSError, ValueError, KeyError) as exc:
        raise QADistillError(f"could not read the config of {path}: {exc}".splitlines()[0]) from None
    return count_params_from_config(config)


# ------------------------------------------------------------------------------------------- tokenizer


def _special_tokens(tokenizer: PreTrainedTokenizerBase) -> dict[str, Any]:
    """Special tokens that change what a model sees (pad is excluded: padded positions are masked)."""
    return {
        "bos": tokenizer.bos_token,
        "eos": tokenizer.eos_token,
        "unk": tokenizer.unk_token,
        "special": sorted(t for t in tokenizer.all_special_tokens if t != tokenizer.pad_token),
    }


def _named(tokenizer: PreTrainedTokenizerBase) -> str:
    """` <where it was loaded from>:` for messages, or "" for a tokenizer built in memory."""
    name = getattr(tokenizer, "name_or_path", "") or ""
    return f" {name}:" if name else ""


def context_length(
    model: PreTrainedModel | PretrainedConfig, tokenizer: PreTrainedTokenizerBase | None = None
) -> int | None:
    """The longest sequence (prompt + answer) the model was built for, from its config; None when unknown.

    The tokenizer's `model_max_length` is only a fallback: it is often a placeholder (1e30) or larger than the
    model's positions (Qwen2.5 tokenizers say 131072, the 0.5B config 32768).
    """
    config: Any = getattr(model, "config", model)  # a model, a wrapper that forwards `.config` (peft), or a config
    if hasattr(config, "get_text_config"):
        config = config.get_text_config()
    for key in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length", "n_ctx"):
        value = getattr(config, key, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    limit = getattr(tokenizer, "model_max_length", None)
    return limit if isinstance(limit, int) and 0 < limit < 10_000_000 else None


def _weight_rows(embedding: torch.nn.Module) -> int:
    weight = embedding.weight
    if not isinstance(weight, torch.Tensor):
        raise QADistillError(f"{type(embedding).__name__} has no weight matrix")
    return weight.shape[0]


def _rows(model: PreTrainedModel) -> tuple[int, int]:
    out = model.get_output_embeddings()
    in_rows = _weight_rows(model.get_input_embeddings())
    return in_rows, (_weight_rows(out) if out is not None else in_rows)


def check_same_tokenizer(
    teacher_tok: PreTrainedTokenizerBase,
    student_tok: PreTrainedTokenizerBase,
    teacher_model: PreTrainedModel | None = None,
    student_model: PreTrainedModel | None = None,
) -> int:
    """Token-level distillation needs one vocabulary: returns the shared `len(tokenizer)` to compare logits on.

    Embedding matrices may be padded past the tokenizer (Qwen2.5-7B has 152,064 rows, the small Qwen2.5
    151,936, the tokenizer 151,665 tokens): logits are compared on the first `len(tokenizer)` columns only.
    """
    t_vocab, s_vocab = teacher_tok.get_vocab(), student_tok.get_vocab()
    if t_vocab != s_vocab:
        differing = next((tok for tok, i in t_vocab.items() if s_vocab.get(tok) != i), None)
        if differing is None:
            differing = next(tok for tok in s_vocab if tok not in t_vocab)
        raise QADistillError(
            f"teacher and student use different tokenizers (teacher{_named(teacher_tok)} {len(t_vocab)} tokens, "
            f"student{_named(student_tok)} {len(s_vocab)}; token {differing!r} has id {t_vocab.get(differing)} "
            f"vs {s_vocab.get(differing)})"
        )
    t_special, s_special = _special_tokens(teacher_tok), _special_tokens(student_tok)
    if t_special != s_special:
        diff = {k: (t_special[k], s_special[k]) for k in t_special if t_special[k] != s_special[k]}
        raise QADistillError(f"teacher and student use different tokenizers (special tokens differ: {diff})")
    size = len(teacher_tok)
    for role, model in (("teacher", teacher_model), ("student", student_model)):
        if model is None:
            continue
        in_rows, out_rows = _rows(model)
        if min(in_rows, out_rows) < size:
            raise QADistillError(
                f"{role} model has {min(in_rows, out_rows)} embedding rows but the tokenizer has {size} tokens"
            )
    return size
