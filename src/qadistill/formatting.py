"""Number formatting shared by the plan table and the report (no dependencies, so any layer may use it)."""

from __future__ import annotations

from typing import Any


def format_params(value: Any) -> str:
    """Human-readable parameter count: 2.78B, 410M, 135M; "-" when unknown."""
    if value is None:
        return "-"
    number = float(value)
    for scale, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if number >= scale:
            return f"{number / scale:.3g}{suffix}"
    return f"{number:.0f}"
