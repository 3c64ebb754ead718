"""Running the real CLI entry point inside a test."""

import pytest

from bench.cli import main


def run_cli(capsys, *args):
    """(exit code, stdout, stderr) of ``bench ARGS`` run through ``bench.cli.main``."""
    with pytest.raises(SystemExit) as e:
        main(list(args))
        raise SystemExit(0)
    out = capsys.readouterr()
    return e.value.code or 0, out.out, out.err
