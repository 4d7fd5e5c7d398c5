"""Shared fixtures: where the real data is, and skipping cleanly when it is absent; the test processes' threads."""

from __future__ import annotations

import os
from importlib.metadata import version
from pathlib import Path

import pytest
from packaging.version import Version

REPO_ROOT = Path(__file__).resolve().parents[1]
MAX_WORKERS = 4  # `pytest -n auto`: each worker loads models, so not one per core on a big machine


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: without the plugin, nothing to validate it against
def pytest_xdist_auto_num_workers(config) -> int:
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


def refuse_silent_ungrouping(config) -> None:
    """pytest 9.2 ignores the group pytest-xdist (<= 3.8) appends to node ids (pytest-xdist#1386): `--dist loadgroup`
    then spreads `xdist_group` tests over the workers, so each SLURM worker starts its own cluster and the DDP
    fixture runs twice. Stop with one line rather than run slower and flakier."""
    if config.getoption("dist", "no") != "loadgroup":
        return
    if Version(pytest.__version__) >= Version("9.2") and Version(version("pytest-xdist")) <= Version("3.8.0"):
        raise pytest.UsageError(
            f"pytest {pytest.__version__} breaks pytest-xdist's --dist loadgroup (pytest-xdist#1386): "
            "install pytest<9.2 (pyproject.toml pins it)"
        )


def pytest_configure(config) -> None:
    """Under pytest-xdist, share the cores between the workers: with a thread per core in every worker, each small
    op of a tiny test model waits for descheduled OpenMP threads. Subprocesses (SLURM jobs, killed runs) inherit it."""
    refuse_silent_ungrouping(config)
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        threads = max(1, (os.cpu_count() or 1) // workers)
        os.environ["OMP_NUM_THREADS"] = str(threads)
        import torch

        torch.set_num_threads(threads)


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
