"""Models: loading and saving, tiny test models, the family registry, layer pruning and the offline SmolLM2."""

from qadistill.models.families import (
    KNOWN_MODELS,
    MODEL_FAMILIES,
    ModelInfo,
    build_config,
    check_same_tokenizer,
    context_length,
    count_params_from_config,
    get_model_info,
    nominal_params,
    param_count,
)
from qadistill.models.loading import (
    DTYPES,
    SMOLLM2_NAME,
    load_model,
    load_model_and_tokenizer,
    load_tokenizer,
    prepare_tokenizer,
    resolve_dtype,
    same_tokenizer_files,
    save_model,
    set_pad_token_id,
)
from qadistill.models.pruning import known_layer_count, prune_layers, resolve_keep, spread_layers
from qadistill.models.smollm2 import default_cache_dir, ensure_smollm2, setup_models, smollm2_dir
from qadistill.models.tiny import build_tiny_model, load_real_tokenizer

__all__ = [
    "DTYPES",
    "KNOWN_MODELS",
    "MODEL_FAMILIES",
    "SMOLLM2_NAME",
    "ModelInfo",
    "build_config",
    "build_tiny_model",
    "check_same_tokenizer",
    "context_length",
    "count_params_from_config",
    "default_cache_dir",
    "ensure_smollm2",
    "get_model_info",
    "known_layer_count",
    "load_model",
    "load_model_and_tokenizer",
    "load_real_tokenizer",
    "load_tokenizer",
    "nominal_params",
    "param_count",
    "prepare_tokenizer",
    "prune_layers",
    "resolve_dtype",
    "same_tokenizer_files",
    "resolve_keep",
    "save_model",
    "set_pad_token_id",
    "setup_models",
    "smollm2_dir",
    "spread_layers",
]
