"""Job fingerprints: what a checkpoint must share with the job that resumes it, whatever the spelling of its paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from qadistill.config import first_difference
from qadistill.train.config import FinetuneJob, fingerprint, fingerprint_difference


def job(model: str | Path, out: str | Path, **changes) -> FinetuneJob:
    return FinetuneJob(model=str(model), out_dir=out, **changes)


@pytest.fixture
def folders(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models" / "m").mkdir(parents=True)
    (tmp_path / "data").mkdir()
    return tmp_path


def test_the_spelling_of_a_path_is_no_difference(folders: Path):
    saved = fingerprint(job("models/m", "k4", data={"data_dir": "data"}))
    current = fingerprint(job(folders / "models" / "m", folders / "k4", data={"data_dir": "./data/../data"}))
    assert fingerprint_difference(saved, current) is None
    assert saved["model"] == str(folders / "models" / "m")  # resolved before it is stored


def test_a_moved_output_folder_is_no_difference(folders: Path):
    """The output folder moved (the model stayed), or moved together with a model inside it."""
    saved = fingerprint(job("models/m", "runs/k4"))
    assert fingerprint_difference(saved, fingerprint(job("models/m", "elsewhere/k4"))) is None
    (folders / "runs" / "k4" / "init").mkdir(parents=True)
    inside = fingerprint(job("runs/k4/init", "runs/k4/train"))
    (folders / "runs").rename(folders / "moved")
    assert fingerprint_difference(inside, fingerprint(job("moved/k4/init", "moved/k4/train"))) is None


def test_another_model_or_setting_is_named(folders: Path):
    (folders / "models" / "other").mkdir()
    saved = fingerprint(job("models/m", "k4"))
    other = fingerprint(job("models/other", "k4"))
    assert fingerprint_difference(saved, other) == (
        f"model ({str(folders / 'models' / 'm')!r} -> {str(folders / 'models' / 'other')!r})"
    )
    assert fingerprint_difference(saved, fingerprint(job("models/m", "k4", train={"lr": 1e-3}))) == (
        "train.lr (2e-05 -> 0.001)"
    )
    assert fingerprint_difference(saved, fingerprint(job("models/m", "k4", seed=3))) == "seed (0 -> 3)"


def test_when_to_save_or_give_up_is_no_difference(folders: Path):
    saved = fingerprint(job("models/m", "k4"))
    later = job("models/m", "k4", train={"checkpoint_interval": 7, "max_skipped_fraction": 0.5})
    assert fingerprint_difference(saved, fingerprint(later)) is None


def test_a_fingerprint_with_relative_paths_from_an_older_version_still_matches(folders: Path):
    legacy = job("models/m", "k4").model_dump(mode="json", exclude={"resume", "tracking"})
    legacy["train"].pop("checkpoint_interval")
    legacy["train"].pop("max_skipped_fraction")
    assert legacy["model"] == "models/m" and legacy["out_dir"] == "k4"
    assert fingerprint_difference(legacy, fingerprint(job(folders / "models" / "m", folders / "k4"))) is None


def test_first_difference_walks_nested_settings():
    assert first_difference({"a": {"b": 1, "c": 2}}, {"a": {"b": 1, "c": 3}}) == "a.c (2 -> 3)"
    assert first_difference({"a": 1}, {"a": 1, "b": 2}) == "b ('<absent>' -> 2)"
