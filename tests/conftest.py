"""Shared fixtures: where the real data is, and skipping cleanly when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path:
    """The real-data folder: $QADISTILL_DATA_DIR, else ../shared/data beside the repository."""
    env = os.environ.get("QADISTILL_DATA_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if not (path / "squad_v2").is_dir():
        pytest.skip(f"real data folder {path} is absent (set QADISTILL_DATA_DIR or place ../shared/data)")
    return path


@pytest.fixture(scope="session")
def neox_tokenizer_dir(shared_data: Path) -> Path:
    return shared_data / "tokenizers" / "gpt-neox-20b"


@pytest.fixture(scope="session")
def qwen_tokenizer_dir(shared_data: Path) -> Path:
    return shared_data / "tokenizers" / "qwen2.5"
