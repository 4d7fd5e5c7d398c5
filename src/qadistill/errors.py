"""One exception type for problems the user can fix; the CLI prints it as one line and exits non-zero."""

from __future__ import annotations

import pickle
import re


class QADistillError(Exception):
    """A user-facing error: bad input file, bad config, missing model, and so on.

    The message must name the offending thing (file, key, model) and the problem, on one line.
    """


def format_validation_error(error, prefix: tuple = ()) -> str:
    """`key.sub: message` for the first error (and how many more), the key path joined with dots."""
    errors = error.errors(include_url=False)
    first = errors[0]
    loc = ".".join(str(part) for part in (*prefix, *first["loc"]))
    message = first["msg"]
    if first["type"] == "extra_forbidden":
        message = "unknown key"
    elif first["type"] == "missing":
        message = "required key is missing"
    message = message.removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})" if len(errors) > 1 else ""
    text = f"{loc}: {message}" if loc else message
    return " ".join(f"{text}{more}".split())


def one_line_validation_error(exc, source: str = "invalid settings") -> str:
    """A pydantic ValidationError as one line: `source: key.path: message (and N more problems)`."""
    return f"{source}: {format_validation_error(exc)}"


_REFUSED_GLOBAL = re.compile(r"Unsupported global: GLOBAL (\S+)")


def _refused_pickle(exc: pickle.UnpicklingError) -> str:
    """torch's weights-only refusal without its advice to load with `weights_only=False` (running the pickle's
    code is exactly what must not happen): what the file holds besides tensors, and what to do instead."""
    match = _REFUSED_GLOBAL.search(str(exc))
    what = f"an object of type {match.group(1)}" if match else "objects"
    return f"the pickle holds {what}, not only tensors, and is refused (convert the weights to safetensors)"


def one_line(exc: BaseException, limit: int = 300) -> str:
    """An exception as one short line: type name and its message with whitespace collapsed."""
    if isinstance(exc, pickle.UnpicklingError) and "weights only load failed" in str(exc).lower():
        return _refused_pickle(exc)
    text = " ".join(str(exc).split()) or type(exc).__name__
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}"
