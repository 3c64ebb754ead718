"""Speed benchmarks, each against a baseline run side by side in the same process.

    python scripts/benchmark.py [--section all|cache|gpu] [--attacker 5000] [--device cpu]

1. cache: the same bow grid run cold (empty caches), warm (embedding + artifact caches, new
   output folder) and resumed (same output folder: every cell skipped).
2. retrieval: faiss exact top-10 vs a numpy full sort, on the utility task's vectors.
3. gpu: victim embeddings per second (MiniLM; fp32 batch 64 on the CPU, fp16 batch 512 on CUDA),
   attack targets per second (a `nearest` cell over the attacker split, warm embedding cache)
   and top-10 search, each on the CPU (the baseline) and on CUDA in the same run; without a GPU
   only the CPU rows are printed and the GPU rows say "unmeasured".
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
    ap.add_argument("--section", choices=["all", "cache", "gpu"], default="all")
    ap.add_argument("--gpu-texts", type=int, default=2000, help="texts embedded per device in the gpu section")
    args = ap.parse_args()
    if args.section in ("all", "gpu"):
        print_rows(gpu_section(args))
    if args.section == "gpu":
        return

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

    print_rows(rows)


def print_rows(rows) -> None:
    print("| what | seconds | speed-up vs baseline row |")
    print("|---|---:|---:|")
    for what, sec, ratio in rows:
        print(f"| {what} | {sec:.2f} | {ratio:.1f}x |" if sec is not None else f"| {what} | unmeasured | - |")


def gpu_section(args) -> list:
    """CPU baseline and CUDA rows, measured in this process."""
    import torch

    from bench.plugins import Host
    from bench.runner import Runner, build_grid
    from bench.utility import search

    host = Host(load_installed=False)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ds = f"wordnet:attacker={max(args.attacker, 2 * args.gpu_texts)},target=1000"
        dataset = host.make("datasets", "wordnet", dict(kv.split("=") for kv in ds.split(":")[1].split(",")))
        texts = dataset.load().attacker.texts[: args.gpu_texts]
        base = {}
        for dev in devices:
            emb = host.make("embedders", "minilm")
            emb.load(dev)
            emb.embed(texts[:64])  # warm-up (kernels, allocator)
            if dev == "cuda":
                torch.cuda.synchronize()
            sec, _ = timed(lambda emb=emb: emb.embed(texts))
            base.setdefault("embed", sec)
            what = "fp16, batch 512" if dev == "cuda" else "fp32, batch 64"
            rows.append((f"MiniLM embeddings on {dev} ({what}): {len(texts) / sec:.0f} texts/s", sec, base["embed"] / sec))

            runner = Runner(host, tmp / f"out-{dev}", dev, tmp / "cache", progress=False)
            (cell,) = build_grid(host, ["nearest:adaptive=false"], ["none"], ["minilm"], [ds], [0], limit=0)
            runner.run_cell(cell)  # fills the embedding cache: the timed run below inverts only
            sec, (rec, _) = timed(lambda runner=runner, cell=cell: runner.run_cell(cell))
            n = rec.metrics["word_f1"].n if rec.status == "ok" else 0
            base.setdefault("attack", sec)
            rows.append((f"nearest cell on {dev}, {n} targets (warm cache): {n / sec:.0f} targets/s", sec, base["attack"] / sec))

            q = np.random.default_rng(0).standard_normal((2000, 384)).astype(np.float32)
            c = np.random.default_rng(1).standard_normal((50000, 384)).astype(np.float32)
            search(q, c, 10, dev)
            sec, _ = timed(lambda q=q, c=c, dev=dev: search(q, c, 10, dev))
            base.setdefault("search", sec)
            rows.append((f"top-10 search on {dev}, 2000 x 50000", sec, base["search"] / sec))
    if len(devices) == 1:
        rows += [(f"{w} on cuda", None, None) for w in ("MiniLM embeddings", "nearest cell", "top-10 search")]
    return rows


if __name__ == "__main__":
    main()
