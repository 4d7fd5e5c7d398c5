"""One exception type for problems the user can fix; the CLI prints it as one line and exits non-zero."""


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
