"""Train a prefix-LM inverter (GEIA's decoder = Vec2Text's hypothesizer) outside a benchmark cell.

    nice -n 10 python scripts/train_inverter.py --embedder minilm --dataset wordnet \\
        --out plugins/weights/geia-minilm-wordnet --work ~/.cache/inversion-bench-train/geia-minilm

Progress lines go to ``<work>/train.log`` (and stderr); checkpoints to ``<work>`` every
``--ckpt-minutes``: rerun the same command to resume after a kill. The result is ``<out>/weights.safetensors``
(trainable weights, fp16) and ``<out>/manifest.json``. See docs/trained-inverters.md.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--embedder", default="minilm", help="victim embedder (a bench embedder name)")
    ap.add_argument("--dataset", default="wordnet", help="dataset whose attacker split is trained on")
    ap.add_argument("--attacker", type=int, default=20000, help="size of the dataset's attacker split")
    ap.add_argument("--out", type=Path, required=True, help="folder for weights.safetensors + manifest.json (must not exist)")
    ap.add_argument("--work", type=Path, required=True, help="folder for embeddings, checkpoints and train.log (reuse it to resume)")
    ap.add_argument("--lm", default="smollm2")
    ap.add_argument("--finetune", default="lora", choices=["lora", "full", "none"])
    ap.add_argument("--prefix-len", type=int, default=1)
    ap.add_argument("--max-length", type=int, default=32)
    ap.add_argument("--max-train", type=int, default=None, help="train on at most this many texts")
    ap.add_argument("--dev", type=int, default=500, help="texts held out of the attacker split when the dataset has no dev split")
    ap.add_argument("--dev-eval", type=int, default=256, help="dev texts the dev loss is computed on")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the dev machines are shared: 1)")
    ap.add_argument("--ckpt-minutes", type=float, default=5.0)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--hypothesizer", default=None,
                    help="train Vec2Text's corrector on the outputs of these shipped hypothesizer weights (e.g. geia-minilm-wordnet)")
    ap.add_argument("--from-checkpoint", action="store_true",
                    help="export the last checkpoint of an unfinished run (same arguments) instead of training; the manifest says so")
    a = ap.parse_args(argv)
    if a.out.exists() and any(a.out.iterdir()):
        print(f"error: --out {a.out} already holds files: results are never overwritten; pass a new folder", file=sys.stderr)
        return 2
    if a.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            print(f"error: --device {a.device} but torch sees no GPU: pass --device cpu", file=sys.stderr)
            return 2
    import torch

    torch.set_num_threads(a.threads)
    a.work.mkdir(parents=True, exist_ok=True)
    fmt = logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%dT%H:%M:%S")
    logger = logging.getLogger("bench.train")
    logger.setLevel(logging.INFO)
    for h in (logging.FileHandler(a.work / "train.log"), logging.StreamHandler(sys.stderr)):
        h.setFormatter(fmt)
        logger.addHandler(h)
    from bench.errors import BenchError
    from bench_plugins.attacks.textinv_ship import train_inverter

    command = shlex.join(["python", "scripts/train_inverter.py", *(argv if argv is not None else sys.argv[1:])])
    logger.info("command: %s", command)
    try:
        m = train_inverter(
            embedder=a.embedder, dataset=a.dataset, dataset_params={"attacker": a.attacker}, out=a.out, work=a.work,
            lm=a.lm, finetune=a.finetune, prefix_len=a.prefix_len, max_length=a.max_length, max_train=a.max_train,
            n_dev=a.dev, dev_eval=a.dev_eval, epochs=a.epochs, batch_size=a.batch_size, lr=a.lr, seed=a.seed,
            device=a.device, ckpt_seconds=a.ckpt_minutes * 60, log_every=a.log_every, eval_every=a.eval_every, command=command,
            from_checkpoint=a.from_checkpoint, hypothesizer=a.hypothesizer,
        )
    except BenchError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    logger.info("wrote %s (sha256 %s, %d steps, %.0f s)", a.out, m["weights_sha256"], m["training"]["steps"], m["training"]["wall_s"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
