"""Speed benchmarks, each against a baseline run side by side in the same process.

    python scripts/benchmark.py [--section all|cache|gpu] [--attacker 5000] [--device cpu]

1. cache: the same bow grid run cold (empty caches), warm (embedding + artifact caches, new
   output folder) and resumed (same output folder: every cell skipped).
2. retrieval: faiss exact top-10 vs a numpy full sort, on the utility task's vectors.
3. gpu: victim embeddings per second (MiniLM; fp32 batch 64 on the CPU, fp16 batch 512 on CUDA),
   attack targets per second (a `nearest` cell over the attacker split, warm embedding cache)
   and top-10 search, each on the CPU (the baseline) and on CUDA in the same run; without a GPU
   only the CPU rows are printed and the GPU rows say "unmeasured".
4. zsinvert (``--section zsinvert``): the real SmolLM2-135M proposing and all-MiniLM-L6-v2 judging on
   ``--targets`` WordNet targets, with the LM's key/value cache, batched victim queries and each text
   asked once, against the plain loop (whole sequence re-run every step, one text per query,
   repeats asked again); seconds and victim queries per target.
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
    ap.add_argument("--section", choices=["all", "cache", "gpu", "zsinvert"], default="all")
    ap.add_argument("--gpu-texts", type=int, default=2000, help="texts embedded per device in the gpu section")
    ap.add_argument("--targets", type=int, default=3, help="zsinvert targets")
    args = ap.parse_args()
    rows = []
    if args.section in ("all", "cache"):
        rows += cache_rows(args)
    if args.section in ("all", "gpu"):
        rows += gpu_section(args)
    if args.section in ("all", "zsinvert"):
        rows += zsinvert_rows(args)
    print_rows(rows)


def zsinvert_rows(args) -> list[tuple[str, float, float]]:
    """zsinvert's search with its speed-ups vs the plain loop, same targets, same process."""
    from bench.api import AttackContext
    from bench.guided import GuidedDecoder, VictimScorer
    from bench.oracle import QueryLedger, victim_oracle
    from bench.plugins import Host
    from bench.runner import Runner
    from bench.settings import Settings, use
    from bench.victim import Victim

    host = Host(load_installed=False)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(cache_dir=Path(os.environ.get("BENCH_CACHE_DIR") or Path(tmp) / "cache"), device=args.device, progress=False)
        with use(settings):
            runner = Runner(host, Path(tmp) / "out", settings=settings)
            dataset = host.make("datasets", "wordnet", {"attacker": args.attacker})
            data = runner.splits(dataset)
            victim = Victim(runner.embedder(host.make("embedders", "minilm")), runner.cache, runner.data_key(dataset), progress=False)
            attack = host.make("attacks", "zsinvert", {})
            oracle = victim_oracle(victim, QueryLedger(), None)
            ctx = AttackContext(oracle=oracle, attacker=data.attacker, leaked=data.leaked, leaked_embeddings=None, defense=None,
                                seed=0, settings=settings, artifact_root=settings.cache("artifacts", "zsinvert"),
                                artifact_key={"victim": victim.fingerprint, "dataset": victim.dataset_key, "seed": 0})
            attack.fit(ctx)
            targets = victim.embed_split("target", data.target.texts)[: args.targets]
            priors = attack.priors(targets)
            fast_dec = attack.decoder
            plain_dec = GuidedDecoder(fast_dec.model, fast_dec.tok, fast_dec.device, use_cache=False)
            results = {}
            for label, dec, batch, dedup in (("plain", plain_dec, 1, False), ("fast", fast_dec, attack.params.batch, True)):
                attack.decoder = dec
                seconds, asked, texts = 0.0, 0, []
                for t, prior in zip(targets, priors):
                    scorer = VictimScorer(lambda x: oracle.query(x, cache=False), t, batch=batch, dedup=dedup)
                    sec, inv = timed(lambda s=scorer, p=prior: attack.search(s, p))
                    seconds, asked = seconds + sec, asked + scorer.asked
                    texts.append(inv.output)
                results[label] = (seconds / len(targets), asked / len(targets), texts)
            same = sum(a == b for a, b in zip(results["plain"][2], results["fast"][2]))
            n = len(targets)
            rows.append((f"zsinvert plain loop (no KV cache, 1 text/query, repeats re-asked): s/target; {results['plain'][1]:.0f} queries/target", results["plain"][0], 1.0))
            rows.append((f"zsinvert (KV cache, batched, each text once): s/target; {results['fast'][1]:.0f} queries/target; {same}/{n} same outputs",
                         results["fast"][0], results["plain"][0] / results["fast"][0]))
    return rows


def cache_rows(args) -> list[tuple[str, float, float]]:
    """The bow grid cold / warm / resumed, and faiss vs numpy top-10."""
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

    return rows


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
