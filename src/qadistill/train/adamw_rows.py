"""AdamW state and updates for part of a parameter's rows, exactly as `torch.optim.AdamW` would make them.

Used where a gradient is never materialised whole (`tied_embedding.py`'s factored mode: a 152k-row tied
embedding's gradient is produced a few thousand rows at a time), and to allocate every parameter's moments before
the first step (`allocate_adamw_state`): allocated then, they sit below the step's short-lived tensors instead of
above the holes those leave, which keeps the CPU heap smaller.

The state is kept in the optimizer's own `state[param]` with the keys and dtypes AdamW's lazy initialisation uses,
so checkpoints save and restore it as usual.
"""

from __future__ import annotations

from typing import Any

import torch


def _unwrapped(optimizer: Any) -> torch.optim.Optimizer:
    return getattr(optimizer, "optimizer", optimizer)  # accelerate's AcceleratedOptimizer wraps the torch one


def supports_row_updates(optimizer: Any) -> bool:
    """Fused AdamW (the per-element update does not depend on how the rows are split), no amsgrad / maximize."""
    inner = _unwrapped(optimizer)
    return (
        isinstance(inner, torch.optim.AdamW)
        and hasattr(torch, "_fused_adamw_")
        and all(g.get("fused") and not g.get("amsgrad") and not g.get("maximize") for g in inner.param_groups)
    )


def group_of(optimizer: Any, param: torch.Tensor) -> dict[str, Any]:
    for group in _unwrapped(optimizer).param_groups:
        if any(p is param for p in group["params"]):
            return group
    raise ValueError("the parameter is not in any of the optimizer's groups")


def adamw_state(optimizer: Any, param: torch.Tensor, group: dict[str, Any]) -> dict[str, torch.Tensor]:
    """`optimizer.state[param]` (`group`: its param group), created as AdamW's `_init_group` creates it when it is
    still empty."""
    state = _unwrapped(optimizer).state[param]
    if not state:
        on_device = group.get("fused") or group.get("capturable")
        state["step"] = torch.zeros((), dtype=torch.float32, device=param.device) if on_device else torch.tensor(0.0)
        state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        if group.get("amsgrad"):
            state["max_exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
    return state


def allocate_adamw_state(optimizer: Any) -> None:
    """Create every trainable parameter's AdamW state now rather than in the first `step()` (see above)."""
    inner = _unwrapped(optimizer)
    if not isinstance(inner, torch.optim.Adam | torch.optim.AdamW):
        return
    for group in inner.param_groups:
        for param in group["params"]:
            if param.requires_grad:
                adamw_state(inner, param, group)


def begin_row_update(optimizer: Any, param: torch.Tensor) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Count one more step for `param` (as fused AdamW does before its kernel); returns its state and group."""
    group = group_of(optimizer, param)
    state = adamw_state(optimizer, param, group)
    state["step"].add_(1)
    return state, group


def update_rows(
    param: torch.Tensor, state: dict[str, torch.Tensor], group: dict[str, Any], rows: slice, grad: torch.Tensor
) -> None:
    """AdamW update of `param[rows]` with `grad` (those rows' gradient), after `begin_row_update`."""
    beta1, beta2 = group["betas"]
    torch._fused_adamw_(
        [param.data[rows]],
        [grad],
        [state["exp_avg"][rows]],
        [state["exp_avg_sq"][rows]],
        [],
        [state["step"]],
        amsgrad=False,
        lr=float(group["lr"]),
        beta1=float(beta1),
        beta2=float(beta2),
        weight_decay=float(group["weight_decay"]),
        eps=float(group["eps"]),
        maximize=False,
        grad_scale=None,
        found_inf=None,
    )
