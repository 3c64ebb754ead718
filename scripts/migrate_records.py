"""Rewrite result records in place at the current schema version (same numbers).

    python scripts/migrate_records.py leaderboards/*/records

Each record is loaded (older schemas migrated, reading metric declarations from the installed
attacks) and written back atomically; records already current are left untouched.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from bench.cache import atomic_write_bytes
from bench.plugins import Host
from bench.results import SCHEMA_VERSION, load_record


def main(paths: list[str]) -> int:
    host = Host()
    lookup = lambda name: host.entry("attacks", name).cls  # noqa: E731
    done = 0
    for folder in map(Path, paths):
        for f in sorted(folder.rglob("*.json") if folder.is_dir() else [folder]):
            data = json.loads(f.read_text())
            if not (isinstance(data, dict) and "cell_id" in data) or data.get("schema_version") == SCHEMA_VERSION:
                continue
            rec = load_record(data=data, attacks=lookup)
            atomic_write_bytes(f, (rec.model_dump_json(indent=2)).encode(), overwrite=True)
            done += 1
    print(f"{done} records migrated to schema {SCHEMA_VERSION}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
