"""Training a prefix-LM inverter outside a benchmark cell, and the shipped (pre-trained) weights.

* :func:`train_inverter`: embeds a dataset's attacker split with a victim, holds out a dev slice,
  trains the hypothesizer (GEIA's decoder, Vec2Text's step 0) with :func:`textinv.train_prefix_lm`
  (progress log, time-based checkpoints, resume) and exports its trainable weights as fp16
  safetensors plus a JSON manifest (command, data seen, steps, lr, prefix length, wall time, loss and
  dev curves). ``scripts/train_inverter.py`` is its command line.
* :func:`shipped` / :func:`load_shipped`: the weights committed under ``plugins/weights/<name>/``,
  pinned by the SHA-256 in :data:`SHIPPED` and refused when the file does not match.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.cache import file_digest, texts_hash
from bench.errors import BenchError
from bench_plugins.attacks import textinv

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"

# name -> (victim embedder, sha256 of weights.safetensors). A victim listed here gets the shipped
# hypothesizer by default (geia, vec2text step 0); any other victim trains one in the cell.
SHIPPED: dict[str, dict[str, str]] = {}


def holdout_dev(ids: list[str], texts: list[str], meta: list[dict], n_dev: int) -> tuple[list[int], list[int]]:
    """(train, dev) row indices: dev = whole groups (WordNet synsets) taken from the end of the split
    until ``n_dev`` texts; no train text shares a group with a dev text."""
    groups = [m.get("synset", i) for i, m in zip(ids, meta)] if meta else list(ids)
    dev_groups: set = set()
    dev: list[int] = []
    for i in range(len(texts) - 1, -1, -1):
        if len(dev) >= n_dev and groups[i] not in dev_groups:
            break
        dev_groups.add(groups[i])
        dev.append(i)
    dev_set = set(dev)
    train = [i for i in range(len(texts)) if i not in dev_set and groups[i] not in dev_groups]
    return train, sorted(dev)


def export(model, out: Path, manifest: dict) -> dict:
    """Write ``weights.safetensors`` (trainable state, fp16) and ``manifest.json`` (with its sha256) atomically."""
    import torch
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.to(torch.float16).contiguous() for k, v in textinv.trainable_state(model).items()}
    tmp = out / f".weights.{os.getpid()}.tmp"
    save_file(state, str(tmp), metadata={"format": "pt"})
    os.replace(tmp, out / "weights.safetensors")
    manifest = {**manifest, "weights_sha256": file_digest(out / "weights.safetensors"),
                "weights_bytes": (out / "weights.safetensors").stat().st_size, "n_tensors": len(state)}
    tmp = out / f".manifest.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, out / "manifest.json")
    return manifest


def load_weights(folder: Path, sha256: str | None) -> tuple[dict, dict]:
    """(state, manifest) of an exported inverter; the weights' SHA-256 must equal ``sha256`` when given."""
    from safetensors.torch import load_file

    folder = Path(folder)
    w, m = folder / "weights.safetensors", folder / "manifest.json"
    if not w.is_file() or not m.is_file():
        raise BenchError(f"inverter weights missing in {folder} (need weights.safetensors and manifest.json): reinstall or retrain")
    digest = file_digest(w)
    if sha256 is not None and digest != sha256:
        raise BenchError(
            f"shipped inverter weights {w} have sha256 {digest[:16]}..., expected {sha256[:16]}...: "
            f"the file is damaged or replaced; reinstall the package or train with pretrained=none"
        )
    return load_file(str(w)), json.loads(m.read_text())


def shipped(embedder: str) -> tuple[str, dict] | None:
    """(name, entry) of the shipped hypothesizer for this victim embedder, or None."""
    for name, entry in SHIPPED.items():
        if entry["embedder"] == embedder:
            return name, entry
    return None


def load_shipped(model, name: str) -> dict:
    """Load shipped weights ``name`` into ``model`` (hash-checked); returns the manifest."""
    state, manifest = load_weights(WEIGHTS_DIR / name, SHIPPED[name]["sha256"])
    textinv.load_trainable(model, state, WEIGHTS_DIR / name)
    return manifest


def train_inverter(
    *, embedder: str, dataset: str, dataset_params: dict, out: Path, work: Path, lm: str = "smollm2",
    finetune: str = "lora", lora_r: int = 16, lora_alpha: int = 32, prefix_len: int = 1, max_length: int = 32,
    max_train: int | None = None, n_dev: int = 500, dev_eval: int = 256, epochs: float = 1.0, batch_size: int = 32,
    lr: float = 1e-3, seed: int = 0, device: str = "cpu", ckpt_every: int = 100_000, ckpt_seconds: float = 300.0,
    log_every: int = 10, eval_every: int = 100, command: str = "", stop_after: int | None = None,
) -> dict:
    """Train the hypothesizer for ``embedder`` on ``dataset``'s attacker split and export it to ``out``.

    ``work`` holds the embeddings cache and the resumable checkpoint (rerun the same command to
    resume). Returns the manifest (``{"interrupted": True, ...}`` when ``stop_after`` stopped it).
    """
    from bench.plugins import Host

    t_start = time.perf_counter()
    host = Host()
    splits = host.make("datasets", dataset, dataset_params).load()
    att = splits.attacker
    if splits.dev is not None and len(splits.dev.texts):
        dev_split, dev_source = splits.dev, "dataset dev split"
        tr = list(range(len(att.texts)))
        dv_texts = list(splits.dev.texts)
    else:
        tr, dv = holdout_dev(att.ids, att.texts, att.meta, n_dev)
        dv_texts, dev_split = [att.texts[i] for i in dv], None
        dev_source = f"held out of the attacker split: its last {len(dv)} texts (whole synsets), no synset shared with training"
    del dev_split
    tr = tr[:max_train] if max_train else tr
    tr_texts = [att.texts[i] for i in tr]
    work.mkdir(parents=True, exist_ok=True)
    emb = host.make("embedders", embedder, {})
    e_tr = _embedded(emb, tr_texts, work / f"emb-train-{texts_hash(tr_texts)}.npy", device)
    e_dv = _embedded(emb, dv_texts, work / f"emb-dev-{texts_hash(dv_texts)}.npy", device)
    lm_model, tok, ident = textinv.load_lm(lm, device)
    model = textinv.build(lm_model, tok, e_tr.shape[1], prefix_len, False, finetune, lora_r, lora_alpha, seed)
    ids = textinv.tokenize_targets(tok, tr_texts, max_length)
    dev_ids = textinv.tokenize_targets(tok, dv_texts[:dev_eval], max_length)
    steps = max(1, int(np.ceil(epochs * len(tr_texts) / batch_size)))
    meta = textinv.train_prefix_lm(
        model, work, "hypothesizer", e_tr, ids, steps=steps, batch_size=batch_size, lr=lr, seed=seed, device=device,
        ckpt_every=ckpt_every, ckpt_seconds=ckpt_seconds, log_every=log_every, eval_every=eval_every,
        evaluate=lambda m: {"loss": textinv.mean_loss(m, e_dv[:dev_eval], dev_ids, batch_size, device)},
        info={"lm": ident["name"], "lm_sha256": ident.get("sha256"), "finetune": finetune}, stop_after=stop_after,
    )
    if meta.get("interrupted"):
        return meta
    manifest: dict[str, Any] = {
        "role": "hypothesizer", "command": command, "victim": {"embedder": embedder, "fingerprint": _jsonable(emb.fingerprint())},
        "lm": {"ref": lm, "name": ident["name"], "sha256": ident.get("sha256"), "pretrained": bool(ident["pretrained"])},
        "params": {"finetune": finetune, "lora_r": lora_r, "lora_alpha": lora_alpha, "prefix_len": prefix_len, "max_length": max_length},
        "data": {
            "dataset": dataset, "dataset_params": dataset_params, "split": "attacker", "dataset_info": _jsonable(splits.info),
            "n_train": len(tr_texts), "train_texts_sha256": texts_hash(tr_texts, 64),
            "dev_source": dev_source, "n_dev": len(dv_texts), "n_dev_evaluated": len(dev_ids),
            "dev_texts_sha256": texts_hash(dv_texts, 64),
        },
        "training": {
            "steps": meta["steps"], "epochs": meta["epochs"], "batch_size": batch_size, "lr": lr, "seed": seed,
            "schedule": "linear warmup (min(100, steps/10) steps) then cosine to 0; AdamW, no weight decay, grad clip 1.0",
            "texts_seen": meta["steps"] * batch_size, "wall_s": meta["wall_s"], "device": device,
            "threads": _threads(), "host": platform.node(), "resumed_from": meta["resumed_from"],
            "loss_curve": meta["losses"], "dev_curve": meta["dev"],
        },
        "total_s": round(time.perf_counter() - t_start, 1),
    }
    return export(model, Path(out), manifest)


def _embedded(emb, texts: list[str], path: Path, device: str) -> np.ndarray:
    """Victim embeddings of ``texts``, cached as .npy in the work folder (a resumed run skips them)."""
    if path.is_file():
        return np.load(path)
    emb.load(device)
    vecs = np.asarray(emb.embed(texts), np.float32)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npy")
    np.save(tmp, vecs)
    os.replace(tmp, path)
    return vecs


def _threads() -> int:
    import torch

    return int(torch.get_num_threads())


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))
