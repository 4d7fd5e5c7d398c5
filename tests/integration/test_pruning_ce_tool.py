"""`tools/pruning_ce.py` on a tiny saved model and real SQuAD v2 questions: its CE rows are the CE that
training's `validation_ce` gives for the same questions and the same pruned models, and its measured choices are
the package's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from qadistill.config import DataConfig, PromptConfig, PruneConfig
from qadistill.data.prepare import prepare_data, prompt_format
from qadistill.data.splits import cap
from qadistill.models import build_tiny_model, load_real_tokenizer, prune_layers, save_model
from qadistill.train.batching import encode_examples
from qadistill.train.calibration import choose_layers
from qadistill.train.data import fixed_batches
from qadistill.train.validation import answer_ce as validation_ce

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[2] / "tools" / "pruning_ce.py"


def test_pruning_ce_rows_are_validation_ce(shared_data: Path, tmp_path: Path) -> None:
    tokenizer = load_real_tokenizer("pythia", shared_data / "tokenizers")
    model = build_tiny_model("pythia", tokenizer, num_layers=4, hidden_size=32, num_heads=2, seed=5)
    folder = save_model(model, tokenizer, tmp_path / "model")
    args = [
        "--model", str(folder), "--data-dir", str(shared_data), "--keep", "2", "--examples", "6",
        "--calibration-examples", "4", "--max-prompt-tokens", "96", "--max-answer-tokens", "8", "--batch-size", "4",
        "--methods", "spread", "block_influence", "block", "--out", str(tmp_path / "out.json"),
    ]  # fmt: skip
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result == json.loads((tmp_path / "out.json").read_text())
    rows = {r["method"]: r for r in result["results"]}
    assert set(rows) == {"none", "spread", "block_influence", "block"} and result["questions"] == 6

    prepared = prepare_data(DataConfig(dataset="squad_v2", data_dir=shared_data))
    prompt = PromptConfig(shots=0, max_prompt_tokens=96)
    fmt = prompt_format(prepared, prompt)
    items = encode_examples(cap(prepared.split("validation"), 6, 0), fmt, tokenizer, [], 0, 8)
    batches = fixed_batches(items, 3, tokenizer.pad_token_id)  # other batches than the tool's: the same CE
    assert rows["none"]["ce"] == pytest.approx(validation_ce(model, batches, torch.device("cpu")), abs=1e-3)
    for method in ("block_influence", "block"):
        choice = choose_layers(
            model, tokenizer, PruneConfig(method=method, keep=2, calibration_examples=4), data=prepared,
            prompt=prompt, seed=0, max_answer_tokens=8,
        )  # fmt: skip
        assert rows[method]["kept"] == choice.kept
        assert rows[method]["scores"] == pytest.approx(choice.scores, abs=1e-4)
        ce = validation_ce(prune_layers(model, choice.kept), batches, torch.device("cpu"))
        assert rows[method]["ce"] == pytest.approx(ce, abs=1e-3)
    assert rows["spread"]["kept"] == [0, 3] and rows["spread"]["scores"] is None
