"""A job from layered settings: a YAML file, then command-line options, then dotted `key=value` overrides.

Every command that takes `--config` (evaluate, finetune, distill) builds its typed job here, so the layering and the
one-line validation errors are the same everywhere.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from qadistill.errors import QADistillError
from qadistill.overrides import apply_overrides
from qadistill.yaml_safe import load_yaml

JobT = TypeVar("JobT", bound=BaseModel)


def read_config_file(path: Path | None) -> dict[str, Any]:
    """A job as a YAML mapping (empty when no file is given)."""
    if path is None:
        return {}
    try:
        doc = load_yaml(Path(path).read_text(encoding="utf-8"), f"config file {path}")
    except OSError as exc:
        raise QADistillError(f"cannot read config file {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise QADistillError(f"config file {path} is not valid YAML: {' '.join(str(exc).split())}") from None
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise QADistillError(f"config file {path} must hold a mapping of settings")
    return doc


def set_dotted(doc: dict[str, Any], dotted: str, value: Any) -> None:
    """Set a dotted key when the option was given (None = not given)."""
    if value is None:
        return
    *sections, key = dotted.split(".")
    for section in sections:
        doc = doc.setdefault(section, {})
    doc[key] = str(value) if isinstance(value, Path) else value


def layered(config: Path | None, options: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """The config file's settings, updated by the options given (dotted keys), then by `key=value` overrides."""
    doc = read_config_file(config)
    for dotted, value in options.items():
        set_dotted(doc, dotted, value)
    return apply_overrides(doc, overrides or [])


def build_job(cls: type[JobT], doc: dict[str, Any], source: str) -> JobT:
    """Validate a job, turning pydantic's report into one line that names the offending keys."""
    try:
        return cls.model_validate(doc)
    except ValidationError as exc:
        problems = []
        for err in exc.errors()[:3]:
            where = ".".join(str(p) for p in err["loc"]) or "job"
            message = "missing (give it as an option or in --config)" if err["type"] == "missing" else err["msg"]
            problems.append(f"{where}: {message.removeprefix('Value error, ')}")
        more = f" (+{exc.error_count() - 3} more)" if exc.error_count() > 3 else ""
        raise QADistillError(f"{source}: {'; '.join(problems)}{more}") from None


def job_from_options(
    cls: type[JobT], kind: str, config: Path | None, options: dict[str, Any], overrides: list[str] | None
) -> JobT:
    """`cls` from `--config`, the options given and the overrides; errors name the config file when there is one."""
    source = f"{kind} (config {config})" if config is not None else kind
    return build_job(cls, layered(config, options, overrides), source)
