"""Helpers of the training tests that crash a run on purpose and resume it, with tiny Pythia models."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from qadistill.models import build_tiny_model, load_real_tokenizer, save_model


class Crash(RuntimeError):
    pass


def crash_at(step: int) -> Callable[[int, dict], None]:
    """A step hook that raises `Crash` when training reaches `step`."""

    def hook(current: int, _record: dict) -> None:
        if current == step:
            raise Crash(f"simulated crash at step {current}")

    return hook


def tiny_pythia_pair(tokenizers: Path, root: Path, teacher_layers: int) -> dict[str, Path]:
    """A tiny random Pythia teacher (64 wide) and student (32 wide, 2 layers) with the real tokenizer, saved."""
    tokenizer = load_real_tokenizer("pythia", tokenizers)
    teacher = build_tiny_model("pythia", tokenizer, hidden_size=64, num_layers=teacher_layers, num_heads=4, seed=1)
    student = build_tiny_model("pythia", tokenizer, hidden_size=32, num_layers=2, num_heads=4, seed=2)
    return {
        "teacher": save_model(teacher, tokenizer, root / "t"),
        "student": save_model(student, tokenizer, root / "s"),
    }
