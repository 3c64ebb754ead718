"""Does a shipped inverter use the embedding? Its dev loss with each text's own embedding vs a shuffled one.

    python scripts/inverter_conditioning.py --name geia-minilm-wordnet-v2 --work ~/.cache/inversion-bench-train/geia-p16-minilm-wordnet

A decoder that ignores the embedding (an LM prior: it writes stock sentences) has the same loss
both ways; the gap (nats per token) is what the embedding tells it. Uses the dev texts and their
cached embeddings of the training run (``--work``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--name", default="geia-minilm-wordnet-v2", help="shipped inverter (plugins/weights/<name>)")
    ap.add_argument("--work", type=Path, required=True, help="the training run's --work folder (dev embeddings)")
    ap.add_argument("--n", type=int, default=256, help="dev texts")
    a = ap.parse_args(argv)
    found = sorted(a.work.glob("emb-dev-*.safetensors"))
    if not found:
        print(f"error: no emb-dev-*.safetensors in {a.work}: pass the training run's --work folder", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(1)
    from bench.cache import load_arrays
    from bench.plugins import Host
    from bench_plugins.attacks import textinv, textinv_ship

    m = textinv_ship.manifest(a.name)
    p = m["params"]
    lm, tok, _ = textinv.load_lm(m["lm"]["ref"], "cpu")
    model = textinv.build(lm, tok, m["victim"]["fingerprint"]["dim"], p["prefix_len"], False, p["finetune"], p["lora_r"], p["lora_alpha"], 0)
    textinv_ship.load_shipped(model, a.name)
    d = m["data"]
    splits = Host().make("datasets", d["dataset"], d["dataset_params"]).load()
    _, dev, _ = textinv_ship.training_texts(splits, d["n_dev"], d["n_train"])
    e = load_arrays(found[0])["embeddings"][: a.n]
    ids = textinv.tokenize_targets(tok, dev[: len(e)], p["max_length"])
    own = textinv.mean_loss(model, e, ids, 32, "cpu")
    shuffled = textinv.mean_loss(model, e[np.random.default_rng(0).permutation(len(e))], ids, 32, "cpu")
    print(json.dumps({"name": a.name, "n": len(e), "dev_loss_own_embedding": own, "dev_loss_shuffled_embedding": shuffled}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
