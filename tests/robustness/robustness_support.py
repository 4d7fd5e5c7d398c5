"""Plain helpers of the robustness suite (imported by its conftest and test modules).

`run_main` calls `qadistill.cli.main()` itself (the same error handling as the console script) with stdout and
stderr captured; `run_subprocess` runs a command in a fresh process, offline and single-threaded, for what only a
real process shows (tracebacks, logging setup, signals, exit codes).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import traceback
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONSOLE_SCRIPT = Path(sys.executable).with_name("qadistill")

# Every subprocess is offline: a test must never wait on (or reach) the network.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "PYTHONUNBUFFERED": "1",
}

# Metrics keys that measure wall-clock time, not the result.
TIMING_KEYS = {"generation_seconds", "questions_per_second"}

# `qadistill finetune` on the packaged demo-en data: a tiny model, a few steps, small prompts.
FINETUNE_ARGS = ["--dataset", "demo-en", "--limit-train", "8", "--batch-size", "2", "--lr", "1e-3", "--no-progress"]
FINETUNE_OVERRIDES = ["prompt.max_prompt_tokens=96", "train.max_answer_tokens=8", "train.eval_interval=0"]
# `qadistill evaluate` on demo-en: a handful of questions, short answers.
EVALUATE_ARGS = ["--dataset", "demo-en", "--limit", "4", "--max-new-tokens", "4", "--max-prompt-tokens", "96"]


@dataclass
class CliResult:
    code: int | str
    stdout: str
    stderr: str

    @property
    def lines(self) -> list[str]:
        """The non-empty stderr lines as a terminal shows them: a progress bar redrawn with carriage returns and
        cleared (`leave=False`) leaves nothing of itself on the line."""
        shown = (line.rsplit("\r", 1)[-1].strip() for line in self.stderr.split("\n"))
        return [line for line in shown if line]


def assert_one_line_error(result: CliResult, *names: object) -> str:
    """Exit status 2, stderr exactly one `error:` line naming each of `names`, no traceback; returns the line."""
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    assert result.code == 2, (result.code, result.stderr[-2000:], result.stdout[-500:])
    assert len(result.lines) == 1, result.stderr[-3000:]
    line = result.lines[0]
    assert line.startswith("error: "), line
    for name in names:
        assert str(name) in line, (name, line)
    return line


def run_main(args: list[object]) -> CliResult:
    """`qadistill ARGS` through `cli.main()` in this process; an escaped exception is reported as "traceback"."""
    from qadistill import cli

    out, err = io.StringIO(), io.StringIO()
    argv = sys.argv
    sys.argv = ["qadistill", *map(str, args)]
    code: int | str
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                cli.main()
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except BaseException:  # what the console script would print as a traceback
                traceback.print_exc(file=err)
                code = "traceback"
    finally:
        sys.argv = argv
    return CliResult(code, out.getvalue(), err.getvalue())


def run_subprocess(cmd: list[object], *, env: dict[str, str] | None = None, timeout: float = 300) -> CliResult:
    full_env = {**os.environ, **OFFLINE_ENV, **(env or {})}
    done = subprocess.run(
        [str(c) for c in cmd], capture_output=True, text=True, env=full_env, timeout=timeout, cwd=REPO
    )
    return CliResult(done.returncode, done.stdout, done.stderr)


def qadistill(*args: object, env: dict[str, str] | None = None, timeout: float = 300) -> CliResult:
    """The installed `qadistill` console script in a fresh process."""
    return run_subprocess([CONSOLE_SCRIPT, *args], env=env, timeout=timeout)


def metrics_without_timing(folder: Path) -> dict:
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    return {k: v for k, v in metrics.items() if k not in TIMING_KEYS}
