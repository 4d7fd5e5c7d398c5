"""Which decoder layers a pruned student keeps, chosen by measured importance on calibration sequences.

Both criteria read the residual stream: x_0 is the embedding output, x_i the input of block i, x_L the last
block's output.

* block influence (ShortGPT, Men et al. 2024): BI_i = 1 - mean over tokens of cos(x_i, x_{i+1}). A block whose
  output points where its input did changes the stream least; the `keep` blocks with the largest BI stay.
* angular distance (Gromov et al. 2024, "The Unreasonable Ineffectiveness of the Deeper Layers"):
  d(l, l+n) = mean of arccos(cos(x_l, x_{l+n})) / pi between the input of block l and the input of block l+n.
  The contiguous run of n = L - keep blocks with the smallest distance is dropped.

Block influence averages over every real token, as ShortGPT does. The angular distance is averaged over every
real token too by default, where Gromov et al. read the last token only: theirs is the position that predicts a
multiple-choice answer, ours is the EOS after the gold answer, which no loss reads, while every position of a
prompt + answer sequence feeds the answer loss (through attention); and 64 calibration sequences give some
20,000 tokens instead of 64 samples. `positions="last"` gives the paper's variant (the last real token of each
row, whatever the padding side).

transformers' `hidden_states` ends with the final norm applied (its learned scale would tilt the last block's
cosine), so x_L is read with a forward hook on the last block. Scoring runs the base model, without the LM head.
One pass collects the mean distance between every pair of stream states (`StreamDistances`), from which both
methods choose for any `keep`. The functions above `residual_stream` are pure tensor/list functions.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import torch
from transformers import PreTrainedModel

from qadistill.errors import QADistillError

MEASURED_METHODS = ("block_influence", "block")
Method = Literal["block_influence", "block"]
Positions = Literal["all", "last"]


# ------------------------------------------------------------------------------------------------ pure scoring


def selected_tokens(attention_mask: torch.Tensor, positions: Positions = "all") -> torch.Tensor:
    """(B, T) bool: the real tokens of each row ("all"), or only its last real token ("last").

    Works for left and right padding: "last" is the rightmost position with mask 1.
    """
    real = attention_mask.bool()
    if positions == "all":
        return real
    if positions != "last":
        raise QADistillError(f"unknown token positions {positions!r}; use all or last")
    columns = torch.arange(real.shape[1], device=real.device).expand_as(real)
    last = torch.where(real, columns, -1).amax(dim=1, keepdim=True)
    return real & (columns == last)


def pair_distance_sums(
    states: Sequence[torch.Tensor], selected: torch.Tensor, chunk: int = 512
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sums over the selected tokens of (1 - cos) and of arccos(cos) / pi between every pair of `states`.

    `states` are S tensors (B, T, H); returns two (S, S) float64 matrices, symmetric with a zero diagonal.
    Unselected positions (padding) are never read. Cosines are taken in float64, `chunk` tokens at a time:
    arccos near cos = 1 turns float32's rounding (6e-8) into an angle of 1e-4, as large as the differences
    between the most similar blocks that are to be ranked.
    """
    picked = [s[selected] for s in states]  # S x (N, H)
    size = len(states)
    gap, angular = torch.zeros(size, size, dtype=torch.float64), torch.zeros(size, size, dtype=torch.float64)
    for start in range(0, picked[0].shape[0], chunk):
        block = torch.stack([p[start : start + chunk] for p in picked], dim=1).double()  # (n, S, H)
        unit = torch.nn.functional.normalize(block, dim=-1, eps=1e-30)
        cos = torch.einsum("nih,njh->nij", unit, unit).clamp(-1.0, 1.0)
        gap += (1.0 - cos).sum(0).cpu()
        angular += (torch.arccos(cos) / math.pi).sum(0).cpu()
    return gap, angular


def block_influence(gap: torch.Tensor) -> list[float]:
    """BI of each block from the mean (1 - cos) matrix of the stream: BI_i = gap[i, i+1]."""
    return [float(gap[i, i + 1]) for i in range(gap.shape[0] - 1)]


def run_distances(angular: torch.Tensor, n: int) -> list[float]:
    """d(x_l, x_{l+n}) for every start l of a run of n blocks, from the mean angular-distance matrix."""
    num_layers = angular.shape[0] - 1
    return [float(angular[start, start + n]) for start in range(num_layers - n + 1)]


def keep_most_influential(influence: Sequence[float], keep: int) -> list[int]:
    """Indices of the `keep` blocks with the largest block influence, sorted; ties keep the earlier block."""
    check_keep(keep, len(influence))
    order = sorted(range(len(influence)), key=lambda i: (-influence[i], i))
    return sorted(order[:keep])


def drop_most_similar_run(distances: Sequence[float], num_layers: int) -> list[int]:
    """Kept indices after dropping the run of n blocks whose ends are closest; `distances[l]` is d(x_l, x_{l+n}),
    so n = num_layers + 1 - len(distances). Ties drop the earlier run."""
    n = num_layers + 1 - len(distances)
    check_keep(num_layers - n, num_layers)
    start = min(range(len(distances)), key=lambda s: (distances[s], s))
    return [i for i in range(num_layers) if not start <= i < start + n]


def check_keep(keep: int, num_layers: int) -> None:
    if not 1 <= keep < num_layers:
        raise QADistillError(
            f"prune keep {keep} must be between 1 and {num_layers - 1} for a model with {num_layers} layers"
        )


# -------------------------------------------------------------------------------------------- the choice


@dataclass
class LayerChoice:
    """What a selection chose and why; saved with the pruned student as `pruning.json`.

    `scores[i]`: for block_influence the BI of block i; for block the angular distance across the run of
    `num_layers - keep` blocks that starts at block i. Spread, preset and explicit choices have no scores.
    """

    method: str
    num_layers: int
    keep: int
    kept: list[int]
    scores: list[float] | None = None
    positions: str | None = None
    sequences: int = 0
    tokens: int = 0
    calibration: dict[str, Any] = field(default_factory=dict)

    @property
    def dropped(self) -> list[int]:
        return [i for i in range(self.num_layers) if i not in self.kept]

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "dropped": self.dropped}

    def describe(self) -> str:
        """One log line: the choice and every score."""
        text = f"{self.method}: kept {len(self.kept)} of {self.num_layers} layers {self.kept}, dropped {self.dropped}"
        if self.scores is not None:
            what = "block influence of each layer" if self.method == "block_influence" else "distance by run start"
            text += f"; {what}: " + ", ".join(f"{i}:{s:.4f}" for i, s in enumerate(self.scores))
        return text


@dataclass(frozen=True)
class StreamDistances:
    """Mean distances between every pair of residual-stream states x_0 .. x_L over the calibration tokens."""

    gap: torch.Tensor  # (L+1, L+1): mean 1 - cos
    angular: torch.Tensor  # (L+1, L+1): mean arccos(cos) / pi
    positions: str
    sequences: int
    tokens: int

    @property
    def num_layers(self) -> int:
        return self.gap.shape[0] - 1

    def choose(self, method: Method, keep: int) -> LayerChoice:
        """The `keep` layers `method` keeps, with its scores."""
        check_keep(keep, self.num_layers)
        if method == "block_influence":
            scores = block_influence(self.gap)
            kept = keep_most_influential(scores, keep)
        elif method == "block":
            scores = run_distances(self.angular, self.num_layers - keep)
            kept = drop_most_similar_run(scores, self.num_layers)
        else:
            raise QADistillError(f"unknown measured layer selection {method!r}; use {' or '.join(MEASURED_METHODS)}")
        return LayerChoice(method, self.num_layers, keep, kept, scores, self.positions, self.sequences, self.tokens)


# -------------------------------------------------------------------------------------------- the model's side


def decoder_layers(model: PreTrainedModel) -> torch.nn.ModuleList:
    """The decoder blocks (the ModuleList with num_hidden_layers entries)."""
    n = model.config.num_hidden_layers
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == n:
            return module
    raise QADistillError(f"cannot find the decoder layers of {type(model).__name__}")


@torch.inference_mode()
def residual_stream(
    model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor
) -> list[torch.Tensor]:
    """x_0 .. x_L as (B, T, H) tensors: block inputs from `output_hidden_states`, and the last block's output
    before the final norm (from a hook). Positions count from each row's first real token (left padding)."""
    last_output: list[torch.Tensor] = []

    def keep_output(module: torch.nn.Module, args: tuple, output: Any) -> None:
        last_output.append(output[0] if isinstance(output, tuple) else output)

    positions = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    handle = decoder_layers(model)[-1].register_forward_hook(keep_output)
    try:
        out = model.base_model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=positions, output_hidden_states=True,
            use_cache=False,
        )  # fmt: skip
    finally:
        handle.remove()
    n = model.config.num_hidden_layers
    if len(out.hidden_states) != n + 1 or len(last_output) != 1:
        raise QADistillError(f"{type(model).__name__} returned {len(out.hidden_states)} hidden states for {n} layers")
    return [*out.hidden_states[:n], last_output[0]]


def _left_padded(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :] = torch.tensor(list(row), dtype=torch.long)
        mask[i, width - len(row) :] = 1
    return ids, mask


def stream_distances(
    model: PreTrainedModel,
    sequences: Sequence[Sequence[int]],
    *,
    pad_id: int,
    batch_size: int = 4,
    positions: Positions = "all",
) -> StreamDistances:
    """Run `model` over `sequences` (token ids) and average the distances between its residual-stream states.

    Sequences are batched by length (less padding); the result does not depend on the batching (padding is
    masked out and never read, positions count from each row's first token). Inference mode, model's device.
    """
    if not sequences or any(len(s) == 0 for s in sequences):
        raise QADistillError("layer importance needs calibration sequences, none of them empty")
    size = model.config.num_hidden_layers + 1
    device = next(model.parameters()).device
    order = sorted(range(len(sequences)), key=lambda i: (len(sequences[i]), i))
    gap = torch.zeros(size, size, dtype=torch.float64)
    angular, count = torch.zeros_like(gap), 0
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(order), batch_size):
            ids, mask = _left_padded([sequences[i] for i in order[start : start + batch_size]], pad_id)
            ids, mask = ids.to(device), mask.to(device)
            selected = selected_tokens(mask, positions)
            batch_gap, batch_angular = pair_distance_sums(residual_stream(model, ids, mask), selected)
            gap += batch_gap
            angular += batch_angular
            count += int(selected.sum())
    finally:
        model.train(was_training)
    return StreamDistances(gap / count, angular / count, positions, len(sequences), count)


def measure_layers(
    model: PreTrainedModel,
    sequences: Sequence[Sequence[int]],
    *,
    method: Method,
    keep: int,
    pad_id: int,
    batch_size: int = 4,
    positions: Positions = "all",
) -> LayerChoice:
    """Score `model`'s blocks on `sequences` and choose the `keep` layers `method` keeps."""
    check_keep(keep, model.config.num_hidden_layers)
    stats = stream_distances(model, sequences, pad_id=pad_id, batch_size=batch_size, positions=positions)
    return stats.choose(method, keep)
