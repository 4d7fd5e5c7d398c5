"""Command-line overrides `key.sub=value` applied to a parsed YAML config before it is validated.

Values are parsed as YAML scalars (or flow collections), so `train.lr=1e-4` is a float, `seeds=[0,1]` a list,
`data.data_dir=null` None and `train.bf16=true` a bool. Path segments are dict keys, list indices
(`teachers.0.model=...`) or, in a list of named items, an item's `name` (`methods.finetune.train.lr=1e-5`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import yaml

from qadistill.errors import QADistillError
from qadistill.yaml_safe import load_yaml

_KEY = re.compile(r"^[A-Za-z0-9_.+-]+$")


def parse_scalar(text: str) -> Any:
    """YAML typing of one value: `1e-4` -> 0.0001, `true` -> True, `[0, 1]` -> [0, 1], `x` -> "x".

    PyYAML follows YAML 1.1, where `1e-4` (no dot) is a string; such a string that Python reads as a float is
    returned as a float, which is what a user typing `train.lr=1e-4` means.
    """
    try:
        value = load_yaml(text, "the value") if text.strip() else ""
    except yaml.YAMLError as exc:
        raise ValueError(f"cannot parse {text!r} as a YAML value: {str(exc).splitlines()[0]}") from None
    except QADistillError as exc:  # an alias bomb
        raise ValueError(str(exc)) from None
    return _yaml11_floats(value)


def _yaml11_floats(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return float(value) if re.fullmatch(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+", value.strip()) else value
        except ValueError:
            return value
    if isinstance(value, list):
        return [_yaml11_floats(v) for v in value]
    if isinstance(value, dict):
        return {k: _yaml11_floats(v) for k, v in value.items()}
    return value


def split_override(text: str) -> tuple[list[str], Any]:
    """`"train.lr=1e-4"` -> (["train", "lr"], 0.0001); QADistillError for a malformed override."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise QADistillError(f"override {text!r}: expected key=value with a dotted key (e.g. train.lr=1e-4)")
    if not _KEY.match(key) or any(not part for part in key.split(".")):
        raise QADistillError(f"override {text!r}: {key!r} is not a dotted key (letters, digits, _ - + .)")
    try:
        value = parse_scalar(raw)
    except ValueError as exc:
        raise QADistillError(f"override {text!r}: {exc}") from None
    return key.split("."), value


def _child(container: Any, part: str, text: str, where: str) -> tuple[Any, Any]:
    """(container to write into, key or index of `part` in it)."""
    if isinstance(container, dict):
        return container, part
    if isinstance(container, list):
        if re.fullmatch(r"-?\d+", part):
            index = int(part)
            if not -len(container) <= index < len(container):
                raise QADistillError(f"override {text!r}: {where} has {len(container)} items, no index {index}")
            return container, index % len(container)
        named = [i for i, item in enumerate(container) if isinstance(item, dict) and item.get("name") == part]
        if len(named) == 1:
            return container, named[0]
        names = [item.get("name") for item in container if isinstance(item, dict) and "name" in item]
        raise QADistillError(
            f"override {text!r}: {where} has no item named {part!r} (names: {', '.join(map(str, names)) or 'none'})"
        )
    raise QADistillError(f"override {text!r}: {where} is a {type(container).__name__}, not a mapping or list")


def apply_override(doc: dict[str, Any], text: str) -> None:
    """Set one `key.sub=value` in `doc` (in place), creating missing mappings along the way."""
    parts, value = split_override(text)
    node: Any = doc
    where = "the config"
    for depth, part in enumerate(parts):
        container, key = _child(node, part, text, where)
        if depth == len(parts) - 1:
            container[key] = value
            return
        if isinstance(container, dict) and (key not in container or container[key] is None):
            container[key] = {}
        node = container[key]
        where = ".".join(parts[: depth + 1])


def apply_overrides(doc: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply every override in order (a later one wins); returns `doc`."""
    for text in overrides:
        apply_override(doc, text)
    return doc
