"""Bring records written before digests existed (schema < 3) to the current schema, with digests.

For maintainers adopting old records into a board (the published boards of 2026-11-23 were written
before records carried digests). Each record is migrated, its samples file (if present) hashed,
and the sealed copy written to OUT with the same file names; the originals are not touched.
A record that already carries a digest is checked and copied as it is.

    python scripts/seal_records.py leaderboards/NAME/records OUT_DIR
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

from bench.plugins import Host
from bench.results import load_record, read_json, record_files, sealed_json


def seal(src: Path, out: Path) -> int:
    out.mkdir(parents=True, exist_ok=True)
    host = Host()  # migrations read the installed attacks' metric declarations and headlines
    n = 0
    for f in record_files([src]):
        data = read_json(f)
        if not (isinstance(data, dict) and "cell_id" in data):
            continue
        rec = load_record(f, data=data, attacks=lambda name: host.entry("attacks", name).cls)  # migrated; digest-checked
        samples = f.parent / rec.samples_file if rec.samples_file else None
        if data.get("digest"):
            shutil.copyfile(f, out / f.name)
        else:
            update = {}
            if samples and samples.exists():
                update["samples_sha256"] = hashlib.sha256(samples.read_bytes()).hexdigest()
            elif rec.samples_file:
                update["samples_file"] = None  # not published with the record
            (out / f.name).write_bytes(sealed_json(rec.model_copy(update=update)))
        if samples and samples.exists():
            shutil.copyfile(samples, out / samples.name)
        n += 1
    return n


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    print(f"sealed {seal(Path(sys.argv[1]), Path(sys.argv[2]))} record(s) into {sys.argv[2]}")
