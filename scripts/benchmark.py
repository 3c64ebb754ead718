"""Speed benchmarks, each against a baseline run side by side in the same process.

    python scripts/benchmark.py [--attacker 5000] [--device cpu]

1. cache: the same bow grid run cold (empty caches), warm (embedding + artifact caches, new
   output folder) and resumed (same output folder: every cell skipped).
2. retrieval: faiss exact top-10 vs a numpy full sort, on the utility task's vectors.
Prints a Markdown table for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("BENCH_LOAD_PLUGINS", "")


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--attacker", type=int, default=5000)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    from bench.plugins import Host
    from bench.runner import Runner, build_grid
    from bench.utility import search

    host = Host(load_installed=False)
    ds = f"wordnet:attacker={args.attacker}"
    grid = dict(attacks=["bow"], defenses=["none", "noise:scale=0.01|0.1", "rotation"], embedders=["minilm"], datasets=[ds], seeds=[0])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)

        def run(out: str):
            runner = Runner(host, tmp / out, args.device, tmp / "cache", progress=False)
            cells = build_grid(host, **grid)
            runner.prepare(cells)
            return runner.run(cells)

        cold, recs = timed(lambda: run("cold"))
        warm, recs2 = timed(lambda: run("warm"))
        resumed, _ = timed(lambda: run("warm"))
        assert [r.metrics for r in recs] == [r.metrics for r in recs2], "warm run changed the numbers"
        n = len(recs)
        rows.append((f"bow grid, {n} cells, attacker={args.attacker}: cold caches", cold, 1.0))
        rows.append(("same grid, warm embedding/artifact caches (new --out)", warm, cold / warm))
        rows.append(("same grid, resumed (same --out: cells skipped)", resumed, cold / resumed))

        # Retrieval on the real utility vectors (defense none).
        runner = Runner(host, tmp / "x", args.device, tmp / "cache", progress=False)
        dataset = host.make("datasets", "wordnet", {"attacker": args.attacker})
        data = runner.splits(dataset)
        from bench.victim import Victim

        victim = Victim(runner.embedder(host.make("embedders", "minilm")), runner.cache, runner.data_key(dataset))
        q = victim.embed_split("target", data.target.texts)
        c = victim.embed_split("corpus", data.retrieval.corpus_texts)
        reps = 20
        t_faiss, idx_f = timed(lambda: [search(q, c, 10) for _ in range(reps)][-1])

        def numpy_topk():
            qn = q / np.linalg.norm(q, axis=1, keepdims=True)
            cn = c / np.linalg.norm(c, axis=1, keepdims=True)
            return np.argsort(-(qn @ cn.T), axis=1)[:, :10]

        t_np, idx_n = timed(lambda: [numpy_topk() for _ in range(reps)][-1])
        agree = float((idx_f == idx_n).mean())
        rows.append((f"numpy full sort top-10, {len(q)}x{len(c)} (x{reps})", t_np, 1.0))
        rows.append((f"faiss IndexFlatIP top-10 (x{reps}; {agree:.1%} same ids)", t_faiss, t_np / t_faiss))

    print("| what | seconds | speed-up vs baseline row |")
    print("|---|---:|---:|")
    for what, sec, ratio in rows:
        print(f"| {what} | {sec:.2f} | {ratio:.1f}x |")


if __name__ == "__main__":
    main()
