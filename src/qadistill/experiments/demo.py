"""The embedded demo: a small, real version of the study that runs offline on a 2-core CPU in about 15 minutes.

SmolLM2-135M-Instruct (converted once by `qadistill setup`) is fine-tuned as the teacher; two students are made
by keeping half and a quarter of its 30 layers, and each is distilled (skew reverse KL with adaptive off-policy
sampling) and, as the baseline, fine-tuned; zero- and one-shot prompts, two seeds, validation and test splits of
the packaged demo set; then the report (`qadistill.study.run_demo` runs it). The settings live in
`qadistill/configs/demo.yaml` (also `configs/demo.yaml` in the repository); `--data-dir` swaps the demo set for
real SQuAD v2 files.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from qadistill.errors import QADistillError
from qadistill.experiments.config import ExperimentConfig, config_from_dict

DEMO_CONFIG = "demo.yaml"


def demo_config_text() -> str:
    """The packaged demo config's YAML text."""
    res = resources.files("qadistill").joinpath("configs", DEMO_CONFIG)
    if not res.is_file():
        raise QADistillError(f"packaged demo config qadistill/configs/{DEMO_CONFIG} is missing (reinstall qadistill)")
    return res.read_text(encoding="utf-8")


def demo_config(data_dir: str | Path | None = None, overrides: Sequence[str] = ()) -> ExperimentConfig:
    """The demo's config; with `data_dir`, on the real SQuAD v2 files found there instead of the demo sets."""
    import yaml

    doc = yaml.safe_load(demo_config_text())
    if data_dir is not None:
        doc.setdefault("data", {})["data_dir"] = str(Path(data_dir))
        doc["datasets"] = ["squad_v2"]
    return config_from_dict(doc, source=f"demo config qadistill/configs/{DEMO_CONFIG}", overrides=list(overrides))
