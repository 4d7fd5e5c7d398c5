"""One exception type for problems the user can fix; the CLI prints it as one line and exits non-zero."""


class QADistillError(Exception):
    """A user-facing error: bad input file, bad config, missing model, and so on.

    The message must name the offending thing (file, key, model) and the problem, on one line.
    """


def one_line_validation_error(exc, source: str = "invalid settings") -> str:
    """Render a pydantic ValidationError as one line: `source: key.path: message; ...`."""
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err.get("loc", ())) or "(root)"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return f"{source}: " + "; ".join(parts)
