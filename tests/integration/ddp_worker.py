"""One process of a multi-process training launch, for `test_ddp.py` (not a test module itself).

    ACCELERATE_USE_CPU=1 python -m torch.distributed.run --nproc_per_node 2 ... ddp_worker.py spec.json

`spec.json` holds {"jobs": [{"kind": "finetune" | "distill", "job": {...}, "inject": {...}}, ...]}; the jobs run one
after the other in the same processes (one launch, so the test pays the start-up once). `inject` makes one process
misbehave, to check that the others follow instead of hanging:

* {"nan_loss": {"rank": 1, "call": 2}}: that rank's `call`-th loss is NaN;
* {"signal": {"rank": 1, "step": 2}}: that rank sends itself SIGTERM after `step`.

Each rank writes `<out_dir>[.<tag>].rank<R>.json` (`tag` from the spec, to tell two runs in one folder apart):
{"outcome": "ok"} or the exception's type, message and step.
With `DDP_WORKER_ALARM_S` set, a process still running after that many seconds is ended by SIGALRM (a process
hanging in a collective ends too, and torchrun then stops), so a hang never outlives the test.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any


def nan_on_call(objective_call, call: int):
    """An objective's `__call__`, except that the loss of its `call`-th call is NaN."""
    calls = {"n": 0}

    def patched(self, *args, **kwargs):
        calls["n"] += 1
        terms = objective_call(self, *args, **kwargs)
        return terms._replace(loss=terms.loss * float("nan")) if calls["n"] == call else terms

    return patched


def run_job(spec: dict[str, Any], rank: int) -> dict[str, Any]:
    from qadistill.train import distill, finetune, objectives
    from qadistill.train.config import DistillJob, FinetuneJob

    objective, job_cls, runner = (
        (objectives.AnswerCE, FinetuneJob, finetune.run_finetune)
        if spec["kind"] == "finetune"
        else (objectives.AnswerDistillation, DistillJob, distill.run_distill)
    )
    job = job_cls.model_validate(spec["job"])
    inject = spec.get("inject", {})
    on_step = None
    original = objective.__call__
    if (nan := inject.get("nan_loss")) and nan["rank"] == rank:
        objective.__call__ = nan_on_call(original, nan["call"])
    if (sig := inject.get("signal")) and sig["rank"] == rank:

        def on_step(step: int, _record: dict[str, Any]) -> None:
            if step == sig["step"]:
                os.kill(os.getpid(), signal.SIGTERM)

    try:
        runner(job, progress=False, on_step=on_step)
        return {"outcome": "ok"}
    except (Exception, KeyboardInterrupt) as exc:  # TrainingInterrupted is a KeyboardInterrupt
        return {"outcome": type(exc).__name__, "message": str(exc), "step": getattr(exc, "step", None)}
    finally:
        objective.__call__ = original


def main() -> None:
    signal.alarm(int(os.environ.get("DDP_WORKER_ALARM_S", "0")))
    rank = int(os.environ.get("RANK", "0"))
    for spec in json.loads(Path(sys.argv[1]).read_text("utf-8"))["jobs"]:
        outcome = run_job(spec, rank)
        tag = f".{spec['tag']}" if spec.get("tag") else ""
        Path(f"{spec['job']['out_dir']}{tag}.rank{rank}.json").write_text(json.dumps(outcome), "utf-8")


if __name__ == "__main__":
    main()
