"""Plot the scalars of a TensorBoard run (as `tracking: {report_to: [tensorboard]}` writes them) into one PNG.

Reads the event files back with TensorBoard's own EventAccumulator, so the picture shows what TensorBoard shows
(headless: no server, no browser).

    .venv/bin/python tools/plot_tensorboard.py RUN/tracking/PROJECT/RUN_NAME --out curves.png \\
        --tags train/loss eval/val_ce train/lr train/grad_norm
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("logdir", type=Path, help="the run's folder of event files")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--tags", nargs="+", default=["train/loss", "eval/val_ce", "train/lr", "train/grad_norm"])
    parser.add_argument("--title", default=None)
    args = parser.parse_args()

    events = EventAccumulator(str(args.logdir))
    events.Reload()
    available = set(events.Tags()["scalars"])
    missing = [t for t in args.tags if t not in available]
    if missing:
        raise SystemExit(f"error: {args.logdir} has no scalar {missing[0]!r} (it has {', '.join(sorted(available))})")
    fig, axes = plt.subplots(1, len(args.tags), figsize=(4 * len(args.tags), 3.2), squeeze=False)
    for ax, tag in zip(axes[0], args.tags, strict=True):
        points = events.Scalars(tag)
        ax.plot([p.step for p in points], [p.value for p in points], marker="o" if len(points) < 15 else None, ms=3)
        ax.set_title(tag)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.suptitle(args.title or str(args.logdir.name))
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=120)
    print(args.out)


if __name__ == "__main__":
    main()
