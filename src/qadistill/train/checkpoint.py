"""Resumable checkpoints: trainable weights, optimizer, RNG states and the loop's own state, written atomically.

Layout of `<out_dir>/checkpoint/` (replaced in one rename, so a crash leaves the previous complete one):

* `trainable.safetensors`: every parameter that trains (all of them, or only the LoRA adapters); the frozen
  rest is rebuilt from the job's model spec on resume.
* `optimizer.pt`: the optimizer's state dict (tensors and numbers only; read back with `weights_only=True`).
* `rng.pt`: torch CPU (and CUDA) generator states (`weights_only=True` too).
* `state.json`: step, data position, job fingerprint, off-policy state, counters; `replay.json`: the buffer.

The learning-rate schedule is a pure function of the step (`common.lr_at`), so the step is its whole state.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from qadistill.errors import QADistillError, one_line
from qadistill.io import atomic_dir

CHECKPOINT_DIR = "checkpoint"
_WEIGHTS, _OPTIMIZER, _RNG, _STATE, _REPLAY = (
    "trainable.safetensors",
    "optimizer.pt",
    "rng.pt",
    "state.json",
    "replay.json",
)


def _rng_states() -> dict[str, Any]:
    states: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def _set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def trainable_tensors(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The parameters that train, by name, as contiguous CPU tensors (tied weights appear once)."""
    return {n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}


def save_checkpoint(
    folder: Path,
    *,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    replay: list[dict[str, Any]] | None = None,
) -> None:
    """Write a checkpoint of `model` (unwrapped: plain or peft) atomically; refuses NaN / Inf weights."""
    tensors = trainable_tensors(model)
    bad = next((n for n, t in tensors.items() if t.is_floating_point() and not torch.isfinite(t).all()), None)
    if bad is not None:
        raise QADistillError(f"weight '{bad}' has NaN or Inf values; refusing to write a checkpoint to {folder}")
    with atomic_dir(folder) as tmp:
        save_file(tensors, str(tmp / _WEIGHTS))
        _torch_save(optimizer.state_dict(), tmp / _OPTIMIZER)
        _torch_save(_rng_states(), tmp / _RNG)
        (tmp / _STATE).write_text(json.dumps(state, indent=1), encoding="utf-8")
        if replay is not None:
            (tmp / _REPLAY).write_text(json.dumps(replay), encoding="utf-8")


def _torch_save(obj: Any, path: Path) -> None:
    """torch.save through a Python file, so a full disk surfaces as the OSError behind torch's RuntimeError
    (with a path torch reports only "unexpected pos ..."); `atomic_dir` turns it into one line."""
    with path.open("wb") as handle:
        torch.save(obj, handle)


def has_checkpoint(folder: Path) -> bool:
    return (folder / _STATE).is_file()


def read_state(folder: Path) -> dict[str, Any]:
    try:
        return json.loads((folder / _STATE).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise QADistillError(f"checkpoint {folder} is unreadable ({_STATE}: {exc})") from None


def load_checkpoint(
    folder: Path, *, model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> tuple[dict[str, Any], list[dict[str, Any]] | None]:
    """Restore weights, optimizer and RNG states in place; returns (loop state, replay buffer or None)."""
    state = read_state(folder)
    try:
        tensors = load_file(str(folder / _WEIGHTS))
        optimizer_state = torch.load(folder / _OPTIMIZER, map_location="cpu", weights_only=True)
        rng = torch.load(folder / _RNG, map_location="cpu", weights_only=True)
        replay = json.loads((folder / _REPLAY).read_text("utf-8")) if (folder / _REPLAY).is_file() else None
    except Exception as exc:  # a damaged file of any kind
        raise QADistillError(f"checkpoint {folder} is unreadable: {one_line(exc)}") from None
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if set(params) != set(tensors):
        diff = sorted(set(params) ^ set(tensors))[:3]
        raise QADistillError(f"checkpoint {folder} does not fit this model (parameters differ: {diff})")
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(tensors[name])
    optimizer.load_state_dict(optimizer_state)
    _set_rng_states(rng)
    return state, replay
