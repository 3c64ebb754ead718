"""Adaptive SLImE (arXiv 2601.22929, the adaptive attack): a low-fidelity image generated from the
aligned embedding, a VLM reading it, and a caption refined from tags plus what the VLM saw.

Per target, after SLImE's tag retrieval (``bench_plugins.attacks.slime``, unchanged):

1. **Generator-space embedding.** The attacker's own dual encoder (``image_encoder``, required; a
   CLIP / open_clip reference loaded by ``bench_plugins.clip``; never the victim) embeds the first
   b = ``pairs`` leaked items: their images with its image tower for an image victim, their texts
   with its text tower for a text victim (a text embedding used as a proxy for the image embedding
   the generator was trained on). A second least-squares map (``bench.align.least_squares``) takes
   the defended victim embeddings there; the unit-norm result is scaled to the mean norm of the
   encoder's unnormalised features of up to 16 leaked items (generators take raw CLIP embeddings).
   Its dimension must be what the generator expects: use the CLIP it was trained with.
2. **Low-fidelity image** (``bench_plugins.diffusion``). A diffusers pipeline conditioned on image embeddings (``generator``: a
   folder or hub id, e.g. an ``UnCLIPImageVariationPipeline`` such as
   kakaobrain/karlo-v1-alpha-image-variations or a ``StableUnCLIPImg2ImgPipeline``; any pipeline
   whose ``__call__`` takes ``image_embeddings`` or ``image_embeds``), safetensors only, no remote
   code, ``gen_steps`` denoising steps per stage, ``gen_size`` where the pipeline takes a size, a
   seed per target (from the cell seed and the embedding). Images are cached as PNG under
   ``bench.cache.default_cache_dir()/adaptive/images``, keyed by the embedding's bytes, the
   generator's identity (reference, class, weights sha256) and the settings; each file's name
   carries its digest.
3. **VLM reading.** A VLM asked for "objects: ...; relations: ...; scene: ..." (parsed leniently by
   :func:`parse_vlm_answer`): a local transformers image-text-to-text model (``vlm``; AutoProcessor +
   AutoModelForImageTextToText, greedy; ``bench_plugins.vlm``) or an OpenAI-compatible chat endpoint
   (``vlm_backend=openai``, ``vlm_base_url``, ``vlm_model``, ``vlm_api_key_env``; the image is an
   ``image_url`` data-URL content part). Replies are cached like the captions (``cached_chat``).
4. **Refined caption.** SLImE's caption writer (same ``llm*`` parameters) writes one sentence from the
   retrieved tags plus the VLM's objects, relations and scene; the reconstruction is that caption.

Metrics: all of SLImE's (the per-kind ``object_f1`` ... ``scene_f1`` are of the retrieved tags),
plus, per target:

* ``vlm_object_f1``, ``vlm_relation_f1``, ``vlm_scene_f1``: neighbourhood F1@10 within one kind of
  tag (as SLImE's per-kind F1s) of the tags that SLImE's tagger parses from the VLM's answer, against
  the ground-truth tags of that kind. The answer's items are tagged one by one, as "There is
  <object>.", the relation phrase as given, and "Seen in <scene>." (so that it yields a "prep noun"
  scene tag); a predicted tag outside the attacker's tag vocabulary counts as its nearest vocabulary tag.
  No value when the target has no ground-truth tag of that kind.
* ``vlm_objects``, ``vlm_relations``: how many objects / relations the VLM named; ``vlm_scene``: 1
  when it named a scene. The texts themselves (image path, VLM reply, parsed fields, caption) are
  kept per target in the inversion's extras, which the runner writes to the samples file.

Offline here only tiny random generators and VLMs run (marked ``bench_random_init.json``): their
records say ``all_pretrained: false`` and no number from them is a finding.
"""

from __future__ import annotations

import base64
import re
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from bench.api import AttackContext, Inversion, Split
from bench.errors import BenchError
from bench.hookspecs import hookimpl
from bench.http import BaseUrl
from bench.metrics import Metric
from bench.vectors import unit
from bench_plugins.attacks.slime import KIND_M, SYSTEM, Slime

PROMPT_VERSION = "adaptive-1"
VLM_KINDS = ("object", "relation", "scene")
VLM_QUESTION = (
    "Describe this image. Answer in one line, exactly in this form: objects: <comma-separated objects>; "
    "relations: <comma-separated 'subject verb object' phrases>; scene: <where it is>"
)
_LABELS = {"object": "objects", "objects": "objects", "relation": "relations", "relations": "relations",
           "relationship": "relations", "relationships": "relations", "scene": "scene", "scenes": "scene",
           "setting": "scene", "location": "scene", "place": "scene"}
_LABEL_RE = re.compile(r"\b(" + "|".join(sorted(_LABELS, key=len, reverse=True)) + r")\s*[:=]", re.IGNORECASE)
_EMPTY = {"", "none", "n/a", "na", "unknown", "nothing", "-", "null"}
_LOCATIVE = ("in ", "at ", "on ", "near ", "inside ", "outside ", "under ", "by ", "beside ", "behind ", "over ")


# ---------------------------------------------------------------- the VLM's answer


def parse_vlm_answer(text: str) -> dict[str, list[str]]:
    """``"objects: a, b; relations: x; scene: y"`` -> {"objects": [a, b], "relations": [x], "scene": [y]}.

    Lenient: labels in any case, singular or plural (also "relationships", "setting", "location"),
    ``:`` or ``=``, in any order, on one line or several; markdown bold, bullets, numbering, quotes
    and trailing dots are dropped, objects may be joined by "and", "none"/"n/a" mean nothing.
    Missing fields are empty; an answer with no label at all is read as a list of objects.
    """
    text = str(text or "").replace("**", "").replace("__", "")
    marks = list(_LABEL_RE.finditer(text))
    if marks:
        chunks = [(_LABELS[m.group(1).lower()], text[m.end() : marks[i + 1].start() if i + 1 < len(marks) else len(text)])
                  for i, m in enumerate(marks)]
    else:
        chunks = [("objects", text)]
    out: dict[str, list[str]] = {"objects": [], "relations": [], "scene": []}
    for field, body in chunks:
        sep = r"[,;\n]|\band\b" if field == "objects" else (r"[,;\n]" if field == "relations" else r"[;\n]")
        for item in re.split(sep, body):
            item = re.sub(r"^[\s\-*•·>\d.)]+", "", item).strip().strip("\"'`").strip().rstrip(".").strip().lower()
            item = " ".join(item.split())
            if item not in _EMPTY and item not in out[field]:
                out[field].append(item)
    return out


def vlm_tag_texts(parsed: dict[str, list[str]]) -> list[str]:
    """The texts SLImE's tagger reads from a parsed answer, one per item, as short sentences its rules
    parse: "There is <object>.", each relation phrase as given, "Seen in <scene>." (a "prep noun" tag)."""
    scenes = [f"Seen {s}." if s.startswith(_LOCATIVE) else f"Seen in {s}." for s in parsed["scene"]]
    return [f"There is {o}." for o in parsed["objects"]] + parsed["relations"] + scenes


def refine_conversation(tags: list[str], seen: dict[str, list[str]]) -> list[dict[str, str]]:
    lines = [f"Keywords: {', '.join(tags)}"]
    for field, label in (("objects", "Objects"), ("relations", "Relations"), ("scene", "Scene")):
        if seen[field]:
            lines.append(f"{label}: {', '.join(seen[field])}")
    lines.append("Write one short sentence describing the image, using these.")
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n".join(lines)}]


def vlm_conversation(png: bytes) -> list[dict[str, Any]]:
    """One OpenAI-style user message: the image as a data URL, then the question."""
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    return [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": VLM_QUESTION}]}]


# ---------------------------------------------------------------- the attack


class SlimeAdaptive(Slime):
    """Adaptive SLImE: SLImE's tags plus a diffusion image of the aligned embedding read by a VLM."""

    name = "slime-adaptive"
    headline = Slime.headline + ("vlm_object_f1", "vlm_relation_f1", "vlm_scene_f1")
    metrics = Slime.metrics + tuple(
        Metric(f"vlm_{kind}_f1", True, f"neighbourhood F1@10 within {kind} tags of the tags parsed from the VLM's answer")
        for kind in VLM_KINDS
    ) + (
        Metric("vlm_objects", None, "objects the VLM named (describes the answer; not a score)"),
        Metric("vlm_relations", None, "relations the VLM named (describes the answer; not a score)"),
        Metric("vlm_scene", None, "1 when the VLM named a scene (describes the answer; not a score)"),
    )

    class Params(Slime.Params):
        image_encoder: str | None = Field(None, description="required: the attacker's own CLIP/open_clip dual encoder, whose image embeddings the generator takes (folder, local-dir:/path, open_clip:ARCH@ckpt); never the victim")
        generator: str | None = Field(None, description="diffusers pipeline taking image embeddings (unCLIP image variation, StableUnCLIPImg2Img): folder or hub id")
        gen_steps: int = Field(10, ge=1, le=1000, description="denoising steps of each generator stage (the image only needs to be low-fidelity)")
        gen_size: int = Field(0, ge=0, description="generated image side in pixels, for pipelines that take height/width (0: the pipeline's default)")
        image_batch: int = Field(4, ge=1, description="images generated, and read by the VLM, per batch")
        vlm_backend: Literal["local", "openai"] = Field("local", description="VLM: local transformers image-text-to-text model or an OpenAI-compatible endpoint")
        vlm: str | None = Field(None, description="local VLM: folder or hub id (AutoModelForImageTextToText)")
        vlm_base_url: BaseUrl = Field("http://localhost:8000/v1", description="openai VLM backend: API root (http or https)")
        vlm_model: str | None = Field(None, description="openai VLM backend: chat model name (must accept image_url parts)")
        vlm_api_key_env: str = Field("OPENAI_API_KEY", description="openai VLM backend: env var holding the key (never stored)")
        vlm_max_new_tokens: int = Field(64, ge=1, le=1024, description="VLM answer length limit in tokens")

        @model_validator(mode="after")
        def _check_adaptive(self):
            if not self.image_encoder:
                raise ValueError("slime-adaptive needs image_encoder=<the attacker's CLIP/open_clip model: the one whose image embeddings the generator takes>")
            if not self.generator:
                raise ValueError("slime-adaptive needs generator=<a diffusers pipeline taking image embeddings: folder or hub id>")
            if self.vlm_backend == "local" and not self.vlm:
                raise ValueError("slime-adaptive needs vlm=<a local image-text-to-text model: folder or hub id> (or vlm_backend=openai,vlm_model=...)")
            if self.vlm_backend == "openai" and not self.vlm_model:
                raise ValueError("vlm_backend=openai needs vlm_model=<chat model name>")
            return self

    def __init__(self, params=None):
        super().__init__(params)
        self.generator = self.reader = self._dual = None

    # ------------------------------------------------------------ set-up

    def _raw_norm(self, items: list[str]) -> float:
        """Mean norm of the dual encoder's unnormalised features (the scale generators expect)."""
        return float(self.dual.raw_features("image" if self.image else "text", items).norm(dim=-1).mean())

    def _load_image_encoder(self, ctx: AttackContext):
        if self._dual is None:  # once per fit (checked against this cell's victim), for slime and for the generator space
            self._dual = super()._load_image_encoder(ctx)
        return self._dual

    def fit(self, ctx: AttackContext) -> list[dict[str, Any]]:
        from bench.align import least_squares
        from bench_plugins.clip import cached_encode
        from bench_plugins.diffusion import ImageGenerator

        p = self.params
        self._dual = None
        self.dual = self._load_image_encoder(ctx)
        if self.generator is None:
            self.generator = ImageGenerator(p.generator, ctx.device)
        if self.generator.dim is not None and self.generator.dim != self.dual.dim:  # before any training
            raise BenchError(
                f"slime-adaptive: generator {p.generator!r} takes {self.generator.dim}-dim image embeddings but image_encoder "
                f"{p.image_encoder!r} gives {self.dual.dim}-dim ones: pass the CLIP the generator was trained with"
            )
        models = super().fit(ctx)
        items = self._items(ctx.leaked)[: p.pairs]
        feats = cached_encode(self.dual, "image" if self.image else "text", items)
        self.W_gen = least_squares(np.asarray(ctx.leaked_embeddings[: p.pairs], np.float32), feats)
        self.gen_norm = self._raw_norm(items[:16])
        dual, gen = self.dual.identity, self.generator.identity
        if not self.image:
            models.append({"role": "generator-encoder", "pretrained": bool(dual["pretrained"]),
                           "name": f"{dual['name']} ({dual['backend']} text tower: text embeddings as a proxy for the generator's image embeddings)"})
        models.append({"role": "image-generator", "name": f"{p.generator} ({gen['class']}, {p.gen_steps} steps)", "pretrained": gen["pretrained"]})
        if p.vlm_backend == "openai":
            models.append({"role": "vlm", "name": f"{p.vlm_model} @ {p.vlm_base_url}", "pretrained": True})
        else:
            from bench_plugins.llm import resolve

            _, ident = resolve(p.vlm or "")
            models.append({"role": "vlm", "name": ident["name"], "pretrained": bool(ident["pretrained"])})
        return models

    def _load_reader(self, ctx: AttackContext):
        from bench_plugins.llm import OpenAIChat
        from bench_plugins.vlm import LocalVLM

        p = self.params
        if p.vlm_backend == "openai":
            return OpenAIChat(p.vlm_base_url, p.vlm_model or "", p.vlm_api_key_env, p.timeout, p.max_retries, p.parallel)
        return LocalVLM(p.vlm or "", ctx.device)

    # ------------------------------------------------------------ inference

    def generator_embedding(self, emb: np.ndarray) -> np.ndarray:
        return unit(np.asarray(emb, np.float32) @ self.W_gen, np.float32) * self.gen_norm

    prompt_version = PROMPT_VERSION

    def observe(self, emb: np.ndarray, tags: list[list[str]], ctx: AttackContext) -> list[dict[str, Any]]:
        """Per target: the generated ``image``'s path (in the image cache), the VLM's ``vlm_reply``
        and its parsed ``objects``/``relations``/``scene`` (kept as extras, shown to the writer)."""
        from bench_plugins.diffusion import cached_images
        from bench_plugins.llm import LazyChat, cached_chat

        p = self.params
        settings = {"steps": p.gen_steps, "size": p.gen_size, "seed": ctx.seed}
        images = cached_images(self.generator, self.generator_embedding(emb), settings, p.image_batch)
        convs = [vlm_conversation(path.read_bytes()) for path in images]
        if self.reader is None:
            self.reader = LazyChat(lambda: self._load_reader(ctx), self._reader_info())
        replies = cached_chat(self.reader, convs, {"max_new_tokens": p.vlm_max_new_tokens, "question": VLM_QUESTION},
                              max_new_tokens=p.vlm_max_new_tokens, batch_size=p.image_batch)
        return [{"image": str(i), "vlm_reply": r, **parse_vlm_answer(r)} for i, r in zip(images, replies)]

    def prompt(self, tags: list[str], note: dict[str, Any]) -> list[dict[str, str]]:
        return refine_conversation(tags, note)

    def _reader_info(self) -> dict[str, Any]:
        """The VLM's identity for the reply cache, known without loading it."""
        p = self.params
        if p.vlm_backend == "openai":
            from bench_plugins.llm import OpenAIChat

            return OpenAIChat(p.vlm_base_url, p.vlm_model or "", p.vlm_api_key_env, p.timeout, p.max_retries, p.parallel).info()
        from bench_plugins.llm import resolve

        return {k: v for k, v in resolve(p.vlm or "")[1].items() if k != "path"}

    # ------------------------------------------------------------ metrics

    def _as_vocab(self, tags: list[str], nbrs: dict[str, list[int]]) -> list[int]:
        """Vocabulary indices of predicted tags; a tag outside the vocabulary is its nearest vocabulary tag."""
        out: list[int] = []
        for t in tags:
            j = self.vindex.get(t, nbrs[t][0] if nbrs.get(t) else None)
            if j is not None and j not in out:
                out.append(j)
        return out

    def extra_scores(self, inversions: list[Inversion], target: Split, ctx: AttackContext) -> list[dict[str, float]]:
        from bench_plugins.tags import extract_tags

        rows = super().extra_scores(inversions, target, ctx)
        gt = extract_tags(list(target.texts), self.tagger)
        answers = [{k: inv.extras[k] for k in ("objects", "relations", "scene")} for inv in inversions]
        texts, owner = [], []
        for i, seen in enumerate(answers):
            for text in vlm_tag_texts(seen):
                texts.append(text)
                owner.append(i)
        pred: list[list[dict[str, str]]] = [[] for _ in rows]
        for i, tags in zip(owner, extract_tags(texts, self.tagger) if texts else []):
            pred[i] += tags
        nbrs = self._neighbours([t["text"] for ts in gt + pred for t in ts])
        for row, g, got, seen in zip(rows, gt, pred, answers):
            for kind in VLM_KINDS:
                want = [t["text"] for t in g if t["type"] == kind]
                have = self._as_vocab([t["text"] for t in got if t["type"] == kind], nbrs)
                row[f"vlm_{kind}_f1"] = self.neighbourhood_f1(have, want, nbrs, KIND_M) if want else None
            row.update(vlm_objects=float(len(seen["objects"])), vlm_relations=float(len(seen["relations"])), vlm_scene=float(bool(seen["scene"])))
        return rows


@hookimpl
def register_attacks(register):
    register(SlimeAdaptive)
