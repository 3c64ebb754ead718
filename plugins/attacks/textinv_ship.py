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

from bench.cache import file_digest, load_entry, save_arrays, texts_hash
from bench.errors import BenchError
from bench_plugins.attacks import textinv

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"

# name -> (victim embedder, sha256 of weights.safetensors). A victim listed here gets the shipped
# hypothesizer by default (geia, vec2text step 0); any other victim trains one in the cell.
SHIPPED: dict[str, dict[str, str]] = {
    # GEIA's decoder / Vec2Text's hypothesizer for all-MiniLM-L6-v2: SmolLM2-135M-Instruct + LoRA r16, prefix 16,
    # lr 2e-3, 6,400 WordNet attacker texts, 1 epoch (200 steps of 32), 2 CPU threads, 24 min.
    # (It replaced geia-minilm-wordnet: prefix 1, lr 1e-3, 5,120 texts, which scored at the chance floor.)
    "geia-minilm-wordnet-v2": {"embedder": "minilm", "sha256": "4f42a0a7af53a4267ede7f99b335f202cea89fdcb03feca1699fb5ac0610e29e"},
    # Vec2Text's corrector for it: same LM and LoRA, prefix 1 (x3 projections), trained on its greedy outputs for
    # 4,000 WordNet attacker texts re-embedded by MiniLM, 1 epoch (125 steps of 32), 2 CPU threads, 14 min.
    "v2t-corrector-minilm-wordnet-v2": {"embedder": "minilm", "hypothesizer": "geia-minilm-wordnet-v2",
                                        "sha256": "c613f150ed79c47db38d2137817262e08a300d7a92912367ec863758e7a12e1e"},
}


def split_groups(split) -> list:
    """The group of each text of a split: ``split.groups``, else its meta's WordNet synset, else its id."""
    if split.groups is not None:
        return list(split.groups)
    if split.meta and all("synset" in m for m in split.meta):
        return [m["synset"] for m in split.meta]
    return list(split.ids)


def holdout_dev(groups: list, n_dev: int) -> tuple[list[int], list[int]]:
    """(train, dev) row indices: dev = whole groups (WordNet synsets) taken from the end of the split
    until ``n_dev`` texts; no train text shares a group with a dev text."""
    dev_groups: set = set()
    dev: list[int] = []
    for i in range(len(groups) - 1, -1, -1):
        if len(dev) >= n_dev and groups[i] not in dev_groups:
            break
        dev_groups.add(groups[i])
        dev.append(i)
    dev_set = set(dev)
    train = [i for i in range(len(groups)) if i not in dev_set and groups[i] not in dev_groups]
    return train, sorted(dev)


def training_texts(splits, n_dev: int, max_train: int | None) -> tuple[list[str], list[str], str]:
    """(train texts, dev texts, where the dev texts come from) of a dataset's splits: the dataset's
    ``dev`` split when it has one, else whole groups held out of the end of the attacker split."""
    att = splits.attacker
    if splits.dev is not None and len(splits.dev.texts):
        tr_texts, dv_texts, source = list(att.texts), list(splits.dev.texts), "the dataset's dev split"
    else:
        tr, dv = holdout_dev(split_groups(att), n_dev)
        tr_texts, dv_texts = [att.texts[i] for i in tr], [att.texts[i] for i in dv]
        source = f"held out of the attacker split: its last {len(dv)} texts (whole groups/synsets), no group shared with training"
    return (tr_texts[:max_train] if max_train else tr_texts), dv_texts, source


def export(model, out: Path, manifest: dict, train_texts: list[str]) -> dict:
    """Write ``weights.safetensors`` (trainable state, fp16), ``train_text_ids.npy`` (8-byte ids of
    the training texts, for the leak check) and ``manifest.json`` (with the weights' sha256), atomically."""
    import torch
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    write_text_ids(out, train_texts)
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
        if entry["embedder"] == embedder and "hypothesizer" not in entry:
            return name, entry
    return None


def shipped_corrector(hypothesizer: str) -> tuple[str, dict] | None:
    """(name, entry) of the shipped Vec2Text corrector trained on ``hypothesizer``'s outputs, or None."""
    for name, entry in SHIPPED.items():
        if entry.get("hypothesizer") == hypothesizer:
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
    log_every: int = 10, eval_every: int = 100, command: str = "", stop_after: int | None = None, host=None,
    from_checkpoint: bool = False, hypothesizer: str | None = None, max_new_tokens: int = 32, gen_batch: int = 64,
) -> dict:
    """Train the hypothesizer for ``embedder`` on ``dataset``'s attacker split and export it to ``out``;
    with ``hypothesizer`` (the name of shipped weights), train Vec2Text's corrector instead, on that
    hypothesizer's greedy outputs for the same texts, re-embedded by the victim (paper, Sec. 3.2).

    ``work`` holds the embeddings cache and the resumable checkpoint (rerun the same command to
    resume); ``host`` is a ``bench.plugins.Host`` (default: built-ins and installed plugins).
    ``from_checkpoint`` exports the last checkpoint of an unfinished run instead of training (the
    manifest says ``complete: false`` and the steps done of those planned). Returns the manifest (``{"interrupted": True, ...}`` when ``stop_after`` stopped it).
    """
    from bench.plugins import Host

    t_start = time.perf_counter()
    host = host or Host()
    splits = host.make("datasets", dataset, dataset_params).load()
    tr_texts, dv_texts, dev_source = training_texts(splits, n_dev, max_train)
    work.mkdir(parents=True, exist_ok=True)
    emb = host.make("embedders", embedder, {})
    e_tr = _embedded(emb, tr_texts, work / f"emb-train-{texts_hash(tr_texts)}.safetensors", device)
    e_dv = _embedded(emb, dv_texts, work / f"emb-dev-{texts_hash(dv_texts)}.safetensors", device)
    role, hyp = ("corrector" if hypothesizer else "hypothesizer"), None
    if hypothesizer and SHIPPED.get(hypothesizer, {}).get("embedder") != embedder:
        raise BenchError(f"--hypothesizer {hypothesizer} is not shipped for victim {embedder}: pass one of "
                         f"{[n for n, v in SHIPPED.items() if v['embedder'] == embedder] or 'none (train a hypothesizer first)'}")
    if hypothesizer:  # the corrector's inputs: the hypothesizer's texts and their victim embeddings
        dv_texts, e_dv = dv_texts[:dev_eval], e_dv[:dev_eval]
        h_tr, eh_tr = _hypotheses(hypothesizer, tr_texts, e_tr, emb, work, device, max_new_tokens, gen_batch)
        h_dv, eh_dv = _hypotheses(hypothesizer, dv_texts, e_dv, emb, work, device, max_new_tokens, gen_batch)
        hyp = {"name": hypothesizer, "weights_sha256": SHIPPED[hypothesizer]["sha256"], "max_new_tokens": max_new_tokens,
               "train_hypotheses_sha256": texts_hash(h_tr, 64)}
    lm_model, tok, ident = textinv.load_lm(lm, device)
    model = textinv.build(lm_model, tok, e_tr.shape[1], prefix_len, bool(hypothesizer), finetune, lora_r, lora_alpha, seed)
    ids = textinv.tokenize_targets(tok, tr_texts, max_length)
    dev_ids = textinv.tokenize_targets(tok, dv_texts[:dev_eval], max_length)
    cond = {"e_hyp": eh_tr, "hyp_ids": textinv.tokenize_hyps(tok, h_tr, max_length)} if hypothesizer else {}
    dev_cond = {"e_hyp": eh_dv, "hyp_ids": textinv.tokenize_hyps(tok, h_dv, max_length)} if hypothesizer else {}
    steps = max(1, int(np.ceil(epochs * len(tr_texts) / batch_size)))
    if from_checkpoint:
        meta = _checkpoint_meta(model, work, role, steps, batch_size, len(tr_texts), lr, device)
    else:
        meta = textinv.train_prefix_lm(
            model, work, role, e_tr, ids, steps=steps, batch_size=batch_size, lr=lr, seed=seed, device=device,
            ckpt_every=ckpt_every, ckpt_seconds=ckpt_seconds, log_every=log_every, eval_every=eval_every,
            evaluate=lambda m: {"loss": textinv.mean_loss(m, e_dv[:dev_eval], dev_ids, batch_size, device, **dev_cond)},
            info={"lm": ident["name"], "lm_sha256": ident.get("sha256"), "finetune": finetune}, stop_after=stop_after, **cond,
        )
    if meta.get("interrupted"):
        return meta
    manifest: dict[str, Any] = {
        "role": role, "command": command, "victim": {"embedder": embedder, "fingerprint": _jsonable(emb.fingerprint())},
        **({"hypothesizer": hyp} if hyp else {}),
        "lm": {"ref": lm, "name": ident["name"], "sha256": ident.get("sha256"), "pretrained": bool(ident["pretrained"])},
        "params": {"finetune": finetune, "lora_r": lora_r, "lora_alpha": lora_alpha, "prefix_len": prefix_len, "max_length": max_length},
        "data": {
            "dataset": dataset, "dataset_params": dataset_params, "split": "attacker", "dataset_info": _jsonable(splits.info),
            "n_train": len(tr_texts), "train_texts_sha256": texts_hash(tr_texts, 64),
            "dev_source": dev_source, "n_dev": len(dv_texts), "n_dev_evaluated": len(dev_ids),
            "dev_texts_sha256": texts_hash(dv_texts, 64), "work": str(work),
        },
        "training": {
            "steps": meta["steps"], "planned_steps": steps, "complete": meta["steps"] == steps,
            "epochs": meta["epochs"], "batch_size": batch_size, "lr": lr, "seed": seed,
            "schedule": "linear warmup (min(100, steps/10) steps) then cosine to 0; AdamW, no weight decay, grad clip 1.0",
            "texts_seen": meta["steps"] * batch_size, "wall_s": meta["wall_s"], "device": device,
            "threads": _threads(), "host": platform.node(), "resumed_from": meta["resumed_from"],
            "loss_curve": meta["losses"], "dev_curve": meta["dev"],
        },
        "total_s": round(time.perf_counter() - t_start, 1),
    }
    return export(model, Path(out), manifest, tr_texts)


def _checkpoint_meta(model, work: Path, role: str, steps: int, batch_size: int, n: int, lr: float, device: str) -> dict:
    """Load the last checkpoint of an unfinished run into ``model``; its training metadata."""
    from bench.cache import sealed

    if not sealed(work, [f"{role}.ckpt.safetensors", f"{role}.ckpt.opt.safetensors", f"{role}.ckpt.json"], f"{role}.ckpt"):
        raise BenchError(f"no intact checkpoint in {work}: run the training first (without --from-checkpoint)")
    ck = json.loads((work / f"{role}.ckpt.json").read_text())
    if ck["steps"] != steps or ck["n"] != n:
        raise BenchError(f"the checkpoint in {work} is of another run ({ck['steps']} steps on {ck['n']} texts): pass that run's arguments")
    textinv.load_trainable(model, textinv.load_tensors(work / f"{role}.ckpt.safetensors"), work)
    per_epoch = max(1, n // batch_size)
    return {"steps": int(ck["step"]), "epochs": round(int(ck["step"]) / per_epoch, 4), "losses": [round(x, 5) for x in ck["losses"]],
            "dev": ck.get("dev", []), "wall_s": round(float(ck.get("wall_s", 0.0)), 2), "resumed_from": None, "lr": lr, "device": device}


def shipped_model(name: str, device: str, seed: int = 0):
    """Shipped weights ``name`` built into their LM (hash-checked), ready for generation."""
    m = manifest(name)
    a = m["params"]
    lm, tok, ident = textinv.load_lm(m["lm"]["ref"], device)
    model = textinv.build(lm, tok, int(m["victim"]["fingerprint"]["dim"]), a["prefix_len"], m.get("role") == "corrector",
                          a["finetune"], a["lora_r"], a["lora_alpha"], seed)
    load_shipped(model, name)
    model.identity = ident
    model.eval()
    return model


def _hypotheses(name: str, texts: list[str], e: np.ndarray, emb, work: Path, device: str, max_new_tokens: int,
                gen_batch: int) -> tuple[list[str], np.ndarray]:
    """The shipped hypothesizer's greedy texts for ``e`` and their victim embeddings, cached in ``work``
    (keyed by the texts, the weights and the length; ``textinv.cached_hypotheses``) so a resumed run
    does not generate them again."""
    import logging

    def make() -> tuple[list[str], np.ndarray]:
        log = logging.getLogger("bench.train")
        model = shipped_model(name, device)
        out: list[str] = []
        t0 = time.perf_counter()
        chunk = gen_batch * 8
        for s in range(0, len(texts), chunk):
            out += [c[0] for c in textinv.generate_batched(model, e[s : s + chunk], max_new_tokens, gen_batch, device, desc="hypotheses")]
            rate = len(out) / max(1e-9, time.perf_counter() - t0)
            log.info("hypotheses: %d/%d texts, %.2f texts/s, ETA %s", len(out), len(texts), rate,
                     textinv._hms((len(texts) - len(out)) / max(1e-9, rate)))
        del model
        emb.load(device)
        return out, np.asarray(emb.embed(out), np.float32)

    key = texts_hash([*texts, SHIPPED[name]["sha256"], str(max_new_tokens)])
    return textinv.cached_hypotheses(work / f"hyp-{key}.safetensors", make)


def write_text_ids(out: Path, texts: list[str]) -> None:
    tmp = out / f".train_text_ids.{os.getpid()}.tmp.npy"
    np.save(tmp, np.unique(text_ids(texts)))
    os.replace(tmp, out / "train_text_ids.npy")


def _embedded(emb, texts: list[str], path: Path, device: str) -> np.ndarray:
    """Victim embeddings of ``texts``, cached in the work folder as a digest-checked safetensors
    entry (a resumed run skips them; a damaged file is reported and made again)."""
    found = load_entry(path, what="embedding the texts again")
    if found is not None:
        return found[0]["embeddings"]
    emb.load(device)
    vecs = np.asarray(emb.embed(texts), np.float32)
    save_arrays(path, {"embeddings": vecs})
    return vecs


def _threads() -> int:
    import torch

    return int(torch.get_num_threads())


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def manifest(name: str) -> dict:
    """The manifest of shipped weights ``name`` (no hash check: :func:`load_shipped` does that)."""
    path = WEIGHTS_DIR / name / "manifest.json"
    if not path.is_file():
        raise BenchError(f"shipped inverter {name} has no manifest at {path}: reinstall the package or pass pretrained=none")
    return json.loads(path.read_text())


def record_entry(name: str, m: dict) -> dict:
    """What a record says about shipped weights: their hash, the training scale and the architecture
    they were built with (it replaces the cell's defaults, e.g. geia's ``prefix_len`` 1 with 16)."""
    t = m["training"]
    return {
        "weights_sha256": m["weights_sha256"],
        "scale": {"name": name, "dataset": m["data"]["dataset"], "n_train": m["data"]["n_train"], "steps": t["steps"],
                  "epochs": t["epochs"], "batch_size": t["batch_size"], "lr": t["lr"], "wall_s": t["wall_s"], "device": t["device"],
                  "architecture": dict(m["params"])},
    }


def text_ids(texts: list[str]) -> np.ndarray:
    """8-byte ids of texts (the first 8 bytes of their SHA-256): what the manifest keeps of the training texts."""
    import hashlib

    return np.array([int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little") for t in texts], np.uint64)


def seen_in_training(name: str, texts: list[str]) -> int:
    """How many of ``texts`` the shipped inverter ``name`` was trained on (by their 8-byte ids)."""
    path = WEIGHTS_DIR / name / "train_text_ids.npy"
    if not path.is_file() or not texts:
        return 0
    return int(np.isin(text_ids(texts), np.load(path)).sum())
