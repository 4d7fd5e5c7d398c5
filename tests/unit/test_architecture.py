"""Layer rules hold: no upward imports (inference never imports training), no import cycle, typer only in the CLI."""

from __future__ import annotations

import importlib.util
from pathlib import Path

TOOL = Path(__file__).resolve().parents[2] / "tools" / "architecture.py"


def _tool():
    spec = importlib.util.spec_from_file_location("architecture", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_layer_rules_hold():
    arch = _tool()
    graph = arch.import_graph()
    assert arch.layer_violations(graph) == []
    assert arch.cycles(graph) == []
    assert arch.typer_outside_cli() == []


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    """A made-up inference module importing training is reported (the check can fail)."""
    arch = _tool()
    package = tmp_path / "src" / "qadistill"
    (package / "train").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "train" / "__init__.py").write_text("")
    (package / "train" / "loop.py").write_text("import qadistill.generation\n")
    (package / "generation.py").write_text("from qadistill.train.loop import x\n")
    monkeypatch.setattr(arch, "PACKAGE", package)
    graph = arch.import_graph()
    assert arch.layer_violations(graph) == [
        "qadistill.generation (layer inference) imports qadistill.train.loop (layer training) at line 1"
    ]
    assert arch.cycles(graph) == [["qadistill.generation", "qadistill.train.loop", "qadistill.generation"]]
