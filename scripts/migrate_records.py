"""Rewrite result records in place at the current schema version (same numbers).

    python scripts/migrate_records.py leaderboards/*/records

Each record is loaded (older schemas migrated, reading metric declarations from the installed
attacks) and written back atomically, sealed with its digests (schema 3: the sha256 of its samples
file when that file lies beside it, else no samples file, and the digest of its content); records
already current are left untouched.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from bench.cache import atomic_write_bytes
from bench.plugins import Host
from bench.results import SCHEMA_VERSION, load_record, sealed_json


def main(paths: list[str]) -> int:
    host = Host()
    lookup = lambda name: host.entry("attacks", name).cls  # noqa: E731
    done = 0
    for folder in map(Path, paths):
        for f in sorted(folder.rglob("*.json") if folder.is_dir() else [folder]):
            data = json.loads(f.read_text())
            if not (isinstance(data, dict) and "cell_id" in data) or data.get("schema_version") == SCHEMA_VERSION:
                continue
            rec = load_record(f, data=data, attacks=lookup)
            samples = f.parent / rec.samples_file if rec.samples_file else None
            if samples and samples.exists():
                rec = rec.model_copy(update={"samples_sha256": hashlib.sha256(samples.read_bytes()).hexdigest()})
            elif samples:
                rec = rec.model_copy(update={"samples_file": None})  # not kept beside the record
            atomic_write_bytes(f, sealed_json(rec), overwrite=True)
            done += 1
    print(f"{done} records migrated to schema {SCHEMA_VERSION}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
