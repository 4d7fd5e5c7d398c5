"""Layer-pruned students: a teacher with some transformer blocks removed, as a distillation starting point.

The student is a fresh model of the teacher's class built from the teacher's config with fewer layers,
so per-layer bookkeeping (`layer_idx` for the KV cache, `layer_types`) is consistent by construction;
only weights are copied.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel

from qadistill.errors import QADistillError
from qadistill.models.families import get_model_info

PRESETS = ("every_other", "half", "quarter")


def spread_layers(n: int, k: int) -> list[int]:
    """`k` indices from range(n), evenly spread, always including the first and the last."""
    k = max(1, min(n, k))
    if k == 1:
        return [0]
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def resolve_keep(keep: Sequence[int] | str, num_layers: int) -> list[int]:
    """Indices of the layers to keep, sorted and validated.

    `every_other` keeps 0, 2, 4, ...; `half` and `quarter` keep n/2 and n/4 layers (at least 2) spread
    evenly, always including the first and the last; a string "0,3,5" or a sequence picks layers
    explicitly (negative indices count from the end).
    """
    n = num_layers
    if isinstance(keep, str):
        name = keep.strip().lower()
        if name == "every_other":
            return list(range(0, n, 2))
        if name == "half":
            return spread_layers(n, max(2, round(n / 2)))
        if name == "quarter":
            return spread_layers(n, max(2, round(n / 4)))
        try:
            keep = [int(part) for part in name.split(",") if part.strip()]
        except ValueError:
            raise QADistillError(
                f"unknown layer selection '{keep}'; use {', '.join(PRESETS)} or comma-separated indices"
            ) from None
    indices = []
    for raw in keep:
        index = int(raw)
        if not -n <= index < n:
            raise QADistillError(f"layer index {raw} is out of range for a model with {n} layers")
        indices.append(index % n)
    if not indices:
        raise QADistillError("layer selection keeps no layers")
    if len(set(indices)) != len(indices):
        raise QADistillError(f"layer selection {list(keep)} repeats a layer")
    return sorted(indices)


def known_layer_count(spec: str) -> int | None:
    """Decoder layers of a model spec without loading weights: a local folder's config.json, else the registry;
    None when unknown (a hub id outside the registry would need a download)."""
    path = Path(spec).expanduser()
    if (path / "config.json").is_file():
        try:
            value = json.loads((path / "config.json").read_text(encoding="utf-8")).get("num_hidden_layers")
        except (OSError, ValueError):
            return None
        return value if isinstance(value, int) and value > 0 else None
    info = get_model_info(spec)
    return info.num_layers if info is not None else None


def _layers_prefix(model: PreTrainedModel) -> str:
    """State-dict prefix of the decoder blocks: `gpt_neox.layers` (GPT-NeoX) or `model.layers` (Qwen2, Llama)."""
    n = model.config.num_hidden_layers
    for name, module in model.named_modules():
        if name.endswith("layers") and isinstance(module, torch.nn.ModuleList) and len(module) == n:
            return name
    raise QADistillError(f"cannot find the decoder layers of {type(model).__name__} to prune")


def prune_layers(model: PreTrainedModel, keep: Sequence[int] | str) -> PreTrainedModel:
    """A new model with only the `keep` layers of `model` (see `resolve_keep`), in `model`'s dtype/device.

    Embeddings, final norm, lm head and the kept blocks' weights are copied; the teacher is not modified.
    """
    if not isinstance(model, PreTrainedModel):
        raise QADistillError(f"can only prune a transformers PreTrainedModel, not {type(model).__name__}")
    n = model.config.num_hidden_layers
    kept = resolve_keep(keep, n)
    prefix = _layers_prefix(model)

    config = copy.deepcopy(model.config)
    config.num_hidden_layers = len(kept)
    layer_types = getattr(config, "layer_types", None)
    if isinstance(layer_types, list) and len(layer_types) == n:
        config.layer_types = [layer_types[i] for i in kept]
    if hasattr(config, "max_window_layers") and isinstance(config.max_window_layers, int):
        config.max_window_layers = sum(1 for i in kept if i < config.max_window_layers)
    if hasattr(config, "quantization_config"):  # a GGUF-loaded teacher: the student is a plain model
        delattr(config, "quantization_config")

    new_index = {old: new for new, old in enumerate(kept)}
    pattern = re.compile(rf"^{re.escape(prefix)}\.(\d+)\.(.*)$")
    state = {}
    for key, tensor in model.state_dict().items():
        match = pattern.match(key)
        if match is None:
            state[key] = tensor.clone()
        elif int(match.group(1)) in new_index:
            state[f"{prefix}.{new_index[int(match.group(1))]}.{match.group(2)}"] = tensor.clone()

    with torch.device("meta"):
        student = AutoModelForCausalLM.from_config(config, dtype=model.dtype)
    student.load_state_dict(state, strict=False, assign=True)  # copies: training the student spares the teacher
    student.tie_weights()
    # non-persistent buffers (rotary inv_freq) are not in the state dict: copy them from the teacher
    buffers = dict(model.named_buffers())
    for name in [n for n, _ in student.named_buffers()]:
        source = buffers.get(_old_name(name, pattern, prefix, kept))
        if source is None:
            raise QADistillError(f"cannot copy buffer '{name}' while pruning {type(model).__name__}")
        module_name, _, attr = name.rpartition(".")
        module = student.get_submodule(module_name)
        persistent = attr not in getattr(module, "_non_persistent_buffers_set", set())
        module.register_buffer(attr, source.clone(), persistent=persistent)
    for name, value in [*student.named_parameters(), *student.named_buffers()]:
        if value.device.type == "meta":
            raise QADistillError(f"pruned model is missing weight '{name}'")
    student.generation_config = copy.deepcopy(model.generation_config)
    student.train(model.training)
    return student


def _old_name(name: str, pattern: re.Pattern[str], prefix: str, kept: list[int]) -> str:
    match = pattern.match(name)
    if match is None:
        return name
    return f"{prefix}.{kept[int(match.group(1))]}.{match.group(2)}"
