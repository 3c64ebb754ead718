class BenchError(Exception):
    """A user mistake or a missing resource: the CLI prints it on one line and exits 2."""
