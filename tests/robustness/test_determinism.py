"""Determinism: the same config and seed give the same splits, prompts, demonstrations and, on CPU, the same
predictions and metrics, in another process too (other hash seed). Training determinism across an interruption is
tested in `test_interruptions.py` (and bitwise in `tests/integration/test_resume.py`).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from robustness_support import EVALUATE_ARGS, TIMING_KEYS, metrics_without_timing, qadistill

from qadistill.config import DataConfig, PromptConfig, SplitConfig
from qadistill.data.prepare import prepare_data, prompt_format
from qadistill.data.splits import SplitFractions, cap, split_by_article
from qadistill.evaluate import build_prompts
from qadistill.prompts import choose_demonstration

SPLITS = SplitConfig(train=0.6, validation=0.15, test=0.15, demo_pool=0.1, seed=7, max_validation=20, max_test=20)


def test_splits_do_not_depend_on_run_or_input_order():
    cfg = DataConfig(dataset="demo-en", splits=SPLITS)
    first, second = prepare_data(cfg), prepare_data(cfg)
    assert first.splits.ids() == second.splits.ids()
    assert len(first.splits.validation) == 20 and len(first.splits.test) == 20

    pool = [ex for examples in first.splits.as_dict().values() for ex in examples]
    fractions = SplitFractions(train=0.6, validation=0.15, test=0.15, demo_pool=0.1)
    forward, backward = split_by_article(pool, fractions, 7), split_by_article(pool[::-1], fractions, 7)
    assert {k: sorted(v) for k, v in forward.ids().items()} == {k: sorted(v) for k, v in backward.ids().items()}
    assert sorted(e.id for e in cap(pool, 30, 7)) == sorted(e.id for e in cap(pool[::-1], 30, 7))
    assert forward.ids() != split_by_article(pool, fractions, 8).ids()  # the split seed matters


def test_prompts_and_demonstrations_are_a_function_of_the_seed(neox_tok):
    data = prepare_data(DataConfig(dataset="demo-en", splits=SPLITS))
    fmt = prompt_format(data, PromptConfig(shots=1, style="plain", max_prompt_tokens=256))
    questions, pool = data.splits.validation, data.splits.demo_pool
    prompts = build_prompts(questions, fmt, neox_tok, pool, seed=3)
    assert prompts == build_prompts(questions, fmt, neox_tok, list(pool), seed=3)
    demos = [choose_demonstration(q, pool, 3).id for q in questions]
    assert demos == [choose_demonstration(q, pool, 3).id for q in questions]
    assert demos != [choose_demonstration(q, pool, 4).id for q in questions]
    assert prompts != build_prompts(questions, fmt, neox_tok, pool, seed=4)


@pytest.mark.slow
def test_evaluation_is_byte_identical_across_processes(pythia_dir: Path, tmp_path: Path):
    """Two runs of one evaluation (one-shot, seeded demonstrations) in processes with different hash seeds."""
    outs = [tmp_path / "first", tmp_path / "second"]
    for out, hash_seed in zip(outs, ("1", "2"), strict=True):
        args = ["evaluate", "--model", pythia_dir, *EVALUATE_ARGS, "--shots", "1", "--seed", "3", "--out", out]
        result = qadistill(*args, "--limit", "6", env={"PYTHONHASHSEED": hash_seed})
        assert result.code == 0, result.stderr[-3000:]
    for name in ("predictions.jsonl", "split_ids.json", "job.json"):
        assert (outs[0] / name).read_bytes() == (outs[1] / name).read_bytes(), name
    metrics = [metrics_without_timing(out) for out in outs]
    assert metrics[0] == metrics[1]
    assert metrics[0]["total"] == 6 and metrics[0]["shots"] == 1
    assert TIMING_KEYS <= set(json.loads((outs[0] / "metrics.json").read_text()))
