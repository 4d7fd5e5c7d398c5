"""Fixtures of the robustness suite: the CLI in-process, and tiny saved models with the real tokenizers.

Tiny models are random Pythia / Qwen2.5 architectures, saved once per session; the real tokenizers come from the
shared data (the tests skip with a reason when it is absent, like the rest of the suite).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from robustness_support import CliResult, run_main


@pytest.fixture
def cli(monkeypatch) -> Iterator[Callable[..., CliResult]]:
    """Run `qadistill ARGS` through `cli.main()` in this process (fast: torch and transformers stay imported)."""
    from transformers.utils import logging as hf_logging

    # What main() gets in a fresh process with a non-terminal stderr; here transformers is imported already.
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    yield lambda *args: run_main(list(args))
    if enabled:
        hf_logging.enable_progress_bar()


@pytest.fixture(scope="session")
def neox_tok(neox_tokenizer_dir: Path):
    from qadistill.models import load_real_tokenizer

    return load_real_tokenizer("pythia", neox_tokenizer_dir.parent)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("robustness-models")


@pytest.fixture(scope="session")
def pythia_dir(neox_tok, tiny_dir: Path) -> Path:
    """A saved tiny Pythia (GPT-NeoX) with the real GPT-NeoX-20B tokenizer: safetensors, config, tokenizer."""
    from qadistill.models import build_tiny_model, save_model

    model = build_tiny_model("pythia", neox_tok, hidden_size=32, num_layers=2, num_heads=2, seed=0)
    return save_model(model, neox_tok, tiny_dir / "pythia")


@pytest.fixture(scope="session")
def qwen_dir(qwen_tokenizer_dir: Path, tiny_dir: Path) -> Path:
    """A saved tiny Qwen2.5 with the real Qwen2.5 tokenizer (another vocabulary than Pythia's)."""
    from qadistill.models import build_tiny_model, load_real_tokenizer, save_model

    tokenizer = load_real_tokenizer("qwen2.5", qwen_tokenizer_dir.parent)
    model = build_tiny_model("qwen2.5", tokenizer, hidden_size=32, num_layers=1, num_heads=2, seed=0)
    return save_model(model, tokenizer, tiny_dir / "qwen")


@pytest.fixture(scope="session")
def pickle_dir(pythia_dir: Path, tiny_dir: Path) -> Path:
    """The tiny Pythia with its weights only as a pickle `pytorch_model.bin` (no safetensors)."""
    from safetensors.torch import load_file

    folder = tiny_dir / "pickle-only"
    shutil.copytree(pythia_dir, folder)
    torch.save(load_file(folder / "model.safetensors"), folder / "pytorch_model.bin")
    (folder / "model.safetensors").unlink()
    return folder


@pytest.fixture(scope="session")
def no_weights_dir(pythia_dir: Path, tiny_dir: Path) -> Path:
    """config.json and the tokenizer, but no weight file at all."""
    folder = tiny_dir / "no-weights"
    shutil.copytree(pythia_dir, folder, ignore=shutil.ignore_patterns("*.safetensors"))
    return folder
