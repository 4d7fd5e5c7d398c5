"""Layer selection by measured importance: block influence (ShortGPT) and contiguous-run angular distance
(Gromov et al.) against hand-computed values, on hand-built residual streams and on tiny models whose blocks
are set to known maps."""

from __future__ import annotations

import math

import pytest
import torch

from qadistill.errors import QADistillError
from qadistill.models import build_tiny_model
from qadistill.models.layer_importance import (
    StreamDistances,
    block_influence,
    decoder_layers,
    drop_most_similar_run,
    keep_most_influential,
    measure_layers,
    pair_distance_sums,
    residual_stream,
    run_distances,
    selected_tokens,
    stream_distances,
)

R = 1 / math.sqrt(2)


def _stream(vectors: list[list[tuple[float, float]]]) -> list[torch.Tensor]:
    """States x_0 .. x_L of one row: vectors[i][t] is x_i at token t, as (1, T, 2) tensors."""
    return [torch.tensor([row], dtype=torch.float32) for row in vectors]


# x_0 .. x_3 of a 3-block model over two tokens. Token 0: block 0 keeps the direction, block 1 turns it by 90
# degrees, block 2 by 45 degrees. Token 1: block 0 turns by 90, block 1 keeps it, block 2 turns by 90.
HAND = _stream(
    [
        [(1.0, 0.0), (1.0, 0.0)],
        [(2.0, 0.0), (0.0, 1.0)],
        [(0.0, 3.0), (0.0, 5.0)],
        [(-1.0, 1.0), (1.0, 0.0)],
    ]
)
# per-token cos of (x_i, x_{i+1}): token 0: 1, 0, R; token 1: 0, 1, 0
HAND_BI = [1 - (1 + 0) / 2, 1 - (0 + 1) / 2, 1 - (R + 0) / 2]


def test_pair_sums_match_hand_computed_cosines() -> None:
    gap, angular = pair_distance_sums(HAND, torch.ones(1, 2, dtype=torch.bool))
    assert block_influence(gap / 2) == pytest.approx(HAND_BI)
    # angular distance of the runs of 2 blocks: (x_0, x_2): 90 and 90 degrees; (x_1, x_3): 135 and 90 degrees
    assert run_distances(angular / 2, 2) == pytest.approx([(0.5 + 0.5) / 2, (0.75 + 0.5) / 2])
    # of single blocks: token 0 0, 90, 45 degrees; token 1 90, 0, 90 degrees
    assert run_distances(angular / 2, 1) == pytest.approx([0.25, 0.25, (0.25 + 0.5) / 2])
    assert torch.allclose(gap, gap.T) and torch.allclose(angular.diagonal(), torch.zeros(4, dtype=torch.float64))


def test_choices_from_hand_computed_scores() -> None:
    stats = StreamDistances(*[m / 2 for m in pair_distance_sums(HAND, torch.ones(1, 2, dtype=torch.bool))], "all", 1, 2)
    # BI = 0.5, 0.5, 0.646: the last block matters most; ties keep the earlier block
    assert stats.choose("block_influence", 2).kept == [0, 2]
    assert stats.choose("block_influence", 1).kept == [2]
    # keep 1 = drop a run of 2: the run starting at block 0 (distance 0.5) beats the one at block 1 (0.625)
    choice = stats.choose("block", 1)
    assert choice.kept == [2] and choice.dropped == [0, 1] and choice.scores == pytest.approx([0.5, 0.625])
    # keep 2 = drop one block: blocks 0 and 1 tie at 0.25, the earlier is dropped
    assert stats.choose("block", 2).kept == [1, 2]


def test_selection_helpers() -> None:
    assert keep_most_influential([0.1, 0.9, 0.3, 0.9], 2) == [1, 3]
    assert keep_most_influential([0.2, 0.2, 0.2], 2) == [0, 1]
    assert drop_most_similar_run([0.4, 0.1, 0.3], 4) == [0, 3]  # n = 2, run 1-2 dropped
    with pytest.raises(QADistillError, match="between 1 and 2"):
        keep_most_influential([0.1, 0.2, 0.3], 3)
    with pytest.raises(QADistillError, match="between 1 and 2"):
        keep_most_influential([0.1, 0.2, 0.3], 0)


def test_selected_tokens_left_and_right_padding() -> None:
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1], [0, 0, 0, 1]])
    assert selected_tokens(left, "all").tolist() == left.bool().tolist()
    assert selected_tokens(left, "last").tolist() == [[False, False, False, True]] * 3
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 0]])
    assert selected_tokens(right, "last").tolist() == [[False, True, False, False], [False, False, True, False]]
    with pytest.raises(QADistillError, match="unknown token positions"):
        selected_tokens(left, "first")  # type: ignore[arg-type]


def test_padding_is_never_read() -> None:
    """NaN in padded positions (as attention can leave there) changes nothing."""
    states = [torch.cat([torch.full((1, 1, 2), math.nan), s], dim=1) for s in HAND]
    selected = torch.tensor([[False, True, True]])
    gap, angular = pair_distance_sums(states, selected)
    ref_gap, ref_angular = pair_distance_sums(HAND, torch.ones(1, 2, dtype=torch.bool))
    assert torch.equal(gap, ref_gap) and torch.equal(angular, ref_angular)


# ---------------------------------------------------------------------------------------------- real models


def _model_with_identity_blocks(identity: list[int], num_layers: int = 5):
    """A tiny Llama whose blocks in `identity` write nothing to the stream (attention and MLP outputs are zero),
    with a final norm whose scale is far from uniform (it must not enter the last block's score)."""
    model = build_tiny_model("llama", num_layers=num_layers, vocab_size=128, hidden_size=32, seed=3)
    layers = decoder_layers(model)
    with torch.no_grad():
        for i in identity:
            layers[i].self_attn.o_proj.weight.zero_()
            layers[i].mlp.down_proj.weight.zero_()
        model.base_model.norm.weight.copy_(torch.linspace(0.1, 3.0, model.config.hidden_size))
    return model


SEQUENCES = [[5, 9, 17, 3, 44, 2], [7, 7, 1], [100, 12, 13, 14, 15, 16, 17, 18, 19], [4]]


def test_residual_stream_reads_the_last_block_before_the_final_norm() -> None:
    model = _model_with_identity_blocks([4])
    ids = torch.tensor([SEQUENCES[0]])
    states = residual_stream(model, ids, torch.ones_like(ids))
    assert len(states) == 6
    assert torch.equal(states[5], states[4])  # the identity last block
    normed = model.base_model(input_ids=ids, output_hidden_states=True).hidden_states[-1]
    assert not torch.allclose(normed, states[5])


def test_identity_blocks_have_zero_influence_and_are_dropped() -> None:
    model = _model_with_identity_blocks([1, 2])
    choice = measure_layers(model, SEQUENCES, method="block_influence", keep=3, pad_id=0)
    assert choice.scores[1] == pytest.approx(0.0, abs=1e-6) and choice.scores[2] == pytest.approx(0.0, abs=1e-6)
    assert min(choice.scores[i] for i in (0, 3, 4)) > 1e-3
    assert choice.kept == [0, 3, 4] and choice.dropped == [1, 2]
    assert choice.tokens == sum(map(len, SEQUENCES)) and choice.sequences == 4
    block = measure_layers(model, SEQUENCES, method="block", keep=3, pad_id=0)
    assert block.kept == [0, 3, 4] and block.scores[1] == pytest.approx(0.0, abs=1e-6)
    assert len(block.scores) == 4 and min(block.scores[i] for i in (0, 2, 3)) > 1e-3


def test_identity_last_block_is_found_despite_the_final_norm() -> None:
    model = _model_with_identity_blocks([4])
    choice = measure_layers(model, SEQUENCES, method="block_influence", keep=4, pad_id=0)
    assert choice.dropped == [4] and choice.scores[4] == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("positions", ["all", "last"])
def test_scores_do_not_depend_on_padding_or_batching(positions: str) -> None:
    model = build_tiny_model("llama", num_layers=4, vocab_size=128, hidden_size=32, seed=1)
    alone = stream_distances(model, SEQUENCES, pad_id=0, batch_size=1, positions=positions)
    padded = stream_distances(model, SEQUENCES, pad_id=0, batch_size=4, positions=positions)
    assert torch.allclose(alone.gap, padded.gap, atol=1e-5) and torch.allclose(alone.angular, padded.angular, atol=1e-5)
    other_pad = stream_distances(model, SEQUENCES, pad_id=77, batch_size=3, positions=positions)
    assert torch.allclose(alone.gap, other_pad.gap, atol=1e-5)
    assert alone.tokens == (sum(map(len, SEQUENCES)) if positions == "all" else len(SEQUENCES))


def test_scores_are_deterministic_and_leave_the_model_as_it_was() -> None:
    model = build_tiny_model("qwen2.5", num_layers=4, vocab_size=256, hidden_size=32, seed=2)
    model.train()
    first = measure_layers(model, SEQUENCES, method="block_influence", keep=2, pad_id=0)
    second = measure_layers(model, SEQUENCES, method="block_influence", keep=2, pad_id=0)
    assert first == second and model.training


def test_gpt_neox_is_scored_too() -> None:
    model = build_tiny_model("pythia", num_layers=3, vocab_size=128, hidden_size=32)
    choice = measure_layers(model, SEQUENCES, method="block", keep=2, pad_id=1)
    assert len(choice.scores) == 3 and len(choice.kept) == 2 and all(0 <= s <= 1 for s in choice.scores)


def test_bad_calibration_input() -> None:
    model = build_tiny_model("llama", num_layers=3, vocab_size=128, hidden_size=32)
    with pytest.raises(QADistillError, match="calibration sequences"):
        measure_layers(model, [], method="block", keep=2, pad_id=0)
    with pytest.raises(QADistillError, match="between 1 and 2"):
        measure_layers(model, SEQUENCES, method="block", keep=3, pad_id=0)
    with pytest.raises(QADistillError, match="unknown measured layer selection"):
        measure_layers(model, SEQUENCES, method="middle", keep=2, pad_id=0)  # type: ignore[arg-type]
