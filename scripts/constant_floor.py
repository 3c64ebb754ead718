"""The constant-text floor of a text-inversion cell: one fixed text answered for every target.

The constant is chosen on the dev texts (the attacker-split slice held out by
``scripts/train_inverter.py``; never the targets): among ``--candidates`` training texts, the one with
the best mean token F1 against the dev texts. It is then scored on the targets of a record's samples
file with the bench's own metrics (token F1, BLEU, ROUGE-L, and the victim cosine between the
constant's embedding and each clean target embedding), so the floor sits on the same targets as the
attack it is compared with. A stand-in until the ``chance`` attack lands.

    python scripts/constant_floor.py --samples results/geia__...samples.jsonl --out floor.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=Path, required=True, help="a record's .samples.jsonl (its targets are scored)")
    ap.add_argument("--out", type=Path, required=True, help="JSON file to write (never overwritten)")
    ap.add_argument("--embedder", default="minilm")
    ap.add_argument("--attacker", type=int, default=20000, help="WordNet attacker split size (as trained)")
    ap.add_argument("--dev", type=int, default=500, help="dev texts held out of the attacker split (as trained)")
    ap.add_argument("--candidates", type=int, default=300, help="training texts tried as the constant")
    a = ap.parse_args(argv)
    if not a.samples.is_file():
        print(f"error: --samples {a.samples} is not a file: pass a record's .samples.jsonl", file=sys.stderr)
        return 2
    if a.out.exists():
        print(f"error: --out {a.out} exists: results are never overwritten; pass a new file", file=sys.stderr)
        return 2
    from bench.metrics import bootstrap_ci, reconstruction_scores, token_f1
    from bench.plugins import Host
    from bench.vectors import cosine_rows
    from bench_plugins.attacks.textinv_ship import training_texts

    targets = [json.loads(line)["target"] for line in a.samples.read_text().splitlines() if line.strip()]
    host = Host()
    splits = host.make("datasets", "wordnet", {"attacker": a.attacker}).load()
    train, dev, dev_source = training_texts(splits, a.dev, None)
    cands = train[: a.candidates]
    dev_f1 = [float(np.mean([token_f1(c, d) for d in dev])) for c in cands]
    const = cands[int(np.argmax(dev_f1))]
    rows = reconstruction_scores([const] * len(targets), targets, "text")
    emb = host.make("embedders", a.embedder, {})
    emb.load("cpu")
    vecs = emb.embed([const] + targets)
    rows_cos = cosine_rows(np.repeat(vecs[:1], len(targets), 0), vecs[1:])
    out = {"constant": const, "chosen_on": f"mean token F1 over {len(dev)} dev texts ({dev_source}), among the first "
           f"{len(cands)} training texts", "dev_token_f1": max(dev_f1), "n_targets": len(targets), "samples": str(a.samples), "metrics": {}}
    for m, vals in (("token_f1", [r["token_f1"] for r in rows]), ("bleu", [r["bleu"] for r in rows]),
                    ("rouge_l", [r["rouge_l"] for r in rows]), ("cosine", list(rows_cos))):
        v = np.asarray(vals, np.float64)
        lo, hi = bootstrap_ci(v)
        out["metrics"][m] = {"mean": float(v.mean()), "ci95": [float(lo), float(hi)]}
    tmp = a.out.with_name(f".{a.out.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(out, indent=1))
    os.link(tmp, a.out)  # fails if it appeared meanwhile: never overwritten
    tmp.unlink()
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
