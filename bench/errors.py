class BenchError(Exception):
    """A user mistake or a missing resource: the CLI prints it on one line and exits 2."""


def one_line(text: object, limit: int = 200) -> str:
    """``text`` with its white space folded, cut to ``limit`` characters: fit for a one-line error."""
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
