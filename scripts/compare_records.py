"""Compare the metric values of two sets of result records, cell by cell (matched by cell id).

    python scripts/compare_records.py leaderboards/wordnet-minilm-bow/records results/check-bow

Prints every metric whose value, CI or n differs, and exits 1 when any does or when a cell of the
first set has no counterpart. Used to check that a refactor leaves the published boards unchanged.
"""

from __future__ import annotations

import sys
from pathlib import Path

from bench.results import load_records


def values(records) -> dict[str, dict[str, tuple]]:
    out = {}
    for r in records:
        cell = {f"metrics.{k}": (m.value, m.ci_low, m.ci_high, m.n) for k, m in r.metrics.items()}
        cell.update({f"utility.{k}": (m.value, m.ci_low, m.ci_high, m.n) for k, m in r.utility.items()})
        out[r.cell_id] = cell
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip())
        return 2
    a, b = (values(load_records([Path(p)])) for p in argv)
    bad = 0
    for cell, ma in sorted(a.items()):
        mb = b.get(cell)
        if mb is None:
            print(f"{cell}: missing from {argv[1]}")
            bad += 1
            continue
        for name in sorted(set(ma) | set(mb)):
            if ma.get(name) != mb.get(name):
                print(f"{cell} {name}: {ma.get(name)} != {mb.get(name)}")
                bad += 1
    n = sum(len(m) for m in a.values())
    print(f"{len(a)} cells, {n} metric values compared: {'identical' if not bad else f'{bad} differences'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
