"""`benchmarks/gpu_step.py` works: its tiny CPU version runs one fine-tuning and one distillation step per family.

The real measurement (real-size Pythia-410M / Qwen2.5-0.5B on CUDA in bf16) needs a GPU; this keeps the script
known to run when one is there.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_step.py"

pytestmark = pytest.mark.slow


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_step", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_step_script_runs_tiny_on_cpu(shared_data, monkeypatch, capsys):
    monkeypatch.setenv("QADISTILL_DATA_DIR", str(shared_data))
    argv = ["--device", "cpu", "--tiny", "--batch-size", "2", "--max-prompt-tokens", "96", "--steps", "1"]
    report = load_script().main(argv)

    assert capsys.readouterr().out.strip().startswith('{"setup"')  # one JSON object on stdout
    assert [(r["family"], r["mode"]) for r in report["results"]] == [
        ("pythia", "finetune"),
        ("pythia", "distill"),
        ("qwen2.5", "finetune"),
        ("qwen2.5", "distill"),
    ]
    for result in report["results"]:
        assert result["attn_implementation"] == "sdpa"
        assert result["tokens_per_second"] > 0 and result["step_seconds"] > 0
        assert math.isfinite(result["final_loss"])
        assert (result["teacher_params"] or 0) > (result["student_params"] if result["mode"] == "distill" else -1)
