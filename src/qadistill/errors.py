"""One exception type for problems the user can fix; the CLI prints it as one line and exits non-zero."""


class QADistillError(Exception):
    """A user-facing error: bad input file, bad config, missing model, and so on.

    The message must name the offending thing (file, key, model) and the problem, on one line.
    """
